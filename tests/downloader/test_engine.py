"""DownloadEngine: one download's lifecycle with its services passed in: fetchers chosen per
content, post-processors before the move, the checksum refetch, cancellation, and
``download_many`` through the manager."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.events import EventKind, RunEvent, RunMonitor
from ripstream.downloader.exceptions import (
    ChecksumError,
    DownloadCancelledError,
    DownloadError,
    IncompleteBodyError,
    ResponseMismatchError,
    RetryExhaustedError,
    ServerError,
    StorageError,
    TargetExistsError,
)
from ripstream.downloader.executors import SegmentPool
from ripstream.downloader.fetch import FetcherRegistry, FetchJob
from ripstream.downloader.hosts import HostGate, LocalCounter
from ripstream.downloader.progress import DownloadProgress, ProgressState, ProgressTracker
from ripstream.downloader.services import EngineServices
from ripstream.downloader.state import TransferResult
from ripstream.sources.http import HttpDownloader
from tests.support.files import leftovers
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class JoinFetcher:
    """A tiny "hls": the content's URL is a playlist of segment URLs, fetched and joined."""

    name = "hls"

    def __init__(self) -> None:
        self.fetched: list[str] = []

    def suitable(self, content: DownloadableContent, settings: DownloadBehaviorSettings) -> bool:
        return content.protocol == "hls"

    def fetch(self, job: FetchJob) -> TransferResult | None:
        self.fetched.append(job.content.content_id)
        playlist = job.session.get(job.url).text.split()
        with open(job.part, "wb") as part:
            for segment in playlist:
                data = job.session.get(segment).content
                part.write(data)
                job.reporter(len(data))
        return None  # the engine measures and hashes the file


def test_a_registered_fetcher_is_chosen_by_its_suitable(server: TestServer, out_dir: Path) -> None:
    first, second = make_body(70_000, 1), make_body(50_000, 2)
    server.add("/seg/0.ts", first)
    server.add("/seg/1.ts", second)
    server.add("/list.m3u8", f"{server.url('/seg/0.ts')}\n{server.url('/seg/1.ts')}\n".encode())
    server.add("/plain.bin", make_body(10_000, 3))
    hls = JoinFetcher()
    engine = DownloadEngine(EngineServices(fetchers=FetcherRegistry.default().with_fetcher(hls)))
    joined = first + second
    with HttpDownloader(make_config(out_dir)) as http:
        stream = DownloadableContent(
            content_id="song",
            content_type=ContentType.TRACK,
            source="http",
            title="song",
            url=server.url("/list.m3u8"),
            filename="song.ts",
            protocol="hls",
            checksum=f"sha256:{sha(joined)}",
        )
        result = engine.run(http, stream)
        plain = engine.run(http, http.get_download_info(server.url("/plain.bin")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / "song.ts").read_bytes()) == sha(joined)
    assert result.checksum == sha(joined)
    assert result.total_bytes == len(joined)
    assert hls.fetched == ["song"]  # the plain file was not offered to it
    assert plain.status is ResultStatus.COMPLETED
    assert (out_dir / "plain.bin").read_bytes() == make_body(10_000, 3)


class Recorder:
    """A post-processor that notes what it saw of the files."""

    def __init__(self, note: str | None) -> None:
        self.note = note
        self.seen: list[tuple[str, bool, str, bool, str]] = []

    def __call__(
        self, content: DownloadableContent, part: Path, final: Path, values: Mapping[str, Any]
    ) -> str | None:
        seen = (content.content_id, part.exists(), sha(part.read_bytes()), final.exists())
        self.seen.append((*seen, values["title"]))
        return self.note


