"""Every thread, process and executor RipStream starts is started here.

* :class:`ExecutorStrategy` says how the manager runs downloads: :class:`Threads` (the
  default, ``max_concurrent_downloads`` threads sharing sessions), :class:`Processes`
  (worker processes, each building its sources once and keeping its pools for the run), or
  :class:`GivenExecutor` (any ``concurrent.futures.Executor`` handed in: tasks and results
  cross it as JSON).
* :class:`SegmentPool` is the bounded pool that segment workers of every download share, so
  ``-j 8 --segments 8`` has a known, capped number of threads and connections.
* :func:`start_thread` starts the few helper threads (a demo server);
  :func:`start_local_cluster` starts a dask ``LocalCluster`` of worker processes (``--dask
  local:N``).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import multiprocessing
import os
import queue
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.hosts import HostGateFactory
from ripstream.downloader.poolside import THIS_WORKER, ProcessLink, process_cancel_event
from ripstream.downloader.relay import Batch, WorkerChannel

if TYPE_CHECKING:
    from distributed import LocalCluster

__all__ = [
    "ExecutorStrategy",
    "GivenExecutor",
    "ProcessLink",
    "ProcessThreadPool",
    "Processes",
    "SegmentPool",
    "Threads",
    "WorkerDied",
    "process_cancel_event",
    "segment_pool_for",
    "start_local_cluster",
    "start_thread",
]

P = ParamSpec("P")
T = TypeVar("T")

logger = logging.getLogger(__name__)


class ExecutorStrategy(ABC):
    """How downloads run. ``isolated`` strategies get JSON tasks, not live objects."""

    #: whether tasks must cross as JSON (another process or machine)
    isolated: bool = False
    #: whether the manager shuts the executor down when it closes
    owned: bool = True
    #: how isolated workers count per-host limits, when the strategy has its own way (a
    #: cluster's distributed semaphores); see :attr:`serves_hosts` otherwise
    host_gate: HostGateFactory | None = None
    #: whether the workers are processes of this machine, which count per-host limits and
    #: cool-downs with the driver (it serves them its counter); else each counts alone
    serves_hosts: bool = False

    @abstractmethod
    def create(self, workers: int) -> Executor:
        """The executor for ``workers`` downloads at once."""

    def describe(self, workers: int) -> str:
        """One line for the user: what runs the downloads."""
        return f"{workers} threads"

    def cancel(self, executor: Executor) -> None:  # noqa: B027 - a hook; threads need nothing
        """Stop running work that the run's cancel event cannot reach (other processes)."""

    def check(self, executor: Executor, config: DownloadConfig) -> None:  # noqa: B027 - a hook
        """Before the first task: refuse a run that cannot work (a worker that cannot see
        the output folder), with a clear :class:`~ripstream.downloader.exceptions.DownloadError`."""

    def shares(self, executor: Executor) -> int:
        """How many worker processes split the run's limits (``--limit-rate`` is the total:
        each isolated worker gets ``1 / shares`` of it)."""
        return 1

    def open_channel(
        self, executor: Executor, deliver: Callable[[Batch], None]
    ) -> WorkerChannel | None:
        """For isolated strategies: have the workers' progress batches handed to
        ``deliver`` (on a helper thread), and return the link the workers get (progress
        out, cancel in); ``None`` when the workers cannot talk back."""
        return None


class Threads(ExecutorStrategy):
    """``max_concurrent_downloads`` threads in this process (the default)."""

    def create(self, workers: int) -> Executor:
        """A thread pool named ``ripstream-N``."""
        return ThreadPoolExecutor(workers, thread_name_prefix="ripstream")


