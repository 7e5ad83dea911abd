"""Schedules as data: windows across midnight, the rate timetable, start times."""

from __future__ import annotations

import datetime as dt

import pytest

from ripstream.downloader import DownloadConfig
from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.schedule import (
    RateTimetable,
    Schedule,
    Window,
    WindowEnd,
    parse_limit_rate,
    parse_start_at,
)

MONDAY = dt.datetime(2024, 1, 1)  # a Monday


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return MONDAY + dt.timedelta(days=day, hours=hour, minutes=minute)


def test_a_window_across_midnight_belongs_to_the_day_it_starts_on() -> None:
    window = Window.parse("23:00-07:00@mon-fri")
    assert window.end_of(at(0, 23, 30)) == at(1, 7)  # Monday night
    assert window.end_of(at(1, 6, 59)) == at(1, 7)  # still Monday's window on Tuesday
    assert window.end_of(at(1, 7)) is None
    assert window.end_of(at(0, 2)) is None  # Sunday night's window: Sunday is not a day of it
    assert window.end_of(at(5, 3)) == at(5, 7)  # Friday night runs into Saturday
    assert window.end_of(at(5, 23, 30)) is None  # Saturday night
    assert window.next_start(at(5, 8)) == at(7, 23)  # Saturday morning -> Monday 23:00


def test_windows_without_days_are_every_day_and_parse_back() -> None:
    window = Window.parse("9:30-17:00")
    assert str(window) == "09:30-17:00"
    assert all(window.end_of(at(d, 12)) == at(d, 17) for d in range(7))
    assert str(Window.parse("22:00-02:00@sat,sun")) == "22:00-02:00@sat,sun"
    assert Window.parse("22:00-02:00@fri-mon").days == frozenset({4, 5, 6, 0})


@pytest.mark.parametrize("text", ["23:00", "25:00-07:00", "23:00-07:00@funday", "x-y"])
def test_bad_windows_are_refused_by_name(text: str) -> None:
    with pytest.raises(ConfigError, match="window"):
        Window.parse(text)


def test_the_timetable_wraps_round_from_the_day_before() -> None:
    rates = RateTimetable.parse("08:00,512k 12:00,10M 23:00,off")
    assert rates.rate_at(at(0, 7, 59)) is None  # 23:00's "off" runs until 08:00
    assert rates.rate_at(at(0, 8)) == 512 * 1024
    assert rates.rate_at(at(0, 13)) == 10 * 1024 * 1024
    assert parse_limit_rate("10M") == 10 * 1024 * 1024
    assert isinstance(parse_limit_rate("08:00,1M"), RateTimetable)
    with pytest.raises(ConfigError):
        parse_limit_rate("08:00,fast")


def test_start_at_is_the_next_such_time_or_an_iso_date() -> None:
    now = at(0, 22)
    assert parse_start_at("23:15", now) == at(0, 23, 15)
    assert parse_start_at("21:00", now) == at(1, 21)  # already past today: tomorrow
    assert parse_start_at("2024-01-03T04:05", now) == at(2, 4, 5)
    with pytest.raises(ConfigError, match="start time"):
        parse_start_at("soon", now)


def test_a_schedule_opens_at_the_start_time_inside_a_window() -> None:
    schedule = Schedule(windows=(Window.parse("23:00-07:00"),), start_at=at(1, 2))
    assert not schedule.is_open(at(0, 23, 30))  # in the window, before the start time
    assert schedule.next_open(at(0, 23, 30)) == at(1, 2)
    assert schedule.is_open(at(1, 2))
    assert schedule.next_open(at(1, 8)) == at(1, 23)


def test_the_schedule_travels_in_the_config_json() -> None:
    schedule = Schedule(
        windows=(Window.parse("23:00-07:00@mon-fri"),),
        rates=RateTimetable.parse("08:00,512k 23:00,off"),
        window_end=WindowEnd.FINISH,
        start_at=at(0, 23),
    )
    config = DownloadConfig.from_json(DownloadConfig(schedule=schedule).to_json())
    assert config.schedule == schedule
    with pytest.raises(ConfigError):
        DownloadConfig.from_dict({"schedule": {"window_end": "later"}})


def test_every_timetable_travels_in_the_config_json_exactly() -> None:
    # seven digits and more of bytes a second: a worker process reads its config from JSON
    rates = RateTimetable.parse("08:00,512k 12:00,10M 18:00,1.5M 20:00,1000.5 23:00,off")
    assert RateTimetable.parse(str(rates)) == rates
    config = DownloadConfig(schedule=Schedule(rates=rates))
    travelled = DownloadConfig.from_json(config.to_json()).schedule
    assert travelled is not None
    assert travelled.rates == rates
