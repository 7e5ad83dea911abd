"""Shared plumbing for the examples: a local stand-in for a streaming service, and arguments.

The examples never touch the internet. Unless given ``--base-url``, each one starts this
stand-in on 127.0.0.1 (a free port) for as long as it runs. It serves the generated demo
album of :mod:`ripstream.demo` and, beside it, a tiny JSON "API" for the fictional service
``my_service``::

    GET /album/01 Overture.wav        the audio files (ETag and Range supported)
    GET /album/cover.png              the cover
    GET /api/tracks/track_123.json    {"title": ..., "stream_path": "/album/01%20Overture.wav",
                                       "size": ..., "sha256": ..., ...}

To point the examples at one long-running server instead (e.g. to watch its traffic)::

    python examples/_local_server.py          # prints the base URL, serves until Ctrl-C
    python examples/using_the_downloader.py --base-url http://127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from ripstream.demo import DemoFile, make_album, serve
from ripstream.downloader import DownloadResult

#: The service's track ids, and which album track each one is.
TRACK_IDS = ("track_123", "track_456", "track_789")
ARTIST = "The Loopbacks"
ALBUM = "Demo Album"


def album_files() -> list[DemoFile]:
    """The demo album: six WAV tracks, ``cover.png`` and ``Demo Album.m3u``."""
    return make_album()


def catalogue() -> list[DemoFile]:
    """Everything the stand-in serves: the album plus one JSON metadata file per track id."""
    album = album_files()
    files = list(album)
    for number, (track_id, audio) in enumerate(zip(TRACK_IDS, album, strict=False), 1):
        title = Path(audio.path).stem.split(" ", 1)[1]  # "01 Overture" -> "Overture"
        metadata = {
            "id": track_id,
            "title": title,
            "artist": ARTIST,
            "album": ALBUM,
            "track_number": number,
            "stream_path": quote(audio.path),
            "format": "wav",
            "size": len(audio.data),
            "sha256": audio.sha256,
        }
        files.append(DemoFile(f"/api/tracks/{track_id}.json", json.dumps(metadata).encode()))
    return files


def served_file(name: str) -> DemoFile:
    """The served file whose name (last path component) is ``name``."""
    for item in catalogue():
        if Path(item.path).name == name:
            return item
    raise KeyError(name)


def sha256_of(path: Path) -> str:
    """The sha256 of a file on disk."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def describe(result: DownloadResult) -> str:
    """One line about a result: what happened, where, and how many bytes."""
    if result.is_success:
        detail = result.message or f"{result.bytes_downloaded} bytes, {result.attempts} attempt(s)"
        return f"{result.status.value:<9} {result.file_path} ({detail})"
    return f"{result.status.value:<9} {result.content_id}: {result.error_message}"


@contextmanager
def service(base_url: str | None = None) -> Iterator[str]:
    """Yield ``base_url`` if given, else start the stand-in and yield its URL."""
    if base_url:
        yield base_url.rstrip("/")
        return
    with serve(catalogue()) as url:
        yield url


@contextmanager
def output_directory(path: str | None = None) -> Iterator[Path]:
    """Yield ``path`` (created if needed), else a temporary folder removed afterwards."""
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="ripstream-example-") as temporary:
        yield Path(temporary)


def parse_args(description: str | None, *, lenient: bool = False) -> argparse.Namespace:
    """The two options every example takes: ``--base-url`` and ``--output``.

    :param lenient: ignore unknown arguments (Jupyter passes its own to a kernel).
    """
    parser = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0] if description else None
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        help="a server started with `python examples/_local_server.py` "
        "(default: start one on 127.0.0.1 for this run)",
    )
    parser.add_argument(
        "--output",
        metavar="DIR",
        help="where to write the downloads (default: a temporary folder, removed at the end)",
    )
    if lenient:
        return parser.parse_known_args()[0]
    return parser.parse_args()


def main() -> int:
    with serve(catalogue()) as url:
        print(f"serving the example catalogue on {url} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
