"""Progress and cancel across the process boundary of an isolated executor.

A download on a worker process (``--processes``, a dask cluster) reports its bytes to that
process's own :class:`~ripstream.downloader.progress.ProgressTracker`. An :class:`Outbox`
there collects the tracker's snapshots (already at most ten a second per download) and sends
them in batches, at most one batch per ``interval`` from a process, always at a download's
start and end. On the driver, a :class:`Relay` replays them into the manager's tracker, so
the CLI's bars, ``--events``, :meth:`DownloadManager.stats` and ``/metrics`` see bytes move
during a long download, not only when it ends.

How the batches travel is the executor strategy's business (a queue back from a worker
process; dask's event topics): :meth:`~ripstream.downloader.executors.ExecutorStrategy.
open_channel` returns a :class:`WorkerChannel` whose :class:`WorkerLink` (a small picklable value)
goes to every worker inside the :class:`~ripstream.downloader.worker.WorkerSpec`, whose
``cancel`` reaches downloads running there, and whose ``hold`` holds them at their next buffer
(the run is paused, or its window closed) and lets them go on, and whose ``limit`` switches
their throttles to a new share of the run's limit (the bandwidth timetable switched it): the
driver decides, on its own clock, and every worker's throttle follows (its ``.part`` files
and connections stay).

A batch is a list of lists of plain values (JSON and msgpack carry it)::

    [["http:https://host/a.flac", 1048576, 4194304, 0, "downloading", "a.flac", ""], ...]
     download id, bytes done, total (or None), bytes resumed, state, title, note
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ripstream.downloader.progress import DownloadProgress, ProgressState, ProgressTracker

__all__ = ["Batch", "Outbox", "Relay", "WorkerChannel", "WorkerLink", "encode"]

#: snapshots as plain lists (see the module docstring)
Batch = list[list[Any]]


class WorkerLink(Protocol):
    """What a worker process gets to talk back: picklable, used once per worker runtime."""

    def sender(self) -> Callable[[Batch], None] | None:
        """Where this process sends progress batches (``None``: nowhere)."""
        ...

    def cancel_event(self) -> threading.Event:
        """The event that the driver sets to stop this run's downloads in this process."""
        ...

    def resumed_event(self) -> threading.Event:
        """Set while this run's transfers may move in this process; the driver clears it
        to hold them (a pause, a closed window) and sets it again to let them go on."""
        ...

    def rate(self, default: float | None) -> Callable[[], float | None]:
        """Reads this process's share of the run's bandwidth limit as the driver last set
        it (``None``: unlimited; the timetable switched it), ``default`` until it has."""
        ...


def _no_hold(held: bool) -> None:
    """A channel whose workers cannot be held (their transfers run on)."""


def _no_limit(share: float | None) -> None:
    """A channel whose workers keep the share of the limit they started with."""


@dataclass(frozen=True, slots=True)
class WorkerChannel:
    """The driver's end of a :class:`WorkerLink`.

    :param link: sent to every worker.
    :param cancel: stops the downloads running on the workers (their ``.part`` kept).
    :param stop: ends the delivery of progress (when the manager closes).
    :param hold: ``hold(True)`` holds every transfer running on the workers at its next
        buffer; ``hold(False)`` lets them go on.
    :param limit: ``limit(share)`` switches every worker's throttle to ``share`` bytes a
        second (``None``: unlimited) at its next buffer, also in workers that join later.
    """

    link: WorkerLink
    cancel: Callable[[], None]
    stop: Callable[[], None]
    hold: Callable[[bool], None] = _no_hold
    limit: Callable[[float | None], None] = _no_limit


def encode(progress: DownloadProgress) -> list[Any]:
    """One snapshot as a list of plain values."""
    return [
        progress.download_id,
        progress.downloaded_bytes,
        progress.total_bytes,
        progress.resumed_bytes,
        progress.state.value,
        progress.title,
        progress.note,
    ]


@dataclass(frozen=True, slots=True)
class _Update:
    download_id: str
    done: int
    total: int | None
    resumed: int
    state: ProgressState
    title: str
    note: str

    @classmethod
    def decode(cls, item: list[Any]) -> _Update:
        download_id, done, total, resumed, state, title, note = item
        total = None if total is None else int(total)
        return cls(str(download_id), int(done), total, int(resumed), ProgressState(state),
                   str(title), str(note))  # fmt: skip


class Outbox:
    """A progress callback in a worker process that sends snapshots in batches. Thread-safe.

    The latest snapshot of each download waits in the box; the box is sent when ``interval``
    has passed since the last send, or at once when a download ends or notes a retry (a
    small file's start and end usually leave together, as its end). Sending happens under
    the box's lock, so batches leave in order.

    :param send: delivers one batch (a queue's ``put``, a dask event).
    :param interval: the least seconds between two batches of routine progress.
    """

    def __init__(
        self,
        send: Callable[[Batch], None],
        *,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._box: dict[str, list[Any]] = {}
        self._last = float("-inf")

    def __call__(self, download_id: str, progress: DownloadProgress, /) -> None:
        urgent = progress.is_finished or bool(progress.note)
        now = self._clock()
        with self._lock:
            self._box[download_id] = encode(progress)
            if not urgent and now - self._last < self._interval:
                return
            batch, self._box = list(self._box.values()), {}
            self._last = now
            self._send(batch)


@dataclass(slots=True)
class _Known:
    started: bool = False
    done: int = 0
    resumed: int = 0
    total: int | None = None
    note: str = ""


class Relay:
    """Replays the progress of downloads on workers into the driver's tracker. Thread-safe.

    Only downloads the manager has dispatched and not yet settled are replayed: a batch that
    arrives after the task's result (another path through a cluster) is dropped, and
    :meth:`settle` ends a download whose last batch never came.

    :param tracker: the driver's tracker (its callbacks draw bars, write events, count).
    """

    def __init__(self, tracker: ProgressTracker) -> None:
        self._tracker = tracker
        self._lock = threading.Lock()
        self._known: dict[str, _Known] = {}

    def expect(self, download_id: str) -> None:
        """``download_id`` is about to be sent to a worker."""
        with self._lock:
            self._known[download_id] = _Known()

    def settle(self, download_id: str, *, success: bool) -> None:
        """``download_id``'s result has arrived: replay nothing more of it."""
        with self._lock:
            known = self._known.pop(download_id, None)
            if known is not None and known.started:
                self._tracker.finish(download_id, success=success)

    def deliver(self, batch: Batch) -> None:
        """Replay one batch from a worker."""
        for item in batch:
            update = _Update.decode(item)
            with self._lock:
                known = self._known.get(update.download_id)
                if known is not None:
                    self._replay(update, known)

    def _replay(self, update: _Update, known: _Known) -> None:
        tracker, download_id = self._tracker, update.download_id
        if not known.started:
            tracker.start(download_id, update.total, title=update.title, already=update.resumed)
            known.started, known.total = True, update.total
            known.done = known.resumed = update.resumed
        if update.resumed != known.resumed:  # the server told how much it resumes
            tracker.set_total(download_id, update.total, already=update.resumed)
            known.done = known.resumed = update.resumed
            known.total = update.total
        elif update.total != known.total:
            tracker.set_total(download_id, update.total)
            known.total = update.total
        if update.note and update.note != known.note:
            tracker.note(download_id, update.note)
        known.note = update.note
        if update.done != known.done:
            tracker.update(download_id, update.done - known.done)
            known.done = update.done
        if update.state in (ProgressState.COMPLETED, ProgressState.FAILED):
            tracker.finish(download_id, success=update.state is ProgressState.COMPLETED)
            del self._known[download_id]
