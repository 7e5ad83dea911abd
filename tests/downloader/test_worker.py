"""The worker side of isolated executors: a task in as JSON, a typed result out as JSON, and
one runtime (sources, sessions, engine) per process, built on the first task and reused."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ripstream.downloader import ContentType, DownloadConfig, DownloadResult, ResultStatus
from ripstream.downloader.exceptions import ContentNotFoundError, SourceError
from ripstream.downloader.manager import ManagedSource
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.worker import WorkerSpec, run_task_json
from ripstream.sources import create_downloader
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config

BUILT: list[str] = []


def counting_factory(name: str, config: DownloadConfig) -> ManagedSource:
    BUILT.append(name)
    return create_downloader(name, config)


def task_for(server: TestServer, path: str, source: str = "http") -> DownloadTask:
    url = server.url(path)
    return DownloadTask(
        content_id=url, content_type=ContentType.FILE, source=source, title=path, url=url
    )


def run(task: DownloadTask, spec: WorkerSpec) -> DownloadResult:
    return DownloadResult.from_json(run_task_json(task.to_json(), spec))


def test_a_task_runs_from_json_and_its_result_comes_back_typed(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(80_000, 5)
    server.add("/w/a.bin", body)
    spec = WorkerSpec(make_config(out_dir, max_retries=0).to_json(), counting_factory)
    BUILT.clear()
    done = run(task_for(server, "/w/a.bin"), spec)
    assert done.status is ResultStatus.COMPLETED
    assert done.file_path == out_dir / "a.bin"
    assert (
        hashlib.sha256((out_dir / "a.bin").read_bytes()).digest() == hashlib.sha256(body).digest()
    )
    missing = run(task_for(server, "/w/missing.bin"), spec)
    assert missing.status is ResultStatus.FAILED
    assert isinstance(missing.error, ContentNotFoundError)
    assert missing.error.status_code == 404
    assert BUILT == ["http"]  # the runtime and its source were built once and reused


def test_an_unknown_source_is_a_failed_result_not_a_crash(
    server: TestServer, out_dir: Path
) -> None:
    spec = WorkerSpec(make_config(out_dir).to_json(), create_downloader)
    result = run(task_for(server, "/w/x.bin", source="no-such-source"), spec)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, SourceError)
    assert "no-such-source" in str(result.error)


def test_a_task_without_a_url_is_resolved_by_its_source(server: TestServer, out_dir: Path) -> None:
    server.add("/w/resolved.bin", b"resolved bytes")
    spec = WorkerSpec(make_config(out_dir).to_json(), create_downloader)
    task = DownloadTask(
        content_id=server.url("/w/resolved.bin"),
        content_type=ContentType.FILE,
        source="http",
        title="resolved",
        url="",
    )
    result = run(task, spec)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "resolved.bin").read_bytes() == b"resolved bytes"
