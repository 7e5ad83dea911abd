"""Simulated time for tests: sleeping advances the clock instead of waiting."""

from __future__ import annotations

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
