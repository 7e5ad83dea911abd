"""DownloadManager: drains a DownloadQueue through a bounded executor.

The manager owns its executor, cancel event and path claims and hands them to the downloaders
it dispatches to, one per source. It never has more than ``max_concurrent_downloads`` tasks in
flight. On Ctrl-C (``KeyboardInterrupt``) it sets the cancel event, so running downloads stop
at their next buffer and keep their ``.part`` files for resume, cancels what has not started,
waits for the running ones, and re-raises.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING

from ripstream.downloader.base import BaseDownloader, PathClaims
from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import DownloadableContent, DownloadResult, ResultStatus
from ripstream.downloader.exceptions import DownloadCancelledError, DownloadError
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask, TaskState
from ripstream.downloader.ratelimit import TokenBucket
from ripstream.downloader.resources import Closing
from ripstream.downloader.session import SessionManager

if TYPE_CHECKING:
    from ripstream.library.archive import DownloadArchive

__all__ = ["DownloadManager", "execute_task"]

logger = logging.getLogger(__name__)

ResultHandler = Callable[[DownloadTask, DownloadResult], None]


def execute_task(task_json: str, config_json: str) -> DownloadResult:
    """Run one task in a fresh downloader: the entry point for process-based executors.

    Both arguments are JSON (a :class:`DownloadTask` and a :class:`DownloadConfig`), and the
    result is a picklable :class:`DownloadResult`, so nothing live crosses the boundary.
    """
    from ripstream.sources import create_downloader

    task = DownloadTask.from_json(task_json)
    config = DownloadConfig.from_json(config_json)
    with create_downloader(task.source, config) as downloader:
        return _run_task(downloader, task)


def _run_task(downloader: BaseDownloader, task: DownloadTask) -> DownloadResult:
    try:
        content = (
            task.to_content()
            if task.url or task.content
            else downloader.get_download_info(task.content_id)
        )
    except DownloadError as exc:
        return DownloadResult(
            content_id=task.content_id, source=task.source, status=ResultStatus.FAILED, error=exc
        )
    return downloader.download(content, task.file_path)


class DownloadManager(Closing):
    """Runs queued tasks concurrently, each on the downloader registered for its source.

    Thread-safe to :meth:`cancel` from another thread; :meth:`run` itself is called from one.

    Example::

        with DownloadManager(config, downloaders=[MyService(config)]) as manager:
            queue = DownloadQueue()
            queue.add_task(DownloadTask(...))
            results = manager.run(queue)

    :param downloaders: downloaders to dispatch to, by their ``source_name``.
    :param factory: builds a downloader for a source not registered yet (default: the
        installed sources, see :mod:`ripstream.sources`).
    :param executor: any ``concurrent.futures.Executor``; by default the manager builds a
        ``ThreadPoolExecutor(max_concurrent_downloads)`` and shuts it down on close. A
        non-thread executor gets plain JSON tasks and runs each in a fresh downloader.
    :param cancel_event: setting it stops the run as Ctrl-C does (running downloads end at
        their next buffer and keep their ``.part`` files); by default the manager makes one.
    """

    def __init__(
        self,
        config: DownloadConfig | None = None,
        *,
        downloaders: Iterable[BaseDownloader] = (),
        factory: Callable[[str, DownloadConfig], BaseDownloader] | None = None,
        session_manager: SessionManager | None = None,
        progress_tracker: ProgressTracker | None = None,
        executor: Executor | None = None,
        cancel_event: threading.Event | None = None,
    ) -> None:
        self.config = config or DownloadConfig()
        self.session_manager = session_manager or SessionManager(self.config)
        self.archive: DownloadArchive | None = None
        self._shared_tracker = progress_tracker is not None
        self.progress_tracker = progress_tracker or ProgressTracker()
        self.cancel_event = cancel_event or threading.Event()
        self.claims = PathClaims()
        self.bandwidth = (
            TokenBucket(self.config.bandwidth_limit) if self.config.bandwidth_limit else None
        )
        self._factory = factory
        self._downloaders: dict[str, BaseDownloader] = {}
        self._lock = threading.Lock()
        self._own_executor = executor is None
        self._executor: Executor = executor or ThreadPoolExecutor(
            self.config.max_concurrent_downloads, thread_name_prefix="ripstream"
        )
        self._isolated = not isinstance(self._executor, ThreadPoolExecutor)
        for downloader in downloaders:
            self.register(downloader)

    def register(self, downloader: BaseDownloader) -> None:
        """Dispatch tasks of ``downloader.source_name`` to ``downloader``.

        The downloader is joined to this manager's cancel event, bandwidth limit and path
        claims, so Ctrl-C and ``--limit-rate`` cover every source at once, and to the
        manager's progress tracker when one was given. It keeps its own sessions (and with
        them any login it did).
        """
        downloader.cancel_event = self.cancel_event
        downloader.claims = self.claims
        if self._shared_tracker:
            downloader.progress_tracker = self.progress_tracker
        if self.archive is not None:
            downloader.archive = self.archive
        if self.bandwidth is not None:
            downloader.bandwidth = self.bandwidth
        with self._lock:
            self._downloaders[downloader.source_name] = downloader

    def get_downloader(self, source: str) -> BaseDownloader:
        """The downloader for ``source``, created through the factory on first use.

        :raises SourceError: when no downloader is registered or installed for ``source``.
        """
        with self._lock:
            downloader = self._downloaders.get(source)
        if downloader is not None:
            return downloader
        factory = self._factory
        if factory is None:
            from ripstream.sources import create_downloader

            factory = create_downloader
        downloader = factory(source, self.config)
        downloader.session_manager = self.session_manager
        downloader.progress_tracker = self.progress_tracker
        self.register(downloader)
        return downloader

    def run(
        self, queue: DownloadQueue, *, on_result: ResultHandler | None = None
    ) -> list[DownloadResult]:
        """Drain ``queue``: start ready tasks, at most ``max_concurrent_downloads`` at once.

        A failed task fails its dependents (they are cancelled and never run).

        :param on_result: called on this thread as ``(task, result)`` when each task ends.
        :returns: one result per task that ended in this run, in queue order.
        :raises KeyboardInterrupt: after a clean stop, when interrupted.
        """
        results: dict[str, DownloadResult] = {}
        in_flight: dict[Future[DownloadResult], DownloadTask] = {}
        limit = self.config.max_concurrent_downloads

        def record(task: DownloadTask, result: DownloadResult) -> None:
            results[task.task_id] = result
            if on_result is not None:
                on_result(task, result)

        def settle(future: Future[DownloadResult], task: DownloadTask) -> None:
            try:
                result = future.result()
            except DownloadError as exc:
                result = DownloadResult(
                    content_id=task.content_id,
                    source=task.source,
                    status=ResultStatus.FAILED,
                    error=exc,
                )
            if task.state is TaskState.RUNNING:
                if result.is_success:
                    queue.complete_task(task.task_id)
                elif result.status is ResultStatus.CANCELLED or self.cancel_event.is_set():
                    for cancelled_id in queue.cancel_task(task.task_id, "interrupted")[1:]:
                        cancelled = queue.get_task(cancelled_id)
                        record(cancelled, _cancelled_result(cancelled))
                else:
                    for cancelled_id in queue.fail_task(task.task_id, result.error_message):
                        cancelled = queue.get_task(cancelled_id)
                        record(cancelled, _cancelled_result(cancelled))
            record(task, result)

        try:
            while True:
                while len(in_flight) < limit and not self.cancel_event.is_set():
                    task = queue.get_next_task()
                    if task is None:
                        break
                    in_flight[self._submit(task)] = task
                if not in_flight:
                    break
                # a short timeout keeps this thread responsive to KeyboardInterrupt raised by
                # _thread.interrupt_main() (and Ctrl-C on Windows), which a plain wait ignores
                done, _ = wait(in_flight, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(future, in_flight.pop(future))
        except KeyboardInterrupt:
            logger.warning("interrupted: stopping %d running downloads", len(in_flight))
            self.cancel()
            for future in list(in_flight):
                task = in_flight.pop(future)
                future.cancel()
                if not future.cancelled():
                    wait([future])
                    settle(future, task)
            self._cancel_rest(queue, record)
            raise
        self._cancel_rest(queue, record)
        return [results[task.task_id] for task in queue.tasks() if task.task_id in results]

    def download_many(
        self, contents: Iterable[DownloadableContent], *, on_result: ResultHandler | None = None
    ) -> list[DownloadResult]:
        """Queue ``contents`` (each to its own source) and :meth:`run` them."""
        queue = DownloadQueue()
        for content in contents:
            queue.add_task(DownloadTask.from_content(content))
        return self.run(queue, on_result=on_result)

    def cancel(self) -> None:
        """Stop: running downloads end at their next buffer; nothing new starts."""
        self.cancel_event.set()

    def _submit(self, task: DownloadTask) -> Future[DownloadResult]:
        if self._isolated:
            return self._executor.submit(execute_task, task.to_json(), self.config.to_json())
        try:
            downloader = self.get_downloader(task.source)
        except DownloadError as exc:
            future: Future[DownloadResult] = Future()
            future.set_exception(exc)
            return future
        return self._executor.submit(_run_task, downloader, task)

    def _cancel_rest(self, queue: DownloadQueue, record: ResultHandler) -> None:
        unfinished = [task for task in queue.tasks() if not task.state.is_finished]
        queue.cancel_all("the run stopped before this task started")
        for task in unfinished:
            record(task, _cancelled_result(task))

    def close(self) -> None:
        """Shut the executor down and close every session."""
        if self._own_executor:
            self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            downloaders = list(self._downloaders.values())
        for downloader in downloaders:
            downloader.close()
        self.session_manager.close()


def _cancelled_result(task: DownloadTask) -> DownloadResult:
    reason = task.error or "cancelled"
    return DownloadResult(
        content_id=task.content_id,
        source=task.source,
        status=ResultStatus.CANCELLED,
        url=task.url,
        error=DownloadCancelledError(reason, source=task.source),
    )
