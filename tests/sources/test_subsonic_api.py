"""The Subsonic API client against a real Supysonic server serving a generated library."""

from __future__ import annotations

import hashlib
import pickle
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from ripstream.downloader import DownloadConfig, DownloadSession, SessionManager
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    ContentNotFoundError,
    DownloadError,
    NetworkError,
)
from ripstream.sources.subsonic_api import (
    API_VERSION,
    CLIENT_NAME,
    Album,
    Artist,
    AuthMethod,
    Playlist,
    Song,
    SubsonicAPIError,
    SubsonicClient,
    SubsonicCredentials,
    SubsonicKind,
    SubsonicRef,
    parse_subsonic_url,
    redact_url,
)
from ripstream.sources.subsonic_errors import SubsonicAuthError
from tests.support.audio import GeneratedTrack
from tests.support.subsonic import SubsonicServer, running_subsonic

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubsonicServer]:
    with running_subsonic(tmp_path_factory.mktemp("subsonic")) as running:
        yield running


@pytest.fixture(scope="module")
def session() -> Iterator[DownloadSession]:
    with SessionManager(DownloadConfig()) as sessions:
        yield sessions.get_session("subsonic")


@pytest.fixture
def client(server: SubsonicServer, session: DownloadSession) -> SubsonicClient:
    credentials = SubsonicCredentials(username=server.username, password=server.password)
    return SubsonicClient(server.base_url, credentials, session, timeout=10.0)


def _fetch(session: DownloadSession, url: str) -> requests.Response:
    with session.get(url, timeout=10, check_status=False) as response:
        response.content  # noqa: B018 - read the body before the connection goes back
        return response


def _secrets_of(server: SubsonicServer) -> list[str]:
    return [server.password, server.password.encode().hex()]


def _assert_no_secret(error: BaseException, server: SubsonicServer) -> None:
    shown = f"{error} {error!r} {getattr(error, 'url', '')}"
    for secret in _secrets_of(server):
        assert secret not in shown


def _assert_song_matches(song: Song, track: GeneratedTrack, *, album_artist: str) -> None:
    assert song.title == track.title
    assert song.album == track.album
    assert song.artist == track.artist
    assert song.album_artist == album_artist
    assert song.track == track.track
    assert song.disc == track.disc
    assert song.year == track.year
    assert song.suffix == track.suffix
    assert song.size == track.size
    assert song.content_type == {"mp3": "audio/mpeg", "flac": "audio/flac"}[track.suffix]
    assert song.path == track.relpath
    assert song.duration == int(track.duration)
    assert song.cover_art


# --------------------------------------------------------------------------- authentication


def test_ping_negotiates_password_auth_on_a_server_without_tokens(client: SubsonicClient) -> None:
    before = client.auth_method
    client.ping()
    # Supysonic stores salted hashes, so it cannot check tokens: the client fell back.
    assert (before, client.auth_method) == (AuthMethod.TOKEN, AuthMethod.PASSWORD)


def test_forced_password_auth_needs_no_probe(
    server: SubsonicServer, session: DownloadSession
) -> None:
    credentials = SubsonicCredentials(username=server.username, password=server.password)
    client = SubsonicClient(server.base_url, credentials, session, auth=AuthMethod.PASSWORD)
    client.ping()
    assert client.auth_method is AuthMethod.PASSWORD


def test_wrong_password_is_an_authentication_error(
    server: SubsonicServer, session: DownloadSession
) -> None:
    credentials = SubsonicCredentials(username=server.username, password="wrong-Pa55word")
    client = SubsonicClient(server.base_url, credentials, session)
    with pytest.raises(AuthenticationError) as info:
        client.ping()
    error = info.value
    assert error.source == "subsonic"
    assert "40" in str(error)
    assert error.url is not None
    assert "***" in error.url
    for secret in ("wrong-Pa55word", b"wrong-Pa55word".hex()):
        assert secret not in f"{error} {error!r} {error.url}"


