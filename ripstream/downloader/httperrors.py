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
    "SOCKS_REPLIES",
    "STATUS_CLASSES",
    "STATUS_ERRORS",
    "error_for_status",
    "map_request_error",
    "plain_connect_error",
    "proxy_error",
]

#: Status code -> (error class, message template, whether Retry-After is kept).
STATUS_ERRORS: dict[int, tuple[type[DownloadError], str, bool]] = {
    401: (AuthenticationError, "{reason}: access denied to {url}", False),
    403: (AuthenticationError, "{reason}: access denied to {url}", False),
    404: (ContentNotFoundError, "{reason}: {url} does not exist", False),
    410: (ContentNotFoundError, "{reason}: {url} does not exist", False),
    407: (AuthenticationError, "{reason}: the proxy refused its credentials for {url}", False),
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


def _plain(
    cause: BaseException, url: str | None, label: str = ""
) -> tuple[type[DownloadError], str] | None:
    """The error class and plain words for one cause of a failure to connect, if it is one
    (``label`` goes before the address: ``"the proxy "``)."""
    where = label + _address(url)
    if isinstance(cause, socket.gaierror | urllib3.exceptions.NameResolutionError):
        why = (cause.strerror if isinstance(cause, OSError) else None) or "no such host"
        host = urlsplit(url or "").hostname
        return HostNotFoundError, f"cannot resolve {label}{host}: {why.lower()}"
    if isinstance(cause, ConnectionRefusedError):
        return ConnectionRefused, f"cannot connect to {where}: connection refused"
    if isinstance(cause, ssl.SSLCertVerificationError):
        why = cause.verify_message or cause.reason
        why = f"certificate verify failed: {why}" if why else "certificate verify failed"
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


#: SOCKS5 replies (RFC 1928, as PySocks words them: ``0x05: Connection refused``) -> the
#: error class; any other reply is a ConnectionFailedError.
SOCKS_REPLIES: dict[str, type[DownloadError]] = {
    "0x02": AuthenticationError,  # not allowed by the proxy's rules
    "0x04": HostNotFoundError,  # host unreachable: the proxy could not resolve or route it
    "0x05": ConnectionRefused,
}
_SOCKS_ANSWERS = ("GeneralProxyError", "SOCKS5Error", "SOCKS5AuthError", "SOCKS4Error")


def _is_proxy_failure(cause: BaseException) -> bool:
    proxy_errors = requests.exceptions.ProxyError | urllib3.exceptions.ProxyError
    return isinstance(cause, proxy_errors) or type(cause).__module__ == "socks"  # PySocks


def _proxy_url(url: str | None, proxy: str | None) -> str:
    if not proxy:  # a proxy from the environment (HTTPS_PROXY and the like)
        proxy = next(iter(requests.utils.get_environ_proxies(url or "").values()), None)
    return proxy or "//?"


def _unreached_proxy(causes: list[BaseException], via: str) -> tuple[type[DownloadError], str]:
    """The proxy did not answer: the socket errors are about the proxy itself."""
    for cause in causes:
        found = _plain(cause, via, "the proxy ")
        if found is not None:
            return found
    # NewConnectionError is a ConnectTimeoutError too, whatever the reason was
    timeouts = TimeoutError | urllib3.exceptions.ConnectTimeoutError
    new_connection = urllib3.exceptions.NewConnectionError
    timed_out = any(isinstance(c, timeouts) and not isinstance(c, new_connection) for c in causes)
    why = ": timed out" if timed_out else ""
    return ConnectionFailedError, f"cannot connect to the proxy {_address(via)}{why}"


def _proxy_answer(
    answered: list[BaseException], tunnel: str, via: str, target: str
) -> tuple[type[DownloadError], str]:
    """The proxy answered with an error: a SOCKS reply, or a status to CONNECT."""
    where = f"the proxy {_address(via)}"
    if any(type(c).__name__ == "SOCKS5AuthError" for c in answered) or ": 407 " in tunnel:
        has_user = bool(urlsplit(via).username)
        why = "refused its credentials" if has_user else "wants a user name and password"
        return AuthenticationError, f"{where} {why}"
    if tunnel:
        status = tunnel.partition(": ")[2]
        return ConnectionFailedError, f"{where} cannot connect to {target}: HTTP {status}"
    code, _, words = str(answered[-1]).rpartition(": ")  # the innermost: "0x04: Host unreachable"
    kind = SOCKS_REPLIES.get(code.rpartition(" ")[2], ConnectionFailedError)
    return kind, f"{where} cannot connect to {target}: {words.lower()}"


def proxy_error(
    exc: BaseException, url: str | None, source: str | None = None, proxy: str | None = None
) -> DownloadError | None:
    """A one-line error naming the proxy when the failure was at the proxy: it could not be
    reached (``cannot connect to the proxy 127.0.0.1:1080: connection refused``), it refused
    the credentials, or it could not reach the server; ``None`` when the proxy was not at
    fault (or was not used)."""
    causes = list(_causes(exc))
    if not any(_is_proxy_failure(cause) for cause in causes):
        return None
    via = _proxy_url(url, proxy)
    answered = [c for c in causes if type(c).__name__ in _SOCKS_ANSWERS]
    tunnel = next((str(c) for c in causes if str(c).startswith("Tunnel connection failed")), "")
    if answered or tunnel:
        kind, message = _proxy_answer(answered, tunnel, via, _address(url))
    else:
        kind, message = _unreached_proxy(causes, via)
    return kind(message, url=redact_url(url), source=source)


def map_request_error(
    exc: Exception, url: str | None, source: str | None = None, proxy: str | None = None
) -> DownloadError:
    """The typed error for a requests/urllib3/OS failure (the caller raises it ``from exc``).

    :param proxy: the proxy the request went through, named when the failure was its.
    """
    if isinstance(exc, DownloadError):
        return exc
    safe = redact_url(url)
    error: DownloadError | None = proxy_error(exc, url, source, proxy) or plain_connect_error(
        exc, url, source
    )
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
