"""A thread-safe token bucket, shared by request-rate limits and bandwidth throttling.

Callers *reserve* tokens in arrival order and then sleep outside the lock until their
reservation is due (the GCRA / virtual-scheduling idea), so threads sharing one bucket get
the rate in fair turns and nobody spins. Clock and sleep are injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["BURST_SECONDS", "Throttle", "TokenBucket"]

#: the default burst, in seconds of rate: small, so a limit holds from the first second
BURST_SECONDS = 0.01

Clock = Callable[[], float]
Sleep = Callable[[float], object]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up. Thread-safe.

    Example::

        bucket = TokenBucket(rate=10 * 1024 * 1024)   # 10 MiB/s
        bucket.acquire(len(chunk))                      # blocks until the chunk may go

    :param rate: tokens added per second (bytes/s for bandwidth, requests/s for APIs).
    :param burst: most tokens that can accumulate; defaults to :data:`BURST_SECONDS` of
        ``rate`` (10 ms), so the average over any second stays within 2% of the rate.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep | None = None,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate * BURST_SECONDS)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    def reserve(self, amount: float) -> float:
        """Take ``amount`` tokens now (possibly going into debt) and return the wait in seconds."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= amount
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def refund(self, amount: float) -> None:
        """Give back tokens reserved but not used (a read returned fewer bytes): the wait
        for them was already paid, so the next reservation may use them."""
        with self._lock:
            self._tokens += amount

    def acquire(
        self, amount: float, sleep: Sleep | None = None, *, cancel: threading.Event | None = None
    ) -> float:
        """Reserve ``amount`` tokens and sleep until they are due; returns the time slept.

        :param sleep: overrides the bucket's sleep for this call.
        :param cancel: when the bucket has no injected sleep, wait on this event instead of
            sleeping, so a cancelled download stops waiting at once.
        """
        delay = self.reserve(amount)
        if delay > 0:
            if sleep is not None:
                sleep(delay)
            elif self._sleep is not None:
                self._sleep(delay)
            elif cancel is not None:
                cancel.wait(delay)
            else:
                time.sleep(delay)
        return delay


class Throttle(Protocol):
    """What a transfer waits on for each chunk: a :class:`TokenBucket`, or anything shaped
    like one (the schedule's live bandwidth)."""

    @property
    def rate(self) -> float | None:
        """The limit now, in units per second (``None``: unlimited)."""

    def refund(self, amount: float) -> None:
        """Give back ``amount`` reserved but not used."""

    def acquire(
        self, amount: float, sleep: Sleep | None = None, *, cancel: threading.Event | None = None
    ) -> float:
        """Wait until ``amount`` may go; returns the seconds waited."""
