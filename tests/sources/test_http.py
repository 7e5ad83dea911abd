"""The built-in ``http`` source: which URLs it claims, how it names them, its basic auth, and
what a bad URL says."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from ripstream.downloader import ContentType
from ripstream.downloader.exceptions import ConfigError
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config


@pytest.mark.parametrize(
    ("url", "claimed"),
    [
        ("http://example.com/a.flac", True),
        ("https://example.com/a.flac", True),
        ("  HTTPS://EXAMPLE.COM/A.FLAC", True),
        ("http://bad host/x", True),  # ours, so the message says what is wrong with it
        ("ftp://example.com/a.flac", False),
        ("example.com/a.flac", False),
        ("subsonic://server/song", False),
    ],
)
def test_claims_url(url: str, claimed: bool) -> None:
    assert HttpDownloader.claims_url(url) is claimed


@pytest.mark.parametrize(
    ("url", "title"),
    [
        ("https://example.com/music/Song%20One.flac", "Song One.flac"),
        ("https://example.com/music/a.mp3?token=x", "a.mp3"),
        ("https://example.com/", "example.com"),
        ("  https://example.com/b.ogg  ", "b.ogg"),
    ],
)
def test_get_download_info_names_the_content(tmp_path: Path, url: str, title: str) -> None:
    with HttpDownloader(make_config(tmp_path)) as http:
        content = http.get_download_info(url)
    assert content.title == title
    assert content.url == url.strip()
    assert content.content_id == url.strip()
    assert content.source == "http"
    assert content.content_type is ContentType.FILE


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/a.flac", "unsupported URL scheme 'ftp'"),
        ("http:///a.flac", "no host"),
        ("http://example.com:99999/a", "malformed URL"),
        ("http://example.com/a b.flac", "it contains spaces"),
        ("example.com/a.flac", "unsupported URL scheme '(none)'"),
    ],
)
def test_a_bad_url_is_a_config_error_naming_the_problem(
    tmp_path: Path, url: str, problem: str
) -> None:
    with HttpDownloader(make_config(tmp_path)) as http, pytest.raises(ConfigError) as info:
        http.get_download_info(url)
    assert problem in str(info.value)
    assert info.value.field == "url"


def test_a_bad_url_with_a_password_does_not_show_it(tmp_path: Path) -> None:
    with HttpDownloader(make_config(tmp_path)) as http, pytest.raises(ConfigError) as info:
        http.get_download_info("ftp://me:hunter2@example.com/a?token=SECRET")
    assert "hunter2" not in str(info.value)
    assert "SECRET" not in str(info.value)


def test_basic_auth_and_headers_reach_the_server(server: TestServer, out_dir: Path) -> None:
    server.add("/private/song.flac", make_body(5000, 3))
    with HttpDownloader(make_config(out_dir)) as http:
        assert http.authenticate(
            {"username": "alice", "password": "s3cret", "headers": {"X-Api-Key": "k1"}}
        )
        result = http.download(http.get_download_info(server.url("/private/song.flac")))
    assert result.is_success, result.error
    assert (out_dir / "song.flac").read_bytes() == make_body(5000, 3)
    [request] = server.requests_for("/private/song.flac")
    expected = "Basic " + base64.b64encode(b"alice:s3cret").decode()
    assert request.headers["Authorization"] == expected
    assert request.headers["X-Api-Key"] == "k1"


def test_the_server_name_is_used_when_the_template_allows(
    server: TestServer, out_dir: Path
) -> None:
    server.add(
        "/download",
        b"abc",
        headers={"Content-Disposition": 'attachment; filename="Real Name.mp3"'},
    )
    with HttpDownloader(make_config(out_dir)) as http:
        result = http.download(http.get_download_info(server.url("/download")))
    assert result.file_path == out_dir / "Real Name.mp3"
    assert (out_dir / "Real Name.mp3").read_bytes() == b"abc"
