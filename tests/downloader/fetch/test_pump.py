"""The hot loop against a real local server: the speed floor (and what it does not count), the
size limits while bytes arrive, and a cancel between chunks."""

from __future__ import annotations

import resource
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.exceptions import (
    DownloadCancelledError,
    IncompleteBodyError,
    ResponseMismatchError,
    StallError,
    StorageError,
    TooLargeError,
)
from ripstream.downloader.fetch.pump import _SPACE_RESERVE as RESERVE
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.safefs import part_path
from ripstream.downloader.services import EngineServices
from ripstream.sources.http import HttpDownloader
from tests.support.fault_scenarios import run, sha
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


def test_a_body_that_slows_under_the_floor_is_a_stall_naming_the_rate(
    server: TestServer, out_dir: Path
) -> None:
    # a megabyte at full speed, then 20 kB/s: the first window's average is high, the next
    # window alone is under the floor of 100 kB/s
    body = make_body(1_400_000, seed=31)
    server.add("/file.bin", body, faults=[Fault.trickle(20_000, after_bytes=1_000_000)])
    result = run(server, out_dir, min_speed=100_000.0, min_speed_window=0.3, max_retries=0)
    error = result.error
    assert isinstance(error, StallError), error
    url = server.url("/file.bin")
    assert (error.url, error.source) == (url, "http")
    rate = str(error).removeprefix(f"{url} slowed to ").split(" B/s")[0]
    assert 0 < int(rate) < 100_000
    assert str(error).endswith(" B/s, under the floor of 100000 B/s")
    assert not (out_dir / "file.bin").exists()


def test_a_body_steadily_over_the_floor_completes(server: TestServer, out_dir: Path) -> None:
    # 100 kB/s through several windows of 0.3 s, over a floor of 50 kB/s
    body = make_body(120_000, seed=39)
    server.add("/file.bin", body, faults=[Fault.trickle(100_000)])
    result = run(server, out_dir, min_speed=50_000.0, min_speed_window=0.3, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)


def test_a_body_that_pauses_under_the_stall_timeout_completes(
    server: TestServer, out_dir: Path
) -> None:
    # a read that waits 0.7 s (the pump then asks for less at a time) and goes on
    body = make_body(300_000, seed=48)
    server.add("/file.bin", body, faults=[Fault.stall_after(100_000, 0.7)])
    result = run(server, out_dir, stall_timeout=5.0, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)


def test_waiting_on_our_own_rate_limit_does_not_count_against_the_server(
    server: TestServer, out_dir: Path
) -> None:
    # the user's limit (200 kB/s) is under the floor (400 kB/s); the server itself is fast
    body = make_body(160_000, seed=32)
    server.add("/file.bin", body)
    result = run(
        server,
        out_dir,
        rate_limit=200_000,
        min_speed=400_000.0,
        min_speed_window=0.2,
        max_retries=0,
    )
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)


def test_a_body_without_a_length_past_max_filesize_is_refused_naming_the_limit(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", make_body(50_000, seed=33), faults=[Fault.no_content_length()])
    result = run(server, out_dir, max_filesize=49_999, max_retries=0)
    error = result.error
    assert isinstance(error, TooLargeError), error
    url = server.url("/file.bin")
    assert str(error) == f"{url} sent more than the 49999 bytes --max-filesize allows"
    assert (error.url, error.source, error.limit) == (url, "http", 49_999)
    assert not (out_dir / "file.bin").exists()


MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("left", "declared", "size"),
    [
        (RESERVE - 1, False, 64 * MIB),  # stops at the check after exactly 64 MiB
        (RESERVE, False, 65 * MIB),  # enough left: checked, and goes on past it
        (RESERVE - 1, True, 65 * MIB),  # a declared length was checked up front: goes on
    ],
)
def test_a_body_without_a_length_stops_when_the_disk_is_nearly_full(
    server: TestServer,
    out_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    left: int,
    declared: bool,
    size: int,
) -> None:
    real = shutil.disk_usage

    def disk_usage(path: str | Path) -> Any:  # the output folder's disk has ``left`` bytes free
        usage = real(path)
        return usage._replace(free=left) if Path(path) == out_dir else usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    body = make_body(size, seed=34)
    server.add("/file.bin", body, faults=[] if declared else [Fault.chunked(MIB)])
    result = run(server, out_dir, max_retries=0)
    if declared or left >= RESERVE:
        assert result.is_success, result.error
        assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
        return
    error = result.error
    assert isinstance(error, StorageError), error
    url = server.url("/file.bin")
    assert str(error) == (
        f"stopped {url}: its body has no declared end and the disk is nearly full "
        f"({left} bytes left)"
    )
    assert error.url == url
    assert error.path == str(part_path(out_dir / "file.bin", ("http", url)))
    assert not (out_dir / "file.bin").exists()


