"""DownloadManager against the real local server: order, dependencies, concurrency, dispatch,
Ctrl-C, process executors.
"""

from __future__ import annotations

import _thread
import hashlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ripstream.downloader import (
    BaseDownloader,
    ContentType,
    DownloadableContent,
    DownloadConfig,
    DownloadManager,
    DownloadQueue,
    DownloadResult,
    DownloadTask,
    ResultStatus,
    TaskState,
)
from ripstream.downloader.exceptions import (
    ContentNotFoundError,
    DownloadCancelledError,
    SourceError,
)
from ripstream.downloader.safefs import part_path
from ripstream.downloader.worker import WorkerSpec, run_task_json
from ripstream.sources import create_downloader
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def http_task(server: TestServer, path: str, **kwargs: Any) -> DownloadTask:
    url = server.url(path)
    return DownloadTask(
        content_id=url,
        content_type=ContentType.FILE,
        source="http",
        title=path.rsplit("/", 1)[1],
        url=url,
        **kwargs,
    )


def serve(server: TestServer, paths: list[str], size: int, **kwargs: Any) -> dict[str, bytes]:
    bodies = {path: make_body(size, seed=i) for i, path in enumerate(paths)}
    for path, body in bodies.items():
        server.add(path, body, **kwargs)
    return bodies


def assert_files(out_dir: Path, bodies: Mapping[str, bytes]) -> None:
    for path, body in bodies.items():
        assert sha((out_dir / path.rsplit("/", 1)[1]).read_bytes()) == sha(body), path


def get_paths(server: TestServer) -> list[str]:
    return [r.path for r in server.requests if r.method == "GET"]


# -- order and dependencies --------------------------------------------------------------------


def test_priorities_decide_start_order_fifo_among_equals(server: TestServer, out_dir: Path) -> None:
    paths = [f"/prio/{i}.bin" for i in range(5)]
    bodies = serve(server, paths, 20_000)
    queue = DownloadQueue()
    for path, priority in zip(paths, [1, 5, 3, 5, 0], strict=True):
        queue.add_task(http_task(server, path, priority=priority))

    with DownloadManager(make_config(out_dir, jobs=1), factory=create_downloader) as manager:
        results = manager.run(queue)

    assert get_paths(server) == [
        "/prio/1.bin",
        "/prio/3.bin",
        "/prio/2.bin",
        "/prio/0.bin",
        "/prio/4.bin",
    ]
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 5
    assert_files(out_dir, bodies)


def test_a_dependency_runs_before_a_higher_priority_dependent(
    server: TestServer, out_dir: Path
) -> None:
    bodies = serve(server, ["/dep/cover.jpg", "/dep/track.flac"], 10_000)
    queue = DownloadQueue()
    cover = queue.add_task(http_task(server, "/dep/cover.jpg", priority=0))
    queue.add_task(http_task(server, "/dep/track.flac", priority=9, dependencies=[cover.task_id]))

    with DownloadManager(make_config(out_dir, jobs=3), factory=create_downloader) as manager:
        manager.run(queue)

    assert get_paths(server) == ["/dep/cover.jpg", "/dep/track.flac"]
    assert_files(out_dir, bodies)


