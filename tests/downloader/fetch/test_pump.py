"""The hot loop against a real local server: the speed floor (and what it does not count), the
size limits while bytes arrive, and a cancel between chunks."""

from __future__ import annotations

import resource
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ripstream.downloader import ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.exceptions import (
    DownloadCancelledError,
    IncompleteBodyError,
    ResponseMismatchError,
    StallError,
    StorageError,
    TooLargeError,
)
from ripstream.downloader.fetch import FetchJob
from ripstream.downloader.fetch import pump as pump_module
from ripstream.downloader.fetch.pump import _SPACE_RESERVE as RESERVE
from ripstream.downloader.fetch.pump import pump
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.ratelimit import Throttle, TokenBucket
from ripstream.downloader.safefs import part_path
from ripstream.downloader.schedule import LiveBandwidth
from ripstream.downloader.services import EngineServices
from ripstream.sources.http import HttpDownloader
from tests.support.fault_scenarios import run, sha
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import fast_settings, make_config


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


def test_a_resumed_answer_that_runs_past_its_range_keeps_only_the_announced_bytes(
    server: TestServer, out_dir: Path
) -> None:
    # the first answer is cut; the resume's 206 announces the rest of the file, then sends
    # 4 KiB of garbage more, with no Content-Length to give it away: only the pump's count
    # of the announced bytes stands between the garbage and the file (reads of 1 KiB at
    # most, so the last one is where the count must cut)
    body = make_body(300_000, seed=41)
    server.add(
        "/file.bin",
        body,
        faults=[
            Fault.drop_after(200_000, times=1),
            Fault.overrun_range(4096, on="range"),
            Fault.no_content_length(on="range"),
        ],
    )
    result = run(server, out_dir, max_retries=1, chunk_size=1024)
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)
    ranges = [r.range_header for r in server.requests_for("/file.bin")]
    assert ranges[0] is None
    assert ranges[1] is not None
    assert ranges[1].startswith("bytes=")
    assert ranges[1] != "bytes=0-"  # resumed, not restarted
    assert server.resource("/file.bin").fault_uses()[1:] == [1, 1]  # the lie was told


