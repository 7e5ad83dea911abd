"""Retry policies on tenacity.

Which errors are retried is decided in one place: the ``retryable`` attribute of the
exception classes (see :mod:`ripstream.downloader.exceptions`). This module turns a
:class:`DownloadBehaviorSettings` into a ``tenacity.Retrying`` that waits by the configured
strategy, honours a server's ``Retry-After`` (capped), and ends with a typed error.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ripstream.downloader.config import DownloadBehaviorSettings, RetryStrategy
from ripstream.downloader.exceptions import (
    ChecksumError,
    DownloadError,
    RetryExhaustedError,
    ServerError,
)

# tenacity imports tornado when it is installed (dask brings it), and asyncio with it: about
# 50 ms of a cold start, for coroutine support a synchronous library never uses. Unless the
# process already has tornado (then nothing changes), tenacity is imported seeing none.
_HIDE_TORNADO = "tornado" not in sys.modules and "tenacity" not in sys.modules
if _HIDE_TORNADO:
    sys.modules["tornado"] = None  # type: ignore[assignment]
try:
    import tenacity
    from tenacity import RetryCallState
    from tenacity.wait import wait_base
finally:
    if _HIDE_TORNADO:
        del sys.modules["tornado"]

__all__ = [
    "backoff_wait",
    "call_with_retries",
    "is_refetch",
    "is_retryable",
    "parse_retry_after",
    "retry_note",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
#: the longest wait before a retry of an error with a ``retry_limit`` (a refused connection)
BOUNDED_RETRY_WAIT = 1.0


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date.

    :returns: a non-negative number of seconds, or ``None`` when absent or unparseable.
    """
    if not value:
        return None
    value = value.strip()
    # ASCII only: str.isdigit() also accepts "²" (latin-1 byte 0xB2), which float() refuses
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # asctime and "-0000" dates: HTTP dates are always GMT
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now())


def is_retryable(error: BaseException) -> bool:
    """Whether the retry loop may try again after ``error``."""
    return isinstance(error, DownloadError) and error.retryable


def is_refetch(error: BaseException | None) -> bool:
    """A first checksum mismatch: worth one whole fetch more, outside the retry budget."""
    return isinstance(error, ChecksumError) and error.refetch


class _Budget:
    """Attempts allowed: ``1 + max_retries``, plus one per checksum refetch (not counted)."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts

    def retry(self, error: BaseException) -> bool:
        if is_refetch(error):
            self.attempts += 1
            return True
        return is_retryable(error)

    def stop(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        limit = error.retry_limit if isinstance(error, DownloadError) else None
        if limit is not None and retry_state.attempt_number > limit:
            return True  # e.g. a refused connection: a short bounded retry, then give up
        return retry_state.attempt_number >= self.attempts


class _RetryAfter(wait_base):
    """The strategy's wait, unless the last error carried a ``Retry-After`` (then that, capped)."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        if is_refetch(error):
            return 0.0  # the server answered fine; the bytes were wrong: fetch again now
        if isinstance(error, ServerError) and error.retry_after is not None:
            return min(error.retry_after, self.cap)
        wait = float(self.fallback(retry_state))
        if isinstance(error, DownloadError) and error.retry_limit is not None:
            return min(wait, BOUNDED_RETRY_WAIT)  # a bounded retry is quick, or it is no use
        return wait


class _Capped(wait_base):
    def __init__(self, inner: wait_base, cap: float) -> None:
        self.inner = inner
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        return min(float(self.inner(retry_state)), self.cap)


class _FromCallable(wait_base):
    def __init__(self, function: Callable[[int], float]) -> None:
        self.function = function

    def __call__(self, retry_state: RetryCallState) -> float:
        return float(self.function(retry_state.attempt_number))


def backoff_wait(settings: DownloadBehaviorSettings) -> wait_base:
    """The tenacity wait for ``settings``: strategy, jitter, cap, and ``Retry-After``."""
    delay, cap = settings.retry_delay, settings.max_retry_delay
    strategy = settings.retry_strategy
    base: wait_base
    if strategy is RetryStrategy.FIXED:
        base = tenacity.wait_fixed(delay)
    elif strategy is RetryStrategy.LINEAR:
        base = tenacity.wait_incrementing(start=delay, increment=delay)
    elif strategy is RetryStrategy.EXPONENTIAL:
        base = tenacity.wait_exponential(multiplier=delay, max=cap) + tenacity.wait_random(
            0, settings.retry_jitter * delay
        )
    elif isinstance(strategy, wait_base):
        base = strategy
    else:
        base = _FromCallable(strategy)
    return _RetryAfter(_Capped(base, cap), settings.max_retry_after)


def retry_note(number: int, retries: int, error: DownloadError, wait: float) -> str:
    """What a waiting retry shows: ``retrying in 4 s (2/5): HTTP 503``."""
    status = getattr(error, "status_code", None)
    why = f"HTTP {status}" if status else str(error)
    if len(why) > 80:
        why = why[:79] + "…"
    limit = error.retry_limit if error.retry_limit is not None else retries
    return f"retrying in {wait:.0f} s ({number}/{max(limit, number)}): {why}"


def call_with_retries(
    function: Callable[[], T],
    settings: DownloadBehaviorSettings,
    *,
    sleep: Callable[[float], Any] = time.sleep,
    on_retry: Callable[[int, DownloadError, float], None] | None = None,
    describe: str = "download",
) -> T:
    """Call ``function`` until it succeeds, a permanent error occurs, or retries run out.

    :param on_retry: called as ``(attempt, error, wait_seconds)`` before each wait.
    :raises DownloadError: a permanent error at once, as raised.
    :raises RetryExhaustedError: when every attempt failed with a retryable error; its
        ``last_error`` is the final attempt's error and it is chained ``from`` it.
    """

    def before_sleep(state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = state.upcoming_sleep
        assert isinstance(error, DownloadError)
        logger.info(
            "%s: attempt %d failed (%s); retrying in %.2fs",
            describe,
            state.attempt_number,
            error,
            wait,
        )
        if on_retry is not None:
            on_retry(state.attempt_number, error, wait)

    budget = _Budget(settings.max_retries + 1)
    retrying = tenacity.Retrying(
        stop=budget.stop,
        wait=backoff_wait(settings),
        retry=tenacity.retry_if_exception(budget.retry),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(function)
    except DownloadError as exc:
        attempts = retrying.statistics.get("attempt_number", settings.max_retries + 1)
        if not exc.retryable or attempts <= 1 or is_refetch(exc):
            raise  # permanent, or retries were turned off: the error itself says it best
        raise RetryExhaustedError(
            f"{describe} failed after {attempts} attempts: {exc}",
            url=exc.url,
            source=exc.source,
            retry_count=attempts - 1,
            last_error=exc,
        ) from exc