def test_failed_task_cancels_its_dependents_which_never_run(
    server: TestServer, out_dir: Path
) -> None:
    bodies = serve(server, ["/chain/b.bin", "/chain/c.bin", "/chain/d.bin"], 30_000)
    queue = DownloadQueue()
    a = queue.add_task(http_task(server, "/chain/missing.bin"))
    b = queue.add_task(http_task(server, "/chain/b.bin", dependencies=[a.task_id]))
    c = queue.add_task(http_task(server, "/chain/c.bin", dependencies=[b.task_id]))
    d = queue.add_task(http_task(server, "/chain/d.bin"))
    seen: list[tuple[str, ResultStatus]] = []

    with DownloadManager(make_config(out_dir, jobs=2), factory=create_downloader) as manager:
        results = manager.run(
            queue, on_result=lambda task, r: seen.append((task.task_id, r.status))
        )

    result_a, result_b, result_c, result_d = results
    assert result_a.status is ResultStatus.FAILED
    assert isinstance(result_a.error, ContentNotFoundError)
    assert result_a.error.status_code == 404
    for dependent in (result_b, result_c):
        assert dependent.status is ResultStatus.CANCELLED
        assert isinstance(dependent.error, DownloadCancelledError)
    assert repr(a.title) in str(result_b.error)  # names the failure it waited on
    assert repr(a.title) in str(result_c.error)
    assert result_d.status is ResultStatus.COMPLETED
    assert_files(out_dir, {"/chain/d.bin": bodies["/chain/d.bin"]})
    assert server.requests_for("/chain/b.bin") == []
    assert server.requests_for("/chain/c.bin") == []
    assert not (out_dir / "b.bin").exists()
    assert not (out_dir / "c.bin").exists()
    assert [a.state, b.state, c.state, d.state] == [
        TaskState.FAILED,
        TaskState.CANCELLED,
        TaskState.CANCELLED,
        TaskState.COMPLETED,
    ]
    assert queue.counts() == {
        TaskState.PENDING: 0,
        TaskState.RUNNING: 0,
        TaskState.COMPLETED: 1,
        TaskState.FAILED: 1,
        TaskState.CANCELLED: 2,
    }
    assert queue.is_empty
    assert sorted(seen, key=lambda item: item[0]) == sorted(
        [
            (a.task_id, ResultStatus.FAILED),
            (b.task_id, ResultStatus.CANCELLED),
            (c.task_id, ResultStatus.CANCELLED),
            (d.task_id, ResultStatus.COMPLETED),
        ],
        key=lambda item: item[0],
    )


# -- concurrency -------------------------------------------------------------------------------


def test_never_more_than_max_concurrent_downloads_at_once(
    server: TestServer, out_dir: Path
) -> None:
    paths = [f"/bound/{i:02d}.bin" for i in range(12)]
    bodies = serve(server, paths, 400_000, rate_limit_bps=2_000_000)
    queue = DownloadQueue()
    queue.add_tasks(http_task(server, path) for path in paths)

    with DownloadManager(make_config(out_dir, jobs=3), factory=create_downloader) as manager:
        results = manager.run(queue)

    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 12
    assert 2 <= server.max_concurrent_requests <= 3
    assert sorted(get_paths(server)) == paths
    assert_files(out_dir, bodies)


# -- dispatch by source ------------------------------------------------------------------------


class AlphaDownloader(BaseDownloader):
    """A source whose ids resolve to files on the test server."""

    source_name: ClassVar[str] = "alpha"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.TRACK]

    def __init__(self, config: DownloadConfig, server: TestServer) -> None:
        super().__init__(config)
        self.server = server
        self.resolved: list[str] = []
        self._lock = threading.Lock()

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        with self._lock:
            self.resolved.append(content_id)
        return DownloadableContent(
            content_id=content_id,
            content_type=ContentType.TRACK,
            source=self.source_name,
            title=content_id,
            url=self.server.url(f"/alpha/{content_id}.bin"),
        )


class RecordingHttp(HttpDownloader):
    def __init__(self, config: DownloadConfig) -> None:
        super().__init__(config)
        self.downloaded: list[str] = []
        self._lock = threading.Lock()

    def request_url(self, content: DownloadableContent) -> str:
        # the engine asks the source for the URL of every attempt it makes for it
        with self._lock:
            self.downloaded.append(content.url)
        return super().request_url(content)


