"""The manager on a real dask LocalCluster (two worker processes): the same tasks as on
threads, results that name their worker, a per-host limit counted across workers, a host's
cool-down seen by every worker, tasks that are safe to run twice, and the run's limits shared
out among the workers."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import DownloadConfig, DownloadResult, ResultStatus
from ripstream.downloader.cluster import DaskCluster, DaskHostGates, dask_manager, local_processes
from ripstream.downloader.exceptions import RateLimitError, StorageError
from ripstream.downloader.gates import LocalHostGates, host_key
from ripstream.downloader.isolation import split_limits
from ripstream.downloader.manager import DownloadManager
from ripstream.downloader.worker import WorkerSpec, run_task_json, worker_name
from ripstream.sources import create_downloader
from tests.support.batches import http_task, queue_of, serve_numbered, sha
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config

pytest.importorskip("distributed")


def test_a_dask_executor_handed_in_runs_the_batch_on_both_workers(
    dask_client: Any, server: TestServer, out_dir: Path
) -> None:
    bodies = serve_numbered(server, "e", 40, 30_000)
    config = make_config(out_dir, jobs=4, max_retries=0)
    executor = dask_client.get_executor(pure=False)
    with DownloadManager(config, factory=create_downloader, executor=executor) as manager:
        assert isinstance(manager.strategy, DaskCluster)  # recognised: limits, folder check
        results = manager.run(queue_of(server, list(bodies)))
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 40
    for path, body in bodies.items():
        assert sha((out_dir / Path(path).name).read_bytes()) == sha(body)
    pids = set(dask_client.run(os.getpid).values())
    workers = {r.worker for r in results}
    assert len(workers) == 2
    assert {int(str(name).rsplit(":", 1)[1]) for name in workers} == pids


def test_max_per_host_is_counted_across_every_worker(
    dask_client: Any, server: TestServer, out_dir: Path
) -> None:
    bodies = serve_numbered(server, "h", 12, 60_000, rate_limit_bps=300_000)  # ~0.2 s each
    config = make_config(out_dir, jobs=4, max_retries=0)
    # at the default of four per host, four downloads (two workers x two threads) reach it
    with DownloadManager(config, factory=create_downloader, executor=DaskCluster(dask_client)) as m:
        assert all(r.is_success for r in m.run(queue_of(server, list(bodies)[:6])))
    assert server.max_concurrent_requests == 4
    server.reset_stats()
    gated = DaskCluster(dask_client, max_per_host=2)
    with DownloadManager(config, factory=create_downloader, executor=gated) as manager:
        results = manager.run(queue_of(server, list(bodies)[6:]))
    assert all(r.status is ResultStatus.COMPLETED for r in results)
    assert len({r.worker for r in results}) == 2  # both workers ran downloads...
    assert server.max_concurrent_requests == 2  # ...and the host never saw more than two
    for path, body in bodies.items():
        assert sha((out_dir / Path(path).name).read_bytes()) == sha(body)


def _see_a_429(gates: DaskHostGates, host: str) -> str:
    error = RateLimitError("429", status_code=429, retry_after=60)
    gates.build().note_error(f"http://{host}/a.bin", error)
    return worker_name()


def _cooling(gates: DaskHostGates, host: str) -> tuple[str, float, bool]:
    """This worker, the seconds left of ``host``'s cool-down, and whether a slot was free."""
    gate = gates.build()
    took = gate.counter.take(host, 4, 0)
    if took:
        gate.counter.give(host, 4)
    return worker_name(), gate.cooling(host), took


def test_a_cooldown_one_worker_sees_holds_that_host_on_every_worker(dask_client: Any) -> None:
    host = f"cooldown-{uuid.uuid4().hex}.invalid"  # a host of this test only
    gates = DaskHostGates()
    first, second = sorted(dask_client.scheduler_info()["workers"])
    saw = dask_client.submit(_see_a_429, gates, host, workers=[first], pure=False).result()
    other, left, took = dask_client.submit(
        _cooling, gates, host, workers=[second], pure=False
    ).result()
    assert other != saw  # another worker process...
    assert 50 < left <= 60  # ...knows of the cool-down...
    assert not took  # ...and sends that host nothing
    assert dask_client.submit(_cooling, gates, "other.invalid", pure=False).result()[1:] == (
        0.0,
        True,
    )  # other hosts go on


