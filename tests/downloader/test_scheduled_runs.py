"""Schedules, polite hosts, events and stats on a real run against the local server, with a
simulated clock: nothing here waits for real time to pass."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import (
    ContentType,
    DownloadManager,
    DownloadQueue,
    DownloadTask,
    TaskState,
)
from ripstream.downloader.events import EventKind
from ripstream.downloader.progress import DownloadProgress
from ripstream.downloader.safefs import PART_SUFFIX
from ripstream.downloader.schedule import RateTimetable, Schedule, Window, WindowEnd
from ripstream.sources import create_downloader
from tests.support.clock import Timeline
from tests.support.events import WAIT, Recorder
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

MONDAY = dt.datetime(2024, 1, 1)


def task(server: TestServer, path: str, **kwargs: Any) -> DownloadTask:
    url = server.url(path)
    name = path.rsplit("/", 1)[1]
    return DownloadTask(
        content_id=url, content_type=ContentType.FILE, source="http", title=name, url=url, **kwargs
    )


@pytest.fixture
def second_host() -> Iterator[TestServer]:
    """Another host on loopback: 127.0.0.2."""
    with TestServer(host="127.0.0.2") as running:
        yield running


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def manager_for(out_dir: Path, timeline: Timeline, sink: Recorder, **kw: Any) -> DownloadManager:
    jobs = kw.pop("jobs", 2)
    settings = kw.pop("settings", {})
    config = make_config(out_dir, jobs=jobs, chunk_size=16 * 1024, **settings)
    config.bandwidth_limit = kw.pop("bandwidth", None)
    return DownloadManager(
        config,
        factory=create_downloader,
        events=[sink],
        clock=timeline.clock,
        sleep=timeline.sleep,
        now=timeline.wall,
        **kw,
    )


def test_the_rate_follows_the_timetable_when_it_switches_mid_download(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(3_000_000, seed=3)
    server.add("/big.bin", body)
    timeline = Timeline(MONDAY.replace(hour=11, minute=59, second=50))
    schedule = Schedule(rates=RateTimetable.parse("00:00,100k 12:00,200k"))
    samples: list[tuple[float, int]] = []
    sink = Recorder()
    with manager_for(out_dir, timeline, sink, schedule=schedule) as manager:
        manager.progress_tracker.add_callback(
            lambda _id, p: samples.append((timeline.clock(), p.downloaded_bytes))
        )
        queue = DownloadQueue()
        queue.add_task(task(server, "/big.bin"))
        [result] = manager.run(queue)
    assert result.is_success
    assert sha((out_dir / "big.bin").read_bytes()) == sha(body)
    switch = 1010.0  # 12:00 on the simulated clock

    def rate(start: float, end: float) -> float:
        inside = [(t, b) for t, b in samples if start <= t <= end]
        (t0, b0), (t1, b1) = inside[0], inside[-1]
        return (b1 - b0) / (t1 - t0)

    assert rate(1001.0, switch) == pytest.approx(100 * 1024, rel=0.05)
    assert rate(switch + 0.5, samples[-1][0] - 0.5) == pytest.approx(200 * 1024, rel=0.05)


def test_nothing_starts_before_start_at(server: TestServer, out_dir: Path) -> None:
    server.add("/a.bin", make_body(50_000))
    timeline = Timeline(MONDAY.replace(hour=22), auto=False)
    start = MONDAY.replace(hour=23)
    sink = Recorder()
    with manager_for(out_dir, timeline, sink, schedule=Schedule(start_at=start)) as manager:
        queue = DownloadQueue()
        queue.add_task(task(server, "/a.bin"))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(manager.run, queue)
            sink.wait_for(EventKind.QUEUED)
            timeline.set_wall(start - dt.timedelta(minutes=1))
            assert not running.done()
            assert server.requests == []
            timeline.set_wall(start)
            [result] = running.result(timeout=WAIT)
    assert result.is_success
    [started] = sink.of(EventKind.STARTED)
    assert started.time >= start.timestamp()


def test_a_window_across_midnight_pauses_at_its_end_and_resumes_in_the_next(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(1_000_000, seed=5)
    server.add("/night.bin", body)
    # Monday 23:00-07:00 holds Tuesday 06:59:55; 5 s at 100 kB/s, then the window closes
    timeline = Timeline(MONDAY + dt.timedelta(days=1, hours=6, minutes=59, seconds=55))
    schedule = Schedule(windows=(Window.parse("23:00-07:00"),))
    sink = Recorder()
    with manager_for(out_dir, timeline, sink, schedule=schedule, bandwidth=100 * 1024) as manager:
        queue = DownloadQueue()
        queue.add_task(task(server, "/night.bin"))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(manager.run, queue)
            sink.wait_for(EventKind.PAUSED)
            held = manager.stats()
            assert held.active == 1
            assert 0 < held.bytes_done < len(body)
            assert not running.done()
            assert sink.of(EventKind.COMPLETED) == []
            timeline.set_wall(MONDAY + dt.timedelta(days=1, hours=23))  # Tuesday's window
            [result] = running.result(timeout=WAIT)
    assert result.is_success
    assert sha((out_dir / "night.bin").read_bytes()) == sha(body)
    [paused] = sink.of(EventKind.PAUSED)
    assert paused.reason == "window"
    assert sink.of(EventKind.RESUMED)
    [done] = sink.of(EventKind.COMPLETED)
    assert done.time >= (MONDAY + dt.timedelta(days=1, hours=23)).timestamp()


def test_with_window_end_finish_the_running_download_ends_and_nothing_new_starts(
    server: TestServer, out_dir: Path
) -> None:
    long, short = make_body(1_000_000, seed=6), make_body(20_000, seed=7)
    server.add("/long.bin", long)
    server.add("/short.bin", short)
    tuesday = MONDAY + dt.timedelta(days=1)
    closes, reopens = tuesday + dt.timedelta(hours=7), tuesday + dt.timedelta(hours=23)
    # Monday 23:00-07:00 holds Tuesday 06:59:55: 5 s at 100 KiB/s, then the window closes
    timeline = Timeline(closes - dt.timedelta(seconds=5))
    schedule = Schedule(windows=(Window.parse("23:00-07:00"),), window_end=WindowEnd.FINISH)
    sink = Recorder()
    with manager_for(
        out_dir, timeline, sink, jobs=1, schedule=schedule, bandwidth=100 * 1024
    ) as manager:
        queue = DownloadQueue()
        queue.add_task(task(server, "/long.bin"))
        rest = queue.add_task(task(server, "/short.bin"))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(manager.run, queue)
            try:
                sink.wait_for(EventKind.COMPLETED)
                [done] = sink.of(EventKind.COMPLETED)
                assert done.url == server.url("/long.bin")
                assert done.time > closes.timestamp()  # it ran on past the window's end...
                assert sink.of(EventKind.PAUSED) == []  # ...without a pause
                time.sleep(0.3)  # room for a wrong start; a right run does nothing here
                assert not running.done()
                assert sink.of(EventKind.STARTED, server.url("/short.bin")) == []
                assert server.requests_for("/short.bin") == []
                # the queue keeps the rest
                assert queue.get_task(rest.task_id).state is TaskState.PENDING
                assert (manager.stats().waiting, manager.stats().active) == (1, 0)
            finally:
                timeline.set_wall(reopens)  # Tuesday's window
            results = running.result(timeout=WAIT)
    assert all(r.is_success for r in results)
    assert sha((out_dir / "long.bin").read_bytes()) == sha(long)
    assert sha((out_dir / "short.bin").read_bytes()) == sha(short)
    [started] = sink.of(EventKind.STARTED, server.url("/short.bin"))
    assert started.time >= reopens.timestamp()
    assert len(server.requests_for("/long.bin")) == 1


def test_pause_holds_the_running_transfer_and_new_starts_and_resume_goes_on(
    server: TestServer, out_dir: Path
) -> None:
    first, second = make_body(1_000_000, seed=8), make_body(30_000, seed=9)
    server.add("/first.bin", first)
    server.add("/second.bin", second)
    sink = Recorder()
    with manager_for(out_dir, Timeline(MONDAY), sink, jobs=1, bandwidth=100 * 1024) as manager:

        def pause_midway(_id: str, progress: DownloadProgress) -> None:
            if progress.downloaded_bytes >= 200_000 and not manager.pacer.paused:
                manager.pause()  # on the download's own thread: the next buffer is held

        manager.progress_tracker.add_callback(pause_midway)
        queue = DownloadQueue()
        held_task = queue.add_task(task(server, "/first.bin"))
        queued_task = queue.add_task(task(server, "/second.bin"))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(manager.run, queue)
            try:
                sink.wait_for(EventKind.PAUSED)
                manager.progress_tracker.remove_callback(pause_midway)
                tracker = manager.progress_tracker
                [download] = tracker.active
                held = tracker.get_progress(download)
                assert held is not None
                time.sleep(0.3)  # a held transfer stays where it is (unheld, it ends in ms)
                now = tracker.get_progress(download)
                assert now is not None
                assert now.downloaded_bytes == held.downloaded_bytes
                assert 200_000 <= held.downloaded_bytes < len(first)
                stats = manager.stats()
                assert (stats.active, stats.waiting, stats.completed) == (1, 1, 0)
                assert queue.get_task(held_task.task_id).state is TaskState.RUNNING
                assert queue.get_task(queued_task.task_id).state is TaskState.PENDING
                assert server.requests_for("/second.bin") == []
                [part] = [p for p in out_dir.iterdir() if p.name.endswith(PART_SUFFIX)]
                assert 0 < part.stat().st_size < len(first)  # the .part file is kept
                assert not running.done()
            finally:
                manager.resume()
            results = running.result(timeout=WAIT)
    assert [r.status.value for r in results] == ["completed", "completed"]
    assert sha((out_dir / "first.bin").read_bytes()) == sha(first)
    assert sha((out_dir / "second.bin").read_bytes()) == sha(second)
    assert not [p for p in out_dir.iterdir() if p.name.endswith(PART_SUFFIX)]
    assert len(server.requests_for("/first.bin")) == 1  # held on its connection, not restarted
    assert [e.reason for e in sink.of(EventKind.PAUSED)] == ["manual"]
    assert [e.reason for e in sink.of(EventKind.RESUMED)] == ["manual"]
    assert {t.state for t in queue.tasks()} == {TaskState.COMPLETED}


def test_a_run_paused_before_it_starts_requests_nothing_until_resumed(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(40_000, seed=10)
    server.add("/later.bin", body)
    sink = Recorder()
    with manager_for(out_dir, Timeline(MONDAY), sink) as manager:
        manager.pause()
        queue = DownloadQueue()
        later = queue.add_task(task(server, "/later.bin"))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(manager.run, queue)
            try:
                sink.wait_for(EventKind.QUEUED)
                time.sleep(0.3)  # room for a wrong start
                assert server.requests == []
                assert sink.of(EventKind.STARTED) == []
                assert queue.get_task(later.task_id).state is TaskState.PENDING
                assert manager.stats().waiting == 1
                assert not running.done()
            finally:
                manager.resume()
            [result] = running.result(timeout=WAIT)
    assert result.is_success
    assert sha((out_dir / "later.bin").read_bytes()) == sha(body)
    assert len(server.requests_for("/later.bin")) == 1


def test_a_host_cooldown_holds_that_host_while_another_goes_on(
    server: TestServer, second_host: TestServer, out_dir: Path
) -> None:
    for srv in (server, second_host):
        srv.add("/two.bin", make_body(20_000, seed=2))
    server.add("/one.bin", make_body(20_000, seed=1), faults=[Fault.status(429, retry_after=30)])
    second_host.add("/one.bin", make_body(20_000, seed=1))
    timeline = Timeline(MONDAY, auto=False)
    later = MONDAY.timestamp() + 10
    sink = Recorder()
    with manager_for(
        out_dir, timeline, sink, jobs=4, settings={"max_retry_after": 300.0}
    ) as manager:
        queue = DownloadQueue()
        queue.add_task(task(server, "/one.bin", file_path="a1"))
        queue.add_task(task(second_host, "/one.bin", file_path="b1"))
        queue.add_task(task(server, "/two.bin", file_path="a2", not_before=later))
        queue.add_task(task(second_host, "/two.bin", file_path="b2", not_before=later))
        with ThreadPoolExecutor(1) as pool:
            running = pool.submit(manager.run, queue)
            sink.wait_for(EventKind.HOST_COOLDOWN)
            sink.wait_for(EventKind.COMPLETED, 1)
            timeline.advance(10)  # a2 and b2 are due; host 127.0.0.1 cools down until +30
            sink.wait_for(EventKind.COMPLETED, 2)
            done = {e.url for e in sink.of(EventKind.COMPLETED)}
            assert done == {second_host.url("/one.bin"), second_host.url("/two.bin")}
            assert server.requests_for("/two.bin") == []
            assert len(server.requests_for("/one.bin")) == 1
            assert manager.stats().by_host["127.0.0.1"].completed == 0
            timeline.advance(25)
            results = running.result(timeout=WAIT)
    assert all(r.is_success for r in results)
    [cooldown] = sink.of(EventKind.HOST_COOLDOWN)
    assert cooldown.host == "127.0.0.1"
    assert cooldown.delay == pytest.approx(30)
    assert len(server.requests_for("/two.bin")) == 1
    assert sink.of(EventKind.RETRY)[0].reason == "RateLimitError"


def test_max_per_host_caps_downloads_and_segments_at_the_server(
    server: TestServer, out_dir: Path
) -> None:
    bodies = {f"/s{i}.bin": make_body(512 * 1024, seed=i) for i in range(8)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=2_000_000)
    sink = Recorder()
    with DownloadManager(
        make_config(out_dir, jobs=8, segments=4, max_per_host=3),
        factory=create_downloader,
        events=[sink],
    ) as manager:
        queue = DownloadQueue()
        for path in bodies:
            queue.add_task(task(server, path))
        results = manager.run(queue)
    assert all(r.is_success for r in results)
    for path, body in bodies.items():
        assert sha((out_dir / path[1:]).read_bytes()) == sha(body)
    ranged = [r for r in server.requests if r.range_header]
    assert len(ranged) > 8  # segments were used
    assert server.max_concurrent_requests == 3


def test_stats_and_events_describe_the_run(server: TestServer, out_dir: Path) -> None:
    server.add("/ok.bin", make_body(30_000))
    sink = Recorder()
    timeline = Timeline(MONDAY)
    with manager_for(out_dir, timeline, sink) as manager:
        queue = DownloadQueue()
        queue.add_task(task(server, "/ok.bin"))
        queue.add_task(task(server, "/missing.bin"))
        manager.run(queue)
        stats = manager.stats()
    assert (stats.completed, stats.failed, stats.active, stats.waiting) == (1, 1, 0, 0)
    assert stats.bytes_done == 30_000
    assert stats.by_source["http"].completed == 1
    assert stats.by_host["127.0.0.1"].failed == 1
    kinds = [e.event for e in sink.events if e.url == server.url("/ok.bin")]
    assert kinds[0] is EventKind.QUEUED
    assert kinds[1] is EventKind.STARTED
    assert kinds[-1] is EventKind.COMPLETED
    line = sink.of(EventKind.FAILED)[0].to_dict()
    assert line["version"] == 1
    assert line["event"] == "failed"
    assert "404" in line["error"]
