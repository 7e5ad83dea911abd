"""Run events: what happens to each download, as one small record per event, for sinks.

The manager and the engine report through one :class:`RunMonitor` per manager; it fans each
:class:`RunEvent` out to the sinks it was built with (any callable taking an event): the
manager's own statistics (:mod:`ripstream.downloader.stats`), a JSON-lines file
(:class:`JsonLinesSink`, the CLI's ``--events``), Prometheus metrics (``ripstream.app.
metrics``), a notebook's own function. Sinks run on the thread that saw the event (the
manager's, or a download's), so they must be thread-safe; one that raises is logged and the
run goes on.

The JSON form of an event (schema version :data:`SCHEMA_VERSION`)::

    {"version": 1, "event": "progress", "time": 1718000000.123, "task_id": "9f2c...",
     "url": "https://host/a.flac", "source": "http", "bytes": 1048576, "total": 4194304}

``event`` is one of :class:`EventKind`; ``time`` is Unix seconds; ``url`` is redacted; ``bytes``
is the bytes done so far (or in all, once finished). Some events carry more: ``retry`` has
``reason`` (the error's type), ``delay`` (seconds) and ``attempt``; ``failed`` has ``error``;
``completed``/``failed``/``skipped``/``cancelled`` have ``elapsed``; ``host_cooldown`` has
``host``, ``delay`` and ``until`` (Unix seconds), with no task; ``paused``/``resumed`` have
``reason`` (``manual`` or ``window``).
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any

from ripstream.downloader.content import DownloadResult, ResultStatus
from ripstream.downloader.progress import DownloadProgress
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.urls import redact_url

__all__ = [
    "SCHEMA_VERSION",
    "EventKind",
    "EventSink",
    "JsonLinesSink",
    "RunEvent",
    "RunMonitor",
    "download_id_of",
]

logger = logging.getLogger(__name__)

#: bumped when a field changes meaning or goes away (new fields may appear in any version)
SCHEMA_VERSION = 1


class EventKind(enum.Enum):
    """What happened."""

    QUEUED = "queued"
    STARTED = "started"
    PROGRESS = "progress"
    RETRY = "retry"
    PAUSED = "paused"
    RESUMED = "resumed"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    HOST_COOLDOWN = "host_cooldown"


_ENDINGS = {
    ResultStatus.COMPLETED: EventKind.COMPLETED,
    ResultStatus.SKIPPED: EventKind.SKIPPED,
    ResultStatus.CANCELLED: EventKind.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class RunEvent:
    """One event; see the module docstring for its JSON form."""

    event: EventKind
    time: float
    task_id: str | None = None
    url: str | None = None
    source: str | None = None
    bytes: int | None = None
    total: int | None = None
    reason: str | None = None
    delay: float | None = None
    attempt: int | None = None
    host: str | None = None
    until: float | None = None
    error: str | None = None
    elapsed: float | None = None
    version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """The JSON object: the common fields always, the others when they apply."""
        data: dict[str, Any] = {
            "version": self.version,
            "event": self.event.value,
            "time": round(self.time, 3),
            "task_id": self.task_id,
            "url": self.url,
            "source": self.source,
            "bytes": self.bytes,
        }
        for name in ("total", "reason", "delay", "attempt", "host", "until", "error", "elapsed"):
            value = getattr(self, name)
            if value is not None:
                data[name] = round(value, 3) if isinstance(value, float) else value
        return data

    def to_json(self) -> str:
        """One line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


#: anything that takes events
EventSink = Callable[[RunEvent], None]


class JsonLinesSink:
    """Writes each event as one JSON line and flushes it. Thread-safe.

    Example::

        with open("events.jsonl", "a") as handle:
            DownloadManager(config, events=[JsonLinesSink(handle)])
    """

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def __call__(self, event: RunEvent) -> None:
        line = event.to_json() + "\n"
        with self._lock:
            self.stream.write(line)
            self.stream.flush()


def download_id_of(task: DownloadTask) -> str:
    """The id the engine and the progress tracker know a task's download by."""
    return f"{task.source}:{task.content_id}"


@dataclass(slots=True)
class _Seen:
    task: DownloadTask
    last_progress: float = float("-inf")
    bytes: int = 0


