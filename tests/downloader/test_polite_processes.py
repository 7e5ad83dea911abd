"""Per-host limits and cool-downs across worker processes (``Processes``): the driver serves
its count to the workers, so the server never sees more than the limit, and a 429 that one
worker process sees holds that host for the other. The cool-down runs on the driver's
simulated clock: the test decides when it ends."""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import (
    DownloadManager,
    DownloadQueue,
    DownloadResult,
    Processes,
    ResultStatus,
)
from ripstream.downloader.events import EventKind
from ripstream.downloader.exceptions import DownloadError, RateLimitError
from ripstream.downloader.hosts import HostGate, LocalCounter
from ripstream.downloader.hostserver import HostServer, ServedHostGates
from ripstream.sources import create_downloader
from tests.support.batches import http_task, queue_of, serve_numbered, sha
from tests.support.clock import Timeline
from tests.support.events import WAIT, Recorder, eventually
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

MONDAY = dt.datetime(2024, 1, 1)
HOST = "127.0.0.1"

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="forks helper processes"
)


def test_max_per_host_holds_across_worker_processes_at_the_server(
    server: TestServer, out_dir: Path
) -> None:
    bodies = serve_numbered(server, "cap", 12, 256 * 1024, rate_limit_bps=2_000_000)
    config = make_config(out_dir, jobs=8, segments=4, max_per_host=2)
    with DownloadManager(config, factory=create_downloader, executor=Processes(2)) as manager:
        results = manager.run(queue_of(server, list(bodies)))
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 12
    assert len({r.worker for r in results}) == 2  # both processes downloaded...
    assert server.max_concurrent_requests == 2  # ...and the host never saw more than two
    assert sum(1 for r in server.requests if r.range_header) > 12  # segments were counted too
    for path, body in bodies.items():
        assert sha((out_dir / Path(path).name).read_bytes()) == sha(body)


def test_a_429_one_worker_process_sees_holds_the_host_for_the_other(
    server: TestServer, out_dir: Path
) -> None:
    first, second = make_body(40_000, seed=1), make_body(40_000, seed=2)
    server.add("/first.bin", first, faults=[Fault.status(429, retry_after=30)])
    server.add("/second.bin", second)
    timeline = Timeline(MONDAY, auto=False)
    sink = Recorder()
    # two processes of one thread: the second task goes to the other process; a retry waits
    # no time of its own (max_retry_after=0), so only the host's cool-down holds it
    config = make_config(out_dir, jobs=2)
    manager = DownloadManager(
        config,
        factory=create_downloader,
        executor=Processes(2),
        events=[sink],
        clock=timeline.clock,
        sleep=timeline.sleep,
        now=timeline.wall,
    )
    queue = DownloadQueue()
    queue.add_task(http_task(server, "/first.bin"))
    queue.add_task(http_task(server, "/second.bin", not_before=MONDAY.timestamp() + 10))
    gate = manager.engine.services.hosts
    assert gate is not None
    assert isinstance(gate.counter, LocalCounter)
    counter = gate.counter
    with manager, running_in_background(manager, queue) as running:
        sink.wait_for(EventKind.HOST_COOLDOWN)  # told in the driver, from a worker's 429
        timeline.advance(10)  # the second task is due; the host cools down until +30
        # the first task's retry and the second task wait at the driver's count, each in
        # its own worker process
        eventually(lambda: counter.waiting().get(HOST) == 2, "both workers to wait")
        assert [r.path for r in server.requests] == ["/first.bin"]  # nothing since the 429
        assert counter.cooling(HOST) == pytest.approx(20)
        timeline.advance(25)  # past the end of the cool-down
        results = running.result(timeout=WAIT)
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 2
    assert len({r.worker for r in results}) == 2
    assert sha((out_dir / "first.bin").read_bytes()) == sha(first)
    assert sha((out_dir / "second.bin").read_bytes()) == sha(second)
    assert [r.path for r in server.requests[1:]].count("/second.bin") == 1
    [cooldown] = sink.of(EventKind.HOST_COOLDOWN)
    assert cooldown.host == HOST
    assert cooldown.delay == pytest.approx(30)


@contextlib.contextmanager
def running_in_background(
    manager: DownloadManager, queue: DownloadQueue
) -> Iterator[Future[list[DownloadResult]]]:
    """``manager.run(queue)`` on a thread; on leaving, a run still going is cancelled."""
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(manager.run, queue)
        try:
            yield future
        finally:
            if not future.done():
                manager.cancel()


def _hold_two_slots(gates: ServedHostGates, taken: Any, go: Any) -> None:
    gate = gates.build()
    gate.acquire("h", 2)
    gate.acquire("h", 2)
    taken.set()
    go.wait(WAIT)
    os._exit(0)  # dies holding both


def test_a_worker_process_that_dies_gives_its_slots_back() -> None:
    counter = LocalCounter()
    server = HostServer(counter)
    context = multiprocessing.get_context("fork")
    taken, go = context.Event(), context.Event()
    try:
        child = context.Process(target=_hold_two_slots, args=(server.gates(), taken, go))
        child.start()
        assert taken.wait(WAIT)
        assert counter.active() == {"h": 2}
        assert not HostGate(counter).acquire("h", 2, give_up=lambda: True)  # full
        go.set()
        child.join(WAIT)
        eventually(lambda: counter.active() == {}, "the dead worker's slots to come back")
    finally:
        server.close()


def test_a_cooldown_and_its_strikes_are_the_drivers() -> None:
    seen: list[tuple[str, float]] = []
    counter = LocalCounter(clock=lambda: 100.0, on_cooldown=lambda h, s, _u: seen.append((h, s)))
    with HostServer(counter) as server:
        gate = server.gates().build()  # a worker's gate, used from this process
        error = RateLimitError("429", status_code=429)
        gate.note_error("http://Example.COM/a", error)
        assert counter.cooling("example.com") == 0  # one 429 without Retry-After: no pause
        gate.note_error("http://example.com/b", error)
        assert counter.cooling("example.com") == 2  # the second in a row: 2 s
        gate.note_error("http://example.com/c", RateLimitError("", status_code=429, retry_after=9))
        assert gate.cooling("EXAMPLE.com") == 9
        assert seen == [("example.com", 2.0), ("example.com", 9.0)]
        assert not gate.counter.take("example.com", 4, 0)  # cooling: no slot for anyone
        gate.note_success("http://example.com/d")
        assert counter.strike("example.com") == 1  # the run of 429s ended


def test_a_failing_count_is_the_workers_typed_error_and_the_server_goes_on() -> None:
    """A bug or bad input in the driver's count reaches the asking worker as its error, named;
    it does not end that worker's connection (as a vanished driver would)."""

    def refuse(_host: str, _seconds: float, _until: float) -> None:
        raise ValueError("listener refused")

    counter = LocalCounter(clock=lambda: 100.0, on_cooldown=refuse)
    with HostServer(counter) as server:
        gate = server.gates().build()
        with pytest.raises(DownloadError, match="per-host count failed: ValueError: listener"):
            gate.cool("example.com", 5)
        assert gate.cooling("example.com") == 5  # the count itself took the cool-down
        assert gate.counter.take("other.example", 1, 0)  # the same connection still answers
        gate.counter.give("other.example", 1)
        assert counter.active() == {}