def test_tasks_go_to_the_downloader_of_their_source(server: TestServer, out_dir: Path) -> None:
    alpha_bodies = serve(server, ["/alpha/a1.bin", "/alpha/a2.bin"], 25_000)
    http_bodies = serve(server, ["/web/h1.bin", "/web/h2.bin"], 35_000)
    config = make_config(out_dir, jobs=2)
    config.add_source_setting("alpha", "user_agent", "AlphaClient/1.0")
    alpha = AlphaDownloader(config, server)
    http = RecordingHttp(config)
    queue = DownloadQueue()
    for content_id in ("a1", "a2"):
        queue.add_task(
            DownloadTask(
                content_id=content_id,
                content_type=ContentType.TRACK,
                source="alpha",
                title=content_id,
                url="",
            )
        )
    for path in http_bodies:
        queue.add_task(http_task(server, path))
    unknown = queue.add_task(
        DownloadTask(
            content_id="x1",
            content_type=ContentType.TRACK,
            source="no-such-source",
            title="x1",
            url=server.url("/unknown/x1.bin"),
        )
    )

    with DownloadManager(config, downloaders=[alpha, http]) as manager:
        results = manager.run(queue)

    by_id = {r.content_id: r for r in results}
    assert sorted(alpha.resolved) == ["a1", "a2"]
    assert sorted(http.downloaded) == sorted(server.url(p) for p in http_bodies)
    for content_id in ("a1", "a2"):
        assert by_id[content_id].status is ResultStatus.COMPLETED
        assert by_id[content_id].source == "alpha"
    failed = by_id["x1"]
    assert failed.status is ResultStatus.FAILED
    assert isinstance(failed.error, SourceError)
    assert "no-such-source" in str(failed.error)
    assert unknown.state is TaskState.FAILED
    assert server.requests_for("/unknown/x1.bin") == []
    assert_files(out_dir, alpha_bodies | http_bodies)
    # each source's requests went out through that source's own session
    for path in alpha_bodies:
        assert server.requests_for(path)[0].headers["User-Agent"] == "AlphaClient/1.0"
    for path in http_bodies:
        assert server.requests_for(path)[0].headers["User-Agent"].startswith("ripstream/")


# -- Ctrl-C ------------------------------------------------------------------------------------

SLOW_SIZE = 300_000
SLOW_BPS = 100_000  # 3 s per file: far longer than the test waits after the interrupt
STOP_WITHIN = 1.5


@dataclass
class Interrupted:
    queue: DownloadQueue
    paths: list[str]
    results: list[tuple[str, DownloadResult]] = field(default_factory=list)
    interrupted_at: float | None = None
    raised_after: float | None = None


def _run_and_interrupt(
    server: TestServer, out_dir: Path, interrupt: Callable[[], None]
) -> Interrupted:
    paths = [f"/slow/{i}.bin" for i in range(4)]
    serve(server, paths, SLOW_SIZE, rate_limit_bps=SLOW_BPS)
    queue = DownloadQueue()
    queue.add_tasks(http_task(server, path) for path in paths)
    outcome = Interrupted(queue, paths)
    helper_error: list[BaseException] = []

    def helper() -> None:
        try:
            server.wait_until(lambda: all(server.bytes_sent(p) > 0 for p in paths[:2]))
        except TimeoutError as exc:  # do not interrupt: the run ends and the test fails
            helper_error.append(exc)
            return
        outcome.interrupted_at = time.monotonic()
        interrupt()

    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    thread = threading.Thread(target=helper, daemon=True)
    with DownloadManager(make_config(out_dir, jobs=2), factory=create_downloader) as manager:
        thread.start()
        with pytest.raises(KeyboardInterrupt):
            manager.run(queue, on_result=lambda task, r: outcome.results.append((task.url, r)))
        if outcome.interrupted_at is not None:
            outcome.raised_after = time.monotonic() - outcome.interrupted_at
    thread.join(5)
    assert helper_error == []
    return outcome


def _assert_clean_stop(server: TestServer, out_dir: Path, outcome: Interrupted) -> None:
    running, waiting = outcome.paths[:2], outcome.paths[2:]
    assert outcome.raised_after is not None
    assert outcome.raised_after < STOP_WITHIN
    finals = [out_dir / path.rsplit("/", 1)[1] for path in outcome.paths]
    parts = [
        part_path(final, ("http", server.url(path)))
        for final, path in zip(finals, outcome.paths, strict=True)
    ]
    assert [f for f in finals if f.exists()] == []
    for part in parts[:2]:
        assert part.exists(), "a running download keeps its .part for resume"
    for part in parts[2:]:
        assert not part.exists()
    # nothing started after the interrupt
    assert sorted(get_paths(server)) == running
    for path in waiting:
        assert server.requests_for(path) == []
    for path in running:
        assert server.bytes_sent(path) < SLOW_SIZE