def test_unknown_user_is_an_authentication_error(
    server: SubsonicServer, session: DownloadSession
) -> None:
    credentials = SubsonicCredentials(username="nobody", password=server.password)
    client = SubsonicClient(server.base_url, credentials, session)
    with pytest.raises(AuthenticationError) as info:
        client.get_album(server.album_ids["First Light"])
    _assert_no_secret(info.value, server)


def test_authentication_error_pickles_with_its_fields(
    server: SubsonicServer, session: DownloadSession
) -> None:
    credentials = SubsonicCredentials(username=server.username, password="nope")
    client = SubsonicClient(server.base_url, credentials, session)
    with pytest.raises(AuthenticationError) as info:
        client.ping()
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is SubsonicAuthError
    assert str(copy).startswith("wrong username or password (Subsonic error 40 on ping")
    assert (str(copy), copy.url, copy.source, copy.code) == (
        str(info.value),
        info.value.url,
        info.value.source,
        40,
    )


def test_forced_token_auth_is_not_downgraded(
    server: SubsonicServer, session: DownloadSession
) -> None:
    credentials = SubsonicCredentials(username=server.username, password=server.password)
    client = SubsonicClient(server.base_url, credentials, session, auth=AuthMethod.TOKEN)
    with pytest.raises(SubsonicAPIError) as info:
        client.ping()
    assert info.value.code == 10  # Supysonic: "A required parameter is missing" (p)
    assert client.auth_method is AuthMethod.TOKEN
    _assert_no_secret(info.value, server)


def test_token_urls_are_salted_per_request(
    server: SubsonicServer, session: DownloadSession
) -> None:
    credentials = SubsonicCredentials(username=server.username, password=server.password)
    client = SubsonicClient(server.base_url, credentials, session, auth=AuthMethod.TOKEN)
    first = parse_qs(urlsplit(client.download_url("abc")).query)
    second = parse_qs(urlsplit(client.download_url("abc")).query)
    for query in (first, second):
        assert set(query) == {"id", "format", "u", "t", "s", "v", "c", "f"}
        assert query["format"] == ["raw"]
        assert query["u"] == [server.username]
        assert query["v"] == [API_VERSION]
        assert query["c"] == [CLIENT_NAME]
        assert query["f"] == ["json"]
        salt = query["s"][0]
        assert len(salt) >= 6
        expected = hashlib.md5((server.password + salt).encode(), usedforsecurity=False)
        assert query["t"] == [expected.hexdigest()]
    assert first["s"] != second["s"]
    assert first["t"] != second["t"]


def test_api_key_auth_sends_only_the_key(server: SubsonicServer, session: DownloadSession) -> None:
    key = "k-0123456789abcdef"
    client = SubsonicClient(server.base_url, SubsonicCredentials(api_key=key), session)
    assert client.auth_method is AuthMethod.API_KEY
    query = parse_qs(urlsplit(client.cover_art_url("42", size=64)).query)
    assert query["apiKey"] == [key]
    assert query["size"] == ["64"]
    assert not {"u", "p", "t", "s"} & set(query)
    # Supysonic predates OpenSubsonic API keys: it asks for the missing "u".
    with pytest.raises(SubsonicAPIError) as info:
        client.ping()
    assert info.value.code == 10
    assert key not in f"{info.value} {info.value.url}"


def test_download_url_settles_auth_first_then_uses_passwords(
    server: SubsonicServer, client: SubsonicClient
) -> None:
    url = client.download_url("some-id")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(f"{server.base_url}/rest/download.view?")
    assert query["p"] == ["enc:" + server.password.encode().hex()]
    assert query["id"] == ["some-id"]
    assert "***" in redact_url(url)
    assert server.password.encode().hex() not in redact_url(url)


# --------------------------------------------------------------------------- browsing


def test_get_album_parses_tags_of_every_album(
    server: SubsonicServer, client: SubsonicClient
) -> None:
    for generated in server.library.albums:
        album = client.get_album(server.album_ids[generated.name])
        assert isinstance(album, Album)
        assert album.id == server.album_ids[generated.name]
        assert album.name == generated.name
        assert album.artist == generated.artist
        assert album.artist_id == server.artist_ids[generated.artist]
        assert album.year == generated.year
        assert album.cover_art
        assert album.song_count == len(generated.tracks)
        assert [s.title for s in album.songs] == [t.title for t in generated.tracks]
        for song, track in zip(album.songs, generated.tracks, strict=True):
            assert song.id == server.song_id(track)
            assert song.album_id == album.id
            _assert_song_matches(song, track, album_artist=generated.artist)


