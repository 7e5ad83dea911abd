"""The exception tree: relations, retry flags, keyword-only fields, pickling."""

from __future__ import annotations

import copy
import pickle

import pytest

from ripstream.downloader import exceptions as exc_module
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ChecksumError,
    ConfigError,
    ConnectionFailedError,
    ConnectionRefused,
    ContentNotFoundError,
    DownloadCancelledError,
    DownloadError,
    HostNotFoundError,
    HTTPStatusError,
    IncompleteBodyError,
    NetworkError,
    QueueFullError,
    RateLimitError,
    RedirectError,
    ResponseMismatchError,
    RetryExhaustedError,
    ServerError,
    SourceError,
    StallError,
    StorageError,
    TargetExistsError,
    TaskStateError,
    TLSError,
    TooLargeError,
)

# (class, direct parent in the documented tree)
TREE: list[tuple[type[DownloadError], type[Exception]]] = [
    (ConfigError, DownloadError),
    (NetworkError, DownloadError),
    (ConnectionFailedError, NetworkError),
    (ConnectionRefused, ConnectionFailedError),
    (HostNotFoundError, ConnectionFailedError),
    (StallError, NetworkError),
    (IncompleteBodyError, NetworkError),
    (ServerError, NetworkError),
    (RateLimitError, ServerError),
    (ResponseMismatchError, NetworkError),
    (HTTPStatusError, NetworkError),
    (ContentNotFoundError, HTTPStatusError),
    (RedirectError, NetworkError),
    (TLSError, NetworkError),
    (AuthenticationError, DownloadError),
    (ChecksumError, DownloadError),
    (TooLargeError, DownloadError),
    (StorageError, DownloadError),
    (TargetExistsError, StorageError),
    (RetryExhaustedError, DownloadError),
    (DownloadCancelledError, DownloadError),
    (QueueFullError, DownloadError),
    (TaskStateError, DownloadError),
    (SourceError, DownloadError),
]

RETRYABLE = {
    ConnectionFailedError,
    ConnectionRefused,
    StallError,
    IncompleteBodyError,
    ServerError,
    RateLimitError,
    ResponseMismatchError,
}


def test_tree_matches_the_documented_shape() -> None:
    for cls, parent in TREE:
        assert cls.__bases__[0] is parent, cls
        assert issubclass(cls, DownloadError)
    assert issubclass(DownloadError, Exception)
    # a ConfigError is also a ValueError, so plain ``except ValueError`` code catches it
    assert issubclass(ConfigError, ValueError)
    # the tree lists every exception the module exports
    helpers = {"error_from_dict", "error_to_dict"}
    names = {cls.__name__ for cls, _ in TREE} | {"DownloadError"} | helpers
    assert names == set(exc_module.__all__)


@pytest.mark.parametrize("cls", [cls for cls, _ in TREE] + [DownloadError])
def test_retryable_flag_is_set_exactly_for_transient_errors(cls: type[DownloadError]) -> None:
    assert cls.retryable is (cls in RETRYABLE)


def test_authentication_and_permanent_http_errors_are_not_retried() -> None:
    # the ones a user would be surprised to see retried
    for cls in (
        AuthenticationError,
        ContentNotFoundError,
        HTTPStatusError,
        TLSError,
        ChecksumError,
        RetryExhaustedError,
        DownloadCancelledError,
        ConfigError,
    ):
        assert cls.retryable is False, cls


