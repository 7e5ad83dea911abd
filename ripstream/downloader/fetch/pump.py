"""The hot loop: copy a response body to a writer, with throttling, a speed floor and cancel.

It reads straight into one reusable buffer (:class:`~ripstream.downloader.wire.BodyReader`),
writes it with one syscall, and does nothing else per chunk but an event check, a counter
update and, only when asked for, a throttle reservation. Digests are the engine's: it hashes
the file that is moved into place, not the stream.
"""

from __future__ import annotations

import http.client
import shutil
import threading
from collections.abc import Callable, Sequence

import requests
import urllib3

from ripstream.downloader.exceptions import (
    DownloadCancelledError,
    StallError,
    StorageError,
    TooLargeError,
)
from ripstream.downloader.fetch.job import FetchJob
from ripstream.downloader.files import storage_error
from ripstream.downloader.httperrors import map_request_error
from ripstream.downloader.ratelimit import Throttle
from ripstream.downloader.wire import BodyReader

__all__ = ["Writer", "pump"]

#: ``write(view, absolute_position)``
Writer = Callable[[memoryview | bytes, int], object]

_MIN_READ = 16 * 1024
_SPACE_STEP = 64 * 1024 * 1024
_SPACE_RESERVE = 256 * 1024 * 1024
_FIRST_READ = 256 * 1024
_WIRE_ERRORS = (
    OSError,
    http.client.HTTPException,
    urllib3.exceptions.HTTPError,
    requests.RequestException,
    ValueError,
)


class _SpeedFloor:
    """Raises :class:`StallError` when a window's average falls under ``min_speed``.

    Time spent waiting on our own throttle does not count against the server.
    """

    __slots__ = ("bytes", "floor", "job", "start", "throttled", "window")

    def __init__(self, job: FetchJob, now: float) -> None:
        self.job = job
        self.floor = job.settings.min_speed
        self.window = job.settings.min_speed_window
        self.start, self.bytes, self.throttled = now, 0, 0.0

    def add(self, now: float, count: int, throttled: float) -> None:
        if self.floor is None:
            return
        self.bytes += count
        self.throttled += throttled
        span = now - self.start - self.throttled
        if span < self.window:
            return
        if self.bytes / span < self.floor:
            raise StallError(
                f"{self.job.shown_url} slowed to {self.bytes / span:.0f} B/s, "
                f"under the floor of {self.floor:.0f} B/s",
                url=self.job.shown_url,
                source=self.job.source,
            )
        self.start, self.bytes, self.throttled = now, 0, 0.0


def pump(
    job: FetchJob,
    response: requests.Response,
    expected: int | None,
    write: Writer,
    position: int,
    *,
    tick: Callable[[float, int], None] | None = None,
) -> int:
    """Copy the body into ``write`` until ``expected`` bytes or EOF; returns bytes written.

    :param position: the file offset of the first byte (handed to ``write``).
    :param tick: called as ``(now, received)`` after each chunk (checkpoints).
    :raises DownloadError: typed: a stall, a broken connection, a full disk, a cancel.
    """
    reader = BodyReader(response, job.settings.chunk_size, max_ratio=job.settings.max_decoded_ratio)
    limits = _Limits(job, unknown_length=expected is None)
    size = min(_FIRST_READ, reader.capacity)
    received = 0
    clock, cancel, buckets, reporter = job.clock, job.cancel, job.buckets, job.reporter
    floor = _SpeedFloor(job, clock())
    try:
        while expected is None or received < expected:
            if cancel.is_set():
                raise DownloadCancelledError(
                    "download cancelled", url=job.shown_url, source=job.source
                )
            want = size if expected is None else min(size, expected - received)
            want, throttled = _reserve(buckets, want, cancel)
            started = clock()
            chunk = reader.read(want)
            count = len(chunk)
            for bucket in buckets if count < want else ():
                bucket.refund(want - count)
            if not count:
                break
            try:
                write(chunk, position + received)
            except OSError as exc:
                raise storage_error(exc, job.part, url=job.shown_url) from exc
            received += count
            limits.wrote(position + received, count)
            reporter(count)
            now = clock()
            if tick is not None:
                tick(now, received)
            size = _adapt(size, now - started, reader.capacity)
            floor.add(now, count, throttled)
    except _WIRE_ERRORS as exc:
        raise map_request_error(exc, job.url, job.source) from exc
    reader.release_if_complete()
    return received


class _Limits:
    """What may be written: no more than ``max_filesize``, and, for a body of unknown length
    (it may never end), not past the point where the disk is nearly full (checked every
    ``_SPACE_STEP`` bytes against ``_SPACE_RESERVE``)."""

    __slots__ = ("job", "limit", "until")

    def __init__(self, job: FetchJob, *, unknown_length: bool) -> None:
        self.job = job
        self.limit = job.settings.max_filesize
        self.until = _SPACE_STEP if unknown_length else None

    def wrote(self, end: int, count: int) -> None:
        """``count`` more bytes were written, up to file offset ``end``."""
        if self.limit is not None and end > self.limit:
            raise TooLargeError(
                f"{self.job.shown_url} sent more than the {self.limit} bytes --max-filesize allows",
                url=self.job.shown_url,
                source=self.job.source,
                limit=self.limit,
            )
        if self.until is None:
            return
        self.until -= count
        if self.until <= 0:
            self.until = _SPACE_STEP
            self._check_space()

    def _check_space(self) -> None:
        try:
            free = shutil.disk_usage(self.job.part.parent).free
        except OSError:
            return
        if free < _SPACE_RESERVE:
            raise StorageError(
                f"stopped {self.job.shown_url}: its body has no declared end and the disk "
                f"is nearly full ({free} bytes left)",
                path=str(self.job.part),
                url=self.job.shown_url,
            )


def _reserve(buckets: Sequence[Throttle], want: int, cancel: threading.Event) -> tuple[int, float]:
    """Reserve before reading, a slice at a time, so a limit holds from the first second;
    returns the read size and the time spent waiting on our own throttle."""
    if not buckets:
        return want, 0.0
    want = _throttled_read(buckets, want)
    return want, sum(bucket.acquire(want, cancel=cancel) for bucket in buckets)


def _throttled_read(buckets: Sequence[Throttle], want: int) -> int:
    """The largest read under a throttle: 1/100 s of the slowest rate (at least 1 KiB)."""
    rates = [bucket.rate for bucket in buckets if bucket.rate]
    return min(want, max(1024, int(min(rates) / 100))) if rates else want


def _adapt(size: int, elapsed: float, capacity: int) -> int:
    """Big reads when data flows, small ones when it trickles."""
    if elapsed < 0.05 and size < capacity:
        return min(capacity, size * 2)
    if elapsed > 0.5 and size > _MIN_READ:
        return max(_MIN_READ, size // 2)
    return size
