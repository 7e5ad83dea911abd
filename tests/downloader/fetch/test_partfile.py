"""PartFile and FetchJob: what an attempt may resume from (only bytes its sidecar proves), what
it reports, and how it is told to stop."""

from __future__ import annotations

import os
import resource
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ripstream.downloader import ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.exceptions import DownloadCancelledError, StorageError, TooLargeError
from ripstream.downloader.fetch import FetchJob, PartFile
from ripstream.downloader.fetch.partfile import (
    CHECKPOINT_BYTES,
    CHECKPOINT_SECONDS,
    FIRST_CHECKPOINT_BYTES,
    Checkpoint,
    part_size,
)
from ripstream.downloader.safefs import part_path
from ripstream.downloader.state import ResumeState, TransferResult, sidecar_path
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import fast_settings, make_config
from tests.support.syncs import recorded_fsyncs


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


# --- the resume checkpoint: what the sidecar claims after a crash at any moment -------------


def recorded(part: Path) -> int | None:
    """The byte count the sidecar claims (what a run after a crash resumes from), if any."""
    sidecar = sidecar_path(part)
    if not sidecar.exists():
        return None
    return ResumeState.from_json(sidecar.read_text(encoding="utf-8")).length


@pytest.fixture
def checkpointed(http: HttpDownloader, tmp_path: Path) -> Iterator[tuple[Path, PartFile, int]]:
    part = tmp_path / "song.flac.part"
    part.write_bytes(b"")
    job = job_for(http, part)
    job.clock = lambda: 100.0
    fd = os.open(part, os.O_WRONLY)
    try:
        yield part, PartFile(job), fd
    finally:
        os.close(fd)


def fresh_state() -> ResumeState:
    return ResumeState("http", "song-1", etag='"v1"')


def test_the_first_checkpoint_comes_at_one_mib(checkpointed: tuple[Path, PartFile, int]) -> None:
    part, opened, fd = checkpointed
    checkpoint = Checkpoint(opened, fresh_state(), 0, fd)
    checkpoint.tick(100.5, FIRST_CHECKPOINT_BYTES - 1)
    assert recorded(part) is None  # a small file done at once never needs one
    checkpoint.tick(100.5, FIRST_CHECKPOINT_BYTES)
    assert recorded(part) == FIRST_CHECKPOINT_BYTES


def test_a_checkpoint_comes_after_one_second(checkpointed: tuple[Path, PartFile, int]) -> None:
    part, opened, fd = checkpointed
    checkpoint = Checkpoint(opened, fresh_state(), 0, fd)
    checkpoint.tick(100.0 + CHECKPOINT_SECONDS - 0.001, 10)
    assert recorded(part) is None
    checkpoint.tick(100.0 + CHECKPOINT_SECONDS, 20)
    assert recorded(part) == 20


def test_later_checkpoints_wait_a_second_or_64_mib(
    checkpointed: tuple[Path, PartFile, int],
) -> None:
    part, opened, fd = checkpointed
    checkpoint = Checkpoint(opened, fresh_state(), 0, fd)
    first = FIRST_CHECKPOINT_BYTES
    checkpoint.tick(100.2, first)
    checkpoint.tick(100.7, first + 10)  # half a second and a few bytes later: not yet
    assert recorded(part) == first
    checkpoint.tick(101.2, first + 20)  # a second after the last one
    assert recorded(part) == first + 20
    checkpoint.tick(101.3, first + 20 + CHECKPOINT_BYTES - 1)
    assert recorded(part) == first + 20
    checkpoint.tick(101.4, first + 20 + CHECKPOINT_BYTES)  # 64 MiB after the last one
    assert recorded(part) == first + 20 + CHECKPOINT_BYTES


@pytest.mark.parametrize(("have", "received", "claimed"), [(0, 0, None), (0, 1, 1), (1, 0, 1)])
def test_an_interrupted_attempt_keeps_a_checkpoint_only_for_bytes_on_disk(
    checkpointed: tuple[Path, PartFile, int], have: int, received: int, claimed: int | None
) -> None:
    part, opened, fd = checkpointed
    checkpoint = Checkpoint(opened, fresh_state(), have, fd)
    if received:
        checkpoint.tick(100.1, received)
    checkpoint.flush()
    assert recorded(part) == claimed


