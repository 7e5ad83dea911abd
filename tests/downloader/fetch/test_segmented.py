"""SegmentedFetcher: ranged segments of one file against a real misbehaving server.

The fault suite (tests/support/fault_scenarios.py) runs here with four segments: every lie
about ranges falls back to one plain stream, and every scenario still lands the exact bytes or
a clean typed failure.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import DownloadResult, ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.exceptions import (
    ConnectionFailedError,
    DownloadError,
    HTTPStatusError,
    IncompleteBodyError,
    StallError,
    StorageError,
)
from ripstream.downloader.fetch import PartFile, plan_segments
from ripstream.downloader.fetch.pump import pump
from ripstream.downloader.progress import DownloadProgress, ProgressState, ProgressTracker
from ripstream.downloader.safefs import part_path
from ripstream.downloader.services import EngineServices
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
from tests.support.httpserver import Fault, Resource, TestServer, make_body
from tests.support.settings import fast_settings, make_config
from tests.support.syncs import recorded_fsyncs

SEGMENTS = 4


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_fault(server: TestServer, out_dir: Path, scenario: Scenario) -> None:
    check_scenario(server, out_dir, scenario, segments=SEGMENTS)


def test_a_large_file_arrives_in_ranged_parts_that_cover_it_exactly(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(1_000_000, seed=8)
    server.add("/file.bin", body)
    result = run(server, out_dir, segments=SEGMENTS)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    ranges = [r.range_header for r in server.requests_for("/file.bin")]
    assert all(ranges), ranges  # never a plain full GET
    assert len(ranges) >= SEGMENTS  # the probe, then one request per part


def test_plan_splits_the_whole_file_into_contiguous_parts() -> None:
    settings = fast_settings(segments=4, min_segment_size=64 * 1024)
    parts = plan_segments(settings, 1_000_001)
    assert len(parts) == 4
    assert parts[0][0] == 0
    assert parts[-1][1] == 1_000_001
    assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
    # a file smaller than two minimum segments is one part
    assert plan_segments(settings, 100_000) == [(0, 100_000)]


# -- what reaches the server ----------------------------------------------------------------------

PATH = "/file.bin"


def ranged(server: TestServer) -> list[str | None]:
    return [r.range_header for r in server.requests_for(PATH)]


def plant(
    server: TestServer, out_dir: Path, on_disk: bytes, resource: Resource, segments: list[list[int]]
) -> None:
    """Leave PATH's ``.part`` holding ``on_disk``, with a resume state of ``segments``
    ([start, end, done] each) for the server's version of the file."""
    part = part_path(out_dir / "file.bin", ("http", server.url(PATH)))
    part.write_bytes(on_disk)
    state = ResumeState(
        "http", server.url(PATH), etag=resource.etag, total=len(resource.body), segments=segments
    )
    sidecar_path(part).write_text(state.to_json())


def test_every_range_asks_for_identity_bytes_and_each_part_names_the_probed_version(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(1_000_000, seed=21)
    resource = server.add(PATH, body)
    result = run(server, out_dir, segments=SEGMENTS)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    probe, *parts = server.requests_for(PATH)
    assert (probe.range_header, probe.headers.get("If-Range")) == ("bytes=0-65535", None)
    # the probe's answer goes on into the first part: no byte is asked for twice
    assert sorted(r.range_header or "" for r in parts) == [
        "bytes=250000-499999",
        "bytes=500000-749999",
        "bytes=65536-249999",
        "bytes=750000-999999",
    ]
    assert server.bytes_sent(PATH) == len(body)
    for request in (probe, *parts):
        assert request.headers.get("Accept-Encoding") == "identity", request
    # a part of a file changed since the probe must come back whole (a 200), never spliced
    assert [r.headers.get("If-Range") for r in parts] == [resource.etag] * 4
    assert (result.total_bytes, result.resumed_from) == (len(body), 0)


def fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What ``-v`` shows of the fall-backs to one stream."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ripstream.downloader.fetch.segmented" and r.levelno == logging.INFO
    ]


