"""DownloadEngine: one download's lifecycle with its services passed in: fetchers chosen per
content, post-processors before the move, the checksum refetch, cancellation, and
``download_many`` through the manager."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ripstream.downloader import ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.config import DownloadBehaviorSettings
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.events import EventKind, RunEvent, RunMonitor
from ripstream.downloader.exceptions import (
    ChecksumError,
    DownloadCancelledError,
    DownloadError,
    IncompleteBodyError,
)
from ripstream.downloader.fetch import FetcherRegistry, FetchJob
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
        self.seen: list[tuple[bool, str, bool, str]] = []

    def __call__(
        self, content: DownloadableContent, part: Path, final: Path, values: Mapping[str, Any]
    ) -> str | None:
        self.seen.append((part.exists(), sha(part.read_bytes()), final.exists(), values["title"]))
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
    assert tagger.seen == [(True, sha(body), False, "tagged")]  # {title} has no extension
    assert silent.seen == tagger.seen
    assert (out_dir / "tagged.flac").read_bytes() == body
    assert leftovers(out_dir) == []


def test_a_checksum_mismatch_refetches_once_even_without_retries(
    server: TestServer, out_dir: Path
) -> None:
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


def test_an_unexpected_error_in_a_source_is_a_failed_result_naming_it(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/odd.flac", make_body(1000, 14))

    class Broken(HttpDownloader):
        def _download_content(
            self, content: DownloadableContent, file_path: Path, progress_callback: Any
        ) -> TransferResult | None:
            raise ValueError("a bug in the source")

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
