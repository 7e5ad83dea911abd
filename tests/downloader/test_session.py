"""SessionManager / DownloadSession: typed errors, headers, TLS, pools, rate limits, redirects.

HTTP semantics are unit-tested with ``responses``; anything about connections (pool sizing,
credentials across a redirect to another host) runs against the real local server.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import socket
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import pytest
import requests
import responses

import ripstream
from ripstream.downloader import DownloadBehaviorSettings, DownloadConfig, SessionManager
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    ConnectionRefused,
    ContentNotFoundError,
    DownloadError,
    HTTPStatusError,
    IncompleteBodyError,
    RateLimitError,
    RedirectError,
    ResponseMismatchError,
    ServerError,
    StallError,
    TLSError,
)
from ripstream.downloader.session import DownloadSession
from ripstream.sources.http import HttpDownloader
from tests.support.clock import FakeClock
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import fast_settings, make_config

API = "https://api.example.test"
SECRET_URL = f"{API}/track/1?token=abc123secret&t=zz9secret&format=flac"
CREDENTIALS = {
    "Authorization": "Bearer s3cret-bearer",
    "Cookie": "session=s3cret-cookie",
    "X-Api-Key": "s3cret-key",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def session_for(config: DownloadConfig | None = None, source: str = "http") -> DownloadSession:
    return SessionManager(config or DownloadConfig(default_settings=fast_settings())).get_session(
        source
    )


def raised_by(session: DownloadSession, url: str) -> DownloadError:
    with pytest.raises(DownloadError) as info:
        session.get(url)
    return info.value


def assert_pickles(error: DownloadError, *fields: str) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    for name in ("url", "source", *fields):
        assert getattr(copy, name) == getattr(error, name), name


# -- HTTP status -> exception ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (404, ContentNotFoundError, False),
        (410, ContentNotFoundError, False),
        (500, ServerError, True),
        (502, ServerError, True),
        (503, ServerError, True),
        (418, HTTPStatusError, False),
    ],
)
@responses.activate
def test_error_status_maps_to_typed_error(
    status: int, error_type: type[DownloadError], retryable: bool
) -> None:
    url = f"{API}/track/{status}"
    responses.get(url, status=status, body="nope")

    error = raised_by(session_for(), url)

    assert type(error) is error_type
    assert error.status_code == status  # type: ignore[attr-defined]
    assert error.retryable is retryable
    assert error.url == url
    assert error.source == "http"
    assert str(status) in str(error)
    assert_pickles(error, "status_code")


@responses.activate
def test_429_with_retry_after_seconds_is_rate_limit_error() -> None:
    url = f"{API}/busy"
    responses.get(url, status=429, headers={"Retry-After": "7"})

    error = raised_by(session_for(), url)

    assert type(error) is RateLimitError
    assert error.retry_after == 7.0
    assert error.status_code == 429
    assert error.retryable is True
    assert error.url == url
    assert_pickles(error, "status_code", "retry_after")


@responses.activate
def test_429_with_retry_after_http_date_gives_positive_seconds() -> None:
    url = f"{API}/busy"
    responses.get(
        url, status=429, headers={"Retry-After": formatdate(time.time() + 120, usegmt=True)}
    )

    error = raised_by(session_for(), url)

    assert isinstance(error, RateLimitError)
    assert error.retry_after is not None
    assert 60.0 < error.retry_after <= 121.0


@responses.activate
def test_503_carries_retry_after_too() -> None:
    url = f"{API}/maintenance"
    responses.get(url, status=503, headers={"Retry-After": "30"})

    error = raised_by(session_for(), url)

    assert type(error) is ServerError
    assert error.retry_after == 30.0


@pytest.mark.parametrize("status", [403, 404, 429, 503, 418])
@responses.activate
def test_secret_query_values_are_redacted_in_status_errors(status: int) -> None:
    responses.get(SECRET_URL, status=status)

    error = raised_by(session_for(), SECRET_URL)

    assert error.url == f"{API}/track/1?token=***&t=***&format=flac"
    for text in (error.url, str(error), repr(error), str(pickle.loads(pickle.dumps(error)))):
        assert "abc123secret" not in text
        assert "zz9secret" not in text


def test_user_info_is_redacted_from_error_url(server: TestServer) -> None:
    url = f"http://alice:hunter2pw@{server.host}:{server.port}/private"

    error = raised_by(session_for(), url)

    assert isinstance(error, ContentNotFoundError)
    assert error.url == server.url("/private")
    assert "hunter2pw" not in str(error)
    # the password went to the server as basic auth, as the user asked
    assert server.requests_for("/private")[0].headers["Authorization"].startswith("Basic ")


@responses.activate
def test_status_check_can_be_turned_off() -> None:
    url = f"{API}/missing"
    responses.get(url, status=404, body="not here")

    response = session_for().get(url, check_status=False)

    assert response.status_code == 404
    assert response.text == "not here"


# -- network failures --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (requests.exceptions.ConnectionError("connection refused"), ConnectionFailedError),
        (requests.exceptions.ConnectTimeout("connect timed out"), ConnectionFailedError),
        (requests.exceptions.ReadTimeout("read timed out"), StallError),
        (requests.exceptions.SSLError("certificate verify failed"), TLSError),
        (requests.exceptions.TooManyRedirects("Exceeded 10 redirects."), RedirectError),
        (requests.exceptions.ChunkedEncodingError("broken chunk"), IncompleteBodyError),
    ],
    ids=["refused", "connect-timeout", "read-timeout", "tls", "redirects", "chunked"],
)
@responses.activate
def test_network_failure_maps_to_typed_error_chained_from_original(
    failure: Exception, error_type: type[DownloadError]
) -> None:
    responses.get(SECRET_URL, body=failure)

    error = raised_by(session_for(), SECRET_URL)

    assert isinstance(error, error_type)
    assert error.__cause__ is failure
    assert error.url == f"{API}/track/1?token=***&t=***&format=flac"
    assert error.source == "http"
    assert "abc123secret" not in str(error)
    assert_pickles(error)


@pytest.fixture
def refusing_port() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening) for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_refused_connection_is_connection_failed_error(refusing_port: int) -> None:
    url = f"http://127.0.0.1:{refusing_port}/track/1"

    error = raised_by(session_for(), url)

    assert type(error) is ConnectionRefused  # a ConnectionFailedError, retried briefly
    assert isinstance(error, ConnectionFailedError)
    assert error.retryable is True
    assert error.retry_limit == 2
    assert str(error) == f"cannot connect to 127.0.0.1:{refusing_port}: connection refused"
    assert error.url == url
    assert isinstance(error.__cause__, requests.exceptions.ConnectionError)


def test_secret_query_values_are_redacted_in_network_errors(refusing_port: int) -> None:
    url = f"http://127.0.0.1:{refusing_port}/track/1?token=abc123secret&t=zz9secret"

    error = raised_by(session_for(), url)

    assert isinstance(error, ConnectionFailedError)
    assert error.url == f"http://127.0.0.1:{refusing_port}/track/1?token=***&t=***"
    assert "abc123secret" not in str(error)
    assert "zz9secret" not in str(error)


def test_retryable_flags_of_network_errors() -> None:
    assert ConnectionFailedError("x").retryable is True
    assert StallError("x").retryable is True
    assert TLSError("x").retryable is False
    assert RedirectError("x").retryable is False


# -- bad URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["ftp://files.example.test/song.flac", "file:///etc/passwd", "song.flac", "http://"]
)
@responses.activate
def test_unsupported_or_malformed_url_is_config_error_naming_it(url: str) -> None:
    with pytest.raises(ConfigError) as info:
        session_for().get(url)

    assert info.value.field == "url"
    assert url in str(info.value)
    assert len(responses.calls) == 0


@responses.activate
def test_unparseable_ipv6_url_is_config_error() -> None:
    url = "http://[::1/song.flac"
    with pytest.raises(ConfigError) as info:
        session_for().get(url)

    assert info.value.field == "url"
    assert "[::1" in str(info.value)


@responses.activate
def test_out_of_range_port_is_config_error() -> None:
    url = "http://files.example.test:99999/song.flac"
    with pytest.raises(ConfigError) as info:
        session_for().get(url)

    assert info.value.field == "url"
    assert "99999" in str(info.value)


# -- headers -----------------------------------------------------------------------------------


@responses.activate
def test_default_headers_identify_ripstream_and_ask_for_identity() -> None:
    responses.get(f"{API}/a", body=b"ok")

    session_for().get(f"{API}/a")

    sent = responses.calls[0].request.headers
    assert sent["User-Agent"] == f"ripstream/{ripstream.__version__}"
    assert sent["Accept-Encoding"] == "identity"


@responses.activate
def test_custom_headers_from_settings_and_per_request_are_sent() -> None:
    responses.get(f"{API}/a", body=b"ok")
    config = DownloadConfig(default_settings=fast_settings(headers={"X-Client": "notebook"}))

    session_for(config).get(f"{API}/a", headers={"X-Request": "one"})

    sent = responses.calls[0].request.headers
    assert sent["X-Client"] == "notebook"
    assert sent["X-Request"] == "one"
    assert sent["Accept-Encoding"] == "identity"


@responses.activate
def test_per_source_user_agent_only_changes_that_source() -> None:
    responses.get(f"{API}/a", body=b"ok")
    config = DownloadConfig(default_settings=fast_settings())
    config.add_source_setting("alpha", "user_agent", "AlphaPlayer/2.0")
    config.add_source_setting("alpha", "headers", {"X-Alpha": "yes"})
    manager = SessionManager(config)

    manager.get_session("alpha").get(f"{API}/a")
    manager.get_session("http").get(f"{API}/a")

    alpha, http = (call.request.headers for call in responses.calls)
    assert alpha["User-Agent"] == "AlphaPlayer/2.0"
    assert alpha["X-Alpha"] == "yes"
    assert http["User-Agent"] == f"ripstream/{ripstream.__version__}"
    assert "X-Alpha" not in http


def test_one_session_per_source() -> None:
    manager = SessionManager(DownloadConfig())
    assert manager.get_session("alpha") is manager.get_session("alpha")
    assert manager.get_session("alpha") is not manager.get_session("beta")
    assert manager.get_session("alpha").http is not manager.get_session("beta").http


# -- TLS ---------------------------------------------------------------------------------------


_CA_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def verify_sent(index: int) -> object:
    """The ``verify`` value requests handed to the transport for the ``index``-th call."""
    kwargs: dict[str, object] = getattr(responses.calls[index].request, "req_kwargs")  # noqa: B009
    return kwargs["verify"]


@pytest.fixture
def no_ca_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _CA_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ca_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """A private CA bundle named the standard way (a home server's CA, a corporate CA),
    and otherwise a bare environment: no proxy variables, no .netrc."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    bundle = tmp_path / "private-ca.pem"
    bundle.write_text("not read: the transport is mocked\n")
    for name in _CA_ENV:
        monkeypatch.setenv(name, str(bundle))
    return str(bundle)


@responses.activate
@pytest.mark.usefixtures("no_ca_env")
def test_ssl_verification_is_on_by_default() -> None:
    responses.get(f"{API}/a", body=b"ok")
    session = session_for()

    session.get(f"{API}/a")

    assert session.http.verify is True
    assert verify_sent(0) is True


@responses.activate
def test_a_ca_bundle_from_the_environment_is_honoured(ca_env: str) -> None:
    """REQUESTS_CA_BUNDLE is how users trust a private CA; ignoring it breaks their TLS."""
    responses.get(f"{API}/a", body=b"ok")

    session_for().get(f"{API}/a")

    assert verify_sent(0) == ca_env


@responses.activate
@pytest.mark.usefixtures("no_ca_env")
def test_ssl_verification_can_be_turned_off_per_source() -> None:
    responses.get(f"{API}/a", body=b"ok")
    config = DownloadConfig(default_settings=fast_settings())
    config.add_source_setting("selfsigned", "verify_ssl", False)
    manager = SessionManager(config)

    manager.get_session("selfsigned").get(f"{API}/a")
    manager.get_session("http").get(f"{API}/a")

    assert manager.get_session("selfsigned").http.verify is False
    assert manager.get_session("http").http.verify is True
    assert verify_sent(0) is False
    assert verify_sent(1) is True


@responses.activate
@pytest.mark.usefixtures("ca_env")
def test_ssl_verification_off_wins_over_a_ca_bundle_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a proxy in the environment too (the usual corporate setup): requests must read it
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    responses.get(f"{API}/a", body=b"ok")
    config = DownloadConfig(default_settings=fast_settings(verify_ssl=False))

    session_for(config).get(f"{API}/a")

    assert verify_sent(0) is False


# -- connection pools --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("jobs", "segments", "per_host", "expected"),
    [(3, 1, 16, 5), (8, 4, 16, 34), (4, 8, 2, 10)],
)
def test_pool_is_sized_to_the_concurrency(
    jobs: int, segments: int, per_host: int, expected: int
) -> None:
    config = DownloadConfig(
        max_concurrent_downloads=jobs,
        default_settings=fast_settings(segments=segments, max_connections_per_host=per_host),
    )
    manager = SessionManager(config)
    http = manager.get_session("http").http

    for scheme in ("http://", "https://"):
        adapter = http.get_adapter(f"{scheme}example.test/")
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == expected
    assert manager.pool_size(config.get_behavior_for_source("http")) == expected


