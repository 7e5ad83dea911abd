"""Shared fixtures: a real HTTP server on 127.0.0.1, an output folder, fast settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ripstream.downloader import DownloadBehaviorSettings, DownloadConfig
from tests.support.httpserver import TestServer


@pytest.fixture
def server() -> Iterator[TestServer]:
    """A real HTTP/1.1 server on 127.0.0.1 (see tests/support/httpserver/)."""
    with TestServer() as running:
        yield running


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """An empty output folder."""
    path = tmp_path / "out"
    path.mkdir()
    return path


def fast_settings(**changes: object) -> DownloadBehaviorSettings:
    """Careful defaults, but with retry waits of zero so tests never sleep between attempts."""
    values: dict[str, object] = {"retry_delay": 0.0, "max_retry_delay": 0.0,
                                 "retry_jitter": 0.0, "max_retry_after": 0.0,
                                 "stall_timeout": 5.0, "timeout_seconds": 5.0,
                                 "min_segment_size": 64 * 1024}
    values.update(changes)
    return DownloadBehaviorSettings(**values)  # type: ignore[arg-type]


def make_config(directory: Path, *, jobs: int = 3, **changes: object) -> DownloadConfig:
    """A config writing to ``directory`` with :func:`fast_settings`."""
    return DownloadConfig(download_directory=directory, max_concurrent_downloads=jobs,
                          default_settings=fast_settings(**changes))