def test_a_server_that_ignores_ranges_is_read_from_its_first_answer(
    server: TestServer, out_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ripstream")
    body = make_body(300_000, seed=22)
    server.add(PATH, body, faults=[Fault.ignore_range()])
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert ranged(server) == ["bytes=0-65535"]  # the 200 was the whole file: one request
    assert fallbacks(caplog) == [
        f"{server.url(PATH)}: the server ignores ranges; downloading as one stream"
    ]


def test_two_segments_are_segments(server: TestServer, out_dir: Path) -> None:
    body = make_body(200_000, seed=23)
    server.add(PATH, body)
    result = run(server, out_dir, segments=2, max_retries=0)
    assert result.is_success, result.error
    assert sorted(r or "" for r in ranged(server)) == sorted(
        ["bytes=0-65535", "bytes=65536-99999", "bytes=100000-199999"]
    )


def test_an_empty_file_is_known_from_the_probe_alone(server: TestServer, out_dir: Path) -> None:
    server.add(PATH, b"")
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert (out_dir / "file.bin").read_bytes() == b""
    assert ranged(server) == ["bytes=0-65535"]  # its 416 says the total is 0
    assert (result.total_bytes, result.resumed_from) == (0, 0)


@pytest.mark.parametrize("status", [400, 404])
def test_an_error_to_the_probe_is_its_typed_error_after_one_request(
    server: TestServer, out_dir: Path, status: int
) -> None:
    server.add(PATH, make_body(300_000, seed=24), faults=[Fault.status(status, times=None)])
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    error = result.error
    assert isinstance(error, HTTPStatusError), error
    assert (error.status_code, error.source, error.url) == (status, "http", server.url(PATH))
    assert ranged(server) == ["bytes=0-65535"]
    assert not (out_dir / "file.bin").exists()


def test_plan_of_an_empty_file_is_one_empty_part() -> None:
    assert plan_segments(fast_settings(segments=4), 0) == [(0, 0)]


# -- the parts of a resumed download --------------------------------------------------------------


def interrupt(server: TestServer, out_dir: Path, body: bytes) -> Resource:
    """A first segmented run whose parts are cut after 20,000 bytes: a partial file and its
    resume state (no retries)."""
    resource = server.add(PATH, body, faults=[Fault.drop_after(20_000, reset=True, on="range")])
    first = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert first.status is ResultStatus.FAILED, first
    resource.set_faults([])
    server.reset_stats()
    return resource


def resume_state(server: TestServer, out_dir: Path) -> ResumeState:
    part = part_path(out_dir / "file.bin", ("http", server.url(PATH)))
    return ResumeState.from_json(sidecar_path(part).read_text())


def test_a_segmented_resume_asks_only_for_the_missing_bytes_under_if_range(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(600_000, seed=25)
    resource = interrupt(server, out_dir, body)
    state = resume_state(server, out_dir)
    have = sum(done - start for start, _end, done in state.segments)
    assert have > 0
    missing = sorted(f"bytes={done}-{end - 1}" for _s, end, done in state.segments if done < end)
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    requests = server.requests_for(PATH)
    assert sorted(r.range_header or "" for r in requests) == missing
    assert {r.headers.get("If-Range") for r in requests} == {resource.etag}
    assert {r.headers.get("Accept-Encoding") for r in requests} == {"identity"}
    assert (result.total_bytes, result.resumed_from) == (len(body), have)


def test_a_finished_resume_state_is_confirmed_by_its_last_byte(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000, seed=26)
    resource = server.add(PATH, body)
    plant(server, out_dir, body, resource, [[0, 300_000, 300_000]])
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert ranged(server) == ["bytes=299999-299999"]
    assert server.bytes_sent(PATH) == 1


@pytest.mark.parametrize(
    "change",
    [
        "grew under the same ETag",  # only the Content-Range total shows it
        "same size, new ETag",  # only the validators of the 206 show it
    ],
)
def test_a_changed_file_is_never_joined_to_the_parts_of_the_old_one(
    server: TestServer, out_dir: Path, change: str
) -> None:
    old = make_body(600_000, seed=27)
    resource = interrupt(server, out_dir, old)
    if change == "grew under the same ETag":
        new = make_body(601_000, seed=28)
        resource.set_body(new, etag=resource.etag)
    else:
        new = make_body(600_000, seed=29)
        resource.set_body(new)
    resource.set_faults([Fault.ignore_if_range()])  # a broken cache answers with a 206 anyway
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(new)
    requests = ranged(server)
    assert requests[0] not in (None, "bytes=0-65535"), "the parts were not resumed"
    assert requests[-1] is None  # refused: the file came again as one stream, from zero


def test_a_part_refused_on_resume_restarts_as_one_stream(
    server: TestServer, out_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    body = make_body(600_000, seed=30)
    resource = interrupt(server, out_dir, body)
    resource.set_faults([Fault.reject_range(403, times=None)])
    caplog.set_level(logging.INFO, logger="ripstream")
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert ranged(server)[-1] is None
    # -v says why: the URL, what the server did, and what happens instead
    assert fallbacks(caplog) == [
        f"{server.url(PATH)}: a range request was answered with HTTP 403; downloading as one stream"
    ]


@pytest.mark.parametrize("status", [400, 404])
def test_an_error_to_a_resumed_part_is_its_typed_error(
    server: TestServer, out_dir: Path, status: int
) -> None:
    body = make_body(600_000, seed=31)
    resource = interrupt(server, out_dir, body)
    resource.set_faults([Fault.status(status, times=None, on="range")])
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    error = result.error
    assert isinstance(error, HTTPStatusError), error
    assert (error.status_code, error.source, error.url) == (status, "http", server.url(PATH))
    assert None not in ranged(server)  # no fall back to a whole-file stream
    assert not (out_dir / "file.bin").exists()


def test_a_resume_state_of_one_stream_resumes_as_one_stream(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(400_000, seed=32)
    server.add(PATH, body, faults=[Fault.drop_after(200_000, times=1)])
    first = run(server, out_dir, segments=1, max_retries=0)
    assert first.status is ResultStatus.FAILED
    server.reset_stats()
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    resumed = ranged(server)
    assert len(resumed) == 1
    assert resumed[0] is not None
    assert resumed[0].endswith("-")
    assert resumed[0] != "bytes=0-"
    assert result.resumed_from > 0


def test_a_part_file_without_a_resume_state_is_fetched_in_segments(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(400_000, seed=33)
    server.add(PATH, body)
    part_path(out_dir / "file.bin", ("http", server.url(PATH))).write_bytes(b"x" * 1000)
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert None not in ranged(server)
    assert len(ranged(server)) == SEGMENTS + 1  # the probe, then one request per part


# -- parts that come back short -------------------------------------------------------------------

EMPTY = re.compile(r"(.*): range (\d+)-(\d+) keeps coming back empty")


def test_a_part_that_keeps_coming_back_empty_fails_after_three_answers(
    server: TestServer, out_dir: Path
) -> None:
    # every 206 names the asked range and sends none of it (no Content-Length to tell)
    body = make_body(200_000, seed=34)
    server.add(PATH, body, faults=[Fault.short_range(200_000), Fault.no_content_length()])
    result = run(server, out_dir, segments=2, max_retries=0)
    error = result.error
    assert isinstance(error, IncompleteBodyError), error
    match = EMPTY.fullmatch(str(error))
    assert match is not None, error
    url, start, last = match[1], int(match[2]), int(match[3])
    assert url == server.url(PATH)
    assert (start, last) in [(0, 99_999), (100_000, 199_999)]
    assert (error.url, error.source) == (url, "http")
    assert (error.expected, error.received) == (last + 1 - start, 0)
    asked = Counter(int((r or "=0-").split("=")[1].split("-")[0]) for r in ranged(server))
    assert asked[start] == 3  # the probe counts for the first part
    assert asked[100_000] in (0, 3)
    assert not (out_dir / "file.bin").exists()


def test_a_part_that_comes_back_short_is_asked_again_for_the_rest(
    server: TestServer, out_dir: Path
) -> None:
    # the first two answers to each range send 10,000 bytes less than they announce
    body = make_body(200_000, seed=35)
    server.add(
        PATH,
        body,
        faults=[Fault.short_range(10_000, times=4), Fault.no_content_length(times=4)],
    )
    result = run(server, out_dir, segments=2, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert len(ranged(server)) >= 5


# -- what the progress shows ----------------------------------------------------------------------


def run_watched(
    server: TestServer, out_dir: Path, **settings: Any
) -> tuple[DownloadResult, list[DownloadProgress]]:
    """Download PATH with a tracker that keeps every progress snapshot."""
    snapshots: list[DownloadProgress] = []
    tracker = ProgressTracker(min_interval=0.0)
    tracker.add_callback(lambda _id, progress: snapshots.append(progress))
    engine = DownloadEngine(EngineServices(tracker=tracker))
    with HttpDownloader(make_config(out_dir, **settings)) as http:
        result = engine.run(http, http.get_download_info(server.url(PATH)))
    return result, snapshots


def test_the_progress_of_a_segmented_resume_counts_the_parts_on_disk(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(600_000, seed=36)
    interrupt(server, out_dir, body)
    state = resume_state(server, out_dir)
    have = sum(done - start for start, _end, done in state.segments)
    result, snapshots = run_watched(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    moving = [p for p in snapshots if p.state is not ProgressState.STARTED]
    assert moving
    assert {(p.total_bytes, p.resumed_bytes) for p in moving} == {(len(body), have)}
    assert snapshots[-1].downloaded_bytes == len(body)


def test_the_progress_of_an_empty_file_is_complete_at_zero(
    server: TestServer, out_dir: Path
) -> None:
    server.add(PATH, b"")
    result, snapshots = run_watched(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    last = snapshots[-1]
    assert (last.downloaded_bytes, last.total_bytes, last.resumed_bytes) == (0, 0, 0)
    assert last.percentage == 100.0


# -- a worker with nothing left takes over half of the largest part -------------------------------

MIB = 1024 * 1024


def test_a_part_taken_over_by_another_worker_is_fetched_once(
    server: TestServer, out_dir: Path
) -> None:
    # resumed: the first part lacks 64 KiB, the second all of its 8 MiB (sent at 16 MiB/s);
    # the worker done with the first takes over the second half of the second
    body = make_body(16 * MIB, seed=37)
    resource = server.add(PATH, body, faults=[Fault.trickle(16 * MIB)])
    on_disk = bytearray(len(body))
    on_disk[: 8 * MIB - 64 * 1024] = body[: 8 * MIB - 64 * 1024]
    segments = [[0, 8 * MIB, 8 * MIB - 64 * 1024], [8 * MIB, 16 * MIB, 8 * MIB]]
    plant(server, out_dir, bytes(on_disk), resource, segments)
    result = run(server, out_dir, segments=2, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    requests = ranged(server)
    assert len(requests) == 3, requests  # the two parts, and the half taken over
    assert None not in requests  # never restarted as one stream
    # the part that was cut stops reading where the other worker took over (up to the
    # read-ahead of the sockets), instead of fetching that half a second time
    missing = 8 * MIB + 64 * 1024
    assert server.bytes_sent(PATH) < missing + 3 * MIB


def saved_states(monkeypatch: pytest.MonkeyPatch) -> list[list[list[int]]]:
    """From now on, the parts ([start, end, done] each) of every resume state written, in
    order: what a crash (kill -9) would leave at each moment."""
    saved: list[list[list[int]]] = []
    save = PartFile.save

    def recording_save(part: PartFile, state: ResumeState) -> None:
        saved.append([list(segment) for segment in state.segments])
        save(part, state)

    monkeypatch.setattr(PartFile, "save", recording_save)
    return saved


def test_a_segmented_download_records_its_progress_while_bytes_arrive(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # what a crash (kill -9) would leave: the states written before the end of the run
    saved = saved_states(monkeypatch)
    body = make_body(600_000, seed=38)
    server.add(PATH, body)
    ticks = itertools.count(1000.0, 0.25)  # a clock that moves a quarter second a look
    engine = DownloadEngine(EngineServices(clock=lambda: next(ticks)))
    config = make_config(out_dir, segments=SEGMENTS, chunk_size=16 * 1024, min_speed=None)
    with HttpDownloader(config) as http:
        result = engine.run(http, http.get_download_info(server.url(PATH)))
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert saved[0] == [[s, e, s] for s, e in plan_segments(config.default_settings, len(body))]
    during = saved[1:-1]  # after the plan, before the last one at the end
    # progress inside a part, not only parts done: checkpoints come while a part arrives
    assert any(start < done < end for state in during for start, end, done in state), saved
    # each state claims no less than the one before it (a late snapshot never overwrites)
    for earlier, later in itertools.pairwise(saved):
        if len(earlier) == len(later):
            assert all(a[2] <= b[2] for a, b in zip(earlier, later, strict=True)), saved


def test_the_parts_are_fetched_side_by_side(server: TestServer, out_dir: Path) -> None:
    # sent at 4 MB/s, each of the four parts takes 50 ms: the helpers overlap the first
    body = make_body(800_000, seed=39)
    server.add(PATH, body, faults=[Fault.trickle(4_000_000)])
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert server.max_concurrent_requests >= 2


@pytest.mark.parametrize("fsync", [True, False])
def test_the_finished_parts_reach_the_disk_before_the_end_when_asked(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    synced = recorded_fsyncs(monkeypatch)
    body = make_body(300_000, seed=40)
    server.add(PATH, body)
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0, fsync=fsync)
    assert result.is_success, result.error
    part = part_path(out_dir / "file.bin", ("http", server.url(PATH)))
    assert (str(part) in synced) is fsync


# -- a disk that fails, a worker that breaks -------------------------------------------------------


def test_a_part_file_that_cannot_be_opened_is_a_storage_error_naming_it(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = part_path(out_dir / "file.bin", ("http", server.url(PATH)))
    real = os.open

    def refusing_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        # where the parts are written: the part file, opened to write without creating it
        if str(path) == str(part) and flags & os.O_WRONLY and not flags & os.O_CREAT:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    server.add(PATH, make_body(300_000, seed=41))
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    error = result.error
    assert isinstance(error, StorageError), error
    assert str(error) == f"cannot write {str(part)!r}: the file system is read-only"
    assert (error.path, error.url) == (str(part), server.url(PATH))
    assert not (out_dir / "file.bin").exists()


def test_a_sync_that_fails_at_a_checkpoint_is_a_storage_error_naming_the_part(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdatasync", full)
    server.add(PATH, make_body(300_000, seed=42))
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    error = result.error
    assert isinstance(error, StorageError), error
    part = part_path(out_dir / "file.bin", ("http", server.url(PATH)))
    assert str(error) == f"cannot write {str(part)!r}: the disk is full"
    assert (error.path, error.url) == (str(part), server.url(PATH))


def test_an_unexpected_error_in_a_part_worker_is_a_typed_failure_naming_url_and_source(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fd: int, data: Any, position: int) -> int:
        raise RuntimeError("a bug below the writer")

    monkeypatch.setattr(os, "pwrite", broken)
    server.add(PATH, make_body(300_000, seed=43))
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    error = result.error
    assert isinstance(error, DownloadError), error
    assert (error.url, error.source) == (server.url(PATH), "http")
    assert "a bug below the writer" in str(error)
    assert not (out_dir / "file.bin").exists()


@pytest.mark.parametrize(
    "faults",
    [
        # bytes 1000-65535 of the file, named honestly, with no Content-Length to tell
        [
            Fault.wrong_range_start(1000, honest=True, keep_end=True, times=1),
            Fault.no_content_length(times=1),
        ],
        # a total the server does not know
        [Fault.wrong_range_total(total="*", times=1)],
    ],
    ids=["starts late", "unknown total"],
)
def test_a_probe_answered_with_another_range_falls_back_to_one_stream(
    server: TestServer, out_dir: Path, faults: list[Fault]
) -> None:
    body = make_body(300_000, seed=44)
    resource = server.add(PATH, body, faults=faults)
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert resource.fault_uses()[0] == 1  # the lie was told
    assert ranged(server) == ["bytes=0-65535", None]


def test_a_part_with_one_byte_left_is_fetched(server: TestServer, out_dir: Path) -> None:
    body = make_body(300_000, seed=45)
    resource = server.add(PATH, body)
    plant(server, out_dir, body[:-1] + b"\0", resource, [[0, 300_000, 299_999]])
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    assert ranged(server) == ["bytes=299999-299999"]


# -- what a failure in a helper thread becomes ------------------------------------------------


def answers_from(
    monkeypatch: pytest.MonkeyPatch, offset: int, instead: Callable[[Any], None]
) -> None:
    """Every answer to a range from ``offset`` on is closed unread and handed to ``instead``
    (which may raise); earlier ranges are read as usual."""

    def pumping(job: Any, response: Any, limit: Any, write: Any, position: int, **kw: Any) -> Any:
        if position < offset:
            return pump(job, response, limit, write, position, **kw)
        response.close()
        return instead(response)

    monkeypatch.setattr("ripstream.downloader.fetch.segmented.pump", pumping)


@pytest.mark.parametrize(
    ("raised", "kind", "words"),
    [
        # an OSError of its own kind keeps its meaning: a stall, not a generic network error
        (TimeoutError(), StallError, "no data from {url} within the read timeout"),
        # not an Exception at all (a SystemExit in a thread): a typed failure with its words
        (SystemExit("stopped in a helper"), ConnectionFailedError, "{url}: stopped in a helper"),
    ],
)
def test_a_failure_in_a_helper_thread_is_the_typed_error_of_its_kind(
    server: TestServer,
    out_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    kind: type[DownloadError],
    words: str,
) -> None:
    def fail(response: Any) -> None:
        raise raised

    answers_from(monkeypatch, 1, fail)  # a later part: a helper's
    server.add(PATH, make_body(400_000, seed=47))
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    error = result.error
    assert type(error) is kind, error
    url = server.url(PATH)
    assert words.format(url=url) in str(error)
    assert (error.url, error.source) == (url, "http")
    assert not (out_dir / "file.bin").exists()


def test_a_later_part_that_keeps_coming_back_empty_names_its_own_range(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers_from(monkeypatch, 100_000, lambda response: None)  # the second part: no byte
    server.add(PATH, make_body(200_000, seed=48))
    result = run(server, out_dir, segments=2, max_retries=0)
    error = result.error
    assert isinstance(error, IncompleteBodyError), error
    assert str(error) == f"{server.url(PATH)}: range 100000-199999 keeps coming back empty"
    assert (error.expected, error.received) == (100_000, 0)


def test_a_content_that_asks_for_compressed_bytes_still_gets_identity_ranges(
    server: TestServer, out_dir: Path
) -> None:
    # a source's own headers for its content must not turn ranges into ranges of a gzip body
    body = make_body(400_000, seed=49)
    server.add(PATH, body)
    with HttpDownloader(make_config(out_dir, segments=SEGMENTS, max_retries=0)) as http:
        content = http.get_download_info(server.url(PATH))
        content.headers = {"Accept-Encoding": "gzip", "X-Token": "t"}
        result = http.download(content)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    seen = server.requests_for(PATH)
    assert len(seen) == SEGMENTS + 1
    assert {(r.headers.get("Accept-Encoding"), r.headers.get("X-Token")) for r in seen} == {
        ("identity", "t")
    }


def test_a_part_that_made_progress_gets_three_more_empty_answers_before_it_fails(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the second part's answers: empty, empty, 1,000 bytes, empty, empty, then the rest;
    # the count of empty answers starts again after the progress, so the part completes
    script = iter([0, 0, 1000, 0, 0])

    def scripted(job: Any, response: Any, limit: Any, write: Any, position: int, **kw: Any) -> Any:
        if position < 100_000:
            return pump(job, response, limit, write, position, **kw)
        allowed = next(script, None)
        if allowed is None:
            return pump(job, response, limit, write, position, **kw)
        if allowed:
            return pump(job, response, allowed, write, position, **kw)
        response.close()
        return None

    monkeypatch.setattr("ripstream.downloader.fetch.segmented.pump", scripted)
    body = make_body(200_000, seed=50)
    server.add(PATH, body)
    result = run(server, out_dir, segments=2, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    asked = [r for r in ranged(server) if r and int(r[6:].split("-")[0]) >= 100_000]
    assert asked == ["bytes=100000-199999"] * 3 + ["bytes=101000-199999"] * 3


def test_a_checkpoint_comes_once_a_second_of_the_clock_and_the_last_one_is_written(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the clock stands still, and moves exactly one second when the first bytes arrive:
    # one checkpoint then (a second has passed), none after it (no time passes), and the
    # final state at the end, though it is taken at the same instant as that checkpoint
    now = [1000.0]
    saved = saved_states(monkeypatch)

    def pumping(job: Any, response: Any, limit: Any, write: Any, position: int, **kw: Any) -> Any:
        now[0] = 1001.0
        return pump(job, response, limit, write, position, **kw)

    monkeypatch.setattr("ripstream.downloader.fetch.segmented.pump", pumping)
    body = make_body(600_000, seed=51)
    server.add(PATH, body)
    engine = DownloadEngine(EngineServices(clock=lambda: now[0]))
    config = make_config(out_dir, segments=SEGMENTS, chunk_size=16 * 1024, min_speed=None)
    with HttpDownloader(config) as http:
        result = engine.run(http, http.get_download_info(server.url(PATH)))
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    plan = plan_segments(config.default_settings, len(body))
    assert len(saved) == 3, saved  # the plan, one checkpoint, the end
    assert saved[0] == [[s, e, s] for s, e in plan]
    assert saved[-1] == [[s, e, e] for s, e in plan]


# -- a steal, step by step --------------------------------------------------------------------


def test_an_idle_worker_takes_over_the_second_half_of_a_waiting_part_and_no_one_else_does(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a resume of 16 MiB in four parts of 4 MiB: the first three lack 100 KB each, the last
    # all of its 4 MiB (twice the smallest part worth splitting). The last part's answer is
    # held back until an idle worker has taken over its second half; that worker waits until
    # the two other idle workers have come back for work and found none.
    saved = saved_states(monkeypatch)

    stolen = threading.Event()
    finished = threading.Semaphore(0)

    def pumping(job: Any, response: Any, limit: Any, write: Any, position: int, **kw: Any) -> Any:
        if position == 12 * MIB:  # the last part: wait for the steal
            assert stolen.wait(10)
        elif position == 14 * MIB:  # the half taken over
            stolen.set()
            for _ in range(2):  # the two other parts done (the first done is the thief's)
                assert finished.acquire(timeout=10)
            time.sleep(0.3)  # their workers look for work meanwhile
            return pump(job, response, limit, write, position, **kw)
        try:
            return pump(job, response, limit, write, position, **kw)
        finally:
            if position != 12 * MIB:
                finished.release()

    monkeypatch.setattr("ripstream.downloader.fetch.segmented.pump", pumping)
    body = make_body(16 * MIB, seed=52)
    resource = server.add(PATH, body)
    on_disk = bytearray(len(body))
    segments = []
    for start in range(0, 12 * MIB, 4 * MIB):
        done = start + 4 * MIB - 100_000
        on_disk[start:done] = body[start:done]
        segments.append([start, start + 4 * MIB, done])
    plant(server, out_dir, bytes(on_disk), resource, [*segments, [12 * MIB, 16 * MIB, 12 * MIB]])
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    steals = [r for r in ranged(server) if r and r.startswith(f"bytes={14 * MIB}-")]
    assert steals == [f"bytes={14 * MIB}-{16 * MIB - 1}"]  # asked for once, by one worker
    assert saved[-1] == [
        [0, 4 * MIB, 4 * MIB],
        [4 * MIB, 8 * MIB, 8 * MIB],
        [8 * MIB, 12 * MIB, 12 * MIB],
        [12 * MIB, 14 * MIB, 14 * MIB],
        [14 * MIB, 16 * MIB, 16 * MIB],
    ]


def test_parts_that_no_worker_fetched_fail_the_download_instead_of_leaving_holes(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a fault in the scheduling (simulated: no worker is ever given a part) must not move a
    # file with unfetched, zero-filled parts into place: the last check names the download
    monkeypatch.setattr("ripstream.downloader.fetch.segmented._Segments._claim", lambda self: None)
    server.add(PATH, make_body(400_000, seed=53))
    result = run(server, out_dir, segments=SEGMENTS, max_retries=0)
    error = result.error
    assert isinstance(error, IncompleteBodyError), error
    url = server.url(PATH)
    assert str(error) == f"{url}: segments left unfinished"
    assert (error.url, error.source) == (url, "http")
    assert not (out_dir / "file.bin").exists()
    # the head part (the probe's answer, then the rest of its part), no other part
    assert ranged(server) == ["bytes=0-65535", "bytes=65536-99999"]
