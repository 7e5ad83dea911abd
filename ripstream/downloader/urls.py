"""URLs in one place: validation of what users and sources hand in, and redaction for output.

Every URL that reaches a result, a log line, an error message or a file RipStream writes goes
through :func:`redact_url` (or :func:`redact_text` for free text that may quote one): user
info is dropped and the values of secret-looking query parameters become ``***``.
"""

from __future__ import annotations

import re
from typing import overload
from urllib.parse import SplitResult, urlsplit, urlunsplit

from ripstream.downloader.exceptions import ConfigError

__all__ = ["SECRET_PARAMS", "redact_text", "redact_url", "validate_http_url"]

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
        "salt",
        "signature",
        "sig",
        "x-amz-signature",
        "auth",
        "access_token",
    }
)
_SECRET_IN_TEXT = re.compile(
    r"(?i)([?&;](?:" + "|".join(sorted(map(re.escape, SECRET_PARAMS))) + r")=)[^&\s'\"<>;)]*"
)
_USERINFO = re.compile(r"//[^/@\s]*@")


@overload
def redact_url(url: str) -> str: ...
@overload
def redact_url(url: None) -> None: ...
def redact_url(url: str | None) -> str | None:
    """``url`` without user info and with secret-looking query values replaced by ``***``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return redact_text(_USERINFO.sub("//", url))  # unparseable: still hide secrets
    netloc = parts.hostname or ""
    if port:
        netloc = f"{netloc}:{port}"
    query = "&".join(
        f"{key}=***" if key.lower() in SECRET_PARAMS and sep else f"{key}{sep}{value}"
        for key, sep, value in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str) -> str:
    """``text`` with user info and secret-looking query values (``?token=...``) hidden."""
    return _SECRET_IN_TEXT.sub(r"\1***", _USERINFO.sub("//", text))


def split_http_url(url: str) -> SplitResult:
    """``url`` split, checked to be a well-formed http(s) URL with a host.

    :raises ConfigError: naming what is wrong (the URL in the message is redacted).
    """
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"malformed URL {shown!r}: {exc}", field="url", value=shown) from exc
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "(none)"
        raise ConfigError(
            f"unsupported URL scheme {scheme!r} in {shown!r}: use http:// or https://",
            field="url",
            value=shown,
        )
    if not parts.hostname:
        raise ConfigError(f"malformed URL {shown!r}: no host", field="url", value=shown)
    if any(ch.isspace() for ch in url):
        raise ConfigError(f"malformed URL {shown!r}: it contains spaces", field="url", value=shown)
    return parts


def validate_http_url(url: str) -> str:
    """Return ``url`` stripped, or raise a :class:`ConfigError` naming what is wrong with it."""
    text = url.strip()
    split_http_url(text)
    return text
