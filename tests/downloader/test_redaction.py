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
from ripstream.downloader.exceptions import ConfigError, ContentNotFoundError
from ripstream.downloader.urls import (
    RedactingFilter,
    install_log_redaction,
    is_secret_param,
    redact_text,
    redact_url,
    validate_http_url,
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


@pytest.fixture
def fresh_logger(request: pytest.FixtureRequest) -> Iterator[tuple[str, io.StringIO]]:
    """A logger hierarchy no other test touched (redaction is process-wide), with a child
    that exists before redaction is installed, and a handler that records what it prints."""
    root = f"redaction-test-{request.node.name}"
    child = logging.getLogger(f"{root}.engine")  # exists before the install
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    top = logging.getLogger(root)
    top.addHandler(handler)
    top.setLevel(logging.INFO)
    try:
        yield root, stream
    finally:
        top.removeHandler(handler)
        for log in (top, child):
            for attached in list(log.filters):
                log.removeFilter(attached)


def test_a_logger_that_existed_before_the_install_is_redacted_too(
    fresh_logger: tuple[str, io.StringIO],
) -> None:
    root, printed = fresh_logger
    install_log_redaction(["pa55word"], loggers=(root,))
    logging.getLogger(f"{root}.engine").info("sending %s", "pa55word")
    logging.getLogger(root).info("and again pa55word")
    assert printed.getvalue().count("***") == 2, printed.getvalue()
    assert "pa55word" not in printed.getvalue()


def test_another_librarys_log_lines_are_left_alone(
    fresh_logger: tuple[str, io.StringIO],
) -> None:
    root, _ = fresh_logger
    other = logging.getLogger(f"other-{root}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    other.addHandler(handler)
    try:
        install_log_redaction(["pa55word"], loggers=(root,))
        other.warning("GET /?token=abcdef pa55word")
    finally:
        other.removeHandler(handler)
    assert stream.getvalue() == "GET /?token=abcdef pa55word\n"


def test_a_handler_with_the_same_filter_still_prints_the_line_once_redacted(
    fresh_logger: tuple[str, io.StringIO],
) -> None:
    # the CLI puts the shared filter on its handlers too: a record passes it twice
    root, _ = fresh_logger
    shared = install_log_redaction(["pa55word"], loggers=(root,))
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(shared)
    logging.getLogger(root).addHandler(handler)
    try:
        logging.getLogger(f"{root}.engine").info("token %s", "pa55word")
    finally:
        logging.getLogger(root).removeHandler(handler)
    assert stream.getvalue() == "token ***\n"


def test_a_stack_in_a_log_line_is_redacted(fresh_logger: tuple[str, io.StringIO]) -> None:
    root, printed = fresh_logger
    install_log_redaction(["pa55word"], loggers=(root,))
    log = logging.getLogger(root)
    record = log.makeRecord(root, logging.INFO, __file__, 1, "where", (), None, sinfo="at pa55word")
    log.handle(record)
    assert printed.getvalue() == "where\nat ***\n"


def test_a_secret_of_four_characters_is_hidden_in_text_and_logs(
    fresh_logger: tuple[str, io.StringIO],
) -> None:
    assert redact_text("key is k3y9", ["k3y9"]) == "key is ***"
    assert redact_text("key is abc", ["abc"]) == "key is abc"  # shorter ones would hide words
    root, printed = fresh_logger
    install_log_redaction(["k3y9"], loggers=(root,))
    logging.getLogger(root).info("key is k3y9")
    assert printed.getvalue() == "key is ***\n"


def test_a_secret_that_contains_another_is_hidden_whole() -> None:
    # the short secret sorts after the long one by its letters; replacing it first would
    # leave the long one's head and tail in the text
    text = redact_text("sent AAAAsecretBBBB", ["secret", "AAAAsecretBBBB"])
    assert text == "sent ***"


@pytest.mark.parametrize(
    "url",
    [
        "https://alice:pa55word@host:99999/x",  # a bad port
        "ftp://alice:pa55word@host/x",
        "https://alice:pa55word@/x",  # no host
        "https://alice:pa55word@host/a b",
    ],
)
def test_a_rejected_url_is_reported_redacted(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_http_url(url)
    assert caught.value.value == redact_url(url)
    assert "pa55word" not in str(caught.value.value)
    assert "pa55word" not in str(caught.value)
