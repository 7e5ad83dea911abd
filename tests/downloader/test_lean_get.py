"""The data GET skips ``Session.request`` but sends exactly what requests would have sent.

``DownloadSession.get(..., stream=True)`` prepares the GET itself (once per request, without
requests' per-request merging) and hands it to ``Session.send``, so the session's adapter and
urllib3 pool carry it. Each test here sends the same request both ways to real servers on
127.0.0.1 and compares what the servers received: headers, cookies, auth, the request
target, and what reached another port after a redirect.
"""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import urllib3

from ripstream.downloader import DownloadConfig
from ripstream.downloader.exceptions import DownloadError
from ripstream.downloader.session import DownloadSession, SessionManager
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.proxy import PROXY_ONLY_HOST, HTTPProxy, Socks5Proxy
from tests.support.settings import fast_settings
from tests.support.tls import TLSServer

Setup = Callable[[DownloadSession, TestServer], None]


@pytest.fixture
def other_port(server: TestServer) -> Iterator[TestServer]:
    with TestServer(host=server.host) as running:
        yield running


@pytest.fixture
def session() -> Iterator[DownloadSession]:
    config = DownloadConfig(default_settings=fast_settings(headers={"X-Api-Key": "k3y"}))
    with SessionManager(config) as manager:
        yield manager.get_session("http")


