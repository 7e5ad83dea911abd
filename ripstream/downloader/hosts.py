"""Polite hosts: one per-host limiter for a run, wherever its downloads run.

A :class:`HostGate` lets at most N connections reach one host at once (a download takes a
slot for each attempt; each segment helper takes one more for its own connection), and holds
a host that asked us to slow down: after a 429 or 503 with ``Retry-After`` (or 429 again and
again without it, with a doubling backoff) nothing new is sent to it until then, while other
hosts go on.

The gate is the policy; where it counts is its :class:`HostCounter`. One run has one count,
so the limit holds across every worker of the run and a host cooled down by one worker is
cooled down for all:

* threads: a :class:`LocalCounter` in this process (the default);
* worker processes (``--processes``): the driver's :class:`LocalCounter`, on the driver's
  clock, served to them over a local socket
  (:class:`~ripstream.downloader.hostserver.HostServer`);
* a dask cluster: distributed semaphores and variables in the scheduler
  (:class:`~ripstream.downloader.cluster.DaskHostGates`).

A worker never receives a live gate: it receives a :class:`HostGateFactory`, a small frozen
value that pickles and builds the gate once per worker process.

Example::

    gate = HostGate()
    with gate.slot("https://example.com/a", limit=4, cancel=cancel):
        ...  # one connection to example.com

    gates = LocalHostGates(limit=2)      # a factory: what a worker process is sent
    with gates.build().hold("music.example"):
        ...   # at most two of these run at once for that host
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from ripstream.downloader.exceptions import (
    DownloadCancelledError,
    DownloadError,
    ServerError,
)

__all__ = [
    "DEFAULT_LIMIT",
    "HostCounter",
    "HostGate",
    "HostGateFactory",
    "LocalCounter",
    "LocalHostGates",
    "host_key",
    "host_of",
]

logger = logging.getLogger(__name__)

#: ``(host, seconds from now, until on the counter's clock)``
CooldownListener = Callable[[str, float, float], None]
#: connections per host when nothing says otherwise (``max_per_host``'s default)
DEFAULT_LIMIT = 4
_COOLING_STATUSES = (429, 503)
_BACKOFF_CAP = 300.0


@functools.lru_cache(maxsize=4096)
def host_of(url: str) -> str:
    """The host a URL talks to (without the port: one machine, one politeness budget).
    Remembered: asked several times per download, it depends on the URL alone."""
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def host_key(url: str | None, source: str) -> str:
    """A host with its port (lower case), or the source's name for a task that has no URL
    yet (resolved by id in the worker): a key to count a task under before it is resolved.
    The gate itself counts connections by :func:`host_of`."""
    if url:
        parts = urlsplit(url)
        if parts.hostname:
            return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return f"source:{source}"


class HostCounter(Protocol):
    """Where a run's per-host slots and cool-downs are counted (one count per run, however
    many processes share it). Thread-safe. Hosts come lower case."""

    def take(self, host: str, limit: int, wait: float) -> bool:
        """Take a slot on ``host`` when fewer than ``limit`` are taken and it is not cooling
        down, waiting up to ``wait`` real seconds for that; whether one was taken."""
        ...

    def give(self, host: str, limit: int) -> None:
        """Give back a slot taken with ``limit``."""
        ...

    def cool(self, host: str, seconds: float) -> None:
        """Send nothing new to ``host`` for ``seconds`` from now (a longer cool-down that is
        already there stays)."""
        ...

    def cooling(self, host: str) -> float:
        """Seconds left of ``host``'s cool-down (0: none)."""
        ...

    def strike(self, host: str) -> int:
        """Count one more 429/503 without ``Retry-After`` in a row; the run's length."""
        ...

    def forgive(self, host: str) -> None:
        """End ``host``'s run of strikes (it answered well, or said how long to wait)."""
        ...


@dataclass(slots=True)
class _Host:
    active: int = 0
    waiting: int = 0
    until: float = 0.0
    strikes: int = 0


