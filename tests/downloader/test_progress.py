"""DownloadProgress values, ProgressTracker on a fake clock, and the tqdm adapter."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from ripstream.downloader import DownloadProgress, ProgressCallback, ProgressTracker, TqdmProgress
from ripstream.downloader.progress import ProgressState, format_bytes
from tests.support.clock import FakeClock


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, DownloadProgress]] = []
        self._lock = threading.Lock()

    def __call__(self, download_id: str, progress: DownloadProgress) -> None:
        with self._lock:
            self.events.append((download_id, progress))

    @property
    def states(self) -> list[ProgressState]:
        return [p.state for _, p in self.events]


def _progress(**changes: object) -> DownloadProgress:
    values: dict[str, object] = {
        "download_id": "d",
        "downloaded_bytes": 250,
        "total_bytes": 1000,
        "speed": 125.0,
        "elapsed": 2.0,
    }
    values.update(changes)
    return DownloadProgress(**values)  # type: ignore[arg-type]


# -- DownloadProgress -----------------------------------------------------------------------


def test_percentage_and_eta() -> None:
    p = _progress()
    assert p.percentage == 25.0
    assert p.eta == 6.0  # 750 bytes left at 125 B/s
    assert not p.is_finished


def test_unknown_total() -> None:
    p = _progress(total_bytes=None)
    assert p.percentage == 0.0
    assert p.eta is None
    done = _progress(total_bytes=None, state=ProgressState.COMPLETED)
    assert done.percentage == 100.0
    assert done.is_finished


def test_empty_file_is_complete() -> None:
    p = _progress(downloaded_bytes=0, total_bytes=0, speed=0.0)
    assert p.percentage == 100.0


def test_no_speed_means_no_eta_and_more_than_total_is_capped() -> None:
    assert _progress(speed=0.0).eta is None
    over = _progress(downloaded_bytes=1500)
    assert over.percentage == 100.0
    assert over.eta == 0.0


@pytest.mark.parametrize(
    ("speed", "text"),
    [
        (0.0, "0 B/s"),
        (512.0, "512 B/s"),
        (1536.0, "1.5 KiB/s"),
        (12.3 * 1024 * 1024, "12.3 MiB/s"),
        (3 * 1024**3, "3.0 GiB/s"),
        (5 * 1024**5, "5120.0 TiB/s"),
    ],
)
def test_formatted_speed(speed: float, text: str) -> None:
    assert _progress(speed=speed).get_formatted_speed() == text


def test_format_bytes() -> None:
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(10 * 1024 * 1024) == "10.0 MiB"


def test_snapshots_are_immutable() -> None:
    p = _progress()
    with pytest.raises(AttributeError):
        p.downloaded_bytes = 5  # type: ignore[misc]


# -- ProgressTracker ------------------------------------------------------------------------


def test_lifecycle_events_and_values() -> None:
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=0.0, clock=clock)
    recorder = Recorder()
    tracker.add_callback(recorder)

    tracker.start("a", total=1000, title="Song")
    assert tracker.active == ["a"]
    clock.now += 1.0
    tracker.update("a", 400)
    snapshot = tracker.get_progress("a")
    assert snapshot is not None
    assert (snapshot.downloaded_bytes, snapshot.total_bytes, snapshot.title) == (400, 1000, "Song")
    assert snapshot.percentage == 40.0
    assert snapshot.speed == 400.0
    assert snapshot.elapsed == 1.0
    assert snapshot.eta == 1.5
    clock.now += 1.0
    tracker.update("a", 600)
    final = tracker.finish("a")

    assert recorder.states == [
        ProgressState.STARTED,
        ProgressState.DOWNLOADING,
        ProgressState.DOWNLOADING,
        ProgressState.COMPLETED,
    ]
    assert all(download_id == "a" for download_id, _ in recorder.events)
    assert final is not None
    assert final.downloaded_bytes == 1000
    assert final.percentage == 100.0
    assert final.elapsed == 2.0
    assert tracker.active == []
    assert tracker.get_progress("a") is None
    assert tracker.finish("a") is None  # finishing twice emits nothing more
    assert len(recorder.events) == 4


def test_failed_download_is_reported_as_failed() -> None:
    tracker = ProgressTracker(clock=FakeClock(500.0))
    recorder = Recorder()
    tracker.add_callback(recorder)
    tracker.start("a", total=100)
    tracker.update("a", 10)
    final = tracker.finish("a", success=False)
    assert final is not None
    assert final.state is ProgressState.FAILED
    assert final.percentage == 10.0
    assert recorder.states[-1] is ProgressState.FAILED


def test_unknown_total_becomes_the_byte_count_on_success() -> None:
    tracker = ProgressTracker(min_interval=0.0, clock=FakeClock(500.0))
    tracker.start("a")
    tracker.update("a", 321)
    snapshot = tracker.get_progress("a")
    assert snapshot is not None
    assert snapshot.percentage == 0.0
    final = tracker.finish("a")
    assert final is not None
    assert (final.total_bytes, final.percentage) == (321, 100.0)


def test_resume_counts_the_bytes_already_on_disk() -> None:
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=0.0, clock=clock)
    tracker.start("a", already=600)
    tracker.set_total("a", 1000, already=700)  # the server confirmed a bigger resume point
    clock.now += 1.0
    tracker.update("a", 100)
    snapshot = tracker.get_progress("a")
    assert snapshot is not None
    assert snapshot.downloaded_bytes == 800
    assert snapshot.percentage == 80.0
    assert snapshot.speed == 100.0  # resumed bytes do not count as speed


def test_restart_that_throws_bytes_away() -> None:
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=0.0, clock=clock)
    tracker.start("a", total=1000)
    clock.now += 1.0
    tracker.update("a", 500)
    clock.now += 1.0
    tracker.update("a", -500)
    snapshot = tracker.get_progress("a")
    assert snapshot is not None
    assert snapshot.downloaded_bytes == 0
    assert snapshot.speed == 0.0  # never negative


def test_updates_for_unknown_ids_are_ignored() -> None:
    tracker = ProgressTracker(clock=FakeClock(500.0))
    recorder = Recorder()
    tracker.add_callback(recorder)
    tracker.update("ghost", 100)
    tracker.set_total("ghost", 5)
    assert recorder.events == []
    assert tracker.get_progress("ghost") is None


def test_speed_is_measured_over_the_window() -> None:
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=0.5, window=3.0, clock=clock)
    tracker.start("a", total=None)
    for _ in range(10):
        clock.now += 1.0
        tracker.update("a", 1000)
    fast = tracker.get_progress("a")
    assert fast is not None
    assert fast.speed == pytest.approx(1000.0)
    for _ in range(4):  # the link slows down to 100 B/s
        clock.now += 1.0
        tracker.update("a", 100)
    slow = tracker.get_progress("a")
    assert slow is not None
    assert slow.speed == pytest.approx(100.0)  # the fast seconds left the window
    assert slow.downloaded_bytes == 10_400


def test_min_interval_throttles_callbacks_but_not_start_or_finish() -> None:
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=1.0, clock=clock)
    recorder = Recorder()
    tracker.add_callback(recorder)
    tracker.start("a", total=10_000)
    for _ in range(100):  # 100 chunks, one every 1/32 s (exact in binary floating point)
        clock.now += 1 / 32
        tracker.update("a", 100)
    tracker.finish("a")
    assert recorder.states == [
        ProgressState.STARTED,
        ProgressState.DOWNLOADING,  # at 1.0 s
        ProgressState.DOWNLOADING,  # at 2.0 s
        ProgressState.DOWNLOADING,  # at 3.0 s
        ProgressState.COMPLETED,  # at 3.125 s, although only 0.125 s after the last
    ]
    assert [p.downloaded_bytes for _, p in recorder.events] == [0, 3200, 6400, 9600, 10_000]


def test_each_download_is_throttled_on_its_own() -> None:
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=1.0, clock=clock)
    recorder = Recorder()
    tracker.add_callback(recorder)
    tracker.start("a")
    clock.now += 0.6
    tracker.start("b")
    clock.now += 0.6
    tracker.update("a", 1)  # 1.2 s after a's last snapshot: emitted
    tracker.update("b", 1)  # 0.6 s after b's: held back
    assert [(i, p.state) for i, p in recorder.events] == [
        ("a", ProgressState.STARTED),
        ("b", ProgressState.STARTED),
        ("a", ProgressState.DOWNLOADING),
    ]


def test_every_callback_gets_every_snapshot_and_can_be_removed() -> None:
    tracker = ProgressTracker(min_interval=0.0, clock=FakeClock(500.0))
    first, second = Recorder(), Recorder()
    tracker.add_callback(first)
    tracker.add_callback(second)
    tracker.start("a", total=10)
    tracker.remove_callback(second)
    tracker.remove_callback(second)  # unknown callbacks are ignored
    tracker.update("a", 5)
    assert first.states == [ProgressState.STARTED, ProgressState.DOWNLOADING]
    assert second.states == [ProgressState.STARTED]


def test_a_raising_callback_is_logged_and_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = ProgressTracker(min_interval=0.0, clock=FakeClock(500.0))
    before, after = Recorder(), Recorder()

    def broken(download_id: str, progress: DownloadProgress) -> None:
        raise RuntimeError("display went away")

    tracker.add_callback(before)
    tracker.add_callback(broken)
    tracker.add_callback(after)
    with caplog.at_level(logging.ERROR, logger="ripstream.downloader.progress"):
        tracker.start("a", total=10)
        tracker.update("a", 10)
        final = tracker.finish("a")
    assert final is not None
    assert final.downloaded_bytes == 10
    assert len(before.events) == len(after.events) == 3
    failures = [r for r in caplog.records if "progress callback" in r.getMessage()]
    assert len(failures) == 3
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)


def test_concurrent_updates_end_with_the_exact_total() -> None:
    tracker = ProgressTracker(min_interval=0.0)
    recorder = Recorder()
    tracker.add_callback(recorder)
    n_threads, per_thread = 8, 2000
    tracker.start("a", total=n_threads * per_thread * 3)
    start = threading.Barrier(n_threads)

    def worker() -> None:
        start.wait(timeout=5)
        for _ in range(per_thread):
            tracker.update("a", 3)

    threads = [threading.Thread(target=worker) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    final = tracker.finish("a")
    assert final is not None
    assert final.downloaded_bytes == n_threads * per_thread * 3
    assert final.percentage == 100.0
    assert recorder.states[0] is ProgressState.STARTED
    assert recorder.states[-1] is ProgressState.COMPLETED


def test_a_plain_function_satisfies_the_callback_protocol() -> None:
    seen: list[float] = []

    def on_progress(download_id: str, progress: DownloadProgress) -> None:
        seen.append(progress.percentage)

    callback: ProgressCallback = on_progress
    tracker = ProgressTracker(min_interval=0.0, clock=FakeClock(500.0))
    tracker.add_callback(callback)
    tracker.start("a", total=4)
    tracker.update("a", 1)
    tracker.finish("a")
    assert seen == [0.0, 25.0, 25.0]


# -- TqdmProgress ---------------------------------------------------------------------------


def test_tqdm_adapter_draws_bars_and_closes() -> None:
    out = io.StringIO()
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=0.0, clock=clock)
    with TqdmProgress(total_files=2, disable=False, file=out) as bars:
        tracker.add_callback(bars)
        tracker.start("a", total=2048, title="First Song")
        clock.now += 1.0
        tracker.update("a", 1024)
        clock.now += 1.0
        tracker.update("a", 1024)
        tracker.finish("a")
        tracker.start("b", total=None, title="A very long title that does not fit in the bar")
        tracker.update("b", 10)
        tracker.finish("b", success=False)
        assert bars.overall.n == 1  # a failed file is never counted as done
    text = out.getvalue()
    assert "First Song" in text
    assert "A very long title that does…" in text  # shortened to 28 characters
    assert "2.00k" in text  # the byte bar reached 2 KiB
    assert "total:  50%" in text
    assert "1/2" in text
    assert "1 done, 1 failed, 2.0 KiB" in text
    # closing twice is harmless
    bars.close()


def test_tqdm_adapter_limits_the_number_of_bars() -> None:
    out = io.StringIO()
    bars = TqdmProgress(total_files=5, disable=False, file=out, max_bars=2)
    tracker = ProgressTracker(min_interval=0.0, clock=FakeClock(500.0))
    tracker.add_callback(bars)
    for name in ("one", "two", "three"):
        tracker.start(name, total=10, title=name)
    for name in ("one", "two", "three"):
        tracker.finish(name)
    bars.close()
    text = out.getvalue()
    assert "one" in text
    assert "two" in text
    assert "three" not in text  # no room for a third bar, but it is still counted
    assert bars.overall.n == 3


def test_disabled_tqdm_adapter_draws_nothing() -> None:
    out = io.StringIO()
    with TqdmProgress(total_files=1, disable=True, file=out) as bars:
        bars("a", _progress(state=ProgressState.STARTED))
        bars("a", _progress(downloaded_bytes=1000, state=ProgressState.COMPLETED))
    assert out.getvalue() == ""


# -- honest bars (issue 11, problem 6) ------------------------------------------------------


def test_resumed_bytes_are_the_start_of_the_bar_not_speed() -> None:
    out = io.StringIO()
    clock = FakeClock(500.0)
    tracker = ProgressTracker(min_interval=0.0, clock=clock)
    with TqdmProgress(total_files=1, disable=False, file=out) as bars:
        tracker.add_callback(bars)
        tracker.start("a", total=1_000_000_000, title="big", already=800_000_000)
        (slot,) = bars._slots
        assert slot.bar.initial == slot.bar.n == 800_000_000  # tqdm's rate counts from here
        shown = out.getvalue()
        assert "80%|########  | 763M/954M [00:00<?, ?B/s]" in shown  # 80% at once, no speed
        assert "MB/s" not in shown  # and no speed until bytes arrive
        assert "GB/s" not in shown
        tracker.update("a", 1_000_000)
        assert slot.bar.n == 801_000_000
        tracker.finish("a")
    assert "1 done, 976.6 KiB" in out.getvalue()  # only what was fetched in this run


def test_a_small_file_shows_its_size_and_failures_are_not_done() -> None:
    out = io.StringIO()
    tracker = ProgressTracker(min_interval=10.0, clock=FakeClock(500.0))
    with TqdmProgress(total_files=3, disable=False, file=out) as bars:
        tracker.add_callback(bars)
        tracker.start("small", total=None, title="small.txt")
        tracker.update("small", 6)  # under one refresh interval: never drawn in between
        tracker.finish("small")
        bars.count("skipped")
        tracker.start("broken", total=100, title="broken.bin")
        tracker.finish("broken", success=False)
        assert bars.overall.n == 2
    text = out.getvalue()
    assert "small.txt" in text
    assert "6.00/6.00" in text or "6/6" in text
    assert "2 done" not in text
    assert "1 done, 1 skipped, 1 failed" in text


def test_interrupted_downloads_are_stopped_not_done() -> None:
    out = io.StringIO()
    with TqdmProgress(total_files=1, disable=False, file=out, count_files=False) as bars:
        bars.count("cancelled")
        assert bars.overall.n == 0
    assert "0/1" in out.getvalue()
    assert "1 stopped" in out.getvalue()


def test_file_bars_are_reused_not_multiplied() -> None:
    out = io.StringIO()
    tracker = ProgressTracker(min_interval=0.0, clock=FakeClock(500.0))
    with TqdmProgress(total_files=30, disable=False, file=out, max_bars=3) as bars:
        tracker.add_callback(bars)
        for n in range(30):
            tracker.start(f"f{n}", total=10, title=f"file {n}")
            tracker.update(f"f{n}", 10)
            tracker.finish(f"f{n}")
        assert len(bars._slots) == 1  # one at a time: one bar, reused 30 times
        assert bars.overall.n == 30


def test_on_a_pipe_nothing_is_drawn_unless_asked() -> None:
    out = io.StringIO()
    with TqdmProgress(total_files=1, file=out) as bars:
        bars("a", _progress(state=ProgressState.STARTED))
    assert out.getvalue() == ""


def test_a_retry_shows_on_the_file_bar() -> None:
    out = io.StringIO()
    tracker = ProgressTracker(min_interval=10.0, clock=FakeClock(500.0))
    with TqdmProgress(total_files=1, disable=False, file=out) as bars:
        tracker.add_callback(bars)
        tracker.start("a", total=100, title="song.flac")
        tracker.note("a", "retrying in 4 s (2/5): HTTP 503")
    assert "retrying in 4 s (2/5): HTTP 503" in out.getvalue()
