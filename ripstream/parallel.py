"""Many plain URLs over several processes: each runs its own batch with its share of the jobs.

For thousands of small files a single Python process is bound by one core (the GIL), however
many threads it runs; ``--processes`` splits the list round-robin over worker processes, each
with ``ceil(jobs / processes)`` download threads, so the whole run never has more than
``jobs`` downloads in flight plus rounding. Workers share the batch journal (appends of whole
lines) and the download archive (sqlite in WAL mode). Results come back to the parent over a
queue, so ``--json`` and the summary work as in one process.

A worker stops cleanly (cancelled results, ``.part`` files kept) when the parent asks, and
on its own when the parent disappears (``kill -9``), so nothing keeps downloading unseen.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from ripstream.batch import Batch, BatchItem, unique_items
from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import DownloadResult
from ripstream.journal import BatchJournal
from ripstream.library.archive import DownloadArchive

__all__ = ["ParallelPlan", "auto_processes", "run_in_processes"]

logger = logging.getLogger(__name__)

#: Below this many URLs, starting processes costs more than it saves.
MIN_ITEMS_PER_PROCESS = 50
_DONE = "done"


def auto_processes(items: int, jobs: int, cpus: int | None = None) -> int:
    """How many processes ``--processes 0`` (auto) uses for ``items`` URLs and ``jobs``."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(cpus, jobs, items // MIN_ITEMS_PER_PROCESS, 8))


@dataclass(frozen=True, slots=True)
class ParallelPlan:
    """What every worker needs, as plain picklable values."""

    config_json: str
    journal: Path | None
    archive: Path | None


def _watch(stop: Any, cancel: threading.Event, parent: int) -> None:
    """Cancel this worker when the parent asks or is gone.

    ``stop`` is a shared byte, polled: a multiprocessing Event would make the parent's
    ``set()`` wait for waiters that have already exited.
    """
    while not cancel.wait(0.2):
        if stop.value or os.getppid() != parent:
            cancel.set()


def _worker(
    plan: ParallelPlan, items: list[BatchItem], results: Any, stop: Any, parent: int
) -> None:
    config = DownloadConfig.from_json(plan.config_json)
    cancel = threading.Event()
    threading.Thread(target=_watch, args=(stop, cancel, parent), daemon=True).start()
    with contextlib.ExitStack() as stack:
        journal = stack.enter_context(BatchJournal(plan.journal)) if plan.journal else None
        archive = stack.enter_context(DownloadArchive(plan.archive)) if plan.archive else None
        batch = Batch(config, journal=journal, archive=archive, cancel_event=cancel)
        try:
            batch.run(items, on_result=lambda task, result: results.put((task.title, result)))
        except KeyboardInterrupt:
            cancel.set()  # the terminal's Ctrl-C reached this process too; the parent reports
    results.put(_DONE)


def run_in_processes(
    items: list[BatchItem],
    config: DownloadConfig,
    processes: int,
    *,
    journal: Path | None = None,
    archive: Path | None = None,
    on_result: Callable[[str, DownloadResult], None] | None = None,
) -> list[DownloadResult]:
    """Download ``items`` over ``processes`` worker processes; returns every result.

    :param on_result: called in this process as ``(title, result)`` as each file ends.
    :raises KeyboardInterrupt: after the workers stopped, when interrupted.
    """
    if archive is not None:
        with DownloadArchive(archive) as created:
            len(created)  # create it (and switch it to WAL) once, before the workers share it
    jobs = math.ceil(config.max_concurrent_downloads / processes)
    shared = replace(config, max_concurrent_downloads=jobs)
    plan = ParallelPlan(shared.to_json(), journal, archive)
    # fork keeps the workers' start-up cheap (modules already loaded); no thread runs here yet
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context: Any = multiprocessing.get_context(method)
    results: Any = context.Queue()
    stop = context.RawValue("b", 0)
    items = unique_items(items)  # a URL listed twice must not go to two workers
    chunks = [items[index::processes] for index in range(processes)]
    workers: list[BaseProcess] = [
        context.Process(
            target=_worker,
            args=(plan, chunk, results, stop, os.getpid()),
            name=f"ripstream-worker-{index}",
            daemon=True,
        )
        for index, chunk in enumerate(chunks)
        if chunk
    ]
    for worker in workers:
        worker.start()
    collected: list[DownloadResult] = []
    try:
        for title, result in _drain(results, workers):
            collected.append(result)
            if on_result is not None:
                on_result(title, result)
    except KeyboardInterrupt:
        stop.value = 1
        for title, result in _drain(results, workers):
            collected.append(result)
            if on_result is not None:
                on_result(title, result)
        raise
    finally:
        stop.value = 1
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
                worker.join()
        results.close()
        results.join_thread()
    return collected


def _drain(results: Any, workers: list[BaseProcess]) -> Iterator[tuple[str, DownloadResult]]:
    """Results until every worker said it is done (or died without saying so)."""
    running = len(workers)
    while running:
        try:
            message = results.get(timeout=0.5)
        except queue.Empty:
            alive = sum(worker.is_alive() for worker in workers)
            if alive < running and results.empty():
                logger.warning("%d worker process(es) ended without finishing", running - alive)
                running = alive
            continue
        if message == _DONE:
            running -= 1
        else:
            yield message