def test_album_artist_comes_from_the_album_for_a_featured_track(
    server: SubsonicServer, client: SubsonicClient
) -> None:
    album = client.get_album(server.album_ids["Deep Water"])
    riptide = next(s for s in album.songs if s.title == "Riptide")
    assert riptide.artist == "Null Set feat. Guest Voice"
    assert riptide.album_artist == "Null Set"
    assert [(s.disc, s.track) for s in album.songs] == [(1, 1), (1, 2), (2, 1)]


def test_get_song_parses_one_song(server: SubsonicServer, client: SubsonicClient) -> None:
    for track in server.library.tracks:
        song = client.get_song(server.song_id(track))
        assert isinstance(song, Song)
        assert song.id == server.song_id(track)
        assert song.album_id == server.album_ids[track.album]
        # getSong carries no album artist on Supysonic: album_artist falls back to artist.
        _assert_song_matches(song, track, album_artist=track.artist)


def test_get_artist_lists_its_albums(server: SubsonicServer, client: SubsonicClient) -> None:
    for generated in server.library.albums:
        artist = client.get_artist(server.artist_ids[generated.artist])
        assert isinstance(artist, Artist)
        assert artist.name == generated.artist
        assert [a.name for a in artist.albums] == [generated.name]
        listed = artist.albums[0]
        assert listed.id == server.album_ids[generated.name]
        assert listed.year == generated.year
        assert listed.artist == generated.artist
        assert listed.songs == ()
        assert listed.song_count == len(generated.tracks)


def test_get_playlist_keeps_the_order(server: SubsonicServer, client: SubsonicClient) -> None:
    playlist = client.get_playlist(server.playlist_id)
    assert isinstance(playlist, Playlist)
    assert playlist.id == server.playlist_id
    assert playlist.name == server.playlist_name
    assert playlist.owner == server.username
    assert [s.id for s in playlist.songs] == [server.song_id(t) for t in server.playlist_tracks]
    for song, track in zip(playlist.songs, server.playlist_tracks, strict=True):
        _assert_song_matches(song, track, album_artist=track.artist)


def test_models_are_frozen(server: SubsonicServer, client: SubsonicClient) -> None:
    album = client.get_album(server.album_ids["First Light"])
    with pytest.raises(AttributeError):
        album.name = "changed"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        album.songs[0].title = "changed"  # type: ignore[misc]
    assert isinstance(album.songs, tuple)


# --------------------------------------------------------------------------- downloads


def test_download_url_yields_the_exact_file_bytes(
    server: SubsonicServer, client: SubsonicClient, session: DownloadSession
) -> None:
    for track in server.library.tracks:
        response = _fetch(session, client.download_url(server.song_id(track)))
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == track.sha256
        assert track.path.read_bytes() == response.content


def test_cover_art_of_albums_is_the_folder_cover(
    server: SubsonicServer, client: SubsonicClient, session: DownloadSession
) -> None:
    for generated in server.library.albums:
        if generated.cover_sha256 is None:
            continue
        album = client.get_album(server.album_ids[generated.name])
        assert album.cover_art is not None
        response = _fetch(session, client.cover_art_url(album.cover_art))
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("image/png")
        assert hashlib.sha256(response.content).hexdigest() == generated.cover_sha256


def test_cover_art_of_a_single_is_the_embedded_picture(
    server: SubsonicServer, client: SubsonicClient, session: DownloadSession
) -> None:
    track = server.library.album("Lone Signal").tracks[0]
    assert track.embedded_cover_sha256 is not None
    song = client.get_song(server.song_id(track))
    assert song.cover_art is not None
    response = _fetch(session, client.cover_art_url(song.cover_art))
    assert response.status_code == 200
    assert hashlib.sha256(response.content).hexdigest() == track.embedded_cover_sha256


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("method", ["get_album", "get_artist", "get_playlist", "get_song"])
def test_unknown_ids_raise_not_found(
    server: SubsonicServer, client: SubsonicClient, method: str
) -> None:
    with pytest.raises(ContentNotFoundError) as info:
        getattr(client, method)(str(uuid.uuid4()))
    assert info.value.source == "subsonic"
    assert isinstance(info.value, NetworkError)
    _assert_no_secret(info.value, server)


