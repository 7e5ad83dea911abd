"""HTTP statuses and requests/urllib3 failures mapped onto the exception tree, as two tables.

:func:`error_for_status` reads :data:`STATUS_ERRORS`; :func:`map_request_error` walks
:data:`REQUEST_ERRORS` in order (most specific first, as httpx's ``HTTPCORE_EXC_MAP``). Every
message names the URL redacted, and urllib3's own text, which repeats the raw URL, is redacted
too.
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    ConnectionRefused,
    ContentNotFoundError,
    DownloadError,
    HostNotFoundError,
    HTTPStatusError,
    IncompleteBodyError,
    RateLimitError,
    RedirectError,
    ResponseMismatchError,
    ServerError,
    StallError,
    TLSError,
)
from ripstream.downloader.retry import parse_retry_after
from ripstream.downloader.urls import redact_text, redact_url

__all__ = [
    "REQUEST_ERRORS",
    "STATUS_CLASSES",
    "STATUS_ERRORS",
    "error_for_status",
    "map_request_error",
    "plain_connect_error",
]

#: Status code -> (error class, message template, whether Retry-After is kept).
STATUS_ERRORS: dict[int, tuple[type[DownloadError], str, bool]] = {
    401: (AuthenticationError, "{reason}: access denied to {url}", False),
    403: (AuthenticationError, "{reason}: access denied to {url}", False),
    404: (ContentNotFoundError, "{reason}: {url} does not exist", False),
    410: (ContentNotFoundError, "{reason}: {url} does not exist", False),
    429: (RateLimitError, "{reason}: rate limited by {host}", True),
    408: (ServerError, "{reason} from {url}", True),
    425: (ServerError, "{reason} from {url}", True),
}
#: Status classes for codes not in :data:`STATUS_ERRORS`; anything else is HTTPStatusError.
STATUS_CLASSES: tuple[tuple[range, type[DownloadError], str, bool], ...] = (
    (range(500, 600), ServerError, "{reason} from {url}", True),
    (
        range(300, 400),
        RedirectError,
        "{reason}: redirect without a usable Location from {url}",
        False,
    ),
)
_OTHER_STATUS = (HTTPStatusError, "{reason} for {url}", False)

#: requests/urllib3/OS exception classes -> (error class, message), first match wins.
REQUEST_ERRORS: tuple[
    tuple[type[BaseException] | tuple[type[BaseException], ...], Any, str], ...
] = (
    (requests.exceptions.SSLError, TLSError, "TLS verification failed for {url}: {exc}"),
    (
        requests.exceptions.TooManyRedirects,
        RedirectError,
        "too many redirects (or a redirect loop) from {url}",
    ),
    (
        requests.exceptions.InvalidSchema,
        RedirectError,
        "{url} redirected to a scheme other than http(s): {exc}",
    ),
    ((requests.exceptions.InvalidURL, requests.exceptions.MissingSchema), ConfigError, ""),
    (requests.exceptions.ConnectTimeout, ConnectionFailedError, "timed out connecting to {url}"),
    (
        (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError),
        StallError,
        "no data from {url} within the read timeout",
    ),
    (
        (requests.exceptions.ContentDecodingError, urllib3.exceptions.DecodeError),
        ResponseMismatchError,
        "cannot decode the body from {url}: {exc}",
    ),
    (
        (
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.IncompleteRead,
            urllib3.exceptions.ProtocolError,
        ),
        IncompleteBodyError,
        "the connection to {url} broke mid-body: {exc}",
    ),
)


def error_for_status(response: requests.Response, source: str | None = None) -> DownloadError:
    """The typed error for an HTTP error status."""
    status = response.status_code
    url = redact_url(response.url)
    reason = f"HTTP {status} {response.reason or ''}".strip()
    kind, text, keep_retry_after = STATUS_ERRORS.get(status) or next(
        ((kind, text, keep) for codes, kind, text, keep in STATUS_CLASSES if status in codes),
        _OTHER_STATUS,
    )
    message = text.format(reason=reason, url=url, host=urlsplit(url or "").hostname)
    fields: dict[str, Any] = {"url": url, "source": source, "status_code": status}
    if keep_retry_after:
        fields["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
    return kind(message, **fields)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps: ``__cause__``, ``__context__``, urllib3's ``reason`` and
    requests' first argument, breadth first, each once."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < 32:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        inner += [arg for arg in current.args if isinstance(arg, BaseException)]
        todo += [e for e in inner if isinstance(e, BaseException)]


def _address(url: str | None) -> str:
    parts = urlsplit(url or "")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = None
    host = parts.hostname or "the server"
    return f"{host}:{port}" if port else host


_UNREACHABLE = {errno.ENETUNREACH: "network unreachable", errno.EHOSTUNREACH: "no route to host"}


def _plain(cause: BaseException, url: str | None) -> tuple[type[DownloadError], str] | None:
    """The error class and plain words for one cause of a failure to connect, if it is one."""
    where = _address(url)
    if isinstance(cause, socket.gaierror | urllib3.exceptions.NameResolutionError):
        why = (cause.strerror if isinstance(cause, OSError) else None) or "no such host"
        return HostNotFoundError, f"cannot resolve {urlsplit(url or '').hostname}: {why.lower()}"
    if isinstance(cause, ConnectionRefusedError):
        return ConnectionRefused, f"cannot connect to {where}: connection refused"
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or cause.reason or "certificate verify failed"
        return TLSError, f"TLS failure with {where}: {why}"
    if isinstance(cause, ssl.SSLError):
        return TLSError, f"TLS failure with {where}: {str(cause.reason or cause).lower()}"
    if isinstance(cause, OSError) and cause.errno in _UNREACHABLE:
        return ConnectionFailedError, f"cannot connect to {where}: {_UNREACHABLE[cause.errno]}"
    return None


def plain_connect_error(
    exc: BaseException, url: str | None, source: str | None = None
) -> DownloadError | None:
    """A one-line error in plain words for a failure to connect at all (``cannot connect to
    127.0.0.1:8799: connection refused``), or ``None`` when ``exc`` is something else."""
    safe = redact_url(url)
    for cause in _causes(exc):
        found = _plain(cause, url)
        if found is not None:
            kind, message = found
            return kind(message, url=safe, source=source)
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return ConnectionFailedError(
            f"cannot connect to {_address(url)}: timed out", url=safe, source=source
        )
    return None


def map_request_error(exc: Exception, url: str | None, source: str | None = None) -> DownloadError:
    """The typed error for a requests/urllib3/OS failure (the caller raises it ``from exc``)."""
    if isinstance(exc, DownloadError):
        return exc
    safe = redact_url(url)
    error: DownloadError | None = plain_connect_error(exc, url, source)
    if error is not None:
        error.message = redact_text(error.message)
        error.args = (error.message,)
        return error
    for classes, kind, text in REQUEST_ERRORS:
        if isinstance(exc, classes):
            if kind is ConfigError:
                error = ConfigError(f"invalid URL {safe!r}: {exc}", field="url", value=safe)
            else:
                error = kind(text.format(url=safe, exc=exc), url=safe, source=source)
            break
    else:
        error = ConnectionFailedError(
            f"network error talking to {safe}: {exc}", url=safe, source=source
        )
    # urllib3's messages repeat the raw URL: never let a token through them
    error.message = redact_text(error.message)
    error.args = (error.message,)
    return error