def _samples() -> list[DownloadError]:
    last = ServerError(
        "HTTP 503 from example.com",
        url="https://example.com/a",
        source="http",
        status_code=503,
        retry_after=2.5,
    )
    return [
        DownloadError("plain", url="https://example.com/x", source="http"),
        ConfigError("timeout_seconds must be > 0, got -1", field="timeout_seconds", value=-1),
        NetworkError("boom", url="https://example.com/y", source="http", status_code=599),
        ConnectionFailedError("refused", url="https://h/z", status_code=None),
        StallError("stalled", url="https://h/s"),
        IncompleteBodyError("short body", url="https://h/i", expected=100, received=42),
        last,
        RateLimitError("HTTP 429", url="https://h/r", status_code=429, retry_after=30.0),
        ResponseMismatchError("wrong range", url="https://h/m", status_code=200),
        HTTPStatusError("HTTP 418", url="https://h/t", status_code=418),
        ContentNotFoundError("HTTP 404", url="https://h/n", status_code=404),
        TooLargeError("2 GiB is over the limit", url="https://h/big", limit=1024),
        RedirectError("too many redirects", url="https://h/loop"),
        TLSError("certificate verify failed", url="https://h/tls"),
        AuthenticationError("HTTP 401", url="https://h/auth", source="subsonic", status_code=401),
        ChecksumError(
            "digest mismatch",
            url="https://h/c",
            algorithm="sha256",
            expected="a" * 64,
            actual="b" * 64,
        ),
        StorageError("disk full", path="/tmp/out/x.mp3"),
        TargetExistsError("exists", path="/tmp/out/y.mp3"),
        RetryExhaustedError(
            "gave up after 4 attempts", url="https://example.com/a", retry_count=3, last_error=last
        ),
        DownloadCancelledError("cancelled", url="https://h/cancel"),
        QueueFullError("queue is full (10 unfinished tasks)", max_size=10),
        TaskStateError("no task abc", task_id="abc"),
        SourceError("no source claims ftp://x", url="ftp://x"),
    ]


def _fields(error: BaseException) -> dict[str, object]:
    data = dict(vars(error))
    last = data.get("last_error")
    if isinstance(last, BaseException):
        data["last_error"] = (type(last), _fields(last))
    return data


@pytest.mark.parametrize("error", _samples(), ids=lambda e: type(e).__name__)
def test_every_exception_pickles_with_its_fields(error: DownloadError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error) == error.message
    assert clone.args == error.args
    assert _fields(clone) == _fields(error)
    # copy goes through the same reduce protocol
    assert _fields(copy.copy(error)) == _fields(error)


def test_str_is_the_message_and_fields_are_reachable() -> None:
    error = RateLimitError(
        "HTTP 429 from api.example.com",
        url="https://api.example.com/t",
        source="svc",
        status_code=429,
        retry_after=12.0,
    )
    assert str(error) == "HTTP 429 from api.example.com"
    assert error.args == ("HTTP 429 from api.example.com",)
    assert (error.url, error.source, error.status_code, error.retry_after) == (
        "https://api.example.com/t",
        "svc",
        429,
        12.0,
    )

    body = IncompleteBodyError("short", expected=10, received=3)
    assert (body.expected, body.received, body.status_code, body.url) == (10, 3, None, None)

    checksum = ChecksumError("bad", algorithm="md5", expected="0" * 32, actual="f" * 32)
    assert (checksum.algorithm, checksum.expected, checksum.actual) == ("md5", "0" * 32, "f" * 32)


def test_retry_exhausted_pickles_its_last_error_with_fields() -> None:
    last = RateLimitError("HTTP 429", url="https://h/r", status_code=429, retry_after=7.0)
    error = RetryExhaustedError("gave up", retry_count=5, last_error=last)
    clone = pickle.loads(pickle.dumps(error))
    assert clone.retry_count == 5
    assert isinstance(clone.last_error, RateLimitError)
    assert clone.last_error.retry_after == 7.0
    assert clone.last_error.status_code == 429


@pytest.mark.parametrize(
    ("factory", "positional"),
    [
        (NetworkError, ("https://h/x",)),
        (NetworkError, (None, None, 404)),
        (ServerError, (None, None, 503, 5.0)),
        (AuthenticationError, ("https://h/a",)),
        (StorageError, (None, None, "/tmp/x")),
        (ConfigError, ("field",)),
        (TaskStateError, ("task",)),
    ],
)
def test_structured_fields_are_keyword_only(
    factory: type[DownloadError], positional: tuple[object, ...]
) -> None:
    with pytest.raises(TypeError):
        factory("message", *positional)


def test_required_fields_must_be_given() -> None:
    with pytest.raises(TypeError):
        QueueFullError("full")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RetryExhaustedError("gave up")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        ChecksumError("bad", expected="a", actual="b")  # type: ignore[call-arg]


def test_catching_the_base_catches_every_leaf() -> None:
    for error in _samples():
        with pytest.raises(DownloadError) as info:
            raise error
        assert info.value is error