def test_a_body_that_stops_coming_is_a_stall_naming_url_and_source(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", make_body(100_000, seed=40), faults=[Fault.stall_after(1000, 5.0)])
    result = run(server, out_dir, stall_timeout=0.2, timeout_seconds=0.2, max_retries=0)
    error = result.error
    assert isinstance(error, StallError), error
    assert (error.url, error.source) == (server.url("/file.bin"), "http")


def test_a_body_compressed_past_the_ratio_the_user_set_is_refused(
    server: TestServer, out_dir: Path
) -> None:
    # 4 MB from about 200 kB on the wire: under the default ratio of 100, over the 5 set
    body = make_body(200_000, seed=35) + bytes(4_000_000)
    server.add("/file.bin", body, faults=[Fault.gzip_encoding()])
    result = run(server, out_dir, max_decoded_ratio=5.0, max_retries=0)
    assert isinstance(result.error, ResponseMismatchError), result.error
    assert "decodes to more than 5 times its size" in str(result.error)
    assert not (out_dir / "file.bin").exists()


def test_a_cancel_mid_body_stops_at_the_next_buffer_and_keeps_the_part(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", make_body(400_000, seed=36), faults=[Fault.trickle(50_000)])
    cancel = threading.Event()
    tracker = ProgressTracker(min_interval=0.0)
    tracker.add_callback(
        lambda download_id, progress: cancel.set() if progress.downloaded_bytes else None
    )
    engine = DownloadEngine(EngineServices(cancel=cancel, tracker=tracker))
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = engine.run(http, http.get_download_info(server.url("/file.bin")))
    assert result.status is ResultStatus.CANCELLED
    error = result.error
    assert isinstance(error, DownloadCancelledError)
    url = server.url("/file.bin")
    assert (str(error), error.url, error.source) == ("download cancelled", url, "http")
    assert part_path(out_dir / "file.bin", ("http", url)).stat().st_size > 0  # kept to resume
    assert not (out_dir / "file.bin").exists()
    assert server.bytes_sent("/file.bin") < 400_000


def test_a_write_that_fails_mid_body_is_a_storage_error_naming_the_part(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", make_body(3_000_000, seed=37))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # a file size limit of 1 MiB (Python ignores SIGXFSZ: a write past it is EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, hard))
    try:
        result = run(server, out_dir, max_retries=0)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    error = result.error
    assert isinstance(error, StorageError), error
    url = server.url("/file.bin")
    part = part_path(out_dir / "file.bin", ("http", url))
    assert str(error) == (
        f"cannot write {str(part)!r}: the file is larger than this file system or limit allows"
    )
    assert (error.path, error.url) == (str(part), url)
    assert not (out_dir / "file.bin").exists()


def test_a_connection_cut_mid_body_is_an_incomplete_body_naming_url_and_source(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", make_body(300_000, seed=38), faults=[Fault.drop_after(100_000)])
    result = run(server, out_dir, max_retries=0)
    error = result.error
    assert isinstance(error, IncompleteBodyError), error
    url = server.url("/file.bin")
    assert str(error) == f"{url} ended after 100000 of 300000 bytes"
    assert (error.url, error.source) == (url, "http")
    assert not (out_dir / "file.bin").exists()
