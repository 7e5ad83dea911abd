"""One redaction everywhere: URLs, free text, results and log lines (urllib3's DEBUG lines too).

Log lines are caught from a real request to the local server, with a handler of the test's
own, so what is asserted is exactly what a ``-vv`` run would print.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ripstream.downloader import DownloadConfig, SessionManager
from ripstream.downloader.content import DownloadResult, ResultStatus
from ripstream.downloader.exceptions import ContentNotFoundError
from ripstream.downloader.urls import (
    RedactingFilter,
    install_log_redaction,
    is_secret_param,
    redact_text,
    redact_url,
)
from tests.support.httpserver import Fault, TestServer
from tests.support.settings import fast_settings

SUBSONIC_QUERY = "u=alice&t=26719a1196d2a940705a59634eb18eab&s=c19b2d&p=enc:73336372337470&f=json"
SECRETS = (
    "pa55word",
    "T0KEN-VALUE",
    "26719a1196d2a940705a59634eb18eab",
    "c19b2d",
    "73336372337470",
)


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:pa55word@example.com/a.flac?token=T0KEN-VALUE",
        f"https://music.example.com/rest/stream.view?{SUBSONIC_QUERY}",
        "https://example.com/a?client_secret=pa55word&X-Amz-Signature=T0KEN-VALUE",
        "https://example.com/a?api_key=pa55word;sig=T0KEN-VALUE",
    ],
)
def test_redact_url_and_redact_text_hide_every_secret(url: str) -> None:
    for shown in (redact_url(url), redact_text(f"failed: {url}!"), redact_text(repr(url))):
        assert not [s for s in SECRETS if s in shown], shown
        assert "example.com" in shown


def test_redaction_keeps_what_is_not_secret() -> None:
    url = "https://example.com:8443/music/a.flac?id=42&format=flac"
    assert redact_url(url) == url
    assert redact_text(f"GET {url} 200") == f"GET {url} 200"
    assert redact_url(f"https://example.com/rest/x?{SUBSONIC_QUERY}").endswith(
        "?u=alice&t=***&s=***&p=***&f=json"
    )


def test_configured_values_and_quoted_auth_headers_are_hidden_in_text() -> None:
    text = (
        "headers {'X-Custom-Token': 'cust0m-secret', 'Authorization': 'Bearer abc.def'} "
        "and again cust0m-secret; Cookie: session=s3cret"
    )
    shown = redact_text(text, ["cust0m-secret"])
    for secret in ("cust0m-secret", "abc.def", "s3cret"):
        assert secret not in shown
    assert "X-Custom-Token" in shown


@pytest.mark.parametrize(
    ("name", "secret"),
    [("t", True), ("P", True), ("client_secret", True), ("X-Amz-Signature", True), ("id", False)],
)
def test_secret_parameter_names(name: str, secret: bool) -> None:
    assert is_secret_param(name) is secret


def test_a_result_record_never_carries_the_url_secrets() -> None:
    url = "https://alice:pa55word@example.com/a.flac?token=T0KEN-VALUE"
    error = ContentNotFoundError(f"{url} is gone (HTTP 404)", url=url)
    result = DownloadResult(
        content_id=url,
        source="http",
        status=ResultStatus.FAILED,
        url=url,
        error=error,
        message=f"tried {url}",
    )
    record = repr(result.to_record())
    assert not [s for s in SECRETS if s in record], record
    assert "example.com/a.flac" in record


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """Everything urllib3, requests and ripstream log at DEBUG, as a ``-vv`` run prints it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(name) for name in ("urllib3", "requests", "ripstream")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    yield stream
    for log, level in zip(loggers, levels, strict=True):
        log.removeHandler(handler)
        log.setLevel(level)


def test_urllib3_debug_lines_are_redacted_once_a_session_manager_exists(
    server: TestServer, debug_log: io.StringIO, tmp_path: Path
) -> None:
    server.add("/rest/stream.view", b"x" * 100, faults=[Fault.status(503, times=1)])
    url = server.url(f"/rest/stream.view?token=T0KEN-VALUE&{SUBSONIC_QUERY}")
    config = DownloadConfig(
        download_directory=tmp_path,
        default_settings=fast_settings(headers={"X-Custom-Token": "pa55word"}),
    )
    with SessionManager(config) as manager:
        session = manager.get_session("http")
        for _ in range(2):  # a 503, then the body: two DEBUG lines with the full target
            response = session.get(url, check_status=False)
            response.close()
        # a framework module's logger: the filter is on every logger that exists by now
        logging.getLogger("ripstream.downloader.session").debug("configured header: %s", "pa55word")
    text = debug_log.getvalue()
    assert "/rest/stream.view?token=***" in text, text  # the line is there, redacted
    assert "configured header: ***" in text
    assert not [s for s in SECRETS if s in text], text


def test_installing_twice_attaches_one_filter_and_keeps_the_secrets() -> None:
    first = install_log_redaction(["first-secret"])
    second = install_log_redaction(["second-secret"])
    assert first is second
    for name in ("urllib3", "urllib3.connectionpool", "requests", "ripstream"):
        filters = logging.getLogger(name).filters
        assert sum(isinstance(f, RedactingFilter) for f in filters) == 1, name
    assert {"first-secret", "second-secret"} <= first.secrets


def test_the_filter_redacts_exception_text_and_bad_format_strings() -> None:
    log_filter = RedactingFilter(["pa55word"])
    try:
        raise ValueError("https://example.com/?token=T0KEN-VALUE pa55word")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    assert log_filter.filter(record)
    assert record.exc_text is not None
    assert "T0KEN-VALUE" not in record.exc_text
    assert "pa55word" not in record.exc_text
    broken = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %s", ("pa55word",), None)
    assert log_filter.filter(broken)
    assert "pa55word" not in broken.getMessage()
