"""Careless input outside the byte path: what a user may hand the CLI by mistake.

A FIFO, a device, a directory or a symbolic link as ``--state``, the archive or the config;
``-i /dev/zero``; garbage in the state file or the archive; a config of the wrong types or
nested a hundred thousand levels; ``--timeout inf``. Each ends in one line on stderr naming
what is wrong and exit status 2, within the subprocess timeout (never a hang), and before a
single request reaches the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.httpserver import TestServer, make_body

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30
EXIT_USAGE = 2


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "ripstream", "--no-progress", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,  # a hang fails the test
        check=False,
        env=env,
        cwd=ROOT,
    )


def refused(run: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2 with one line on stderr that holds ``words``, and no traceback."""
    assert run.returncode == EXIT_USAGE, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("ripstream: error: ")
    for word in words:
        assert word in lines[0], lines[0]


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def symlink(path: Path) -> Path:
    target = path.with_name(path.name + ".target")
    target.write_text("")
    path.symlink_to(target)
    return path


def directory(path: Path) -> Path:
    path.mkdir()
    return path


def device(path: Path) -> Path:
    return Path("/dev/full")


def garbage(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 64)
    return path


NOT_REGULAR: dict[str, tuple[Callable[[Path], Path], str]] = {
    "fifo": (fifo, "FIFO"),
    "symlink": (symlink, "symbolic link"),
    "directory": (directory, "directory"),
    "device": (device, "character device"),
}


@pytest.fixture
def song(server: TestServer) -> str:
    server.add("/song.flac", make_body(10_000, seed=3))
    return server.url("/song.flac")


@pytest.mark.parametrize("kind", list(NOT_REGULAR))
def test_state_that_is_not_a_regular_file_is_refused(
    kind: str, tmp_path: Path, out_dir: Path, server: TestServer, song: str
) -> None:
    make, words = NOT_REGULAR[kind]
    state = make(tmp_path / "state.jsonl")
    run = cli("-d", str(out_dir), "--state", str(state), song)
    refused(run, "state file", str(state), words)
    assert server.requests == []


@pytest.mark.parametrize("kind", [*NOT_REGULAR, "garbage"])
def test_an_archive_that_is_not_an_archive_is_refused(
    kind: str, tmp_path: Path, out_dir: Path, server: TestServer, song: str
) -> None:
    make, words = NOT_REGULAR.get(kind, (garbage, "not an SQLite database"))
    archive = make(tmp_path / "archive.sqlite3")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"archive_path": str(archive)}))
    run = cli("-d", str(out_dir), "--config", str(config), "--no-state", song)
    refused(run, "download archive", str(archive), words)
    assert server.requests == []


@pytest.mark.parametrize("kind", list(NOT_REGULAR))
def test_a_config_that_is_not_a_regular_file_is_refused(
    kind: str, tmp_path: Path, out_dir: Path, song: str
) -> None:
    make, words = NOT_REGULAR[kind]
    config = make(tmp_path / "config.json")
    run = cli("-d", str(out_dir), "--config", str(config), song)
    refused(run, "config file", str(config), words)


def test_a_corrupt_state_file_is_one_line_naming_it(
    tmp_path: Path, out_dir: Path, server: TestServer, song: str
) -> None:
    state = garbage(tmp_path / "state.jsonl")
    run = cli("-d", str(out_dir), "--state", str(state), song)
    refused(run, "state file", str(state), "not a RipStream state file")
    assert server.requests == []


def test_a_state_file_with_a_torn_last_line_still_works(
    tmp_path: Path, out_dir: Path, song: str
) -> None:
    state = tmp_path / "state.jsonl"
    state.write_bytes(b'{"key": "abc", "status": "done", "files": []}\n{"key": "d\xc3')
    run = cli("-d", str(out_dir), "--state", str(state), song)
    assert run.returncode == 0, run.stderr
    assert (out_dir / "song.flac").stat().st_size == 10_000


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"max_concurrent_downloads": "three"}, "max_concurrent_downloads"),
        ({"default_settings": {"timeout_seconds": [30]}}, "timeout_seconds"),
        ({"default_settings": {"overwrite": {"mode": "skip"}}}, "overwrite"),
        ({"default_settings": {"headers": {"X-Token": 5}}}, "headers"),
        ({"source_settings": {"http": ["segments", 4]}}, "source_settings.http"),
        ({"write_tags": "yes"}, "write_tags"),
        ({"archive_path": 7}, "archive_path"),
        ({"default_settings": {"timeout_seconds": 1e999}}, "timeout_seconds"),
    ],
)
def test_config_values_of_the_wrong_type_name_the_field(
    settings: dict[str, object], field: str, tmp_path: Path, out_dir: Path, song: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(settings))
    refused(cli("-d", str(out_dir), "--config", str(config), song), str(config), field)


def test_deeply_nested_config_names_the_field(tmp_path: Path, out_dir: Path, song: str) -> None:
    config = tmp_path / "config.json"
    deep = "[" * 100_000 + "]" * 100_000
    config.write_text('{"default_settings": {"headers": ' + deep + "}}")
    run = cli("-d", str(out_dir), "--config", str(config), song)
    refused(run, str(config), "default_settings.headers", "too deeply")


def test_an_input_file_with_a_byte_order_mark_is_read(
    tmp_path: Path, out_dir: Path, song: str
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_bytes(b"\xef\xbb\xbf" + song.encode() + b"\r\n")
    run = cli("-d", str(out_dir), "-i", str(listing))
    assert run.returncode == 0, run.stderr
    assert (out_dir / "song.flac").stat().st_size == 10_000


def test_a_byte_order_mark_on_stdin_is_ignored(out_dir: Path, song: str) -> None:
    run = cli("-d", str(out_dir), "-i", "-", stdin="\ufeff" + song + "\n")
    assert run.returncode == 0, run.stderr
    assert (out_dir / "song.flac").stat().st_size == 10_000


def test_an_endless_input_file_is_refused(out_dir: Path, server: TestServer) -> None:
    refused(cli("-d", str(out_dir), "-i", "/dev/zero"), "/dev/zero", "larger than 64 MiB")
    assert server.requests == []


def test_a_huge_input_file_is_refused(tmp_path: Path, out_dir: Path) -> None:
    listing = tmp_path / "huge.txt"
    with listing.open("wb") as handle:  # sparse: 65 MiB that take no disk
        handle.truncate(65 * 1024 * 1024)
    refused(cli("-d", str(out_dir), "-i", str(listing)), str(listing), "larger than 64 MiB")


def test_an_input_file_that_is_a_directory_is_refused(tmp_path: Path, out_dir: Path) -> None:
    refused(cli("-d", str(out_dir), "-i", str(tmp_path)), str(tmp_path), "input file")


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "soon"])
def test_timeout_must_be_a_finite_positive_number(
    value: str, out_dir: Path, server: TestServer, song: str
) -> None:
    run = cli("-d", str(out_dir), f"--timeout={value}", song)
    refused(run, "--timeout", value)
    assert server.requests == []
