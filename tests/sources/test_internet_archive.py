"""The Internet Archive source: recorded metadata API answers (served by ``responses``) and file
bytes from the real local server, downloaded through the DownloadManager."""

from __future__ import annotations

import hashlib
import json
import pickle
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import responses

from ripstream.downloader import (
    ContentType,
    DownloadConfig,
    DownloadManager,
    DownloadQueue,
    DownloadResult,
)
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ChecksumError,
    ConfigError,
    ContentNotFoundError,
    ResponseMismatchError,
)
from ripstream.sources.internet_archive import (
    AccessReason,
    ArchiveAccessError,
    ArchiveRef,
    AudioFormat,
    InternetArchiveDownloader,
    parse_archive_url,
)
from tests.conftest import make_config
from tests.support.httpserver import TestServer, make_body

DATA = Path(__file__).parent / "data"
API = "https://archive.org"
ALBUM = "meridian-sound-sunset-tapes"
MP3_ALBUM = "lyra-field-recordings-vol1"
FOLDER = Path("The Meridian Sound") / "Sunset Tapes (2009)"
FLAC_NAMES = ["01 - Opening.flac", "02 - Dusk and Dawn.flac", "03 - Closing Time.flac"]


def recorded(name: str) -> Any:
    return json.loads((DATA / f"ia_{name}.json").read_text(encoding="utf-8"))


def files_of(fixture: str) -> dict[str, dict[str, str]]:
    return {entry["name"]: entry for entry in recorded(fixture)["files"]}


def body_of(entry: dict[str, str]) -> bytes:
    """The bytes the recorded size and md5 describe (the fixtures were made from these)."""
    body = make_body(int(entry["size"]), seed=zlib.crc32(entry["name"].encode()))
    assert hashlib.md5(body).hexdigest() == entry["md5"]
    return body


def download_path(identifier: str, name: str) -> str:
    return f"/download/{identifier}/{quote(name)}"


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def config(out_dir: Path) -> DownloadConfig:
    config = make_config(out_dir)
    config.write_tags = False  # the bodies are random bytes, not real FLAC; compare them as such
    return config


def serve_item(
    api: responses.RequestsMock,
    server: TestServer,
    identifier: str,
    fixture: str,
    corrupt: tuple[str, ...] = (),
) -> dict[str, bytes]:
    """Answer the metadata API from ``fixture``; serve every file with a size from ``server``."""
    api.add(responses.GET, f"{API}/metadata/{identifier}", json=recorded(fixture))
    api.add_passthru(server.base_url)
    bodies = {}
    for name, entry in files_of(fixture).items():
        if "size" in entry:
            body = bodies[name] = body_of(entry)
            if name in corrupt:
                body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
            server.add(download_path(identifier, name), body)
    return bodies


def archive(config: DownloadConfig, server: TestServer, **kwargs: Any) -> InternetArchiveDownloader:
    return InternetArchiveDownloader(config, download_base=server.base_url, **kwargs)


def run(config: DownloadConfig, source: InternetArchiveDownloader, url: str) -> list[Any]:
    queue = DownloadQueue()
    queue.add_tasks(source.tasks_for_url(url))
    with DownloadManager(config, downloaders=[source]) as manager:
        return manager.run(queue)


def by_id(results: list[DownloadResult]) -> dict[str, DownloadResult]:
    return {result.content_id.split("/", 1)[1]: result for result in results}


# -- URLs ---


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://archive.org/details/gd1977-05-08", ArchiveRef("gd1977-05-08")),
        ("http://archive.org/details/gd1977-05-08/", ArchiveRef("gd1977-05-08")),
        ("https://www.archive.org/details/gd1977-05-08?tab=about#x", ArchiveRef("gd1977-05-08")),
        ("https://ARCHIVE.org/details/My_Item.2", ArchiveRef("My_Item.2")),
        (
            "https://archive.org/details/x1/01%20-%20Song.flac",
            ArchiveRef("x1", "01 - Song.flac", "01 - Song.flac"),
        ),
        (
            "https://archive.org/details/x1/disc 2/a.mp3",
            ArchiveRef("x1", "disc 2/a.mp3", "disc 2/a.mp3"),
        ),
        ("https://archive.org/download/x1/a.ogg", ArchiveRef("x1", "a.ogg", "a.ogg")),
        # details pages write spaces as '+'; %2B is a real '+'
        (
            "https://archive.org/details/x1/02.02.+Song+And+Chorus%2B.mp3",
            ArchiveRef("x1", "02.02.+Song+And+Chorus+.mp3", "02.02. Song And Chorus+.mp3"),
        ),
        ("https://archive.org/search?query=dead", None),
        ("https://archive.org/details/", None),
        ("https://archive.org/details/-bad", None),
        ("https://example.org/details/gd1977-05-08", None),
        ("https://archive.org.example.com/details/gd1977-05-08", None),
        ("ftp://archive.org/details/gd1977-05-08", None),
        ("https://archive.org/stream/gd1977-05-08", None),
        ("gd1977-05-08", None),
        ("http://[::1/details/x", None),
    ],
)
def test_urls_claimed(url: str, expected: ArchiveRef | None) -> None:
    assert parse_archive_url(url) == expected
    assert InternetArchiveDownloader.claims_url(url) is (expected is not None)


