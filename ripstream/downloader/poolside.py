"""A :class:`~ripstream.downloader.executors.ProcessThreadPool` worker process's end of its pool.

What the parent shares with each of its worker processes when it starts them: the result
queue (results and progress go back on it), the parent's bandwidth share (a shared double the
parent sets, :meth:`~ripstream.downloader.executors.ProcessThreadPool.limit_running`), and
the events the process's watcher thread sets and clears as the parent asks (cancel, hold).
They are per process by nature: a worker process has one parent. :class:`ProcessLink` is the
:class:`~ripstream.downloader.relay.WorkerLink` that a download's runtime reads them through.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ripstream.downloader.relay import Batch

__all__ = ["THIS_WORKER", "PoolWorker", "ProcessLink", "process_cancel_event", "told_share"]


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


@dataclass(slots=True)
class PoolWorker:
    """This process's end of the pool it works for (set in a pool's worker process only).

    :param results: the pool's result queue.
    :param rate: the parent's shared double: this process's share of the run's bandwidth
        limit in bytes a second (NaN: not told; 0: unlimited).
    :param cancel: set when the parent asks this process to stop, or disappears.
    :param resumed: cleared while the parent holds the run (a pause, a closed window).
    """

    results: Any = None
    rate: Any = None
    cancel: threading.Event = field(default_factory=threading.Event)
    resumed: threading.Event = field(default_factory=_set_event)


#: this process's end of its pool (empty in a process that is no pool's worker)
THIS_WORKER = PoolWorker()


def told_share(shared: Any, default: float | None) -> float | None:
    """The limit in a shared double (``None``: unlimited), or ``default`` when the parent has
    not set it (NaN) or there is none."""
    if shared is None:
        return default
    value = float(shared.value)
    if math.isnan(value):
        return default
    return value or None


@dataclass(frozen=True, slots=True)
class ProcessLink:
    """The :class:`~ripstream.downloader.relay.WorkerLink` of a ``ProcessThreadPool``'s
    workers: progress goes back on the pool's result queue, the process's cancel event is
    set when the parent calls ``cancel_running``, its resumed event follows
    ``hold_running`` and its rate follows ``limit_running``."""

    def sender(self) -> Callable[[Batch], None] | None:
        """Puts batches on this worker process's result queue (``None`` elsewhere)."""
        results = THIS_WORKER.results
        return None if results is None else functools.partial(_send_progress, results)

    def cancel_event(self) -> threading.Event:
        """This worker process's cancel event."""
        return THIS_WORKER.cancel

    def resumed_event(self) -> threading.Event:
        """This worker process's resumed event (cleared while the parent holds the run)."""
        return THIS_WORKER.resumed

    def rate(self, default: float | None) -> Callable[[], float | None]:
        """Reads this process's share of the run's limit as the parent last set it
        (``None``: unlimited), ``default`` until it has."""
        return functools.partial(told_share, THIS_WORKER.rate, default)


def _send_progress(results: Any, batch: Batch) -> None:
    results.put(("progress", -1, batch))


def process_cancel_event() -> threading.Event:
    """The event that stops this worker process's downloads (unset in the main process)."""
    return THIS_WORKER.cancel
