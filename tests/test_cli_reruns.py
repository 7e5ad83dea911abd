"""Reruns do what people mean (issue 11, problems 1 and 2): a deleted file comes back, a plain
URL is skipped only while its file is still there, and ``--on-exists overwrite`` or ``--force``
fetch the server's current bytes whatever the journal and the archive say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.httpserver import TestServer, make_body


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ripstream", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_deleted_file_comes_back_on_a_rerun(server: TestServer, tmp_path: Path) -> None:
    server.add("/hello.txt", b"hello\n")
    music = tmp_path / "music"
    first = cli("-d", str(music), server.url("/hello.txt"))
    assert first.returncode == 0, first.stderr
    (music / "hello.txt").unlink()
    again = cli("-d", str(music), server.url("/hello.txt"))
    assert again.returncode == 0, again.stderr
    assert "1 downloaded, 0 already there" in again.stderr
    assert (music / "hello.txt").read_bytes() == b"hello\n"


def test_a_rerun_skips_a_plain_url_only_while_its_file_is_there(
    server: TestServer, tmp_path: Path
) -> None:
    server.add("/a.bin", make_body(4000, 1))
    music = tmp_path / "music"
    assert cli("-d", str(music), server.url("/a.bin")).returncode == 0
    server.reset_stats()
    again = cli("-d", str(music), "--json", server.url("/a.bin"))
    assert again.returncode == 0, again.stderr
    record = json.loads(again.stdout)
    assert record["status"] == "skipped"
    assert "--force" in record["message"]
    assert server.requests == []


def test_on_exists_overwrite_fetches_the_changed_file(server: TestServer, tmp_path: Path) -> None:
    server.add("/song.flac", b"old bytes")
    music = tmp_path / "music"
    assert cli("-d", str(music), server.url("/song.flac")).returncode == 0
    server.add("/song.flac", b"new bytes, the server changed the file")
    again = cli("-d", str(music), "--on-exists", "overwrite", server.url("/song.flac"))
    assert again.returncode == 0, again.stderr
    assert "1 downloaded" in again.stderr
    assert (music / "song.flac").read_bytes() == b"new bytes, the server changed the file"


def test_force_fetches_again_whatever_the_journal_says(server: TestServer, tmp_path: Path) -> None:
    server.add("/song.flac", b"old bytes")
    music = tmp_path / "music"
    assert cli("-d", str(music), server.url("/song.flac")).returncode == 0
    server.add("/song.flac", b"new bytes")
    again = cli("-d", str(music), "--force", "--on-exists", "rename", server.url("/song.flac"))
    assert again.returncode == 0, again.stderr
    assert "1 downloaded" in again.stderr
    assert (music / "song.flac").read_bytes() == b"old bytes"
    renamed = [p for p in music.iterdir() if p.name.startswith("song") and p.name != "song.flac"]
    assert [p.read_bytes() for p in renamed] == [b"new bytes"]
