"""The worker side of an isolated executor: JSON in, JSON out, one runtime per process.

A worker process (of :class:`~ripstream.downloader.executors.Processes`, or of any executor
handed in, such as a dask cluster) builds its sources, sessions and engine once, on its first
task, and reuses them for every later task, so connection pools stay warm for the whole run.
That cache is the one piece of module state in the package: it is per process by nature, and
guarded by a lock.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import DownloadResult, ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.exceptions import DownloadError, StorageError
from ripstream.downloader.executors import ProcessLink, segment_pool_for
from ripstream.downloader.hosts import HostGate, HostGateFactory
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.relay import Outbox, WorkerLink
from ripstream.downloader.safefs import probe_writable
from ripstream.downloader.schedule import LiveBandwidth
from ripstream.downloader.services import EngineServices, PostProcessor, Source

if TYPE_CHECKING:
    from ripstream.downloader.manager import ManagedSource

__all__ = [
    "ParsedResult",
    "SourceFactory",
    "WorkerSpec",
    "probe_output",
    "resolve_and_run",
    "run_task_json",
    "worker_name",
]

logger = logging.getLogger(__name__)

#: builds the source called ``name`` for ``config`` (picklable: a module-level function)
SourceFactory = Callable[[str, DownloadConfig], "ManagedSource"]


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker needs to build its runtime: plain, picklable values.

    :param config_json: the :class:`DownloadConfig` as JSON.
    :param factory: builds (and logs in) a source by name in the worker.
    :param post_processors: run on every verified file (picklable objects).
    :param host_gate: builds this process's per-host gate (slots and cool-downs), one that
        counts with every worker of the run (the driver's counter, or a cluster's);
        ``None``: a gate that counts in this process only.
    :param link: how this process sends progress back and learns of a cancel or a hold (the
        strategy's :class:`~ripstream.downloader.relay.WorkerLink`); ``None``: a worker
        process of :class:`~ripstream.downloader.executors.ProcessThreadPool` or nothing.

    The config's ``bandwidth_limit`` is this process's share of the run's total (the
    driver divides it by the number of worker processes); when the link tells a share (the
    driver's timetable switched the limit), the process's throttle follows that instead.
    """

    config_json: str
    factory: SourceFactory
    post_processors: tuple[PostProcessor, ...] = ()
    host_gate: HostGateFactory | None = None
    link: WorkerLink | None = None
    #: names this spec across processes: every task carries its own unpickled copy, whose
    #: factory (a partial) hashes by identity, so the runtime cache is keyed by this instead
    key: str = field(default_factory=lambda: os.urandom(16).hex())


@dataclass(slots=True)
class _Runtime:
    config: DownloadConfig
    engine: DownloadEngine
    factory: SourceFactory
    sources: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def source(self, name: str) -> Any:
        with self.lock:
            found = self.sources.get(name)
            if found is None:
                found = self.sources[name] = self.factory(name, self.config)
            return found


_RUNTIMES: dict[str, _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(spec: WorkerSpec) -> _Runtime:
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(spec.key)
        if runtime is None:
            config = DownloadConfig.from_json(spec.config_json)
            rate = config.bandwidth_limit
            link = spec.link or ProcessLink()
            tracker = ProgressTracker()
            send = link.sender()
            if send is not None:
                tracker.add_callback(Outbox(send))
            # the driver decides when the run is held (a pause, a closed window: one clock,
            # its own); this process's throttle only follows the link's switch
            # and its rate (the driver's timetable): this process's share of it, as told
            bandwidth = LiveBandwidth(
                None,
                rate or None,
                resumed=link.resumed_event(),
                told=link.rate(rate or None),
            )
            services = EngineServices(
                cancel=link.cancel_event(),
                tracker=tracker,
                bandwidth=bandwidth,
                post_processors=spec.post_processors,
                segment_pool=segment_pool_for(config),
                hosts=spec.host_gate.build() if spec.host_gate is not None else HostGate(),
            )
            runtime = _Runtime(config, DownloadEngine(services), spec.factory)
            _RUNTIMES[spec.key] = runtime
        return runtime


def resolve_and_run(engine: DownloadEngine, source: Source, task: DownloadTask) -> DownloadResult:
    """Resolve ``task`` (unless it carries its content) and run it on ``engine``."""
    try:
        content = (
            task.to_content()
            if task.url or task.content
            else source.get_download_info(task.content_id)  # type: ignore[attr-defined]
        )
    except DownloadError as exc:
        return DownloadResult(
            content_id=task.content_id, source=task.source, status=ResultStatus.FAILED, error=exc
        )
    return engine.run(source, content, task.file_path)


def run_task_json(task_json: str, spec: WorkerSpec) -> str:
    """Run one task in this process's runtime: the entry point of isolated executors.

    Idempotent: run twice (a cluster may do that after losing a worker), the second run
    finds the file in place and reports it skipped, or resumes the first run's ``.part``.

    :returns: the :class:`DownloadResult` as JSON, with ``worker`` (``host:pid``) set.
    """
    task = DownloadTask.from_json(task_json)
    runtime = _runtime(spec)
    try:
        result = resolve_and_run(runtime.engine, runtime.source(task.source), task)
    except DownloadError as exc:
        result = DownloadResult(
            content_id=task.content_id, source=task.source, status=ResultStatus.FAILED, error=exc
        )
    return dataclasses.replace(result, worker=worker_name()).to_json()


def worker_name() -> str:
    """This process as a user can find it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def probe_output(directory: str) -> str:
    """Check, in a worker, that the output folder is there and writable (a shared folder
    every worker must see): make it, write and remove a small file.

    :returns: :func:`worker_name`.
    :raises StorageError: naming the worker, the folder and what the system said.
    """
    folder = Path(directory)
    try:
        probe_writable(folder)
    except OSError as exc:
        raise StorageError(
            f"worker {worker_name()} cannot write to the output folder {directory!r} "
            f"({exc.strerror or exc}); the output folder must be a path every worker can "
            "see and write (a shared filesystem)",
            path=directory,
        ) from exc
    return worker_name()


class ParsedResult(Future[DownloadResult]):
    """The result that a worker's JSON future describes; cancelling it cancels the worker's."""

    def __init__(self, source: Future[str]) -> None:
        super().__init__()
        self._source = source
        source.add_done_callback(self._copy)

    def cancel(self) -> bool:
        return self._source.cancel()  # _copy mirrors the cancellation

    def _copy(self, source: Future[str]) -> None:
        if source.cancelled():
            Future.cancel(self)
            self.set_running_or_notify_cancel()  # wakes wait()ers, as a real cancel does
            return
        error = source.exception()
        if error is not None:
            self.set_exception(error)
        else:
            self.set_result(DownloadResult.from_json(source.result()))
