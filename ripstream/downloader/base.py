"""BaseDownloader: the subclassing contract and the whole download lifecycle.

A source implements four things (``source_name``, ``supported_content_types``,
``authenticate``, ``get_download_info``); :meth:`BaseDownloader.download` does the rest:

1. pick the final path (template, safe names, inside the output folder) and claim it;
2. apply the overwrite policy to an existing file;
3. stream into ``<name>.part`` with retries, resume and progress (:meth:`_download_content`);
4. verify size and checksum (one full refetch on a mismatch);
5. optionally fsync, then move the file into place atomically without clobbering;
6. report a :class:`DownloadResult` (or raise its typed error with ``raise_on_error``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ripstream.downloader.config import DownloadBehaviorSettings, DownloadConfig, OverwritePolicy
from ripstream.downloader.content import (
    Checksum,
    ContentType,
    DownloadableContent,
    DownloadResult,
    ResultStatus,
)
from ripstream.downloader.exceptions import (
    ChecksumError,
    DownloadCancelledError,
    DownloadError,
    IncompleteBodyError,
    StorageError,
    TargetExistsError,
)
from ripstream.downloader.files import (
    filename_from_content_disposition,
    filename_from_url,
    part_path,
    rename_no_clobber,
    render_template,
    resolve_inside,
    safe_filename,
    storage_error,
    unique_path,
)
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.resources import Closing
from ripstream.downloader.retry import call_with_retries
from ripstream.downloader.session import DownloadSession, SessionManager, redact_url
from ripstream.downloader.transfer import Transfer, TransferResult, sidecar_path

if TYPE_CHECKING:
    import requests

    from ripstream.library.archive import DownloadArchive

__all__ = ["BaseDownloader", "PathClaims", "ProgressReporter"]

logger = logging.getLogger(__name__)


class PathClaims:
    """Final paths being written in this run, so two tasks never write one file. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paths: set[Path] = set()

    def claim(self, path: Path) -> bool:
        """Claim ``path``; False when another download already holds it."""
        with self._lock:
            if path in self._paths:
                return False
            self._paths.add(path)
            return True

    def release(self, path: Path) -> None:
        """Give ``path`` back."""
        with self._lock:
            self._paths.discard(path)

    def snapshot(self) -> set[Path]:
        """The paths claimed now."""
        with self._lock:
            return set(self._paths)


