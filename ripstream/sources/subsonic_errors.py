"""What a Subsonic server's errors mean, in words a user understands, as typed exceptions.

Servers answer errors with HTTP 200 and ``status="failed"`` (some have said ``"fail"``) and a
numbered code. Each documented code gets a plain message (:data:`PLAIN_MESSAGES`) and a
RipStream exception (:func:`error_for_code`)::

    DownloadError
    ├── SubsonicAPIError            any other code, or an answer that is not Subsonic JSON
    ├── AuthenticationError
    │   └── SubsonicAuthError       40-44 (login), 50 (not allowed); .code
    │       └── DownloadsDisabledError  50 on download/stream: the admin disabled downloads
    ├── NetworkError
    │   ├── ContentNotFoundError    70
    │   └── ResponseMismatchError
    │       └── MediaMismatchError  an empty body, an error page, a transcode not asked for
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any, Final

from ripstream.downloader.plugin import (
    AuthenticationError,
    ContentNotFoundError,
    DownloadError,
    ResponseMismatchError,
    redact_text,
)

__all__ = [
    "PLAIN_MESSAGES",
    "SOURCE_NAME",
    "DownloadsDisabledError",
    "ErrorCode",
    "MediaMismatchError",
    "SubsonicAPIError",
    "SubsonicAuthError",
    "error_for_code",
    "error_in_document",
    "failure_of",
]

#: The ``source`` field of the errors the Subsonic modules raise.
SOURCE_NAME: Final = "subsonic"


class ErrorCode(enum.IntEnum):
    """The error codes of the Subsonic API and OpenSubsonic."""

    GENERIC = 0
    MISSING_PARAMETER = 10
    CLIENT_TOO_OLD = 20
    SERVER_TOO_OLD = 30
    WRONG_CREDENTIALS = 40
    TOKEN_UNSUPPORTED = 41
    MECHANISM_UNSUPPORTED = 42
    CONFLICTING_MECHANISMS = 43
    INVALID_API_KEY = 44
    NOT_AUTHORIZED = 50
    TRIAL_OVER = 60
    NOT_FOUND = 70


#: What each code means to a user.
PLAIN_MESSAGES: Final[Mapping[ErrorCode, str]] = {
    ErrorCode.GENERIC: "the server failed",
    ErrorCode.MISSING_PARAMETER: "a required parameter is missing",
    ErrorCode.CLIENT_TOO_OLD: "the server needs a newer protocol version than RipStream speaks",
    ErrorCode.SERVER_TOO_OLD: "the server is too old for RipStream's protocol version",
    ErrorCode.WRONG_CREDENTIALS: "wrong username or password",
    ErrorCode.TOKEN_UNSUPPORTED: (
        "this server cannot check token logins for this user (an LDAP account, or a server "
        "that does not keep passwords)"
    ),
    ErrorCode.MECHANISM_UNSUPPORTED: "this server does not accept this way of logging in",
    ErrorCode.CONFLICTING_MECHANISMS: (
        "conflicting logins were sent (an API key must come alone, without a username)"
    ),
    ErrorCode.INVALID_API_KEY: "the API key is not valid (mistyped, revoked, or another server's)",
    ErrorCode.NOT_AUTHORIZED: "this user is not allowed to do that",
    ErrorCode.TRIAL_OVER: "the server's trial period is over",
    ErrorCode.NOT_FOUND: "the item was not found on the server",
}
_DOWNLOADS_DISABLED: Final = "downloads are disabled on this server (or for this user)"
_MEDIA_METHODS: Final = frozenset({"download", "stream"})
_LOGIN_CODES: Final = frozenset(range(40, 45))


class SubsonicAPIError(DownloadError):
    """The server answered with an error code no more specific RipStream error covers, or
    with something that is not a Subsonic JSON response at all.

    :param message: what went wrong, naming the API method.
    :param url: the redacted URL of the request.
    :param source: the source name, ``"subsonic"``.
    :param code: the Subsonic error code, or ``None`` when the answer was not a Subsonic
        error (not JSON, no ``subsonic-response``, a malformed field).
    :param status_code: the HTTP status of the answer, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = SOURCE_NAME,
        code: int | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source)
        self.code = code
        self.status_code = status_code


