"""The subsonic source end to end, against a real Supysonic server serving a generated library."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mutagen
import pytest
import requests

from ripstream.app.config import AppConfig
from ripstream.app.wiring import build_source
from ripstream.downloader import DownloadConfig, DownloadManager, DownloadQueue, DownloadTask
from ripstream.downloader.content import ContentType, DownloadResult, ResultStatus
from ripstream.downloader.exceptions import AuthenticationError, ConfigError, DownloadError
from ripstream.library.archive import ArchiveHook, DownloadArchive
from ripstream.library.tags import TagWriter
from ripstream.sources import load_registry
from ripstream.sources.subsonic import SubsonicDownloader
from ripstream.sources.subsonic_api import Album, SubsonicClient
from tests.support.audio import GeneratedAlbum, GeneratedTrack
from tests.support.files import leftovers
from tests.support.settings import make_config
from tests.support.subsonic import SubsonicServer, running_subsonic


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubsonicServer]:
    with running_subsonic(tmp_path_factory.mktemp("subsonic")) as running:
        yield running


@dataclasses.dataclass
class Run:
    """What one run through the manager produced."""

    tasks: list[DownloadTask]
    queue: DownloadQueue
    results: list[DownloadResult]
    order: list[tuple[ContentType, DownloadResult]]
    downloads: int  # requests to the server's download endpoint


def _source(
    config: DownloadConfig,
    server: SubsonicServer,
    password: str | None = None,
    *,
    tags: bool = False,
) -> SubsonicDownloader:
    source = SubsonicDownloader(config, post_processors=[TagWriter()] if tags else [])
    source.authenticate({"username": server.username, "password": password or server.password})
    return source


def _url(server: SubsonicServer, kind: str, item: str, *, user: bool = True) -> str:
    who = f"{server.username}@" if user else ""
    return f"subsonic://{who}{server.host}:{server.port}/{kind}/{item}"


def _run(source: SubsonicDownloader, url: str, archive: DownloadArchive | None = None) -> Run:
    downloads = 0
    lock = threading.Lock()

    def count(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        nonlocal downloads
        if "/rest/download.view" in response.request.path_url:
            with lock:
                downloads += 1

    source.session.http.hooks["response"].append(count)
    tasks = source.tasks_for_url(url)
    queue = DownloadQueue()
    queue.add_tasks(tasks)
    order: list[tuple[ContentType, DownloadResult]] = []
    hooks = [ArchiveHook(archive)] if archive is not None else []
    with DownloadManager(source.config, downloaders=[source], hooks=hooks) as manager:
        results = manager.run(queue, on_result=lambda t, r: order.append((t.content_type, r)))
    return Run(tasks, queue, results, order, downloads)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _track_path(out: Path, track: GeneratedTrack) -> Path:
    name = f"{track.disc}-{track.track:02d} {track.title}.{track.suffix}"
    return out / track.album_artist / f"{track.album} ({track.year})" / name


def _album_folder(out: Path, album: GeneratedAlbum) -> Path:
    return out / album.artist / f"{album.name} ({album.year})"


def _m3u_paths(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U"
    assert all(line.startswith("#EXTINF:") for line in lines[1::2])
    return lines[2::2]


# --------------------------------------------------------------------------- registry, URLs


def test_the_registry_dispatches_subsonic_urls_to_this_source() -> None:
    registry = load_registry(plugins=False)
    assert registry.get("subsonic") is SubsonicDownloader
    assert (
        registry.for_url("subsonics://me@music.example.org:4533/album/al-1") is SubsonicDownloader
    )
    assert SubsonicDownloader.claims_url("subsonic://host/playlist/7")
    assert SubsonicDownloader.claims_url("subsonic://host/artist/7")
    assert SubsonicDownloader.claims_url("subsonic://host/song/7")
    assert not SubsonicDownloader.claims_url("subsonic://host/genre/7")
    assert not SubsonicDownloader.claims_url("https://host/album/7")
    assert SubsonicDownloader.required_credentials == ("password",)
    assert SubsonicDownloader.url_patterns
    assert SubsonicDownloader.description


# --------------------------------------------------------------------------- albums


def test_album_downloads_cover_then_original_tracks_then_playlist(
    server: SubsonicServer, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "out")
    album = server.library.album("Deep Water")
    run = _run(_source(config, server), _url(server, "album", server.album_ids[album.name]))

    assert [r.status for r in run.results] == [ResultStatus.COMPLETED] * 5
    kinds = [kind for kind, _ in run.order]
    assert kinds == [ContentType.COVER, *[ContentType.TRACK] * 3, ContentType.PLAYLIST]
    folder = _album_folder(config.download_directory, album)
    for track in album.tracks:  # original files, byte for byte, placed by the template
        assert _sha(_track_path(config.download_directory, track)) == track.sha256
    assert (folder / "1-02 Riptide.flac").exists()  # albumartist, not the featuring artist
    assert (folder / "2-01 Abyssal Plain.flac").exists()
    assert _sha(folder / "cover.png") == album.cover_sha256
    assert _m3u_paths(folder / "Deep Water.m3u8") == [
        "1-01 Undertow.flac",
        "1-02 Riptide.flac",
        "2-01 Abyssal Plain.flac",
    ]
    assert "#EXTINF:2,Null Set feat. Guest Voice - Riptide" in (
        folder / "Deep Water.m3u8"
    ).read_text(encoding="utf-8")
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "cover.png",
            "Deep Water.m3u8",
            "1-01 Undertow.flac",
            "1-02 Riptide.flac",
            "2-01 Abyssal Plain.flac",
        ]
    )  # no .part files or sidecars left
    assert run.downloads == 3


def test_tags_written_into_the_downloaded_tracks(server: SubsonicServer, tmp_path: Path) -> None:
    config = make_config(tmp_path / "out")
    album = server.library.album("First Light")
    url = _url(server, "album", server.album_ids[album.name])
    run = _run(_source(config, server, tags=True), url)
    assert all(r.status is ResultStatus.COMPLETED for r in run.results)
    assert [r.message for r in run.results] == [None] * 5  # no "tags not written" note
    for track in album.tracks:
        tags = mutagen.File(_track_path(config.download_directory, track), easy=True)
        assert tags["title"] == [track.title]
        assert tags["artist"] == [track.artist]
        assert tags["albumartist"] == [track.album_artist]
        assert tags["album"] == [track.album]
        assert str(tags["date"][0]).startswith(str(track.year))
        assert tags["tracknumber"][0].split("/")[0] == str(track.track)
        assert tags["discnumber"][0].split("/")[0] == str(track.disc)


def test_an_album_without_a_cover_on_the_server_skips_the_cover(
    server: SubsonicServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SubsonicClient.get_album

    def without_cover(self: SubsonicClient, album_id: str) -> Album:
        album = real(self, album_id)  # the server answers "Invalid ID" for this cover
        return dataclasses.replace(album, cover_art="no-such-cover")

    monkeypatch.setattr(SubsonicClient, "get_album", without_cover)
    config = make_config(tmp_path / "out")
    album = server.library.album("First Light")
    run = _run(_source(config, server), _url(server, "album", server.album_ids[album.name]))
    assert [kind for kind, _ in run.order] == [*[ContentType.TRACK] * 3, ContentType.PLAYLIST]
    assert all(r.status is ResultStatus.COMPLETED for r in run.results)
    assert not list(_album_folder(config.download_directory, album).glob("cover.*"))


def test_an_error_document_is_never_saved_as_a_track(
    server: SubsonicServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SubsonicClient.get_album

    def with_a_missing_song(self: SubsonicClient, album_id: str) -> Album:
        album = real(self, album_id)
        gone = dataclasses.replace(album.songs[0], id="no-such-song")
        return dataclasses.replace(album, songs=(gone, *album.songs[1:]))

    monkeypatch.setattr(SubsonicClient, "get_album", with_a_missing_song)
    config = make_config(tmp_path / "out")
    album = server.library.album("First Light")
    run = _run(_source(config, server), _url(server, "album", server.album_ids[album.name]))
    by_kind = {(kind, r.status) for kind, r in run.order}
    assert (ContentType.TRACK, ResultStatus.FAILED) in by_kind
    assert (ContentType.PLAYLIST, ResultStatus.CANCELLED) in by_kind  # never a partial list
    failed = next(r for r in run.results if r.status is ResultStatus.FAILED)
    assert isinstance(failed.error, DownloadError)
    assert failed.attempts == 1  # an error answer is not retried
    assert not _track_path(config.download_directory, album.tracks[0]).exists()
    assert leftovers(config.download_directory) == []


# --------------------------------------------------------------------------- other kinds


def test_playlist_puts_tracks_in_their_album_folders_and_lists_them_in_order(
    server: SubsonicServer, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "out")
    out = config.download_directory
    run = _run(_source(config, server), _url(server, "playlist", server.playlist_id))
    assert all(r.status is ResultStatus.COMPLETED for r in run.results)
    assert run.order[-1][0] is ContentType.PLAYLIST
    expected = [_track_path(out, track) for track in server.playlist_tracks]
    for path, track in zip(expected, server.playlist_tracks, strict=True):
        assert _sha(path) == track.sha256
    playlist = out / f"{server.playlist_name}.m3u8"
    assert _m3u_paths(playlist) == [p.relative_to(out).as_posix() for p in expected]
    lone = server.library.album("Lone Signal")
    assert _sha(_album_folder(out, lone) / "cover.png") == lone.tracks[0].embedded_cover_sha256
    for name in ("First Light", "Deep Water"):
        album = server.library.album(name)
        assert _sha(_album_folder(out, album) / "cover.png") == album.cover_sha256


def test_single_song_with_its_cover_and_credentials_from_the_config(
    server: SubsonicServer, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "out")
    app = AppConfig(
        download=config,
        source_credentials={"subsonic": {"username": server.username, "password": server.password}},
    )
    # built as the CLI and worker processes build it: logged in from the config's credentials
    source = build_source(json.dumps(app.to_dict()), "subsonic", config)
    assert isinstance(source, SubsonicDownloader)
    track = server.library.track("Morning Static")
    run = _run(source, _url(server, "song", server.song_id(track), user=False))
    assert [kind for kind, _ in run.order] == [ContentType.COVER, ContentType.TRACK]
    assert _sha(_track_path(config.download_directory, track)) == track.sha256
    folder = _track_path(config.download_directory, track).parent
    assert sorted(p.name for p in folder.iterdir()) == ["1-02 Morning Static.mp3", "cover.png"]


def test_artist_downloads_all_albums(server: SubsonicServer, tmp_path: Path) -> None:
    config = make_config(tmp_path / "out")
    album = server.library.album("Deep Water")
    run = _run(_source(config, server), _url(server, "artist", server.artist_ids[album.artist]))
    assert len(run.results) == 5
    assert all(r.status is ResultStatus.COMPLETED for r in run.results)
    for track in album.tracks:
        assert _sha(_track_path(config.download_directory, track)) == track.sha256
    assert (_album_folder(config.download_directory, album) / "Deep Water.m3u8").exists()


def test_get_download_info_resolves_a_song_url(server: SubsonicServer, tmp_path: Path) -> None:
    source = _source(make_config(tmp_path / "out"), server)
    track = server.library.track("Noon Hum")
    content = source.get_download_info(_url(server, "song", server.song_id(track)))
    assert content.content_type is ContentType.TRACK
    assert content.content_id == f"{server.base_url}#song:{server.song_id(track)}"
    assert (content.size, content.file_extension, content.title) == (track.size, "mp3", track.title)
    assert content.metadata["tracknumber"] == track.track
    with pytest.raises(ConfigError):
        source.get_download_info(_url(server, "album", server.album_ids["First Light"]))


# --------------------------------------------------------------------------- credentials


def test_wrong_password_is_an_authentication_error(server: SubsonicServer, tmp_path: Path) -> None:
    source = _source(make_config(tmp_path / "out"), server, password="wrong-Pa55word")
    with pytest.raises(AuthenticationError) as info:
        source.tasks_for_url(_url(server, "album", server.album_ids["First Light"]))
    assert "wrong-Pa55word" not in f"{info.value} {info.value!r}"


def test_no_credentials_is_an_authentication_error(server: SubsonicServer, tmp_path: Path) -> None:
    source = SubsonicDownloader(make_config(tmp_path / "out"))
    with pytest.raises(AuthenticationError):
        source.tasks_for_url(_url(server, "album", server.album_ids["First Light"]))


def test_the_password_appears_in_no_task_result_repr_or_log(
    server: SubsonicServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = make_config(tmp_path / "out")
    source = _source(config, server)
    with caplog.at_level(logging.DEBUG, logger="ripstream"):
        run = _run(source, _url(server, "playlist", server.playlist_id))
    assert all(r.is_success for r in run.results)
    shown = [
        run.queue.to_json(),
        json.dumps([r.to_record() for r in run.results]),
        repr(source),
        repr(vars(source)),
        repr(run.tasks),
        repr([t.to_content() for t in run.tasks]),
        *(f"{r.getMessage()} {r.args!r}" for r in caplog.records),
    ]
    assert any("signed in to" in r.getMessage() for r in caplog.records)
    for secret in (server.password, server.password.encode().hex()):
        for text in shown:
            assert secret not in text


# --------------------------------------------------------------------------- resume


def test_a_second_run_with_the_archive_skips_everything(
    server: SubsonicServer, tmp_path: Path
) -> None:
    config = make_config(tmp_path / "out")
    url = _url(server, "album", server.album_ids["First Light"])
    with DownloadArchive(tmp_path / "archive.sqlite3") as archive:
        done = _run(_source(config, server), url, archive)
        assert [r.status for r in done.results] == [ResultStatus.COMPLETED] * 5
        assert done.downloads == 3

        second = _run(_source(config, server), url, archive)
    assert [r.status for r in second.results] == [ResultStatus.SKIPPED] * 5
    assert second.downloads == 0
