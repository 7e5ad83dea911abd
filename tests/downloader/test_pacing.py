"""The pacer tells the run's followers (the channel to isolated workers) when running
transfers are to be held and when they may go on; the decision is the driver's, on its clock,
and it reaches the workers once per change; so does each switch of the bandwidth timetable,
as the workers' share of the new limit."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.events import RunMonitor
from ripstream.downloader.executors import ExecutorStrategy
from ripstream.downloader.isolation import Isolation
from ripstream.downloader.pacing import Pacer
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.relay import Batch, WorkerChannel
from ripstream.downloader.schedule import LiveBandwidth, RateTimetable, Schedule, Window
from ripstream.sources import create_downloader
from tests.support.clock import Timeline

TUESDAY = dt.datetime(2024, 1, 2)


def pacer_at(timeline: Timeline) -> Pacer:
    # Monday 23:00-07:00: open at Tuesday 06:59, closed at 07:01
    schedule = Schedule(windows=(Window.parse("23:00-07:00"),))
    return Pacer(schedule, now=timeline.wall, bandwidth=None, monitor=RunMonitor(()))


def test_followers_hear_of_a_closing_window_and_a_pause_from_the_managers_loop() -> None:
    timeline = Timeline(TUESDAY + dt.timedelta(hours=6, minutes=59), auto=False)
    pacer = pacer_at(timeline)
    told: list[bool] = []
    stop = pacer.follow(told.append)
    assert told == [False]  # the state now
    pacer.watch([])
    timeline.set_wall(TUESDAY + dt.timedelta(hours=7, minutes=1))
    pacer.watch([])  # the window closed: hold
    timeline.set_wall(TUESDAY + dt.timedelta(hours=23))
    pacer.watch([])  # the next one opened: go on
    pacer.pause()
    assert told == [False, True, False]  # pause() itself sends nothing (any thread calls it)
    pacer.watch([])
    pacer.resume()
    pacer.watch([])
    stop()
    pacer.pause()
    pacer.watch([])
    assert told == [False, True, False, True, False]


class NoLink:
    """A link that sends nothing back."""

    def sender(self) -> Callable[[Batch], None] | None:
        return None

    def cancel_event(self) -> threading.Event:
        return threading.Event()

    def resumed_event(self) -> threading.Event:
        return threading.Event()

    def rate(self, default: float | None) -> Callable[[], float | None]:
        return lambda: default


class Recorded(ExecutorStrategy):
    """An isolated strategy of ``processes`` workers whose channel records the holds and the
    shares of the limit it is asked to send."""

    isolated = True

    def __init__(self, processes: int = 1) -> None:
        self.holds: list[bool] = []
        self.limits: list[float | None] = []
        self.processes = processes

    def shares(self, executor: Executor) -> int:
        return self.processes

    def create(self, workers: int) -> Executor:
        return ThreadPoolExecutor(1)

    def open_channel(
        self, executor: Executor, deliver: Callable[[Batch], None]
    ) -> WorkerChannel | None:
        return WorkerChannel(
            NoLink(), lambda: None, lambda: None, self.holds.append, self.limits.append
        )


def test_the_workers_are_told_each_change_once_and_nothing_after_close(tmp_path: Path) -> None:
    timeline = Timeline(TUESDAY + dt.timedelta(hours=7, minutes=1), auto=False)
    pacer = pacer_at(timeline)
    pacer.watch([])  # held already: the window is closed
    strategy = Recorded()
    executor = strategy.create(1)
    isolation = Isolation(
        strategy,
        executor,
        config=DownloadConfig(download_directory=tmp_path),
        factory=create_downloader,
        post_processors=(),
        tracker=ProgressTracker(),
        follow=pacer.follow,
    )
    try:
        assert strategy.holds == [True]  # made while held: told at once
        pacer.pause()
        pacer.watch([])  # still held (now by hand): nothing new to tell
        pacer.resume()
        timeline.set_wall(TUESDAY + dt.timedelta(hours=23))
        pacer.watch([])
        assert strategy.holds == [True, False]
    finally:
        isolation.close()
        executor.shutdown()
    pacer.pause()
    pacer.watch([])
    assert strategy.holds == [True, False]


def test_each_switch_of_the_timetable_reaches_the_workers_once_as_their_share() -> None:
    timeline = Timeline(TUESDAY + dt.timedelta(hours=11, minutes=59), auto=False)
    schedule = Schedule(rates=RateTimetable.parse("00:00,2M 12:00,8M 13:00,off"))
    bandwidth = LiveBandwidth(schedule, now=timeline.wall)
    pacer = Pacer(schedule, now=timeline.wall, bandwidth=bandwidth, monitor=RunMonitor(()))
    strategy = Recorded(processes=2)
    executor = strategy.create(1)
    isolation = Isolation(
        strategy,
        executor,
        config=DownloadConfig(),
        factory=create_downloader,
        post_processors=(),
        tracker=ProgressTracker(),
        follow_rate=pacer.follow_rate,
    )
    mib = 1024 * 1024
    try:
        assert strategy.limits == [1 * mib]  # made at 11:59: half of 2M each, at once
        pacer.watch([])  # nothing switched: nothing sent
        timeline.set_wall(TUESDAY + dt.timedelta(hours=12, minutes=1))
        assert strategy.limits == [1 * mib]  # the manager's loop has not looked yet
        pacer.watch([])
        pacer.watch([])
        timeline.set_wall(TUESDAY + dt.timedelta(hours=13, minutes=1))
        pacer.watch([])
        assert strategy.limits == [1 * mib, 4 * mib, None]
    finally:
        isolation.close()
        executor.shutdown()
    timeline.set_wall(TUESDAY + dt.timedelta(days=1, hours=1))  # 2M again, after close
    pacer.watch([])
    assert strategy.limits == [1 * mib, 4 * mib, None]


def test_a_run_without_a_live_bandwidth_tells_no_rate() -> None:
    timeline = Timeline(TUESDAY, auto=False)
    told: list[float | None] = []
    stop = pacer_at(timeline).follow_rate(told.append)
    stop()
    assert told == []
