"""Per-host limits that hold wherever a task runs: the seam between a limit and its counter.

A :class:`HostGate` lets at most ``limit`` downloads from one host run at once. In one
process that is a semaphore per host (:class:`LocalHostGates`); on a cluster it must be one
counter that every worker process sees (``ripstream.downloader.cluster.DaskHostGates``,
dask's distributed semaphores). A worker never receives a live gate: it receives a
:class:`HostGateFactory`, a small frozen value that pickles and builds the gate once per
process, so the limit is decided by the driver and counted wherever the work lands.

Example::

    gates = LocalHostGates(limit=2)
    with gates.hold("music.example"):
        ...   # at most two of these run at once for that host
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["HostGate", "HostGateFactory", "LocalHostGates", "host_key"]


class HostGate(Protocol):
    """Admits at most a fixed number of downloads per host at once. Thread-safe."""

    def hold(self, host: str) -> AbstractContextManager[None]:
        """Block until ``host`` has a free slot; release it on leaving the block."""
        ...


class HostGateFactory(Protocol):
    """A picklable, hashable description of a gate; :meth:`build` runs in each worker."""

    @property
    def limit(self) -> int:
        """Downloads per host at once."""
        ...

    def build(self) -> HostGate:
        """The gate of this process (called once per worker runtime)."""
        ...


@dataclass(frozen=True, slots=True)
class LocalHostGates:
    """One bounded semaphore per host, in this process only (threads; a single worker).

    It is its own factory: :meth:`build` returns a fresh gate (one per process).

    :param limit: downloads per host at once (>= 1).
    """

    limit: int

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"a per-host limit must be >= 1, got {self.limit}")

    def build(self) -> HostGate:
        """A gate counting in this process."""
        return _Semaphores(self.limit)


class _Semaphores:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._by_host: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def hold(self, host: str) -> Iterator[None]:
        with self._lock:
            semaphore = self._by_host.setdefault(host, threading.BoundedSemaphore(self._limit))
        with semaphore:
            yield


def host_key(url: str | None, source: str) -> str:
    """What a per-host limit counts ``url`` under: its host (lower case, port kept), or the
    source's name for a task that has no URL yet (resolved by id in the worker)."""
    if url:
        parts = urlsplit(url)
        if parts.hostname:
            return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return f"source:{source}"
