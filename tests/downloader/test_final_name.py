"""The ``final_name`` and ``placed`` hooks: a source names a file from its verified bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import BaseDownloader, ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.engine import DownloadEngine
from ripstream.downloader.exceptions import ResponseMismatchError, TargetExistsError
from ripstream.downloader.plugin import FinalName
from ripstream.downloader.progress import ProgressState, ProgressTracker
from ripstream.downloader.services import EngineServices
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


class Titled(Sniffing):
    """Names every file after its title, as a source that knows its tracks' names would."""

    def final_name(self, content: DownloadableContent, part: Path, path: Path) -> FinalName | None:
        return FinalName(f"{content.title}.mp3", "named after its title")


def test_a_name_the_source_gives_is_made_safe(server: TestServer, out_dir: Path) -> None:
    server.add("/song", MP3)
    with Titled(make_config(out_dir), base_url=server.base_url) as source:
        content = source.get_download_info("song")
        content.title = 'Live: "Best"?'  # from the service's metadata
        result = source.download(content)
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sorted(p.name for p in out_dir.iterdir()) == ["Live_ _Best_.mp3"]
    assert result.file_path == out_dir / "Live_ _Best_.mp3"
    assert _sha(result.file_path.read_bytes()) == _sha(MP3)


def _tagger(content: DownloadableContent, part: Path, final: Path, values: Any) -> str:
    return "tags written"


def test_the_note_of_the_new_name_and_the_taggers_note_both_reach_the_result(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/song", MP3)
    engine = DownloadEngine(EngineServices(post_processors=(_tagger,)))
    with Sniffing(make_config(out_dir), base_url=server.base_url) as source:
        result = engine.run(source, source.get_download_info("song"))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.message == "the bytes are MP3: saved as .mp3; tags written"


def test_a_file_that_appears_at_the_new_name_is_kept_and_the_failure_names_it(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/song", MP3)

    def another_program(content: DownloadableContent, part: Path, final: Path, values: Any) -> None:
        final.write_bytes(b"another program's file")  # while the download is tagged

    engine = DownloadEngine(EngineServices(post_processors=(another_program,)))
    with Sniffing(make_config(out_dir), base_url=server.base_url) as source:
        result = engine.run(source, source.get_download_info("song"))
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, TargetExistsError), result.error
    assert result.file_path == out_dir / "song.mp3"
    assert (out_dir / "song.mp3").read_bytes() == b"another program's file"
    kept = [p for p in out_dir.iterdir() if p.is_file() and _sha(p.read_bytes()) == _sha(MP3)]
    assert len(kept) == 1  # the downloaded bytes are kept aside


def test_a_new_name_over_a_file_with_other_content_is_not_skipped_as_the_same(
    server: TestServer, out_dir: Path
) -> None:
    (out_dir / "song.mp3").write_bytes(b"older")
    server.add("/song", MP3)
    with Sniffing(make_config(out_dir, overwrite="skip"), base_url=server.base_url) as source:
        content = source.get_download_info("song")
        content.checksum = f"sha256:{_sha(MP3)}"
        result = source.download(content)
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, TargetExistsError)
    assert "exists with different content" in str(result.error)
    assert (out_dir / "song.mp3").read_bytes() == b"older"


def test_a_new_name_renamed_avoids_the_names_other_downloads_of_the_run_hold(
    server: TestServer, out_dir: Path
) -> None:
    (out_dir / "song.mp3").write_bytes(b"older")
    server.add("/song", MP3)
    services = EngineServices()
    services.claims.claim(out_dir / "song (1).mp3")  # another download renamed there first
    config = make_config(out_dir, overwrite="rename")
    with Sniffing(config, base_url=server.base_url) as source:
        result = DownloadEngine(services).run(source, source.get_download_info("song"))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.file_path == out_dir / "song (2).mp3"
    assert _sha((out_dir / "song (2).mp3").read_bytes()) == _sha(MP3)
    assert (out_dir / "song.mp3").read_bytes() == b"older"


def test_a_new_name_that_is_skipped_does_not_show_as_a_failed_download(
    server: TestServer, out_dir: Path
) -> None:
    (out_dir / "song.mp3").write_bytes(MP3)  # the user has it already
    server.add("/song", MP3)
    tracker = ProgressTracker(min_interval=0)
    states: list[ProgressState] = []
    tracker.add_callback(lambda download_id, progress: states.append(progress.state))
    engine = DownloadEngine(EngineServices(tracker=tracker))
    with Sniffing(make_config(out_dir, overwrite="skip"), base_url=server.base_url) as source:
        result = engine.run(source, source.get_download_info("song"))
    assert result.status is ResultStatus.SKIPPED, result.error
    assert states[-1] is ProgressState.COMPLETED
    assert sorted(p.name for p in out_dir.iterdir()) == ["song.mp3"]
