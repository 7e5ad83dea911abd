"""InlineFetcher: bytes a source already holds (a generated playlist) are written, not fetched,
exactly, and checked against the content's checksum like any download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ripstream.downloader import ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.exceptions import ChecksumError
from ripstream.downloader.fetch import FetcherRegistry, InlineFetcher
from ripstream.sources.http import HttpDownloader
from tests.support.files import leftovers
from tests.support.httpserver import TestServer
from tests.support.settings import fast_settings, make_config

PLAYLIST = "#EXTM3U\n01 - Intro.flac\n02 - Song \u00e9t\u00e9.flac\n".encode()


def inline(data: bytes, checksum: str | None = None) -> DownloadableContent:
    return DownloadableContent(
        content_id="album-1-playlist",
        content_type=ContentType.PLAYLIST,
        source="http",
        title="Album",
        url="http://127.0.0.1:9/never-fetched.m3u8",
        filename="Album.m3u8",
        data=data,
        checksum=checksum,
    )


def test_inline_bytes_are_written_exactly_without_a_request(
    server: TestServer, out_dir: Path
) -> None:
    digest = hashlib.sha256(PLAYLIST).hexdigest()
    with HttpDownloader(make_config(out_dir)) as http:
        result = http.download(inline(PLAYLIST, f"sha256:{digest}"))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert (out_dir / "Album.m3u8").read_bytes() == PLAYLIST
    assert result.checksum == digest
    assert result.total_bytes == result.bytes_downloaded == len(PLAYLIST)
    assert server.requests == []
    assert leftovers(out_dir) == []


def test_empty_inline_data_is_an_empty_file(out_dir: Path) -> None:
    with HttpDownloader(make_config(out_dir)) as http:
        result = http.download(inline(b""))
    assert result.status is ResultStatus.COMPLETED
    assert (out_dir / "Album.m3u8").read_bytes() == b""


def test_a_wrong_digest_fails_and_leaves_nothing(out_dir: Path) -> None:
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = http.download(inline(PLAYLIST, "md5:" + "0" * 32))
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, ChecksumError)
    assert result.error.actual == hashlib.md5(PLAYLIST).hexdigest()
    assert not (out_dir / "Album.m3u8").exists()
    assert leftovers(out_dir) == []


@pytest.mark.parametrize("segments", [1, 4])
def test_inline_content_is_chosen_before_streams_and_segments(segments: int) -> None:
    settings = fast_settings(segments=segments)
    registry = FetcherRegistry.default()
    assert isinstance(registry.choose(inline(b"x"), settings), InlineFetcher)
    fetched = DownloadableContent(
        content_id="c", content_type=ContentType.FILE, source="http", title="t", url="http://h/x"
    )
    chosen = registry.choose(fetched, settings)
    assert chosen.name == ("segments" if segments > 1 else "stream")
    assert not InlineFetcher().suitable(fetched, settings)
