"""Batches of plain http files for manager, executor and cluster tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ripstream.downloader import ContentType, DownloadQueue, DownloadTask
from tests.support.httpserver import TestServer, make_body


def sha(data: bytes) -> str:
    """The sha256 of ``data``, in hex."""
    return hashlib.sha256(data).hexdigest()


def http_task(server: TestServer, path: str, **kwargs: Any) -> DownloadTask:
    """A task for the plain http file at ``path`` on ``server``."""
    url = server.url(path)
    return DownloadTask(
        content_id=url, content_type=ContentType.FILE, source="http", title=path, url=url,
        **kwargs,
    )  # fmt: skip


def queue_of(server: TestServer, paths: list[str]) -> DownloadQueue:
    """A queue of :func:`http_task` s, in order."""
    queue = DownloadQueue()
    queue.add_tasks(http_task(server, path) for path in paths)
    return queue


def serve_numbered(
    server: TestServer, prefix: str, count: int, size: int, **kwargs: Any
) -> dict[str, bytes]:
    """``count`` files ``/<prefix>/NNN.bin`` of distinct sizes and bytes; path -> body."""
    bodies = {f"/{prefix}/{n:03d}.bin": make_body(size + n, n) for n in range(count)}
    for path, body in bodies.items():
        server.add(path, body, **kwargs)
    return bodies


def listing(tmp_path: Path, server: TestServer, paths: list[str]) -> Path:
    """An input file (``-i``) of the URLs of ``paths``."""
    path = tmp_path / "list.txt"
    path.write_text("".join(server.url(p) + "\n" for p in paths))
    return path
