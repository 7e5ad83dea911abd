"""URLs in output: user info and secret query values hidden, in URLs and in free text; and the
validation of http(s) URLs handed in."""

from __future__ import annotations

import re

import pytest

from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.urls import SECRET_PARAMS, redact_text, redact_url, validate_http_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pw@host.example/a.flac", "https://host.example/a.flac"),
        ("https://user@host.example:8443/a", "https://host.example:8443/a"),
        (
            "https://h/rest/stream?u=me&t=abc123&s=salt9&id=7",
            "https://h/rest/stream?u=me&t=***&s=***&id=7",
        ),
        ("https://h/a?TOKEN=x&Signature=y&keep=1", "https://h/a?TOKEN=***&Signature=***&keep=1"),
        ("https://h/a?flag&p=secret", "https://h/a?flag&p=***"),
        ("https://h/a#fragment-token", "https://h/a"),
        ("https://h/a.flac", "https://h/a.flac"),
        ("", ""),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redact_url_of_none_is_none() -> None:
    assert redact_url(None) is None


@pytest.mark.parametrize("param", sorted(SECRET_PARAMS))
def test_every_secret_param_is_hidden(param: str) -> None:
    shown = redact_url(f"https://h/x?{param}=SECRETVALUE&n=1")
    assert "SECRETVALUE" not in shown
    assert shown.endswith(f"{param}=***&n=1")
    assert "SECRETVALUE" not in redact_text(f"failed: https://h/x?{param}=SECRETVALUE (reset)")


def test_an_unparseable_url_still_hides_its_secrets() -> None:
    shown = redact_url("http://me:pw@host:99999/x?token=SECRET")
    assert "pw" not in shown
    assert "SECRET" not in shown


def test_redact_text_hides_urls_inside_messages() -> None:
    text = (
        "HTTPConnectionPool(host='h', port=80): Max retries exceeded with url: "
        "/rest/stream?u=me&t=abc123&s=salt (Caused by https://user:pw@h/x?api_key=K1)"
    )
    shown = redact_text(text)
    for secret in ("abc123", "salt)", "user:pw", "K1"):
        assert secret not in shown
    assert "u=me" in shown
    assert "t=***" in shown
    assert "https://h/x?api_key=***" in shown


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://h/x", "unsupported URL scheme 'ftp'"),
        ("h/x", "unsupported URL scheme '(none)'"),
        ("http://", "no host"),
        ("http://h:port/x", "malformed URL"),
        ("http://h/a b", "it contains spaces"),
    ],
)
def test_validate_http_url_names_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)) as info:
        validate_http_url(url)
    assert info.value.field == "url"


def test_validate_http_url_strips_and_keeps_good_urls() -> None:
    assert validate_http_url("  https://h.example/a.flac\n") == "https://h.example/a.flac"


def test_a_refused_url_is_shown_redacted() -> None:
    with pytest.raises(ConfigError) as info:
        validate_http_url("ftp://me:hunter2@h/x?token=SECRET")
    assert "hunter2" not in str(info.value)
    assert "SECRET" not in str(info.value)
    assert "SECRET" not in str(info.value.value)