class LocalCounter:
    """The counts in this process, on one clock. Thread-safe.

    :param clock: monotonic seconds (tests pass a fake clock); cool-downs end on it.
    :param on_cooldown: told of every cool-down, as ``(host, seconds, until)``.
    :param poll: real seconds between two looks at the clock while waiting (a fake clock
        moves without notifying anyone).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_cooldown: CooldownListener | None = None,
        poll: float = 0.05,
    ) -> None:
        self.clock = clock
        self._on_cooldown = on_cooldown
        self._poll = poll
        self._cond = threading.Condition()
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        found = self._hosts.get(host)
        if found is None:
            found = self._hosts[host] = _Host()
        return found

    def take(self, host: str, limit: int, wait: float) -> bool:
        """See :meth:`HostCounter.take`."""
        deadline = time.monotonic() + wait
        with self._cond:
            state = self._host(host)
            state.waiting += 1
            try:
                while state.active >= limit or state.until > self.clock():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(min(left, self._poll))
                state.active += 1
                return True
            finally:
                state.waiting -= 1

    def give(self, host: str, limit: int) -> None:
        """See :meth:`HostCounter.give`."""
        with self._cond:
            state = self._host(host)
            state.active = max(0, state.active - 1)
            self._cond.notify_all()

    def cool(self, host: str, seconds: float) -> None:
        """See :meth:`HostCounter.cool`; tells the listener of a new or longer cool-down."""
        with self._cond:
            state = self._host(host)
            until = self.clock() + seconds
            if until <= state.until:
                return
            state.until = until
        logger.warning("%s asked us to slow down: pausing it for %.0fs", host, seconds)
        if self._on_cooldown is not None:
            self._on_cooldown(host, seconds, until)

    def cooling(self, host: str) -> float:
        """See :meth:`HostCounter.cooling`."""
        with self._cond:
            state = self._hosts.get(host)
            return 0.0 if state is None else max(0.0, state.until - self.clock())

    def strike(self, host: str) -> int:
        """See :meth:`HostCounter.strike`."""
        with self._cond:
            state = self._host(host)
            state.strikes += 1
            return state.strikes

    def forgive(self, host: str) -> None:
        """See :meth:`HostCounter.forgive`."""
        with self._cond:
            state = self._hosts.get(host)
            if state is not None:
                state.strikes = 0

    def active(self) -> dict[str, int]:
        """Slots in use per host."""
        with self._cond:
            return {host: s.active for host, s in self._hosts.items() if s.active}

    def waiting(self) -> dict[str, int]:
        """Callers waiting for a slot per host (right now)."""
        with self._cond:
            return {host: s.waiting for host, s in self._hosts.items() if s.waiting}


class HostGate:
    """Slots and cool-downs per host, counted by a :class:`HostCounter`. Thread-safe.

    :param counter: where the counts live (default: a :class:`LocalCounter` built from
        ``clock``, ``on_cooldown`` and ``poll``).
    :param limit: a cap on every limit asked for (``--max-per-host`` of a cluster run), and
        the limit of :meth:`hold`; ``None``: the limit each caller passes.
    :param poll: real seconds a waiting caller waits between two looks at its cancel event.
    """

    def __init__(
        self,
        counter: HostCounter | None = None,
        *,
        limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_cooldown: CooldownListener | None = None,
        poll: float = 0.05,
    ) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"a per-host limit must be >= 1, got {limit}")
        self.counter: HostCounter = (
            counter
            if counter is not None
            else LocalCounter(clock=clock, on_cooldown=on_cooldown, poll=poll)
        )
        self.limit = limit
        self._poll = poll

    def _limit(self, asked: int | None) -> int:
        if asked is None:
            return self.limit or DEFAULT_LIMIT
        return max(1, min(asked, self.limit) if self.limit else asked)

    def acquire(
        self,
        host: str,
        limit: int | None = None,
        *,
        cancel: threading.Event | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait for a slot on ``host`` (free, and not cooling down) and take it.

        :returns: False when ``give_up()`` became true first (no slot taken).
        :raises DownloadCancelledError: when ``cancel`` is set while waiting.
        """
        wanted, wait = self._limit(limit), 0.0
        while not self.counter.take(host.lower(), wanted, wait):
            if cancel is not None and cancel.is_set():
                raise DownloadCancelledError("download cancelled while waiting for its host")
            if give_up is not None and give_up():
                return False
            wait = self._poll
        return True

    def release(self, host: str, limit: int | None = None) -> None:
        """Give a slot back (``limit`` as it was taken)."""
        self.counter.give(host.lower(), self._limit(limit))

    @contextlib.contextmanager
    def slot(
        self,
        url: str,
        limit: int | None = None,
        *,
        cancel: threading.Event | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> Iterator[bool]:
        """:meth:`acquire` for ``url``'s host as a context; yields whether a slot was taken."""
        host = host_of(url)
        taken = self.acquire(host, limit, cancel=cancel, give_up=give_up)
        try:
            yield taken
        finally:
            if taken:
                self.release(host, limit)

    @contextlib.contextmanager
    def hold(self, host: str) -> Iterator[None]:
        """Block until ``host`` (a name, not a URL) has a free slot under :attr:`limit`;
        give it back on leaving the block."""
        self.acquire(host)
        try:
            yield
        finally:
            self.release(host)

    def cool(self, host: str, seconds: float) -> None:
        """Send nothing new to ``host`` for ``seconds``, from every worker of the run."""
        self.counter.cool(host.lower(), seconds)

    def cooling(self, host: str) -> float:
        """Seconds left of ``host``'s cool-down (0: none)."""
        return self.counter.cooling(host.lower())

    def note_error(self, url: str, error: DownloadError) -> None:
        """Cool the host down after a 429 or 503: for its ``Retry-After``, else (429s in a
        row) for a doubling backoff."""
        if not isinstance(error, ServerError) or error.status_code not in _COOLING_STATUSES:
            return
        host, retry_after = host_of(url), error.retry_after
        if retry_after is not None:
            self.counter.forgive(host)
            self.counter.cool(host, retry_after)
            return
        strikes = self.counter.strike(host)
        if error.status_code == 429 and strikes >= 2:
            self.counter.cool(host, min(_BACKOFF_CAP, 2.0 ** (strikes - 1)))

    def note_success(self, url: str) -> None:
        """A host that answered well forgets its run of 429s."""
        self.counter.forgive(host_of(url))


class HostGateFactory(Protocol):
    """A picklable, hashable description of a gate; :meth:`build` runs in each worker."""

    @property
    def limit(self) -> int | None:
        """A cap on connections per host at once (``None``: each source's ``max_per_host``)."""
        ...

    def build(self) -> HostGate:
        """The gate of this process (called once per worker runtime)."""
        ...


@dataclass(frozen=True, slots=True)
class LocalHostGates:
    """A gate counting in one process only (a worker of an executor whose processes cannot
    reach the driver). It is its own factory: :meth:`build` returns a fresh gate.

    :param limit: connections per host at once (>= 1).
    """

    limit: int | None = None

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"a per-host limit must be >= 1, got {self.limit}")

    def build(self) -> HostGate:
        """A gate counting in this process."""
        return HostGate(limit=self.limit)
