"""Retry policies: backoff schedules, Retry-After, and the retry loop's typed outcome."""

from __future__ import annotations

import calendar
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st
from tenacity import RetryCallState

from ripstream.downloader.config import DownloadBehaviorSettings, RetryStrategy
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ChecksumError,
    ConnectionFailedError,
    ConnectionRefused,
    ContentNotFoundError,
    DownloadError,
    IncompleteBodyError,
    RateLimitError,
    RetryExhaustedError,
    ServerError,
    StallError,
)
from ripstream.downloader.retry import (
    BOUNDED_RETRY_WAIT,
    backoff_wait,
    call_with_retries,
    is_retryable,
    parse_retry_after,
    retry_note,
)


def _state_after(attempt: int, error: BaseException | None = None) -> RetryCallState:
    """A tenacity call state as it is after ``attempt`` failed with ``error``."""
    state = RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(error), error, None) if error else _error_info())
    return state


def _error_info() -> tuple[type[BaseException], BaseException, None]:
    error = ConnectionFailedError("refused")
    return (type(error), error, None)


def _waits(settings: DownloadBehaviorSettings, attempts: int = 6) -> list[float]:
    wait = backoff_wait(settings)
    return [wait(_state_after(n)) for n in range(1, attempts + 1)]


# -- backoff_wait -----------------------------------------------------------------------------


def test_fixed_waits_the_same_each_time() -> None:
    s = DownloadBehaviorSettings(retry_strategy=RetryStrategy.FIXED, retry_delay=2.0)
    assert _waits(s) == [2.0] * 6


def test_linear_grows_by_the_delay_and_is_capped() -> None:
    s = DownloadBehaviorSettings(
        retry_strategy=RetryStrategy.LINEAR, retry_delay=1.5, max_retry_delay=5.0
    )
    assert _waits(s) == [1.5, 3.0, 4.5, 5.0, 5.0, 5.0]


def test_exponential_without_jitter_doubles_up_to_the_cap() -> None:
    s = DownloadBehaviorSettings(
        retry_strategy=RetryStrategy.EXPONENTIAL,
        retry_delay=0.5,
        retry_jitter=0.0,
        max_retry_delay=6.0,
    )
    assert _waits(s, 7) == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0, 6.0]


def test_exponential_jitter_stays_within_its_bounds() -> None:
    s = DownloadBehaviorSettings(
        retry_strategy=RetryStrategy.EXPONENTIAL,
        retry_delay=1.0,
        retry_jitter=0.5,
        max_retry_delay=10.0,
    )
    wait = backoff_wait(s)
    seen: dict[int, set[float]] = {}
    for _ in range(200):
        for attempt in range(1, 7):
            value = wait(_state_after(attempt))
            low = min(2.0 ** (attempt - 1), 10.0)
            high = min(2.0 ** (attempt - 1) + 0.5, 10.0)
            assert low <= value <= high, (attempt, value)
            seen.setdefault(attempt, set()).add(value)
    # the jitter is real: early attempts do not all wait the same
    assert len(seen[1]) > 50
    # and the cap holds even with jitter
    assert seen[6] == {10.0}


def test_callable_strategy_gets_the_attempt_number_and_is_capped() -> None:
    calls: list[int] = []

    def strategy(attempt: int) -> float:
        calls.append(attempt)
        return attempt * 10.0

    s = DownloadBehaviorSettings(retry_strategy=strategy, max_retry_delay=25.0)
    assert _waits(s, 4) == [10.0, 20.0, 25.0, 25.0]
    assert calls == [1, 2, 3, 4]


def test_tenacity_wait_object_as_strategy() -> None:
    strategy = tenacity.wait_chain(tenacity.wait_fixed(1), tenacity.wait_fixed(3))
    # the settings' annotation only names callables of the attempt number, not wait objects
    s = DownloadBehaviorSettings(retry_strategy=strategy, max_retry_delay=60.0)  # type: ignore[arg-type]
    assert _waits(s, 3) == [1.0, 3.0, 3.0]


