"""A :class:`Fault` is a frozen description of one misbehaviour of the server.

Body and range faults are built by the constructors in body_faults.py; status, redirect,
content-change, header and connection faults here.
"""

from __future__ import annotations

from collections.abc import Mapping

from .bodies import AUTO, CHANGED_LAST_MODIFIED, Auto
from .body_faults import BodyFaults
from .spec import FaultKind, On

__all__ = ["Fault", "FaultKind"]


class Fault(BodyFaults):
    """One misbehaviour.  Build with the classmethods; fields are their parameters."""

    # --------------------------------------------------------- status faults
    @classmethod
    def status(
        cls,
        code: int,
        *,
        retry_after: int | float | str | None = None,
        body: bytes | None = None,
        content_type: str = "text/plain; charset=utf-8",
        headers: Mapping[str, str] | None = None,
        close: bool = False,
        times: int | None = 1,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Answer ``code`` (default: for the first request only), then behave normally.

        ``retry_after``: a number of seconds or a literal string (an HTTP date,
        see :func:`http_date`).  ``body`` defaults to ``b"<code> <reason>\\n"``; with
        ``code=200`` and an HTML body this is a "200 OK error page".  401 adds
        ``WWW-Authenticate``, 405 adds ``Allow: GET`` and 416 adds
        ``Content-Range: bytes */total`` unless ``headers`` set them.
        """
        ra = None if retry_after is None else _retry_after_text(retry_after)
        return cls(
            FaultKind.STATUS,
            times,
            on,
            method,
            code=code,
            retry_after=ra,
            body=body,
            content_type=content_type,
            headers=tuple((headers or {}).items()),
            close=close,
        )

    @classmethod
    def permanent_status(
        cls,
        code: int,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Always answer ``code`` (400, 401, 403, 404, 410, ...)."""
        return cls.status(code, body=body, headers=headers, times=None, on=on, method=method)

    @classmethod
    def head_not_allowed(cls) -> Fault:
        """``HEAD`` gets ``405 Method Not Allowed`` (``Allow: GET``); GET works."""
        return cls.status(405, headers={"Allow": "GET"}, times=None, method="HEAD")

    @classmethod
    def redirect(
        cls,
        location: str,
        status: int = 302,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Answer ``status`` (301/302/303/307/308) with ``Location: location`` verbatim.

        ``location`` may be relative (``/other``), absolute (``server.url(...)``,
        another :class:`TestServer` on 127.0.0.2) or another scheme (``ftp://...``).
        """
        return cls(FaultKind.REDIRECT, times, on, method, code=status, location=location)

    # ------------------------------------------------------- content changes
    @classmethod
    def body_changes(
        cls,
        new_body: bytes | None = None,
        *,
        after: int = 1,
        new_etag: str | Auto | None = AUTO,
        new_last_modified: str | None = CHANGED_LAST_MODIFIED,
        method: str | None = None,
    ) -> Fault:
        """After the first ``after`` GET requests, serve a different body.

        The new body defaults to ``make_body(len(old) + 1000, seed=4242)`` (different
        content *and* size), with its own ETag and a later Last-Modified.  Requests
        of other methods (HEAD) see whichever version is current.  If-Range
        against the old validators then fails (full 200 of the new body).
        """
        return cls(
            FaultKind.BODY_CHANGES,
            None,
            "any",
            method,
            body=new_body,
            after=after,
            new_etag=new_etag,
            new_last_modified=new_last_modified,
        )

    # -------------------------------------------------------- header faults
    @classmethod
    def header(
        cls,
        name: str,
        value: str,
        *,
        replace: bool = True,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Set header ``name`` on the response, replacing the server's own value.

        ``replace=False`` adds it as an extra line (e.g. a second, conflicting
        Content-Length).  Values are written UTF-8 encoded.
        """
        return cls(FaultKind.HEADER, times, on, method, name=name, value=value, replace=replace)

    @classmethod
    def content_disposition(
        cls,
        value: str,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """``Content-Disposition: value`` verbatim (hostile names welcome)."""
        return cls.header("Content-Disposition", value, times=times, on=on, method=method)

    @classmethod
    def omit_header(
        cls,
        name: str,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Leave header ``name`` out (e.g. ``"ETag"``, ``"Accept-Ranges"``)."""
        return cls(FaultKind.OMIT_HEADER, times, on, method, name=name)

    # ---------------------------------------------------- connection faults
    @classmethod
    def delay_headers(
        cls,
        seconds: float,
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Wait ``seconds`` before sending anything (slow first byte; stop() cuts it short)."""
        return cls(FaultKind.DELAY_HEADERS, times, on, method, seconds=seconds)

    @classmethod
    def close_before_response(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Read the request, then close without answering (stale keep-alive socket)."""
        return cls(FaultKind.CLOSE_BEFORE_RESPONSE, times, on, method)

    @classmethod
    def close_after_response(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Complete, keep-alive-looking response, then close the connection anyway."""
        return cls(FaultKind.CLOSE_AFTER_RESPONSE, times, on, method)

    @classmethod
    def garbage_response(
        cls,
        data: bytes = b"SSH-2.0-OpenSSH_9.6 this is not HTTP\r\n\r\n",
        *,
        times: int | None = None,
        on: On = "any",
        method: str | None = None,
    ) -> Fault:
        """Write ``data`` instead of an HTTP response, then close."""
        return cls(FaultKind.GARBAGE_RESPONSE, times, on, method, body=data)

    @classmethod
    def http10(
        cls, *, times: int | None = None, on: On = "any", method: str | None = None
    ) -> Fault:
        """Answer with an ``HTTP/1.0`` status line and close after the response."""
        return cls(FaultKind.HTTP10, times, on, method)


def _retry_after_text(value: int | float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)
