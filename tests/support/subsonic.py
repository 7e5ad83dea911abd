# mypy: disable-error-code="import-untyped"
"""A real Subsonic server for tests: Supysonic on 127.0.0.1, serving a generated library.

Usage::

    with running_subsonic(tmp_path) as server:
        client = SubsonicClient(server.base_url, SubsonicCredentials(...), session)
        album_id = server.album_ids["First Light"]

How it works
------------
:func:`running_subsonic` writes a small tagged library (:func:`tests.support.audio.build_library`)
and starts **one child Python process** that, using Supysonic's own Python API:

1. creates a fresh sqlite database and cache under ``<tmp_path>/supysonic`` (its config is
   an object built in the child; no config file, no ``~/.supysonic``, no daemon socket);
2. adds the user (admin) and the music folder, and scans it synchronously;
3. serves the Flask app with werkzeug's threaded WSGI server on ``127.0.0.1:0`` and prints
   the bound port as one JSON line on stdout;
4. serves until its **stdin reaches EOF**, then shuts the server down and exits.

The parent closes the child's stdin to stop it (and kills it if it does not exit within a
few seconds), so no process outlives the fixture, even when the test process itself dies.
Running Supysonic out of process keeps its global state (peewee database proxy, Flask app,
warnings from its dependencies) away from the test process, which runs with ``-W error``.

After start-up the parent looks the library's ids up through the API (``getArtists``,
``getArtist``, ``getAlbum``) and creates a playlist with ``createPlaylist``; the fixture does
not use RipStream's own client, so that client can be tested against it. Supysonic does not
support token authentication (it stores salted hashes), so the fixture authenticates with the
``p=enc:<hex>`` form. Server logs go to ``<tmp_path>/supysonic/server.log``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import requests

from tests.support.audio import GeneratedLibrary, GeneratedTrack, build_library

__all__ = ["SubsonicServer", "running_subsonic"]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_API_VERSION = "1.12.0"  # what Supysonic 0.7.9 implements
_CLIENT = "ripstream-tests"
_FOLDER_NAME = "Music"
#: Playlist contents, as (album name, track title), in playlist order.
_PLAYLIST_NAME = "RipStream Mix"
_PLAYLIST_TRACKS = (
    ("Lone Signal", "Lone Signal"),
    ("First Light", "Morning Static"),
    ("Deep Water", "Riptide"),
)


@dataclass(frozen=True)
class SubsonicServer:
    """A running Supysonic server and what it serves."""

    #: ``http://127.0.0.1:<port>``; API calls go to ``<base_url>/rest/<method>``.
    base_url: str
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    #: the library root registered as the server's music folder.
    music_dir: Path
    #: the generated files, their bytes' SHA-256 and the tags written into them.
    library: GeneratedLibrary
    #: server ids: album name -> album id, artist name -> artist id (album artists and
    #: track artists), track relpath -> song id.
    album_ids: Mapping[str, str]
    artist_ids: Mapping[str, str]
    song_ids: Mapping[str, str]
    #: the playlist created at start-up, and its tracks in order.
    playlist_id: str
    playlist_name: str
    playlist_tracks: tuple[GeneratedTrack, ...]
    #: the server's log file (werkzeug access log and Supysonic errors).
    log_path: Path

    def song_id(self, track: GeneratedTrack) -> str:
        """Return the server's id for a generated track."""
        return self.song_ids[track.relpath]

    def auth_params(self) -> dict[str, str]:
        """Return query parameters that authenticate as the fixture user (password form)."""
        return {
            "u": self.username,
            "p": "enc:" + self.password.encode("utf-8").hex(),
            "v": _API_VERSION,
            "c": _CLIENT,
            "f": "json",
        }


