"""URLs in one place: validation of what users and sources hand in, and redaction for output.

Every URL that reaches a result, a log line, an error message or a file RipStream writes goes
through :func:`redact_url` (or :func:`redact_text` for free text that may quote one): user
info is dropped and the values of secret-looking query parameters become ``***``.
"""

from __future__ import annotations

import functools
import logging
import re
import reprlib
import threading
from collections.abc import Iterable
from typing import Any, overload
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ripstream.downloader.exceptions import ConfigError

__all__ = [
    "PROXY_SCHEMES",
    "SECRET_PARAMS",
    "RedactingFilter",
    "check_proxy",
    "install_log_redaction",
    "is_secret_param",
    "redact_text",
    "redact_url",
    "validate_http_url",
]

#: Query parameters whose values are secrets (Subsonic's ``t``/``s``/``p``, tokens, signatures).
SECRET_PARAMS = frozenset(
    {
        "t",
        "s",
        "p",
        "token",
        "apikey",
        "api_key",
        "key",
        "password",
        "passwd",
        "pass",
        "pwd",
        "salt",
        "secret",
        "signature",
        "sig",
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "auth",
        "access_token",
        "session",
        "sessionid",
        "jwt",
        "code",
    }
)
#: Parameter names that look secret wherever they appear in the name (``client_secret``).
_SECRET_NAME = re.compile(r"(?i)token|secret|passw|signature|api[-_]?key|access[-_]?key|credential")
#: Header names whose values are secrets when quoted in text (``Authorization: Basic ...``).
_SECRET_HEADER = re.compile(
    r"""(?ix)
    (["']?\b(?:authorization|proxy-authorization|cookie|set-cookie|x-api-key
       |[\w-]*(?:token|secret|passw|api-key|apikey)[\w-]*)["']?\s*:\s*["']?)
    ((?:(?:basic|bearer|digest|token)\s+)?[^"'\s,}]+)
    """
)
_PARAM_IN_TEXT = re.compile(r"([?&;]([\w.\-\[\]]+)=)([^&\s'\"<>;)#]*)")
_USERINFO = re.compile(r"//[^/@\s]*@")
_SPACE = re.compile(r"\s")
#: Secret values shorter than this are not searched for in free text (they would hide words).
MIN_SECRET_LENGTH = 4
_HIDDEN = "***"
_MARK = "ripstream_redacted"


def is_secret_param(name: str) -> bool:
    """Whether the query parameter ``name`` carries a secret (its value is never shown)."""
    return name.lower() in SECRET_PARAMS or _SECRET_NAME.search(name) is not None


@overload
def redact_url(url: str) -> str: ...
@overload
def redact_url(url: None) -> None: ...
def redact_url(url: str | None) -> str | None:
    """``url`` without user info and with secret-looking query values replaced by ``***``."""
    if not url:
        return url
    return _redacted(url)