def test_malformed_id_is_a_subsonic_api_error(
    server: SubsonicServer, client: SubsonicClient
) -> None:
    with pytest.raises(SubsonicAPIError) as info:
        client.get_album("not-a-uuid")
    assert info.value.code == 0  # Supysonic: "ValueError: badly formed hexadecimal UUID"
    assert isinstance(info.value, DownloadError)
    _assert_no_secret(info.value, server)


def test_wrong_base_path_is_an_http_error(server: SubsonicServer, session: DownloadSession) -> None:
    credentials = SubsonicCredentials(username=server.username, password=server.password)
    client = SubsonicClient(server.base_url + "/nothing-here", credentials, session)
    with pytest.raises(NetworkError) as info:
        client.ping()
    assert info.value.status_code == 404
    _assert_no_secret(info.value, server)


def test_connection_refused_is_a_connection_error(
    server: SubsonicServer, session: DownloadSession
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    credentials = SubsonicCredentials(username=server.username, password=server.password)
    client = SubsonicClient(f"http://127.0.0.1:{port}", credentials, session, timeout=5.0)
    with pytest.raises(ConnectionFailedError) as info:
        client.ping()
    assert info.value.retryable
    assert info.value.__cause__ is None
    for secret in _secrets_of(server):
        assert secret not in str(info.value)
    # discovery comes first and sends no credentials at all
    assert str(info.value.url).endswith(
        "/rest/getOpenSubsonicExtensions.view?v=1.16.1&c=ripstream&f=json"
    )


# --------------------------------------------------------------------------- configuration


def test_credentials_repr_hides_secrets() -> None:
    with_password = SubsonicCredentials(username="me", password="hunter2")
    with_key = SubsonicCredentials(api_key="key-123")
    assert "hunter2" not in repr(with_password)
    assert "hunter2" not in str(with_password)
    assert "me" in repr(with_password)
    assert "key-123" not in repr(with_key)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"username": "me"},
        {"username": "me", "password": "x", "api_key": "y"},
        {"password": "x"},
        {"api_key": ""},
    ],
)
def test_bad_credentials_are_config_errors(kwargs: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        SubsonicCredentials(**kwargs)


@pytest.mark.parametrize(
    "base_url", ["ftp://host", "host:4533", "http://", "http://h/?x=1", "subsonic://h"]
)
def test_bad_base_urls_are_config_errors(base_url: str, session: DownloadSession) -> None:
    with pytest.raises(ConfigError):
        SubsonicClient(base_url, SubsonicCredentials(api_key="k"), session)


def test_bad_client_options_are_config_errors(session: DownloadSession) -> None:
    password = SubsonicCredentials(username="me", password="x")
    with pytest.raises(ConfigError):
        SubsonicClient("http://h", password, session, timeout=0)
    with pytest.raises(ConfigError):
        SubsonicClient("http://h", password, session, auth=AuthMethod.API_KEY)
    with pytest.raises(ConfigError):
        SubsonicClient("http://h", SubsonicCredentials(api_key="k"), session, auth=AuthMethod.TOKEN)
    client = SubsonicClient("http://h", password, session, auth=AuthMethod.PASSWORD)
    with pytest.raises(ConfigError):
        client.cover_art_url("1", size=0)


def test_redact_url_hides_every_secret_parameter() -> None:
    url = "https://u:pw@h/rest/x.view?u=me&p=enc%3A41&t=tok&s=salt&apiKey=key&id=7"
    shown = redact_url(url)
    for secret in ("pw", "enc", "tok", "salt", "key"):
        assert secret not in shown.replace("***", "")
    assert "u=me" in shown
    assert "id=7" in shown


# --------------------------------------------------------------------------- subsonic:// URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "subsonic://music.local/album/al-1",
            SubsonicRef("http://music.local", None, SubsonicKind.ALBUM, "al-1"),
        ),
        (
            "subsonics://me@music.example.org/playlist/42",
            SubsonicRef("https://music.example.org", "me", SubsonicKind.PLAYLIST, "42"),
        ),
        (
            "subsonic://admin@127.0.0.1:4533/artist/ar-9/",
            SubsonicRef("http://127.0.0.1:4533", "admin", SubsonicKind.ARTIST, "ar-9"),
        ),
        (
            "SUBSONICS://Host.Example:8443/navidrome/song/a%2Fb%20c",
            SubsonicRef("https://host.example:8443/navidrome", None, SubsonicKind.SONG, "a/b c"),
        ),
        (
            "subsonic://j%40ne@[::1]:4040/Album/x",
            SubsonicRef("http://[::1]:4040", "j@ne", SubsonicKind.ALBUM, "x"),
        ),
    ],
)
def test_parse_subsonic_urls(url: str, expected: SubsonicRef) -> None:
    ref = parse_subsonic_url(url)
    assert ref == expected
    assert SubsonicRef.parse(url) == ref
    assert parse_subsonic_url(ref.to_url()) == ref
    assert ref.kind == expected.kind.value


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://host/album/1", "scheme"),
        ("subsonic:///album/1", "host"),
        ("subsonic://host", "path"),
        ("subsonic://host/album", "path"),
        ("subsonic://host/album/", "path"),
        ("subsonic://host/track/1", "kind"),
        ("subsonic://host:99999/album/1", "port"),
        ("subsonic://host:abc/album/1", "port"),
        ("subsonic://host:0/album/1", "port"),
        ("subsonic://host/album/1?x=y", "query"),
        ("subsonic://host/album/1#frag", "query"),
        ("subsonic://host/album/%20", "id"),
        ("subsonic://me:hunter2@host/album/1", "password"),
    ],
)
def test_malformed_subsonic_urls_are_config_errors(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_subsonic_url(url)
    assert isinstance(info.value, ValueError)
    assert reason in str(info.value)
    assert info.value.field == "url"
    assert "hunter2" not in f"{info.value} {info.value.value}"


def test_subsonic_ref_feeds_the_client(server: SubsonicServer, session: DownloadSession) -> None:
    url = f"subsonic://{server.username}@{server.host}:{server.port}/album/" + str(
        server.album_ids["First Light"]
    )
    ref = parse_subsonic_url(url)
    assert ref.base_url == server.base_url
    assert ref.username is not None
    credentials = SubsonicCredentials(username=ref.username, password=server.password)
    client = SubsonicClient(ref.base_url, credentials, session)
    assert client.get_album(ref.id).name == "First Light"


def test_library_is_small_and_distinct(server: SubsonicServer) -> None:
    tracks = server.library.tracks
    assert len(tracks) == 7
    assert len({t.sha256 for t in tracks}) == 7
    assert sum(t.size for t in tracks) < 100_000
    assert all(Path(t.path).is_file() for t in tracks)


def test_log_lines_hold_no_secret(
    server: SubsonicServer, session: DownloadSession, caplog: pytest.LogCaptureFixture
) -> None:
    logger_name = "ripstream.sources.subsonic_api"
    caplog.set_level("DEBUG", logger=logger_name)
    credentials = SubsonicCredentials(username=server.username, password=server.password)
    client = SubsonicClient(server.base_url, credentials, session)
    client.get_album(server.album_ids["First Light"])
    with pytest.raises(ContentNotFoundError):
        client.get_song(str(uuid.uuid4()))
    ours = [r.getMessage() for r in caplog.records if r.name == logger_name]
    assert any("falling back to password" in line for line in ours)
    assert any("getAlbum" in line for line in ours)
    for line in ours:
        for secret in _secrets_of(server):
            assert secret not in line
        public = "getOpenSubsonicExtensions" in line or " is a Subsonic server" in line
        warning = "over plain http" in line
        assert "t=***" in line or "p=***" in line or "falling back" in line or public or warning
