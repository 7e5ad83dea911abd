"""Downloads on worker processes and on a dask cluster, seen from the driver while they run:
bytes move in the driver's progress, events, stats and metrics before the file ends, and a
cancel stops the downloads that are running on the workers (their .part kept for resume)."""

from __future__ import annotations

import threading
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
from ripstream.downloader.queue import DownloadQueue
from ripstream.downloader.safefs import PART_SUFFIX
from ripstream.sources import create_downloader
from tests.support.batches import queue_of, sha
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
    strategy: ExecutorStrategy, out_dir: Path, tracker: ProgressTracker, **kwargs: Any
) -> DownloadManager:
    config = make_config(out_dir, jobs=2, segments=1, max_retries=0)
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
