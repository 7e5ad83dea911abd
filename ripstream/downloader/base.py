"""BaseDownloader: the seed's subclassing contract. A source resolves; the engine downloads.

A source implements four things (``source_name``, ``supported_content_types``,
``authenticate``, ``get_download_info``) and may adjust a few hooks (``tasks_for_url``,
``check_response``, ``request_url``, ``naming_values``). :meth:`BaseDownloader.download` hands
the content to a :class:`~ripstream.downloader.engine.DownloadEngine`, which runs the
lifecycle (path, claim, overwrite, ``.part``, fetch, verify, post-process, move, result);
:meth:`BaseDownloader.download_many` goes through a
:class:`~ripstream.downloader.manager.DownloadManager`.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from ripstream.downloader.config import DownloadBehaviorSettings, DownloadConfig
from ripstream.downloader.content import ContentType, DownloadableContent, DownloadResult
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.executors import SegmentPool, segment_pool_for
from ripstream.downloader.fetch import CustomFetch
from ripstream.downloader.files import filename_from_url, safe_filename
from ripstream.downloader.manager import DownloadManager
from ripstream.downloader.placement import FinalName
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.resources import Closing
from ripstream.downloader.retry import call_with_retries
from ripstream.downloader.services import (
    EngineServices,
    PostProcessor,
    ProgressReporter,
)
from ripstream.downloader.session import DownloadSession, SessionManager
from ripstream.downloader.state import TransferResult

if TYPE_CHECKING:
    import requests

__all__ = ["BaseDownloader", "FinalName", "ProgressReporter"]

T = TypeVar("T")


class BaseDownloader(Closing):
    """The base of every source. Thread-safe: ``download`` may run on many threads at once.

    Subclasses define ``source_name``, ``supported_content_types``, ``authenticate`` and
    ``get_download_info``; override ``_download_content`` only when the bytes need more than
    a stream of ``content.url`` (decryption, joining segments of a playlist).

    Example::

        class MyService(BaseDownloader):
            source_name = "my_service"
            supported_content_types = [ContentType.TRACK]

            def authenticate(self, credentials):
                return True

            def get_download_info(self, content_id):
                return DownloadableContent(content_id=content_id, content_type=ContentType.TRACK,
                                           source=self.source_name, title=content_id,
                                           url=f"https://example.com/{content_id}.mp3")

        with MyService(DownloadConfig()) as downloader:
            result = downloader.download(downloader.get_download_info("track_1"))

    :param session_manager: where this source's HTTP session comes from (its login lives
        there); by default its own, closed with it.
    :param progress_tracker: where progress goes.
    :param cancel_event: setting it stops this downloader's downloads at their next buffer.
    :param bandwidth: a rate limit to share with other downloaders (default: the config's).
    :param sleep: waits between retries (tests pass a fake).
    :param post_processors: run on each verified file before it is moved into place.
    :param services: the engine's collaborators whole (then the four above are not used).
    """

    def __init__(
        self,
        config: DownloadConfig | None = None,
        session_manager: SessionManager | None = None,
        progress_tracker: ProgressTracker | None = None,
        *,
        cancel_event: threading.Event | None = None,
        bandwidth: TokenBucket | None = None,
        sleep: Callable[[float], Any] | None = None,
        post_processors: Sequence[PostProcessor] = (),
        services: EngineServices | None = None,
    ) -> None:
        self.config = config or DownloadConfig()
        self._owns_sessions = session_manager is None
        self.session_manager = session_manager or SessionManager(self.config)
        self._segments: SegmentPool | None = None
        if services is None:
            if bandwidth is None and self.config.bandwidth_limit:
                bandwidth = TokenBucket(self.config.bandwidth_limit)
            self._segments = segment_pool_for(self.config)
            services = EngineServices(
                cancel=cancel_event or threading.Event(),
                tracker=progress_tracker or ProgressTracker(),
                bandwidth=bandwidth,
                post_processors=tuple(post_processors),
                segment_pool=self._segments,
                sleep=sleep,
            )
        self.engine = DownloadEngine(services)

    #: The naming template used when the config sets none (``{filename}``: the server's name).
    default_template: ClassVar[str] = "{filename}"
    #: Credential keys :meth:`authenticate` needs (the CLI asks for missing ones).
    required_credentials: ClassVar[tuple[str, ...]] = ()
    #: One line for ``ripstream sources``.
    description: ClassVar[str] = ""
    #: The URL shapes this source claims, for ``ripstream sources``.
    url_patterns: ClassVar[tuple[str, ...]] = ()
    #: Whether a content id names the same bytes for ever (a Subsonic song id, an archive.org
    #: file): only then may the download archive skip content it holds. A plain URL's bytes
    #: may change, so it is not skipped by the archive.
    stable_ids: ClassVar[bool] = False

    # -- the contract ---

    @property
    @abstractmethod
    def source_name(self) -> str:
        """The source's short name, e.g. ``"subsonic"``."""

    @property
    @abstractmethod
    def supported_content_types(self) -> list[ContentType]:
        """The content types this source can resolve."""

    @abstractmethod
    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        """Log in; True on success.

        :raises AuthenticationError: when the service refuses the credentials.
        """

    @abstractmethod
    def get_download_info(self, content_id: str) -> DownloadableContent:
        """Resolve ``content_id`` into downloadable content (URL, metadata, checksum)."""

    @classmethod
    def claims_url(cls, url: str) -> bool:
        """Whether this source handles ``url`` (override to be picked by URL)."""
        return False

    def tasks_for_url(self, url: str) -> list[DownloadTask]:
        """The tasks that download ``url``: one by default; an album may give many, with
        dependencies (cover first, then tracks, then the playlist file).

        :raises DownloadError: when the URL cannot be resolved.
        """
        return [DownloadTask.from_content(self.get_download_info(self.content_id_for_url(url)))]

    def content_id_for_url(self, url: str) -> str:
        """The content id a URL names (``myservice://track/42`` -> ``42``); the whole URL by
        default. A plugin that claims its own URLs overrides this (or :meth:`tasks_for_url`).
        """
        return url

    # -- hooks the engine calls ---

    def check_response(self, content: DownloadableContent, response: requests.Response) -> None:
        """Refuse a response whose body is not the content, before a byte of it is written.

        The default accepts everything the HTTP checks passed. Override it for services that
        answer errors with a 200 and a JSON or XML document instead of the media.

        :raises DownloadError: a typed error (retryable or not) describing the refusal.
        """

    def final_name(self, content: DownloadableContent, part: Path, path: Path) -> FinalName | None:
        """Look at the verified bytes in ``part`` before the file is named, tagged and moved.

        ``path`` is where the file is going. Return a :class:`FinalName` to give it another
        name in that folder (an extension sniffed from the bytes; the overwrite policy then
        applies to the new name) and a note for the result; ``None`` keeps everything. The
        default keeps everything.

        :raises DownloadError: a typed error to refuse the bytes (an error page served as
            the file): the ``.part`` file is discarded and the download fails.
        """
        return None

    def placed(self, content: DownloadableContent, path: Path) -> None:
        """Told where ``content``'s file finally is (written now, or kept as it was), in the
        process that ran the download. The default does nothing; a source that writes an
        index of its files (a playlist) records the names here."""

    def request_url(self, content: DownloadableContent) -> str:
        """The URL to fetch for one attempt: ``content.url`` by default. Override it to sign
        URLs freshly for every attempt, so no secret is ever stored in a task."""
        return content.url

    def _download_content(
        self, content: DownloadableContent, file_path: Path, progress_callback: ProgressReporter
    ) -> TransferResult | None:
        """Fill ``file_path`` (the ``.part`` file) with the content's bytes: one attempt.

        The default is the engine's own fetch (stream, resume, segments, throttling), so an
        override may call ``super()._download_content(...)``. Return ``None`` if you write
        the file yourself: the engine measures and hashes it.

        :raises DownloadError: a typed error; retryable ones are retried.
        """
        return progress_callback.fetch_default(content, file_path)

    @property
    def custom_fetch(self) -> CustomFetch | None:
        """This source's own fetch when it overrides ``_download_content``, else ``None``."""
        if type(self)._download_content is BaseDownloader._download_content:
            return None
        fetch: CustomFetch = self._download_content  # type: ignore[assignment]
        return fetch

    # -- conveniences for sources ---

    @property
    def settings(self) -> DownloadBehaviorSettings:
        """This source's behaviour settings (defaults plus its overrides)."""
        return self.config.get_behavior_for_source(self.source_name)

    @property
    def session(self) -> DownloadSession:
        """This source's HTTP session."""
        return self.session_manager.get_session(self.source_name)

    @property
    def progress_tracker(self) -> ProgressTracker:
        """Where this downloader's progress goes."""
        return self.engine.services.tracker

    @property
    def cancel_event(self) -> threading.Event:
        """Setting it stops this downloader's downloads at their next buffer."""
        return self.engine.services.cancel

    def retrying(self, function: Callable[[], T], *, describe: str = "request") -> T:
        """Call ``function`` under this source's retry policy (API calls, not downloads).

        :raises DownloadError: a permanent error, or :class:`RetryExhaustedError`.
        """
        return call_with_retries(function, self.settings, sleep=self._wait, describe=describe)

    def _wait(self, seconds: float) -> None:
        sleep = self.engine.services.sleep
        if sleep is not None:
            sleep(seconds)
        else:
            self.cancel_event.wait(seconds)

    def target_path(
        self, content: DownloadableContent, file_path: str | Path | None = None
    ) -> Path:
        """Where ``content`` will be written (see :meth:`DownloadEngine.target_path`)."""
        return self.engine.target_path(self, content, file_path)

    @property
    def naming_template(self) -> str:
        """The config's filename template, or this source's default."""
        return self.config.filename_template or self.default_template

    def naming_values(self, content: DownloadableContent) -> dict[str, Any]:
        """The values a naming template (and the tagger) can use for ``content``."""
        name = content.filename or filename_from_url(content.url) or content.title
        extension = content.file_extension or (Path(name).suffix.lstrip(".") or None)
        if (
            content.filename is None
            and content.file_extension
            and not name.endswith(f".{content.file_extension}")
        ):
            name = f"{content.title}.{content.file_extension}"
        title = content.title
        if extension and title.lower().endswith(f".{extension.lower()}"):
            title = title[: -len(extension) - 1]  # {title}.{ext} must not say .flac twice
        values: dict[str, Any] = {
            "filename": safe_filename(name),
            "title": title,
            "ext": extension or "bin",
            "artist": content.artist,
            "album": content.album,
            "albumartist": content.artist,
            "source": content.source,
            "id": content.content_id,
            "type": content.content_type.value,
        }
        values.update(content.metadata.values())
        return values

    # -- the lifecycle ---

    def download(
        self,
        content: DownloadableContent,
        file_path: str | Path | None = None,
        *,
        raise_on_error: bool = False,
    ) -> DownloadResult:
        """Download ``content`` to its final path (the engine's lifecycle).

        :param raise_on_error: raise the typed error instead of returning a failed result.
        :raises DownloadError: only with ``raise_on_error``.
        """
        result = self.engine.run(self, content, file_path)
        if raise_on_error:
            result.raise_for_error()
        return result

    def download_many(
        self,
        contents: Iterable[DownloadableContent | DownloadTask | str],
        *,
        raise_on_error: bool = False,
    ) -> list[DownloadResult]:
        """Download several contents through a :class:`DownloadManager` of
        ``max_concurrent_downloads`` threads.

        :param contents: resolved contents, tasks, or content ids (a URL for the http source),
            which are resolved with :meth:`get_download_info` on the download threads.
        :returns: one result per item, in the order given.
        """
        tasks = [self._task_for(item) for item in contents]
        queue = DownloadQueue()
        for task in tasks:
            queue.add_task(task)
        with DownloadManager(self.config, services=self.engine.services) as manager:
            for name in {task.source for task in tasks} | {self.source_name}:
                manager.register(self, name=name)
            results = manager.run(queue)  # in queue order: the order given
        if raise_on_error:
            for result in results:
                result.raise_for_error()
        return results

    def _task_for(self, item: DownloadableContent | DownloadTask | str) -> DownloadTask:
        if isinstance(item, DownloadTask):
            return item
        if isinstance(item, DownloadableContent):
            return DownloadTask.from_content(item)
        if isinstance(item, str):
            return DownloadTask(
                content_id=item,
                content_type=ContentType.FILE,
                source=self.source_name,
                title=item,
                url="",
            )
        raise TypeError(
            f"download_many takes contents, tasks or content ids, not {type(item).__name__}"
        )

    # -- resources ---

    def close(self) -> None:
        """Close the sessions and segment threads this downloader created."""
        if self._segments is not None:
            self._segments.close()
        if self._owns_sessions:
            self.session_manager.close()
