"""examples/deezer_previews.py: the "new source in under 100 lines of code" showcase, run end
to end.

Deezer's API is answered by ``responses`` with JSON shaped like api.deezer.com's own answers;
the preview MP3s and the cover come from the real local server, as they would from Deezer's CDN.
"""

from __future__ import annotations

import ast
import importlib.util
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import responses

from ripstream.downloader import (
    ContentType,
    DownloadConfig,
    DownloadManager,
    DownloadQueue,
    DownloadResult,
    DownloadTask,
)
from ripstream.downloader.exceptions import (
    ConfigError,
    ContentNotFoundError,
    HTTPStatusError,
    RateLimitError,
    ServerError,
)
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "deezer_previews.py"
API = "https://api.deezer.com"
FOLDER = Path("Daft Punk") / "Discovery (2001)"
MD5_IMAGE = "2e018122cb56986277102d2041a592c8"
COVER_PATH = f"/images/cover/{MD5_IMAGE}/1000x1000-000000-80-0-0.jpg"
#: (id, title, preview file on the CDN or "" when Deezer has no preview for it)
TRACKS = [
    (3135553, "One More Time", "c-e77d23e0c8ed7567a507a6d1b6a9ca1b-11.mp3"),
    (3135554, "Aerodynamic", "c-8c8d5b2b3b0b5c1d3a1e4f7a9b2c6d8e-8.mp3"),
    (3135555, "Digital Love", ""),
    (3135556, "Harder, Better, Faster, Stronger", "c-deda7fa9316d9e9e880d2c6207e92260-8.mp3"),
]
NO_DATA = {"error": {"type": "DataException", "message": "no data", "code": 800}}


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deezer_previews", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DeezerPreviews: Any = load_example().DeezerPreviews


# -- api.deezer.com, as it answers ---


def artist(full: bool = False) -> dict[str, Any]:
    short = {
        "id": 27,
        "name": "Daft Punk",
        "tracklist": f"{API}/artist/27/top?limit=50",
        "type": "artist",
    }
    if full:
        short |= {
            "link": "https://www.deezer.com/artist/27",
            "picture": f"{API}/artist/27/image",
            "picture_xl": "https://e-cdns-images.dzcdn.net/images/artist/f2bc007e9133c946"
            "ac3c3907ddc5d2ea/1000x1000-000000-80-0-0.jpg",
            "radio": True,
        }
    return short


def album_ref(server: TestServer, *, release_date: bool) -> dict[str, Any]:
    """The short album object inside a track (``release_date`` only in /track answers)."""
    ref: dict[str, Any] = {
        "id": 302127,
        "title": "Discovery",
        "link": "https://www.deezer.com/album/302127",
        "cover": f"{API}/album/302127/image",
        "cover_small": "https://e-cdns-images.dzcdn.net/images/cover/x/56x56-000000-80-0-0.jpg",
        "cover_xl": server.url(COVER_PATH),
        "md5_image": MD5_IMAGE,
        "tracklist": f"{API}/album/302127/tracks",
        "type": "album",
    }
    if release_date:
        ref["release_date"] = "2001-03-07"
    return ref


def preview_url(server: TestServer, name: str) -> str:
    # real previews are signed CDN links; the query string must not leak into file names
    query = "?hdnea=exp=1735689600~acl=/stream/*~data=user_id=0,application_id=42~hmac=9f1c"
    return server.url(f"/stream/{name}") + query if name else ""


def album_track(server: TestServer, track_id: int, title: str, preview: str) -> dict[str, Any]:
    """A track as listed in an album's ``tracks.data``: no track_position, no disk_number."""
    return {
        "id": track_id,
        "readable": True,
        "title": title,
        "title_short": title,
        "title_version": "",
        "link": f"https://www.deezer.com/track/{track_id}",
        "duration": 224,
        "rank": 793462,
        "explicit_lyrics": False,
        "explicit_content_lyrics": 0,
        "explicit_content_cover": 0,
        "preview": preview_url(server, preview),
        "md5_image": MD5_IMAGE,
        "artist": artist(),
        "album": album_ref(server, release_date=False),
        "type": "track",
    }


