"""The worker side of an isolated executor: JSON in, JSON out, one runtime per process.

A worker process (of :class:`~ripstream.downloader.executors.Processes`, or of any executor
handed in, such as a dask cluster) builds its sources, sessions and engine once, on its first
task, and reuses them for every later task, so connection pools stay warm for the whole run.
That cache is the one piece of module state in the package: it is per process by nature, and
guarded by a lock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import DownloadResult, ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.exceptions import DownloadError
from ripstream.downloader.executors import process_cancel_event, segment_pool_for
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.services import EngineServices, PostProcessor, Source

if TYPE_CHECKING:
    from ripstream.downloader.manager import ManagedSource

__all__ = ["SourceFactory", "WorkerSpec", "resolve_and_run", "run_task_json"]

logger = logging.getLogger(__name__)

#: builds the source called ``name`` for ``config`` (picklable: a module-level function)
SourceFactory = Callable[[str, DownloadConfig], "ManagedSource"]


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What a worker needs to build its runtime: plain, picklable values.

    :param config_json: the :class:`DownloadConfig` as JSON.
    :param factory: builds (and logs in) a source by name in the worker.
    :param post_processors: run on every verified file (picklable objects).
    """

    config_json: str
    factory: SourceFactory
    post_processors: tuple[PostProcessor, ...] = ()


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


_RUNTIMES: dict[WorkerSpec, _Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(spec: WorkerSpec) -> _Runtime:
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(spec)
        if runtime is None:
            config = DownloadConfig.from_json(spec.config_json)
            services = EngineServices(
                cancel=process_cancel_event(),
                post_processors=spec.post_processors,
                segment_pool=segment_pool_for(config),
            )
            runtime = _RUNTIMES[spec] = _Runtime(config, DownloadEngine(services), spec.factory)
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

    :returns: the :class:`DownloadResult` as JSON (with the process id in ``worker``).
    """
    task = DownloadTask.from_json(task_json)
    runtime = _runtime(spec)
    try:
        result = resolve_and_run(runtime.engine, runtime.source(task.source), task)
    except DownloadError as exc:
        result = DownloadResult(
            content_id=task.content_id, source=task.source, status=ResultStatus.FAILED, error=exc
        )
    return result.to_json()
