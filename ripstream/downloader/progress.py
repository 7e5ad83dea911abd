"""Progress: DownloadProgress snapshots, the thread-safe ProgressTracker, and a tqdm adapter.

The hot path (:meth:`ProgressTracker.update`, called once per buffer) only adds to a counter
under a lock; snapshots are built and callbacks run at most every ``min_interval`` seconds per
download, and always on start and finish, so progress costs nothing measurable per chunk.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "DownloadProgress",
    "ProgressCallback",
    "ProgressState",
    "ProgressTracker",
    "format_bytes",
    "printable",
]

logger = logging.getLogger(__name__)

#: What a server or metadata must never write raw to a terminal: C0 controls (ESC starts
#: colour, cursor and title sequences; CR and LF forge lines), DEL, C1 controls (CSI is one
#: byte there) and the bidi overrides and isolates that reorder what a line seems to say.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` safe to write to a terminal: control characters and bidi overrides shown
    escaped (``"\\x1b[31m"`` for ESC ``[31m``)."""
    return _UNPRINTABLE.sub(_escape, text)


def format_bytes(count: float, suffix: str = "B") -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    value = float(count)
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(value) < 1024 or unit == "Ti":
            return f"{value:.0f} {unit}{suffix}" if unit == "" else f"{value:.1f} {unit}{suffix}"
        value /= 1024
    raise AssertionError("unreachable")


class ProgressState(enum.Enum):
    """Where a download is in its life."""

    STARTED = "started"
    DOWNLOADING = "downloading"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """An immutable snapshot of one download's progress.

    Example::

        def on_progress(download_id: str, progress: DownloadProgress) -> None:
            print(f"{progress.percentage:.1f}% {progress.get_formatted_speed()}")
    """

    download_id: str
    downloaded_bytes: int
    total_bytes: int | None
    speed: float
    elapsed: float
    state: ProgressState = ProgressState.DOWNLOADING
    title: str = ""
    #: bytes that were already on disk (resumed): part of ``downloaded_bytes``, not of speed
    resumed_bytes: int = 0
    #: what the download is waiting for, e.g. ``retrying in 4 s (2/5): HTTP 503``
    note: str = ""

    @property
    def percentage(self) -> float:
        """0-100; 0 while the total is unknown, 100 for an empty file."""
        if self.total_bytes is None:
            return 100.0 if self.state is ProgressState.COMPLETED else 0.0
        if self.total_bytes == 0:
            return 100.0
        return min(100.0, 100.0 * self.downloaded_bytes / self.total_bytes)

    @property
    def eta(self) -> float | None:
        """Seconds left at the current speed, or ``None`` when unknown."""
        if self.total_bytes is None or self.speed <= 0:
            return None
        return max(0.0, (self.total_bytes - self.downloaded_bytes) / self.speed)

    @property
    def is_finished(self) -> bool:
        """True once completed or failed."""
        return self.state in (ProgressState.COMPLETED, ProgressState.FAILED)

    def get_formatted_speed(self) -> str:
        """The speed for humans, e.g. ``'12.3 MiB/s'``."""
        return format_bytes(self.speed, "B/s")


class ProgressCallback(Protocol):
    """Anything called as ``callback(download_id, progress)``."""

    # positional-only, so any two-argument function fits, whatever it names its parameters
    def __call__(self, download_id: str, progress: DownloadProgress, /) -> None: ...


@dataclass(slots=True)
class _Entry:
    title: str
    total: int | None
    started: float
    done: int = 0
    resumed: int = 0
    note: str = ""
    last_emit: float = 0.0
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))


