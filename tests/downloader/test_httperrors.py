"""The two tables that map HTTP statuses and requests/urllib3 failures onto the error tree:
every row gives its class, every message names the URL redacted, and Retry-After is kept where
waiting helps (429, 503)."""

from __future__ import annotations

import pytest
import requests
import urllib3

from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    DownloadError,
    HTTPStatusError,
    NetworkError,
    RateLimitError,
    RedirectError,
    ServerError,
    StallError,
)
from ripstream.downloader.httperrors import (
    REQUEST_ERRORS,
    STATUS_ERRORS,
    error_for_status,
    map_request_error,
)

URL = "http://user:pw@127.0.0.1:8080/song.flac?token=SECRET123"
SHOWN = "http://127.0.0.1:8080/song.flac?token=***"


def response(status: int, headers: dict[str, str] | None = None) -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer.reason = "Some Reason"
    answer.url = URL
    answer.headers.update(headers or {})
    return answer


def assert_redacted(error: DownloadError) -> None:
    assert "SECRET123" not in str(error)
    assert "pw@" not in str(error)
    assert error.url == SHOWN


@pytest.mark.parametrize(("status", "row"), sorted(STATUS_ERRORS.items()))
def test_each_status_row_maps_to_its_class(
    status: int, row: tuple[type[DownloadError], str, bool]
) -> None:
    kind, _, keeps_retry_after = row
    error = error_for_status(response(status, {"Retry-After": "7"}), source="http")
    assert type(error) is kind
    assert error.status_code == status  # type: ignore[attr-defined]
    assert error.source == "http"
    assert f"HTTP {status} Some Reason" in str(error)
    assert_redacted(error)
    assert getattr(error, "retry_after", None) == (7.0 if keeps_retry_after else None)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, ServerError),
        (502, ServerError),
        (599, ServerError),
        (300, RedirectError),
        (399, RedirectError),
        (400, HTTPStatusError),
        (418, HTTPStatusError),
        (451, HTTPStatusError),
    ],
)
def test_status_classes_cover_the_rest(status: int, kind: type[DownloadError]) -> None:
    error = error_for_status(response(status))
    assert type(error) is kind
    assert_redacted(error)


@pytest.mark.parametrize(("status", "kind"), [(429, RateLimitError), (503, ServerError)])
def test_retry_after_is_kept_for_429_and_503(status: int, kind: type[ServerError]) -> None:
    error = error_for_status(response(status, {"Retry-After": "120"}))
    assert isinstance(error, kind)
    assert error.retry_after == 120.0
    assert error.retryable
    without = error_for_status(response(status))
    assert isinstance(without, ServerError)
    assert without.retry_after is None


def test_a_401_keeps_no_retry_after_and_is_not_retried() -> None:
    error = error_for_status(response(401, {"Retry-After": "5"}))
    assert isinstance(error, AuthenticationError)
    assert not hasattr(error, "retry_after")
    assert not error.retryable


def instances(
    classes: type[BaseException] | tuple[type[BaseException], ...],
) -> list[BaseException]:
    """One instance of each class, its message quoting the raw URL (as urllib3's do)."""
    kinds = classes if isinstance(classes, tuple) else (classes,)
    made: list[BaseException] = []
    for kind in kinds:
        if kind is urllib3.exceptions.ReadTimeoutError:
            made.append(kind(None, URL, f"Read timed out. ({URL})"))  # type: ignore[arg-type]
        elif kind is urllib3.exceptions.IncompleteRead:
            made.append(kind(10, 20))
        else:
            made.append(kind(f"failed for {URL}"))
    return made


@pytest.mark.parametrize(
    ("exc", "kind"),
    [(exc, kind) for classes, kind, _ in REQUEST_ERRORS for exc in instances(classes)],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.__name__,
)
def test_each_request_error_row_maps_to_its_class(
    exc: BaseException, kind: type[DownloadError]
) -> None:
    error = map_request_error(exc, URL, source="http")  # type: ignore[arg-type]
    assert type(error) is kind
    assert "SECRET123" not in str(error)
    assert "SECRET123" not in "".join(map(str, error.args))
    if kind is ConfigError:
        assert error.field == "url"  # type: ignore[attr-defined]
    else:
        assert error.url == SHOWN
        assert error.source == "http"


def test_the_first_matching_row_wins() -> None:
    # ConnectTimeout is also a ConnectionError and a Timeout: it is a connection failure,
    # not a stall; SSLError is also a ConnectionError: it is a TLS failure
    timeout = map_request_error(requests.exceptions.ConnectTimeout("x"), URL)
    assert type(timeout) is ConnectionFailedError
    stalled = map_request_error(requests.exceptions.ReadTimeout("x"), URL)
    assert type(stalled) is StallError


def test_anything_else_is_a_retryable_connection_failure() -> None:
    error = map_request_error(requests.exceptions.ConnectionError(f"refused: {URL}"), URL)
    assert type(error) is ConnectionFailedError
    assert error.retryable
    assert "SECRET123" not in str(error)
    assert isinstance(error, NetworkError)


def test_a_download_error_passes_through_unchanged() -> None:
    original = StallError("slow", url=SHOWN)
    assert map_request_error(original, URL) is original
