"""What a fetcher is given: one :class:`FetchJob` per attempt, and the :class:`Fetcher` seam.

A fetcher moves the bytes of one content into its ``.part`` file; it knows nothing of final
paths, overwrite policies, checksums to compare or archives (that is the engine's work). The
engine builds a job for every attempt, so a fetcher keeps no state between attempts except
what it leaves on disk (the ``.part`` file and its resume sidecar).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.content import DownloadableContent
from ripstream.downloader.exceptions import DownloadCancelledError
from ripstream.downloader.hosts import HostGate
from ripstream.downloader.ratelimit import Throttle
from ripstream.downloader.session import DownloadSession
from ripstream.downloader.state import TransferResult
from ripstream.downloader.urls import redact_url

if TYPE_CHECKING:
    import requests

    from ripstream.downloader.executors import SegmentPool

__all__ = ["FetchJob", "FetchReporter", "Fetcher"]


class FetchReporter(Protocol):
    """What a fetcher reports through (the engine's :class:`ProgressReporter`)."""

    def __call__(self, delta: int) -> None:
        """Count ``delta`` new bytes (negative when a restart throws bytes away)."""

    def set_total(self, total: int | None, already: int = 0) -> None:
        """The total size once known, and the bytes already held on disk."""

    def accept(self, response: requests.Response) -> None:
        """Check the response that starts the body before a byte of it is written.

        :raises DownloadError: when the source refuses it (an error page served as a 200).
        """


@dataclass(slots=True)
class FetchJob:
    """One attempt at filling ``part`` with the bytes of ``content``. Not thread-safe to mutate.

    :param url: the URL to fetch (the source may have signed it just for this attempt).
    :param headers: request headers for this content (never logged).
    :param part: the ``.part`` file to fill.
    :param session: the source's session: its pool, headers, auth and rate limit.
    :param reporter: progress and the response check.
    :param buckets: bandwidth limits this download shares (run-wide and its own).
    :param pool: where segment workers run (owned by the manager); ``None`` runs segments
        on the calling thread only.
    """

    content: DownloadableContent
    url: str
    part: Path
    session: DownloadSession
    settings: DownloadBehaviorSettings
    reporter: FetchReporter
    headers: dict[str, str] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
    buckets: Sequence[Throttle] = ()
    pool: SegmentPool | None = None
    clock: Callable[[], float] = time.monotonic
    #: the run's per-host connection limit and cool-downs (``None``: no limit)
    hosts: HostGate | None = None
    #: the URL as it may be shown (in errors and logs)
    shown_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.shown_url = redact_url(self.url)

    @property
    def key(self) -> tuple[str, str]:
        """``(source, content_id)``: what the resume sidecar is keyed by."""
        return (self.content.source, self.content.content_id)

    @property
    def source(self) -> str:
        """The source name, for error fields."""
        return self.session.source

    def check_cancel(self) -> None:
        """:raises DownloadCancelledError: once the run was asked to stop."""
        if self.cancel.is_set():
            raise DownloadCancelledError(
                "download cancelled", url=self.shown_url, source=self.source
            )


class Fetcher(Protocol):
    """One way bytes arrive (yt-dlp's downloader classes): a stream, ranged segments, ...

    ``suitable`` decides from the content and settings; ``fetch`` is one attempt. A fetcher
    raises typed errors (``retryable`` ones are retried by the engine) and returns what it
    wrote; ``None`` means "look at the file" (the engine measures and hashes it).
    """

    name: str

    def suitable(self, content: DownloadableContent, settings: DownloadBehaviorSettings) -> bool:
        """Whether this fetcher should move ``content``'s bytes."""

    def fetch(self, job: FetchJob) -> TransferResult | None:
        """One attempt; see the class docstring."""