@dataclass
class RunMonitor:
    """Turns what the manager, the engine, the tracker and the host gate see into events.
    Thread-safe.

    :param sinks: where events go.
    :param now: the wall clock for event times.
    :param clock: monotonic seconds, for the one-a-second progress limit.
    :param progress_interval: the least seconds between two progress events of a download.
    """

    sinks: Sequence[EventSink] = ()
    now: Callable[[], dt.datetime] = dt.datetime.now
    clock: Callable[[], float] = time.monotonic
    progress_interval: float = 1.0
    _seen: dict[str, _Seen] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def emit(self, event: RunEvent) -> None:
        """Hand ``event`` to every sink."""
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:  # a broken sink must not cost the downloads
                logger.exception("event sink %r failed on %s", sink, event.event.value)

    def _event(self, kind: EventKind, task: DownloadTask | None = None, **fields: Any) -> None:
        if task is not None:
            fields = {
                "task_id": task.task_id,
                "url": redact_url(task.url) or None,
                "source": task.source,
                **fields,
            }
        self.emit(RunEvent(kind, self.now().timestamp(), **fields))

    # -- from the manager (its own thread) ---

    def queued(self, task: DownloadTask) -> None:
        """``task`` is waiting to run."""
        self._event(EventKind.QUEUED, task, bytes=0)

    def started(self, task: DownloadTask) -> None:
        """``task`` was handed to the executor."""
        with self._lock:
            self._seen[download_id_of(task)] = _Seen(task)
        self._event(EventKind.STARTED, task, bytes=0)

    def held(self, kind: EventKind, tasks: Sequence[DownloadTask], reason: str) -> None:
        """``paused`` or ``resumed`` for each of ``tasks``."""
        for task in tasks:
            self._event(kind, task, bytes=self._bytes(task), reason=reason)

    def finished(self, task: DownloadTask, result: DownloadResult) -> None:
        """``task`` ended with ``result``."""
        with self._lock:
            self._seen.pop(download_id_of(task), None)
        kind = _ENDINGS.get(result.status, EventKind.FAILED)
        self._event(
            kind,
            task,
            bytes=result.bytes_downloaded,
            error=result.error_message if kind is EventKind.FAILED else None,
            elapsed=result.elapsed,
            attempt=result.attempts or None,
        )

    # -- from download threads ---

    def progress(self, download_id: str, progress: DownloadProgress) -> None:
        """A tracker callback: at most one event a second per download."""
        now = self.clock()
        with self._lock:
            seen = self._seen.get(download_id)
            if seen is None:
                return
            seen.bytes = progress.downloaded_bytes
            if now - seen.last_progress < self.progress_interval:
                return
            seen.last_progress = now
        self._event(
            EventKind.PROGRESS,
            seen.task,
            bytes=progress.downloaded_bytes,
            total=progress.total_bytes,
        )

    def retry(self, download_id: str, attempt: int, error: Exception, delay: float) -> None:
        """The engine will try ``download_id`` again after ``delay`` seconds."""
        with self._lock:
            seen = self._seen.get(download_id)
        fields: dict[str, Any] = {
            "reason": type(error).__name__,
            "delay": delay,
            "attempt": attempt,
        }
        if seen is None:
            source, _, _ = download_id.partition(":")
            self.emit(RunEvent(EventKind.RETRY, self.now().timestamp(), source=source, **fields))
            return
        self._event(EventKind.RETRY, seen.task, bytes=seen.bytes, **fields)

    def host_cooldown(self, host: str, seconds: float, _until: float) -> None:
        """A host asked us to slow down (the host gate's listener)."""
        wall = self.now().timestamp()
        self.emit(
            RunEvent(EventKind.HOST_COOLDOWN, wall, host=host, delay=seconds, until=wall + seconds)
        )

    def _bytes(self, task: DownloadTask) -> int:
        with self._lock:
            seen = self._seen.get(download_id_of(task))
            return seen.bytes if seen is not None else 0

    def with_sinks(self, *sinks: EventSink) -> RunMonitor:
        """A monitor that also feeds ``sinks``."""
        return replace(self, sinks=(*self.sinks, *sinks))