class Processes(ExecutorStrategy):
    """Worker processes, each running several downloads on its own threads: for many small
    files, where one Python process is bound by the GIL.

    ``workers`` downloads run at once in all, ``ceil(workers / processes)`` per process. Each
    process builds its sources and connection pools once and keeps them for the whole run.

    :param processes: how many processes; ``None`` for one per CPU.
    """

    isolated = True
    serves_hosts = True

    def __init__(self, processes: int | None = None) -> None:
        self.processes = max(1, processes or os.cpu_count() or 1)

    def create(self, workers: int) -> Executor:
        """A :class:`ProcessThreadPool` of ``processes`` processes."""
        return ProcessThreadPool(self.processes, -(-workers // self.processes))

    def shares(self, executor: Executor) -> int:
        """One share of the run's limits per process."""
        return self.processes

    def cancel(self, executor: Executor) -> None:
        """Tell every worker process to stop its running downloads."""
        if isinstance(executor, ProcessThreadPool):
            executor.cancel_running()

    def open_channel(
        self, executor: Executor, deliver: Callable[[Batch], None]
    ) -> WorkerChannel | None:
        """Progress comes back on the pool's result queue; cancel and hold are its shared
        stop and hold flags."""
        if not isinstance(executor, ProcessThreadPool):
            return None
        executor.listen(deliver)
        stop = functools.partial(executor.listen, None)
        return WorkerChannel(
            ProcessLink(),
            executor.cancel_running,
            stop,
            executor.hold_running,
            executor.limit_running,
        )

    def describe(self, workers: int) -> str:
        """E.g. ``2 processes x 4 threads``."""
        return f"{self.processes} processes x {-(-workers // self.processes)} threads"


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
        self.serves_hosts = isinstance(executor, ProcessPoolExecutor | ProcessThreadPool)

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


class WorkerDied(RuntimeError):
    """A worker process ended while it held the task (killed, or crashed)."""


class ProcessThreadPool(Executor):
    """An executor of worker processes that each run ``threads`` calls at once.

    ``concurrent.futures.ProcessPoolExecutor`` runs one call per process at a time; downloads
    mostly wait on the network, so each process here takes as many calls as it has threads.
    Calls and their arguments must pickle. A process takes a call only when it has a free
    thread, so work spreads evenly. Workers ignore Ctrl-C (the parent stops them through
    :meth:`cancel_running`, so they end cleanly, keeping ``.part`` files), and stop by
    themselves when the parent process disappears. A call held by a process that dies fails
    with :class:`WorkerDied`. Progress that the workers send (:class:`ProcessLink`) travels
    on the result queue and is handed to the :meth:`listen` er on the collecting thread.

    :param processes: worker processes.
    :param threads: calls each process runs at once.
    """

    def __init__(self, processes: int, threads: int) -> None:
        # fork keeps start-up cheap (modules are loaded) and no thread of ours runs yet here
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        context: Any = multiprocessing.get_context(method)
        self._calls = context.Queue()
        self._results = context.Queue()
        self._stop = context.RawValue("b", 0)
        self._hold = context.RawValue("b", 0)
        self._rate = context.RawValue("d", math.nan)  # each process's share; NaN: not told
        self._lock = threading.Lock()
        self._futures: dict[int, Future[Any]] = {}
        self._holders: dict[int, int] = {}  # call id -> pid of the process running it
        self._ids = itertools.count()
        self._shutdown = False
        self._listener: Callable[[Batch], None] | None = None
        parent = os.getpid()
        self._processes = [
            context.Process(
                target=_process_main,
                args=(
                    self._calls,
                    self._results,
                    threads,
                    self._stop,
                    self._hold,
                    self._rate,
                    parent,
                ),
                name=f"ripstream-worker-{index}",
                daemon=True,
            )
            for index in range(processes)
        ]
        for process in self._processes:
            process.start()
        self._collector = start_thread(self._collect, name="ripstream-results")

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Send ``fn(*args, **kwargs)`` to a worker process."""
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot submit after shutdown")
            call_id = next(self._ids)
            self._futures[call_id] = future
        self._calls.put((call_id, fn, args, kwargs))
        return future

    def listen(self, listener: Callable[[Batch], None] | None) -> None:
        """Hand every progress batch from the workers to ``listener`` (``None``: drop them)."""
        with self._lock:
            self._listener = listener

    def cancel_running(self) -> None:
        """Ask every worker to cancel its running downloads (their cancel event is set)."""
        self._stop.value = 1

    def hold_running(self, held: bool) -> None:
        """Hold every worker's running transfers at their next buffer (``False``: go on)."""
        self._hold.value = int(held)

    def limit_running(self, rate: float | None) -> None:
        """Set each worker's share of the run's bandwidth limit (``None``: unlimited); its
        transfers switch to it at their next buffer."""
        self._rate.value = rate or 0.0

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers once the calls sent have ended (or are cancelled)."""
        with self._lock:
            self._shutdown = True
            pending = list(self._futures.items()) if cancel_futures else []
        for call_id, future in pending:
            if call_id not in self._holders and future.cancel():
                future.set_running_or_notify_cancel()
        for _ in self._processes:
            self._calls.put(None)
        if wait:
            for process in self._processes:
                process.join()
            self._results.put(None)
            self._collector.join()
            self._calls.close()
            self._results.close()

    def _collect(self) -> None:
        """Hand results to their futures; fail the calls of a process that died."""
        while True:
            try:
                message = self._results.get(timeout=0.5)
            except queue.Empty:
                self._reap()
                continue
            if message is None:
                return
            self._deliver(*message)

    def _deliver(self, kind: str, call_id: int, value: Any) -> None:
        if kind == "progress":
            self._relay(value)
            return
        with self._lock:
            if kind == "start":
                self._holders[call_id] = value
                return
            future = self._futures.pop(call_id, None)
            self._holders.pop(call_id, None)
        if future is None or future.cancelled():
            return
        if kind == "error":
            future.set_exception(value)
        else:
            future.set_result(value)

    def _relay(self, batch: Batch) -> None:
        with self._lock:
            listener = self._listener
        if listener is None:
            return
        try:
            listener(batch)
        except Exception:  # progress must never stop the results behind it
            logger.exception("a progress listener failed")

    def _reap(self) -> None:
        dead = {p.pid for p in self._processes if not p.is_alive() and p.exitcode != 0}
        if not dead:
            return
        with self._lock:
            lost = [cid for cid, pid in self._holders.items() if pid in dead]
            futures = [(cid, self._futures.pop(cid, None)) for cid in lost]
            for cid in lost:
                del self._holders[cid]
        for cid, future in futures:
            if future is not None and not future.done():
                future.set_exception(WorkerDied(f"the worker process running call {cid} died"))


_GRACE_SECONDS = 2.0


def _process_main(
    calls: Any, results: Any, threads: int, stop: Any, hold: Any, rate: Any, parent: int
) -> None:
    """A worker process: take a call whenever a thread is free, run it, send the result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    THIS_WORKER.results, THIS_WORKER.rate = results, rate
    start_thread(lambda: _watch(stop, hold, parent), name="ripstream-watch-parent")
    slots = threading.Semaphore(threads)
    with ThreadPoolExecutor(threads, thread_name_prefix="ripstream") as pool:
        while True:
            slots.acquire()
            item = calls.get()
            if item is None:
                break
            call_id, fn, args, kwargs = item
            results.put(("start", call_id, os.getpid()))
            future = pool.submit(fn, *args, **kwargs)
            future.add_done_callback(functools.partial(_send, results, slots, call_id))


def _send(results: Any, slots: threading.Semaphore, call_id: int, future: Future[Any]) -> None:
    error = future.exception()
    if error is not None:
        results.put(("error", call_id, error))
    else:
        results.put(("result", call_id, future.result()))
    slots.release()


def _watch(stop: Any, hold: Any, parent: int) -> None:
    """Cancel this process's downloads when the parent asks (``stop``) or is gone; hold
    them while the parent's ``hold`` flag is up."""
    cancel, resumed = THIS_WORKER.cancel, THIS_WORKER.resumed
    while not cancel.wait(0.1):
        if stop.value or os.getppid() != parent:
            cancel.set()
        (resumed.clear if hold.value else resumed.set)()
    if os.getppid() != parent:
        # running downloads stop at their next buffer and checkpoint; then leave, since no
        # parent will ever send another call
        time.sleep(_GRACE_SECONDS)
        os._exit(143)


def segment_pool_for(config: DownloadConfig) -> SegmentPool:
    """The segment pool a run of ``config`` needs: ``segments - 1`` helpers per download
    slot (the download's own thread fetches one part), at most."""
    behaviors = [config.default_settings]
    behaviors += [config.get_behavior_for_source(name) for name in config.source_settings]
    segments = max(behavior.segments for behavior in behaviors)
    return SegmentPool(config.max_concurrent_downloads * max(1, segments - 1))


def start_local_cluster(processes: int, threads: int) -> LocalCluster:
    """A dask ``LocalCluster`` of ``processes`` worker processes (each with a nanny that
    replaces it if it dies) of ``threads`` threads, on the loopback.

    The worker processes ignore Ctrl-C, which a terminal sends to the whole process group:
    the driver stops their downloads itself (they keep their ``.part`` files) and then the
    cluster. A Ctrl-C while the cluster starts (a few seconds) is ignored too.

    :raises ImportError: when dask.distributed is not installed (``pip install
        'ripstream[dask]'``).
    """
    from distributed import LocalCluster

    with _children_ignore_ctrl_c():
        return LocalCluster(
            n_workers=processes,
            threads_per_worker=threads,
            processes=True,
            host="127.0.0.1",
            # dask always serves a little HTTP (health checks); a free port, never 8787
            dashboard_address="127.0.0.1:0",
            # dask logs every worker's start and stop at INFO, and a worker whose heartbeat
            # meets the scheduler already closed (a Ctrl-C, a stop) logs a traceback at
            # ERROR: the run reports its own outcome, so only CRITICAL gets through
            silence_logs=logging.CRITICAL,
        )


@contextlib.contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Processes started in the block ignore SIGINT: an ignored signal is the one thing a
    spawned process inherits (Python then installs no KeyboardInterrupt handler, and
    asyncio none of its own). Only the main thread may change it; elsewhere nothing is done."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def start_thread(target: Callable[[], object], *, name: str) -> threading.Thread:
    """Start a daemon helper thread (a local server, a watcher)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
