"""Credentials stay with the origin that was given them: scheme, host *and* port.

A redirect from one port of 127.0.0.1 to another is a redirect to another server (another
program, maybe another user's); the Cookie, X-Api-Key and Authorization the user set for the
first must not reach the second. Two real servers on 127.0.0.1 show what each received.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ripstream.downloader import ResultStatus
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

SECRETS = {"Cookie": "session=s3cret-cookie", "X-Api-Key": "s3cret-key"}
SENSITIVE = ("Cookie", "X-Api-Key", "Authorization")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def other_port(server: TestServer) -> Iterator[TestServer]:
    """A second server on the same host as ``server``, on another port."""
    with TestServer(host=server.host) as running:
        assert running.port != server.port
        yield running


@pytest.mark.parametrize("status", [302, 307])
def test_credentials_do_not_follow_a_redirect_to_another_port(
    server: TestServer, other_port: TestServer, out_dir: Path, status: int
) -> None:
    body = make_body(50_000, seed=12)
    other_port.add("/cdn/song.flac", body)
    server.add("/song.flac", b"", faults=[Fault.redirect(other_port.url("/cdn/song.flac"), status)])

    with HttpDownloader(make_config(out_dir)) as downloader:
        assert downloader.authenticate(
            {"username": "alice", "password": "s3cret-password", "headers": SECRETS}
        )
        result = downloader.download(downloader.get_download_info(server.url("/song.flac")))

    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / "song.flac").read_bytes()) == sha(body)
    first = server.requests_for("/song.flac")[0].headers
    assert all(name in first for name in SENSITIVE), "the origin itself got no credentials"
    received = other_port.requests_for("/cdn/song.flac")
    assert received, "the redirect was not followed"
    for request in received:
        leaked = [name for name in SENSITIVE if name in request.headers]
        assert leaked == [], f"{leaked} reached port {other_port.port}"
        assert "s3cret" not in repr(request.headers)


def test_per_download_headers_do_not_follow_a_redirect_to_another_port(
    server: TestServer, other_port: TestServer, out_dir: Path
) -> None:
    body = make_body(50_000, seed=13)
    other_port.add("/cdn/song.flac", body)
    server.add("/song.flac", b"", faults=[Fault.redirect(other_port.url("/cdn/song.flac"))])

    with HttpDownloader(make_config(out_dir)) as downloader:
        content = downloader.get_download_info(server.url("/song.flac"))
        content.headers.update(SECRETS)
        result = downloader.download(content)

    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / "song.flac").read_bytes()) == sha(body)
    assert server.requests_for("/song.flac")[0].headers.get("X-Api-Key") == "s3cret-key"
    for request in other_port.requests_for("/cdn/song.flac"):
        assert "s3cret" not in repr(request.headers)


CUSTOM = {"X-Custom-Token": "cust0m-secret", "X-Session": "sess-secret"}
HARMLESS = {"Accept-Language": "de", "User-Agent": "ripstream-test/1"}


@pytest.mark.parametrize("status", [302, 307])
def test_every_configured_header_stays_with_its_origin(
    server: TestServer, other_port: TestServer, out_dir: Path, status: int
) -> None:
    """Not only a fixed list: any header the user configured (settings.headers) or the source
    set for the content is dropped on the way to another origin; harmless ones go along."""
    body = make_body(40_000, seed=14)
    other_port.add("/cdn/song.flac", body)
    server.add("/song.flac", b"", faults=[Fault.redirect(other_port.url("/cdn/song.flac"), status)])
    config = make_config(out_dir, headers={**CUSTOM, "Accept-Language": "de"})
    with HttpDownloader(config) as downloader:
        content = downloader.get_download_info(server.url("/song.flac"))
        content.headers.update(
            {"X-Per-Content-Key": "content-secret", "User-Agent": "ripstream-test/1"}
        )
        result = downloader.download(content)

    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / "song.flac").read_bytes()) == sha(body)
    first = server.requests_for("/song.flac")[0].headers
    assert first.get("X-Custom-Token") == "cust0m-secret"
    assert first.get("X-Per-Content-Key") == "content-secret"
    received = other_port.requests_for("/cdn/song.flac")
    assert received, "the redirect was not followed"
    for request in received:
        assert "secret" not in repr(request.headers).lower(), request.headers
        for name, value in HARMLESS.items():
            assert request.headers.get(name) == value, name


def test_configured_headers_follow_a_redirect_on_the_same_origin(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(30_000, seed=15)
    server.add("/cdn/song.flac", body)
    server.add("/song.flac", b"", faults=[Fault.redirect(server.url("/cdn/song.flac"))])
    with HttpDownloader(make_config(out_dir, headers=CUSTOM)) as downloader:
        result = downloader.download(downloader.get_download_info(server.url("/song.flac")))
    assert result.status is ResultStatus.COMPLETED, result.error
    for request in server.requests_for("/cdn/song.flac"):
        assert request.headers.get("X-Custom-Token") == "cust0m-secret"
