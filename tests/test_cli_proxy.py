"""``--proxy`` end to end: the CLI (a subprocess) and the library send their downloads through
a real forwarding proxy on 127.0.0.1 (tests/support/proxy.py): an HTTP proxy for http://
(absolute-URI GET) and https:// (CONNECT), and a SOCKS5 server for ``socks5h://``, which
resolves host names itself. Proxy credentials never show, and a proxy that cannot be reached
is one plain line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ripstream.downloader import DownloadBehaviorSettings
from ripstream.downloader.exceptions import AuthenticationError, ConfigError, ConnectionRefused
from ripstream.sources.http import HttpDownloader
from tests.support.cli import cli, closed_port, fast_config, traceback_free
from tests.support.httpserver import TestServer, make_body
from tests.support.proxy import PROXY_ONLY_HOST, HTTPProxy, Socks5Proxy
from tests.support.settings import make_config
from tests.support.tls import TLSServer

PASSWORD = "pr0xy-s3cret-pw"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serve_two(server: TestServer) -> dict[str, bytes]:
    bodies = {"/a.flac": make_body(300_000, 1), "/b.mp3": make_body(70_000, 2)}
    for path, body in bodies.items():
        server.add(path, body)
    return bodies


# -- an HTTP proxy ---------------------------------------------------------------------------


def test_cli_downloads_go_through_the_http_proxy(
    server: TestServer, http_proxy: HTTPProxy, tmp_path: Path
) -> None:
    bodies = serve_two(server)
    out = tmp_path / "out"
    urls = [server.url(path) for path in bodies]
    run = cli("--proxy", http_proxy.url, "-d", str(out), *urls)
    assert run.returncode == 0, run.stderr
    for path, body in bodies.items():
        assert sha((out / path.lstrip("/")).read_bytes()) == sha(body)
    # every request the server saw came by way of the proxy, as an absolute-URI GET
    assert sorted(entry.target for entry in http_proxy.log if entry.method == "GET") == sorted(urls)
    assert {entry.method for entry in http_proxy.log} == {"GET"}
    assert len(server.requests) == len(http_proxy.log)
    assert all(r.headers.get("Connection") == "close" for r in server.requests)  # as forwarded


def test_cli_https_goes_through_a_connect_tunnel(
    tls_server: TLSServer, http_proxy: HTTPProxy, ca_bundle: Path, tmp_path: Path
) -> None:
    body = make_body(200_000, 3)
    tls_server.add("/secure.flac", body)
    out = tmp_path / "out"
    run = cli(
        "--proxy", http_proxy.url, "--ca-bundle", str(ca_bundle), "-d", str(out),
        tls_server.url("/secure.flac"),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert sha((out / "secure.flac").read_bytes()) == sha(body)
    assert {(e.method, e.target) for e in http_proxy.log} == {
        ("CONNECT", f"localhost:{tls_server.port}")
    }


def test_library_proxy_setting_sends_downloads_through_the_proxy(
    server: TestServer, http_proxy: HTTPProxy, out_dir: Path
) -> None:
    bodies = serve_two(server)
    urls = [server.url(path) for path in bodies]
    with HttpDownloader(make_config(out_dir, proxy=http_proxy.url)) as http:
        results = http.download_many(urls)
    assert all(r.is_success for r in results), [r.error_message for r in results]
    for path, body in bodies.items():
        assert sha((out_dir / path.lstrip("/")).read_bytes()) == sha(body)
    assert sorted(entry.target for entry in http_proxy.log) == sorted(urls)


def test_proxy_credentials_are_used_but_never_shown(server: TestServer, tmp_path: Path) -> None:
    body = make_body(50_000, 4)
    server.add("/a.flac", body)
    # /gone.flac is not served: a failure too, so that its message is checked
    events = tmp_path / "events.jsonl"
    with HTTPProxy(auth=("alice", PASSWORD)) as proxy:
        out = tmp_path / "out"
        good = cli(
            "-vv", "--json", "--events", str(events), "--proxy", proxy.url_with("alice", PASSWORD),
            "-d", str(out), server.url("/a.flac"), server.url("/gone.flac"),
        )  # fmt: skip
        wrong = cli(
            "-vv", "--proxy", proxy.url_with("alice", "not-" + PASSWORD), "-d",
            str(tmp_path / "wrong"), server.url("/a.flac"),
        )  # fmt: skip
    assert good.returncode == 1  # the missing file failed; the other one came through
    assert sha((out / "a.flac").read_bytes()) == sha(body)
    assert proxy.log[0].credentials == ("alice", PASSWORD)  # they were sent to the proxy
    assert wrong.returncode == 1
    assert "the proxy refused its credentials" in wrong.stderr
    assert not (tmp_path / "wrong" / "a.flac").exists()
    written = [good.stdout, good.stderr, wrong.stdout, wrong.stderr, events.read_text()]
    written += [p.read_text(errors="replace") for p in out.glob(".ripstream-state*")]
    for text in written:
        assert PASSWORD not in text
        assert "alice:" not in text
    assert any(json.loads(line)["status"] == "failed" for line in good.stdout.splitlines())


@pytest.mark.parametrize("scheme", ["http", "socks5h"])
def test_an_unreachable_proxy_is_one_plain_line_and_writes_nothing(
    server: TestServer, tmp_path: Path, scheme: str
) -> None:
    server.add("/a.flac", make_body(10_000, 5))
    port = closed_port()
    out = tmp_path / "out"
    run = cli(
        "--config", str(fast_config(tmp_path)), "--proxy",
        f"{scheme}://alice:{PASSWORD}@127.0.0.1:{port}", "-d", str(out), server.url("/a.flac"),
    )  # fmt: skip
    assert run.returncode == 1
    failures = [line for line in run.stderr.splitlines() if line.startswith("ripstream: failed")]
    assert len(failures) == 1, run.stderr
    assert f"cannot connect to the proxy 127.0.0.1:{port}: connection refused" in failures[0]
    assert len(failures[0]) < 160
    assert traceback_free(run.stderr)
    assert PASSWORD not in run.stderr + run.stdout
    assert not (out / "a.flac").exists()
    assert server.requests == []


def test_a_proxy_url_that_is_not_one_is_refused_without_its_password(tmp_path: Path) -> None:
    run = cli("--proxy", f"ftp://alice:{PASSWORD}@127.0.0.1:21", "-d", str(tmp_path / "o"), "x/a")
    assert run.returncode == 2
    assert "--proxy wants" in run.stderr
    assert PASSWORD not in run.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "proxy",
    [f"ftp://alice:{PASSWORD}@h:21", f"alice:{PASSWORD}@h:3128", "http://", "socks5h://h:x"],
)
def test_library_refuses_a_proxy_that_is_not_one_without_its_password(proxy: str) -> None:
    with pytest.raises(ConfigError, match="proxy wants") as refused:
        DownloadBehaviorSettings(proxy=proxy)
    assert PASSWORD not in str(refused.value)
    assert PASSWORD not in str(refused.value.value)
    assert refused.value.field == "proxy"


# -- SOCKS5 (PySocks is an install requirement) ----------------------------------------------


def test_socks5h_lets_the_proxy_resolve_the_host(
    server: TestServer, socks_proxy: Socks5Proxy, tmp_path: Path
) -> None:
    """The host name is one only the proxy knows: the download can only succeed if the name
    went to the proxy unresolved."""
    bodies = serve_two(server)
    out = tmp_path / "out"
    urls = [f"http://{PROXY_ONLY_HOST}:{server.port}{path}" for path in bodies]
    run = cli("--proxy", socks_proxy.url("socks5h"), "-d", str(out), *urls)
    assert run.returncode == 0, run.stderr
    for path, body in bodies.items():
        assert sha((out / path.lstrip("/")).read_bytes()) == sha(body)
    assert {(e.host, e.address_type) for e in socks_proxy.log} == {(PROXY_ONLY_HOST, "domain")}
    # one connection, or one per file: a finished download's connection may carry the next
    assert 1 <= len(socks_proxy.log) <= len(bodies)
    assert {r.headers.get("Host") for r in server.requests} == {f"{PROXY_ONLY_HOST}:{server.port}"}
    assert len(server.requests) == len(bodies)  # every file came through the proxy's tunnels


def test_socks5_without_h_resolves_here_and_sends_an_address(
    server: TestServer, socks_proxy: Socks5Proxy, tmp_path: Path
) -> None:
    server.add("/a.flac", make_body(20_000, 6))
    url = f"http://localhost:{server.port}/a.flac"  # /etc/hosts: no DNS asked
    run = cli("--proxy", socks_proxy.url("socks5"), "-d", str(tmp_path / "out"), url)
    assert run.returncode == 0, run.stderr
    assert [(e.host, e.address_type) for e in socks_proxy.log] == [("127.0.0.1", "ipv4")]


def test_socks5h_with_a_password_and_https(
    tls_server: TLSServer, ca_bundle: Path, tmp_path: Path
) -> None:
    body = make_body(120_000, 7)
    tls_server.add("/s.flac", body)
    out = tmp_path / "out"
    with Socks5Proxy(auth=("bob", PASSWORD)) as proxy:
        good = cli(
            "--proxy", proxy.url("socks5h", ("bob", PASSWORD)), "--ca-bundle", str(ca_bundle),
            "-d", str(out), tls_server.url("/s.flac"),
        )  # fmt: skip
        wrong = cli(
            "--proxy", proxy.url("socks5h", ("bob", "x" + PASSWORD)), "--ca-bundle",
            str(ca_bundle), "-d", str(tmp_path / "wrong"), tls_server.url("/s.flac"),
        )  # fmt: skip
    assert good.returncode == 0, good.stderr
    assert sha((out / "s.flac").read_bytes()) == sha(body)
    assert [(e.host, e.credentials) for e in proxy.log] == [("localhost", ("bob", PASSWORD))]
    assert wrong.returncode == 1
    assert f"the proxy 127.0.0.1:{proxy.port} refused its credentials" in wrong.stderr
    assert "retrying" not in wrong.stderr  # wrong credentials are not retried
    assert PASSWORD not in good.stderr + wrong.stderr + good.stdout + wrong.stdout
    assert not (tmp_path / "wrong" / "s.flac").exists()


def test_library_socks5h_and_typed_proxy_errors(
    server: TestServer, socks_proxy: Socks5Proxy, out_dir: Path
) -> None:
    server.add("/a.flac", make_body(30_000, 8))
    url = f"http://{PROXY_ONLY_HOST}:{server.port}/a.flac"
    with HttpDownloader(make_config(out_dir, proxy=socks_proxy.url("socks5h"))) as http:
        [result] = http.download_many([url])
    assert result.is_success, result.error_message
    port = closed_port()
    down = f"socks5h://bob:{PASSWORD}@127.0.0.1:{port}"
    with HttpDownloader(make_config(out_dir / "down", proxy=down, max_retries=0)) as http:
        [failed] = http.download_many([server.url("/a.flac")])
    assert isinstance(failed.error, ConnectionRefused)
    expected = f"cannot connect to the proxy 127.0.0.1:{port}: connection refused"
    assert failed.error_message == expected
    with Socks5Proxy(auth=("bob", PASSWORD)) as guarded:
        config = make_config(out_dir / "anon", proxy=guarded.url("socks5h"))
        with HttpDownloader(config) as http:
            [refused] = http.download_many([server.url("/a.flac")])
    assert isinstance(refused.error, AuthenticationError)
    assert "wants a user name and password" in str(refused.error_message)