def test_the_disk_is_checked_again_at_every_step_of_a_body_without_a_length(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a check every MiB (instead of 64): the first finds room, the second a nearly full disk
    monkeypatch.setattr(pump_module, "_SPACE_STEP", MIB)
    real = shutil.disk_usage
    checks: list[int] = []

    def disk_usage(path: str | Path) -> Any:
        usage = real(path)
        if Path(path) != out_dir:
            return usage
        checks.append(len(checks))
        return usage._replace(free=RESERVE if len(checks) == 1 else RESERVE - 1)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    server.add("/file.bin", make_body(3 * MIB, seed=42), faults=[Fault.chunked(64 * 1024)])
    result = run(server, out_dir, max_retries=0)
    error = result.error
    assert isinstance(error, StorageError), error
    assert f"the disk is nearly full ({RESERVE - 1} bytes left)" in str(error)
    assert checks == [0, 1]
    assert not (out_dir / "file.bin").exists()


def test_a_run_wide_bandwidth_with_no_limit_in_force_lets_the_bytes_through(
    server: TestServer, out_dir: Path
) -> None:
    # the manager always shares a LiveBandwidth; without a limit its rate is None
    body = make_body(200_000, seed=43)
    server.add("/file.bin", body)
    engine = DownloadEngine(EngineServices(bandwidth=LiveBandwidth(None)))
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = engine.run(http, http.get_download_info(server.url("/file.bin")))
    assert result.is_success, result.error
    assert sha((out_dir / "file.bin").read_bytes()) == sha(body)


# -- the pump alone, on a clock played by the bytes ------------------------------------------------


class Reporter:
    def __call__(self, delta: int) -> None:
        pass

    def set_total(self, total: int | None, already: int = 0) -> None:
        pass

    def accept(self, response: requests.Response) -> None:
        pass


class ByteClock:
    """A server of known speed played by the clock: each byte written moves time on by the
    seconds it takes at the rate in force at its offset (``profile``: ``(from, rate)``).
    Rates that are powers of two keep every time exact, so a window's average is exact."""

    def __init__(self, profile: list[tuple[int, float]]) -> None:
        self.profile = profile
        self.data = bytearray()
        self.slept = 0.0  # waits on our own rate limit
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def write(self, view: memoryview | bytes, position: int) -> None:
        assert position == len(self.data)
        self.data += view
        self.now = self.at(len(self.data)) + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += seconds
        self.now = self.at(len(self.data)) + self.slept

    def at(self, offset: int) -> float:
        ends = [start for start, _ in self.profile[1:]] + [offset]
        return sum(
            (min(offset, end) - start) / rate
            for (start, rate), end in zip(self.profile, ends, strict=True)
            if offset > start
        )


@pytest.fixture
def http(tmp_path: Path) -> Iterator[HttpDownloader]:
    with HttpDownloader(make_config(tmp_path)) as source:
        yield source


def pump_job(
    http: HttpDownloader,
    url: str,
    part: Path,
    *,
    clock: ByteClock | None = None,
    buckets: tuple[Throttle, ...] = (),
    **settings: Any,
) -> FetchJob:
    content = DownloadableContent(
        content_id="file", content_type=ContentType.TRACK, source="http", title="f", url=url
    )
    return FetchJob(
        content=content,
        url=url,
        part=part,
        session=http.session,
        settings=fast_settings(chunk_size=1024, **settings),
        reporter=Reporter(),
        buckets=buckets,
        clock=clock or ByteClock([(0, 1.0)]),
    )


def pump_body(
    server: TestServer,
    http: HttpDownloader,
    tmp_path: Path,
    body: bytes,
    profile: list[tuple[int, float]],
    *,
    rate_limit: float | None = None,
    **settings: Any,
) -> tuple[ByteClock, StallError | None]:
    server.add("/file.bin", body)
    clock = ByteClock(profile)
    job = pump_job(http, server.url("/file.bin"), tmp_path / "file.part", clock=clock, **settings)
    if rate_limit is not None:
        job.buckets = (TokenBucket(rate_limit, clock=clock, sleep=clock.sleep),)
    with job.session.get(job.url, stream=True) as response:
        try:
            pump(job, response, len(body), clock.write, 0)
        except StallError as exc:
            return clock, exc
    return clock, None


K = 1024


@pytest.mark.parametrize(
    ("profile", "size", "floor", "window", "rate"),
    [
        # 32 KiB/s under a floor of 64 KiB/s: the first half-second window stops it
        ([(0, 32 * K)], 32 * K, 64 * K, 0.5, 32 * K),
        # a body that ends as its first window closes is still judged
        ([(0, 32 * K)], 16 * K, 64 * K, 0.5, 32 * K),
        # a fast first window, then 16 KiB/s for a second: the second window stops it
        ([(0, 128 * K), (64 * K, 16 * K)], 80 * K, 32 * K, 0.5, 16 * K),
    ],
)
def test_each_window_is_judged_by_its_own_average_named_in_the_stall(
    server: TestServer,
    http: HttpDownloader,
    tmp_path: Path,
    profile: list[tuple[int, float]],
    size: int,
    floor: int,
    window: float,
    rate: int,
) -> None:
    body = make_body(size, seed=44)
    clock, error = pump_body(
        server, http, tmp_path, body, profile, min_speed=float(floor), min_speed_window=window
    )
    assert error is not None, "the body under the floor completed"
    assert str(error) == (
        f"{server.url('/file.bin')} slowed to {rate} B/s, under the floor of {floor} B/s"
    )
    assert bytes(clock.data) == body[: len(clock.data)]


def test_a_body_exactly_at_the_floor_completes(
    server: TestServer, http: HttpDownloader, tmp_path: Path
) -> None:
    body = make_body(32 * K, seed=45)
    clock, error = pump_body(
        server, http, tmp_path, body, [(0, 32 * K)], min_speed=32.0 * K, min_speed_window=0.25
    )
    assert error is None, error
    assert bytes(clock.data) == body


def test_waiting_on_our_own_rate_limit_does_not_count_against_the_server(
    server: TestServer, http: HttpDownloader, tmp_path: Path
) -> None:
    # the server sends 1 MiB/s, the user's limit lets 64 KiB/s through: over the whole time
    # the body comes under the floor of 256 KiB/s, but only by our own waiting
    body = make_body(128 * K, seed=32)
    clock, error = pump_body(
        server,
        http,
        tmp_path,
        body,
        [(0, 1024 * K)],
        rate_limit=64 * K,
        min_speed=256.0 * K,
        min_speed_window=0.25,
    )
    assert error is None, error
    assert bytes(clock.data) == body
    assert clock.slept > 1.5  # the limit did hold the body back


class CancelWhileWaiting:
    """A rate limit during whose wait the user cancels the run."""

    def __init__(self, bucket: TokenBucket, cancel: threading.Event) -> None:
        self.bucket = bucket
        self.cancel = cancel
        self.rate = bucket.rate

    def refund(self, amount: float) -> None:
        self.bucket.refund(amount)

    def acquire(
        self, amount: float, sleep: Any = None, *, cancel: threading.Event | None = None
    ) -> float:
        self.cancel.set()
        return self.bucket.acquire(amount, sleep, cancel=cancel)


def test_a_cancel_while_waiting_on_the_rate_limit_ends_the_wait(
    server: TestServer, http: HttpDownloader, tmp_path: Path
) -> None:
    # at 1 B/s the first slice (1 KiB) is a wait of about 17 minutes: only the cancel ends it
    server.add("/file.bin", make_body(10_000, seed=46))
    job = pump_job(http, server.url("/file.bin"), tmp_path / "file.part")
    job.buckets = (CancelWhileWaiting(TokenBucket(1.0), job.cancel),)
    outcome: list[DownloadCancelledError | int] = []

    def transfer() -> None:
        with job.session.get(job.url, stream=True) as response:
            try:
                outcome.append(pump(job, response, 10_000, lambda view, position: None, 0))
            except DownloadCancelledError as exc:  # handed to the test thread
                outcome.append(exc)

    thread = threading.Thread(target=transfer, daemon=True)
    thread.start()
    thread.join(timeout=30)
    assert outcome, "the pump slept through the cancel"
    assert isinstance(outcome[0], DownloadCancelledError), outcome