class SubsonicAuthError(AuthenticationError):
    """The server refused the login (codes 40-44) or the action (50); ``code`` says which."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = SOURCE_NAME,
        code: int | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, url=url, source=source, status_code=status_code)
        self.code = code


class DownloadsDisabledError(SubsonicAuthError):
    """Error 50 on ``download`` or ``stream``: the admin disabled downloads."""


class MediaMismatchError(ResponseMismatchError):
    """The answer is not the track: an empty body, an error page, or a transcode where the
    original was asked for. Not retried: the same request gets the same answer.

    :param reason: ``"empty"``, ``"document"`` or ``"transcoded"``.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        source: str | None = SOURCE_NAME,
        status_code: int | None = None,
        reason: str = "document",
    ) -> None:
        super().__init__(message, url=url, source=source, status_code=status_code)
        self.reason = reason


def failure_of(body: Mapping[str, Any]) -> tuple[int | None, str] | None:
    """``(code, server message)`` when ``body`` (a ``subsonic-response``) failed, else ``None``.

    ``status`` is ``"failed"`` by the specification; ``"fail"`` is accepted too.
    """
    status = body.get("status")
    if status == "ok":
        return None
    if status not in ("failed", "fail"):
        return None, f"the response status is {redact_text(str(status))!r}, not 'ok' or 'failed'"
    error = body.get("error")
    if not isinstance(error, Mapping):
        return None, "the response failed without an error object"
    raw = error.get("code")
    code = raw if isinstance(raw, int) and not isinstance(raw, bool) else None
    if isinstance(raw, str) and raw.strip().isdigit():
        code = int(raw)
    message = error.get("message")
    return code, message if isinstance(message, str) and message else "no message"


def error_for_code(
    code: int | None,
    message: str,
    *,
    method: str,
    url: str | None = None,
    status_code: int | None = None,
    hint: str | None = None,
) -> DownloadError:
    """The typed error for Subsonic error ``code`` (with the server's ``message``) on
    ``method``: a plain sentence first, the code and the server's words after.

    :param hint: what the user can do, appended when given.
    """
    plain = _plain(code, method)
    text = f"{plain} (Subsonic error {code} on {method}: {redact_text(message)})"
    if hint:
        text = f"{text}; {hint}"
    fields: dict[str, Any] = {"url": url, "status_code": status_code}
    if code == ErrorCode.NOT_AUTHORIZED and method in _MEDIA_METHODS:
        return DownloadsDisabledError(text, code=code, **fields)
    if code in _LOGIN_CODES or code == ErrorCode.NOT_AUTHORIZED:
        return SubsonicAuthError(text, code=code, **fields)
    if code == ErrorCode.NOT_FOUND:
        return ContentNotFoundError(text, source=SOURCE_NAME, **fields)
    return SubsonicAPIError(text, code=code, **fields)


def _plain(code: int | None, method: str) -> str:
    if code == ErrorCode.NOT_AUTHORIZED and method in _MEDIA_METHODS:
        return _DOWNLOADS_DISABLED
    try:
        return PLAIN_MESSAGES[ErrorCode(code)] if code is not None else "the server failed"
    except ValueError:
        return f"the server failed with an undocumented error {code}"


def error_in_document(
    data: bytes, *, method: str, url: str | None = None, status_code: int | None = None
) -> DownloadError | None:
    """The typed error a Subsonic JSON error document (sent in place of media) stands for,
    or ``None`` when ``data`` is not one."""
    try:
        body = json.loads(data)["subsonic-response"]
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        return None
    failure = failure_of(body) if isinstance(body, Mapping) else None
    if failure is None:
        return None
    code, message = failure
    return error_for_code(code, message, method=method, url=url, status_code=status_code)