def test_a_task_run_twice_on_the_cluster_finds_its_file_the_second_time(
    dask_client: Any, server: TestServer, out_dir: Path
) -> None:
    body = make_body(200_000, 9)
    server.add("/twice/a.bin", body)
    spec = WorkerSpec(make_config(out_dir, max_retries=0).to_json(), create_downloader)
    task = http_task(server, "/twice/a.bin").to_json()
    first = DownloadResult.from_json(
        dask_client.submit(run_task_json, task, spec, pure=False).result()
    )
    second = DownloadResult.from_json(
        dask_client.submit(run_task_json, task, spec, pure=False).result()
    )
    assert (first.status, second.status) == (ResultStatus.COMPLETED, ResultStatus.SKIPPED)
    assert first.file_path == second.file_path == out_dir / "a.bin"
    assert sha((out_dir / "a.bin").read_bytes()) == sha(body)
    assert len(server.requests_for("/twice/a.bin")) == 1


def test_an_output_folder_a_worker_cannot_write_stops_the_run_before_any_task(
    dask_client: Any, server: TestServer, tmp_path: Path
) -> None:
    bodies = serve_numbered(server, "nowrite", 5, 1000)
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a folder")
    config = make_config(blocker / "out")
    manager = DownloadManager(config, factory=create_downloader, executor=DaskCluster(dask_client))
    with manager, pytest.raises(StorageError, match="2 of 2 dask workers cannot write the output"):
        manager.run(queue_of(server, list(bodies)))
    assert server.requests == []


def test_the_run_limits_are_shared_out_among_the_workers(tmp_path: Path) -> None:
    config = DownloadConfig(download_directory=Path("rel"), bandwidth_limit=1_000_000)
    config.add_source_setting("subsonic", "requests_per_period", 10)
    shared = split_limits(config, 4)
    assert shared.bandwidth_limit == 250_000  # --limit-rate is the run's total
    assert shared.get_behavior_for_source("subsonic").rate_period_seconds == 4.0
    assert shared.get_behavior_for_source("subsonic").requests_per_period == 10
    assert shared.download_directory == Path("rel").absolute()
    assert split_limits(config, 1).bandwidth_limit == 1_000_000


def test_dask_manager_starts_a_local_cluster_and_stops_it(
    server: TestServer, out_dir: Path
) -> None:
    bodies = serve_numbered(server, "local", 6, 5_000)
    config = make_config(out_dir, jobs=2)
    with dask_manager(config, "local:1", factory=create_downloader) as manager:
        results = manager.run(queue_of(server, list(bodies)))
        assert manager.describe() == "dask cluster local:1"
    assert all(r.status is ResultStatus.COMPLETED for r in results)
    assert len({r.worker for r in results}) == 1
    for path, body in bodies.items():
        assert (out_dir / Path(path).name).read_bytes() == body


def test_local_addresses_and_host_keys() -> None:
    assert local_processes("local:3") == 3
    assert local_processes("tcp://10.0.0.1:8786") is None
    for bad in ("local:", "local:0", "local:x"):
        with pytest.raises(ValueError, match="local:N"):
            local_processes(bad)
    assert host_key("http://Example.COM:8080/a", "http") == "example.com:8080"
    assert host_key("", "subsonic") == "source:subsonic"
    with LocalHostGates(1).build().hold("a"):
        pass


def test_a_hold_reaches_every_worker_and_a_process_that_joins_during_it(
    dask_client: Any,
) -> None:
    strategy = DaskCluster(dask_client)
    channel = strategy.open_channel(dask_client.get_executor(pure=False), lambda batch: None)
    link = channel.link
    try:
        channel.hold(True)
        assert set(dask_client.run(lambda: link.resumed_event().is_set()).values()) == {False}
        # this process never heard of the run, as a worker that a nanny restarts now
        assert not link.resumed_event().is_set()
        channel.hold(False)
        assert set(dask_client.run(lambda: link.resumed_event().is_set()).values()) == {True}
    finally:
        channel.stop()


def test_a_share_of_the_limit_reaches_every_worker_and_a_process_that_joins_later(
    dask_client: Any,
) -> None:
    strategy = DaskCluster(dask_client)
    channel = strategy.open_channel(dask_client.get_executor(pure=False), lambda batch: None)
    link = channel.link

    def read() -> float | None:  # in a worker: its reader is made there, on first use
        return link.rate(5.0)()

    def shares() -> set[float | None]:
        # as a download reads it: in a task on each worker (Client.run runs on the worker's
        # event loop, where the scheduler's metadata is only a coroutine)
        workers = list(dask_client.scheduler_info()["workers"])
        futures = [dask_client.submit(read, pure=False, workers=[w]) for w in workers]
        return {future.result(timeout=60) for future in futures}

    try:
        assert shares() == {5.0}  # not told yet: the share the worker started with
        channel.limit(1024.0)
        assert shares() == {1024.0}
        channel.limit(None)  # the timetable says off
        assert shares() == {None}
        channel.limit(2048.0)
        # this process never heard of the run, as a worker that joins the cluster now
        assert read() == 2048.0
    finally:
        channel.stop()
