"""The driver's per-host counter, served to its worker processes (``--processes``).

The worker processes of one run must count one host's connections together, and each must
see a cool-down that another one started. The driver keeps the run's
:class:`~ripstream.downloader.hosts.LocalCounter` (on the driver's clock, which tests inject;
its listener tells the driver's events of every cool-down, whichever worker saw the 429) and
serves it on a local socket (``multiprocessing.connection``: a Unix socket or a named pipe,
with a random key). Each worker builds its gate from :class:`ServedHostGates`; the gate's
counter asks the driver. A worker process that dies holding slots gives them back when its
connections close.

Example::

    server = HostServer(LocalCounter())
    spec = WorkerSpec(..., host_gate=server.gates())   # sent to every worker process
    ...
    server.close()
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from ripstream.downloader.exceptions import DownloadError
from ripstream.downloader.executors import ExecutorStrategy, start_thread
from ripstream.downloader.hosts import HostGate, HostGateFactory, LocalCounter
from ripstream.downloader.resources import Closing

__all__ = ["HostServer", "ServedHostGates", "share_hosts"]

logger = logging.getLogger(__name__)

#: the longest a worker's ``take`` waits in the driver (so it looks at its cancel event)
_MAX_WAIT = 0.5


class HostServer(Closing):
    """Serves ``counter`` to worker processes of this machine until :meth:`close`.

    :param counter: the run's count (the driver's gate's counter).
    """

    def __init__(self, counter: LocalCounter) -> None:
        self.counter = counter
        self._authkey = os.urandom(32)
        self._listener = Listener(authkey=self._authkey)  # this machine only
        self._closed = threading.Event()
        self._accepter = start_thread(self._accept, name="ripstream-hosts")

    def gates(self, limit: int | None = None) -> ServedHostGates:
        """What a worker process builds its gate from."""
        return ServedHostGates(self._listener.address, self._authkey, limit)

    def _accept(self) -> None:
        while True:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):  # a stranger, or the end
                if self._closed.is_set():
                    return
                continue
            if self._closed.is_set():
                conn.close()
                return
            start_thread(functools.partial(self._serve, conn), name="ripstream-hosts-client")

    def _serve(self, conn: Connection) -> None:
        """Answer one worker thread's calls; give back its slots when it goes away."""
        held: Counter[tuple[str, int]] = Counter()
        calls: dict[str, Callable[..., Any]] = {
            "take": functools.partial(self._take, held),
            "give": functools.partial(self._give, held),
            "cool": self.counter.cool,
            "cooling": self.counter.cooling,
            "strike": self.counter.strike,
            "forgive": self.counter.forgive,
        }
        try:
            while (call := _receive(conn)) is not None:
                op, args = call
                try:
                    reply: tuple[str, Any] = ("ok", calls[op](*args))
                except Exception as exc:  # the worker gets it as its error
                    logger.exception("per-host count: %s%r failed", op, args)
                    reply = ("error", f"{type(exc).__name__}: {exc}")
                conn.send(reply)
        except OSError as exc:  # the connection broke mid-call: the worker is gone
            logger.debug("a worker's per-host connection broke: %s", exc)
        finally:
            for (host, limit), count in held.items():
                for _ in range(count):
                    self.counter.give(host, limit)
            conn.close()

    def _take(self, held: Counter[tuple[str, int]], host: str, limit: int, wait: float) -> bool:
        taken = self.counter.take(host, limit, min(wait, _MAX_WAIT))
        if taken:
            held[host, limit] += 1
        return taken

    def _give(self, held: Counter[tuple[str, int]], host: str, limit: int) -> None:
        if held[host, limit] > 0:
            held[host, limit] -= 1
        self.counter.give(host, limit)

    def close(self) -> None:
        """Stop accepting workers (those connected are served until they go)."""
        if self._closed.is_set():
            return
        self._closed.set()
        with contextlib.suppress(OSError, EOFError):  # wakes the accepter
            Client(self._listener.address, authkey=self._authkey).close()
        self._accepter.join()
        self._listener.close()


@dataclass(frozen=True, slots=True)
class ServedHostGates:
    """A worker's gate that counts with the driver (a :class:`HostServer`). Picklable.

    :param address: where the driver listens.
    :param authkey: the key the driver checks (never shown).
    :param limit: a cap on connections per host (``None``: each source's ``max_per_host``).
    :param poll: real seconds a waiting worker waits between two looks at its cancel event.
    """

    address: Any
    authkey: bytes = field(repr=False)
    limit: int | None = None
    poll: float = 0.2

    def build(self) -> HostGate:
        """The gate of this worker process."""
        return HostGate(
            _ServedCounter(self.address, self.authkey), limit=self.limit, poll=self.poll
        )


def _receive(conn: Connection) -> tuple[str, tuple[Any, ...]] | None:
    """The next call of a worker, or ``None`` once it has closed its end."""
    try:
        op, args = conn.recv()
    except EOFError:
        return None
    return op, args


class _ServedCounter:
    """A :class:`~ripstream.downloader.hosts.HostCounter` that asks the driver; one
    connection per thread (the driver answers each on its own thread)."""

    def __init__(self, address: Any, authkey: bytes) -> None:
        self._address = address
        self._authkey = authkey
        self._local = threading.local()

    def _ask(self, op: str, *args: Any) -> Any:
        conn: Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._local.conn = Client(self._address, authkey=self._authkey)
            conn.send((op, args))
            status, value = conn.recv()
        except (OSError, EOFError) as exc:
            self._local.conn = None
            raise DownloadError(
                "lost the run's per-host limits (the driver process is gone)"
            ) from exc
        if status != "ok":
            raise DownloadError(f"the run's per-host count failed: {value}")
        return value

    def take(self, host: str, limit: int, wait: float) -> bool:
        return bool(self._ask("take", host, limit, wait))

    def give(self, host: str, limit: int) -> None:
        self._ask("give", host, limit)

    def cool(self, host: str, seconds: float) -> None:
        self._ask("cool", host, seconds)

    def cooling(self, host: str) -> float:
        return float(self._ask("cooling", host))

    def strike(self, host: str) -> int:
        return int(self._ask("strike", host))

    def forgive(self, host: str) -> None:
        self._ask("forgive", host)


def share_hosts(
    strategy: ExecutorStrategy, hosts: HostGate | None
) -> tuple[HostGateFactory | None, HostServer | None]:
    """How the isolated workers of ``strategy`` count per-host limits with the rest of the
    run: the strategy's own way (a cluster's), else the driver's gate ``hosts`` served to
    them (worker processes of this machine: the server is the caller's to close); ``None``
    when each worker counts alone."""
    if strategy.host_gate is not None:
        return strategy.host_gate, None
    if not strategy.serves_hosts or hosts is None or not isinstance(hosts.counter, LocalCounter):
        return None, None
    server = HostServer(hosts.counter)
    return server.gates(hosts.limit), server
