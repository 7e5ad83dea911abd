"""Every thread, process and executor RipStream starts is started here.

* :class:`ExecutorStrategy` says how the manager runs downloads: :class:`Threads` (the
  default, ``max_concurrent_downloads`` threads sharing sessions), :class:`Processes`
  (worker processes, each building its sources once and keeping its pools for the run), or
  :class:`GivenExecutor` (any ``concurrent.futures.Executor`` handed in: tasks and results
  cross it as JSON).
* :class:`SegmentPool` is the bounded pool that segment workers of every download share, so
  ``-j 8 --segments 8`` has a known, capped number of threads and connections.
* :func:`start_thread` starts the few helper threads (a demo server).
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from ripstream.downloader.config import DownloadConfig

__all__ = [
    "ExecutorStrategy",
    "GivenExecutor",
    "Processes",
    "SegmentPool",
    "Threads",
    "segment_pool_for",
    "start_thread",
]

P = ParamSpec("P")
T = TypeVar("T")


class ExecutorStrategy(ABC):
    """How downloads run. ``isolated`` strategies get JSON tasks, not live objects."""

    #: whether tasks must cross as JSON (another process or machine)
    isolated: bool = False
    #: whether the manager shuts the executor down when it closes
    owned: bool = True

    @abstractmethod
    def create(self, workers: int) -> Executor:
        """The executor for ``workers`` downloads at once."""

    def describe(self, workers: int) -> str:
        """One line for the user: what runs the downloads."""
        return f"{workers} threads"


class Threads(ExecutorStrategy):
    """``max_concurrent_downloads`` threads in this process (the default)."""

    def create(self, workers: int) -> Executor:
        """A thread pool named ``ripstream-N``."""
        return ThreadPoolExecutor(workers, thread_name_prefix="ripstream")


class Processes(ExecutorStrategy):
    """Worker processes: for many small files, where one Python process is bound by the GIL.

    Each worker process handles ``workers / processes`` downloads at once on its own threads
    and keeps its sessions and connection pools for the whole run.

    :param processes: how many processes; ``None`` for one per CPU.
    :param initializer: run once in each worker (it builds the per-process runtime).
    """

    isolated = True

    def __init__(
        self,
        processes: int | None = None,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        self.processes = processes or os.cpu_count() or 1
        self.initializer = initializer
        self.initargs = initargs

    def create(self, workers: int) -> Executor:
        """A process pool; fork where available (modules are already loaded, start is cheap)."""
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        return ProcessPoolExecutor(
            self.processes,
            mp_context=multiprocessing.get_context(method),
            initializer=self.initializer,
            initargs=self.initargs,
        )

    def describe(self, workers: int) -> str:
        """E.g. ``2 processes``."""
        return f"{self.processes} processes"


class GivenExecutor(ExecutorStrategy):
    """An executor the caller made and owns (a dask ``client.get_executor()``, a pool).

    :param isolated: False only for a thread pool of this process, whose tasks may share
        live objects; anything else gets JSON.
    """

    owned = False

    def __init__(self, executor: Executor, *, isolated: bool | None = None) -> None:
        self.executor = executor
        self.isolated = (
            not isinstance(executor, ThreadPoolExecutor) if isolated is None else isolated
        )

    def create(self, workers: int) -> Executor:
        """The executor as given."""
        return self.executor

    def describe(self, workers: int) -> str:
        """The executor's class name."""
        return type(self.executor).__name__


class SegmentPool:
    """A bounded, lazily started thread pool for segment workers. Thread-safe.

    :param max_workers: the most segment threads at once, across every download.
    """

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max(1, max_workers)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Run ``function`` on a segment thread."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.max_workers, thread_name_prefix="ripstream-segment"
                )
            pool = self._pool
        return pool.submit(function, *args, **kwargs)

    def close(self) -> None:
        """Wait for running segment workers and stop the threads."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def segment_pool_for(config: DownloadConfig) -> SegmentPool:
    """The segment pool a run of ``config`` needs: ``segments - 1`` helpers per download
    slot (the download's own thread fetches one part), at most."""
    behaviors = [config.default_settings]
    behaviors += [config.get_behavior_for_source(name) for name in config.source_settings]
    segments = max(behavior.segments for behavior in behaviors)
    return SegmentPool(config.max_concurrent_downloads * max(1, segments - 1))


def start_thread(target: Callable[[], object], *, name: str) -> threading.Thread:
    """Start a daemon helper thread (a local server, a watcher)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
