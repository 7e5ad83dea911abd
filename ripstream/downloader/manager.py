"""DownloadManager: the one scheduler. It drains a DownloadQueue through an executor strategy.

Everything that downloads more than one thing goes through here: ``BaseDownloader.
download_many``, the CLI, and ``--processes``. The manager owns its executor, its engine (with
the cancel event, path claims, run-wide bandwidth and the bounded segment pool) and the
sources it created; it never has more than ``max_concurrent_downloads`` tasks in flight.

Hooks (:class:`RunHook`) see every task before it is dispatched and every result after it
ends, on the manager's own thread: the download archive is one (it skips what it holds and
records what completed), so it works the same whether work runs on threads, processes or a
cluster, and only this process writes it.

On Ctrl-C (``KeyboardInterrupt``) it sets the cancel event, so running downloads stop at their
next buffer and keep their ``.part`` files for resume, cancels what has not started, waits for
the running ones, and re-raises.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, Executor, Future, wait
from queue import Empty, SimpleQueue
from typing import Protocol

from ripstream.downloader.cluster import strategy_for
from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import DownloadableContent, DownloadResult, ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.events import EventSink, RunMonitor, download_id_of
from ripstream.downloader.exceptions import DownloadCancelledError, DownloadError, SourceError
from ripstream.downloader.executors import (
    ExecutorStrategy,
    SegmentPool,
    Threads,
    segment_pool_for,
)
from ripstream.downloader.hosts import HostGate
from ripstream.downloader.isolation import Isolation
from ripstream.downloader.pacing import Pacer
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask, TaskState
from ripstream.downloader.resources import Closing
from ripstream.downloader.schedule import LiveBandwidth, Schedule
from ripstream.downloader.services import EngineServices, PostProcessor, Source
from ripstream.downloader.stats import RunStats, StatsCollector
from ripstream.downloader.worker import (
    ParsedResult,
    SourceFactory,
    resolve_and_run,
    run_task_json,
)

__all__ = ["DownloadManager", "ManagedSource", "RunHook"]

logger = logging.getLogger(__name__)

ResultHandler = Callable[[DownloadTask, DownloadResult], None]


class ManagedSource(Source, Protocol):
    """A source the manager can dispatch to: it resolves ids and can be closed."""

    def get_download_info(self, content_id: str) -> DownloadableContent: ...
    def close(self) -> None: ...


class RunHook(Protocol):
    """Sees each task before dispatch and each result after (an archive, metrics, events).

    ``before`` may return a result to settle the task without running it (a skip).
    Both run on the manager's thread, never concurrently.
    """

    def before(self, task: DownloadTask) -> DownloadResult | None: ...
    def after(self, task: DownloadTask, result: DownloadResult) -> None: ...


class DownloadManager(Closing):
    """Runs queued tasks concurrently, each on the source registered for it.

    Thread-safe to :meth:`cancel` from another thread; :meth:`run` itself is called from one.

    Example::

        with DownloadManager(config, downloaders=[MyService(config)]) as manager:
            queue = DownloadQueue()
            queue.add_task(DownloadTask(...))
            results = manager.run(queue)

    :param downloaders: sources to dispatch to, by their ``source_name`` (the caller keeps
        and closes them).
    :param factory: builds a source that is not registered, as ``factory(name, config)``;
        the manager closes what it built. For isolated executors it must be picklable (a
        module-level function), since each worker process builds its own.
    :param executor: an :class:`ExecutorStrategy` (``Threads()`` by default,
        ``Processes(n)``), or any ``concurrent.futures.Executor`` (tasks and results cross a
        non-thread executor as JSON; a dask client's executor runs as a
        :class:`~ripstream.downloader.cluster.DaskCluster`).
    :param cancel_event: setting it stops the run as Ctrl-C does.
    :param services: the engine's collaborators, when the caller has them (a downloader's
        own ``download_many``); by default the manager builds them.
    :param post_processors: run on every verified file (tags), when ``services`` is not given.
    :param hooks: see :class:`RunHook`.
    :param schedule: windows, start time and bandwidth timetable (default: the config's).
    :param events: sinks told of every :class:`~ripstream.downloader.events.RunEvent`
        (a JSON-lines file, metrics); :meth:`stats` is one too.
    :param clock: monotonic seconds; ``sleep`` waits on it (tests pass a fake clock's).
    :param now: the wall clock the schedule and event times are read from.
    """

    def __init__(
        self,
        config: DownloadConfig | None = None,
        *,
        downloaders: Iterable[ManagedSource] = (),
        factory: SourceFactory | None = None,
        progress_tracker: ProgressTracker | None = None,
        executor: ExecutorStrategy | Executor | None = None,
        cancel_event: threading.Event | None = None,
        services: EngineServices | None = None,
        post_processors: Sequence[PostProcessor] = (),
        hooks: Sequence[RunHook] = (),
        schedule: Schedule | None = None,
        events: Sequence[EventSink] = (),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        now: Callable[[], dt.datetime] = dt.datetime.now,
    ) -> None:
        self.config = config or DownloadConfig()
        self._segments: SegmentPool | None = None
        self._stats = StatsCollector()
        schedule = schedule or self.config.schedule
        monitor = RunMonitor((self._stats, *events), now=now, clock=clock)
        if services is None:
            self._segments = segment_pool_for(self.config)
            services = EngineServices(
                cancel=cancel_event or threading.Event(),
                tracker=progress_tracker or ProgressTracker(clock=clock),
                bandwidth=LiveBandwidth(
                    schedule, self.config.bandwidth_limit, now=now, clock=clock, sleep=sleep
                ),
                post_processors=tuple(post_processors),
                segment_pool=self._segments,
                sleep=sleep,
                clock=clock,
                hosts=HostGate(clock=clock, on_cooldown=monitor.host_cooldown),
                monitor=monitor,
            )
        self.monitor = services.monitor or monitor
        services.tracker.add_callback(self.monitor.progress)
        bandwidth = services.bandwidth
        self.pacer = Pacer(
            schedule,
            now=now,
            bandwidth=bandwidth if isinstance(bandwidth, LiveBandwidth) else None,
            monitor=self.monitor,
        )
        self.engine = DownloadEngine(services)
        self.hooks = tuple(hooks)
        self._factory = factory
        self._sources: dict[str, ManagedSource] = {}
        self._created: list[ManagedSource] = []
        self._lock = threading.Lock()
        if executor is None:
            executor = Threads()
        elif isinstance(executor, Executor):
            executor = strategy_for(executor)
        self.strategy: ExecutorStrategy = executor
        self._executor: Executor | None = None
        self._isolation: Isolation | None = None
        for downloader in downloaders:
            self.register(downloader)

    @property
    def cancel_event(self) -> threading.Event:
        """The event that stops the run (shared with every download)."""
        return self.engine.services.cancel

    @property
    def progress_tracker(self) -> ProgressTracker:
        """Where the progress of every download goes."""
        return self.engine.services.tracker

    def register(self, downloader: ManagedSource, *, name: str | None = None) -> None:
        """Dispatch tasks of source ``name`` (default ``downloader.source_name``) to
        ``downloader``, which keeps its own sessions and login."""
        with self._lock:
            self._sources[name or downloader.source_name] = downloader

    def get_downloader(self, source: str) -> ManagedSource:
        """The source called ``source``, built through the factory on first use.

        :raises SourceError: when none is registered and there is no factory.
        """
        with self._lock:
            found: ManagedSource | None = self._sources.get(source)
            if found is not None:
                return found
            if self._factory is None:
                raise SourceError(
                    f"no downloader registered for source {source!r}; registered: "
                    f"{', '.join(sorted(self._sources)) or 'none'}",
                    source=source,
                )
            found = self._factory(source, self.config)
            self._sources[source] = found
            self._created.append(found)
            return found

    def describe(self) -> str:
        """What runs the downloads, e.g. ``8 threads`` or ``2 processes``."""
        return self.strategy.describe(self.config.max_concurrent_downloads)

    def run(
        self, queue: DownloadQueue, *, on_result: ResultHandler | None = None
    ) -> list[DownloadResult]:
        """Drain ``queue``: start ready tasks, at most ``max_concurrent_downloads`` at once.

        A failed task fails its dependents (they are cancelled and never run).

        :param on_result: called on this thread as ``(task, result)`` when each task ends.
        :returns: one result per task that ended in this run, in queue order.
        :raises KeyboardInterrupt: after a clean stop, when interrupted.
        """
        run = _Run(self, queue, on_result)
        try:
            run.drain()
        except KeyboardInterrupt:
            run.interrupt()
            raise
        run.cancel_rest()
        return run.results_in_order()

    def download_many(
        self, contents: Iterable[DownloadableContent], *, on_result: ResultHandler | None = None
    ) -> list[DownloadResult]:
        """Queue ``contents`` (each to its own source) and :meth:`run` them.

        :returns: one result per content, in the order given.
        """
        queue = DownloadQueue()
        for content in contents:
            queue.add_task(DownloadTask.from_content(content))
        return self.run(queue, on_result=on_result)

    def stats(self) -> RunStats:
        """A snapshot of the runs so far: counts, bytes and speed, per source and host."""
        return self._stats.snapshot()

    def pause(self) -> None:
        """Start nothing new, and hold running transfers at their next buffer (their
        ``.part`` files are kept). Thread-safe."""
        self.pacer.pause()

    def resume(self) -> None:
        """Go on after :meth:`pause`. Thread-safe."""
        self.pacer.resume()

    def pause_host(self, host: str, until: dt.datetime) -> None:
        """Send nothing new to ``host`` before ``until`` (wall clock), from every worker of
        the run; other hosts go on."""
        seconds = (until - self.pacer.now()).total_seconds()
        hosts = self.engine.services.hosts
        if hosts is not None:
            hosts.cool(host, seconds)  # threads, and worker processes (they ask this count)
        with self._lock:
            shared = self.strategy.host_gate if self._executor is not None else None
        if shared is not None:
            shared.build().cool(host, seconds)  # a cluster's own count

    def cancel(self) -> None:
        """Stop: running downloads end at their next buffer (on workers too); nothing new
        starts."""
        self.cancel_event.set()
        with self._lock:
            executor, isolation = self._executor, self._isolation
        if executor is not None:
            self.strategy.cancel(executor)  # reaches downloads in other processes
        if isolation is not None:
            isolation.cancel()

    def submit(self, task: DownloadTask) -> Future[DownloadResult]:
        """Start ``task`` on the executor (hooks are the caller's: see :meth:`run`)."""
        executor = self._start_executor()
        if self.strategy.isolated:
            isolation = self._isolated()
            isolation.relay.expect(download_id_of(task))
            return ParsedResult(executor.submit(run_task_json, task.to_json(), isolation.spec))
        try:
            source = self.get_downloader(task.source)
        except DownloadError as exc:
            failed: Future[DownloadResult] = Future()
            failed.set_exception(exc)
            return failed
        return executor.submit(resolve_and_run, self.engine, source, task)

    def _start_executor(self) -> Executor:
        with self._lock:
            if self._executor is None:
                executor = self.strategy.create(self.config.max_concurrent_downloads)
                try:
                    self.strategy.check(executor, self.config)
                except BaseException:
                    if self.strategy.owned:
                        executor.shutdown(wait=False, cancel_futures=True)
                    raise
                self._executor = executor
            return self._executor

    def _isolated(self) -> Isolation:
        """What every worker builds its runtime from, and how it talks back, decided once
        per run: the config with this process's share of the run's limits, the per-host
        gate, the progress relay and the cancel channel."""
        if self._factory is None:
            raise SourceError("an isolated executor needs a picklable source factory")
        with self._lock:
            if self._isolation is None:
                assert self._executor is not None
                self._isolation = Isolation(
                    self.strategy,
                    self._executor,
                    config=self.config,
                    factory=self._factory,
                    post_processors=self.engine.services.post_processors,
                    tracker=self.progress_tracker,
                    hosts=self.engine.services.hosts,
                    follow=self.pacer.follow,
                    follow_rate=self.pacer.follow_rate,
                )
            return self._isolation

    def _settled(self, task: DownloadTask, result: DownloadResult) -> None:
        """``task`` has its result: its progress from a worker is over."""
        with self._lock:
            isolation = self._isolation
        if isolation is not None:
            isolation.relay.settle(download_id_of(task), success=result.is_success)

    def close(self) -> None:
        """Shut the executor down and close the sources this manager built."""
        with self._lock:
            executor, self._executor = self._executor, None
            created, self._created = self._created, []
            isolation, self._isolation = self._isolation, None
        self.progress_tracker.remove_callback(self.monitor.progress)
        if isolation is not None:
            isolation.close()
        if executor is not None and self.strategy.owned:
            executor.shutdown(wait=True, cancel_futures=True)
        if self._segments is not None:
            self._segments.close()
        for source in created:
            source.close()


class _Run:
    """One :meth:`DownloadManager.run`: the tasks in flight and the results so far."""

    def __init__(
        self, manager: DownloadManager, queue: DownloadQueue, on_result: ResultHandler | None
    ) -> None:
        self.manager = manager
        self.queue = queue
        self.on_result = on_result
        self.results: dict[str, DownloadResult] = {}
        self.in_flight: dict[Future[DownloadResult], DownloadTask] = {}
        # futures land here as they finish: one wake-up per result, whatever the concurrency
        self.finished: SimpleQueue[Future[DownloadResult]] = SimpleQueue()

    def drain(self) -> None:
        limit = self.manager.config.max_concurrent_downloads
        cancel = self.manager.cancel_event
        pacer = self.manager.pacer
        stopping = False
        for pending in self.queue.tasks(TaskState.PENDING):
            self.manager.monitor.queued(pending)
        while True:
            if cancel.is_set() and not stopping:  # set by someone else: reach the workers
                stopping = True
                self.manager.cancel()
            while len(self.in_flight) < limit and not cancel.is_set() and pacer.may_start():
                task = pacer.next_due(self.queue.get_next_task)
                if task is None:
                    break
                self._dispatch(task)
            pacer.watch(list(self.in_flight.values()))
            if not self.in_flight:
                if cancel.is_set() or not (pacer.holding or self._waiting()):
                    break
                cancel.wait(0.05)  # the schedule is closed: look again soon
                continue
            # a short timeout keeps this thread responsive to KeyboardInterrupt raised by
            # _thread.interrupt_main() (and Ctrl-C on Windows), which a plain wait ignores
            try:
                future = self.finished.get(timeout=0.1)
            except Empty:
                continue
            task = self.in_flight.pop(future, None)
            if task is not None:  # None: settled already, by interrupt()
                self._settle(future, task)

    def _waiting(self) -> bool:
        """Tasks are ready but the schedule (or a pause) keeps them from starting."""
        return not self.manager.pacer.may_start() and bool(self.queue.tasks(TaskState.PENDING))

    def _dispatch(self, task: DownloadTask) -> None:
        for hook in self.manager.hooks:
            early = hook.before(task)
            if early is not None:
                self.queue.complete_task(task.task_id)
                self._record(task, early)
                return
        self.manager.monitor.started(task)
        future = self.manager.submit(task)
        self.in_flight[future] = task
        future.add_done_callback(self.finished.put)

    def _settle(self, future: Future[DownloadResult], task: DownloadTask) -> None:
        try:
            result = future.result()
        except DownloadError as exc:
            result = _failed(task, exc)
        except CancelledError:
            result = _cancelled(task)
        except Exception as exc:  # noqa: BLE001 - a worker's failure is this task's result
            logger.info("task %s: %s: %s", task.title, type(exc).__name__, exc)
            result = _failed(task, DownloadError(f"{type(exc).__name__}: {exc}", url=task.url))
        if task.state is TaskState.RUNNING:
            if result.is_success:
                self.queue.complete_task(task.task_id)
            elif result.status is ResultStatus.CANCELLED or self.manager.cancel_event.is_set():
                self._cancel_dependents(self.queue.cancel_task(task.task_id, "interrupted")[1:])
            else:
                self._cancel_dependents(self.queue.fail_task(task.task_id, result.error_message))
        self._record(task, result)

    def _cancel_dependents(self, task_ids: Iterable[str]) -> None:
        for task_id in task_ids:
            cancelled = self.queue.get_task(task_id)
            self._record(cancelled, _cancelled(cancelled))

    def _record(self, task: DownloadTask, result: DownloadResult) -> None:
        self.results[task.task_id] = result
        self.manager._settled(task, result)
        self.manager.monitor.finished(task, result)
        for hook in self.manager.hooks:
            hook.after(task, result)
        if self.on_result is not None:
            self.on_result(task, result)

    def interrupt(self) -> None:
        logger.info("interrupted: stopping %d running downloads", len(self.in_flight))
        self.manager.cancel()
        for future in list(self.in_flight):
            task = self.in_flight.pop(future)
            future.cancel()
            if not future.cancelled():
                wait([future])
                self._settle(future, task)
        self.cancel_rest()

    def cancel_rest(self) -> None:
        for task in self.manager.pacer.drop_held():
            self.queue.cancel_task(task.task_id, "the run stopped before this task started")
            self._record(task, _cancelled(task))
        unfinished = [task for task in self.queue.tasks() if not task.state.is_finished]
        self.queue.cancel_all("the run stopped before this task started")
        for task in unfinished:
            self._record(task, _cancelled(task))

    def results_in_order(self) -> list[DownloadResult]:
        tasks = self.queue.tasks()
        return [self.results[task.task_id] for task in tasks if task.task_id in self.results]


def _failed(task: DownloadTask, error: DownloadError) -> DownloadResult:
    return DownloadResult(
        content_id=task.content_id,
        source=task.source,
        status=ResultStatus.FAILED,
        url=task.url,
        error=error,
    )


def _cancelled(task: DownloadTask) -> DownloadResult:
    reason = task.error or "cancelled"
    return DownloadResult(
        content_id=task.content_id,
        source=task.source,
        status=ResultStatus.CANCELLED,
        url=task.url,
        error=DownloadCancelledError(reason, source=task.source),
    )
