"""Response headers have a total deadline, however slowly a server drips them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ripstream.downloader import ResultStatus
from ripstream.downloader.exceptions import DownloadError
from ripstream.sources.http import HttpDownloader
from tests.support.settings import make_config

Script = Callable[[socket.socket, threading.Event], None]


def drip_headers(conn: socket.socket, stop: threading.Event) -> None:
    """A status line and headers one byte every 0.2 s: each read succeeds, none ends it."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Padding: " + b"x" * 400 + b"\r\n\r\nhello"
    for byte in head:
        if stop.wait(0.2):
            return
        conn.sendall(bytes([byte]))


def endless_continue(conn: socket.socket, stop: threading.Event) -> None:
    """``100 Continue`` forever: http.client skips each and waits for the real answer."""
    while not stop.wait(0.2):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


@pytest.fixture
def dripping() -> Iterator[Callable[[Script], str]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []
    listeners: list[socket.socket] = []

    def start(script: Script) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        listeners.append(listener)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(5)
                    try:
                        conn.recv(65536)  # the request
                        script(conn, stop)
                    except OSError:
                        pass  # the client gave up: that is what the test wants

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/song.flac"

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=5)
    for listener in listeners:
        listener.close()


@pytest.mark.parametrize("script", [drip_headers, endless_continue])
def test_headers_dripped_past_the_deadline_are_a_typed_failure_in_time(
    dripping: Callable[[Script], str], out_dir: Path, script: Script
) -> None:
    url = dripping(script)
    config = make_config(out_dir, header_timeout=1.0, stall_timeout=5.0, max_retries=0)
    started = time.monotonic()
    with HttpDownloader(config) as http:
        result = http.download(http.get_download_info(url))
    took = time.monotonic() - started
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, DownloadError)
    assert not (out_dir / "song.flac").exists()
    # bounded by the header deadline (1 s), not by 5 s per byte or by the server: an upper
    # bound with a wide margin, never a speed target
    assert took < 4.5, took
