"""Small real Subsonic servers on 127.0.0.1 that behave as Navidrome, gonic and LMS were seen to.

Supysonic (``tests/support/subsonic.py``) is a real server but a polite one; these fakes
replay what real servers do to download tools, one :class:`Profile` each:

* Navidrome transcodes ``download`` when ``format`` is empty and auto-transcode is on
  (``transcodes_download``), answers error 50 when an admin disabled downloads
  (``downloads_disabled``), serves raw files with ``http.ServeContent`` (``Range``, ``If-Range``
  against ``Last-Modified``, no ``ETag``), and transcodes without length or ranges;
* gonic before sentriz/gonic#679 treated ``download`` as ``stream`` (``download_is_stream``);
* LMS only takes OpenSubsonic API keys: a password gets error 42, a key with ``u`` error 43.

Usage::

    with FakeSubsonic(NAVIDROME) as server:
        url = f"subsonic://{server.host}:{server.port}/album/{server.album_id}"
        ...
        assert server.media_requests()[0].method == "download"
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.audio import flac_bytes, mp3_bytes, ogg_opus_bytes

__all__ = [
    "GONIC_OLD",
    "LMS",
    "NAVIDROME",
    "FakeSubsonic",
    "FakeTrack",
    "Profile",
    "Seen",
]

LAST_MODIFIED = "Wed, 01 May 2024 10:00:00 GMT"
USERNAME, PASSWORD, API_KEY = "alice", "s3cret-Pa55", "key-0123456789"
_TRANSCODED = {"mp3": mp3_bytes(40, seed=7), "opus": ogg_opus_bytes(8, seed=7)}
_MIME = {"flac": "audio/flac", "mp3": "audio/mpeg", "opus": "audio/ogg"}


@dataclass(frozen=True)
class Profile:
    """How one server behaves."""

    name: str
    version: str
    open_subsonic: bool = True
    api_keys: bool = False  #: announces and takes ``apiKey``
    passwords: bool = True  #: takes ``u`` with ``t``/``s`` or ``p``
    tokens: bool = True  #: takes salted tokens (False: error 41, as for LDAP users)
    transcodes_download: bool = False  #: ``download`` without ``format=raw`` transcodes
    download_is_stream: bool = False  #: ``download`` transcodes like ``stream`` does
    downloads_disabled: bool = False  #: error 50 on ``download``
    streams_disabled: bool = False  #: error 50 on ``stream`` too
    transcoder: str = "mp3"  #: what any transcode sends (a server without opus sends mp3)
    failed_word: str = "failed"  #: the ``status`` of an error

    def but(self, **changes: Any) -> Profile:
        return dataclasses.replace(self, **changes)


NAVIDROME = Profile("navidrome", "0.53.3 (13af8ed4)", transcodes_download=True)
GONIC_OLD = Profile("gonic", "0.16.4", download_is_stream=True, failed_word="fail")
LMS = Profile("lms", "3.61.0", api_keys=True, passwords=False)


@dataclass(frozen=True)
class FakeTrack:
    id: str
    title: str
    number: int
    data: bytes
    suffix: str = "flac"
    #: what the media endpoints send instead of the file: "empty", "html" or None
    poison: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def default_tracks() -> tuple[FakeTrack, ...]:
    return (
        FakeTrack("tr-1", "First", 1, flac_bytes(60, sample_value=100)),
        FakeTrack("tr-2", "Second", 2, flac_bytes(60, sample_value=200)),
    )


@dataclass(frozen=True)
class Seen:
    """One request the server answered."""

    method: str
    params: Mapping[str, str]
    range: str | None
    if_range: str | None
    status: int


@dataclass
class _State:
    profile: Profile
    tracks: dict[str, FakeTrack]
    cut_after: int | None
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeSubsonic:
    """A running fake (a context manager). Thread-safe to read :meth:`requests` from tests.

    :param cut_after: the first media answer breaks off after this many bytes.
    """

    album_id = "al-1"
    album = "Fake Album"
    artist = "Fake Artist"

    def __init__(
        self,
        profile: Profile,
        tracks: tuple[FakeTrack, ...] | None = None,
        *,
        cut_after: int | None = None,
    ) -> None:
        self.tracks = tracks or default_tracks()
        self._state = _State(profile, {t.id: t for t in self.tracks}, cut_after)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.state = self._state  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.host, self.port = "127.0.0.1", self._server.server_address[1]

    def __enter__(self) -> FakeSubsonic:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def url(self, kind: str = "album", item: str | None = None) -> str:
        return f"subsonic://{self.host}:{self.port}/{kind}/{item or self.album_id}"

    def requests(self) -> list[Seen]:
        with self._state.lock:
            return list(self._state.seen)

    def media_requests(self) -> list[Seen]:
        return [r for r in self.requests() if r.method in ("download", "stream")]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    @property
    def state(self) -> _State:
        return self.server.state  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        method = parts.path.rpartition("/")[2].removesuffix(".view")
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        status = self._answer(method, params)
        with self.state.lock:
            self.state.seen.append(
                Seen(
                    method, params, self.headers.get("Range"), self.headers.get("If-Range"), status
                )
            )

    # -- answers ---

    def _answer(self, method: str, params: dict[str, str]) -> int:
        profile = self.state.profile
        if method == "getOpenSubsonicExtensions":
            if not profile.open_subsonic:
                return self._send(404, b"404 page not found", "text/plain")
            names = ["formPost", "songLyrics"] + (
                ["apiKeyAuthentication"] if profile.api_keys else []
            )
            return self._ok(
                {"openSubsonicExtensions": [{"name": n, "versions": [1]} for n in names]}
            )
        refused = self._auth_error(params)
        if refused is not None:
            return self._error(*refused)
        if method == "ping":
            return self._ok({})
        if method == "getAlbum":
            return self._ok({"album": self._album()})
        if method == "getSong":
            track = self.state.tracks.get(params.get("id", ""))
            return self._ok({"song": self._song(track)}) if track else self._error(70, "not found")
        if method in ("download", "stream"):
            return self._media(method, params)
        return self._error(70, "Not found")  # getCoverArt: no covers here

    def _auth_error(self, params: dict[str, str]) -> tuple[int, str] | None:
        profile = self.state.profile
        if "apiKey" in params:
            if "u" in params:
                return 43, "Multiple conflicting authentication mechanisms provided"
            if not profile.api_keys:
                return 42, "Provided authentication mechanism not supported"
            return None if params["apiKey"] == API_KEY else (44, "Invalid API key")
        if "u" not in params:
            return 10, "Required parameter is missing: u"
        if not profile.passwords:
            return 42, "Provided authentication mechanism not supported"
        if "t" in params:
            if not profile.tokens:
                return 41, "Token authentication not supported for LDAP users"
            token = hashlib.md5((PASSWORD + params.get("s", "")).encode(), usedforsecurity=False)
            good = params["t"] == token.hexdigest()
        else:
            good = params.get("p", "") == "enc:" + PASSWORD.encode().hex()
        return None if params["u"] == USERNAME and good else (40, "Wrong username or password")

    def _song(self, track: FakeTrack) -> dict[str, Any]:
        return {
            "id": track.id,
            "title": track.title,
            "album": FakeSubsonic.album,
            "artist": FakeSubsonic.artist,
            "albumId": FakeSubsonic.album_id,
            "track": track.number,
            "discNumber": 1,
            "year": 2024,
            "suffix": track.suffix,
            "size": len(track.data),
            "path": f"{FakeSubsonic.artist}/{FakeSubsonic.album}/{track.number:02d}.{track.suffix}",
        }

    def _album(self) -> dict[str, Any]:
        return {
            "id": FakeSubsonic.album_id,
            "name": FakeSubsonic.album,
            "artist": FakeSubsonic.artist,
            "year": 2024,
            "song": [self._song(t) for t in self.state.tracks.values()],
        }

    def _media(self, method: str, params: dict[str, str]) -> int:
        profile = self.state.profile
        track = self.state.tracks.get(params.get("id", ""))
        if track is None:
            return self._error(70, "Song not found")
        if (method == "download" and profile.downloads_disabled) or (
            method == "stream" and profile.streams_disabled
        ):
            return self._error(50, "Downloads are disabled")
        if track.poison == "empty":
            return self._send(200, b"", "audio/mpeg")
        if track.poison == "html":
            return self._send(
                200, b"<!DOCTYPE html><html>Bad Gateway</html>", "application/octet-stream"
            )
        asked = params.get("format", "")
        raw = asked == "raw" or (
            method == "download"
            and not profile.transcodes_download
            and not profile.download_is_stream
        )
        if raw:
            return self._raw(track)
        codec = (
            asked if asked in _TRANSCODED and asked == profile.transcoder else profile.transcoder
        )
        return self._transcode(_TRANSCODED[codec], _MIME[codec])

    def _cut(self) -> int | None:
        with self.state.lock:
            cut, self.state.cut_after = self.state.cut_after, None
        return cut

    def _raw(self, track: FakeTrack) -> int:
        """http.ServeContent: Range and If-Range against Last-Modified; no ETag."""
        data, start = track.data, 0
        wanted = self.headers.get("Range", "")
        if_range = self.headers.get("If-Range")
        if wanted.startswith("bytes=") and if_range in (None, LAST_MODIFIED):
            start = int(wanted[6:].split("-")[0])
        status = 206 if start else 200
        self.send_response(status)
        self.send_header("Content-Type", _MIME.get(track.suffix, "audio/flac"))
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Last-Modified", LAST_MODIFIED)
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        cut = self._cut()
        body = data[start:] if cut is None else data[start : start + cut]
        self.wfile.write(body)
        if cut is not None:
            self.close_connection = True
        return status

    def _transcode(self, data: bytes, mime: str) -> int:
        """Chunked, no length, no ranges (a transcode cannot seek)."""
        self.send_response(200)
        self.send_header("Content-Type", mime)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        cut = self._cut()
        body = data if cut is None else data[:cut]
        for offset in range(0, len(body), 4096):
            piece = body[offset : offset + 4096]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        if cut is not None:
            self.close_connection = True  # no last chunk: the client sees a broken body
            return 200
        self.wfile.write(b"0\r\n\r\n")
        return 200

    def _envelope(self, status: str, extra: Mapping[str, Any]) -> bytes:
        profile = self.state.profile
        body: dict[str, Any] = {"status": status, "version": "1.16.1", **extra}
        if profile.open_subsonic:
            body.update(type=profile.name, serverVersion=profile.version, openSubsonic=True)
        return json.dumps({"subsonic-response": body}).encode()

    def _ok(self, extra: Mapping[str, Any]) -> int:
        return self._send(200, self._envelope("ok", extra), "application/json")

    def _error(self, code: int, message: str) -> int:
        body = self._envelope(
            self.state.profile.failed_word, {"error": {"code": code, "message": message}}
        )
        return self._send(200, body, "application/json")

    def _send(self, status: int, body: bytes, mime: str) -> int:
        self.send_response(status)
        self.send_header("Content-Type", mime)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return status