def test_retry_after_overrides_the_strategy_and_is_capped() -> None:
    s = DownloadBehaviorSettings(
        retry_strategy=RetryStrategy.FIXED,
        retry_delay=1.0,
        max_retry_delay=2.0,
        max_retry_after=120.0,
    )
    wait = backoff_wait(s)
    # a server's Retry-After is honoured even above max_retry_delay...
    assert wait(_state_after(1, RateLimitError("429", retry_after=30.0))) == 30.0
    assert wait(_state_after(1, ServerError("503", status_code=503, retry_after=7.5))) == 7.5
    # ...but never beyond max_retry_after
    assert wait(_state_after(1, RateLimitError("429", retry_after=3600.0))) == 120.0
    # without one, the strategy decides
    assert wait(_state_after(1, RateLimitError("429", retry_after=None))) == 1.0
    assert wait(_state_after(1, StallError("stalled"))) == 1.0


# -- parse_retry_after ------------------------------------------------------------------------

NOW = float(calendar.timegm((2015, 10, 21, 7, 28, 0, 0, 0, 0)))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("0", 0.0),
        ("Wed, 21 Oct 2015 07:29:30 GMT", 90.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # RFC 850
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # in the past: no wait
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("\xb2", None),  # a latin-1 byte that str.isdigit() calls a digit
        ("\u0663", None),  # Arabic-Indic three: not HTTP delta-seconds
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=lambda: NOW) == expected


@given(
    st.one_of(
        st.text(st.characters(max_codepoint=0xFF), max_size=40),  # header values are latin-1
        st.builds(
            "{}, {} {} {} {}:00:00 {}".format,
            st.sampled_from(["Wed", "Xyz"]),
            st.integers(-5, 40),
            st.sampled_from(["Oct", "Feb", "Foo"]),
            st.integers(-1, 10**6),
            st.integers(-3, 99),
            st.sampled_from(["GMT", "-0000", "+2500", "EST", ""]),
        ),
    )
)
def test_parse_retry_after_never_raises(value: str) -> None:
    result = parse_retry_after(value, now=lambda: NOW)
    assert result is None or result >= 0


