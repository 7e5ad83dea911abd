"""API answers are read with bounds: size (after decompression) and nesting.

A hostile server answers ``get_json`` with an endless body, a gzip bomb or JSON nested a
hundred thousand levels deep; each must end as a typed :class:`ResponseMismatchError`, never a
MemoryError, a RecursionError or a long wait. All against the real local server.
"""

from __future__ import annotations

import gzip
import json
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from ripstream.downloader import DownloadConfig, SessionManager
from ripstream.downloader.apibody import json_depth
from ripstream.downloader.exceptions import ConfigError, ResponseMismatchError
from ripstream.downloader.session import DownloadSession
from tests.support.httpserver import Fault, TestServer
from tests.support.settings import fast_settings

CAP = 1024 * 1024
JSON = "application/json"


@pytest.fixture
def session(tmp_path: Path) -> Iterator[DownloadSession]:
    config = DownloadConfig(
        download_directory=tmp_path, default_settings=fast_settings(max_api_bytes=CAP)
    )
    with SessionManager(config) as manager:
        yield manager.get_session("http")


def gzip_bomb(size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed (about a thousandth of ``size``)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + packer.flush()


def test_a_gzip_answer_is_decoded(server: TestServer, session: DownloadSession) -> None:
    data = {"tracks": [{"id": n, "title": f"Track {n}"} for n in range(500)]}
    server.add(
        "/api",
        gzip.compress(json.dumps(data).encode()),
        content_type=JSON,
        headers={"Content-Encoding": "gzip"},
    )
    assert session.get_json(server.url("/api")) == data


def test_a_gzip_bomb_is_refused_without_inflating_it(
    server: TestServer, session: DownloadSession
) -> None:
    bomb = gzip_bomb(256 * 1024 * 1024)
    assert len(bomb) < CAP // 2  # small on the wire
    server.add("/api", bomb, content_type=JSON, headers={"Content-Encoding": "gzip"})
    tracemalloc.start()
    try:
        with pytest.raises(ResponseMismatchError, match=f"larger than {CAP} bytes"):
            session.get_json(server.url("/api?token=T0KEN"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * CAP, f"{peak} bytes held while refusing a bomb"


@pytest.mark.parametrize("length", [True, False], ids=["content-length", "no-length"])
def test_an_answer_over_the_cap_is_refused(
    server: TestServer, session: DownloadSession, length: bool
) -> None:
    body = b'{"pad": "' + b"x" * (2 * CAP) + b'"}'
    faults = [] if length else [Fault.omit_header("Content-Length")]
    server.add("/api", body, content_type=JSON, faults=faults)
    with pytest.raises(ResponseMismatchError) as info:
        session.get_json(server.url("/api?token=T0KEN"))
    assert f"larger than {CAP} bytes" in str(info.value)
    assert "T0KEN" not in str(info.value)
    assert info.value.url is not None
    assert "T0KEN" not in info.value.url


def test_an_answer_at_the_cap_is_read(server: TestServer, session: DownloadSession) -> None:
    body = b'"' + b"x" * (CAP - 2) + b'"'
    server.add("/api", body, content_type=JSON)
    assert len(session.get_json(server.url("/api"))) == CAP - 2


@pytest.mark.parametrize("depth", [201, 5_000, 200_000])
def test_json_nested_too_deeply_is_refused(
    server: TestServer, session: DownloadSession, depth: int
) -> None:
    server.add("/api", b"[" * depth + b"]" * depth, content_type=JSON)
    with pytest.raises(ResponseMismatchError, match="nested deeper than 200 levels"):
        session.get_json(server.url("/api"))


def test_json_nested_within_the_limit_is_parsed(
    server: TestServer, session: DownloadSession
) -> None:
    text = '{"a": ' * 199 + '"[[[[{{{{"' + "}" * 199  # brackets in strings do not count
    server.add("/api", text.encode(), content_type=JSON)
    value = session.get_json(server.url("/api"))
    for _ in range(199):
        value = value["a"]
    assert value == "[[[[{{{{"


@pytest.mark.parametrize(
    ("body", "encoding", "message"),
    [
        (b"\x1f\x8b\x08\x00garbage", "gzip", "corrupt gzip data"),
        (b"{}", "br", "unsupported encoding 'br'"),
        (b"<html>oops</html>", "identity", "did not return JSON"),
    ],
)
def test_broken_answers_are_typed_errors(
    server: TestServer, session: DownloadSession, body: bytes, encoding: str, message: str
) -> None:
    server.add("/api", body, content_type=JSON, headers={"Content-Encoding": encoding})
    with pytest.raises(ResponseMismatchError, match=message):
        session.get_json(server.url("/api"))


def test_json_depth_ignores_escaped_quotes_in_strings() -> None:
    assert json_depth(r'{"a": "\"[[[[", "b": [[1]]}') == 3


def test_max_api_bytes_is_a_checked_setting() -> None:
    with pytest.raises(ConfigError, match="max_api_bytes"):
        fast_settings(max_api_bytes=10)
    assert fast_settings().max_api_bytes == 32 * 1024 * 1024