def test_a_failed_sync_is_a_storage_error_and_claims_nothing(
    http: HttpDownloader, tmp_path: Path
) -> None:
    part = tmp_path / "song.flac.part"
    part.write_bytes(b"x" * 10)
    reader, writer = os.pipe()  # a descriptor that cannot be synced (EINVAL)
    try:
        checkpoint = Checkpoint(PartFile(job_for(http, part)), fresh_state(), 10, writer)
        with pytest.raises(StorageError) as info:
            checkpoint.flush()
    finally:
        os.close(reader)
        os.close(writer)
    assert info.value.path == str(part)
    assert str(info.value) == f"cannot write {str(part)!r}: Invalid argument"
    assert not sidecar_path(part).exists()  # the sidecar never claims bytes not known durable


# --- disk errors: typed, naming the file and the (redacted) URL ------------------------------


def test_a_sidecar_that_cannot_be_written_is_a_storage_error(
    http: HttpDownloader, tmp_path: Path
) -> None:
    part = tmp_path / "song.flac.part"
    part.write_bytes(b"x" * 10)
    sidecar_path(part).mkdir()  # something in the way of the atomic rename
    opened = PartFile.open(job_for(http, part))
    with pytest.raises(StorageError) as info:
        opened.save(fresh_state())
    sidecar = str(sidecar_path(part))
    assert info.value.path == sidecar
    assert str(info.value) == f"cannot write {sidecar!r}: Is a directory"
    assert opened.state is None


def test_a_part_past_the_file_size_limit_is_a_storage_error_naming_it(
    http: HttpDownloader, tmp_path: Path
) -> None:
    part = tmp_path / "song.flac.part"
    opened = PartFile.open(job_for(http, part))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # a file size limit of 4 KiB (Python ignores SIGXFSZ: growing a file past it is EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        for attempt in (lambda: opened.open_at(10_000), lambda: opened.preallocate(10_000)):
            with pytest.raises(StorageError) as info:
                attempt()
            assert info.value.path == str(part)
            assert info.value.url == "http://127.0.0.1:9/song.flac?token=***"
            assert str(info.value) == (
                f"cannot write {str(part)!r}: the file is larger than this file system or "
                "limit allows"
            )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_preallocation_checks_the_size_and_starts_from_zeros(
    http: HttpDownloader, tmp_path: Path
) -> None:
    part = tmp_path / "song.flac.part"
    part.write_bytes(b"old bytes of another attempt")
    job = job_for(http, part)
    job.settings = fast_settings(max_filesize=1000)
    opened = PartFile.open(job)
    with pytest.raises(TooLargeError):
        opened.preallocate(1001)
    assert part.read_bytes() == b"old bytes of another attempt"
    opened.preallocate(1000)
    assert part.read_bytes() == bytes(1000)


def test_the_free_space_check_counts_only_the_bytes_still_to_come(
    http: HttpDownloader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: usage._replace(free=1000)
    )  # a disk with 1000 bytes free
    opened = PartFile.open(job_for(http, tmp_path / "song.flac.part"))
    opened.admit(1000)
    opened.admit(1600, have=600)  # a resume needs only the rest
    with pytest.raises(StorageError, match="the file needs 1001 bytes, 1000 are free"):
        opened.admit(1001)
    with pytest.raises(StorageError, match="the file needs 1001 bytes, 1000 are free"):
        opened.admit(1601, have=600)


def test_a_missing_part_holds_no_bytes(tmp_path: Path) -> None:
    assert part_size(tmp_path / "gone.part") == 0


def test_a_whole_part_answered_416_counts_no_fetched_bytes(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(40_000, 24)
    server.add("/whole.flac", body)
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/whole.flac"))
        part = part_path(out_dir / "whole.flac", ("http", content.content_id))
        etag = server.resource("/whole.flac").etag
        write_part(part, body, ResumeState("http", content.content_id, etag=etag, total=len(body)))
        result = http.download(content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (result.bytes_downloaded, result.resumed_from) == (0, len(body))
    assert (out_dir / "whole.flac").read_bytes() == body
    assert server.bytes_sent("/whole.flac") == 0


@pytest.mark.parametrize("fsync", [True, False])
def test_the_sidecar_is_synced_exactly_when_the_settings_ask(
    http: HttpDownloader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    part = tmp_path / "song.flac.part"
    part.write_bytes(b"x" * 10)
    job = job_for(http, part)
    job.settings = fast_settings(fsync=fsync)
    synced = recorded_fsyncs(monkeypatch)
    PartFile.open(job).save(fresh_state())
    assert recorded(part) is None  # a fresh state has no length yet, but the sidecar is there
    assert sidecar_path(part).exists()
    assert bool(synced) is fsync