@pytest.fixture
def request_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs that went through ``Session.request`` (the slow, merging path)."""
    calls: list[str] = []
    original = requests.Session.request

    def spy(
        self: requests.Session, method: str, url: str, *args: object, **kwargs: object
    ) -> object:
        calls.append(url)
        return original(self, method, url, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(requests.Session, "request", spy)
    return calls


def both_ways(
    session: DownloadSession, server: TestServer, path: str, headers: dict[str, str | None]
) -> tuple[dict[str, str], dict[str, str]]:
    """The headers the server received for the lean GET and for ``Session.request``."""
    url = server.url(path)
    with session.get(url, headers=headers, stream=True) as response:
        assert response.status_code == 200
        assert response.content == server.resource(path).body
    with session.http.request("GET", url, headers=headers, stream=True) as response:
        assert response.status_code == 200
    lean, usual = server.requests_for(path)[-2:]
    return dict(lean.headers), dict(usual.headers)


def _cookies(session: DownloadSession, server: TestServer) -> None:
    session.http.cookies.set("sid", "abc", domain=server.host, path="/")
    session.http.cookies.set("other", "no", domain="elsewhere.example", path="/")
    session.http.cookies.set("deep", "no", domain=server.host, path="/private")


def _auth(session: DownloadSession, server: TestServer) -> None:
    session.http.auth = ("alice", "s3cret")


def _session_header(session: DownloadSession, server: TestServer) -> None:
    session.http.headers["Authorization"] = "Bearer t0ken"


def _nothing(session: DownloadSession, server: TestServer) -> None:
    pass


@pytest.mark.parametrize("setup", [_nothing, _cookies, _auth, _session_header])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Range": "bytes=0-99", "If-Range": '"e1"'}, {"Accept": None}, {"Cookie": "mine=1"}],
)
def test_the_lean_get_sends_the_same_headers_as_requests(
    server: TestServer,
    session: DownloadSession,
    request_calls: list[str],
    setup: Setup,
    headers: dict[str, str | None],
) -> None:
    server.add("/song.flac", make_body(1000, seed=1))
    setup(session, server)

    lean, usual = both_ways(session, server, "/song.flac", headers)

    assert lean == usual
    assert request_calls == [server.url("/song.flac")], "the lean GET went through requests"


def test_cookies_a_response_sets_are_kept_for_the_next_request(
    server: TestServer, session: DownloadSession, request_calls: list[str]
) -> None:
    server.add("/login", b"ok", faults=[Fault.header("Set-Cookie", "token=t1; Path=/")])
    server.add("/song.flac", make_body(100, seed=2))

    session.get(server.url("/login"), stream=True).close()
    session.get(server.url("/song.flac"), stream=True).close()

    assert server.requests_for("/song.flac")[0].headers.get("Cookie") == "token=t1"
    assert request_calls == []


@pytest.mark.parametrize("target", ["/a|b.flac", "/%7Ealice/x.flac", "/dir/../y.flac", "/ü.flac"])
def test_a_url_that_needs_preparing_reaches_the_same_target(
    server: TestServer, session: DownloadSession, target: str
) -> None:
    for path in ("/a%7Cb.flac", "/~alice/x.flac", "/y.flac", "/%C3%BC.flac"):
        server.add(path, b"body of " + path.encode())
    url = server.url(target)

    with session.get(url, stream=True) as lean:
        lean_body = lean.content
    with session.http.request("GET", url, stream=True) as usual:
        usual_body = usual.content

    assert lean.status_code == usual.status_code == 200
    assert lean_body == usual_body
    assert lean.url == usual.url


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_to_another_port_strips_credentials_as_requests_does(
    server: TestServer,
    other_port: TestServer,
    session: DownloadSession,
    request_calls: list[str],
    status: int,
) -> None:
    body = make_body(5000, seed=3)
    other_port.add("/cdn/song.flac", body)
    server.add("/song.flac", b"", faults=[Fault.redirect(other_port.url("/cdn/song.flac"), status)])
    _cookies(session, server)
    session.http.headers["Authorization"] = "Bearer t0ken"

    with session.get(server.url("/song.flac"), stream=True) as response:
        assert response.content == body
        assert [r.status_code for r in response.history] == [status]
    with session.http.request("GET", server.url("/song.flac"), stream=True) as usual:
        assert usual.content == body

    lean_hop, usual_hop = other_port.requests_for("/cdn/song.flac")
    assert dict(lean_hop.headers) == dict(usual_hop.headers)
    for name in ("Authorization", "Cookie", "X-Api-Key"):
        assert name not in lean_hop.headers
    assert server.requests_for("/song.flac")[0].headers["Cookie"] == "sid=abc"
    assert request_calls == [server.url("/song.flac")]


def test_a_redirect_on_the_same_origin_keeps_credentials_as_requests_does(
    server: TestServer, session: DownloadSession
) -> None:
    server.add("/cdn/song.flac", make_body(300, seed=4))
    server.add("/song.flac", b"", faults=[Fault.redirect(server.url("/cdn/song.flac"), 302)])
    _cookies(session, server)

    with session.get(server.url("/song.flac"), stream=True) as response:
        response.content  # noqa: B018
    with session.http.request("GET", server.url("/song.flac"), stream=True) as usual:
        usual.content  # noqa: B018

    lean_hop, usual_hop = server.requests_for("/cdn/song.flac")
    assert dict(lean_hop.headers) == dict(usual_hop.headers)
    assert lean_hop.headers["X-Api-Key"] == "k3y"
    assert lean_hop.headers["Cookie"] == "sid=abc"


def test_response_hooks_of_the_session_run(server: TestServer, session: DownloadSession) -> None:
    server.add("/song.flac", b"abc")
    seen: list[int] = []

    def hook(response: requests.Response, *args: object, **kwargs: object) -> None:
        seen.append(response.status_code)

    session.http.hooks["response"].append(hook)
    session.get(server.url("/song.flac"), stream=True).close()

    assert seen == [200]


def test_a_session_that_prepares_its_own_way_is_not_bypassed(
    server: TestServer, request_calls: list[str]
) -> None:
    """A source whose session subclass signs requests in ``prepare_request`` keeps it."""

    class Signing(requests.Session):
        def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
            request.headers["X-Signature"] = "signed"
            return super().prepare_request(request)

    class SigningManager(SessionManager):
        def create_session(self, source: str, settings: object) -> requests.Session:
            return Signing()

    server.add("/song.flac", b"abc")
    with SigningManager(DownloadConfig(default_settings=fast_settings())) as manager:
        manager.get_session("http").get(server.url("/song.flac"), stream=True).close()

    assert server.requests_for("/song.flac")[0].headers["X-Signature"] == "signed"
    assert request_calls == [server.url("/song.flac")]


# -- proxies and TLS: the same transport settings, the same outcome -----------------------------


def test_a_proxy_with_credentials_carries_the_lean_get(
    server: TestServer, session: DownloadSession, request_calls: list[str]
) -> None:
    body = make_body(3000, seed=6)
    server.add("/song.flac", body)
    with HTTPProxy(auth=("proxyuser", "pr0xy-pass")) as proxy:
        session.http.proxies = {"http": proxy.url_with("proxyuser", "pr0xy-pass")}
        lean, usual = both_ways(session, server, "/song.flac", {})
        log = proxy.log

    assert lean == usual
    assert [(entry.method, entry.credentials) for entry in log] == [
        ("GET", ("proxyuser", "pr0xy-pass"))
    ] * 2
    assert request_calls == [server.url("/song.flac")]


def test_a_socks5h_proxy_resolves_the_host_for_the_lean_get(
    server: TestServer, session: DownloadSession, socks_proxy: Socks5Proxy
) -> None:
    body = make_body(2000, seed=7)
    server.add("/song.flac", body)
    session.http.proxies = {"http": socks_proxy.url("socks5h")}
    url = f"http://{PROXY_ONLY_HOST}:{server.port}/song.flac"

    with session.get(url, stream=True) as response:
        assert response.content == body

    assert socks_proxy.hosts_asked() == [PROXY_ONLY_HOST]


def test_tls_verification_decides_the_lean_get_as_it_decides_requests(
    tls_server: TLSServer, ca_bundle: Path
) -> None:
    tls_server.add("/song.flac", b"over tls")
    url = tls_server.url("/song.flac")
    outcomes: dict[object, tuple[str, str]] = {}
    for verify in (True, str(ca_bundle), False):
        bundle = verify if isinstance(verify, str) else None
        settings = fast_settings(verify_ssl=verify is not False, ca_bundle=bundle)
        with SessionManager(DownloadConfig(default_settings=settings)) as manager:
            lean, usual = _both_outcomes(manager.get_session("http"), url)
        assert lean[0] == usual[0], (verify, lean, usual)
        outcomes[verify] = lean

    assert outcomes[True][0] == "TLSError"
    assert "certificate verify failed" in outcomes[True][1]
    assert outcomes[str(ca_bundle)] == ("ok", "over tls")
    assert outcomes[False] == ("ok", "over tls")


def _both_outcomes(session: DownloadSession, url: str) -> tuple[tuple[str, str], tuple[str, str]]:
    lean = _outcome(lambda: session.get(url, stream=True).content)
    usual = _outcome(lambda: session.http.request("GET", url, stream=True).content)
    return lean, usual


def _outcome(call: Callable[[], bytes]) -> tuple[str, str]:
    """``("ok", body)`` or the error's kind: requests' SSLError and ours count as one."""
    try:
        return ("ok", call().decode())
    except requests.exceptions.SSLError as exc:
        return ("TLSError", str(exc))
    except DownloadError as exc:
        return (type(exc).__name__, str(exc))


# -- what the lean GET must still carry: the timeout, the environment, the proxy in errors -------


def test_a_body_that_stops_coming_times_out_on_the_lean_get(server: TestServer) -> None:
    server.add("/stuck.flac", make_body(50_000, 2), faults=[Fault.stall_after(1_000, 30.0)])
    config = DownloadConfig(default_settings=fast_settings(stall_timeout=0.5))
    with SessionManager(config) as manager:
        response = manager.get_session("http").get(server.url("/stuck.flac"), stream=True)
        with response, pytest.raises(urllib3.exceptions.ReadTimeoutError):
            response.raw.read()  # not a wait for the server's 30 s


def test_a_proxy_from_the_environment_carries_the_streamed_get(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("http_proxy", server.url(""))
    server.add("/song.flac", b"through the proxy")
    with SessionManager(DownloadConfig(default_settings=fast_settings())) as manager:
        got = manager.get_session("http").get("http://music.invalid/song.flac", stream=True)
        with got:
            assert got.content == b"through the proxy"


def test_a_netrc_login_reaches_the_server_on_the_streamed_get(
    server: TestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    netrc = tmp_path / "credentials"
    netrc.write_text("machine 127.0.0.1 login alice password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))  # the environment matters: requests' own path
    server.add("/song.flac", b"for alice")
    with SessionManager(DownloadConfig(default_settings=fast_settings())) as manager:
        got = manager.get_session("http").get(server.url("/song.flac"), stream=True)
        with got:
            assert got.content == b"for alice"
    sent = server.requests_for("/song.flac")[0].headers.get("Authorization")
    assert sent == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def test_an_unreachable_configured_proxy_is_named_in_the_error(server: TestServer) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server.add("/song.flac", b"abc")
    config = DownloadConfig(
        default_settings=fast_settings(proxy=f"http://127.0.0.1:{port}", max_retries=0)
    )
    with SessionManager(config) as manager, pytest.raises(DownloadError) as caught:
        manager.get_session("http").get(server.url("/song.flac"), stream=True)
    assert f"cannot connect to the proxy 127.0.0.1:{port}" in str(caught.value)
