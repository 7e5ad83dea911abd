"""The Internet Archive source: metadata API answers (served by ``responses``) and file bytes
from the real local server, downloaded through the DownloadManager.

``data/`` holds the first, idealised answers; ``fixtures/`` holds answers shaped like real ones
(private FLAC originals, Ogg derivatives without tags, HTML entities, ``original`` chains,
``history/`` old versions, a ``_files.xml`` whose md5 is stale)."""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import zlib
from collections.abc import Callable, Iterator
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
    ServerError,
)
from ripstream.sources.internet_archive import (
    AccessReason,
    ArchiveAccessError,
    ArchiveRef,
    AudioFormat,
    InternetArchiveDownloader,
    parse_archive_url,
)
from tests.support.files import leftovers
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config

DATA = Path(__file__).parent / "data"
FIXTURES = Path(__file__).parent / "fixtures"
API = "https://archive.org"
ALBUM = "meridian-sound-sunset-tapes"
MP3_ALBUM = "lyra-field-recordings-vol1"
FOLDER = Path("The Meridian Sound") / "Sunset Tapes (2009)"
FLAC_NAMES = ["01 - Opening.flac", "02 - Dusk and Dawn.flac", "03 - Closing Time.flac"]


def recorded(name: str, folder: Path = DATA) -> Any:
    return json.loads((folder / f"ia_{name}.json").read_text(encoding="utf-8"))


def files_of(fixture: str, folder: Path = DATA) -> dict[str, dict[str, str]]:
    return {entry["name"]: entry for entry in recorded(fixture, folder)["files"]}


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
    assert leftovers(out_dir) == []
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


# -- answers shaped like real ones ---

SHOW = "pcr1977-04-23.sbd.hollis.8812.flac16"
SHOW_FOLDER = (
    Path("Pinecrest Ramblers") / "Pinecrest Ramblers Live at Hollis Hall on 1977-04-23 (1977)"
)
SHOW_TITLES = [
    "Gravel Road Blues",
    "Lantern Light ->",
    "Mountain Fire",
    "Drums & Space",
    "Rosie's Lament",
]
SHOW_STEMS = ["d1t01", "d1t02", "d1t03", "d2t01", "d2t02"]
PINES = "hollow-pines-quiet-country-2011"
PINES_FOLDER = Path("Hollow Pines") / "Quiet Country & Other Songs (2011)"
FILES_XML_BODY = make_body(3000, seed=7)  # what archive.org serves now, not what it listed


def serve_real(
    api: responses.RequestsMock,
    server: TestServer,
    identifier: str,
    fixture: str,
    change: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, bytes]:
    """Answer the metadata API from ``fixtures/``, after ``change``; serve every listed file."""
    answer = recorded(fixture, FIXTURES)
    if change is not None:
        change(answer)
    api.add(responses.GET, f"{API}/metadata/{identifier}", json=answer)
    api.add_passthru(server.base_url)
    bodies = {}
    for entry in answer["files"]:
        name = entry["name"]
        listing = name == f"{identifier}_files.xml"
        bodies[name] = FILES_XML_BODY if listing else body_of(entry)
        server.add(download_path(identifier, name), bodies[name])
    return bodies


def landed(out_dir: Path) -> dict[str, str]:
    """Every file under ``out_dir`` (relative path) with the md5 of its bytes."""
    return {
        str(p.relative_to(out_dir)): hashlib.md5(p.read_bytes()).hexdigest()
        for p in out_dir.rglob("*")
        if p.is_file()
    }


def md5_of(fixture: str, name: str) -> str:
    return files_of(fixture, FIXTURES)[name]["md5"]