def test_the_registry_sends_archive_urls_here_and_lists_the_source() -> None:
    from ripstream.sources import HttpDownloader, load_registry

    registry = load_registry(plugins=False)
    assert registry.for_url(f"{API}/details/{ALBUM}") is InternetArchiveDownloader
    assert registry.get("internet_archive") is InternetArchiveDownloader
    assert registry.for_url("https://example.org/a.flac") is HttpDownloader
    assert InternetArchiveDownloader.required_credentials == ()
    assert InternetArchiveDownloader.description
    assert InternetArchiveDownloader.url_patterns


# -- format choice, order, dependencies ---


def test_an_album_is_the_cover_then_flac_originals_in_track_order(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_item(api, server, ALBUM, "album")
    tasks = archive(config, server).tasks_for_url(f"{API}/details/{ALBUM}")
    cover, *tracks = tasks
    assert cover.content_type is ContentType.COVER
    assert cover.content_id == f"{ALBUM}/cover.jpg"  # the largest JPEG original
    assert cover.file_path == str(FOLDER / "cover.jpg")
    assert all(cover.priority > track.priority for track in tracks)
    assert [t.content_id.split("/", 1)[1] for t in tracks] == FLAC_NAMES  # 24bit Flac included
    assert all(t.after == [cover.task_id] and t.dependencies == [] for t in tracks)
    assert all(t.content_type is ContentType.TRACK for t in tracks)
    second = tracks[1].content
    assert second is not None
    expected_md5 = files_of("album")["02 - Dusk and Dawn.flac"]["md5"]
    assert (second.checksum, second.size, second.file_extension) == (
        f"md5:{expected_md5}",
        287406,
        "flac",
    )
    assert second.url == server.url(download_path(ALBUM, "02 - Dusk and Dawn.flac"))
    assert {k: second.metadata[k] for k in ("title", "artist", "albumartist", "album")} == {
        "title": "Dusk/Dawn",
        "artist": "The Meridian Sound feat. Lyra",
        "albumartist": "The Meridian Sound",
        "album": "Sunset Tapes",
    }
    assert [t.content.metadata["tracknumber"] for t in tracks if t.content] == [1, 2, 3]
    assert {t.content.metadata["discnumber"] for t in tracks if t.content} == {1}
    assert second.metadata["year"] == 2009
    # the tasks survive the queue's JSON (the process executor path)
    queue = DownloadQueue()
    queue.add_tasks(tasks)
    assert [t.file_path for t in DownloadQueue.from_json(queue.to_json())] == [
        t.file_path for t in tasks
    ]


@pytest.mark.parametrize(
    ("audio_format", "extension", "format_name"),
    [
        (AudioFormat.MP3, "mp3", "VBR MP3"),  # not the 64Kbps MP3 of the same original
        ("mp3", "mp3", "VBR MP3"),
        (AudioFormat.OGG, "ogg", "Ogg Vorbis"),
        (AudioFormat.FLAC, "flac", "Flac"),
    ],
)
def test_an_explicit_format_is_honoured(
    api: responses.RequestsMock,
    server: TestServer,
    config: DownloadConfig,
    audio_format: AudioFormat | str,
    extension: str,
    format_name: str,
) -> None:
    serve_item(api, server, ALBUM, "album")
    source = archive(config, server, audio_format=audio_format)
    _, *tracks = source.tasks_for_url(f"{API}/details/{ALBUM}")
    stems = [Path(name).stem for name in FLAC_NAMES]
    assert [t.content_id.split("/", 1)[1] for t in tracks] == [f"{s}.{extension}" for s in stems]
    assert tracks[0].content is not None
    assert tracks[0].content.metadata["format"] == format_name


def test_the_class_default_format_applies_when_none_is_given(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    class OggArchive(InternetArchiveDownloader):
        default_audio_format = AudioFormat.OGG

    serve_item(api, server, ALBUM, "album")
    _, *tracks = OggArchive(config, download_base=server.base_url).tasks_for_url(
        f"{API}/details/{ALBUM}"
    )
    assert all(t.content_id.endswith(".ogg") for t in tracks)


def test_an_mp3_item_defaults_to_mp3_with_the_item_tile_and_skips_private_files(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_item(api, server, MP3_ALBUM, "mp3_album")
    cover, *tracks = archive(config, server).tasks_for_url(f"{API}/details/{MP3_ALBUM}")
    assert cover.content_id == f"{MP3_ALBUM}/__ia_thumb.jpg"
    folder = Path("Lyra, Harbour Field Recordists") / "Field Recordings, Vol. 1 (2014)"
    assert cover.file_path == str(folder / "cover.jpg")
    assert [t.content_id for t in tracks] == [
        f"{MP3_ALBUM}/track01.mp3",
        f"{MP3_ALBUM}/track02.mp3",
    ]
    # no track fields: numbered by position; no file creator: the item's
    first = tracks[1].content
    assert first is not None
    assert (first.metadata["tracknumber"], first.metadata["artist"]) == (
        2,
        "Lyra, Harbour Field Recordists",
    )


def test_a_format_the_item_lacks_is_content_not_found(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_item(api, server, MP3_ALBUM, "mp3_album")
    source = archive(config, server, audio_format=AudioFormat.FLAC)
    with pytest.raises(ContentNotFoundError, match=r"no flac audio.*Ogg Vorbis, VBR MP3"):
        source.tasks_for_url(f"{API}/details/{MP3_ALBUM}")


def test_an_unknown_audio_format_is_a_config_error(config: DownloadConfig) -> None:
    with pytest.raises(ConfigError) as info:
        InternetArchiveDownloader(config, audio_format="wav")
    assert info.value.field == "audio_format"


# -- errors ---


def test_an_unknown_identifier_is_content_not_found(
    api: responses.RequestsMock, config: DownloadConfig
) -> None:
    api.add(responses.GET, f"{API}/metadata/no-such-item-x", json=recorded("unknown"))
    with pytest.raises(ContentNotFoundError, match="no-such-item-x") as info:
        InternetArchiveDownloader(config).tasks_for_url(f"{API}/details/no-such-item-x")
    assert info.value.source == "internet_archive"
    assert pickle.loads(pickle.dumps(info.value)).url == f"{API}/metadata/no-such-item-x"


def test_a_dark_item_is_content_not_found(
    api: responses.RequestsMock, config: DownloadConfig
) -> None:
    api.add(responses.GET, f"{API}/metadata/withdrawn-live-set-1998", json=recorded("dark"))
    with pytest.raises(ContentNotFoundError, match="dark"):
        InternetArchiveDownloader(config).tasks_for_url(f"{API}/details/withdrawn-live-set-1998")


def test_private_lending_only_audio_is_an_authentication_error(
    api: responses.RequestsMock, config: DownloadConfig
) -> None:
    identifier = "lp_night-songs_orchestra-nova"
    api.add(responses.GET, f"{API}/metadata/{identifier}", json=recorded("restricted"))
    with pytest.raises(AuthenticationError, match="access-restricted") as info:
        InternetArchiveDownloader(config).tasks_for_url(f"{API}/details/{identifier}")
    assert isinstance(info.value, ArchiveAccessError)
    assert (info.value.reason, info.value.tracks) == (AccessReason.LENDING, ("Night Song",))
    assert pickle.loads(pickle.dumps(info.value)).files == ("01 - Night Song.flac",)


@pytest.mark.parametrize(
    "body",
    [
        "not found",
        {"files": []},
        {"metadata": {"title": "x"}, "files": {"name": "a.mp3"}},
        {"metadata": {"title": "x"}, "files": [{"format": "VBR MP3"}]},
        {"metadata": {"title": "x"}, "files": [{"name": "a.mp3", "size": "12 kB"}]},
        {"metadata": {"title": {"en": "x"}}, "files": []},
    ],
)
def test_a_malformed_answer_is_a_response_mismatch(
    api: responses.RequestsMock, config: DownloadConfig, body: Any
) -> None:
    api.add(responses.GET, f"{API}/metadata/odd-item", json=body)
    with pytest.raises(ResponseMismatchError, match=r"archive\.org metadata API"):
        InternetArchiveDownloader(config).fetch_item("odd-item")


def test_transient_api_failures_are_retried(
    api: responses.RequestsMock, config: DownloadConfig
) -> None:
    url = f"{API}/metadata/{ALBUM}"
    api.add(responses.GET, url, status=503)
    api.add(responses.GET, url, json={"error": "metadata read failure"})
    api.add(responses.GET, url, json=recorded("album"))
    item = InternetArchiveDownloader(config).fetch_item(ALBUM)
    assert (item.title, item.creator, item.year) == ("Sunset Tapes", "The Meridian Sound", 2009)
    assert len(api.calls) == 3


# -- downloads ---


def test_an_album_downloads_into_its_folder_with_exact_bytes(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    bodies = serve_item(api, server, ALBUM, "album")
    results = run(config, archive(config, server), f"{API}/details/{ALBUM}")
    assert all(result.is_success for result in results), [r.error_message for r in results]
    folder = out_dir / FOLDER
    expected = {
        "cover.jpg": bodies["cover.jpg"],
        "01 Opening.flac": bodies["01 - Opening.flac"],
        "02 Dusk_Dawn.flac": bodies["02 - Dusk and Dawn.flac"],
        "03 Closing Time.flac": bodies["03 - Closing Time.flac"],
    }
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == expected
    assert {p for p in out_dir.rglob("*") if p.is_file()} == {folder / n for n in expected}
    assert server.requests[0].path == download_path(ALBUM, "cover.jpg")  # before any track
    assert (
        by_id(results)["02 - Dusk and Dawn.flac"].checksum
        == hashlib.md5(bodies["02 - Dusk and Dawn.flac"]).hexdigest()
    )


def test_a_corrupted_file_fails_its_md5_after_one_refetch(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    broken = "02 - Dusk and Dawn.flac"
    serve_item(api, server, ALBUM, "album", corrupt=(broken,))
    results = by_id(run(config, archive(config, server), f"{API}/details/{ALBUM}"))
    error = results[broken].error
    assert isinstance(error, ChecksumError)
    assert (error.algorithm, error.expected) == ("md5", files_of("album")[broken]["md5"])
    assert len(server.requests_for(download_path(ALBUM, broken))) == 2
    assert not (out_dir / FOLDER / "02 Dusk_Dawn.flac").exists()
    assert not list(out_dir.rglob("*.part"))
    assert results["01 - Opening.flac"].is_success
    assert results["03 - Closing Time.flac"].is_success


def test_a_failed_cover_does_not_cost_the_tracks(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    bodies = serve_item(api, server, ALBUM, "album", corrupt=("cover.jpg",))
    results = by_id(run(config, archive(config, server), f"{API}/details/{ALBUM}"))
    assert isinstance(results["cover.jpg"].error, ChecksumError)
    assert all(results[name].is_success for name in FLAC_NAMES)
    landed = {p.name: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    assert "cover.jpg" not in landed
    assert all(
        landed[Path(results[name].file_path or "").name] == bodies[name] for name in FLAC_NAMES
    )


def test_the_cover_follows_a_custom_template(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    config.filename_template = (
        "{albumartist} - {album}/{discnumber}-{tracknumber:02d} {title}.{ext}"
    )
    serve_item(api, server, ALBUM, "album")
    source = archive(config, server)
    cover, first, *_ = source.tasks_for_url(f"{API}/details/{ALBUM}")
    assert cover.file_path == str(Path("The Meridian Sound - Sunset Tapes") / "cover.jpg")
    assert first.content is not None
    track_path = source.target_path(first.content)
    assert track_path.name == "1-01 Opening.flac"
    assert source.target_path(cover.to_content(), cover.file_path) == track_path.with_name(
        "cover.jpg"
    )


# -- single files ---


def test_a_single_file_url_gives_one_task_and_lands_in_the_album_folder(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    bodies = serve_item(api, server, ALBUM, "album")
    name = "03 - Closing Time.mp3"
    (task,) = archive(config, server).tasks_for_url(f"{API}/details/{ALBUM}/{quote(name)}")
    assert (task.content_type, task.dependencies, task.file_path) == (ContentType.TRACK, [], None)
    results = run(config, archive(config, server), f"{API}/details/{ALBUM}/{quote(name)}")
    assert [r.file_path for r in results] == [out_dir / FOLDER / "03 Closing Time.mp3"]
    assert (out_dir / FOLDER / "03 Closing Time.mp3").read_bytes() == bodies[name]


def test_get_download_info_resolves_identifier_slash_name(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    bodies = serve_item(api, server, ALBUM, "album")
    source = archive(config, server)
    content = source.get_download_info(f"{ALBUM}/01 - Opening.ogg")
    assert (content.content_type, content.title, content.file_extension) == (
        ContentType.TRACK,
        "Opening",
        "ogg",
    )
    result = source.download(content, raise_on_error=True)
    assert result.file_path == out_dir / FOLDER / "01 Opening.ogg"
    assert result.file_path.read_bytes() == bodies["01 - Opening.ogg"]
    other = source.get_download_info(f"{ALBUM}/{ALBUM}_meta.xml")
    assert (other.content_type, other.filename) == (ContentType.FILE, f"{ALBUM}_meta.xml")
    with pytest.raises(ContentNotFoundError, match="no file"):
        source.get_download_info(f"{ALBUM}/04 - Encore.flac")
    with pytest.raises(ConfigError, match="names no file"):
        source.get_download_info(ALBUM)
