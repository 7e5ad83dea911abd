"""Downloads on worker processes and on a dask cluster, seen from the driver while they run:
bytes move in the driver's progress, events, stats and metrics before the file ends, and a
cancel stops the downloads that are running on the workers (their .part kept for resume),
a pause or a closed window holds them where they are until the run goes on, and a switch of
the bandwidth timetable switches their throttles while they run."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ripstream.app.metrics import PrometheusSink
from ripstream.downloader import DownloadResult, ResultStatus
from ripstream.downloader.cluster import DaskCluster
from ripstream.downloader.events import EventKind, RunEvent
from ripstream.downloader.executors import ExecutorStrategy, Processes
from ripstream.downloader.manager import DownloadManager
from ripstream.downloader.progress import DownloadProgress, ProgressState, ProgressTracker
from ripstream.downloader.queue import DownloadQueue, TaskState
from ripstream.downloader.safefs import PART_SUFFIX
from ripstream.downloader.schedule import RateTimetable, Schedule, Window
from ripstream.sources import create_downloader
from tests.support.batches import queue_of, sha
from tests.support.clock import Timeline
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config

#: a loop limit for what a working cancel does in well under a second, not a speed claim
BOUND = 20.0


@pytest.fixture(params=["processes", "dask"])
def strategy(request: pytest.FixtureRequest) -> ExecutorStrategy:
    """Two worker processes, or the session's two-worker dask LocalCluster."""
    if request.param == "processes":
        return Processes(2)
    pytest.importorskip("distributed")
    return DaskCluster(request.getfixturevalue("dask_client"))


def manager_for(
    strategy: ExecutorStrategy,
    out_dir: Path,
    tracker: ProgressTracker,
    bandwidth: float | None = None,
    **kwargs: Any,
) -> DownloadManager:
    config = make_config(out_dir, jobs=2, segments=1, max_retries=0)
    config.bandwidth_limit = bandwidth
    return DownloadManager(
        config, factory=create_downloader, executor=strategy, progress_tracker=tracker, **kwargs
    )


def bytes_metric(sink: PrometheusSink) -> float:
    for line in sink.exposition().decode().splitlines():
        if line.startswith('ripstream_bytes_total{source="http"}'):
            return float(line.rpartition(" ")[2])
    return 0.0


def test_bytes_from_a_worker_reach_the_driver_while_the_file_downloads(
    strategy: ExecutorStrategy, server: TestServer, out_dir: Path
) -> None:
    body = make_body(1_500_000, 7)
    server.add("/live.bin", body, rate_limit_bps=500_000)  # three seconds on the wire
    size = len(body)
    snapshots: list[DownloadProgress] = []
    events: list[RunEvent] = []
    metrics = PrometheusSink()
    scraped_mid_run: list[float] = []

    def watch(event: RunEvent) -> None:  # after the metrics sink has counted the event
        events.append(event)
        if event.event is EventKind.PROGRESS and 0 < (event.bytes or 0) < size:
            scraped_mid_run.append(bytes_metric(metrics))

    tracker = ProgressTracker()
    tracker.add_callback(lambda _id, progress: snapshots.append(progress))
    with manager_for(strategy, out_dir, tracker, events=[metrics, watch]) as manager:
        [result] = manager.run(queue_of(server, ["/live.bin"]))
        stats = manager.stats()

    assert result.status is ResultStatus.COMPLETED, result.error_message
    assert sha((out_dir / "live.bin").read_bytes()) == sha(body)
    # the driver saw the bytes move before the download ended ...
    assert any(
        s.state is ProgressState.DOWNLOADING and 0 < s.downloaded_bytes < size for s in snapshots
    )
    kinds = [e.event for e in events]
    middle = [
        i
        for i, e in enumerate(events)
        if e.event is EventKind.PROGRESS and 0 < (e.bytes or 0) < size
    ]
    assert middle
    assert middle[0] < kinds.index(EventKind.COMPLETED)
    assert scraped_mid_run
    assert 0 < scraped_mid_run[0] < size
    # ... and the totals at the end are the file's size, counted once
    assert [s.downloaded_bytes for s in snapshots if s.is_finished] == [size]
    assert stats.bytes_done == size
    assert stats.completed == 1
    assert bytes_metric(metrics) == size


def run_in_thread(
    run: Callable[[], list[DownloadResult]],
) -> tuple[threading.Thread, list[list[DownloadResult]]]:
    outcome: list[list[DownloadResult]] = []
    thread = threading.Thread(target=lambda: outcome.append(run()), name="test-run")
    thread.start()
    return thread, outcome