def _serve_many(server: TestServer, count: int, size: int, bps: float) -> dict[str, bytes]:
    bodies = {f"/many/{i:02d}.bin": make_body(size, seed=i) for i in range(count)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=bps)
    return bodies


@pytest.mark.parametrize("segments", [1, 4])
def test_concurrent_downloads_never_overflow_the_pool(
    server: TestServer, out_dir: Path, caplog: pytest.LogCaptureFixture, segments: int
) -> None:
    bodies = _serve_many(server, 16, 200_000, 1_000_000)
    config = make_config(out_dir, jobs=8, segments=segments, min_segment_size=32 * 1024)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")

    with HttpDownloader(config) as downloader:
        contents = [downloader.get_download_info(server.url(path)) for path in bodies]
        results = downloader.download_many(contents)

    assert [r.is_success for r in results] == [True] * 16
    for path, body in bodies.items():
        assert sha((out_dir / path.rsplit("/", 1)[1]).read_bytes()) == sha(body)
    # they really ran side by side (with segments, beyond requests' default pool of 10)
    assert server.max_concurrent_requests >= (5 if segments == 1 else 11)
    full = [r for r in caplog.records if "pool is full" in r.getMessage()]
    assert full == []


class _TinyPools(SessionManager):
    def pool_size(self, settings: DownloadBehaviorSettings) -> int:
        return 1