def test_a_stream_only_show_downloads_its_public_mp3s_by_default(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    serve_real(api, server, SHOW, "stream_only_show")
    results = run(config, archive(config, server), f"{API}/details/{SHOW}")
    assert all(r.is_success for r in results), [r.error_message for r in results]
    # the VBR MP3 of every private FLAC, not its 64Kbps MP3; titles unescaped; '>' is not
    # allowed in file names, so '->' lands as '-_'
    expected = {
        str(SHOW_FOLDER / "cover.jpg"): md5_of("stream_only_show", "__ia_thumb.jpg"),
        str(SHOW_FOLDER / "01 Gravel Road Blues.mp3"): md5_of(
            "stream_only_show", "pcr77-04-23d1t01.mp3"
        ),
        str(SHOW_FOLDER / "02 Lantern Light -_.mp3"): md5_of(
            "stream_only_show", "pcr77-04-23d1t02.mp3"
        ),
        str(SHOW_FOLDER / "03 Mountain Fire.mp3"): md5_of(
            "stream_only_show", "pcr77-04-23d1t03.mp3"
        ),
        str(SHOW_FOLDER / "04 Drums & Space.mp3"): md5_of(
            "stream_only_show", "pcr77-04-23d2t01.mp3"
        ),
        str(SHOW_FOLDER / "05 Rosie's Lament.mp3"): md5_of(
            "stream_only_show", "pcr77-04-23d2t02.mp3"
        ),
    }
    assert landed(out_dir) == expected
    requested = {request.path for request in server.requests}
    assert requested  # the downloads went to the local server
    assert not any(path.endswith(".flac") or "/history/" in path for path in requested)


def test_a_stream_only_show_tags_carry_real_titles_track_numbers_and_lengths(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_real(api, server, SHOW, "stream_only_show")
    _, *tracks = archive(config, server).tasks_for_url(f"{API}/details/{SHOW}")
    contents = [t.content for t in tracks if t.content is not None]
    assert [c.metadata["title"] for c in contents] == SHOW_TITLES
    assert [c.metadata["tracknumber"] for c in contents] == [1, 2, 3, 4, 5]
    assert [c.metadata["length"] for c in contents] == [281.36, 592.04, 667.30, 3723.11, 375.58]
    assert {c.metadata["album"] for c in contents} == {
        "Pinecrest Ramblers Live at Hollis Hall on 1977-04-23"
    }


def test_ogg_mode_names_tracks_by_the_titles_of_their_originals(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    serve_real(api, server, SHOW, "stream_only_show")
    source = archive(config, server, audio_format=AudioFormat.OGG)
    results = run(config, source, f"{API}/details/{SHOW}")
    assert all(r.is_success for r in results), [r.error_message for r in results]
    tracks = {k: v for k, v in landed(out_dir).items() if k.endswith(".ogg")}
    assert tracks == {
        str(SHOW_FOLDER / f"{n:02d} {title.replace('>', '_')}.ogg"): md5_of(
            "stream_only_show", f"pcr77-04-23{stem}.ogg"
        )
        for n, (title, stem) in enumerate(zip(SHOW_TITLES, SHOW_STEMS, strict=True), 1)
    }


def test_flac_mode_on_a_stream_only_show_names_every_private_track(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_real(api, server, SHOW, "stream_only_show")
    source = archive(config, server, audio_format=AudioFormat.FLAC)
    with pytest.raises(
        ArchiveAccessError, match=r"none of its 5 track\(s\) has a public flac"
    ) as info:
        source.tasks_for_url(f"{API}/details/{SHOW}")
    assert isinstance(info.value, AuthenticationError)
    error = pickle.loads(pickle.dumps(info.value))
    assert isinstance(error, ArchiveAccessError)
    assert (error.reason, error.identifier) == (AccessReason.PRIVATE, SHOW)
    assert list(error.tracks) == SHOW_TITLES
    assert list(error.files) == [f"pcr77-04-23{stem}.flac" for stem in SHOW_STEMS]
    assert "'Lantern Light ->'" in str(error)
    assert server.requests == []


def test_old_versions_are_never_chosen_nor_downloaded_by_url(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_real(api, server, SHOW, "stream_only_show")
    source = archive(config, server, audio_format=AudioFormat.MP3)
    _, *tracks = source.tasks_for_url(f"{API}/details/{SHOW}")
    assert [t.content_id.split("/", 1)[1] for t in tracks] == [
        f"pcr77-04-23{stem}.mp3" for stem in SHOW_STEMS
    ]
    for name in ("history/files/pcr77-04-23d1t02.mp3.~1~", "history/files/pcr77-04-23.txt.~1~"):
        with pytest.raises(ContentNotFoundError, match="old version"):
            source.tasks_for_url(f"{API}/download/{SHOW}/{quote(name)}")


def test_a_partly_private_album_is_complete_track_by_track(
    api: responses.RequestsMock,
    server: TestServer,
    config: DownloadConfig,
    out_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    serve_real(api, server, PINES, "partly_private_album")
    with caplog.at_level(logging.WARNING):
        results = run(config, archive(config, server), f"{API}/details/{PINES}")
    assert all(r.is_success for r in results), [r.error_message for r in results]
    # track 1's FLAC is public; track 2's FLAC is private, its MP3 public; track 3's WAV, FLAC
    # and MP3 are private, its Ogg (derived from the FLAC, derived from the WAV) is public and
    # takes its title and number from the WAV; track 4 has nothing public
    assert landed(out_dir) == {
        str(PINES_FOLDER / "cover.jpg"): md5_of("partly_private_album", "cover_thumb.jpg"),
        str(PINES_FOLDER / "01 Low Light.flac"): md5_of(
            "partly_private_album", "01. Low Light.flac"
        ),
        str(PINES_FOLDER / "02 Song And Chorus (Take 2).mp3"): md5_of(
            "partly_private_album", "02. Song And Chorus (Take 2).mp3"
        ),
        str(PINES_FOLDER / "03 Hill Road -_ Home.ogg"): md5_of(
            "partly_private_album", "03. Hill Road.ogg"
        ),
    }
    assert "'Last Ferry' (04. Last Ferry.flac)" in caplog.text


def test_originals_of_one_track_in_two_formats_are_one_track(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    def uploaded_mp3s(answer: dict[str, Any]) -> None:
        # uploaders often add their own MP3s beside the FLACs: originals, not linked
        for entry in answer["files"]:
            if entry["format"] == "VBR MP3":
                entry["source"] = "original"
                del entry["original"]

    serve_real(api, server, PINES, "partly_private_album", uploaded_mp3s)
    _, *tracks = archive(config, server).tasks_for_url(f"{API}/details/{PINES}")
    assert [t.content_id.split("/", 1)[1] for t in tracks] == [
        "01. Low Light.flac",
        "02. Song And Chorus (Take 2).mp3",
        "03. Hill Road.ogg",
    ]


def test_an_album_with_nothing_public_raises_naming_its_tracks_in_order(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    def all_private(answer: dict[str, Any]) -> None:
        for entry in answer["files"]:
            if entry["format"] in ("Flac", "VBR MP3", "Ogg Vorbis"):
                entry["private"] = True

    serve_real(api, server, PINES, "partly_private_album", all_private)
    with pytest.raises(ArchiveAccessError, match="Last Ferry") as info:
        archive(config, server).tasks_for_url(f"{API}/details/{PINES}")
    assert info.value.reason is AccessReason.PRIVATE
    assert info.value.tracks == (
        "Low Light",
        "Song And Chorus (Take 2)",
        "Hill Road -> Home",
        "Last Ferry",
    )


def test_a_details_url_with_plus_for_space_finds_its_file(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    bodies = serve_real(api, server, PINES, "partly_private_album")
    source = archive(config, server)
    url = f"{API}/details/{PINES}/02.+Song+And+Chorus+%28Take+2%29.mp3"
    (result,) = run(config, source, url)
    assert result.file_path == out_dir / PINES_FOLDER / "02 Song And Chorus (Take 2).mp3"
    assert result.file_path.read_bytes() == bodies["02. Song And Chorus (Take 2).mp3"]
    # a '+' that is part of the name: the exact name wins
    (task,) = source.tasks_for_url(f"{API}/details/{PINES}/notes+credits.txt")
    assert task.content_id == f"{PINES}/notes+credits.txt"
    with pytest.raises(ContentNotFoundError, match="has no file"):
        source.tasks_for_url(f"{API}/details/{PINES}/05.+Encore.mp3")


def test_a_private_file_url_is_refused_before_any_download(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_real(api, server, PINES, "partly_private_album")
    with pytest.raises(ArchiveAccessError, match="private") as info:
        archive(config, server).get_download_info(f"{PINES}/04. Last Ferry.mp3")
    assert (info.value.tracks, info.value.files) == (("Last Ferry",), ("04. Last Ferry.mp3",))
    assert server.requests == []


def test_the_files_listing_downloads_without_its_stale_md5(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    serve_real(api, server, PINES, "partly_private_album")
    name = f"{PINES}_files.xml"
    assert hashlib.md5(FILES_XML_BODY).hexdigest() != md5_of("partly_private_album", name)
    (result,) = run(config, archive(config, server), f"{API}/download/{PINES}/{name}")
    assert result.is_success, result.error_message
    assert result.file_path is not None
    assert result.file_path.read_bytes() == FILES_XML_BODY


def test_text_fields_are_unescaped_and_boolean_flags_accepted(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    serve_real(api, server, PINES, "partly_private_album")
    item = archive(config, server).fetch_item(PINES)
    assert (item.title, item.year) == ("Quiet Country & Other Songs", 2011)
    ogg = item.file("03. Hill Road.ogg")  # inherits across two originals
    assert (ogg.title, ogg.track, ogg.creator, ogg.album, ogg.private) == (
        "Hill Road -> Home",
        3,
        "Hollow Pines",
        "Quiet Country & Other Songs",
        False,
    )
    assert item.file("02. Song And Chorus (Take 2).flac").private is True  # JSON true
    assert item.file("01. Low Light.mp3").private is False  # JSON false
    assert (item.file("01. Low Light.flac").length, ogg.length) == (192.0, 300.98)


def unavailable(answer: dict[str, Any]) -> None:
    answer["servers_unavailable"] = True
    answer["workable_servers"] = []


def no_download(answer: dict[str, Any]) -> None:
    answer["nodownload"] = True


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (no_download, ArchiveAccessError, "marked nodownload"),
        (unavailable, ServerError, "servers holding item .* are unavailable"),
    ],
)
@pytest.mark.parametrize("file", ["", "/01.+Low+Light.flac"])
def test_an_item_archive_org_will_not_serve_is_refused_with_a_plain_message(
    api: responses.RequestsMock,
    server: TestServer,
    config: DownloadConfig,
    change: Callable[[dict[str, Any]], None],
    error: type[Exception],
    message: str,
    file: str,
) -> None:
    serve_real(api, server, PINES, "partly_private_album", change)
    with pytest.raises(error, match=message):
        archive(config, server).tasks_for_url(f"{API}/details/{PINES}{file}")


def test_one_unavailable_server_of_two_is_not_a_refusal(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig
) -> None:
    def one_down(answer: dict[str, Any]) -> None:
        answer["servers_unavailable"] = True
        answer["workable_servers"] = [answer["d2"]]

    serve_real(api, server, PINES, "partly_private_album", one_down)
    tasks = archive(config, server).tasks_for_url(f"{API}/details/{PINES}")
    assert len(tasks) == 4


@pytest.mark.parametrize("body", [{}, []])
def test_an_empty_answer_is_content_not_found(
    api: responses.RequestsMock, config: DownloadConfig, body: Any
) -> None:
    api.add(responses.GET, f"{API}/metadata/no-such-item-y", json=body)
    with pytest.raises(ContentNotFoundError, match="'no-such-item-y' does not exist"):
        InternetArchiveDownloader(config).tasks_for_url(f"{API}/details/no-such-item-y")
