"""Run statistics: counts, bytes and speed, in all, per source and per host.

:class:`StatsCollector` is an event sink (see :mod:`ripstream.downloader.events`); every
manager has one, and :meth:`DownloadManager.stats() <ripstream.downloader.manager.
DownloadManager.stats>` returns its :class:`RunStats` snapshot. It counts in the process that
runs the manager, so the numbers cover the whole run whatever executes the downloads.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ripstream.downloader.events import EventKind, RunEvent
from ripstream.downloader.hosts import host_of

__all__ = ["Counts", "RunStats", "StatsCollector"]


@dataclass(frozen=True, slots=True)
class Counts:
    """Downloads by state, bytes done and the current speed (bytes/s)."""

    active: int = 0
    waiting: int = 0
    completed: int = 0
    failed: int = 0
    skipped: int = 0
    bytes_done: int = 0
    speed: float = 0.0


@dataclass(frozen=True, slots=True)
class RunStats(Counts):
    """A snapshot of a run: the :class:`Counts` in all, and the same per source and per host.

    Example::

        stats = manager.stats()
        print(f"{stats.completed} done, {stats.active} running at {stats.speed:.0f} B/s")
        stats.by_host["example.com"].waiting
    """

    by_source: Mapping[str, Counts] = field(default_factory=dict)
    by_host: Mapping[str, Counts] = field(default_factory=dict)


_WAITING, _ACTIVE = "waiting", "active"
_FINAL = {
    EventKind.COMPLETED: "completed",
    EventKind.FAILED: "failed",
    EventKind.SKIPPED: "skipped",
    EventKind.CANCELLED: "failed",
}


@dataclass(slots=True)
class _Task:
    source: str
    host: str
    state: str = _WAITING
    bytes: int = 0
    speed: float = 0.0
    stamp: float | None = None


def _sum(tasks: Iterable[_Task]) -> Counts:
    states = {"active": 0, "waiting": 0, "completed": 0, "failed": 0, "skipped": 0}
    done, speed = 0, 0.0
    for task in tasks:
        states[task.state] += 1
        done += task.bytes
        speed += task.speed if task.state == _ACTIVE else 0.0
    return Counts(bytes_done=done, speed=speed, **states)


class StatsCollector:
    """Keeps the state of every task of a run from its events. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, _Task] = {}

    def __call__(self, event: RunEvent) -> None:
        if event.task_id is None:
            return
        with self._lock:
            task = self._tasks.get(event.task_id)
            if task is None:
                task = self._tasks[event.task_id] = _Task(
                    event.source or "", host_of(event.url or "")
                )
            self._update(task, event)

    @staticmethod
    def _update(task: _Task, event: RunEvent) -> None:
        kind = event.event
        if kind is EventKind.STARTED:
            task.state, task.stamp = _ACTIVE, event.time
        elif kind is EventKind.PROGRESS and event.bytes is not None:
            if task.stamp is not None and event.time > task.stamp:
                task.speed = max(0.0, (event.bytes - task.bytes) / (event.time - task.stamp))
            task.bytes, task.stamp = event.bytes, event.time
        elif kind in _FINAL:
            task.state, task.speed = _FINAL[kind], 0.0
            task.bytes = event.bytes or task.bytes

    def snapshot(self) -> RunStats:
        """The counts now."""
        with self._lock:
            tasks = list(self._tasks.values())
        total = _sum(tasks)
        sources = sorted({t.source for t in tasks})
        hosts = sorted({t.host for t in tasks})
        return RunStats(
            active=total.active,
            waiting=total.waiting,
            completed=total.completed,
            failed=total.failed,
            skipped=total.skipped,
            bytes_done=total.bytes_done,
            speed=total.speed,
            by_source={s: _sum(t for t in tasks if t.source == s) for s in sources},
            by_host={h: _sum(t for t in tasks if t.host == h) for h in hosts},
        )
