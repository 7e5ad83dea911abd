"""What an engine works with: its services (given once), the source protocol, post-processors,
and the progress reporter a fetch reports through."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import requests

from ripstream.downloader.config import DownloadBehaviorSettings, DownloadConfig
from ripstream.downloader.content import DownloadableContent
from ripstream.downloader.events import RunMonitor
from ripstream.downloader.exceptions import DownloadError
from ripstream.downloader.executors import SegmentPool
from ripstream.downloader.fetch import CustomFetch, FetcherRegistry
from ripstream.downloader.files import filename_from_content_disposition
from ripstream.downloader.hosts import HostGate
from ripstream.downloader.placement import FinalName, PathClaims
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.ratelimit import Throttle
from ripstream.downloader.session import DownloadSession
from ripstream.downloader.state import TransferResult

__all__ = ["EngineServices", "PostProcessor", "ProgressReporter", "Source"]


class PostProcessor(Protocol):
    """A last touch to a verified file before it moves into place (tags, a transcode).

    Called with the content, the ``.part`` file (change it in place), the final path it will
    have, and the naming values. Returns a note for the result's ``message``, or ``None``.
    It must not raise for a problem that should not cost the download.
    """

    def __call__(
        self,
        content: DownloadableContent,
        part: Path,
        final: Path,
        values: Mapping[str, Any],
    ) -> str | None: ...


class Source(Protocol):
    """What the engine needs of a source (a :class:`BaseDownloader` is one)."""

    config: DownloadConfig

    @property
    def source_name(self) -> str: ...
    @property
    def settings(self) -> DownloadBehaviorSettings: ...
    @property
    def session(self) -> DownloadSession: ...
    @property
    def naming_template(self) -> str: ...
    @property
    def custom_fetch(self) -> CustomFetch | None: ...
    def naming_values(self, content: DownloadableContent) -> dict[str, Any]: ...
    def request_url(self, content: DownloadableContent) -> str: ...
    def check_response(self, content: DownloadableContent, response: requests.Response) -> None: ...
    def final_name(
        self, content: DownloadableContent, part: Path, path: Path
    ) -> FinalName | None: ...
    def placed(self, content: DownloadableContent, path: Path) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineServices:
    """Everything an engine works with, given once. Frozen; the parts are thread-safe.

    :param cancel: setting it stops every download at its next buffer (``.part`` kept).
    :param claims: final paths being written in this run.
    :param tracker: where progress goes.
    :param bandwidth: the run-wide rate limit, shared by every download.
    :param post_processors: run in order on each verified file (tags, ...).
    :param fetchers: how bytes arrive, chosen per content.
    :param segment_pool: where segment workers run; ``None`` keeps them on the download's
        thread.
    :param sleep: waits between retries; by default a wait on ``cancel`` (so a stop is
        immediate). Tests pass a fake.
    :param clock: monotonic seconds, for throttling, checkpoints and timings.
    :param hosts: the per-host connection limit and cool-downs, shared by every download.
    :param monitor: told of retries (events, stats, metrics).
    """

    cancel: threading.Event = field(default_factory=threading.Event)
    claims: PathClaims = field(default_factory=PathClaims)
    tracker: ProgressTracker = field(default_factory=ProgressTracker)
    bandwidth: Throttle | None = None
    post_processors: tuple[PostProcessor, ...] = ()
    fetchers: FetcherRegistry = field(default_factory=FetcherRegistry.default)
    segment_pool: SegmentPool | None = None
    sleep: Callable[[float], Any] | None = None
    clock: Callable[[], float] = time.monotonic
    hosts: HostGate | None = None
    monitor: RunMonitor | None = None


class ProgressReporter:
    """What a fetch reports through: byte counts, the total, and the first response.

    Thread-safe (the tracker is). Call it with a byte count (``progress_callback(len(chunk))``)
    and call :meth:`set_total` once the size is known.
    """

    def __init__(
        self,
        tracker: ProgressTracker,
        download_id: str,
        *,
        check: Callable[[requests.Response], None] = lambda response: None,
        default_fetch: Callable[[DownloadableContent, Path], TransferResult] | None = None,
    ) -> None:
        self.tracker = tracker
        self.download_id = download_id
        self._check = check
        self._default_fetch = default_fetch
        self._disposition: str | None = None

    def __call__(self, delta: int) -> None:
        self.tracker.update(self.download_id, delta)

    def set_total(self, total: int | None, already: int = 0) -> None:
        """Record the total size and the bytes already on disk."""
        self.tracker.set_total(self.download_id, total, already=already)

    def accept(self, response: requests.Response) -> None:
        """Let the source refuse the response, then keep its ``Content-Disposition``."""
        self._check(response)
        self._disposition = response.headers.get("Content-Disposition") or self._disposition

    @property
    def suggested_name(self) -> str | None:
        """The file name the server's ``Content-Disposition`` suggests, if any."""
        return filename_from_content_disposition(self._disposition)

    def fetch_default(self, content: DownloadableContent, part: Path) -> TransferResult:
        """The standard fetch (stream, segments...) of ``content`` into ``part``: what a
        ``_download_content`` override gets from ``super()``."""
        if self._default_fetch is None:
            raise DownloadError("no default fetch is available outside a download")
        return self._default_fetch(content, part)