def test_pool_full_warning_is_detected_when_the_pool_is_too_small(
    server: TestServer, out_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Control for the test above: the warning it looks for is really logged when it applies."""
    bodies = _serve_many(server, 8, 100_000, 1_000_000)
    config = make_config(out_dir, jobs=4)
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")

    with HttpDownloader(config, session_manager=_TinyPools(config)) as downloader:
        results = downloader.download_many(
            [downloader.get_download_info(server.url(path)) for path in bodies]
        )

    assert all(r.is_success for r in results)
    assert any("pool is full" in r.getMessage() for r in caplog.records)


# -- per-source rate limit ---------------------------------------------------------------------


@responses.activate
def test_requests_are_paced_to_the_source_rate_limit() -> None:
    responses.get(f"{API}/a", body=b"ok")
    config = DownloadConfig(
        default_settings=fast_settings(requests_per_period=2, rate_period_seconds=1.0)
    )
    fake = FakeClock()
    session = SessionManager(config, clock=fake.clock, sleep=fake.sleep).get_session("http")

    started = time.monotonic()
    for _ in range(6):
        session.get(f"{API}/a")
    wall = time.monotonic() - started

    assert len(responses.calls) == 6
    assert sum(fake.sleeps) == pytest.approx(2.0)
    assert fake.sleeps == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert fake.now == pytest.approx(1002.0)
    assert wall < 1.0  # the schedule is 2 s long: nothing slept for real


@responses.activate
def test_rate_limit_applies_per_source() -> None:
    responses.get(f"{API}/a", body=b"ok")
    config = DownloadConfig(default_settings=fast_settings())
    config.add_source_setting("strict", "requests_per_period", 1)
    config.add_source_setting("strict", "rate_period_seconds", 4.0)
    fake = FakeClock()
    manager = SessionManager(config, clock=fake.clock, sleep=fake.sleep)

    for _ in range(3):
        manager.get_session("http").get(f"{API}/a")
    assert fake.sleeps == []
    for _ in range(3):
        manager.get_session("strict").get(f"{API}/a")

    assert fake.sleeps == pytest.approx([4.0, 4.0])
    assert len(responses.calls) == 6


# -- custom session handling -------------------------------------------------------------------


class BrandedSessions(SessionManager):
    def __init__(self, config: DownloadConfig) -> None:
        super().__init__(config)
        self.created: list[str] = []

    def create_session(self, source: str, settings: DownloadBehaviorSettings) -> requests.Session:
        session = super().create_session(source, settings)
        session.headers["X-Branded"] = f"for-{source}"
        self.created.append(source)
        return session


def test_custom_session_manager_is_used_by_a_downloader(server: TestServer, out_dir: Path) -> None:
    body = make_body(50_000)
    server.add("/branded.bin", body)
    config = make_config(out_dir)
    sessions = BrandedSessions(config)

    with HttpDownloader(config, session_manager=sessions) as downloader:
        result = downloader.download(downloader.get_download_info(server.url("/branded.bin")))

    assert result.is_success
    assert sha((out_dir / "branded.bin").read_bytes()) == sha(body)
    assert sessions.created == ["http"]
    seen = server.requests_for("/branded.bin")
    assert seen
    assert all(r.headers.get("X-Branded") == "for-http" for r in seen)
    assert seen[0].headers["User-Agent"] == f"ripstream/{ripstream.__version__}"


# -- credentials and redirects -----------------------------------------------------------------


@pytest.fixture
def other_host() -> Iterator[TestServer]:
    """A second server on another loopback address: another host to the client."""
    with TestServer(host="127.0.0.2") as running:
        yield running


def test_credentials_do_not_follow_a_redirect_to_another_host(
    server: TestServer, other_host: TestServer
) -> None:
    other_host.add("/cdn/song.flac", b"the song")
    server.add("/stream", b"", faults=[Fault.redirect(other_host.url("/cdn/song.flac"))])

    response = session_for().get(server.url("/stream"), headers=CREDENTIALS)

    assert response.content == b"the song"
    first = server.requests_for("/stream")[0].headers
    for name, value in CREDENTIALS.items():
        assert first.get(name) == value
    second = other_host.requests_for("/cdn/song.flac")[0].headers
    for name in CREDENTIALS:
        assert name not in second
    assert "s3cret" not in repr(second)


def test_session_level_credentials_do_not_follow_a_redirect_to_another_host(
    server: TestServer, other_host: TestServer
) -> None:
    other_host.add("/cdn/song.flac", b"the song")
    server.add("/stream", b"", faults=[Fault.redirect(other_host.url("/cdn/song.flac"), 307)])
    config = DownloadConfig(default_settings=fast_settings(headers=dict(CREDENTIALS)))

    response = session_for(config).get(server.url("/stream"))

    assert response.content == b"the song"
    assert server.requests_for("/stream")[0].headers.get("X-Api-Key") == "s3cret-key"
    assert "s3cret" not in repr(other_host.requests_for("/cdn/song.flac")[0].headers)


def test_same_host_redirect_keeps_authorization_and_api_key(server: TestServer) -> None:
    server.add("/local/song.flac", b"local song")
    server.add("/stream", b"", faults=[Fault.redirect("/local/song.flac")])

    response = session_for().get(server.url("/stream"), headers=CREDENTIALS)

    assert response.content == b"local song"
    second = server.requests_for("/local/song.flac")[0].headers
    assert second.get("Authorization") == CREDENTIALS["Authorization"]
    assert second.get("X-Api-Key") == CREDENTIALS["X-Api-Key"]


def test_same_host_redirect_keeps_cookie_header(server: TestServer) -> None:
    server.add("/local/song.flac", b"local song")
    server.add("/stream", b"", faults=[Fault.redirect("/local/song.flac")])

    session_for().get(server.url("/stream"), headers=CREDENTIALS)

    second = server.requests_for("/local/song.flac")[0].headers
    assert second.get("Cookie") == CREDENTIALS["Cookie"]


def test_redirect_loop_is_redirect_error(server: TestServer) -> None:
    server.add_redirect_loop("/loop", 2)

    error = raised_by(
        session_for(DownloadConfig(default_settings=fast_settings(max_redirects=5))),
        server.url("/loop"),
    )

    assert isinstance(error, RedirectError)
    assert isinstance(error.__cause__, requests.exceptions.TooManyRedirects)
    assert len(server.requests) == 6  # the first request plus max_redirects hops


# -- JSON --------------------------------------------------------------------------------------


@responses.activate
def test_get_json_parses_json() -> None:
    responses.get(f"{API}/track/1", json={"id": 1, "title": "Song"})

    assert session_for().get_json(f"{API}/track/1") == {"id": 1, "title": "Song"}


@responses.activate
def test_get_json_on_a_non_json_body_is_response_mismatch() -> None:
    responses.get(SECRET_URL, body="<html>maintenance</html>", content_type="text/html")

    with pytest.raises(ResponseMismatchError) as info:
        session_for().get_json(SECRET_URL)

    error = info.value
    assert error.url == f"{API}/track/1?token=***&t=***&format=flac"
    assert "abc123secret" not in str(error)
    assert isinstance(error.__cause__, ValueError)
    assert_pickles(error)


@responses.activate
def test_get_json_on_an_error_status_raises_the_status_error() -> None:
    responses.get(f"{API}/track/2", status=404, json={"error": "no such track"})

    with pytest.raises(ContentNotFoundError):
        session_for().get_json(f"{API}/track/2")