def album_json(server: TestServer) -> dict[str, Any]:
    data = [album_track(server, *track) for track in TRACKS]
    return {
        "id": 302127,
        "title": "Discovery",
        "upc": "724384960650",
        "link": "https://www.deezer.com/album/302127",
        "cover": f"{API}/album/302127/image",
        "cover_xl": server.url(COVER_PATH),
        "md5_image": MD5_IMAGE,
        "genre_id": 113,
        "genres": {"data": [{"id": 113, "name": "Dance", "type": "genre"}]},
        "label": "Parlophone (France)",
        "nb_tracks": len(data),
        "duration": 3660,
        "fans": 229325,
        "release_date": "2001-03-07",
        "record_type": "album",
        "available": True,
        "tracklist": f"{API}/album/302127/tracks",
        "explicit_lyrics": False,
        "contributors": [artist(full=True) | {"role": "Main"}],
        "artist": artist(full=True),
        "type": "album",
        "tracks": {"data": data},
    }


def track_json(server: TestServer) -> dict[str, Any]:
    track_id, title, preview = TRACKS[3]
    return album_track(server, track_id, title, preview) | {
        "isrc": "GBDUW0000059",
        "track_position": 4,
        "disk_number": 1,
        "release_date": "2005-01-24",
        "bpm": 123.4,
        "gain": -12.4,
        "contributors": [artist(full=True) | {"role": "Main"}],
        "artist": artist(full=True),
        "album": album_ref(server, release_date=True),
    }


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def config(out_dir: Path) -> DownloadConfig:
    config = make_config(out_dir)
    return config


def serve_cdn(api: responses.RequestsMock, server: TestServer) -> dict[str, bytes]:
    """The preview MP3s and the cover on the real local server; their bytes by file name."""
    api.add_passthru(server.base_url)
    bodies = {"cover.jpg": make_body(5_000, seed=99)}
    server.add(COVER_PATH, bodies["cover.jpg"], content_type="image/jpeg")
    for number, (track_id, title, name) in enumerate(TRACKS, 1):
        if name:
            bodies[f"{number:02d} {title}.mp3"] = body = make_body(20_000 + number, seed=track_id)
            server.add(f"/stream/{name}", body, content_type="audio/mpeg")
    return bodies


def run(config: DownloadConfig, tasks: list[DownloadTask]) -> list[tuple[str, DownloadResult]]:
    queue = DownloadQueue()
    queue.add_tasks(tasks)
    ended: list[tuple[str, DownloadResult]] = []
    with DeezerPreviews(config) as source, DownloadManager(config, downloaders=[source]) as manager:
        manager.run(queue, on_result=lambda task, result: ended.append((task.title, result)))
    return ended


# -- tests ---


def test_an_album_lands_in_its_folder_cover_first_with_exact_bytes(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    api.add(responses.GET, f"{API}/album/302127", json=album_json(server))
    bodies = serve_cdn(api, server)
    with DeezerPreviews(config) as source:
        tasks = source.tasks_for_url("https://www.deezer.com/en/album/302127")

    ended = run(config, tasks)

    assert all(result.is_success for _, result in ended), [r.error for _, r in ended]
    assert ended[0][0] == "Discovery (cover)"
    assert server.requests[0].path == COVER_PATH  # before any preview was fetched
    landed = {p.relative_to(out_dir): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
    assert landed == {FOLDER / name: body for name, body in bodies.items()}
    assert "03 Digital Love.mp3" not in bodies  # no preview, no task; the others keep numbers
    assert [task.content_type for task in tasks] == [ContentType.COVER] + [ContentType.TRACK] * 3
    assert all(task.after == [tasks[0].task_id] and not task.dependencies for task in tasks[1:])
    first = tasks[1].to_content()
    assert first.metadata.values() == {
        "albumartist": "Daft Punk",
        "year": 2001,
        "tracknumber": 1,
        "discnumber": 1,
    }
    assert (first.title, first.artist, first.album) == ("One More Time", "Daft Punk", "Discovery")


def test_a_track_url_gives_one_preview_numbered_by_its_album_position(
    api: responses.RequestsMock, server: TestServer, config: DownloadConfig, out_dir: Path
) -> None:
    api.add(responses.GET, f"{API}/track/3135556", json=track_json(server))
    bodies = serve_cdn(api, server)
    with DeezerPreviews(config) as source:
        tasks = source.tasks_for_url("https://www.deezer.com/track/3135556?utm_source=share")

    ended = run(config, tasks)

    assert [result.file_path for _, result in ended] == [
        out_dir / FOLDER / "04 Harder, Better, Faster, Stronger.mp3"
    ]
    name = "04 Harder, Better, Faster, Stronger.mp3"
    assert (out_dir / FOLDER / name).read_bytes() == bodies[name]
    assert [r.path for r in server.requests] == [f"/stream/{TRACKS[3][2]}"]  # no cover


def test_no_data_is_content_not_found_from_an_injected_api_base(
    api: responses.RequestsMock, config: DownloadConfig
) -> None:
    api.add(responses.GET, "http://deezer.test/v1/album/1", json=NO_DATA)
    api.add(responses.GET, "http://deezer.test/v1/track/1", json=NO_DATA)
    with DeezerPreviews(config, api_base="http://deezer.test/v1/") as source:
        with pytest.raises(ContentNotFoundError) as album:
            source.tasks_for_url("https://www.deezer.com/album/1")
        with pytest.raises(ContentNotFoundError):
            source.get_download_info("1")
    assert album.value.url == "http://deezer.test/v1/album/1"
    assert album.value.source == "deezer_previews"
    assert "no data" in str(album.value)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"type": "Exception", "message": "Quota limit exceeded", "code": 4}, RateLimitError),
        ({"type": "Exception", "message": "Service busy", "code": 700}, ServerError),
        (
            {"type": "ParameterException", "message": "Wrong parameter", "code": 500},
            HTTPStatusError,
        ),
    ],
)
def test_other_deezer_errors_are_typed(
    api: responses.RequestsMock, config: DownloadConfig, error: dict[str, Any], expected: type
) -> None:
    api.add(responses.GET, f"{API}/track/7", json={"error": error})
    with DeezerPreviews(config) as source, pytest.raises(expected) as raised:
        source.get_download_info("7")
    assert not isinstance(raised.value, ContentNotFoundError)
    assert error["message"] in str(raised.value)


