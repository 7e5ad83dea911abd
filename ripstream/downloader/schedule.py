"""When downloads may run and how fast: time windows, a bandwidth timetable, a start time.

A :class:`Schedule` is plain data (frozen) read against a wall clock that is passed in, so
tests move time instead of waiting. Times are local, naive ``datetime`` values, like the
``HH:MM`` a user types.

* :class:`Window` ``23:00-07:00@mon-fri``: downloads start only inside one; a window across
  midnight belongs to the day it starts on; no days means every day.
* :class:`RateTimetable` ``08:00,512k 12:00,10M 23:00,off`` (rclone's form): the limit in
  force is the one of the last time passed, wrapping round from the day before.
* :class:`LiveBandwidth` is the run-wide throttle that follows the timetable as it runs and
  holds every transfer while the run is paused.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.ratelimit import TokenBucket

__all__ = [
    "LiveBandwidth",
    "RateTimetable",
    "Schedule",
    "Window",
    "WindowEnd",
    "as_schedule",
    "parse_limit_rate",
    "parse_start_at",
]

Now = Callable[[], dt.datetime]
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAY = dt.timedelta(days=1)


class WindowEnd(enum.Enum):
    """What running downloads do when a window closes."""

    PAUSE = "pause"  #: hold where they are (their ``.part`` is kept) until the next window
    FINISH = "finish"  #: run to their end; nothing new starts


def _clock_time(text: str, what: str) -> dt.time:
    match = _CLOCK.match(text.strip())
    if not match:
        raise ConfigError(f"{what}: {text!r} is not a time like 23:00", field=what, value=text)
    return dt.time(int(match.group(1)), int(match.group(2)))


def _days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        ends = part.strip().split("-")
        if len(ends) > 2 or any(end not in _DAYS for end in ends):
            raise ConfigError(
                f"window days {text!r}: expected names like mon-fri or sat,sun",
                field="window",
                value=text,
            )
        first, last = _DAYS.index(ends[0]), _DAYS.index(ends[-1])
        days.update(day % 7 for day in range(first, last + (7 if last < first else 0) + 1))
    return frozenset(days)


@dataclass(frozen=True, slots=True)
class Window:
    """A daily time window, e.g. ``Window.parse("23:00-07:00@mon-fri")``.

    :param days: weekdays (Monday is 0) on which the window *starts*.
    """

    start: dt.time
    end: dt.time
    days: frozenset[int] = frozenset(range(7))

    @classmethod
    def parse(cls, text: str) -> Window:
        """``HH:MM-HH:MM[@DAYS]``.

        :raises ConfigError: naming the bad part.
        """
        span, _, days = text.partition("@")
        start, sep, end = span.partition("-")
        if not sep:
            raise ConfigError(
                f"window {text!r} is not like 23:00-07:00[@mon-fri]", field="window", value=text
            )
        return cls(
            _clock_time(start, "window"),
            _clock_time(end, "window"),
            _days(days) if days else frozenset(range(7)),
        )

    def __str__(self) -> str:
        days = "" if len(self.days) == 7 else "@" + ",".join(_DAYS[d] for d in sorted(self.days))
        return f"{self.start:%H:%M}-{self.end:%H:%M}{days}"

    @property
    def length(self) -> dt.timedelta:
        """How long each occurrence lasts (a whole day when start equals end)."""
        start = dt.datetime.combine(dt.date.min, self.start)
        end = dt.datetime.combine(dt.date.min, self.end)
        return (end - start) % _DAY or _DAY

    def end_of(self, when: dt.datetime) -> dt.datetime | None:
        """The end of the occurrence that contains ``when``, or ``None`` outside it."""
        for back in (1, 0):
            day = when.date() - dt.timedelta(days=back)
            opened = dt.datetime.combine(day, self.start)
            if day.weekday() in self.days and opened <= when < opened + self.length:
                return opened + self.length
        return None

    def next_start(self, when: dt.datetime) -> dt.datetime:
        """The first start at or after ``when``."""
        for ahead in range(8):
            day = when.date() + dt.timedelta(days=ahead)
            opened = dt.datetime.combine(day, self.start)
            if opened >= when and day.weekday() in self.days:
                return opened
        raise ConfigError(f"window {self} has no days", field="window", value=str(self))


@dataclass(frozen=True, slots=True)
class RateTimetable:
    """Bandwidth limits by time of day: ``((time, bytes_per_second or None), ...)``."""

    entries: tuple[tuple[dt.time, float | None], ...]

    def __post_init__(self) -> None:
        if not self.entries:
            raise ConfigError("a rate timetable needs at least one entry", field="limit_rate")
        object.__setattr__(self, "entries", tuple(sorted(self.entries, key=lambda e: e[0])))

    @classmethod
    def parse(cls, text: str) -> RateTimetable:
        """``"08:00,512k 12:00,10M 23:00,off"``.

        :raises ConfigError: naming the bad entry.
        """
        from ripstream.downloader.config import parse_rate  # config imports this module

        entries = []
        for item in text.split():
            when, sep, rate = item.partition(",")
            if not sep:
                raise ConfigError(
                    f"rate timetable entry {item!r} is not like 08:00,512k",
                    field="limit_rate",
                    value=text,
                )
            limit = None if rate.lower() in ("off", "unlimited") else parse_rate(rate)
            entries.append((_clock_time(when, "limit_rate"), limit))
        return cls(tuple(entries))

    def __str__(self) -> str:
        """The form :meth:`parse` reads back (a worker process gets the config as JSON)."""
        return " ".join(f"{t:%H:%M},{_rate_text(r)}" for t, r in self.entries)

    def rate_at(self, when: dt.datetime) -> float | None:
        """The limit in force at ``when`` (``None``: unlimited)."""
        current = self.entries[-1][1]  # yesterday's last entry runs until today's first
        for start, rate in self.entries:
            if start <= when.time():
                current = rate
        return current


def _rate_text(rate: float | None) -> str:
    """Bytes a second as :func:`~ripstream.downloader.units.parse_rate` reads them exactly
    (``%g`` wrote ``1.04858e+07`` for 10M: neither readable nor exact)."""
    if rate is None:
        return "off"
    return f"{rate:.0f}" if rate == int(rate) else repr(rate)


def parse_limit_rate(text: str) -> float | RateTimetable | None:
    """A plain rate (``10M``), a timetable (``"08:00,512k 23:00,off"``), or ``None``.

    :raises ConfigError: when it is neither.
    """
    from ripstream.downloader.config import parse_rate

    return RateTimetable.parse(text) if "," in text else parse_rate(text)


def parse_start_at(text: str, now: dt.datetime) -> dt.datetime:
    """``HH:MM`` (the next such time after ``now``) or an ISO 8601 date-time.

    :raises ConfigError: when it is neither.
    """
    if _CLOCK.match(text.strip()):
        at = dt.datetime.combine(now.date(), _clock_time(text, "start_at"))
        return at if at > now else at + _DAY
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"start time {text!r} is not HH:MM or an ISO 8601 date-time",
            field="start_at",
            value=text,
        ) from None
    # an explicit offset is converted to local time, the clock every other time here uses
    return parsed.astimezone().replace(tzinfo=None) if parsed.tzinfo else parsed


@dataclass(frozen=True, slots=True)
class Schedule:
    """When downloads may start and how fast they may go. Frozen: share it freely.

    Example::

        schedule = Schedule(windows=(Window.parse("23:00-07:00@mon-fri"),),
                            rates=RateTimetable.parse("08:00,512k 23:00,off"))
        DownloadConfig(schedule=schedule)

    :param windows: downloads start only inside one of these (none: any time).
    :param rates: the run-wide bandwidth by time of day (none: ``bandwidth_limit``).
    :param window_end: what running downloads do when a window closes.
    :param start_at: nothing is requested before this time.
    """

    windows: tuple[Window, ...] = ()
    rates: RateTimetable | None = None
    window_end: WindowEnd = WindowEnd.PAUSE
    start_at: dt.datetime | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.window_end, WindowEnd):
            try:
                object.__setattr__(self, "window_end", WindowEnd(self.window_end))
            except ValueError:
                raise ConfigError(
                    f"window_end must be pause or finish, got {self.window_end!r}",
                    field="window_end",
                    value=self.window_end,
                ) from None

    def in_window(self, when: dt.datetime) -> bool:
        """Whether ``when`` is inside a window (always, without windows)."""
        return not self.windows or any(w.end_of(when) is not None for w in self.windows)

    def is_open(self, when: dt.datetime) -> bool:
        """Whether a download may start at ``when``."""
        return (self.start_at is None or when >= self.start_at) and self.in_window(when)

    def next_open(self, when: dt.datetime) -> dt.datetime:
        """The first moment at or after ``when`` at which a download may start."""
        if self.start_at is not None and when < self.start_at:
            when = self.start_at
        if self.in_window(when):
            return when
        return min(w.next_start(when) for w in self.windows)

    def rate_at(self, when: dt.datetime, default: float | None) -> float | None:
        """The run-wide limit at ``when``: the timetable's, else ``default``."""
        return default if self.rates is None else self.rates.rate_at(when)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "windows": [str(w) for w in self.windows],
            "rates": None if self.rates is None else str(self.rates),
            "window_end": self.window_end.value,
            "start_at": None if self.start_at is None else self.start_at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schedule:
        """The inverse of :meth:`to_dict`.

        :raises ConfigError: for a bad value.
        """
        rates, start = data.get("rates"), data.get("start_at")
        return cls(
            windows=tuple(Window.parse(str(w)) for w in data.get("windows", ())),
            rates=RateTimetable.parse(str(rates)) if rates else None,
            window_end=data.get("window_end", "pause"),
            start_at=dt.datetime.fromisoformat(str(start)) if start else None,
        )