def test_a_cancel_stops_the_downloads_running_on_workers_and_a_rerun_resumes(
    strategy: ExecutorStrategy, server: TestServer, out_dir: Path
) -> None:
    body = make_body(6_000_000, 8)
    resource = server.add("/big.bin", body, rate_limit_bps=200_000)  # thirty seconds
    moving = threading.Event()
    tracker = ProgressTracker()
    tracker.add_callback(
        lambda _id, progress: moving.set() if 0 < progress.downloaded_bytes < len(body) else None
    )
    manager = manager_for(strategy, out_dir, tracker)
    queue: DownloadQueue = queue_of(server, ["/big.bin"])
    try:
        thread, outcome = run_in_thread(lambda: manager.run(queue))
        assert moving.wait(BOUND), "no progress came back from the worker"
        manager.cancel_event.set()  # as a library user stops a run: the event alone
        thread.join(BOUND)
        assert not thread.is_alive(), "the run did not end after the cancel"
    finally:
        manager.close()
    [result] = outcome[0]
    assert result.status is ResultStatus.CANCELLED
    # the worker stopped sending for the file: the server's response ends well short of it
    server.wait_until(lambda: server.in_flight == 0, timeout=BOUND)
    assert server.bytes_sent("/big.bin") < len(body)
    assert not (out_dir / "big.bin").exists()
    [part] = [p for p in out_dir.iterdir() if p.name.endswith(PART_SUFFIX)]
    kept = part.stat().st_size
    assert kept > 0

    resource.rate_limit_bps = None
    server.reset_stats()
    with manager_for(strategy, out_dir, ProgressTracker()) as again:
        [second] = again.run(queue_of(server, ["/big.bin"]))
    assert second.status is ResultStatus.COMPLETED, second.error_message
    assert sha((out_dir / "big.bin").read_bytes()) == sha(body)
    ranges = [r.range_header for r in server.requests_for("/big.bin")]
    assert any(value and not value.startswith("bytes=0-") for value in ranges), ranges


#: the held file: larger than what the socket buffers on both ends of loopback take in
#: once its reader stops (about 6 MB here), so the server's count stops short of its end
HELD_SIZE = 16_000_000
#: the server's pace while the file is held (it goes full speed once resumed)
HELD_PACE = 4_000_000


def settled(read: Callable[[], int], polls: int = 8) -> int:
    """``read()`` once it has stayed the same across ``polls`` looks a tenth of a second
    apart (a moving transfer changes it within a few); fails if it never settles."""
    last, same = read(), 0
    deadline = time.monotonic() + BOUND
    while same < polls:
        assert time.monotonic() < deadline, f"still moving: {last}"
        time.sleep(0.1)
        now = read()
        same, last = (same + 1 if now == last else 0), now
    return last


def moving_tracker(size: int) -> tuple[ProgressTracker, threading.Event]:
    """A driver's tracker, and an event set once a worker's bytes reach it mid-file."""
    moving = threading.Event()
    tracker = ProgressTracker()
    tracker.add_callback(
        lambda _id, progress: moving.set() if 0 < progress.downloaded_bytes < size else None
    )
    return tracker, moving


def assert_held(server: TestServer, out_dir: Path, queue: DownloadQueue, size: int) -> None:
    """The server stopped sending the file short of its end; nothing is finished."""
    sent = settled(lambda: server.bytes_sent("/held.bin"))
    assert 0 < sent < size
    assert not (out_dir / "held.bin").exists()
    [part] = [p for p in out_dir.iterdir() if p.name.endswith(PART_SUFFIX)]
    assert 0 < part.stat().st_size < size
    assert [t.state for t in queue.tasks()] == [TaskState.RUNNING]


def test_a_pause_holds_the_downloads_running_on_workers_and_resume_finishes_them(
    strategy: ExecutorStrategy, server: TestServer, out_dir: Path
) -> None:
    body = make_body(HELD_SIZE, 9)
    resource = server.add("/held.bin", body, rate_limit_bps=HELD_PACE)
    tracker, moving = moving_tracker(len(body))
    queue = queue_of(server, ["/held.bin"])
    with manager_for(strategy, out_dir, tracker) as manager:
        thread, outcome = run_in_thread(lambda: manager.run(queue))
        try:
            assert moving.wait(BOUND), "no progress came back from the worker"
            manager.pause()
            assert_held(server, out_dir, queue, len(body))
            [download] = tracker.active
            held = tracker.get_progress(download)
            assert held is not None
            assert held.downloaded_bytes < len(body)
        finally:
            resource.rate_limit_bps = None
            manager.resume()
            thread.join(BOUND * 3)
        assert not thread.is_alive(), "the run did not end after resume"
    [result] = outcome[0]
    assert result.status is ResultStatus.COMPLETED, result.error_message
    assert sha((out_dir / "held.bin").read_bytes()) == sha(body)
    assert len(server.requests_for("/held.bin")) == 1  # held on its connection


