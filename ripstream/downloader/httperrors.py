"""HTTP statuses and requests/urllib3 failures mapped onto the exception tree, as two tables.

:func:`error_for_status` reads :data:`STATUS_ERRORS`; :func:`map_request_error` walks
:data:`REQUEST_ERRORS` in order (most specific first, as httpx's ``HTTPCORE_EXC_MAP``). Every
message names the URL redacted, and urllib3's own text, which repeats the raw URL, is redacted
too.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3

from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    ContentNotFoundError,
    DownloadError,
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


def map_request_error(exc: Exception, url: str | None, source: str | None = None) -> DownloadError:
    """The typed error for a requests/urllib3/OS failure (the caller raises it ``from exc``)."""
    if isinstance(exc, DownloadError):
        return exc
    safe = redact_url(url)
    error: DownloadError
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
