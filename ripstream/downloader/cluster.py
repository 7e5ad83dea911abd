"""The same batch on a dask.distributed cluster: one more executor strategy of the one manager.

dask's ``Client.get_executor()`` is a real ``concurrent.futures.Executor``, so a cluster is an
isolated executor like worker processes: the driver (the manager's process) sends each task
as JSON with a picklable :class:`~ripstream.downloader.worker.WorkerSpec`, every worker
process builds its sessions, pools and sources once (the runtime cache of
:mod:`ripstream.downloader.worker`) and sends back the result as JSON, naming itself in
``worker``. The driver alone runs the hooks (the download archive) and the batch journal.

What a cluster adds to worker processes:

* the output folder must be one every worker sees (a shared filesystem): :meth:`DaskCluster.
  check` asks each worker to write a small file there before the first task, so a worker
  that cannot fails the run at once, with one clear message, instead of failing every task;
* ``--limit-rate`` is the total of the run: each worker process gets ``1 / workers`` of it
  (and of each source's request rate), decided when the run starts; when a bandwidth
  timetable switches the limit, ``Client.run`` gives every worker process its share of the
  new one (kept in the scheduler's metadata too, for a process that joins later);
* the per-host limits count across every worker with dask's distributed semaphores, and a
  host's cool-down (after a 429 or 503) reaches every worker through the scheduler
  (:class:`DaskHostGates`, the cluster's counter of the one
  :class:`~ripstream.downloader.hosts.HostGate`).
* progress comes back while files download: each worker sends batches of progress as dask
  events on a topic of the run (``Worker.log_event``), which the driver's client hands to
  the manager (:class:`DaskLink`); a cancel reaches the downloads running on the workers
  (``Client.run`` sets the run's cancel event in every worker process), and so does a hold
  (a paused run, a closed window): ``Client.run`` clears the run's resumed event there, and
  every transfer of the run waits at its next buffer until the driver sets it again.

dask is optional (``pip install 'ripstream[dask]'``): nothing here imports it until a
cluster is used. Example::

    from distributed import Client

    client = Client("tcp://scheduler:8786")
    with DownloadManager(config, factory=make_source,
                         executor=client.get_executor(pure=False)) as manager:
        manager.run(queue)          # results name the worker ("host:pid") that ran them

    with dask_manager(config, "local:4", factory=make_source) as manager:
        ...                         # starts 4 worker processes, stops them on close
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.exceptions import DownloadError, StorageError
from ripstream.downloader.executors import ExecutorStrategy, GivenExecutor, start_local_cluster
from ripstream.downloader.hosts import HostGate
from ripstream.downloader.relay import Batch, WorkerChannel
from ripstream.downloader.worker import probe_output

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

    from ripstream.downloader.manager import DownloadManager

__all__ = [
    "ClusterExecutor",
    "DaskCluster",
    "DaskHostGates",
    "DaskLink",
    "cancel_run",
    "dask_manager",
    "hold_run",
    "limit_run",
    "strategy_for",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: how long to wait for a scheduler to answer, and for a first worker to join
CONNECT_TIMEOUT = 30.0
LOCAL_PREFIX = "local:"
#: where host cool-downs are kept in the scheduler's metadata
_COOLDOWNS = "ripstream-host-cooldowns"
#: where each run's hold is kept, for worker processes that join during one
_HOLDS = "ripstream-holds"
#: where each run's share of the limit is kept (0: unlimited), for processes that join later
_RATES = "ripstream-rates"


class ClusterExecutor(Executor):
    """A dask client's executor (``pure=False``: every submit is a new task) that closes the
    client, and the local cluster it started, on :meth:`shutdown`. Thread-safe to submit.

    :param client: a connected ``distributed.Client``.
    :param cluster: the ``LocalCluster`` started for this run, if any.
    """

    def __init__(self, client: Client, cluster: LocalCluster | None = None) -> None:
        self.client = client
        self.cluster = cluster
        self._inner = client.get_executor(pure=False)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Run ``fn(*args, **kwargs)`` on some worker."""
        future: Future[Any] = self._inner.submit(fn, *args, **kwargs)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Drop the tasks not yet run, then close the client and stop a local cluster."""
        self._inner.shutdown(wait=wait and not cancel_futures)  # wait=False cancels them
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


class DaskCluster(ExecutorStrategy):
    """Run downloads on a dask.distributed cluster. Build it with :meth:`connect` (a scheduler
    address, or ``local:N`` for N worker processes started for the run) or from a client
    the caller owns.

    :param client: a connected client the caller keeps and closes.
    :param executor: the client's executor to use (default ``client.get_executor(pure=False)``).
    :param max_per_host: at most this many connections per host at once across every worker
        (a cap on each source's ``max_per_host``, which holds across the cluster anyway).
    """

    isolated = True

    def __init__(
        self,
        client: Client | None = None,
        *,
        executor: Executor | None = None,
        max_per_host: int | None = None,
        address: str | None = None,
    ) -> None:
        if (client is None) == (address is None):
            raise ValueError("give a client or an address, not both")
        self.client = client
        self.address = address
        self.executor = executor
        self.owned = client is None
        self.host_gate = DaskHostGates(max_per_host or None)

    @classmethod
    def connect(cls, address: str, *, max_per_host: int | None = None) -> DaskCluster:
        """A cluster at ``address`` (``tcp://host:8786``), or ``local:N``: N worker processes
        on this machine. The client (and local cluster) start with the run and stop with it.
        """
        local_processes(address)  # a malformed local:N is refused now, not at the first task
        return cls(address=address, max_per_host=max_per_host)

    def create(self, workers: int) -> Executor:
        """The client's executor; connecting (or starting the local cluster) first."""
        if self.client is not None:
            return self.executor or self.client.get_executor(pure=False)
        assert self.address is not None
        return _open(self.address, workers)

    def check(self, executor: Executor, config: DownloadConfig) -> None:
        """Ask every worker to write in the output folder; refuse the run if one cannot."""
        client = _client_of(executor, self.client)
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError as exc:
            raise DownloadError(
                f"the dask cluster has no workers (waited {CONNECT_TIMEOUT:g} s)"
            ) from exc
        answers = client.run(
            probe_output, str(config.download_directory.absolute()), on_error="return"
        )
        problems = [
            f"{address}: {answer}"
            for address, answer in sorted(answers.items())
            if isinstance(answer, BaseException)
        ]
        if problems:
            raise StorageError(
                f"{len(problems)} of {len(answers)} dask workers cannot write the output "
                f"folder; nothing was downloaded: " + "; ".join(problems),
                path=str(config.download_directory),
            )

    def shares(self, executor: Executor) -> int:
        """The number of worker processes: each gets that share of the run's limits."""
        return max(1, len(_client_of(executor, self.client).nthreads()))

    def open_channel(self, executor: Executor, deliver: Callable[[Batch], None]) -> WorkerChannel:
        """Progress from the workers arrives as dask events on a topic of this run, handed to
        ``deliver`` on the client's thread; a cancel is sent to every worker process."""
        client = _client_of(executor, self.client)
        run = os.urandom(16).hex()
        topic = _topic(run)
        # the client keeps a handler after unsubscribing: it must not keep the relay alive
        receivers = [deliver]

        def handle(event: tuple[float, Any]) -> None:
            try:
                for receiver in receivers:
                    receiver(event[1])
            except Exception:  # the client's event loop must go on
                logger.exception("progress from a dask worker could not be shown")

        def stop() -> None:
            receivers.clear()
            if client.status == "running":
                client.unsubscribe_topic(topic)

        client.subscribe_topic(topic, handle)
        return WorkerChannel(
            DaskLink(run),
            cancel=lambda: _cancel(client, run),
            stop=stop,
            hold=lambda held: _hold(client, run, held),
            limit=lambda share: _limit(client, run, share),
        )

    def describe(self, workers: int) -> str:
        """E.g. ``dask cluster local:2``."""
        where = self.address or getattr(self.client, "scheduler", None) or "client"
        return f"dask cluster {where}"


@dataclass(frozen=True, slots=True)
class DaskHostGates:
    """Per-host limits and cool-downs that every worker of the cluster counts together,
    built in each worker from this picklable value: one distributed semaphore per host and
    limit, and the end of each host's cool-down in the scheduler's metadata (Unix seconds:
    the workers' clocks are the only ones they share).

    A worker killed while it holds a slot gives it back when dask's lease timeout expires
    (``distributed.scheduler.locks.lease-timeout``, 30 s by default). Runs on one scheduler
    share their counts (two runs are still polite to one host together). A run of 429s
    without ``Retry-After`` is counted per worker process.

    :param limit: a cap on connections per host at once, across the cluster (``None``:
        each source's ``max_per_host``).
    """

    limit: int | None = None

    def build(self) -> HostGate:
        """The gate of this worker process."""
        return HostGate(_DaskCounter(), limit=self.limit, poll=0.2)


class _DaskCounter:
    """A :class:`~ripstream.downloader.hosts.HostCounter` in the dask scheduler."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._semaphores: dict[tuple[str, int], Any] = {}
        self._strikes: Counter[str] = Counter()

    def _semaphore(self, host: str, limit: int) -> Any:
        from distributed import Semaphore

        with self._lock:
            found = self._semaphores.get((host, limit))
            if found is None:
                # the limit is in the name: two limits never share one semaphore
                name = f"ripstream-host-{limit}-{host}"
                found = self._semaphores[host, limit] = Semaphore(limit, name=name)
            return found

    def take(self, host: str, limit: int, wait: float) -> bool:
        left = self.cooling(host)
        if left > 0:
            time.sleep(min(wait, left))  # nothing to wait on: look again after a while
            return False
        return bool(self._semaphore(host, limit).acquire(timeout=wait))

    def give(self, host: str, limit: int) -> None:
        if _worker_leaving():
            # the scheduler lets the leases of a leaving worker lapse; a release now can only
            # fail, and distributed logs that with a traceback (a Ctrl-C looked like a crash)
            return
        self._semaphore(host, limit).release()

    def cool(self, host: str, seconds: float) -> None:
        from distributed import get_client

        until = time.time() + seconds
        if until <= _until(host):
            return
        get_client().set_metadata([_COOLDOWNS, host], until)
        logger.warning("%s asked us to slow down: pausing it for %.0fs", host, seconds)

    def cooling(self, host: str) -> float:
        return max(0.0, _until(host) - time.time())

    def strike(self, host: str) -> int:
        with self._lock:
            self._strikes[host] += 1
            return self._strikes[host]

    def forgive(self, host: str) -> None:
        with self._lock:
            self._strikes.pop(host, None)


def _worker_leaving() -> bool:
    """Whether this process is a dask worker that is closing (or not running at all)."""
    from distributed import get_worker
    from distributed.core import Status

    try:
        worker = get_worker()
    except ValueError:  # not in a worker: a client process, whose own release is fine
        return False
    return worker.status not in (Status.running, Status.paused)


def _until(host: str) -> float:
    """When ``host``'s cool-down ends (Unix seconds; 0: never cooled down)."""
    from distributed import get_client

    return float(get_client().get_metadata([_COOLDOWNS, host], default=0.0))


@dataclass(frozen=True, slots=True)
class DaskLink:
    """A run's :class:`~ripstream.downloader.relay.WorkerLink` on a dask worker: progress
    batches leave as events on the run's topic; :func:`cancel_run` sets the cancel event;
    :func:`hold_run` clears and sets the resumed event; :func:`limit_run` sets the rate.

    :param run: names the run (its topic and its cancel event in each worker process).
    """

    run: str

    def sender(self) -> Callable[[Batch], None] | None:
        """Logs batches as events of this worker (``None`` outside a dask worker)."""
        from distributed import get_worker

        try:
            worker = get_worker()
        except ValueError:
            return None
        topic = _topic(self.run)
        return lambda batch: worker.log_event(topic, batch)

    def cancel_event(self) -> threading.Event:
        """This run's cancel event in this worker process."""
        return _run_cancel(self.run)

    def resumed_event(self) -> threading.Event:
        """This run's resumed event in this worker process (cleared while held). A process
        that joins the cluster during a hold (a worker its nanny restarted) is held too:
        its event starts as the scheduler's metadata says."""
        with _CANCELS_LOCK:
            known = self.run in _RESUMED
        return _run_resumed(self.run, held=not known and _in_scheduler(_HOLDS, self.run, False))

    def rate(self, default: float | None) -> Callable[[], float | None]:
        """Reads this run's share of the limit in this worker process (``default`` until
        the driver has told one); a process that joins later starts with the scheduler's."""
        told = None if self.run in _SHARES else _in_scheduler(_RATES, self.run, None)
        if told is not None:
            _SHARES.setdefault(self.run, float(told))
        return functools.partial(_share_of, self.run, default)


_CANCELS: dict[str, threading.Event] = {}  # per worker process, one small event per run
_RESUMED: dict[str, threading.Event] = {}
_SHARES: dict[str, float] = {}  # each run's share of the limit here (0: unlimited)
_CANCELS_LOCK = threading.Lock()


def _run_cancel(run: str) -> threading.Event:
    with _CANCELS_LOCK:
        return _CANCELS.setdefault(run, threading.Event())


def cancel_run(run: str) -> None:
    """In a worker process: stop ``run``'s downloads at their next buffer (also those that
    start later in this process)."""
    _run_cancel(run).set()


def _run_resumed(run: str, *, held: bool = False) -> threading.Event:
    """``run``'s resumed event in this process; ``held``: how a new one starts."""
    with _CANCELS_LOCK:
        found = _RESUMED.get(run)
        if found is None:
            found = _RESUMED[run] = threading.Event()
            if not held:
                found.set()
        return found


def _in_scheduler(key: str, run: str, default: Any) -> Any:
    from distributed import get_client

    try:
        client = get_client()
    except ValueError:  # no cluster here: nothing was told
        return default
    return client.get_metadata([key, run], default=default)


def _share_of(run: str, default: float | None) -> float | None:
    return default if (share := _SHARES.get(run)) is None else share or None


def limit_run(run: str, share: float) -> None:
    """In a worker process: ``run``'s transfers go at most ``share`` bytes a second (0:
    unlimited) from their next buffer on (also those that start later in this process)."""
    _SHARES[run] = share


def hold_run(run: str, held: bool) -> None:
    """In a worker process: hold ``run``'s transfers at their next buffer (``held``), or let
    them go on (also those that start later in this process)."""
    resumed = _run_resumed(run)
    if held:
        resumed.clear()
    else:
        resumed.set()


def _cancel(client: Client, run: str) -> None:
    client.run(cancel_run, run, on_error="ignore")


def _hold(client: Client, run: str, held: bool) -> None:
    client.set_metadata([_HOLDS, run], held)  # first: a worker joining now reads it
    client.run(hold_run, run, held, on_error="ignore")


def _limit(client: Client, run: str, share: float | None) -> None:
    client.set_metadata([_RATES, run], share or 0.0)  # first: a worker joining now reads it
    client.run(limit_run, run, share or 0.0, on_error="ignore")


def _topic(run: str) -> str:
    return f"ripstream-progress-{run}"


def strategy_for(executor: Executor) -> ExecutorStrategy:
    """The strategy for an executor handed to the manager: a dask client's executor becomes
    a :class:`DaskCluster` (so the run's limits are shared out and the output folder is
    checked), anything else a :class:`GivenExecutor`."""
    client = getattr(executor, "_client", None)
    if type(executor).__module__.startswith("distributed.") and client is not None:
        return DaskCluster(client, executor=executor)
    return GivenExecutor(executor)


def dask_manager(
    config: DownloadConfig, address: str, *, max_per_host: int | None = None, **kwargs: Any
) -> DownloadManager:
    """A :class:`~ripstream.downloader.manager.DownloadManager` running on the cluster at
    ``address`` (or ``local:N``); ``kwargs`` go to the manager (``factory=`` is needed: a
    picklable source factory). Close it (``with``) to disconnect and stop a local cluster.
    """
    from ripstream.downloader.manager import DownloadManager  # the manager imports us

    strategy = DaskCluster.connect(address, max_per_host=max_per_host)
    return DownloadManager(config, executor=strategy, **kwargs)


def local_processes(address: str) -> int | None:
    """N of ``local:N``; ``None`` for a scheduler address.

    :raises ValueError: for ``local:`` without a whole number >= 1."""
    if not address.startswith(LOCAL_PREFIX):
        return None
    count = address.removeprefix(LOCAL_PREFIX)
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"local:N needs a number of worker processes >= 1, got {address!r}")
    return int(count)


def _open(address: str, workers: int) -> ClusterExecutor:
    from distributed import Client

    processes = local_processes(address)
    try:
        if processes is not None:
            cluster = start_local_cluster(processes, max(1, -(-workers // processes)))
            return ClusterExecutor(Client(cluster), cluster)
        return ClusterExecutor(Client(address, timeout=CONNECT_TIMEOUT))
    except (OSError, TimeoutError) as exc:
        raise DownloadError(f"cannot reach the dask scheduler at {address}: {exc}") from exc


def _client_of(executor: Executor, client: Client | None) -> Client:
    if isinstance(executor, ClusterExecutor):
        return executor.client
    found: Client | None = client or getattr(executor, "_client", None)
    if found is None:
        raise TypeError(f"{type(executor).__name__} is not a dask executor")
    return found
