"""StreamFetcher: one plain stream against a real misbehaving server.

Every scenario of the fault suite (tests/support/fault_scenarios.py) ends with the exact bytes
at the final path (sha256) or with a clean typed failure and nothing at the final path.
"""

from __future__ import annotations

import collections
import shutil
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import DownloadResult, ResultStatus
from ripstream.downloader.exceptions import (
    ContentNotFoundError,
    IncompleteBodyError,
    RedirectError,
    ResponseMismatchError,
    RetryExhaustedError,
    ServerError,
    StallError,
)
from ripstream.downloader.progress import DownloadProgress, ProgressTracker
from ripstream.downloader.safefs import part_path
from ripstream.downloader.state import ResumeState, sidecar_path
from ripstream.sources.http import HttpDownloader
from tests.support.fault_scenarios import (
    SCENARIO_IDS,
    SCENARIOS,
    Scenario,
    check_scenario,
    run,
    sha,
)
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_fault(server: TestServer, out_dir: Path, scenario: Scenario) -> None:
    check_scenario(server, out_dir, scenario, segments=1)


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


def test_a_dropped_stream_resumes_with_a_range_from_where_it_stopped(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000, seed=3)
    server.add("/file.bin", body, faults=[Fault.drop_after(120_000, times=1)])
    result = run(server, out_dir)
    assert result.is_success
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    second = server.requests_for("/file.bin")[1]
    assert second.range_header == "bytes=120000-"
    assert result.resumed_from == 120_000


# -- a resume from a planted .part: every answer other than the rest of the same file ----------

BODY = make_body(300_000, seed=61)


def tracked() -> tuple[ProgressTracker, list[DownloadProgress]]:
    """A tracker that keeps every snapshot it hands out."""
    tracker = ProgressTracker(min_interval=0)
    seen: list[DownloadProgress] = []
    tracker.add_callback(lambda _id, progress: seen.append(progress))
    return tracker, seen


def resume(
    server: TestServer,
    out_dir: Path,
    kept: int,
    *,
    total: int | None = len(BODY),
    etag: str | None = None,
    tracker: ProgressTracker | None = None,
    **settings: Any,
) -> DownloadResult:
    """Download /file.bin with the first ``kept`` bytes of BODY already in its ``.part``,
    proven by a sidecar that records ``total`` and ``etag`` (default: the server's)."""
    with HttpDownloader(make_config(out_dir, **settings), progress_tracker=tracker) as http:
        content = http.get_download_info(server.url("/file.bin"))
        part = part_path(out_dir / "file.bin", ("http", content.content_id))
        part.write_bytes(BODY[:kept])
        validator = etag or server.resource("/file.bin").etag
        state = ResumeState("http", content.content_id, etag=validator, total=total)
        sidecar_path(part).write_text(state.to_json(), encoding="utf-8")
        return http.download(content)


def gets(server: TestServer) -> list[str | None]:
    """The Range header of each GET of /file.bin, in order."""
    return [r.range_header for r in server.requests_for("/file.bin") if r.method == "GET"]


def next_run_starts_from_zero(server: TestServer, out_dir: Path, *, refused: str) -> None:
    """After a refused resume (the one request so far, for ``refused``), the next run
    downloads the whole file with one plain request and lands its exact bytes."""
    url = server.url("/file.bin")
    with HttpDownloader(make_config(out_dir)) as http:
        again = http.download(http.get_download_info(url))
    assert again.status is ResultStatus.COMPLETED, again.error
    assert (out_dir / "file.bin").read_bytes() == BODY
    assert gets(server) == [refused, None]