class ProgressReporter:
    """What ``_download_content`` reports progress through. Thread-safe (the tracker is).

    Call it with a byte count (``progress_callback(len(chunk))``), and call
    :meth:`set_total` once the size is known.
    """

    def __init__(self, tracker: ProgressTracker, download_id: str) -> None:
        self.tracker = tracker
        self.download_id = download_id
        self._disposition: str | None = None

    def __call__(self, delta: int) -> None:
        self.tracker.update(self.download_id, delta)

    def set_total(self, total: int | None, already: int = 0) -> None:
        """Record the total size and the bytes already on disk."""
        self.tracker.set_total(self.download_id, total, already=already)

    def on_response(self, response: Any) -> None:
        """Keep the ``Content-Disposition`` header (parsed only if the name may change)."""
        self._disposition = response.headers.get("Content-Disposition") or self._disposition

    @property
    def suggested_name(self) -> str | None:
        """The file name the server's ``Content-Disposition`` suggests, if any."""
        return filename_from_content_disposition(self._disposition)


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
    """

    def __init__(
        self,
        config: DownloadConfig | None = None,
        session_manager: SessionManager | None = None,
        progress_tracker: ProgressTracker | None = None,
        *,
        cancel_event: threading.Event | None = None,
        bandwidth: TokenBucket | None = None,
        claims: PathClaims | None = None,
        archive: DownloadArchive | None = None,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.config = config or DownloadConfig()
        self._owns_sessions = session_manager is None
        self.session_manager = session_manager or SessionManager(self.config)
        self.progress_tracker = progress_tracker or ProgressTracker()
        self.cancel_event = cancel_event or threading.Event()
        if bandwidth is None and self.config.bandwidth_limit:
            bandwidth = TokenBucket(self.config.bandwidth_limit)
        self.bandwidth = bandwidth
        self.claims = claims or PathClaims()
        self.archive = archive
        self._sleep = sleep
        self._resolved_directory: tuple[Path, Path] | None = None

    #: The naming template used when the config sets none (``{filename}``: the server's name).
    default_template: ClassVar[str] = "{filename}"
    #: Credential keys :meth:`authenticate` needs (the CLI asks for missing ones).
    required_credentials: ClassVar[tuple[str, ...]] = ()
    #: One line for ``ripstream sources``.
    description: ClassVar[str] = ""
    #: The URL shapes this source claims, for ``ripstream sources``.
    url_patterns: ClassVar[tuple[str, ...]] = ()

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
        return [DownloadTask.from_content(self.get_download_info(url))]

    def _download_content(
        self, content: DownloadableContent, file_path: Path, progress_callback: ProgressReporter
    ) -> TransferResult | None:
        """Fill ``file_path`` (the ``.part`` file) with the content's bytes: one attempt.

        The default streams ``content.url`` through the source's session with resume, range
        segments and throttling. Return ``None`` if you override it and write the file yourself.

        :raises DownloadError: a typed error; retryable ones are retried by :meth:`download`.
        """
        settings = self.settings
        expected = content.expected_checksum if settings.verify_checksums else None
        transfer = Transfer(
            self.session,
            settings,
            key=(content.source, content.content_id),
            progress=progress_callback,
            on_total=progress_callback.set_total,
            cancel=self.cancel_event,
            buckets=[b for b in (self.bandwidth, self._download_bucket(settings)) if b],
            checksum=expected,
            on_response=lambda response: self._on_response(content, response, progress_callback),
        )
        return transfer.run(content.url, file_path, dict(content.headers))

    def check_response(self, content: DownloadableContent, response: requests.Response) -> None:
        """Refuse a response whose body is not the content, before a byte of it is written.

        The default accepts everything the HTTP checks passed. Override it for services that
        answer errors with a 200 and a JSON or XML document instead of the media.

        :raises DownloadError: a typed error (retryable or not) describing the refusal.
        """

    def _on_response(
        self, content: DownloadableContent, response: requests.Response, reporter: ProgressReporter
    ) -> None:
        self.check_response(content, response)
        reporter.on_response(response)

    # -- conveniences for sources ---

    @property
    def settings(self) -> DownloadBehaviorSettings:
        """This source's behaviour settings (defaults plus its overrides)."""
        return self.config.get_behavior_for_source(self.source_name)

    @property
    def session(self) -> DownloadSession:
        """This source's HTTP session."""
        return self.session_manager.get_session(self.source_name)

    def target_path(
        self, content: DownloadableContent, file_path: str | Path | None = None
    ) -> Path:
        """Where ``content`` will be written: ``file_path``, or the naming template's result.

        A relative path lands under ``download_directory``; nothing from a server or from
        metadata can leave it.

        :raises StorageError: when the path would leave the output folder.
        """
        directory = self._real_directory()
        if file_path is not None:
            path = Path(file_path)
            return path if path.is_absolute() else resolve_inside(directory, path, resolved=True)
        relative = render_template(self.naming_template, self.naming_values(content))
        return resolve_inside(directory, relative, resolved=True)

    def _real_directory(self) -> Path:
        """``download_directory`` through symlinks, resolved once per directory value."""
        directory = self.config.download_directory
        cached = self._resolved_directory
        if cached is None or cached[0] != directory:
            cached = self._resolved_directory = (directory, Path(os.path.realpath(directory)))
        return cached[1]

    @property
    def naming_template(self) -> str:
        """The config's filename template, or this source's default."""
        return self.config.filename_template or self.default_template

    def naming_values(self, content: DownloadableContent) -> dict[str, Any]:
        """The values a naming template can use for ``content``."""
        name = content.filename or filename_from_url(content.url) or content.title
        extension = content.file_extension or (Path(name).suffix.lstrip(".") or None)
        if (
            content.filename is None
            and content.file_extension
            and not name.endswith(f".{content.file_extension}")
        ):
            name = f"{content.title}.{content.file_extension}"
        values: dict[str, Any] = {
            "filename": safe_filename(name),
            "title": content.title,
            "ext": extension or "bin",
            "artist": content.artist,
            "album": content.album,
            "albumartist": content.artist,
            "source": content.source,
            "id": content.content_id,
            "type": content.content_type.value,
        }
        values.update({k: v for k, v in content.metadata.items() if v is not None})
        return values

    # -- the lifecycle ---

    def download(
        self,
        content: DownloadableContent,
        file_path: str | Path | None = None,
        *,
        raise_on_error: bool = False,
    ) -> DownloadResult:
        """Download ``content`` to its final path; see the module docstring for the steps.

        :param raise_on_error: raise the typed error instead of returning a failed result.
        :raises DownloadError: only with ``raise_on_error``.
        """
        started = time.monotonic()
        result = DownloadResult(
            content_id=content.content_id,
            source=content.source,
            status=ResultStatus.FAILED,
            url=redact_url(content.url),
        )
        try:
            final = self.target_path(content, file_path)
            result.file_path = final
            self._run(
                content, final, result, renameable=file_path is None and content.filename is None
            )
        except DownloadError as exc:
            result.error = exc
            result.status = (
                ResultStatus.CANCELLED
                if isinstance(exc, DownloadCancelledError)
                else ResultStatus.FAILED
            )
            logger.warning("%s %s: %s", content.source, content.content_id, exc)
        finally:
            result.elapsed = time.monotonic() - started
        if raise_on_error:
            result.raise_for_error()
        return result

    def _run(
        self,
        content: DownloadableContent,
        final: Path,
        result: DownloadResult,
        *,
        renameable: bool = False,
    ) -> None:
        settings = self.settings
        if self.archive is not None and self.archive.contains(content.source, content.content_id):
            result.status = ResultStatus.SKIPPED
            result.message = "in the download archive"
            return
        if not self.claims.claim(final):
            raise TargetExistsError(
                f"another download in this run also writes {str(final)!r}",
                path=str(final),
                source=content.source,
            )
        try:
            if final.exists() or final.is_symlink():
                final = self._existing(content, final, settings, result)
                if result.status is ResultStatus.SKIPPED:
                    return
            result.file_path = final
            try:
                final.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise storage_error(exc, final.parent, url=result.url) from exc
            part = part_path(final)
            download_id = f"{content.source}:{content.content_id}"
            tracker = self.progress_tracker
            tracker.start(download_id, content.size, title=content.title)
            success = False
            try:
                reporter = ProgressReporter(tracker, download_id)
                outcome = self._fetch_verified(content, part, settings, result, reporter)
                if renameable and reporter.suggested_name:
                    named = self._renamed(content, final, reporter.suggested_name, settings, result)
                    if named is None:
                        self._discard(part)
                        success = True
                        return
                    final = named
                    result.file_path = final
                result.message = self.finalize(content, part, final)
                self._move_into_place(part, final, settings)
                if self.archive is not None:
                    self.archive.record(
                        content.source,
                        content.content_id,
                        final,
                        checksum=outcome.digest,
                        size=outcome.total,
                    )
                result.status = ResultStatus.COMPLETED
                result.bytes_downloaded = outcome.fetched
                result.total_bytes = outcome.total
                result.resumed_from = outcome.resumed_from
                result.checksum = outcome.digest
                success = True
            finally:
                tracker.finish(download_id, success=success)
        finally:
            self.claims.release(final)

    def finalize(self, content: DownloadableContent, part: Path, final: Path) -> str | None:
        """Last touches to the verified ``.part`` file before it moves to ``final``.

        The default writes tags (title, artist, album, track and disc numbers, the cover
        found beside the file) into tracks when ``config.write_tags`` is on and mutagen is
        installed (``pip install ripstream[tags]``). Tagging problems never lose the download.

        :returns: a note for the result's ``message`` (e.g. why tags were not written).
        """
        if not self.config.write_tags or content.content_type is not ContentType.TRACK:
            return None
        from ripstream.library.tags import tag_file

        return tag_file(part, final, self.naming_values(content))

    def _renamed(
        self,
        content: DownloadableContent,
        final: Path,
        name: str,
        settings: DownloadBehaviorSettings,
        result: DownloadResult,
    ) -> Path | None:
        """The final path under the server's Content-Disposition name; None if skipped."""
        if safe_filename(name) == final.name and self.naming_template == "{filename}":
            return final
        from dataclasses import replace

        target = self.target_path(replace(content, filename=name))
        if target == final:
            return final
        if not self.claims.claim(target):
            raise TargetExistsError(
                f"another download in this run also writes {str(target)!r}",
                path=str(target),
                source=content.source,
            )
        self.claims.release(final)
        if target.exists() or target.is_symlink():
            target = self._existing(content, target, settings, result)
            if result.status is ResultStatus.SKIPPED:
                result.file_path = target
                return None
        return target

    def _existing(
        self,
        content: DownloadableContent,
        final: Path,
        settings: DownloadBehaviorSettings,
        result: DownloadResult,
    ) -> Path:
        policy = settings.overwrite
        if policy is OverwritePolicy.OVERWRITE:
            return final
        if policy is OverwritePolicy.RENAME:
            renamed = unique_path(final, self.claims.snapshot())
            if not self.claims.claim(renamed):
                raise TargetExistsError(f"{str(renamed)!r} is taken", path=str(renamed))
            self.claims.release(final)
            return renamed
        if policy is OverwritePolicy.SKIP:
            expected = content.expected_checksum if settings.verify_checksums else None
            if expected is None or _file_digest(final, expected) == expected.hexdigest:
                result.status = ResultStatus.SKIPPED
                result.message = "already exists"
                result.total_bytes = final.stat().st_size
                return final
            raise TargetExistsError(
                f"{str(final)!r} exists with different content; keep it, or choose overwrite "
                "or rename",
                path=str(final),
                source=content.source,
            )
        raise TargetExistsError(
            f"{str(final)!r} already exists", path=str(final), source=content.source
        )

    def _fetch_verified(
        self,
        content: DownloadableContent,
        part: Path,
        settings: DownloadBehaviorSettings,
        result: DownloadResult,
        reporter: ProgressReporter,
    ) -> TransferResult:
        expected = content.expected_checksum if settings.verify_checksums else None
        refetched = False

        def attempt() -> TransferResult:
            nonlocal refetched
            if self.cancel_event.is_set():
                raise DownloadCancelledError("download cancelled", source=content.source)
            result.attempts += 1
            outcome = self._download_content(content, part, reporter)
            if outcome is None:
                outcome = _outcome_from_disk(part, expected)
            if content.size is not None and outcome.total != content.size:
                self._discard(part)
                raise IncompleteBodyError(
                    f"{content.title!r}: got {outcome.total} bytes, the source said {content.size}",
                    url=result.url,
                    source=content.source,
                    expected=content.size,
                    received=outcome.total,
                )
            if expected is not None:
                actual = outcome.digest or _file_digest(part, expected)
                if actual != expected.hexdigest:
                    self._discard(part)
                    reporter(-outcome.total)
                    if refetched:
                        raise ChecksumError(
                            f"{content.title!r}: {expected.algorithm} is {actual}, expected "
                            f"{expected.hexdigest} (still wrong after a full refetch)",
                            url=result.url,
                            source=content.source,
                            algorithm=expected.algorithm,
                            expected=expected.hexdigest,
                            actual=actual,
                        )
                    refetched = True
                    logger.warning(
                        "%s: checksum mismatch; fetching the whole file again", content.title
                    )
                    return attempt()
                outcome.digest = actual
            return outcome

        return call_with_retries(
            attempt,
            settings,
            sleep=self._cancellable_sleep,
            describe=f"{content.source} {content.title!r}",
        )

    def _cancellable_sleep(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif self.cancel_event.wait(seconds):
            raise DownloadCancelledError("download cancelled while waiting to retry")

    def _download_bucket(self, settings: DownloadBehaviorSettings) -> TokenBucket | None:
        return TokenBucket(settings.rate_limit) if settings.rate_limit else None

    def _discard(self, part: Path) -> None:
        for path in (part, sidecar_path(part)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _move_into_place(self, part: Path, final: Path, settings: DownloadBehaviorSettings) -> None:
        try:
            if settings.fsync:
                with open(part, "rb") as handle:
                    os.fsync(handle.fileno())
            if settings.overwrite is OverwritePolicy.OVERWRITE:
                os.replace(part, final)
            else:
                rename_no_clobber(part, final)
            with contextlib.suppress(FileNotFoundError):
                sidecar_path(part).unlink()
            if settings.fsync:
                _fsync_directory(final.parent)
        except FileExistsError as exc:
            raise TargetExistsError(
                f"{str(final)!r} appeared while downloading; the new file is kept as {str(part)!r}",
                path=str(final),
            ) from exc
        except OSError as exc:
            raise storage_error(exc, final) from exc

    # -- many at once ---

    def download_many(
        self, contents: Iterable[DownloadableContent], *, raise_on_error: bool = False
    ) -> list[DownloadResult]:
        """Download several contents through a thread pool of ``max_concurrent_downloads``.

        :returns: one result per content, in the order given.
        """
        items = list(contents)
        with ThreadPoolExecutor(
            self.config.max_concurrent_downloads, thread_name_prefix=f"ripstream-{self.source_name}"
        ) as pool:
            try:
                results = list(pool.map(self.download, items))
            except BaseException:
                self.cancel_event.set()
                raise
        if raise_on_error:
            for result in results:
                result.raise_for_error()
        return results

    # -- resources ---

    def close(self) -> None:
        """Close the sessions this downloader created."""
        if self._owns_sessions:
            self.session_manager.close()


def _file_digest(path: Path, checksum: Checksum) -> str:
    hasher = checksum.new_hasher()
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            hasher.update(block)
    return str(hasher.hexdigest())


def _outcome_from_disk(part: Path, expected: Checksum | None) -> TransferResult:
    try:
        size = part.stat().st_size
    except FileNotFoundError as exc:
        raise StorageError(f"the download wrote no file at {str(part)!r}", path=str(part)) from exc
    digest = _file_digest(part, expected) if expected is not None else None
    return TransferResult(total=size, resumed_from=0, fetched=size, digest=digest)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
