"""Disk trouble for real: a full file system and a read-only one (small tmpfs mounts), fsync."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ripstream.downloader import ResultStatus
from ripstream.downloader.exceptions import StorageError
from ripstream.downloader.safefs import part_path
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


def _mount(target: Path, options: str) -> None:
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)],
        check=True,
        capture_output=True,
        timeout=30,
    )


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: the real ENOSPC of a full disk (needs root, as in CI)."""
    target = tmp_path / "disk"
    target.mkdir()
    try:
        _mount(target, "size=1m")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False, timeout=30)


def test_a_file_larger_than_the_free_space_is_refused_before_a_byte_is_written(
    server: TestServer, small_disk: Path
) -> None:
    server.add("/big.bin", make_body(3_000_000))
    with HttpDownloader(make_config(small_disk)) as http:
        result = http.download(http.get_download_info(server.url("/big.bin")))
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, StorageError)
    assert "not enough free space" in str(result.error)
    assert list(small_disk.iterdir()) == []  # no partial file, no lock left behind


def test_a_full_disk_fails_fast_with_a_clear_error_and_keeps_the_part(
    server: TestServer, small_disk: Path
) -> None:
    # no length: nothing to check up front, so the disk really fills
    server.add("/big.bin", make_body(3_000_000), faults=[Fault.no_content_length()])
    with HttpDownloader(make_config(small_disk)) as http:
        result = http.download(http.get_download_info(server.url("/big.bin")))
    assert result.status is ResultStatus.FAILED
    assert isinstance(result.error, StorageError)
    assert "the disk is full" in str(result.error)
    assert len(server.requests_for("/big.bin")) == 1  # permanent: not retried
    assert not (small_disk / "big.bin").exists()
    part = part_path(small_disk / "big.bin", ("http", server.url("/big.bin")))
    assert part.stat().st_size > 0  # kept for resume


def test_the_cli_says_the_disk_is_full(server: TestServer, small_disk: Path) -> None:
    server.add("/big.bin", make_body(3_000_000), faults=[Fault.no_content_length()])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ripstream",
            "--no-progress",
            "--no-state",
            "--no-archive",
            "-d",
            str(small_disk),
            server.url("/big.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 1
    assert "the disk is full" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_read_only_folder_is_reported(server: TestServer, tmp_path: Path) -> None:
    target = tmp_path / "ro"
    target.mkdir()
    try:
        _mount(target, "size=1m,ro")
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        server.add("/a.bin", b"data")
        with HttpDownloader(make_config(target)) as http:
            result = http.download(http.get_download_info(server.url("/a.bin")))
        assert isinstance(result.error, StorageError)
        assert "read-only" in str(result.error)
    finally:
        subprocess.run(["umount", str(target)], check=False, timeout=30)


def test_fsync_before_the_rename(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = make_body(100_000)
    server.add("/a.bin", body)
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    with HttpDownloader(make_config(out_dir, fsync=True)) as http:
        result = http.download(http.get_download_info(server.url("/a.bin")))
    assert result.is_success
    assert (out_dir / "a.bin").read_bytes() == body
    assert len(synced) >= 2  # the file before the rename, and the folder after it
