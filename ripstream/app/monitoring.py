"""The CLI's scheduling and monitoring options, turned into framework pieces: a
:class:`~ripstream.downloader.schedule.Schedule`, event sinks (``--events``, the cool-down
notice) and the metrics endpoint (``--metrics-port``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from ripstream.downloader.events import EventKind, EventSink, JsonLinesSink, RunEvent
from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.safeio import open_append
from ripstream.downloader.schedule import (
    RateTimetable,
    Schedule,
    Window,
    WindowEnd,
    parse_limit_rate,
    parse_start_at,
)

__all__ = ["RunSinks", "add_schedule_options", "build_schedule", "limit_rate", "waiting_notice"]


def build_schedule(
    *,
    start_at: str | None,
    windows: Sequence[str],
    window_end: str | None,
    rates: RateTimetable | None,
    now: dt.datetime,
) -> Schedule | None:
    """The schedule the options ask for, or ``None`` when they ask for none.

    :raises ConfigError: for a bad time or window.
    """
    if start_at is None and not windows and rates is None:
        if window_end is not None:
            raise ConfigError("--window-end needs --window", field="window_end", value=window_end)
        return None
    return Schedule(
        windows=tuple(Window.parse(text) for text in windows),
        rates=rates,
        window_end=WindowEnd(window_end or "pause"),
        start_at=parse_start_at(start_at, now) if start_at else None,
    )


def waiting_notice(schedule: Schedule | None, now: dt.datetime) -> str | None:
    """What the run waits for before its first request, in words, or ``None``."""
    if schedule is None or schedule.is_open(now):
        return None
    opens = schedule.next_open(now)
    if schedule.start_at is not None and now < schedule.start_at and opens == schedule.start_at:
        return f"waiting for the start time {opens:%Y-%m-%d %H:%M} (--start-at)"
    windows = ", ".join(str(w) for w in schedule.windows)
    return f"waiting for a download window ({windows}): the next opens {opens:%Y-%m-%d %H:%M}"


def limit_rate(text: str) -> float | RateTimetable | None:
    """The argparse type of ``--limit-rate``: a rate or a timetable."""
    try:
        return parse_limit_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_schedule_options(parser: argparse.ArgumentParser, whole_number: Callable[..., Any]) -> None:
    """The CLI's options of when and how politely (``whole_number(name, low=1)`` makes
    the argparse type of a whole-number option)."""
    parser.add_argument(
        "--max-per-host",
        type=whole_number("--max-per-host"),
        metavar="N",
        help="downloads and segment connections to one host at once (default 4)",
    )
    parser.add_argument(
        "--start-at", metavar="TIME", help="request nothing before TIME (HH:MM or ISO 8601)"
    )
    parser.add_argument(
        "--window",
        action="append",
        default=[],
        metavar="HH:MM-HH:MM[@DAYS]",
        help="start downloads only inside this window (repeatable), e.g. 23:00-07:00@mon-fri",
    )
    parser.add_argument(
        "--window-end",
        choices=["pause", "finish"],
        help="at a window's end running downloads pause (default) or finish",
    )
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="run only the URLs the batch journal records as failed",
    )
    parser.add_argument(
        "--events", metavar="FILE", help="write JSON-lines events to FILE (- for stdout)"
    )
    parser.add_argument(
        "--metrics-port",
        type=whole_number("--metrics-port", 0),
        metavar="PORT",
        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (the metrics extra)",
    )


class RunSinks(contextlib.ExitStack):
    """The event sinks of a CLI run; closes the events file it opened.

    :param events: ``--events``: a file name, ``-`` for ``stdout``, or ``None``.
    :param notices: where host cool-downs are told (``None``: not told).
    """

    def __init__(
        self, events: str | None, stdout: TextIO, notices: TextIO | None, metrics_port: int | None
    ) -> None:
        super().__init__()
        self.sinks: list[EventSink] = []
        self.metrics_port: int | None = None
        if events == "-":
            self.sinks.append(JsonLinesSink(stdout))
        elif events is not None:
            fd = open_append(Path(events), "the events file")
            handle = self.enter_context(open(fd, "a", encoding="utf-8"))  # noqa: SIM115
            self.sinks.append(JsonLinesSink(handle))
        if notices is not None:
            self.sinks.append(_CooldownNotice(notices.write))
        if metrics_port is not None:
            from ripstream.app.metrics import PrometheusSink, serve_metrics

            sink = PrometheusSink()
            server = serve_metrics(sink, metrics_port)
            self.callback(server.shutdown)
            self.sinks.append(sink)
            self.metrics_port = server.port


class _CooldownNotice:
    """Tells the user that a host asked to slow down, and until when."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write

    def __call__(self, event: RunEvent) -> None:
        if event.event is EventKind.HOST_COOLDOWN and event.until is not None:
            until = dt.datetime.fromtimestamp(event.until)
            self.write(
                f"ripstream: {event.host} asked us to slow down: its downloads are paused "
                f"until {until:%H:%M:%S}\n"
            )