@functools.lru_cache(maxsize=4096)
def _redacted(url: str) -> str:
    """:func:`redact_url`, remembered: a pure function of the URL that each download asks
    about about ten times (its result, errors, events, logs)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return redact_text(_USERINFO.sub("//", url))  # unparseable: still hide secrets
    netloc = parts.hostname or ""
    if port:
        netloc = f"{netloc}:{port}"
    query = "&".join(
        f"{key}={_HIDDEN}" if sep and is_secret_param(key) else f"{key}{sep}{value}"
        for key, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _hide_param(match: re.Match[str]) -> str:
    return match.group(1) + _HIDDEN if is_secret_param(match.group(2)) else match.group(0)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with user info, secret-looking query values (``?token=...``), the values of
    auth headers quoted in it and each of ``secrets`` (configured header values, passwords)
    hidden."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: no half-hidden ones
        if len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, _HIDDEN)
    text = _PARAM_IN_TEXT.sub(_hide_param, _USERINFO.sub("//", text))
    return _SECRET_HEADER.sub(lambda m: m.group(1) + _HIDDEN, text)


class RedactingFilter(logging.Filter):
    """A logging filter that passes every record, its message rewritten by
    :func:`redact_text` (user info, secret query values, auth header values, ``secrets``).

    Installed by :func:`install_log_redaction`; the set of secrets only grows. Thread-safe.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Hide ``secrets`` too from now on (values shorter than four characters are ignored)."""
        wanted = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        with self._lock:
            self._secrets = self._secrets | wanted

    @property
    def secrets(self) -> frozenset[str]:
        """The values this filter hides besides URL secrets."""
        return self._secrets

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, _MARK, False):
            return True  # the same record passes a logger filter and a handler filter
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed %-format: show its parts, redacted
            message = f"{record.msg!r} % {record.args!r}"
        record.msg, record.args = redact_text(message, self._secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, self._secrets)
        setattr(record, _MARK, True)  # a record may pass a logger's filter and a handler's
        return True


#: The loggers whose records are redacted: the framework's, and its HTTP stack's, whose DEBUG
#: lines (``-vv``) quote request targets with their query strings.
REDACTED_LOGGERS = ("ripstream", "urllib3", "requests")


def install_log_redaction(
    secrets: Iterable[str] = (), loggers: Iterable[str] = REDACTED_LOGGERS
) -> RedactingFilter:
    """Attach one :class:`RedactingFilter` to each of ``loggers`` and every logger below them
    that exists now (a logger's filters see only its own records), adding ``secrets`` to it.

    Idempotent: a logger that has the filter keeps it, and the one filter is shared.

    :returns: the filter, e.g. to attach it to a handler as well.
    """
    names = tuple(loggers)
    existing = [
        name
        for name in list(logging.root.manager.loggerDict)
        if any(name == root or name.startswith(root + ".") for root in names)
    ]
    found: RedactingFilter | None = None
    for name in (*names, *existing):
        for attached in logging.getLogger(name).filters:
            if isinstance(attached, RedactingFilter):
                found = attached
                break
        if found is not None:
            break
    shared = found or RedactingFilter()
    shared.add_secrets(secrets)
    for name in (*names, *existing):
        log = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in log.filters):
            log.addFilter(shared)
    return shared


@functools.lru_cache(maxsize=4096)
def split_http_url(url: str) -> SplitResult:
    """``url`` split, checked to be a well-formed http(s) URL with a host. Remembered: a
    download asks about its URL several times, and the answer depends on the URL alone.

    :raises ConfigError: naming what is wrong (the URL in the message is redacted).
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        shown = redact_url(url)
        raise ConfigError(f"malformed URL {shown!r}: {exc}", field="url", value=shown) from exc
    if parts.scheme.lower() not in ("http", "https"):
        shown = redact_url(url)
        scheme = parts.scheme or "(none)"
        raise ConfigError(
            f"unsupported URL scheme {scheme!r} in {shown!r}: use http:// or https://",
            field="url",
            value=shown,
        )
    if not parts.hostname:
        shown = redact_url(url)
        raise ConfigError(f"malformed URL {shown!r}: no host", field="url", value=shown)
    if _SPACE.search(url):
        shown = redact_url(url)
        raise ConfigError(f"malformed URL {shown!r}: it contains spaces", field="url", value=shown)
    return parts


def validate_http_url(url: str) -> str:
    """Return ``url`` stripped, or raise a :class:`ConfigError` naming what is wrong with it."""
    text = url.strip()
    split_http_url(text)
    return text


#: The proxy URL schemes requests takes (socks through PySocks, an install requirement).
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h", "socks4", "socks4a")


def check_proxy(proxy: Any) -> None:
    """Refuse a proxy that is not ``SCHEME://HOST[:PORT]`` with a scheme of
    :data:`PROXY_SCHEMES`; the message shows it without its credentials.

    :raises ConfigError: naming the ``proxy`` field.
    """
    try:
        parts = urlsplit(proxy) if isinstance(proxy, str) else None
        # .port raises ValueError for a port that is not a number
        valid = parts is not None and parts.scheme.lower() in PROXY_SCHEMES
        valid = valid and parts is not None and bool(parts.hostname) and parts.port != 0
    except ValueError:
        valid = False
    if not valid:
        shown = _shown_proxy(proxy) if isinstance(proxy, str) else reprlib.repr(proxy)
        raise ConfigError(
            f"proxy wants http://, https://, socks5:// or socks5h://HOST:PORT, got {shown!r}",
            field="proxy",
            value=shown,
        )


def _shown_proxy(proxy: str) -> str:
    """A proxy URL, however malformed (``user:password@host:3128`` without a scheme), with
    anything before an ``@`` hidden."""
    scheme, separator, rest = proxy.rpartition("://")
    if "@" in rest:
        rest = f"{_HIDDEN}@{rest.rpartition('@')[2]}"
    return redact_text(f"{scheme}{separator}{rest}")