def test_post_processors_see_the_part_before_the_move_and_their_notes_reach_the_result(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(40_000, 4)
    server.add("/tagged.flac", body)
    tagger, silent, other = Recorder("tags written"), Recorder(None), Recorder("cover embedded")
    engine = DownloadEngine(EngineServices(post_processors=(tagger, silent, other)))
    with HttpDownloader(make_config(out_dir)) as http:
        result = engine.run(http, http.get_download_info(server.url("/tagged.flac")))
    assert result.status is ResultStatus.COMPLETED
    assert result.message == "tags written; cover embedded"
    url = server.url("/tagged.flac")  # the content id of a plain URL
    assert tagger.seen == [(url, True, sha(body), False, "tagged")]  # {title} has no extension
    assert silent.seen == tagger.seen
    assert (out_dir / "tagged.flac").read_bytes() == body
    assert leftovers(out_dir) == []


def test_post_processors_get_the_naming_values_of_a_path_the_caller_chose(
    server: TestServer, out_dir: Path
) -> None:
    # no naming template ran: the values are worked out for the post-processors alone
    body = make_body(30_000, 5)
    server.add("/chosen.flac", body)
    tagger = Recorder("tags written")
    engine = DownloadEngine(EngineServices(post_processors=(tagger,)))
    with HttpDownloader(make_config(out_dir)) as http:
        content = http.get_download_info(server.url("/chosen.flac"))
        result = engine.run(http, content, out_dir / "mine" / "kept.flac")
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.message == "tags written"
    assert tagger.seen == [(server.url("/chosen.flac"), True, sha(body), False, "chosen")]
    assert (out_dir / "mine" / "kept.flac").read_bytes() == body


def test_a_checksum_mismatch_refetches_once_even_without_retries(
    server: TestServer, out_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ripstream.downloader.retry")
    old, new = make_body(30_000, 5), make_body(30_000, 6)
    server.add("/changed.bin", old, faults=[Fault.body_changes(new, after=1)])
    engine = DownloadEngine()
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/changed.bin"))
        content.checksum = f"sha256:{sha(new)}"
        result = engine.run(http, content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.attempts == 2
    assert len(server.requests_for("/changed.bin")) == 2
    assert (out_dir / "changed.bin").read_bytes() == new
    # the log of the first attempt says the file is fetched again, not that it failed for good
    (retried,) = [r.getMessage() for r in caplog.records if "attempt 1 failed" in r.getMessage()]
    assert f"sha256 is {sha(old)}, expected {sha(new)} (fetching the whole file again)" in retried


def test_a_second_mismatch_is_a_checksum_error_result(server: TestServer, out_dir: Path) -> None:
    body = make_body(30_000, 7)
    server.add("/wrong.bin", body)
    engine = DownloadEngine()
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/wrong.bin"))
        content.checksum = "sha256:" + "0" * 64
        result = engine.run(http, content)
    assert result.status is ResultStatus.FAILED
    error = result.error
    assert isinstance(error, ChecksumError)
    assert error.actual == sha(body)
    assert error.refetch is False  # final: no further attempt
    assert result.attempts == 2
    assert len(server.requests_for("/wrong.bin")) == 2  # once, then the one refetch
    assert not (out_dir / "wrong.bin").exists()
    assert leftovers(out_dir) == []


def test_cancel_before_start_gives_a_cancelled_result(server: TestServer, out_dir: Path) -> None:
    server.add("/never.bin", make_body(1000))
    cancel = threading.Event()
    cancel.set()
    engine = DownloadEngine(EngineServices(cancel=cancel))
    with HttpDownloader(make_config(out_dir)) as http:
        result = engine.run(http, http.get_download_info(server.url("/never.bin")))
    assert result.status is ResultStatus.CANCELLED
    assert isinstance(result.error, DownloadCancelledError)
    assert server.requests_for("/never.bin") == []
    assert not (out_dir / "never.bin").exists()


def test_download_many_goes_through_the_manager_in_order(server: TestServer, out_dir: Path) -> None:
    bodies = {f"/many/{n}.bin": make_body(20_000 + n, n) for n in range(6)}
    for n, (path, body) in enumerate(bodies.items()):
        # the first files are the slowest, so they finish last
        server.add(path, body, rate_limit_bps=200_000 if n < 2 else None)
    threads: list[str] = []

    def note_thread(
        content: DownloadableContent, part: Path, final: Path, values: Mapping[str, Any]
    ) -> None:
        threads.append(threading.current_thread().name)

    config = make_config(out_dir, jobs=2)
    with HttpDownloader(config, post_processors=[note_thread]) as http:
        contents = [http.get_download_info(server.url(path)) for path in bodies]
        results = http.download_many(contents)
    assert [r.content_id for r in results] == [c.content_id for c in contents]
    assert all(r.status is ResultStatus.COMPLETED for r in results)
    for path, body in bodies.items():
        assert (out_dir / Path(path).name).read_bytes() == body
    # on the manager's executor threads, never more than max_concurrent_downloads at once
    assert len(threads) == 6
    assert all(name.startswith("ripstream") for name in threads), threads
    assert server.max_concurrent_requests <= 2


def test_a_file_of_another_size_than_the_source_said_is_refused(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(30_000, 8)
    server.add("/sized.flac", body)
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/sized.flac") + "?token=SECRET")
        content.size = 31_000
        wrong = DownloadEngine().run(http, content)
        content.size = len(body)
        right = DownloadEngine().run(http, content)
    assert wrong.status is ResultStatus.FAILED
    error = wrong.error
    assert isinstance(error, IncompleteBodyError)
    assert str(error) == f"{content.title!r}: got 30000 bytes, the source said 31000"
    assert (error.expected, error.received, error.source) == (31_000, 30_000, "http")
    assert error.url == server.url("/sized.flac") + "?token=***"
    assert right.status is ResultStatus.COMPLETED, right.error
    assert (out_dir / "sized.flac").read_bytes() == body
    assert leftovers(out_dir) == []


def test_progress_after_a_checksum_refetch_counts_the_file_once(
    server: TestServer, out_dir: Path
) -> None:
    old, new = make_body(30_000, 5), make_body(30_000, 6)
    server.add("/changed.bin", old, faults=[Fault.body_changes(new, after=1)])
    tracker = ProgressTracker(min_interval=0)
    shown: list[int] = []
    tracker.add_callback(lambda _id, progress: shown.append(progress.downloaded_bytes))
    engine = DownloadEngine(EngineServices(tracker=tracker))
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/changed.bin"))
        content.checksum = f"sha256:{sha(new)}"
        result = engine.run(http, content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert shown[-1] == len(new)  # not twice the file: the wrong bytes were taken back
    assert max(shown) == len(new)


def test_a_cancel_during_the_wait_before_a_retry_ends_the_download_at_once(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/busy.flac", make_body(1000), faults=[Fault.permanent_status(503)])
    cancel = threading.Event()
    events: list[RunEvent] = []

    def sink(event: RunEvent) -> None:
        events.append(event)
        cancel.set()  # the user presses Ctrl-C while the engine waits a minute

    services = EngineServices(cancel=cancel, monitor=RunMonitor(sinks=[sink]), sleep=None)
    with HttpDownloader(make_config(out_dir, retry_delay=60.0, max_retry_delay=60.0)) as http:
        content = http.get_download_info(server.url("/busy.flac"))
        result = DownloadEngine(services).run(http, content)
    assert result.status is ResultStatus.CANCELLED
    assert str(result.error) == "download cancelled while waiting to retry"
    assert len(server.requests_for("/busy.flac")) == 1
    assert [(e.event, e.source, e.reason, e.attempt, e.delay) for e in events] == [
        (EventKind.RETRY, "http", "ServerError", 1, 60.0)
    ]


def test_an_override_that_calls_the_standard_fetch_gets_it_whole(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(200_000, 9)
    server.add("/wrapped.flac", body)
    seen: list[int] = []

    class Wrapping(HttpDownloader):
        def _download_content(
            self, content: DownloadableContent, file_path: Path, progress_callback: Any
        ) -> TransferResult | None:
            fetched = super()._download_content(content, file_path, progress_callback)
            seen.append(file_path.stat().st_size)
            return fetched

    with Wrapping(make_config(out_dir)) as http:
        result = http.download(http.get_download_info(server.url("/wrapped.flac")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "wrapped.flac").read_bytes() == body
    assert result.total_bytes == len(body)
    assert seen == [len(body)]


def _watched(tracker: ProgressTracker) -> list[tuple[str, DownloadProgress]]:
    seen: list[tuple[str, DownloadProgress]] = []
    tracker.add_callback(lambda download_id, progress: seen.append((download_id, progress)))
    return seen


def test_progress_names_the_download_and_ends_in_its_outcome(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(20_000, 10)
    server.add("/shown.flac", body)
    server.add("/busy.flac", body, faults=[Fault.status(503, times=1)])
    server.add("/gone.flac", body, faults=[Fault.permanent_status(404)])
    tracker = ProgressTracker(min_interval=0)
    seen = _watched(tracker)
    engine = DownloadEngine(EngineServices(tracker=tracker))
    with HttpDownloader(make_config(out_dir, max_retries=1)) as http:
        shown = http.get_download_info(server.url("/shown.flac"))
        shown.size = len(body)
        assert engine.run(http, shown).status is ResultStatus.COMPLETED
        busy = engine.run(http, http.get_download_info(server.url("/busy.flac")))
        gone = engine.run(http, http.get_download_info(server.url("/gone.flac")))
    assert (busy.status, gone.status) == (ResultStatus.COMPLETED, ResultStatus.FAILED)
    first = [p for i, p in seen if i == f"http:{shown.content_id}"]
    assert (first[0].title, first[0].total_bytes) == (shown.title, len(body))
    assert first[-1].state is ProgressState.COMPLETED
    notes = [p.note for i, p in seen if i == f"http:{busy.content_id}" and p.note]
    assert notes[0] == "retrying in 0 s (1/1): HTTP 503"
    assert [p.state for i, p in seen if i == f"http:{gone.content_id}"][-1] is (
        ProgressState.FAILED
    )


def test_the_content_headers_go_with_the_request(server: TestServer, out_dir: Path) -> None:
    server.add("/signed.flac", make_body(5_000, 11))
    with HttpDownloader(make_config(out_dir)) as http:
        content = http.get_download_info(server.url("/signed.flac"))
        content.headers = {"X-Signature": "abc123"}
        result = DownloadEngine().run(http, content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert server.requests_for("/signed.flac")[-1].headers.get("X-Signature") == "abc123"


def test_checksum_errors_say_what_was_found_and_what_happens_next(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(30_000, 12)
    server.add("/wrong.bin", body)
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/wrong.bin") + "?token=SECRET")
        content.checksum = "sha256:" + "0" * 64
        result = DownloadEngine().run(http, content)
    error = result.error
    assert isinstance(error, ChecksumError)
    expected = "0" * 64
    assert str(error) == (
        f"{content.title!r}: sha256 is {sha(body)}, expected {expected} "
        "(still wrong after a refetch)"
    )
    assert (error.url, error.source, error.algorithm) == (
        server.url("/wrong.bin") + "?token=***",
        "http",
        "sha256",
    )


def test_a_cancelled_download_says_so_and_names_its_source(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/never.bin", make_body(1000))
    cancel = threading.Event()
    cancel.set()
    with HttpDownloader(make_config(out_dir)) as http:
        result = DownloadEngine(EngineServices(cancel=cancel)).run(
            http, http.get_download_info(server.url("/never.bin"))
        )
    assert isinstance(result.error, DownloadCancelledError)
    assert (str(result.error), result.error.source) == ("download cancelled", "http")


def test_a_given_path_is_kept_whatever_the_server_suggests(
    server: TestServer, out_dir: Path
) -> None:
    server.add(
        "/suggests.bin",
        make_body(5_000, 13),
        faults=[Fault.content_disposition('attachment; filename="other.flac"')],
    )
    with HttpDownloader(make_config(out_dir)) as http:
        content = http.get_download_info(server.url("/suggests.bin"))
        result = DownloadEngine().run(http, content, out_dir / "mine.bin")
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "mine.bin").read_bytes() == make_body(5_000, 13)
    assert not (out_dir / "other.flac").exists()


class Broken(HttpDownloader):
    """A source with a bug: its fetch raises something that is not a DownloadError."""

    def _download_content(
        self, content: DownloadableContent, file_path: Path, progress_callback: Any
    ) -> TransferResult | None:
        raise ValueError("a bug in the source")


def test_an_unexpected_error_in_a_source_is_a_failed_result_naming_it(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/odd.flac", make_body(1000, 14))
    with Broken(make_config(out_dir)) as http:
        content = http.get_download_info(server.url("/odd.flac") + "?token=SECRET")
        result = DownloadEngine().run(http, content)
    assert result.status is ResultStatus.FAILED
    error = result.error
    assert type(error) is DownloadError
    assert (
        str(error) == f"{content.title!r} failed with an unexpected ValueError: a bug in the source"
    )
    assert (error.url, error.source) == (server.url("/odd.flac") + "?token=***", "http")
    assert 0 <= result.elapsed < 60  # measured from the start of this download


def test_a_checksum_is_not_checked_when_verification_is_off(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(10_000, 15)
    server.add("/unchecked.bin", body)
    with HttpDownloader(make_config(out_dir, verify_checksums=False)) as http:
        content = http.get_download_info(server.url("/unchecked.bin"))
        content.checksum = "sha256:" + "0" * 64
        result = DownloadEngine().run(http, content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "unchecked.bin").read_bytes() == body


TIMEOUT = 10.0


def test_a_failed_download_is_logged_with_its_source_id_and_reason(
    server: TestServer, out_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.add("/gone.flac", make_body(1000, 16), faults=[Fault.permanent_status(404)])
    server.add("/odd.flac", make_body(1000, 14))
    caplog.set_level(logging.INFO, logger="ripstream.downloader.engine")
    with HttpDownloader(make_config(out_dir)) as http:
        gone = http.get_download_info(server.url("/gone.flac"))
        failed = DownloadEngine().run(http, gone)
    with Broken(make_config(out_dir)) as broken:
        odd = broken.get_download_info(server.url("/odd.flac"))
        DownloadEngine().run(broken, odd)
    logged = [r for r in caplog.records if r.name == "ripstream.downloader.engine"]
    assert [(r.levelno, r.getMessage()) for r in logged] == [
        (logging.INFO, f"http {gone.content_id}: {failed.error}"),
        (logging.ERROR, f"http {odd.content_id}: unexpected error"),
    ]
    assert logged[1].exc_info is not None
    assert logged[1].exc_info[0] is ValueError  # the traceback of the bug is in the log


class WatchedCounter(LocalCounter):
    """A host count that tells when a caller was refused a slot (it is waiting for one)."""

    def __init__(self, settled: threading.Event) -> None:
        super().__init__()
        self.settled = settled

    def take(self, host: str, limit: int, wait: float) -> bool:
        taken = super().take(host, limit, wait)
        if not taken:
            self.settled.set()
        return taken


def test_a_download_waits_for_a_free_slot_on_its_host_and_a_cancel_ends_the_wait(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/polite.flac", make_body(5_000, 17))
    settled, cancel = threading.Event(), threading.Event()
    gate = HostGate(WatchedCounter(settled))
    engine = DownloadEngine(EngineServices(cancel=cancel, hosts=gate))
    results: list[Any] = []
    with HttpDownloader(make_config(out_dir, max_per_host=1)) as http:
        content = http.get_download_info(server.url("/polite.flac"))
        gate.acquire("127.0.0.1", 1)  # another download holds the host's only connection

        def run() -> None:
            results.append(engine.run(http, content))
            settled.set()

        worker = threading.Thread(target=run, name="download")
        worker.start()
        try:
            assert settled.wait(TIMEOUT)
            assert results == [], "the download did not wait for its host"
            assert server.requests_for("/polite.flac") == []
            cancel.set()  # the user stops the run while the download waits
            worker.join(TIMEOUT)
            assert not worker.is_alive(), "a cancel did not end the wait for the host"
        finally:
            cancel.set()
            gate.release("127.0.0.1", 1)
            worker.join(TIMEOUT)
    (result,) = results
    assert result.status is ResultStatus.CANCELLED
    assert str(result.error) == "download cancelled while waiting for its host"
    assert server.requests_for("/polite.flac") == []
    assert not (out_dir / "polite.flac").exists()


def test_a_host_that_asks_to_slow_down_is_paused_for_the_whole_run(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/busy.flac", make_body(1000, 18), faults=[Fault.status(503, retry_after=30)])
    gate = HostGate(clock=lambda: 100.0)  # no time passes
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = DownloadEngine(EngineServices(hosts=gate)).run(
            http, http.get_download_info(server.url("/busy.flac"))
        )
    assert isinstance(result.error, ServerError)
    assert (result.error.status_code, result.error.retry_after) == (503, 30.0)
    assert gate.cooling("127.0.0.1") == 30.0  # no other download of the run asks it now


def test_a_host_that_answered_well_is_not_paused_for_an_earlier_429(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(1000, 19)
    for path in ("/first.flac", "/second.flac", "/third.flac"):
        server.add(path, body, faults=[Fault.status(429)])
    server.add("/fine.flac", body)
    gate = HostGate(clock=lambda: 100.0)
    engine = DownloadEngine(EngineServices(hosts=gate))
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        statuses = [
            engine.run(http, http.get_download_info(server.url(path))).status
            for path in ("/first.flac", "/fine.flac", "/second.flac")
        ]
        assert statuses == [ResultStatus.FAILED, ResultStatus.COMPLETED, ResultStatus.FAILED]
        assert gate.cooling("127.0.0.1") == 0.0  # one 429 since the host answered well
        third = engine.run(http, http.get_download_info(server.url("/third.flac")))
    assert isinstance(third.error, ServerError)
    assert gate.cooling("127.0.0.1") == 2.0  # two 429s in a row: a pause


def test_a_download_resumed_under_a_host_limit_reports_what_it_fetched(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000, 20)
    server.add("/cut.flac", body, faults=[Fault.drop_after(200_000, times=1)])
    engine = DownloadEngine(EngineServices(hosts=HostGate()))
    with HttpDownloader(make_config(out_dir, max_retries=1)) as http:
        result = engine.run(http, http.get_download_info(server.url("/cut.flac")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "cut.flac").read_bytes() == body
    assert 0 < result.resumed_from < len(body)
    assert result.bytes_downloaded == len(body) - result.resumed_from


class CountedWaits(threading.Event):
    """A cancel event that never waits: it notes each wait a throttle asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return False


def test_a_sources_own_rate_limit_paces_its_download(server: TestServer, out_dir: Path) -> None:
    body = make_body(50_000, 21)
    server.add("/slow.flac", body)
    cancel = CountedWaits()
    engine = DownloadEngine(EngineServices(cancel=cancel))
    with HttpDownloader(make_config(out_dir, rate_limit=10_000)) as http:
        result = engine.run(http, http.get_download_info(server.url("/slow.flac")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "slow.flac").read_bytes() == body
    # 50 kB at 10 kB/s: the last bytes may go only about 5 s after the first
    waits = [w for w in cancel.waits if w is not None]
    assert max(waits, default=0.0) > 2.5


def test_the_wait_before_a_retry_is_what_the_server_asked(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(1000, 22)
    server.add("/later.flac", body, faults=[Fault.status(503, retry_after=7)])
    waits: list[float] = []
    engine = DownloadEngine(EngineServices(sleep=waits.append))
    with HttpDownloader(make_config(out_dir, max_retries=1, max_retry_after=60.0)) as http:
        result = engine.run(http, http.get_download_info(server.url("/later.flac")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert waits == [7.0]
    assert (out_dir / "later.flac").read_bytes() == body


def test_a_download_out_of_retries_names_itself_and_its_attempts(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/down.flac", make_body(1000, 23), faults=[Fault.permanent_status(503)])
    with HttpDownloader(make_config(out_dir, max_retries=1)) as http:
        content = http.get_download_info(server.url("/down.flac"))
        result = DownloadEngine().run(http, content)
    error = result.error
    assert isinstance(error, RetryExhaustedError)
    assert str(error).startswith(f"http {content.title!r} failed after 2 attempts: ")


def test_an_absolute_path_the_caller_chose_is_used_outside_the_output_folder(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    body = make_body(3_000, 24)
    server.add("/there.flac", body)
    elsewhere = tmp_path / "elsewhere" / "kept.flac"
    with HttpDownloader(make_config(out_dir)) as http:
        content = http.get_download_info(server.url("/there.flac"))
        result = DownloadEngine().run(http, content, elsewhere)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.file_path == elsewhere
    assert elsewhere.read_bytes() == body


def test_a_symlink_in_the_output_folder_cannot_lead_new_folders_outside(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    server.add("/song.flac", make_body(3_000, 25))
    outside = tmp_path / "outside"
    outside.mkdir()
    (out_dir / "Artist").symlink_to(outside)  # planted: Artist/Album does not exist yet
    with HttpDownloader(make_config(out_dir)) as http:
        content = http.get_download_info(server.url("/song.flac"))
        result = DownloadEngine().run(http, content, "Artist/Album/song.flac")
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, StorageError)
    assert "symlink leading outside" in str(result.error)
    assert list(outside.iterdir()) == []
    assert server.requests_for("/song.flac") == []


def test_a_path_another_download_of_the_run_writes_is_refused_naming_the_source(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/twice.flac", make_body(3_000, 26))
    services = EngineServices()
    services.claims.claim(out_dir / "twice.flac", source="other")  # held by another download
    with HttpDownloader(make_config(out_dir)) as http:
        result = DownloadEngine(services).run(
            http, http.get_download_info(server.url("/twice.flac"))
        )
    error = result.error
    assert isinstance(error, TargetExistsError)
    assert "another download in this run also writes" in str(error)
    assert error.source == "http"
    assert not (out_dir / "twice.flac").exists()


def test_a_renamed_download_avoids_the_names_other_downloads_of_the_run_hold(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(3_000, 27)
    server.add("/song.flac", body)
    (out_dir / "song.flac").write_bytes(b"the user's file")
    services = EngineServices()
    services.claims.claim(out_dir / "song (1).flac")  # another download renamed there first
    with HttpDownloader(make_config(out_dir, overwrite="rename")) as http:
        result = DownloadEngine(services).run(
            http, http.get_download_info(server.url("/song.flac"))
        )
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.file_path == out_dir / "song (2).flac"
    assert (out_dir / "song (2).flac").read_bytes() == body
    assert (out_dir / "song.flac").read_bytes() == b"the user's file"


class Wrapping(HttpDownloader):
    """A source whose fetch wraps the standard one (what ``super()`` gives an override)."""

    def _download_content(
        self, content: DownloadableContent, file_path: Path, progress_callback: Any
    ) -> TransferResult | None:
        return super()._download_content(content, file_path, progress_callback)


def test_an_override_that_calls_the_standard_fetch_reports_its_resume(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000, 28)
    server.add("/wrapped.flac", body, faults=[Fault.drop_after(200_000, times=1)])
    with Wrapping(make_config(out_dir, max_retries=1)) as http:
        result = http.download(http.get_download_info(server.url("/wrapped.flac")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "wrapped.flac").read_bytes() == body
    assert 0 < result.resumed_from < len(body)
    assert result.bytes_downloaded == len(body) - result.resumed_from


class AudioOnly(HttpDownloader):
    """Refuses a text page served for a track (a service that answers errors with a 200)."""

    def check_response(self, content: DownloadableContent, response: Any) -> None:
        is_text = response.headers.get("Content-Type", "").startswith("text/")
        if content.content_type is ContentType.TRACK and is_text:
            raise ResponseMismatchError(
                f"{content.title!r}: the server sent a page, not audio", source=self.source_name
            )


def test_a_sources_check_of_the_response_sees_the_content_it_is_for(
    server: TestServer, out_dir: Path
) -> None:
    page = b"<html>Sign in</html>"
    server.add("/page.mp3", page, content_type="text/html")
    with AudioOnly(make_config(out_dir, max_retries=0)) as http:
        track = http.get_download_info(server.url("/page.mp3"))
        track.content_type = ContentType.TRACK
        refused = DownloadEngine().run(http, track)
        assert not (out_dir / "page.mp3").exists()
        kept = DownloadEngine().run(http, http.get_download_info(server.url("/page.mp3")))
    assert isinstance(refused.error, ResponseMismatchError)
    assert str(refused.error) == "'page.mp3': the server sent a page, not audio"
    assert kept.status is ResultStatus.COMPLETED, kept.error  # a plain file may be a page
    assert (out_dir / "page.mp3").read_bytes() == page
    assert leftovers(out_dir) == []


def test_an_override_over_a_fetcher_that_leaves_the_measuring_to_the_engine_gets_a_result(
    server: TestServer, out_dir: Path
) -> None:
    first, second = make_body(20_000, 29), make_body(10_000, 30)
    server.add("/seg/0.ts", first)
    server.add("/seg/1.ts", second)
    server.add("/list.m3u8", f"{server.url('/seg/0.ts')}\n{server.url('/seg/1.ts')}\n".encode())
    engine = DownloadEngine(
        EngineServices(fetchers=FetcherRegistry.default().with_fetcher(JoinFetcher()))
    )
    with Wrapping(make_config(out_dir)) as source:
        stream = source.get_download_info(server.url("/list.m3u8"))
        stream.protocol = "hls"
        result = engine.run(source, stream)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.total_bytes == len(first + second)
    assert (out_dir / "list.m3u8").read_bytes() == first + second


def test_segment_helpers_wait_for_the_hosts_slots_too(server: TestServer, out_dir: Path) -> None:
    body = make_body(512 * 1024, 31)
    release = threading.Event()
    fault = Fault.pause_after(32_000, release, timeout=TIMEOUT, times=1)
    server.add("/parts.flac", body, faults=[fault])
    settled = threading.Event()
    pool = SegmentPool(3)
    services = EngineServices(hosts=HostGate(WatchedCounter(settled)), segment_pool=pool)
    results: list[Any] = []
    with HttpDownloader(make_config(out_dir, segments=4, max_per_host=1)) as http:
        content = http.get_download_info(server.url("/parts.flac"))
        worker = threading.Thread(
            target=lambda: results.append(DownloadEngine(services).run(http, content))
        )
        worker.start()
        try:
            # while the first part is held up, the helpers from the pool ask for the host
            assert settled.wait(TIMEOUT), "no segment helper asked the host for a slot"
        finally:
            release.set()
            worker.join(TIMEOUT)
            pool.close()
    (result,) = results
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "parts.flac").read_bytes() == body
    assert server.max_concurrent_requests == 1  # --max-per-host 1 holds the helpers too