def test_a_window_that_closes_holds_the_workers_until_the_next_one_opens(
    strategy: ExecutorStrategy, server: TestServer, out_dir: Path
) -> None:
    body = make_body(HELD_SIZE, 10)
    resource = server.add("/held.bin", body, rate_limit_bps=HELD_PACE)
    tuesday = dt.datetime(2024, 1, 2)
    # Monday 23:00-07:00 holds Tuesday 06:59 on the driver's clock, which the test moves
    timeline = Timeline(tuesday + dt.timedelta(hours=6, minutes=59), auto=False)
    schedule = Schedule(windows=(Window.parse("23:00-07:00"),))
    tracker, moving = moving_tracker(len(body))
    queue = queue_of(server, ["/held.bin"])
    with manager_for(strategy, out_dir, tracker, schedule=schedule, now=timeline.wall) as manager:
        thread, outcome = run_in_thread(lambda: manager.run(queue))
        try:
            assert moving.wait(BOUND), "no progress came back from the worker"
            timeline.set_wall(tuesday + dt.timedelta(hours=7, minutes=1))  # the window closes
            assert_held(server, out_dir, queue, len(body))
        finally:
            resource.rate_limit_bps = None
            timeline.set_wall(tuesday + dt.timedelta(hours=23))  # Tuesday's window opens
            thread.join(BOUND * 3)
        assert not thread.is_alive(), "the run did not end in the next window"
    [result] = outcome[0]
    assert result.status is ResultStatus.COMPLETED, result.error_message
    assert sha((out_dir / "held.bin").read_bytes()) == sha(body)


#: how far a measured rate may stray from the worker's share of the limit. Measured here:
#: within 1% on an idle machine, within 4% with both cores kept busy by other processes; the
#: issue asks 5% of the threads' run (test_scheduled_runs); a worker's rate is measured on
#: the driver, from progress that crosses a process boundary up to ten times a second and
#: arrives a few milliseconds late, unevenly, on a machine shared with other work
TOLERANCE = 0.10
#: seconds over which a rate is measured
WINDOW = 1.5
MIB = 1024 * 1024


class Samples:
    """The driver's tracker, recording when (monotonic seconds) it saw how many bytes of the
    download: what the worker read from the server, relayed as it goes (the server's own
    count moves in bursts of about 1.5 MB, as the kernel wakes a writer blocked on a full
    socket buffer, too coarse to tell 1M from 2M over a second and a half)."""

    def __init__(self) -> None:
        self.tracker = ProgressTracker()
        self.moving = threading.Event()
        self._lock = threading.Lock()
        self._seen: list[tuple[float, int]] = []
        self.tracker.add_callback(self._record)

    def _record(self, _id: str, progress: DownloadProgress) -> None:
        with self._lock:
            self._seen.append((time.monotonic(), progress.downloaded_bytes))
        if progress.downloaded_bytes:
            self.moving.set()

    def rate_over_next_window(self) -> float:
        """Bytes a second over the next :data:`WINDOW` seconds."""
        started = time.monotonic()
        time.sleep(WINDOW)
        with self._lock:
            inside = [(t, done) for t, done in self._seen if t >= started]
        assert len(inside) >= 5, inside  # progress comes back up to ten times a second
        (t0, b0), (t1, b1) = inside[0], inside[-1]
        return (b1 - b0) / (t1 - t0)

    def latest(self) -> int:
        with self._lock:
            return self._seen[-1][1]


def landed(path: Path) -> float:
    """When ``path`` is in place (polled; fails after :data:`BOUND` seconds)."""
    deadline = time.monotonic() + BOUND
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never landed"
        time.sleep(0.01)
    return time.monotonic()


def test_the_workers_throttles_follow_each_switch_of_the_timetable(
    strategy: ExecutorStrategy, server: TestServer, out_dir: Path
) -> None:
    body = make_body(24_000_000, 11)
    server.add("/steps.bin", body)
    tuesday = dt.datetime(2024, 1, 2)
    timeline = Timeline(tuesday + dt.timedelta(hours=11, minutes=59), auto=False)
    # the run's limit, shared by two worker processes: 1M each, then 4M each, then none
    schedule = Schedule(rates=RateTimetable.parse("00:00,2M 12:00,8M 13:00,off"))
    samples = Samples()
    queue = queue_of(server, ["/steps.bin"])
    with manager_for(
        strategy, out_dir, samples.tracker, schedule=schedule, now=timeline.wall
    ) as manager:
        thread, outcome = run_in_thread(lambda: manager.run(queue))
        try:
            assert samples.moving.wait(BOUND), "no progress came back from the worker"
            slow = samples.rate_over_next_window()
            timeline.set_wall(tuesday + dt.timedelta(hours=12, minutes=1))
            time.sleep(0.3)  # the manager's loop looks within a tenth of a second
            fast = samples.rate_over_next_window()
            timeline.set_wall(tuesday + dt.timedelta(hours=13, minutes=1))
            off, left = time.monotonic(), len(body) - samples.latest()
            unthrottled = left / (landed(out_dir / "steps.bin") - off)
        finally:
            timeline.set_wall(tuesday + dt.timedelta(hours=13, minutes=1))
            thread.join(BOUND * 3)
        assert not thread.is_alive(), "the run did not end"
    [result] = outcome[0]
    assert result.status is ResultStatus.COMPLETED, result.error_message
    assert sha((out_dir / "steps.bin").read_bytes()) == sha(body)
    assert slow == pytest.approx(1 * MIB, rel=TOLERANCE), slow / MIB
    assert fast == pytest.approx(4 * MIB, rel=TOLERANCE), fast / MIB
    # off: the rest came far faster than 4M (it would have taken three seconds and more)
    assert unthrottled > 8 * MIB, unthrottled / MIB
    assert len(server.requests_for("/steps.bin")) == 1  # switched on its connection
