"""Simulated time for tests: sleeping advances the clock instead of waiting."""

from __future__ import annotations

import datetime
import threading


class FakeClock:
    """A monotonic clock that only moves when something sleeps on it or a test advances it.

    Pass the object itself (or ``.clock``) as ``clock=`` and ``.sleep`` as ``sleep=``.
    Thread-safe, so several download threads may share it.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def clock(self) -> float:
        """The current simulated time."""
        return self()

    def sleep(self, seconds: float) -> None:
        """Record the sleep and move the clock forward by it."""
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        """Move the clock forward without recording a sleep."""
        with self._lock:
            self.now += seconds

    @property
    def slept(self) -> float:
        """Total simulated seconds slept."""
        with self._lock:
            return sum(self.sleeps)


class Timeline:
    """One simulated time for a run: monotonic seconds and the wall clock move together.

    ``sleep`` advances time by itself when ``auto`` (throttles, retries); otherwise it
    blocks until the test calls :meth:`advance` past its end, so a test decides when a
    cool-down or a retry wait is over.
    """

    def __init__(self, wall: datetime.datetime, *, auto: bool = True) -> None:
        self.start_wall = wall
        self.now = 1000.0
        self.auto = auto
        self._cond = threading.Condition()

    def clock(self) -> float:
        """Monotonic seconds."""
        with self._cond:
            return self.now

    def wall(self) -> datetime.datetime:
        """The wall clock."""
        with self._cond:
            return self.start_wall + datetime.timedelta(seconds=self.now - 1000.0)

    def sleep(self, seconds: float) -> None:
        """Advance (``auto``) or wait until the test has advanced past ``seconds``."""
        with self._cond:
            if self.auto:
                self.now += seconds
                return
            end = self.now + seconds
            assert self._cond.wait_for(lambda: self.now >= end, timeout=10), "nobody advanced"

    def advance(self, seconds: float) -> None:
        """Move time forward and wake sleepers."""
        with self._cond:
            self.now += seconds
            self._cond.notify_all()

    def set_wall(self, wall: datetime.datetime) -> None:
        """Jump forward to ``wall``."""
        self.advance((wall - self.wall()).total_seconds())