@contextmanager
def running_subsonic(
    tmp_path: Path,
    *,
    username: str = "admin",
    password: str = "s3cret-Pa55",
    startup_timeout: float = 30.0,
) -> Iterator[SubsonicServer]:
    """Generate a library under ``tmp_path``, serve it with Supysonic, and stop it on exit.

    :param tmp_path: an empty directory for the library, database, cache and log.
    :param username: the admin user to create.
    :param password: that user's password.
    :param startup_timeout: seconds to wait for the server to scan and listen.
    :returns: a context manager yielding the :class:`SubsonicServer`.
    :raises RuntimeError: when the server does not come up; the message holds its log's end.
    """
    music_dir = tmp_path / "music"
    state_dir = tmp_path / "supysonic"
    state_dir.mkdir(parents=True, exist_ok=True)
    library = build_library(music_dir)
    spec_path = state_dir / "spec.json"
    spec_path.write_text(
        json.dumps(
            {
                "state_dir": str(state_dir),
                "music_dir": str(music_dir),
                "folder_name": _FOLDER_NAME,
                "username": username,
                "password": password,
            }
        ),
        encoding="utf-8",
    )
    log_path = state_dir / "server.log"
    env = dict(os.environ)
    env.update(
        PYTHONWARNINGS="ignore",  # the child is a server, not the code under test
        PYTHONDONTWRITEBYTECODE="1",
        TMPDIR=str(state_dir),
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from tests.support.subsonic import _child_main; "
        "raise SystemExit(_child_main(sys.argv[2]))"
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", code, str(_REPO_ROOT), str(spec_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=state_dir,
            env=env,
        )
    try:
        port = _read_port(process, startup_timeout, log_path)
        base_url = f"http://127.0.0.1:{port}"
        auth = {
            "u": username,
            "p": "enc:" + password.encode("utf-8").hex(),
            "v": _API_VERSION,
            "c": _CLIENT,
            "f": "json",
        }
        with requests.Session() as session:
            api = _Api(session, base_url, auth)
            artist_ids, album_ids, song_ids = _discover(api, library)
            playlist_tracks = tuple(
                library.album(album).tracks[
                    [t.title for t in library.album(album).tracks].index(title)
                ]
                for album, title in _PLAYLIST_TRACKS
            )
            playlist_id = _create_playlist(
                api, _PLAYLIST_NAME, [song_ids[t.relpath] for t in playlist_tracks]
            )
        yield SubsonicServer(
            base_url=base_url,
            host="127.0.0.1",
            port=port,
            username=username,
            password=password,
            music_dir=music_dir,
            library=library,
            album_ids=MappingProxyType(album_ids),
            artist_ids=MappingProxyType(artist_ids),
            song_ids=MappingProxyType(song_ids),
            playlist_id=playlist_id,
            playlist_name=_PLAYLIST_NAME,
            playlist_tracks=playlist_tracks,
            log_path=log_path,
        )
    finally:
        _stop(process)


# --------------------------------------------------------------------------- parent side


def _log_tail(log_path: Path, limit: int = 4000) -> str:
    try:
        return log_path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError:
        return "<no log>"


def _read_port(process: subprocess.Popen[bytes], timeout: float, log_path: Path) -> int:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(
                    f"Supysonic did not start within {timeout:.0f} s; log:\n{_log_tail(log_path)}"
                )
            if not selector.select(remaining):
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                process.wait(timeout=5)
                raise RuntimeError(
                    f"Supysonic exited with status {process.returncode} before listening; "
                    f"log:\n{_log_tail(log_path)}"
                )
            buffer += chunk
    line = buffer.split(b"\n", 1)[0]
    return int(json.loads(line)["port"])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Close the child's stdin (its signal to stop), wait, kill if needed, close pipes."""
    try:
        if process.stdin is not None:
            with contextlib.suppress(OSError):  # the child may already have gone
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            process.kill()
            process.wait(timeout=10)
    finally:
        if process.stdout is not None:
            process.stdout.close()


class _Api:
    """The few raw API calls the fixture needs (deliberately not RipStream's client)."""

    def __init__(self, session: requests.Session, base_url: str, auth: dict[str, str]) -> None:
        self._session = session
        self._base_url = base_url
        self._auth = auth

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        response = self._session.get(
            f"{self._base_url}/rest/{method}.view", params={**self._auth, **params}, timeout=30
        )
        with response:
            response.raise_for_status()
            body = response.json()["subsonic-response"]
        if body.get("status") != "ok":
            raise RuntimeError(f"Supysonic {method} failed: {body.get('error')}")
        return body  # type: ignore[no-any-return]