def test_a_resume_reports_the_whole_file_and_the_bytes_kept(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", BODY)
    tracker, seen = tracked()
    result = resume(server, out_dir, 100_000, tracker=tracker)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == BODY
    assert gets(server) == ["bytes=100000-"]
    assert (result.total_bytes, result.resumed_from, result.bytes_downloaded) == (
        300_000,
        100_000,
        200_000,
    )
    assert (seen[-1].downloaded_bytes, seen[-1].total_bytes) == (300_000, 300_000)
    # every snapshot while the rest arrives shows the total (a percentage, not "unknown")
    assert {p.total_bytes for p in seen if p.downloaded_bytes > 100_000} == {300_000}


def test_a_resume_needs_free_space_for_the_rest_of_the_file_only(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = collections.namedtuple("usage", "total used free")
    server.add("/file.bin", BODY)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage(10**9, 10**9, 150_000))
    result = resume(server, out_dir, 200_000, max_retries=0)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == BODY


@pytest.mark.parametrize("recorded", [len(BODY), None])
def test_a_416_whose_total_is_the_bytes_kept_completes_the_file(
    server: TestServer, out_dir: Path, recorded: int | None
) -> None:
    server.add("/file.bin", BODY)
    tracker, seen = tracked()
    result = resume(server, out_dir, len(BODY), total=recorded, tracker=tracker)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == BODY
    assert gets(server) == ["bytes=300000-"]
    assert (result.total_bytes, result.bytes_downloaded) == (300_000, 0)
    assert (seen[-1].downloaded_bytes, seen[-1].total_bytes) == (300_000, 300_000)


@pytest.mark.parametrize(("content_range", "shown"), [(None, "300000"), ("bytes */*", "unknown")])
def test_a_416_that_does_not_prove_the_file_whole_starts_over(
    server: TestServer, out_dir: Path, content_range: str | None, shown: str
) -> None:
    # 100 kB kept of a file the server says has 300 kB (or does not say): not whole
    headers = {"Content-Range": content_range} if content_range else None
    server.add("/file.bin", BODY, faults=[Fault.status(416, headers=headers, on="range")])
    tracker, seen = tracked()
    refused = resume(server, out_dir, 100_000, total=None, tracker=tracker, max_retries=0)
    error = refused.error
    assert isinstance(error, ResponseMismatchError), error
    url = server.url("/file.bin")
    assert str(error) == (
        f"{url} refused to resume at byte 100000 (HTTP 416, total {shown}); starting over"
    )
    assert (error.url, error.source, error.status_code) == (url, "http", 416)
    assert not (out_dir / "file.bin").exists()
    assert min(p.downloaded_bytes for p in seen) >= 0
    assert seen[-1].downloaded_bytes == 0  # the bytes thrown away are no longer counted
    next_run_starts_from_zero(server, out_dir, refused="bytes=100000-")


def test_a_416_after_the_file_shrank_to_the_bytes_kept_is_the_new_file(
    server: TestServer, out_dir: Path
) -> None:
    # 300 kB kept of a file recorded as 301 kB; the file on the server is now another one of
    # exactly 300 kB (a cache that ignores If-Range): its 416 total matches the bytes kept,
    # the recorded total does not
    new = make_body(len(BODY), seed=62)
    server.add("/file.bin", new, faults=[Fault.ignore_if_range()])
    result = resume(server, out_dir, len(BODY), total=len(BODY) + 1000, etag='"old"')
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == new
    assert gets(server) == ["bytes=300000-", None]


def test_an_encoded_answer_to_a_resume_starts_over(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", BODY, faults=[Fault.gzip_encoding(on="range"), Fault.ignore_if_range()])
    tracker, seen = tracked()
    refused = resume(server, out_dir, 200_000, tracker=tracker, max_retries=0)
    error = refused.error
    assert isinstance(error, ResponseMismatchError), error
    url = server.url("/file.bin")
    assert str(error) == f"{url} sent an encoded partial body; starting over"
    assert (error.url, error.source, error.status_code) == (url, "http", 206)
    assert max(p.downloaded_bytes for p in seen) <= len(BODY)
    next_run_starts_from_zero(server, out_dir, refused="bytes=200000-")


def test_a_whole_file_answer_to_a_resume_is_written_from_zero(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", BODY, faults=[Fault.ignore_range()])
    tracker, seen = tracked()
    result = resume(server, out_dir, 200_000, tracker=tracker, max_retries=0)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == BODY
    assert gets(server) == ["bytes=200000-"]  # used at once, not asked for again
    assert (result.resumed_from, result.bytes_downloaded) == (0, 300_000)
    assert max(p.downloaded_bytes for p in seen) <= len(BODY)


def test_a_resume_answered_with_another_version_starts_over(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", BODY, faults=[Fault.ignore_if_range()])
    tracker, seen = tracked()
    refused = resume(server, out_dir, 200_000, etag='"old"', tracker=tracker, max_retries=0)
    error = refused.error
    assert isinstance(error, ResponseMismatchError), error
    url = server.url("/file.bin")
    assert str(error) == (
        f"{url} answered the resume with another version of the file "
        "(its ETag or Last-Modified changed); starting over"
    )
    assert (error.url, error.source, error.status_code) == (url, "http", 206)
    # the bytes kept were counted with the recorded total, then taken back
    assert (0, 300_000) in {(p.downloaded_bytes, p.total_bytes) for p in seen}
    assert max(p.downloaded_bytes for p in seen) <= len(BODY)
    assert min(p.downloaded_bytes for p in seen) >= 0


def test_a_206_from_the_wrong_byte_names_the_source(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", BODY, faults=[Fault.wrong_range_start(-7, on="range")])
    refused = resume(server, out_dir, 200_000, max_retries=0)
    error = refused.error
    assert isinstance(error, ResponseMismatchError), error
    url = server.url("/file.bin")
    assert str(error) == f"{url} sent bytes from 199993 when 200000 was asked"
    assert (error.url, error.source, error.status_code) == (url, "http", 206)


def test_a_body_short_of_its_length_names_both_counts(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", BODY, faults=[Fault.content_length_too_large(1000)])
    result = run(server, out_dir, max_retries=0)
    error = result.error
    assert isinstance(error, IncompleteBodyError), error
    url = server.url("/file.bin")
    assert str(error) == f"{url} ended after 300000 of 301000 bytes"
    assert (error.url, error.source) == (url, "http")
    assert (error.expected, error.received) == (301_000, 300_000)


def test_an_error_status_names_the_source(server: TestServer, out_dir: Path) -> None:
    server.add("/file.bin", BODY, faults=[Fault.permanent_status(404)])
    result = run(server, out_dir, max_retries=0)
    assert isinstance(result.error, ContentNotFoundError), result.error
    assert result.error.source == "http"


def test_a_resume_asks_for_the_rest_of_the_stored_bytes_of_the_same_version(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", BODY)
    # the user's own Accept-Encoding does not make the body one that cannot be resumed
    headers = {"Accept-Encoding": "gzip, br"}
    result = resume(server, out_dir, 100_000, etag='"v7"', max_retries=0, headers=headers)
    # the server's ETag is another one: If-Range makes it send the whole file, used from zero
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == BODY
    (asked,) = [r for r in server.requests_for("/file.bin") if r.method == "GET"]
    assert asked.range_header == "bytes=100000-"
    assert asked.headers.get("If-Range") == '"v7"'
    assert asked.headers.get("Accept-Encoding") == "identity"


@pytest.mark.parametrize(
    ("status", "headers", "hint"),
    [
        (
            206,
            {"Content-Range": "bytes 0-9/300000"},
            " (asked for the whole file, got a partial answer)",
        ),
        (204, None, ""),
    ],
)
def test_an_unexpected_status_is_refused_naming_it(
    server: TestServer, out_dir: Path, status: int, headers: dict[str, str] | None, hint: str
) -> None:
    fault = Fault.status(status, headers=headers, body=b"0123456789", method="GET")
    server.add("/file.bin", BODY, faults=[fault])
    result = run(server, out_dir, max_retries=0)
    error = result.error
    assert isinstance(error, ResponseMismatchError), error
    url = server.url("/file.bin")
    assert str(error) == f"unexpected HTTP {status} for {url}{hint}"
    assert (error.url, error.source, error.status_code) == (url, "http", status)
    assert not (out_dir / "file.bin").exists()


def test_segments_refused_by_a_whole_file_answer_count_from_zero(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/file.bin", BODY, faults=[Fault.ignore_range()])
    tracker, seen = tracked()
    with HttpDownloader(make_config(out_dir, segments=4), progress_tracker=tracker) as http:
        result = http.download(http.get_download_info(server.url("/file.bin")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == BODY
    assert len(gets(server)) == 1  # the whole-file answer was used, not asked for again
    assert min(p.downloaded_bytes for p in seen) >= 0
    assert (seen[-1].downloaded_bytes, seen[-1].total_bytes) == (300_000, 300_000)


def test_a_retry_from_zero_counts_the_file_once(server: TestServer, out_dir: Path) -> None:
    # resuming is off: the second attempt starts over, and the progress with it
    server.add("/file.bin", BODY, faults=[Fault.drop_after(200_000, times=1)])
    tracker, seen = tracked()
    with HttpDownloader(make_config(out_dir, resume=False), progress_tracker=tracker) as http:
        result = http.download(http.get_download_info(server.url("/file.bin")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == BODY
    assert gets(server) == [None, None]
    assert max(p.downloaded_bytes for p in seen) <= len(BODY)
    assert (seen[-1].downloaded_bytes, seen[-1].total_bytes) == (300_000, 300_000)


def test_a_restart_from_zero_keeps_nothing_of_a_longer_old_part(
    server: TestServer, out_dir: Path
) -> None:
    # an earlier run of a longer version of the file left its .part; the file changed, so
    # the server answers the resume with the whole new one, which must not keep the old tail
    new = BODY[:150_000]
    server.add("/file.bin", new)
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/file.bin"))
        part = part_path(out_dir / "file.bin", ("http", content.content_id))
        part.write_bytes(make_body(400_000, 99))
        state = ResumeState("http", content.content_id, etag='"old"', total=400_000)
        sidecar_path(part).write_text(state.to_json(), encoding="utf-8")
        result = http.download(content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "file.bin").read_bytes() == new
    assert gets(server) == ["bytes=400000-"]  # asked for the rest, given the new file
