"""The two tables that map HTTP statuses and requests/urllib3 failures onto the error tree:
every row gives its class, every message names the URL redacted, and Retry-After is kept where
waiting helps (429, 503)."""

from __future__ import annotations

import errno
import socket
import ssl

import pytest
import requests
import urllib3

from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    ConnectionRefused,
    DownloadError,
    HostNotFoundError,
    HTTPStatusError,
    NetworkError,
    RateLimitError,
    RedirectError,
    ServerError,
    StallError,
    TLSError,
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


# -- failures to connect, in plain words -------------------------------------------------------


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound once, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_real_refused_connection_names_the_address() -> None:
    port = closed_port()
    url = f"http://user:pw@127.0.0.1:{port}/song.flac?token=SECRET123"
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        requests.get(url, timeout=5)
    error = map_request_error(caught.value, url, source="http")
    assert type(error) is ConnectionRefused
    assert str(error) == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert error.url == f"http://127.0.0.1:{port}/song.flac?token=***"
    assert error.source == "http"


def _wrapped(cause: BaseException) -> BaseException:
    """``cause`` as urllib3 hands it to requests: a pool error whose ``reason`` it is."""
    pool_error = urllib3.exceptions.MaxRetryError(None, "/song.flac", reason=cause)  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(pool_error)


def _cert_error(verify_message: str | None, reason: str | None) -> ssl.SSLCertVerificationError:
    """A verification failure as OpenSSL reports it; either field may be missing (None)."""
    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_message = verify_message  # type: ignore[assignment]
    error.reason = reason  # type: ignore[assignment]
    return error


def _tls_error(reason: str | None) -> ssl.SSLError:
    error = ssl.SSLError(1, "[SSL] Wrong Version Number")
    error.reason = reason  # type: ignore[assignment]
    return error


@pytest.mark.parametrize(
    ("cause", "url", "kind", "message"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "https://h.example/x",
         ConnectionRefused, "cannot connect to h.example:443: connection refused"),
        (ConnectionRefusedError(111, "Connection refused"), "http://h.example/x",
         ConnectionRefused, "cannot connect to h.example:80: connection refused"),
        (ConnectionRefusedError(111, "Connection refused"), "http://h.example:99999/x",
         ConnectionRefused, "cannot connect to h.example: connection refused"),  # a bad port
        (ConnectionRefusedError(111, "Connection refused"), None,
         ConnectionRefused, "cannot connect to the server:80: connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "https://h.example/x",
         HostNotFoundError, "cannot resolve h.example: name or service not known"),
        (socket.gaierror("odd"), "https://h.example/x",
         HostNotFoundError, "cannot resolve h.example: no such host"),
        (urllib3.exceptions.NameResolutionError("h.example", None, socket.gaierror("x")),  # type: ignore[arg-type]
         "https://h.example/x", HostNotFoundError, "cannot resolve h.example: no such host"),
        (_cert_error("self-signed certificate", "CERTIFICATE_VERIFY_FAILED"), "https://h.example/",
         TLSError,
         "TLS failure with h.example:443: certificate verify failed: self-signed certificate"),
        (_cert_error(None, "CERTIFICATE_VERIFY_FAILED"), "https://h.example/",
         TLSError,
         "TLS failure with h.example:443: certificate verify failed: CERTIFICATE_VERIFY_FAILED"),
        (_cert_error(None, None), "https://h.example/",
         TLSError, "TLS failure with h.example:443: certificate verify failed"),
        (_tls_error("WRONG_VERSION_NUMBER"), "https://h.example/",
         TLSError, "TLS failure with h.example:443: wrong_version_number"),
        (_tls_error(None), "https://h.example/",
         TLSError, "TLS failure with h.example:443: [ssl] wrong version number"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "http://h.example/",
         ConnectionFailedError, "cannot connect to h.example:80: network unreachable"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "http://h.example/",
         ConnectionFailedError, "cannot connect to h.example:80: no route to host"),
    ],
)  # fmt: skip
def test_a_failure_to_connect_is_one_line_in_plain_words(
    cause: BaseException, url: str | None, kind: type[DownloadError], message: str
) -> None:
    error = map_request_error(_wrapped(cause), url, source="src")  # type: ignore[arg-type]
    assert type(error) is kind
    assert str(error) == message
    assert (error.url, error.source) == (url, "src")


def test_a_connect_timeout_says_where() -> None:
    error = map_request_error(requests.exceptions.ConnectTimeout("x"), "https://h.example/", "src")
    assert type(error) is ConnectionFailedError
    assert str(error) == "cannot connect to h.example:443: timed out"
    assert (error.url, error.source) == ("https://h.example/", "src")


def test_the_cause_is_found_behind_a_repeated_one_and_after_an_unrelated_one() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    unrelated = ValueError("something else")
    top = requests.exceptions.ConnectionError("failed", refused)
    top.__cause__ = unrelated
    top.__context__ = unrelated  # the same object twice, before the real cause
    error = map_request_error(top, "http://h.example/")
    assert str(error) == "cannot connect to h.example:80: connection refused"


def test_an_error_that_causes_itself_is_a_plain_network_error() -> None:
    looped = requests.exceptions.ConnectionError("looped")
    looped.__cause__ = looped
    looped.__context__ = looped
    error = map_request_error(looped, "http://u:pw@h.example/a", source="http")
    assert type(error) is ConnectionFailedError
    assert str(error) == "network error talking to http://h.example/a: looped"
    assert (error.url, error.source) == ("http://h.example/a", "http")


def test_a_mapped_error_quotes_the_redacted_url_and_the_cause() -> None:
    url = "http://u:pw@h.example/a"
    error = map_request_error(requests.exceptions.ContentDecodingError("bad gzip"), url, "http")
    assert str(error) == "cannot decode the body from http://h.example/a: bad gzip"
    invalid = map_request_error(requests.exceptions.InvalidURL("bad"), URL)
    assert isinstance(invalid, ConfigError)
    assert invalid.value == SHOWN


def test_status_messages_name_the_url_the_host_and_a_missing_reason() -> None:
    assert str(error_for_status(response(404))) == f"HTTP 404 Some Reason: {SHOWN} does not exist"
    limited = response(429)
    limited.reason = None  # type: ignore[assignment]
    assert str(error_for_status(limited)) == "HTTP 429: rate limited by 127.0.0.1"
