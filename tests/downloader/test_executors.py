"""Executor strategies: worker processes (typed results back as JSON), an executor the caller
owns (never shut down by the manager), and the bounded pool that segment workers share."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ripstream.downloader import (
    DownloadableContent,
    DownloadManager,
    ResultStatus,
)
from ripstream.downloader.exceptions import ContentNotFoundError
from ripstream.downloader.executors import (
    GivenExecutor,
    Processes,
    ProcessLink,
    ProcessThreadPool,
    SegmentPool,
    Threads,
    segment_pool_for,
)
from ripstream.sources import create_downloader
from tests.support.batches import queue_of, sha
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config

WAIT = 30.0


class ProcessNote:
    """A picklable post-processor: notes the process that verified the file."""

    def __call__(
        self, content: DownloadableContent, part: Path, final: Path, values: Mapping[str, Any]
    ) -> str:
        return f"pid {os.getpid()}"


def test_processes_download_exact_files_and_send_typed_results_back(
    server: TestServer, out_dir: Path
) -> None:
    bodies = {f"/proc/{n}.bin": make_body(50_000 + n, n) for n in range(4)}
    for path, body in bodies.items():
        server.add(path, body)
    paths = [*bodies, "/proc/missing.bin"]
    with DownloadManager(
        make_config(out_dir, jobs=2, max_retries=0),
        executor=Processes(2),
        factory=create_downloader,
        post_processors=[ProcessNote()],
    ) as manager:
        assert manager.describe() == "2 processes x 1 threads"
        results = manager.run(queue_of(server, paths))
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 4 + [ResultStatus.FAILED]
    for result, (path, body) in zip(results, bodies.items(), strict=False):
        assert result.file_path == out_dir / Path(path).name
        assert sha(result.file_path.read_bytes()) == sha(body)
        assert result.checksum is None or result.checksum == sha(body)
        assert result.message is not None
        assert result.message != f"pid {os.getpid()}"  # verified in a worker process
    missing = results[-1]
    assert isinstance(missing.error, ContentNotFoundError)
    assert missing.error.status_code == 404
    assert not (out_dir / "missing.bin").exists()


def test_a_given_executor_is_used_and_not_shut_down(server: TestServer, out_dir: Path) -> None:
    paths = [f"/given/{n}.bin" for n in range(3)]
    for n, path in enumerate(paths):
        server.add(path, make_body(10_000, n))
    names: list[str] = []

    def note_thread(
        content: DownloadableContent, part: Path, final: Path, values: Mapping[str, Any]
    ) -> None:
        names.append(threading.current_thread().name)

    with ThreadPoolExecutor(2, thread_name_prefix="callers-pool") as pool:
        strategy = GivenExecutor(pool)
        assert not strategy.isolated  # a thread pool of this process shares live objects
        with DownloadManager(
            make_config(out_dir, jobs=2),
            executor=strategy,
            factory=create_downloader,
            post_processors=[note_thread],
        ) as manager:
            assert manager.describe() == "ThreadPoolExecutor"
            results = manager.run(queue_of(server, paths))
        assert pool.submit(lambda: 42).result(timeout=WAIT) == 42  # still running
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 3
    assert len(names) == 3
    assert all(name.startswith("callers-pool") for name in names), names
    for n, path in enumerate(paths):
        assert (out_dir / Path(path).name).read_bytes() == make_body(10_000, n)


def test_segment_threads_never_exceed_the_bound(server: TestServer, out_dir: Path) -> None:
    jobs, segments = 2, 4
    bodies = {f"/big/{n}.bin": make_body(400_000, 10 + n) for n in range(8)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=8_000_000)
    config = make_config(out_dir, jobs=jobs, segments=segments)
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        for _ in range(20_000):  # bounded: at most a few seconds of samples
            names = [t.name for t in threading.enumerate()]
            seen.append(sum(name.startswith("ripstream-segment") for name in names))
            if done.wait(0.001):
                return

    watcher = threading.Thread(target=watch, name="test-watcher")
    watcher.start()
    try:
        with DownloadManager(config, factory=create_downloader) as manager:
            results = manager.run(queue_of(server, list(bodies)))
    finally:
        done.set()
        watcher.join(WAIT)
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * len(bodies)
    for path, body in bodies.items():
        assert sha((out_dir / Path(path).name).read_bytes()) == sha(body)
    assert max(seen) > 0  # segments did run on the pool
    assert max(seen) <= jobs * (segments - 1)
    ranged = [r for r in server.requests if r.range_header]
    assert len(ranged) >= len(bodies) * segments


def test_segment_pool_size_follows_the_config(tmp_path: Path) -> None:
    config = make_config(tmp_path, jobs=3, segments=4)
    assert segment_pool_for(config).max_workers == 3 * 3
    config.add_source_setting("big", "segments", 8)
    assert segment_pool_for(config).max_workers == 3 * 7
    assert segment_pool_for(make_config(tmp_path, jobs=2, segments=1)).max_workers == 2


def test_a_segment_pool_runs_work_and_reopens_after_close() -> None:
    pool = SegmentPool(2)
    assert pool.submit(sum, [1, 2, 3]).result(timeout=WAIT) == 6
    pool.close()
    pool.close()  # twice is fine
    assert pool.submit(len, "abc").result(timeout=WAIT) == 3  # started again on demand
    pool.close()
    assert SegmentPool(0).max_workers == 1


def test_strategies_describe_themselves() -> None:
    assert Threads().describe(8) == "8 threads"
    assert not Threads().isolated
    assert Processes(3).describe(8) == "3 processes x 3 threads"
    assert Processes(3).isolated
    assert Processes().processes == (os.cpu_count() or 1)
    with ThreadPoolExecutor(1) as pool:
        assert GivenExecutor(pool, isolated=True).isolated


def told_rate() -> float | None:
    """In a worker process: its share of the run's limit, as the parent last set it."""
    return ProcessLink().rate(5.0)()


def test_every_worker_process_reads_the_share_its_parent_sets() -> None:
    pool = ProcessThreadPool(2, 1)
    try:
        assert pool.submit(told_rate).result(WAIT) == 5.0  # not told: the spec's share
        pool.limit_running(1024.0)
        assert {pool.submit(told_rate).result(WAIT) for _ in range(4)} == {1024.0}
        pool.limit_running(None)  # off
        assert {pool.submit(told_rate).result(WAIT) for _ in range(4)} == {None}
    finally:
        pool.shutdown()
    assert told_rate() == 5.0  # the parent is no pool's worker: it reads nothing shared
