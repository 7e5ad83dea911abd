"""PartFile and FetchJob: what an attempt may resume from (only bytes its sidecar proves), what
it reports, and how it is told to stop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ripstream.downloader import ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.exceptions import DownloadCancelledError, StorageError, TooLargeError
from ripstream.downloader.fetch import FetchJob, PartFile
from ripstream.downloader.safefs import part_path
from ripstream.downloader.state import ResumeState, TransferResult, sidecar_path
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import fast_settings, make_config


class Reporter:
    def __init__(self) -> None:
        self.counted = 0

    def __call__(self, delta: int) -> None:
        self.counted += delta

    def set_total(self, total: int | None, already: int = 0) -> None:
        pass

    def accept(self, response: requests.Response) -> None:
        pass


@pytest.fixture
def http(tmp_path: Path) -> Iterator[HttpDownloader]:
    with HttpDownloader(make_config(tmp_path)) as source:
        yield source


def job_for(http: HttpDownloader, part: Path, *, resume: bool = True) -> FetchJob:
    content = DownloadableContent(
        content_id="song-1",
        content_type=ContentType.TRACK,
        source="http",
        title="song",
        url="http://user:pw@127.0.0.1:9/song.flac?token=SECRET",
    )
    return FetchJob(
        content=content,
        url=content.url,
        part=part,
        session=http.session,
        settings=fast_settings(resume=resume),
        reporter=Reporter(),
    )


def write_part(part: Path, data: bytes, state: ResumeState | None) -> None:
    part.write_bytes(data)
    if state is not None:
        sidecar_path(part).write_text(state.to_json(), encoding="utf-8")


def test_bytes_proven_by_a_strong_etag_are_resumable(http: HttpDownloader, tmp_path: Path) -> None:
    part = tmp_path / "song.flac.part"
    write_part(part, b"x" * 1000, ResumeState("http", "song-1", etag='"v1"', total=5000))
    opened = PartFile.open(job_for(http, part))
    assert opened.state is not None
    assert opened.resumable_bytes == 1000


@pytest.mark.parametrize(
    "state",
    [
        None,  # no sidecar
        ResumeState("http", "other-song", etag='"v1"'),  # another content's bytes
        ResumeState("http", "song-1", etag='W/"weak"'),  # nothing proves them
        ResumeState("http", "song-1", etag='"v1"', segments=[[0, 10, 5]]),  # segments' own
    ],
)
def test_unproven_bytes_are_not_resumed(
    http: HttpDownloader, tmp_path: Path, state: ResumeState | None
) -> None:
    part = tmp_path / "song.flac.part"
    write_part(part, b"x" * 1000, state)
    assert PartFile.open(job_for(http, part)).resumable_bytes == 0


def test_a_torn_sidecar_or_resume_off_means_no_state(http: HttpDownloader, tmp_path: Path) -> None:
    part = tmp_path / "song.flac.part"
    write_part(part, b"x" * 10, ResumeState("http", "song-1", etag='"v1"'))
    assert PartFile.open(job_for(http, part, resume=False)).state is None
    sidecar_path(part).write_text('{"source": "ht', encoding="utf-8")
    assert PartFile.open(job_for(http, part)).state is None


def test_written_measures_what_is_there(http: HttpDownloader, tmp_path: Path) -> None:
    part = tmp_path / "song.flac.part"
    part.write_bytes(b"hello world")
    result = PartFile.open(job_for(http, part)).written()
    assert (result.total, result.fetched, result.resumed_from) == (11, 11, 0)
    assert result.digest is None  # digests are the engine's: of the file it moves


def test_reset_starts_over(http: HttpDownloader, tmp_path: Path) -> None:
    part = tmp_path / "song.flac.part"
    write_part(part, b"x" * 10, ResumeState("http", "song-1", etag='"v1"'))
    opened = PartFile.open(job_for(http, part))
    opened.reset()
    assert part.read_bytes() == b""
    assert not sidecar_path(part).exists()


def test_a_job_shows_its_url_redacted_and_stops_on_cancel(
    http: HttpDownloader, tmp_path: Path
) -> None:
    job = job_for(http, tmp_path / "a.part")
    assert job.shown_url == "http://127.0.0.1:9/song.flac?token=***"
    assert job.key == ("http", "song-1")
    job.check_cancel()  # not cancelled: nothing happens
    job.cancel = threading.Event()
    job.cancel.set()
    with pytest.raises(DownloadCancelledError) as info:
        job.check_cancel()
    assert "SECRET" not in (info.value.url or "")


def test_max_filesize_is_a_limit_a_file_of_that_size_meets(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(50_000, 21)
    server.add("/sized.flac", body)
    url = server.url("/sized.flac")
    with HttpDownloader(make_config(out_dir, max_filesize=49_999, max_retries=0)) as http:
        refused = http.download(http.get_download_info(url))
    error = refused.error
    assert isinstance(error, TooLargeError)
    assert str(error) == f"{url} is 50000 bytes, more than the 49999 bytes --max-filesize allows"
    assert (error.url, error.source, error.limit) == (url, "http", 49_999)
    with HttpDownloader(make_config(out_dir, max_filesize=50_000)) as http:
        kept = http.download(http.get_download_info(url))
    assert kept.status is ResultStatus.COMPLETED, kept.error
    assert (out_dir / "sized.flac").read_bytes() == body


def test_a_resumed_download_counts_only_the_bytes_it_fetched(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(60_000, 22)
    server.add("/cut.flac", body, faults=[Fault.drop_after(20_000, times=1)])
    with HttpDownloader(make_config(out_dir, max_retries=1)) as http:
        result = http.download(http.get_download_info(server.url("/cut.flac")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "cut.flac").read_bytes() == body
    assert result.resumed_from > 0
    assert result.bytes_downloaded == len(body) - result.resumed_from


def test_a_custom_fetch_that_writes_no_file_is_a_storage_error(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/nothing.flac", make_body(1000, 23))

    class Forgetful(HttpDownloader):
        def _download_content(
            self, content: DownloadableContent, file_path: Path, progress_callback: Any
        ) -> TransferResult | None:
            return None  # claims to have written the file itself, but did not

    with Forgetful(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/nothing.flac"))
        result = http.download(content)
    error = result.error
    assert isinstance(error, StorageError)
    part = part_path(out_dir / "nothing.flac", ("http", content.content_id))
    assert str(error) == f"the download wrote no file at {str(part)!r}"
    assert error.path == str(part)
