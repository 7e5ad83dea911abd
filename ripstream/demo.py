"""``python -m ripstream demo``: a generated album served on 127.0.0.1 and downloaded for real.

The album is a handful of short WAV tracks (sine-wave chords, made here, so no internet is
needed) plus a cover and an M3U playlist. A small threaded HTTP server with ETag and Range
support serves them; the regular batch pipeline downloads them with checksums and progress
bars; then every file on disk is hashed again and compared with what was served.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import struct
import wave
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO
from urllib.parse import quote

from ripstream.app.batch import BatchItem, run_batch
from ripstream.downloader.bars import TqdmProgress
from ripstream.downloader.config import DownloadConfig
from ripstream.downloader.content import Checksum
from ripstream.downloader.executors import start_thread
from ripstream.downloader.progress import ProgressTracker

__all__ = ["DemoFile", "make_album", "run_demo", "serve"]

_NOTES = (261.63, 293.66, 329.63, 349.23, 392.00, 440.00, 493.88)
_TITLES = (
    "Overture",
    "Loopback Blues",
    "Range Request",
    "Partial Content",
    "Keep-Alive",
    "Atomic Rename",
)


@dataclass(frozen=True, slots=True)
class DemoFile:
    """One served file: its URL path, its bytes and their sha256."""

    path: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def url(self, base_url: str) -> str:
        """Its URL on the server at ``base_url`` (spaces quoted)."""
        return base_url + quote(self.path)


def _tone(index: int, seconds: float = 1.5, rate: int = 22050) -> bytes:
    frequencies = (_NOTES[index % len(_NOTES)], _NOTES[(index + 2) % len(_NOTES)])
    frames = bytearray()
    for n in range(int(seconds * rate)):
        fade = min(1.0, n / 500, (seconds * rate - n) / 500)
        sample = sum(math.sin(2 * math.pi * f * n / rate) for f in frequencies) / 2
        frames += struct.pack("<h", int(sample * fade * 12000))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buffer.getvalue()


def _cover(size: int = 64) -> bytes:
    rows = b"".join(
        b"\x00" + b"".join(bytes((x * 4 % 256, y * 4 % 256, 160)) for x in range(size))
        for y in range(size)
    )

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def make_album(tracks: int = 6) -> list[DemoFile]:
    """The demo album: ``tracks`` WAV files, a cover and an M3U playlist."""
    files = [
        DemoFile(f"/album/{n:02d} {title}.wav", _tone(n))
        for n, title in enumerate(_TITLES[:tracks], 1)
    ]
    playlist = "#EXTM3U\n" + "".join(f"{Path(f.path).name}\n" for f in files)
    files.append(DemoFile("/album/cover.png", _cover()))
    files.append(DemoFile("/album/Demo Album.m3u", playlist.encode()))
    return files


class _Handler(BaseHTTPRequestHandler):
    files: Mapping[str, DemoFile] = {}
    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        from urllib.parse import unquote

        item = self.files.get(unquote(self.path))
        if item is None:
            self.send_error(404)
            return
        data, status = item.data, 200
        start, end = 0, len(item.data) - 1
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if (
            match
            and self.headers.get("If-Range", f'"{item.sha256[:16]}"') == f'"{item.sha256[:16]}"'
        ):
            start = int(match.group(1))
            end = min(int(match.group(2) or end), end)
            if start > end:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("ETag", f'"{item.sha256[:16]}"')
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if body:
            self.wfile.write(data[start : end + 1])

    def log_message(self, format: str, *args: object) -> None:
        return  # the demo's own output is the summary; request logs would drown it


@contextmanager
def serve(files: list[DemoFile]) -> Iterator[str]:
    """Serve ``files`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    handler = type("DemoHandler", (_Handler,), {"files": {f.path: f for f in files}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = start_thread(server.serve_forever, name="ripstream-demo-server")
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run_demo(output: Path, *, out: TextIO, err: TextIO, progress: bool = True) -> int:
    """Serve, download, verify; returns the exit status (0 when every file is exact)."""
    from urllib.parse import quote

    files = make_album()
    tracker = ProgressTracker()
    bars: TqdmProgress | None = None
    config = DownloadConfig(download_directory=output, max_concurrent_downloads=4)
    try:
        with serve(files) as base_url:
            print(f"serving a {len(files)}-file album on {base_url}", file=out, flush=True)
            if progress:  # after the line above, so the bars do not cut into it
                bars = TqdmProgress(total_files=len(files), file=err)
                tracker.add_callback(bars)
            items = [
                BatchItem(base_url + quote(f.path), Checksum("sha256", f.sha256)) for f in files
            ]
            results = run_batch(items, config, progress_tracker=tracker)
    finally:
        if bars is not None:
            bars.close()
    bad = 0
    for demo_file, result in zip(files, results, strict=True):
        path = result.file_path
        exact = (
            result.is_success
            and path is not None
            and path.is_file()
            and hashlib.sha256(path.read_bytes()).hexdigest() == demo_file.sha256
        )
        bad += not exact
        state = "ok" if exact else f"FAILED ({result.error_message or 'bytes differ'})"
        print(f"  {state:<6} {path}", file=out)
    verdict = "every file verified (sha256)" if not bad else f"{bad} file(s) FAILED"
    print(f"{len(files) - bad}/{len(files)} files in {output.resolve()}: {verdict}", file=out)
    return 0 if not bad else 1
