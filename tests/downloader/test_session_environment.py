"""What a session takes from its settings and from the environment, seen on the wire: a
proxy, a cookies file, a .netrc, a CA bundle, and the values later hidden in logs."""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest
import responses

from ripstream.downloader import DownloadConfig, SessionManager
from ripstream.downloader.exceptions import (
    ConfigError,
    DownloadError,
    HTTPStatusError,
    ResponseMismatchError,
)
from ripstream.downloader.session import DownloadSession, configured_secrets
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import fast_settings


def session_for(**settings: object) -> DownloadSession:
    config = DownloadConfig(default_settings=fast_settings(**settings))
    return SessionManager(config).get_session("http")


@pytest.fixture
def bare_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No proxy variables, no CA bundle, no .netrc: a home of the test's own."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name.endswith("_CA_BUNDLE"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("NETRC", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def test_a_configured_proxy_carries_every_request(server: TestServer) -> None:
    server.add("/song.flac", b"through the proxy")
    response = session_for(proxy=server.url("")).get("http://music.invalid/song.flac")
    assert response.content == b"through the proxy"
    assert server.requests_for("/song.flac")[0].target == "http://music.invalid/song.flac"


def test_a_configured_proxy_tunnels_https(server: TestServer) -> None:
    session = session_for(proxy=server.url(""), max_retries=0)
    with pytest.raises(DownloadError):  # the test server is no tunnel
        session.get("https://music.invalid/song.flac")
    assert [r.method for r in server.requests] == ["CONNECT"]
    assert server.requests[0].target == "music.invalid:443"


def test_a_proxy_from_the_environment_is_used(
    server: TestServer, bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/song.flac", b"through the proxy")
    monkeypatch.setenv("http_proxy", server.url(""))
    assert session_for().get("http://music.invalid/song.flac").content == b"through the proxy"


@pytest.mark.parametrize("name", ["NETRC", ".netrc", "_netrc"])
def test_a_netrc_from_the_environment_gives_its_login(
    name: str, server: TestServer, bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/song.flac", b"for alice")
    netrc = bare_env / (name if name != "NETRC" else "credentials")
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    if name == "NETRC":
        monkeypatch.setenv("NETRC", str(netrc))
    assert session_for().get(server.url("/song.flac")).content == b"for alice"
    sent = server.requests_for("/song.flac")[0].headers.get("Authorization")
    assert sent == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_a_cookies_file_sends_session_and_lasting_cookies(
    server: TestServer, tmp_path: Path
) -> None:
    server.add("/song.flac", b"with cookies")
    cookies = tmp_path / "cookies.txt"
    cookies.write_text(
        "# Netscape HTTP Cookie File\n"
        "127.0.0.1\tFALSE\t/\tFALSE\t0\tzero\tsession-by-zero\n"  # curl's session cookie
        "127.0.0.1\tFALSE\t/\tFALSE\t\tempty\tsession-by-blank\n"  # a browser's
        "127.0.0.1\tFALSE\t/\tFALSE\t4102444800\tlasting\tuntil-2100\n"
    )
    session_for(cookies_file=str(cookies)).get(server.url("/song.flac"))
    sent = server.requests_for("/song.flac")[0].headers.get("Cookie") or ""
    assert sorted(sent.split("; ")) == [
        "empty=session-by-blank",
        "lasting=until-2100",
        "zero=session-by-zero",
    ]


def test_a_cookies_file_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    missing = str(tmp_path / "cookies.txt")
    with pytest.raises(ConfigError) as caught:
        session_for(cookies_file=missing)
    assert (caught.value.field, caught.value.value) == ("cookies_file", missing)
    assert str(caught.value).startswith(f"cannot read the cookies file {missing!r}: ")


@responses.activate
@pytest.mark.parametrize("name", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_either_ca_bundle_variable_is_honoured(
    name: str, bare_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = bare_env / "ca.pem"
    bundle.write_text("not read: the transport is mocked\n")
    monkeypatch.setenv(name, str(bundle))
    responses.get("https://api.example.test/a", body=b"ok")
    session_for().get("https://api.example.test/a")
    kwargs: dict[str, object] = getattr(responses.calls[0].request, "req_kwargs")  # noqa: B009
    assert kwargs["verify"] == str(bundle)


@responses.activate
def test_a_400_is_an_error_status() -> None:
    responses.get("https://api.example.test/a", status=400)
    with pytest.raises(HTTPStatusError) as caught:
        session_for().get("https://api.example.test/a")
    assert caught.value.status_code == 400


@responses.activate
def test_a_json_error_names_its_source() -> None:
    responses.get("https://api.example.test/a", body="<html>", content_type="text/html")
    with pytest.raises(ResponseMismatchError) as caught:
        session_for().get_json("https://api.example.test/a")
    assert caught.value.source == "http"


def test_configured_secrets_are_every_sources_header_values_but_safe_ones() -> None:
    config = DownloadConfig(
        default_settings=fast_settings(headers={"X-Api-Key": "default-key", "Accept": "audio/*"})
    )
    config.add_source_setting("subsonic", "headers", {"Authorization": "Bearer per-source"})
    assert sorted(configured_secrets(config)) == ["Bearer per-source", "default-key"]


def test_a_body_that_stops_coming_fails_after_the_stall_timeout(server: TestServer) -> None:
    body = make_body(50_000, 1)
    server.add("/stuck.flac", body, faults=[Fault.stall_after(1_000, 30.0)])
    session = session_for(stall_timeout=0.5)
    with pytest.raises(DownloadError) as caught:  # not a wait for the server's 30 s
        session.get(server.url("/stuck.flac"))
    assert caught.value.retryable
    assert "timed out" in str(caught.value)


def test_a_configured_proxy_password_is_a_secret_to_hide() -> None:
    config = DownloadConfig(
        default_settings=fast_settings(proxy="http://alice:pr0xy-pass@127.0.0.1:3128")
    )
    assert configured_secrets(config) == ["pr0xy-pass"]
    assert configured_secrets(DownloadConfig(default_settings=fast_settings())) == []


@pytest.mark.parametrize("verify", [False, True])
def test_turning_tls_verification_off_is_said_once_naming_the_source(
    verify: bool, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ripstream.downloader.session"):
        session_for(verify_ssl=verify)
    said = [r.getMessage() for r in caplog.records if r.name == "ripstream.downloader.session"]
    expected = [] if verify else ["http: TLS certificates are not checked (verify_ssl is off)"]
    assert said == expected
