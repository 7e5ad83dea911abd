"""The result a caller reads for each way a download ends: what was kept, what was
fetched, where a failed download was going."""

from __future__ import annotations

from pathlib import Path

from ripstream.downloader import OverwritePolicy, ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.exceptions import HTTPStatusError
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


def test_a_skip_names_the_kept_file_its_size_and_why(server: TestServer, out_dir: Path) -> None:
    server.add("/kept.bin", make_body(5_000, 1))
    kept = out_dir / "kept.bin"
    kept.write_bytes(b"the user's own bytes")
    with HttpDownloader(make_config(out_dir, overwrite=OverwritePolicy.SKIP)) as http:
        result = DownloadEngine().run(http, http.get_download_info(server.url("/kept.bin")))
    assert result.status is ResultStatus.SKIPPED
    assert result.file_path == kept
    assert result.total_bytes == len(b"the user's own bytes")
    assert result.message == "already exists"
    assert kept.read_bytes() == b"the user's own bytes"


def test_a_completed_download_counts_the_bytes_it_fetched(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(48_000, 2)
    server.add("/fresh.bin", body)
    with HttpDownloader(make_config(out_dir)) as http:
        result = DownloadEngine().run(http, http.get_download_info(server.url("/fresh.bin")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.bytes_downloaded == len(body)
    assert result.total_bytes == len(body)
    assert (out_dir / "fresh.bin").read_bytes() == body


def test_a_failed_download_names_the_file_it_was_going_to(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/gone.bin", make_body(1_000, 3), faults=[Fault.permanent_status(404)])
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/gone.bin"))
        content.filename = "gone.bin"
        result = DownloadEngine().run(http, content)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, HTTPStatusError)
    assert result.file_path == out_dir / "gone.bin"
    assert not (out_dir / "gone.bin").exists()
