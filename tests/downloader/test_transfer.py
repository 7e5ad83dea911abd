"""The fault suite: a real misbehaving server, every scenario in single-stream and segmented mode.

Each scenario ends either with the exact bytes at the final path (sha256) or with a clean typed
failure and nothing at the final path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import DownloadResult, ResultStatus
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ContentNotFoundError,
    DownloadError,
    HTTPStatusError,
    RedirectError,
    RetryExhaustedError,
    ServerError,
    StallError,
)
from ripstream.downloader.safefs import part_path
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

MODES = {"single": 1, "segmented": 4}
SIZE = 600_000


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Scenario:
    name: str
    faults: list[Fault]
    error: type[DownloadError] | None = None  # None: the exact bytes must land
    size: int = SIZE
    settings: dict[str, Any] = field(default_factory=dict)
    with_checksum: bool = False


SCENARIOS = [
    Scenario("plain", []),
    Scenario("empty file", [], size=0),
    Scenario("one byte", [], size=1),
    Scenario("dropped twice mid-body", [Fault.drop_after(100_000, times=2)]),
    Scenario("reset mid-body", [Fault.drop_after(50_000, reset=True, times=1)]),
    Scenario("stall then close", [Fault.stall_after(10_000, 3.0, then="close", times=1)],
             settings={"stall_timeout": 0.3, "timeout_seconds": 0.3}),
    Scenario("Content-Length too large", [Fault.content_length_too_large(5000, times=1)]),
    Scenario("Content-Length too small", [Fault.content_length_too_small(1000, times=1)],
             with_checksum=True),
    Scenario("no Content-Length", [Fault.no_content_length()]),
    Scenario("chunked", [Fault.chunked(4096)]),
    Scenario("truncated chunk", [Fault.broken_chunked("truncated", after_bytes=20_000, times=1)]),
    Scenario("bad chunk size line", [Fault.broken_chunked("bad_size", after_bytes=20_000,
                                                          times=1)]),
    Scenario("gzip forced on identity", [Fault.gzip_encoding()]),
    Scenario("ranges ignored", [Fault.ignore_range()]),
    Scenario("ranges refused 403", [Fault.reject_range(403, times=None)]),
    Scenario("ranges refused 416", [Fault.reject_range(416, times=None)]),
    Scenario("short 206", [Fault.short_range(times=2, on="range"), Fault.drop_after(
        200_000, times=1, on="full")]),
    Scenario("206 at the wrong offset", [Fault.wrong_range_start(-7, times=2, on="range"),
                                         Fault.drop_after(200_000, times=1, on="full")]),
    Scenario("206 with the wrong total", [Fault.wrong_range_total(3, times=2, on="range"),
                                          Fault.drop_after(200_000, times=1, on="full")]),
    Scenario("multipart answer to a range", [Fault.multipart_byteranges(times=None,
                                                                        on="range")]),
    Scenario("503 twice", [Fault.status(503, times=2)]),
    Scenario("429 with Retry-After seconds", [Fault.status(429, retry_after=1, times=1)]),
    Scenario("429 with Retry-After date", [Fault.status(
        429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", times=1)]),
    Scenario("500 502 408", [Fault.status(500, times=1), Fault.status(502, times=1),
                             Fault.status(408, times=1)]),
    Scenario("closed before answering", [Fault.close_before_response(times=1)]),
    Scenario("garbage instead of HTTP", [Fault.garbage_response(times=1)]),
    Scenario("file changes between attempts", [Fault.drop_after(100_000, times=1),
                                               Fault.body_changes(make_body(SIZE + 1000, 4242),
                                                                  after=1)]),
    Scenario("trickle under the speed floor", [Fault.trickle(20_000, after_bytes=1000,
                                                             times=1)],
             settings={"min_speed": 100_000.0, "min_speed_window": 0.3}),
    Scenario("404", [Fault.permanent_status(404)], error=ContentNotFoundError),
    Scenario("410", [Fault.permanent_status(410)], error=ContentNotFoundError),
    Scenario("401", [Fault.permanent_status(401)], error=AuthenticationError),
    Scenario("403", [Fault.permanent_status(403)], error=AuthenticationError),
    Scenario("400", [Fault.permanent_status(400)], error=HTTPStatusError),
    Scenario("always dropped", [Fault.drop_after(0)], error=RetryExhaustedError,
             settings={"max_retries": 2}),
    Scenario("always 503", [Fault.status(503, times=None)], error=RetryExhaustedError,
             settings={"max_retries": 2}),
    Scenario("redirect to ftp", [Fault.redirect("ftp://127.0.0.1/x")], error=RedirectError),
]


def body_for(scenario: Scenario) -> bytes:
    return make_body(scenario.size, seed=len(scenario.name))


def run(server: TestServer, directory: Path, *, checksum: str | None = None,
        path: str = "/file.bin", **settings: Any) -> DownloadResult:
    config = make_config(directory, **settings)
    with HttpDownloader(config) as downloader:
        content = downloader.get_download_info(server.url(path))
        if checksum:
            content.checksum = checksum
        return downloader.download(content)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_fault(server: TestServer, out_dir: Path, scenario: Scenario, mode: str) -> None:
    body = body_for(scenario)
    server.add("/file.bin", body, faults=scenario.faults)
    if scenario.name == "file changes between attempts":
        body = make_body(SIZE + 1000, 4242)  # what the server serves after the first request
    checksum = f"sha256:{sha(body)}" if scenario.with_checksum else None
    result = run(server, out_dir, checksum=checksum, segments=MODES[mode], **scenario.settings)
    final = out_dir / "file.bin"
    if scenario.error is None:
        assert result.error is None, result.error
        assert result.status is ResultStatus.COMPLETED
        assert sha(final.read_bytes()) == sha(body)
        assert not part_path(final, ("http", server.url("/file.bin"))).exists()
    else:
        assert isinstance(result.error, scenario.error), result.error
        assert result.status is ResultStatus.FAILED
        assert not final.exists()
    assert server.errors == []


def test_redirect_chain_lands_exact_bytes(server: TestServer, out_dir: Path) -> None:
    body = make_body(200_000)
    server.add("/real.bin", body)
    server.add_redirect_chain("/file.bin", "/real.bin", 3)
    result = run(server, out_dir)
    assert result.is_success
    assert sha(result.file_path.read_bytes()) == sha(body)  # type: ignore[union-attr]


def test_redirect_loop_is_a_typed_failure(server: TestServer, out_dir: Path) -> None:
    server.add_redirect_loop("/file.bin")
    result = run(server, out_dir)
    assert isinstance(result.error, RedirectError)
    assert list(out_dir.iterdir()) == []


def test_persistent_503_reports_last_error(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", b"x", faults=[Fault.status(503, times=None)])
    result = run(server, out_dir, max_retries=2)
    error = result.error
    assert isinstance(error, RetryExhaustedError)
    assert error.retry_count == 2
    assert isinstance(error.last_error, ServerError)
    assert error.last_error.status_code == 503
    assert len(server.requests_for("/file.bin")) == 3


def test_stall_is_detected_by_read_timeout(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", make_body(100_000), faults=[Fault.stall_after(1000, 5.0)])
    result = run(server, out_dir, stall_timeout=0.2, timeout_seconds=0.2, max_retries=0)
    assert isinstance(result.error, StallError)
    assert not (out_dir / "file.bin").exists()
    # kept for resume
    assert part_path(out_dir / "file.bin", ("http", server.url("/file.bin"))).exists()
