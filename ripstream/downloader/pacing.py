"""The manager's pacing: whether a task may start now, and holding transfers when it may not.

A :class:`Pacer` answers the manager's loop: the run is paused (by hand or because a window
closed), the schedule is closed (before ``start_at``, outside every window), or a task's own
``not_before`` is still ahead. When a window closes with ``window_end=pause``, or on
:meth:`Pacer.pause`, running transfers are held at their next buffer by the run's
:class:`~ripstream.downloader.schedule.LiveBandwidth` (their ``.part`` files stay) and go on
when the run resumes. Transfers on worker processes or a dask cluster are held the same way:
the run's :class:`~ripstream.downloader.isolation.Isolation` :meth:`Pacer.follow` s the
holds and sends them down its channel, so the decision is made once, on this clock.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ripstream.downloader.events import EventKind, RunMonitor
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.schedule import LiveBandwidth, Schedule, WindowEnd

__all__ = ["Pacer"]


class Pacer:
    """Start decisions and holds for one manager. Thread-safe to :meth:`pause` and
    :meth:`resume` from any thread; the rest is the manager's loop.

    :param schedule: windows, start time (its rates belong to the bandwidth).
    :param now: the wall clock.
    :param bandwidth: holds running transfers; ``None`` only stops new starts.
    :param monitor: told of paused and resumed downloads.
    """

    def __init__(
        self,
        schedule: Schedule | None,
        *,
        now: Callable[[], dt.datetime],
        bandwidth: LiveBandwidth | None,
        monitor: RunMonitor,
    ) -> None:
        self.schedule = schedule or Schedule()
        self.now = now
        self.bandwidth = bandwidth
        self.monitor = monitor
        self._manual = threading.Event()
        self._held_by: str | None = None  # why running transfers are held now
        self._later: list[DownloadTask] = []
        self._lock = threading.Lock()
        self._followers: list[Callable[[bool], None]] = []
        self._limits: list[Callable[[float | None], None]] = []
        self._rate: float | None = None  # the limit the followers were last told

    @property
    def paused(self) -> bool:
        """Whether :meth:`pause` holds the run."""
        return self._manual.is_set()

    def pause(self) -> None:
        """Start nothing new and hold running transfers."""
        self._manual.set()
        if self.bandwidth is not None:
            self.bandwidth.pause()

    def resume(self) -> None:
        """Undo :meth:`pause` (a closed window still holds what it holds)."""
        self._manual.clear()

    def follow(self, hold: Callable[[bool], None]) -> Callable[[], None]:
        """Call ``hold(True)`` whenever running transfers are to be held and
        ``hold(False)`` when they may go on (now too, with the current state); returns
        what stops the calls. The calls come from the manager's loop (:meth:`watch`), never
        from the thread that pauses (a progress callback on a dask client's event loop)."""
        with self._lock:
            self._followers.append(hold)
        hold(self._held_by is not None)

        return functools.partial(self._unfollow, self._followers, hold)

    def follow_rate(self, limit: Callable[[float | None], None]) -> Callable[[], None]:
        """Call ``limit(rate)`` with the run's bandwidth limit (``None``: unlimited) now and
        whenever the timetable switches it; returns what stops the calls. The switches are
        seen by the manager's loop (:meth:`watch`), on this pacer's clock; nothing is told
        without a :class:`~ripstream.downloader.schedule.LiveBandwidth`."""
        if self.bandwidth is None:
            return lambda: None
        rate = self.bandwidth.rate
        with self._lock:
            self._limits.append(limit)
            self._rate = rate
        limit(rate)
        return functools.partial(self._unfollow, self._limits, limit)

    def _unfollow(self, followers: list[Any], follower: Any) -> None:
        with self._lock:
            if follower in followers:
                followers.remove(follower)

    def _tell_rate(self) -> None:
        if self.bandwidth is None:
            return
        rate = self.bandwidth.rate  # reads the timetable at this moment
        with self._lock:
            if rate == self._rate:
                return
            self._rate = rate
            limits = list(self._limits)
        for limit in limits:
            limit(rate)

    def _tell(self, held: bool) -> None:
        with self._lock:
            followers = list(self._followers)
        for hold in followers:
            hold(held)

    def may_start(self) -> bool:
        """Whether a new download may start now."""
        return not self._manual.is_set() and self.schedule.is_open(self.now())

    def next_due(self, take: Callable[[], DownloadTask | None]) -> DownloadTask | None:
        """A task whose ``not_before`` has passed: a held one, else one from ``take()``
        (tasks not yet due are held here, in order)."""
        stamp = self.now().timestamp()
        for index, held in enumerate(self._later):
            if held.not_before is None or held.not_before <= stamp:
                return self._later.pop(index)
        while (task := take()) is not None:
            if task.not_before is None or task.not_before <= stamp:
                return task
            self._later.append(task)
        return None

    @property
    def holding(self) -> bool:
        """Whether tasks wait here for their ``not_before``."""
        return bool(self._later)

    def held_tasks(self) -> list[DownloadTask]:
        """The tasks held for their ``not_before`` (they are RUNNING in the queue)."""
        return list(self._later)

    def drop_held(self) -> list[DownloadTask]:
        """Forget the held tasks (the run stops); returns them."""
        held, self._later = self._later, []
        return held

    def watch(self, running: Sequence[DownloadTask]) -> None:
        """Hold or release running transfers as the pause switch and the windows say; tell
        :meth:`follow_rate` ers when the timetable has switched the limit."""
        self._tell_rate()
        reason = None
        if self._manual.is_set():
            reason = "manual"
        elif self.schedule.window_end is WindowEnd.PAUSE and not self.schedule.in_window(
            self.now()
        ):
            reason = "window"
        if reason == self._held_by:
            return
        if reason is None:
            if self.bandwidth is not None:
                self.bandwidth.resume()
            self._tell(False)
            self.monitor.held(EventKind.RESUMED, running, self._held_by or "manual")
        else:
            if self.bandwidth is not None:
                self.bandwidth.pause()
            self._tell(True)
            if self._held_by is None:
                self.monitor.held(EventKind.PAUSED, running, reason)
        self._held_by = reason