def _sigint_main_thread() -> None:
    """What a terminal's Ctrl-C does: a real SIGINT, delivered to the main thread."""
    main = threading.main_thread().ident
    assert main is not None
    signal.pthread_kill(main, signal.SIGINT)


def test_ctrl_c_stops_running_downloads_and_starts_nothing_new(
    server: TestServer, out_dir: Path
) -> None:
    outcome = _run_and_interrupt(server, out_dir, _sigint_main_thread)

    _assert_clean_stop(server, out_dir, outcome)
    reported = dict(outcome.results)
    assert sorted(reported) == sorted(server.url(p) for p in outcome.paths)
    for result in reported.values():
        assert result.status is ResultStatus.CANCELLED
        assert isinstance(result.error, DownloadCancelledError)
    assert outcome.queue.is_empty


def test_interrupt_main_stops_running_downloads_promptly(server: TestServer, out_dir: Path) -> None:
    outcome = _run_and_interrupt(server, out_dir, _thread.interrupt_main)

    _assert_clean_stop(server, out_dir, outcome)


def test_tasks_interrupted_while_running_are_cancelled_in_the_queue(
    server: TestServer, out_dir: Path
) -> None:
    outcome = _run_and_interrupt(server, out_dir, _sigint_main_thread)

    assert [t.state for t in outcome.queue.tasks()] == [TaskState.CANCELLED] * 4
    assert outcome.queue.counts()[TaskState.FAILED] == 0


# -- other executors ---------------------------------------------------------------------------


class RecordingProcessPool(ProcessPoolExecutor):
    def __init__(self) -> None:
        super().__init__(2, mp_context=multiprocessing.get_context("spawn"))
        self.submitted: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted.append((fn, args))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def process_pool() -> Iterator[RecordingProcessPool]:
    pool = RecordingProcessPool()
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def test_a_process_pool_executor_runs_tasks_sent_as_json(
    server: TestServer, out_dir: Path, process_pool: RecordingProcessPool
) -> None:
    paths = [f"/proc/{i}.bin" for i in range(3)]
    bodies = serve(server, paths, 120_000)
    queue = DownloadQueue()
    queue.add_tasks(http_task(server, path) for path in paths)

    with DownloadManager(
        make_config(out_dir, jobs=2), executor=process_pool, factory=create_downloader
    ) as manager:
        results = manager.run(queue)

    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 3
    assert [r.file_path for r in results] == [out_dir / f"{i}.bin" for i in range(3)]
    assert_files(out_dir, bodies)
    assert len(process_pool.submitted) == 3
    for fn, args in process_pool.submitted:
        assert fn is run_task_json
        task_json, spec = args
        assert isinstance(task_json, str)
        assert isinstance(spec, WorkerSpec)
    assert queue.counts()[TaskState.COMPLETED] == 3


# -- download_many -----------------------------------------------------------------------------


def test_download_many_returns_one_result_per_content_in_order(
    server: TestServer, out_dir: Path
) -> None:
    slow = serve(server, ["/many/slow.bin"], 200_000, rate_limit_bps=1_000_000)
    fast = serve(server, ["/many/fast1.bin", "/many/fast2.bin"], 10_000)
    urls = [
        server.url(p)
        for p in ["/many/slow.bin", "/many/fast1.bin", "/many/gone.bin", "/many/fast2.bin"]
    ]
    with HttpDownloader(make_config(out_dir)) as http:
        contents = [http.get_download_info(url) for url in urls]
    finished: list[str] = []

    with DownloadManager(make_config(out_dir, jobs=3), factory=create_downloader) as manager:
        results = manager.download_many(contents, on_result=lambda t, r: finished.append(t.url))

    assert [r.content_id for r in results] == urls
    assert [r.status for r in results] == [
        ResultStatus.COMPLETED,
        ResultStatus.COMPLETED,
        ResultStatus.FAILED,
        ResultStatus.COMPLETED,
    ]
    assert isinstance(results[2].error, ContentNotFoundError)
    assert finished[-1] == urls[0]  # the slow one ended last, yet its result comes first
    assert_files(out_dir, slow | fast)
