"""The ``final_name`` and ``placed`` hooks: a source names a file from its verified bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import BaseDownloader, ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.exceptions import ResponseMismatchError
from ripstream.downloader.plugin import FinalName
from tests.support.files import leftovers
from tests.support.httpserver import TestServer
from tests.support.settings import make_config

MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb" + bytes(500)
PAGE = b"<html><body>Oops</body></html>"


class Sniffing(BaseDownloader):
    """Calls a file ``.mp3`` when its bytes say so, refuses HTML, records where files went."""

    source_name = "sniffing"
    supported_content_types = [ContentType.TRACK]  # noqa: RUF012

    def __init__(self, *args: Any, base_url: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.base_url = base_url
        self.places: dict[str, Path] = {}

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        return DownloadableContent(
            content_id=content_id,
            content_type=ContentType.TRACK,
            source=self.source_name,
            title=content_id,
            url=f"{self.base_url}/{content_id}",
            filename=f"{content_id}.flac",
        )

    def final_name(self, content: DownloadableContent, part: Path, path: Path) -> FinalName | None:
        head = part.read_bytes()[:16]
        if head.startswith(b"<html"):
            raise ResponseMismatchError("an HTML page, not audio", source=self.source_name)
        if head.startswith(b"ID3") and path.suffix != ".mp3":
            return FinalName(f"{path.stem}.mp3", "the bytes are MP3: saved as .mp3")
        return None

    def placed(self, content: DownloadableContent, path: Path) -> None:
        self.places[content.content_id] = path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_source_renames_the_file_after_its_bytes(server: TestServer, out_dir: Path) -> None:
    server.add("/song", MP3)
    with Sniffing(make_config(out_dir), base_url=server.base_url) as source:
        result = source.download(source.get_download_info("song"))
    assert result.status is ResultStatus.COMPLETED
    assert result.file_path == out_dir / "song.mp3"
    assert result.message == "the bytes are MP3: saved as .mp3"
    assert sorted(p.name for p in out_dir.iterdir()) == ["song.mp3"]
    assert _sha((out_dir / "song.mp3").read_bytes()) == _sha(MP3)
    assert source.places == {"song": out_dir / "song.mp3"}


@pytest.mark.parametrize(
    ("policy", "status", "names", "placed"),
    [
        ("rename", ResultStatus.COMPLETED, ["song (1).mp3", "song.mp3"], "song (1).mp3"),
        ("skip", ResultStatus.SKIPPED, ["song.mp3"], "song.mp3"),
        ("overwrite", ResultStatus.COMPLETED, ["song.mp3"], "song.mp3"),
    ],
)
def test_the_new_name_follows_the_overwrite_policy(
    server: TestServer,
    out_dir: Path,
    policy: str,
    status: ResultStatus,
    names: list[str],
    placed: str,
) -> None:
    (out_dir / "song.mp3").write_bytes(b"older")
    server.add("/song", MP3)
    with Sniffing(make_config(out_dir, overwrite=policy), base_url=server.base_url) as source:
        result = source.download(source.get_download_info("song"))
    assert result.status is status
    assert sorted(p.name for p in out_dir.iterdir()) == names  # no .part left behind
    assert result.file_path == out_dir / placed
    assert source.places == {"song": out_dir / placed}
    expected = b"older" if policy == "skip" else MP3
    assert (out_dir / placed).read_bytes() == expected


def test_a_refusal_fails_the_download_and_discards_the_bytes(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/song", PAGE)
    with Sniffing(make_config(out_dir), base_url=server.base_url) as source:
        result = source.download(source.get_download_info("song"))
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, ResponseMismatchError)
    assert list(out_dir.iterdir()) == []
    assert leftovers(out_dir) == []
    assert source.places == {}