@pytest.fixture
def east_of_utc() -> Iterator[None]:
    """Run with the local clock five hours ahead of UTC, as on a server in Asia."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TZ", "XYZ-5")
    time.tzset()
    try:
        yield
    finally:
        mp.undo()
        time.tzset()


@pytest.mark.usefixtures("east_of_utc")
@pytest.mark.parametrize(
    "value",
    [
        "Wed Oct 21 07:29:00 2015",  # asctime: HTTP says GMT
        "Wed, 21 Oct 2015 07:29:00 -0000",
        "Wed, 21 Oct 2015 07:29:00 GMT",
    ],
)
def test_http_dates_are_gmt_whatever_the_local_zone(value: str) -> None:
    assert time.localtime(NOW).tm_hour == 12  # the fixture did change the zone
    assert parse_retry_after(value, now=lambda: NOW) == 60.0


# -- call_with_retries ------------------------------------------------------------------------


class Flaky:
    """Fails with ``errors`` in turn, then returns ``value``."""

    def __init__(self, errors: list[BaseException], value: str = "ok") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value


def _settings(**changes: Any) -> DownloadBehaviorSettings:
    values: dict[str, Any] = {
        "max_retries": 3,
        "retry_strategy": RetryStrategy.EXPONENTIAL,
        "retry_delay": 1.0,
        "retry_jitter": 0.0,
        "max_retry_delay": 30.0,
    }
    values.update(changes)
    return DownloadBehaviorSettings(**values)


def test_retryable_errors_are_retried_until_success() -> None:
    sleeps: list[float] = []
    retries: list[tuple[int, str, float]] = []
    flaky = Flaky([ConnectionFailedError("refused"), IncompleteBodyError("short")], "done")
    result = call_with_retries(
        flaky,
        _settings(),
        sleep=sleeps.append,
        on_retry=lambda attempt, error, wait: retries.append((attempt, type(error).__name__, wait)),
    )
    assert result == "done"
    assert flaky.calls == 3
    assert sleeps == [1.0, 2.0]
    assert retries == [(1, "ConnectionFailedError", 1.0), (2, "IncompleteBodyError", 2.0)]


def test_exhausted_retries_raise_a_typed_error() -> None:
    sleeps: list[float] = []
    errors = [ServerError(f"HTTP 503 #{n}", url="https://h/x", source="http", status_code=503)
              for n in range(4)]  # fmt: skip
    flaky = Flaky(list(errors))
    with pytest.raises(RetryExhaustedError) as info:
        call_with_retries(flaky, _settings(max_retries=3), sleep=sleeps.append, describe="x.mp3")
    error = info.value
    assert flaky.calls == 4  # one try plus three retries
    assert error.retry_count == 3
    assert error.last_error is errors[-1]
    assert error.__cause__ is errors[-1]
    assert (error.url, error.source) == ("https://h/x", "http")
    assert "x.mp3" in str(error)
    assert "HTTP 503 #3" in str(error)
    assert sleeps == [1.0, 2.0, 4.0]  # the expected exponential schedule


def test_the_recorded_sleeps_follow_the_linear_schedule_with_its_cap() -> None:
    sleeps: list[float] = []
    with pytest.raises(RetryExhaustedError) as info:
        call_with_retries(
            Flaky([StallError("slow")] * 6),
            _settings(max_retries=5, retry_strategy=RetryStrategy.LINEAR, max_retry_delay=3.5),
            sleep=sleeps.append,
        )
    assert sleeps == [1.0, 2.0, 3.0, 3.5, 3.5]
    assert info.value.retry_count == 5


def test_retry_after_is_what_the_loop_sleeps() -> None:
    sleeps: list[float] = []
    flaky = Flaky([RateLimitError("429", status_code=429, retry_after=42.0)])
    assert call_with_retries(flaky, _settings(max_retry_after=60.0), sleep=sleeps.append) == "ok"
    assert sleeps == [42.0]


@pytest.mark.parametrize(
    "error",
    [
        ContentNotFoundError("HTTP 404", status_code=404),
        AuthenticationError("HTTP 401", status_code=401),
        DownloadError("generic"),
    ],
)
def test_permanent_errors_fail_at_once_without_sleeping(error: DownloadError) -> None:
    sleeps: list[float] = []
    flaky = Flaky([error])
    with pytest.raises(type(error)) as info:
        call_with_retries(flaky, _settings(), sleep=sleeps.append)
    assert info.value is error
    assert flaky.calls == 1
    assert sleeps == []


def test_a_permanent_error_after_retries_is_raised_as_itself() -> None:
    sleeps: list[float] = []
    missing = ContentNotFoundError("HTTP 404", status_code=404)
    flaky = Flaky([ConnectionFailedError("reset"), missing])
    with pytest.raises(ContentNotFoundError) as info:
        call_with_retries(flaky, _settings(), sleep=sleeps.append)
    assert info.value is missing
    assert sleeps == [1.0]


def test_non_download_errors_are_not_retried() -> None:
    sleeps: list[float] = []
    flaky = Flaky([KeyError("bug")])
    with pytest.raises(KeyError):
        call_with_retries(flaky, _settings(), sleep=sleeps.append)
    assert flaky.calls == 1
    assert sleeps == []


def test_zero_retries_means_one_attempt_and_the_error_itself() -> None:
    sleeps: list[float] = []
    flaky = Flaky([ConnectionFailedError("refused")])
    with pytest.raises(ConnectionFailedError, match="refused"):
        call_with_retries(flaky, _settings(max_retries=0), sleep=sleeps.append)
    assert flaky.calls == 1
    assert sleeps == []


def test_each_retry_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ripstream.downloader.retry")
    call_with_retries(
        Flaky([ConnectionFailedError("refused")]), _settings(), sleep=lambda _: None,
        describe="song.flac",
    )  # fmt: skip
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["song.flac: attempt 1 failed (refused); retrying in 1.00s"]


def test_is_retryable_reads_the_exception_class() -> None:
    assert is_retryable(ConnectionFailedError("x"))
    assert is_retryable(RateLimitError("x"))
    assert not is_retryable(ContentNotFoundError("x"))
    assert not is_retryable(ValueError("x"))


def test_call_with_retries_is_independent_per_call() -> None:
    settings = _settings(max_retries=1)
    sleeps: list[float] = []
    run: Callable[[], str] = Flaky([ConnectionFailedError("a")], "first")
    assert call_with_retries(run, settings, sleep=sleeps.append) == "first"
    run = Flaky([ConnectionFailedError("b")], "second")
    assert call_with_retries(run, settings, sleep=sleeps.append) == "second"
    assert sleeps == [1.0, 1.0]


# -- checksum refetch, bounded retries, the retry note -----------------------------------------


def _mismatch(refetch: bool) -> ChecksumError:
    return ChecksumError(
        "checksum mismatch", algorithm="sha256", expected="0" * 64, actual="1" * 64,
        refetch=refetch,
    )  # fmt: skip


def test_a_first_checksum_mismatch_is_fetched_again_at_once_outside_the_budget() -> None:
    sleeps: list[float] = []
    flaky = Flaky([_mismatch(refetch=True)], "done")
    assert call_with_retries(flaky, _settings(max_retries=0), sleep=sleeps.append) == "done"
    assert flaky.calls == 2
    assert sleeps == [0.0]  # the server answered fine: no backoff


def test_a_refetch_adds_exactly_one_attempt_to_the_budget() -> None:
    busy = ServerError("HTTP 503", status_code=503)
    flaky = Flaky([_mismatch(refetch=True), busy], "done")
    with pytest.raises(RetryExhaustedError) as info:
        call_with_retries(flaky, _settings(max_retries=0), sleep=lambda _: None)
    assert flaky.calls == 2  # the refetch, then no retry of the 503: max_retries is 0
    assert info.value.last_error is busy


def test_a_refused_connection_is_retried_twice_quickly_then_given_up() -> None:
    sleeps: list[float] = []
    flaky = Flaky([ConnectionRefused("refused") for _ in range(6)])
    settings = _settings(max_retries=5, retry_strategy=RetryStrategy.FIXED, retry_delay=60.0)
    with pytest.raises(RetryExhaustedError) as info:
        call_with_retries(flaky, settings, sleep=sleeps.append)
    assert flaky.calls == 3  # its retry_limit of 2, not max_retries
    assert sleeps == [BOUNDED_RETRY_WAIT, BOUNDED_RETRY_WAIT]
    assert info.value.retry_count == 2
    assert str(info.value).startswith("download failed after 3 attempts: refused")


def test_one_retry_that_also_fails_is_reported_as_exhausted() -> None:
    flaky = Flaky([ServerError("HTTP 503", status_code=503) for _ in range(2)])
    with pytest.raises(RetryExhaustedError) as info:
        call_with_retries(flaky, _settings(max_retries=1), sleep=lambda _: None)
    assert flaky.calls == 2
    assert info.value.retry_count == 1


def test_exponential_jitter_scales_with_the_delay() -> None:
    s = DownloadBehaviorSettings(
        retry_strategy=RetryStrategy.EXPONENTIAL,
        retry_delay=4.0,
        retry_jitter=1.0,
        max_retry_delay=100.0,
    )
    wait = backoff_wait(s)
    firsts = [wait(_state_after(1)) for _ in range(100)]
    assert all(4.0 <= value <= 8.0 for value in firsts)
    assert max(firsts) > 5.0  # up to jitter x delay on top, not jitter / delay


@pytest.mark.parametrize(
    ("number", "error", "note"),
    [
        (2, ServerError("HTTP 503 Busy", status_code=503), "retrying in 4 s (2/5): HTTP 503"),
        (1, IncompleteBodyError("short body"), "retrying in 4 s (1/5): short body"),
        (1, ConnectionRefused("refused"), "retrying in 4 s (1/2): refused"),
        (6, IncompleteBodyError("short body"), "retrying in 4 s (6/6): short body"),
        (1, IncompleteBodyError("x" * 80), "retrying in 4 s (1/5): " + "x" * 80),
        (1, IncompleteBodyError("x" * 81), "retrying in 4 s (1/5): " + "x" * 79 + "…"),
        (1, _mismatch(refetch=True), "retrying in 4 s (1/5): checksum mismatch"),
    ],
)
def test_the_retry_note_says_when_which_attempt_and_why(
    number: int, error: DownloadError, note: str
) -> None:
    assert retry_note(number, 5, error, 4.2) == note
