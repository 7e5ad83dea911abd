"""Disk trouble for real: a full file system and a read-only one (small tmpfs mounts), fsync."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ripstream.downloader import ResultStatus
from ripstream.downloader.exceptions import StorageError
from ripstream.downloader.safefs import part_path, probe_writable
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config
from tests.support.syncs import recorded_fsyncs


@contextlib.contextmanager
def tmpfs(target: Path, options: str) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted at the new folder ``target`` for the block (needs root, as in
    CI; the test is skipped where it cannot mount)."""
    target.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size=1m,{options}".rstrip(","), "tmpfs", str(target)],
            check=True,
            capture_output=True,
            timeout=30,
        )
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"cannot mount a tmpfs here: {exc}")
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=False, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: the real ENOSPC of a full disk."""
    with tmpfs(tmp_path / "disk", "") as target:
        yield target


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
    with tmpfs(tmp_path / "ro", "ro") as target:
        server.add("/a.bin", b"data")
        with HttpDownloader(make_config(target)) as http:
            result = http.download(http.get_download_info(server.url("/a.bin")))
        error = result.error
        assert isinstance(error, StorageError)
        assert error.path is not None
        assert Path(error.path).parent == target  # the file it could not make, by name
        assert str(error) == f"cannot write {error.path!r}: the file system is read-only"


def test_fsync_before_the_rename(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = make_body(100_000)
    server.add("/a.bin", body)
    synced = recorded_fsyncs(monkeypatch)
    with HttpDownloader(make_config(out_dir, fsync=True)) as http:
        result = http.download(http.get_download_info(server.url("/a.bin")))
    assert result.is_success
    assert (out_dir / "a.bin").read_bytes() == body
    # the file before the rename (still under its temporary name), and the folder after it
    assert any(Path(p).parent == out_dir and Path(p).name != "a.bin" for p in synced), synced
    assert synced[-1] == str(out_dir), synced


@pytest.mark.parametrize("spare", [0, -1])
def test_the_free_space_check_names_the_folder_and_lets_an_exact_fit_through(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch, spare: int
) -> None:
    body = make_body(100_000, 41)
    server.add("/fit.bin", body)
    real = shutil.disk_usage

    def disk_usage(path: str | Path) -> Any:  # the output folder has room for body + spare
        usage = real(path)
        return usage._replace(free=len(body) + spare) if Path(path) == out_dir else usage

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        result = http.download(http.get_download_info(server.url("/fit.bin")))
    if spare >= 0:
        assert result.is_success, result.error
        assert (out_dir / "fit.bin").read_bytes() == body
        return
    error = result.error
    assert isinstance(error, StorageError)
    assert str(error) == (
        f"not enough free space in {str(out_dir)!r}: the file needs 100000 bytes, 99999 are free"
    )
    assert error.path == str(out_dir)
    assert not (out_dir / "fit.bin").exists()


def test_a_checksum_is_checked_against_the_bytes_read_back_from_disk(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000, 42)
    server.add("/sum.bin", body)
    with HttpDownloader(make_config(out_dir, max_retries=0)) as http:
        content = http.get_download_info(server.url("/sum.bin"))
        content.checksum = "sha256:" + hashlib.sha256(body).hexdigest()
        result = http.download(content)
    assert result.is_success, result.error
    assert (out_dir / "sum.bin").read_bytes() == body


def test_the_probe_makes_the_folder_and_refuses_one_where_no_file_can_be_made(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "new" / "deeper"
    probe_writable(folder)
    probe_writable(folder)  # an existing folder is fine too
    assert list(folder.iterdir()) == []  # the probe leaves nothing behind
    with pytest.raises(OSError):
        probe_writable(Path("/proc"))  # a folder that takes no new file, even from root
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(OSError):
        probe_writable(tmp_path / "file" / "below")


def test_a_folder_that_cannot_be_made_is_reported_naming_it(
    server: TestServer, tmp_path: Path
) -> None:
    with tmpfs(tmp_path / "ro", "ro") as target:
        server.add("/a.bin", b"data")
        with HttpDownloader(make_config(target, max_retries=0)) as http:
            result = http.download(http.get_download_info(server.url("/a.bin")), "sub/a.bin")
        error = result.error
        assert isinstance(error, StorageError), error
        sub = target / "sub"
        assert str(error) == f"cannot write {str(sub)!r}: the file system is read-only"
        assert error.path == str(sub)