def test_a_url_it_does_not_claim_is_a_config_error(config: DownloadConfig) -> None:
    with DeezerPreviews(config) as source, pytest.raises(ConfigError):
        source.tasks_for_url("https://www.deezer.com/playlist/908622995")


@pytest.mark.parametrize(
    ("url", "claimed"),
    [
        ("https://www.deezer.com/album/302127", True),
        ("https://www.deezer.com/en/album/302127", True),
        ("https://deezer.com/fr/track/3135556/", True),
        ("http://www.deezer.com/track/3135556?utm_source=deezer", True),
        ("https://www.deezer.com/playlist/908622995", False),
        ("https://www.deezer.com/artist/27", False),
        ("https://www.deezer.com/album/discovery", False),
        ("https://www.deezer.com.example.com/album/302127", False),
        ("https://api.deezer.com/album/302127", False),
        ("https://open.spotify.com/album/302127", False),
        ("302127", False),
    ],
)
def test_claims_url(url: str, claimed: bool) -> None:
    assert DeezerPreviews.claims_url(url) is claimed


def test_it_describes_itself_for_the_sources_listing() -> None:
    assert DeezerPreviews.source_name == "deezer_previews"
    assert DeezerPreviews.description
    assert DeezerPreviews.url_patterns
    assert DeezerPreviews.required_credentials == ()


def test_the_main_part_downloads_the_urls_given(
    api: responses.RequestsMock,
    server: TestServer,
    out_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What a user with internet runs; tags are written for real, so only the files are named."""
    api.add(responses.GET, f"{API}/album/302127", json=album_json(server))
    bodies = serve_cdn(api, server)
    monkeypatch.setattr(
        sys,
        "argv",
        ["deezer_previews.py", "--output", str(out_dir), "https://www.deezer.com/album/302127"],
    )
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(EXAMPLE), run_name="__main__")

    assert exited.value.code == 0
    assert {p.name for p in (out_dir / FOLDER).iterdir()} == set(bodies)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"completed {out_dir / FOLDER / 'cover.jpg'}"
    assert len(lines) == len(bodies)


def test_the_example_is_under_100_lines_of_code() -> None:
    """Lines of code as ruff formats them: no docstring, blank or comment lines counted."""
    text = EXAMPLE.read_text(encoding="utf-8")
    docstring_end = ast.parse(text).body[0].end_lineno or 0
    code = [
        line
        for number, line in enumerate(text.splitlines(), 1)
        if number > docstring_end and line.strip() and not line.strip().startswith("#")
    ]
    assert len(code) < 100