class ProgressTracker:
    """Tracks many downloads at once and fans snapshots out to callbacks. Thread-safe.

    Callbacks run on the downloading thread, outside the tracker's lock; an exception from a
    callback is logged and does not stop the download.

    Example::

        tracker = ProgressTracker()
        tracker.add_callback(lambda download_id, p: print(download_id, p.percentage))

    :param min_interval: seconds between two snapshots of one download (start/finish always).
    :param window: seconds of history used for the speed.
    """

    def __init__(
        self,
        *,
        min_interval: float = 0.1,
        window: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = min_interval
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._last: dict[str, DownloadProgress] = {}
        self._callbacks: list[ProgressCallback] = []

    def add_callback(self, callback: ProgressCallback) -> None:
        """Call ``callback(download_id, progress)`` on every snapshot."""
        with self._lock:
            self._callbacks.append(callback)

    def remove_callback(self, callback: ProgressCallback) -> None:
        """Stop calling ``callback``; unknown callbacks are ignored."""
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

    def start(
        self, download_id: str, total: int | None = None, *, title: str = "", already: int = 0
    ) -> None:
        """Begin tracking; ``already`` counts bytes resumed from disk."""
        now = self._clock()
        with self._lock:
            entry = _Entry(
                title=title or download_id, total=total, started=now, done=already, resumed=already
            )
            entry.samples.append((now, already))
            self._entries[download_id] = entry
            snapshot = self._snapshot(download_id, entry, now, ProgressState.STARTED)
        self._emit(download_id, snapshot)

    def set_total(self, download_id: str, total: int | None, *, already: int | None = None) -> None:
        """Record the total once the server tells it (and the resumed byte count, if any)."""
        with self._lock:
            entry = self._entries.get(download_id)
            if entry is not None:
                entry.total = total
                if already is not None:
                    entry.done = entry.resumed = already
                    entry.samples.clear()
                    entry.samples.append((self._clock(), already))

    def update(self, download_id: str, delta: int) -> None:
        """Count ``delta`` more bytes (negative when a restart throws bytes away)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(download_id)
            if entry is None:
                return
            entry.done += delta
            if delta < 0:
                entry.samples.clear()
            elif entry.note:
                entry.note = ""  # bytes flow again: the retry is over
            if now - entry.last_emit < self.min_interval:
                return
            snapshot = self._snapshot(download_id, entry, now, ProgressState.DOWNLOADING)
        self._emit(download_id, snapshot)

    def note(self, download_id: str, text: str) -> None:
        """Tell the callbacks what ``download_id`` waits for (a retry), at once."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(download_id)
            if entry is None:
                return
            entry.note = text
            snapshot = self._snapshot(download_id, entry, now, ProgressState.DOWNLOADING)
        self._emit(download_id, snapshot)

    def finish(self, download_id: str, *, success: bool = True) -> DownloadProgress | None:
        """Emit the final snapshot and stop tracking."""
        now = self._clock()
        with self._lock:
            entry = self._entries.pop(download_id, None)
            if entry is None:
                return None
            if success and entry.total is None:
                entry.total = entry.done
            state = ProgressState.COMPLETED if success else ProgressState.FAILED
            snapshot = self._snapshot(download_id, entry, now, state)
        self._emit(download_id, snapshot)
        return snapshot

    def get_progress(self, download_id: str) -> DownloadProgress | None:
        """The latest snapshot of ``download_id``."""
        with self._lock:
            return self._last.get(download_id)

    @property
    def active(self) -> list[str]:
        """Ids being tracked now."""
        with self._lock:
            return list(self._entries)

    def _snapshot(
        self, download_id: str, entry: _Entry, now: float, state: ProgressState
    ) -> DownloadProgress:
        entry.last_emit = now
        entry.samples.append((now, entry.done))
        while len(entry.samples) > 2 and now - entry.samples[0][0] > self.window:
            entry.samples.popleft()
        first_time, first_done = entry.samples[0]
        span = now - first_time
        speed = (entry.done - first_done) / span if span > 0 else 0.0
        snapshot = DownloadProgress(
            download_id=download_id,
            downloaded_bytes=entry.done,
            total_bytes=entry.total,
            speed=max(0.0, speed),
            elapsed=now - entry.started,
            state=state,
            title=entry.title,
            resumed_bytes=entry.resumed,
            note=entry.note,
        )
        self._last[download_id] = snapshot
        if state in (ProgressState.COMPLETED, ProgressState.FAILED):
            self._last.pop(download_id, None)
        return snapshot

    def _emit(self, download_id: str, snapshot: DownloadProgress) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(download_id, snapshot)
            except Exception:  # a broken display must never break a download
                logger.exception("progress callback %r failed", callback)


def __getattr__(name: str) -> Any:
    # TqdmProgress lives in bars.py (which imports this module); kept importable from here
    if name == "TqdmProgress":
        from ripstream.downloader.bars import TqdmProgress

        return TqdmProgress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