def _discover(
    api: _Api, library: GeneratedLibrary
) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    artist_ids: dict[str, str] = {}
    album_ids: dict[str, str] = {}
    song_ids: dict[str, str] = {}
    for index in api.call("getArtists")["artists"].get("index", []):
        for artist in index.get("artist", []):
            artist_ids[artist["name"]] = artist["id"]
    for name in library.artists:
        for album in api.call("getArtist", id=artist_ids[name])["artist"].get("album", []):
            album_ids[album["name"]] = album["id"]
    for album in library.albums:
        for song in api.call("getAlbum", id=album_ids[album.name])["album"].get("song", []):
            song_ids[song["path"]] = song["id"]
    expected = {track.relpath for track in library.tracks}
    if set(song_ids) != expected:
        raise RuntimeError(f"Supysonic scanned {sorted(song_ids)}, expected {sorted(expected)}")
    return artist_ids, album_ids, song_ids


def _create_playlist(api: _Api, name: str, song_ids: list[str]) -> str:
    api.call("createPlaylist", name=name, songId=song_ids)
    playlists = api.call("getPlaylists")["playlists"].get("playlist", [])
    for playlist in playlists:
        if playlist["name"] == name:
            return str(playlist["id"])
    raise RuntimeError(f"the playlist {name!r} was not created")


# --------------------------------------------------------------------------- child side


def _child_main(spec_path: str) -> int:  # pragma: no cover - runs in the server process
    """Set Supysonic up from the JSON spec, serve until stdin closes, return an exit status."""
    import logging
    import threading

    import supysonic.config
    from supysonic.config import DefaultConfig
    from supysonic.db import close_connection, open_connection, release_database
    from supysonic.managers.folder import FolderManager
    from supysonic.managers.user import UserManager
    from supysonic.scanner import Scanner
    from supysonic.web import create_application
    from werkzeug.serving import make_server

    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    state_dir = Path(spec["state_dir"])

    class Config(DefaultConfig):  # type: ignore[misc]
        # Fresh dicts: DefaultConfig's are class attributes shared by every instance.
        BASE = {  # noqa: RUF012
            "database_uri": "sqlite:///" + str(state_dir / "supysonic.db"),
            "scanner_extensions": None,
            "follow_symlinks": False,
        }
        WEBAPP = {  # noqa: RUF012
            **DefaultConfig.WEBAPP,
            "cache_dir": str(state_dir / "cache"),
            "log_level": "INFO",
            "mount_webui": False,
            "mount_api": True,
        }
        # An empty socket address makes DaemonClient fail fast instead of connecting.
        DAEMON = {**DefaultConfig.DAEMON, "socket": "", "run_watcher": False}  # noqa: RUF012
        TRANSCODING: dict[str, str] = {}  # noqa: RUF012
        MIMETYPES: dict[str, str] = {}  # noqa: RUF012

    config = Config()
    supysonic.config.current_config = config
    app = create_application(config)  # creates the schema; leaves the connection closed

    open_connection()
    try:
        UserManager.add(spec["username"], spec["password"], admin=True)
        FolderManager.add(spec["folder_name"], spec["music_dir"])
        scanner = Scanner(follow_symlinks=False)
        scanner.queue_folder(spec["folder_name"])
        scanner.run()  # synchronously, in this thread
        stats = scanner.stats()
        logging.getLogger("supysonic-fixture").info(
            "scanned %d tracks, errors: %s", stats.added.tracks, stats.errors
        )
    finally:
        close_connection()

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="supysonic", daemon=True)
    thread.start()
    sys.stdout.write(json.dumps({"port": server.port}) + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.buffer.read()  # returns at EOF: the parent closed the pipe or died
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        release_database()
    return 0
