"""Polite hosts: at most N connections to one host at once, and cool-downs after 429/503.

One :class:`HostGate` serves a whole run (the manager builds it). A download takes a slot for
its own connection for each attempt; each segment helper takes one more for its own; the gate
never lets more than the limit in at once, across every worker thread of the run. A host that
answers 429 or 503 with ``Retry-After`` (or 429 again and again without it) is cooled down:
nothing new is sent to it until then, while other hosts go on.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from ripstream.downloader.exceptions import (
    DownloadCancelledError,
    DownloadError,
    ServerError,
)

__all__ = ["HostGate", "host_of"]

logger = logging.getLogger(__name__)

#: ``(host, seconds from now, until on the gate's clock)``
CooldownListener = Callable[[str, float, float], None]
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


@dataclass(slots=True)
class _Host:
    active: int = 0
    until: float = 0.0
    throttled: int = 0  # 429s in a row without a Retry-After


class HostGate:
    """Slots and cool-downs per host. Thread-safe.

    Example::

        gate = HostGate()
        with gate.slot("https://example.com/a", limit=4, cancel=cancel):
            ...  # one connection to example.com

    :param clock: monotonic seconds (tests pass a fake clock).
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
        self._clock = clock
        self._on_cooldown = on_cooldown
        self._poll = poll
        self._cond = threading.Condition()
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        found = self._hosts.get(host)
        if found is None:
            found = self._hosts[host] = _Host()
        return found

    def acquire(
        self,
        host: str,
        limit: int,
        *,
        cancel: threading.Event | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> bool:
        """Wait for a slot on ``host`` (free, and not cooling down) and take it.

        :returns: False when ``give_up()`` became true first (no slot taken).
        :raises DownloadCancelledError: when ``cancel`` is set while waiting.
        """
        with self._cond:
            state = self._host(host)
            while state.active >= limit or state.until > self._clock():
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelledError("download cancelled while waiting for its host")
                if give_up is not None and give_up():
                    return False
                self._cond.wait(self._poll)
            state.active += 1
            return True

    def release(self, host: str) -> None:
        """Give a slot back."""
        with self._cond:
            state = self._host(host)
            state.active = max(0, state.active - 1)
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(
        self,
        url: str,
        limit: int,
        *,
        cancel: threading.Event | None = None,
        give_up: Callable[[], bool] | None = None,
    ) -> Iterator[bool]:
        """:meth:`acquire` as a context; yields whether a slot was taken."""
        host = host_of(url)
        taken = self.acquire(host, limit, cancel=cancel, give_up=give_up)
        try:
            yield taken
        finally:
            if taken:
                self.release(host)

    def pause_host(self, host: str, until: float) -> None:
        """Send nothing new to ``host`` before ``until`` (on the gate's clock)."""
        with self._cond:
            state = self._host(host.lower())
            if until <= state.until:
                return
            state.until = until
            seconds = until - self._clock()
        logger.warning("%s asked us to slow down: pausing it for %.0fs", host, seconds)
        if self._on_cooldown is not None:
            self._on_cooldown(host.lower(), seconds, until)

    def cooling_until(self, host: str) -> float | None:
        """When ``host``'s cool-down ends, or ``None`` when it is not cooling down."""
        with self._cond:
            state = self._hosts.get(host.lower())
            if state is None or state.until <= self._clock():
                return None
            return state.until

    def active(self) -> dict[str, int]:
        """Slots in use per host."""
        with self._cond:
            return {host: s.active for host, s in self._hosts.items() if s.active}

    def note_error(self, url: str, error: DownloadError) -> None:
        """Cool the host down after a 429 or 503: for its ``Retry-After``, else (429s in a
        row) for a doubling backoff."""
        if not isinstance(error, ServerError) or error.status_code not in _COOLING_STATUSES:
            return
        status, retry_after, host = error.status_code, error.retry_after, host_of(url)
        with self._cond:
            state = self._host(host)
            state.throttled = state.throttled + 1 if retry_after is None else 0
            repeats = state.throttled
        if retry_after is not None:
            self.pause_host(host, self._clock() + retry_after)
        elif status == 429 and repeats >= 2:
            self.pause_host(host, self._clock() + min(_BACKOFF_CAP, 2.0 ** (repeats - 1)))

    def note_success(self, url: str) -> None:
        """A host that answered well forgets its run of 429s."""
        with self._cond:
            state = self._hosts.get(host_of(url))
            if state is not None:
                state.throttled = 0