def as_schedule(value: Any) -> Schedule | None:
    """A config value as a :class:`Schedule` (``None``, a Schedule, or its dict).

    :raises ConfigError: for anything else.
    """
    if value is None or isinstance(value, Schedule):
        return value
    if isinstance(value, Mapping):
        return Schedule.from_dict(value)
    raise ConfigError(f"schedule must be an object, got {value!r}", field="schedule", value=value)


@dataclass(slots=True)
class _Limit:
    rate: float | None
    bucket: TokenBucket | None


class LiveBandwidth:
    """The run-wide throttle: the rate of the timetable at each moment, and a pause switch.
    Thread-safe; shaped like :class:`TokenBucket` (``acquire``), so fetchers use it as one.

    :param schedule: where the rate comes from (its timetable, else ``default``).
    :param default: the rate without a timetable (``None``: unlimited).
    :param now: the wall clock the timetable is read against.
    :param clock: monotonic seconds, for the bucket.
    :param sleep: waits for the bucket (tests pass a fake clock's sleep).
    :param poll: seconds between two looks at the pause switch while held.
    :param resumed: the pause switch (set: transfers move), when another thread or process
        drives it (a worker's link to the driver); by default the bandwidth's own.
    :param told: reads the rate in force when another process decides it (a worker's share
        of the driver's timetable, :meth:`~ripstream.downloader.relay.WorkerLink.rate`);
        it then replaces the schedule and ``default``.
    """

    def __init__(
        self,
        schedule: Schedule | None,
        default: float | None = None,
        *,
        now: Now = dt.datetime.now,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        poll: float = 0.05,
        resumed: threading.Event | None = None,
        told: Callable[[], float | None] | None = None,
    ) -> None:
        self.schedule = schedule or Schedule()
        self.default = default
        self._now = now
        self._clock = clock
        self._sleep = sleep
        self._poll = poll
        self._told = told
        self._lock = threading.Lock()
        self._limit = _Limit(None, None)
        if resumed is None:
            resumed = threading.Event()
            resumed.set()
        self._resumed = resumed
        self._changes: list[Callable[[float | None], None]] = []
        self._current()

    @property
    def paused(self) -> bool:
        """Whether transfers are held."""
        return not self._resumed.is_set()

    def pause(self) -> None:
        """Hold every transfer at its next buffer (connections stay open)."""
        self._resumed.clear()

    def resume(self) -> None:
        """Let transfers go on."""
        self._resumed.set()

    def _window_closed(self) -> bool:
        """A closed window holds transfers at once, at their next buffer."""
        schedule = self.schedule
        if not schedule.windows or schedule.window_end is not WindowEnd.PAUSE:
            return False
        return not schedule.in_window(self._now())

    def on_change(self, callback: Callable[[float | None], None]) -> None:
        """Call ``callback(rate)`` when the timetable switches the limit."""
        self._changes.append(callback)

    @property
    def rate(self) -> float | None:
        """The limit in force now (``None``: unlimited)."""
        return self._current().rate

    def _current(self) -> _Limit:
        if self._told is not None:
            rate = self._told()
        elif self.schedule.rates is None:
            rate = self.default
        else:
            rate = self.schedule.rates.rate_at(self._now())
        with self._lock:
            if rate == self._limit.rate and (rate is None) == (self._limit.bucket is None):
                return self._limit
            bucket = None
            if rate:
                bucket = TokenBucket(rate, clock=self._clock, sleep=self._sleep)
                bucket.reserve(bucket.burst)  # no saved-up burst: the new rate holds at once
            self._limit = _Limit(rate, bucket)
            changes = list(self._changes)
        for callback in changes:
            callback(rate)
        return self._limit

    def refund(self, amount: float) -> None:
        """Give back what a short read did not use, to the limit in force."""
        bucket = self._current().bucket
        if bucket is not None:
            bucket.refund(amount)

    def acquire(
        self,
        amount: float,
        sleep: Callable[[float], object] | None = None,
        *,
        cancel: threading.Event | None = None,
    ) -> float:
        """Wait while paused, then for the rate in force; returns the seconds waited."""
        waited = 0.0
        while not self._resumed.is_set() or self._window_closed():
            if cancel is not None and cancel.is_set():
                return waited
            started = time.monotonic()
            self._resumed.wait(self._poll)
            waited += time.monotonic() - started
        bucket = self._current().bucket
        if bucket is None:
            return waited
        return waited + bucket.acquire(amount, sleep, cancel=cancel)
