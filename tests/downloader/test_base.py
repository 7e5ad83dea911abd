"""BaseDownloader: the subclassing contract and the whole lifecycle, against a real server."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import (
    BaseDownloader,
    ContentType,
    DownloadableContent,
    DownloadProgress,
    ProgressTracker,
    ResultStatus,
)
from ripstream.downloader.exceptions import (
    ChecksumError,
    ContentNotFoundError,
    IncompleteBodyError,
    StorageError,
    TargetExistsError,
)
from ripstream.downloader.safefs import part_path
from ripstream.downloader.state import sidecar_path
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Minimal(BaseDownloader):
    """A source that defines only the four required members."""

    def __init__(self, *args: Any, base_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_url = base_url

    @property
    def source_name(self) -> str:
        return "minimal"

    @property
    def supported_content_types(self) -> list[ContentType]:
        return [ContentType.TRACK]

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        return credentials.get("api_key") == "good"

    def get_download_info(self, content_id: str) -> DownloadableContent:
        return DownloadableContent(
            content_id=content_id,
            content_type=ContentType.TRACK,
            source=self.source_name,
            title=f"Song {content_id}",
            url=f"{self.base_url}/tracks/{content_id}.flac",
            file_extension="flac",
        )


def minimal(
    server: TestServer, directory: Path, tracker: ProgressTracker | None = None, **settings: Any
) -> Minimal:
    return Minimal(
        make_config(directory, **settings), progress_tracker=tracker, base_url=server.base_url
    )


def test_minimal_subclass_downloads_with_progress_retries_and_checksum(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000)
    server.add(
        "/tracks/t1.flac",
        body,
        faults=[Fault.drop_after(50_000, times=1), Fault.status(503, times=1, on="range")],
    )
    tracker = ProgressTracker(min_interval=0)
    seen: list[DownloadProgress] = []
    tracker.add_callback(lambda _id, progress: seen.append(progress))
    with minimal(server, out_dir, tracker) as downloader:
        assert downloader.authenticate({"api_key": "good"})
        content = downloader.get_download_info("t1")
        content.checksum = f"sha256:{sha(body)}"
        result = downloader.download(content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.file_path == out_dir / "t1.flac"
    assert sha(result.file_path.read_bytes()) == sha(body)
    assert result.attempts == 3
    assert result.checksum == sha(body)
    assert result.resumed_from == 50_000  # the drop was resumed, not refetched
    assert server.bytes_sent("/tracks/t1.flac") == len(body)
    assert seen[-1].percentage == 100.0
    assert seen[-1].is_finished
    assert any(0 < p.downloaded_bytes < len(body) for p in seen)


def test_wrong_checksum_refetches_once_then_fails_typed(server: TestServer, out_dir: Path) -> None:
    body = make_body(10_000)
    server.add("/tracks/t1.flac", body)
    with minimal(server, out_dir) as downloader:
        content = downloader.get_download_info("t1")
        content.checksum = "md5:" + "0" * 32
        result = downloader.download(content)
    assert isinstance(result.error, ChecksumError)
    assert result.error.expected == "0" * 32
    assert result.error.actual == hashlib.md5(body).hexdigest()
    assert len(server.requests_for("/tracks/t1.flac")) == 2
    assert list(out_dir.iterdir()) == []


def test_raise_on_error_raises_the_typed_error(server: TestServer, out_dir: Path) -> None:
    server.add("/tracks/t1.flac", b"x", faults=[Fault.permanent_status(404)])
    with minimal(server, out_dir) as downloader, pytest.raises(ContentNotFoundError) as info:
        downloader.download(downloader.get_download_info("t1"), raise_on_error=True)
    assert info.value.status_code == 404
    assert len(server.requests_for("/tracks/t1.flac")) == 1  # permanent: no retry


def test_empty_file_is_a_valid_download(server: TestServer, out_dir: Path) -> None:
    server.add("/tracks/t1.flac", b"")
    with minimal(server, out_dir) as downloader:
        result = downloader.download(downloader.get_download_info("t1"))
    assert result.is_success
    assert (out_dir / "t1.flac").read_bytes() == b""


@pytest.mark.parametrize(
    ("policy", "expected_name", "status", "error"),
    [
        ("skip", "t1.flac", ResultStatus.SKIPPED, None),
        ("overwrite", "t1.flac", ResultStatus.COMPLETED, None),
        ("rename", "t1 (1).flac", ResultStatus.COMPLETED, None),
        ("error", None, ResultStatus.FAILED, TargetExistsError),
    ],
)
def test_overwrite_policy(
    server: TestServer,
    out_dir: Path,
    policy: str,
    expected_name: str | None,
    status: ResultStatus,
    error: type[Exception] | None,
) -> None:
    body = make_body(5000)
    server.add("/tracks/t1.flac", body)
    existing = out_dir / "t1.flac"
    existing.write_bytes(b"the user's own file")
    with minimal(server, out_dir, overwrite=policy) as downloader:
        result = downloader.download(downloader.get_download_info("t1"))
    assert result.status is status
    if error is not None:
        assert isinstance(result.error, error)
    if policy == "overwrite":
        assert existing.read_bytes() == body
    else:
        assert existing.read_bytes() == b"the user's own file"
    if policy == "rename":
        assert (out_dir / "t1 (1).flac").read_bytes() == body
    if policy in ("skip", "error"):
        assert server.requests_for("/tracks/t1.flac") == []
    assert expected_name is None or result.file_path == out_dir / expected_name


def test_skip_refuses_an_existing_file_with_a_different_checksum(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/tracks/t1.flac", b"new")
    (out_dir / "t1.flac").write_bytes(b"old")
    with minimal(server, out_dir) as downloader:
        content = downloader.get_download_info("t1")
        content.checksum = f"sha256:{sha(b'new')}"
        result = downloader.download(content)
    assert isinstance(result.error, TargetExistsError)
    assert (out_dir / "t1.flac").read_bytes() == b"old"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="Real Name.flac"', "Real Name.flac"),
        ("attachment; filename*=UTF-8''na%C3%AFve%20song.flac", "naïve song.flac"),
        ("attachment; filename=\"plain.mp3\"; filename*=UTF-8''fancy%E2%98%85.mp3", "fancy★.mp3"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="CON.mp3"', "_CON.mp3"),
    ],
)
def test_content_disposition_names_the_file_safely(
    server: TestServer, out_dir: Path, header: str, expected: str
) -> None:
    body = make_body(2000)
    server.add("/download", body, faults=[Fault.content_disposition(header)])
    with HttpDownloader(make_config(out_dir)) as http:
        result = http.download(http.get_download_info(server.url("/download")))
    assert result.is_success, result.error
    assert result.file_path == out_dir / expected
    assert (out_dir / expected).read_bytes() == body
    assert sorted(p.name for p in out_dir.iterdir()) == [expected]


def test_metadata_cannot_escape_the_output_folder(server: TestServer, out_dir: Path) -> None:
    server.add("/tracks/x.flac", b"data")
    config = make_config(out_dir)
    config.filename_template = "{artist}/{title}.{ext}"
    with Minimal(config, base_url=server.base_url) as downloader:
        content = downloader.get_download_info("x")
        content.artist = "../../.."
        content.title = "../evil"
        result = downloader.download(content)
    assert result.is_success
    assert result.file_path is not None
    assert out_dir.resolve() in result.file_path.resolve().parents
    with Minimal(config, base_url=server.base_url) as downloader, pytest.raises(StorageError):
        downloader.target_path(content, "../outside.flac")


def test_two_tasks_aimed_at_one_path_are_detected(server: TestServer, out_dir: Path) -> None:
    server.add("/a/song.mp3", make_body(400_000, 1), rate_limit_bps=2_000_000)
    server.add("/b/song.mp3", make_body(400_000, 2), rate_limit_bps=2_000_000)
    with HttpDownloader(make_config(out_dir)) as http:
        results = http.download_many(
            [
                http.get_download_info(server.url("/a/song.mp3")),
                http.get_download_info(server.url("/b/song.mp3")),
            ]
        )
    statuses = sorted(r.status.value for r in results)
    assert statuses == ["completed", "failed"]
    failed = next(r for r in results if not r.is_success)
    assert isinstance(failed.error, TargetExistsError)
    done = next(r for r in results if r.is_success)
    expected = make_body(400_000, 1 if "/a/" in (done.url or "") else 2)
    assert (out_dir / "song.mp3").read_bytes() == expected


def test_connections_are_reused_across_files(server: TestServer, out_dir: Path) -> None:
    for n in range(10):
        server.add(f"/f{n}.bin", make_body(20_000, n))
    with HttpDownloader(make_config(out_dir)) as http:
        for n in range(10):
            assert http.download(http.get_download_info(server.url(f"/f{n}.bin"))).is_success
    assert server.connections_opened == 1


def test_interrupted_download_resumes_from_the_part_file(server: TestServer, out_dir: Path) -> None:
    body = make_body(500_000)
    server.add("/tracks/t1.flac", body, faults=[Fault.drop_after(200_000, times=1)])
    with minimal(server, out_dir, max_retries=0) as downloader:
        first = downloader.download(downloader.get_download_info("t1"))
    assert isinstance(first.error, IncompleteBodyError)  # retries off: the error itself
    assert first.error.received == 200_000
    part = part_path(out_dir / "t1.flac", ("minimal", "t1"))
    assert part.stat().st_size == 200_000
    state = json.loads(sidecar_path(part).read_text())
    assert (state["source"], state["content_id"]) == ("minimal", "t1")
    with minimal(server, out_dir) as downloader:
        second = downloader.download(downloader.get_download_info("t1"))
    assert second.is_success
    assert second.resumed_from == 200_000
    assert (out_dir / "t1.flac").read_bytes() == body
    resumed = server.requests_for("/tracks/t1.flac")[-1]
    assert resumed.range_header == "bytes=200000-"
    assert resumed.headers.get("If-Range") == server.resource("/tracks/t1.flac").etag
    assert server.bytes_sent("/tracks/t1.flac") == len(body)
    assert not part.exists()
    assert not sidecar_path(part).exists()


def test_a_part_file_of_other_content_is_not_resumed(server: TestServer, out_dir: Path) -> None:
    body = make_body(50_000)
    server.add("/tracks/t1.flac", body)
    part = part_path(out_dir / "t1.flac", ("minimal", "t1"))
    part.write_bytes(b"garbage from something else")
    sidecar_path(part).write_text(
        json.dumps(
            {
                "source": "minimal",
                "content_id": "other",
                "etag": server.resource("/tracks/t1.flac").etag,
            }
        )
    )
    with minimal(server, out_dir) as downloader:
        result = downloader.download(downloader.get_download_info("t1"))
    assert result.is_success
    assert result.resumed_from == 0
    assert (out_dir / "t1.flac").read_bytes() == body


def test_resume_of_a_complete_part_answers_416_and_fetches_nothing(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(50_000)
    server.add("/tracks/t1.flac", body)
    part = part_path(out_dir / "t1.flac", ("minimal", "t1"))
    part.write_bytes(body)
    sidecar_path(part).write_text(
        json.dumps(
            {
                "source": "minimal",
                "content_id": "t1",
                "etag": server.resource("/tracks/t1.flac").etag,
                "total": len(body),
            }
        )
    )
    with minimal(server, out_dir) as downloader:
        result = downloader.download(downloader.get_download_info("t1"))
    assert result.is_success
    assert result.bytes_downloaded == 0
    assert (out_dir / "t1.flac").read_bytes() == body
    assert server.bytes_sent("/tracks/t1.flac") == 0


def test_custom_download_content_gets_verification_and_atomic_rename(
    server: TestServer, out_dir: Path
) -> None:
    class Joined(Minimal):
        def _download_content(
            self, content: DownloadableContent, file_path: Path, progress_callback: Any
        ) -> None:
            with open(file_path, "wb") as handle:
                for piece in (b"seg1-", b"seg2-", b"seg3"):
                    handle.write(piece)
                    progress_callback(len(piece))
            return None

    with Joined(make_config(out_dir), base_url=server.base_url) as downloader:
        content = downloader.get_download_info("j")
        content.checksum = f"sha1:{hashlib.sha1(b'seg1-seg2-seg3').hexdigest()}"
        result = downloader.download(content)
    assert result.is_success, result.error
    assert (out_dir / "j.flac").read_bytes() == b"seg1-seg2-seg3"
    assert not part_path(out_dir / "j.flac", ("minimal", "j")).exists()


def test_cancel_event_stops_a_download_and_keeps_the_part(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/tracks/slow.flac", make_body(2_000_000), rate_limit_bps=500_000)
    tracker = ProgressTracker(min_interval=0)
    started = threading.Event()

    def on_progress(_id: str, progress: DownloadProgress) -> None:
        if progress.downloaded_bytes > 100_000:
            started.set()

    tracker.add_callback(on_progress)
    with minimal(server, out_dir, tracker) as downloader:
        done = threading.Event()
        results = []

        def work() -> None:
            results.append(downloader.download(downloader.get_download_info("slow")))
            done.set()

        thread = threading.Thread(target=work)
        thread.start()
        assert started.wait(5)
        downloader.cancel_event.set()
        assert done.wait(5)
        thread.join()
    assert results[0].status is ResultStatus.CANCELLED
    assert not (out_dir / "slow.flac").exists()
    assert part_path(out_dir / "slow.flac", ("minimal", "slow")).stat().st_size > 0


def test_check_response_refuses_an_error_document_before_it_is_written(
    server: TestServer, out_dir: Path
) -> None:
    class Picky(Minimal):
        def check_response(self, content: DownloadableContent, response: Any) -> None:
            if response.headers.get("Content-Type", "").startswith("application/json"):
                raise ContentNotFoundError(
                    "the service answered with an error document", source=self.source_name
                )

    server.add("/tracks/t1.flac", b'{"error": "no such track"}', content_type="application/json")
    with Picky(make_config(out_dir), base_url=server.base_url) as downloader:
        result = downloader.download(downloader.get_download_info("t1"))
    assert isinstance(result.error, ContentNotFoundError)
    assert "error document" in str(result.error)
    assert len(server.requests_for("/tracks/t1.flac")) == 1  # permanent: not retried
    assert not (out_dir / "t1.flac").exists()
    # not a byte of it was written
    assert not part_path(out_dir / "t1.flac", ("minimal", "t1")).exists()
