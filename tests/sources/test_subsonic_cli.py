"""``python -m ripstream subsonic://...`` end to end against a real Supysonic server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mutagen
import pytest

from tests.support.subsonic import SubsonicServer, running_subsonic


@pytest.fixture(scope="module")
def subsonic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubsonicServer]:
    with running_subsonic(tmp_path_factory.mktemp("subsonic-cli")) as running:
        yield running


def cli(
    *args: str, password: str | None, options: tuple[str, ...] = ("--no-progress",)
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIPSTREAM_")}
    if password is not None:
        env["RIPSTREAM_SUBSONIC_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "ripstream", *options, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def album_url(server: SubsonicServer, name: str) -> str:
    return (
        f"subsonic://{server.username}@{server.host}:{server.port}/album/{server.album_ids[name]}"
    )


def test_album_lands_tagged_in_the_template_folders_and_reruns_skip(
    subsonic: SubsonicServer, tmp_path: Path
) -> None:
    out = tmp_path / "music"
    album = subsonic.library.album("Deep Water")
    url = album_url(subsonic, album.name)
    first = cli("-d", str(out), url, password=subsonic.password)
    assert first.returncode == 0, first.stderr
    folder = out / album.artist / f"{album.name} ({album.year})"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [
            "cover.png",
            "Deep Water.m3u8",
            "1-01 Undertow.flac",
            "1-02 Riptide.flac",
            "2-01 Abyssal Plain.flac",
        ]
    )
    for track in album.tracks:
        path = folder / f"{track.disc}-{track.track:02d} {track.title}.flac"
        tags = mutagen.File(path)
        assert tags is not None
        assert tags["title"] == [track.title]
        assert tags["album"] == [album.name]
        assert tags["albumartist"] == [album.artist]
        assert tags.pictures, "the cover is embedded"
        assert tags.info.length == pytest.approx(track.duration, abs=0.5)
    playlist = (folder / "Deep Water.m3u8").read_text(encoding="utf-8").splitlines()
    assert [line for line in playlist if not line.startswith("#")] == [
        "1-01 Undertow.flac",
        "1-02 Riptide.flac",
        "2-01 Abyssal Plain.flac",
    ]
    assert subsonic.password not in (out / ".ripstream-state.jsonl").read_text()

    # the same command again: the batch journal knows the URL is done
    again = cli("-d", str(out), "--json", url, password=subsonic.password)
    assert again.returncode == 0, again.stderr
    assert [json.loads(line)["message"] for line in again.stdout.splitlines()] == [
        "done in an earlier run and still on disk (state file; --force fetches it again)"
    ]
    # without the journal, the download archive skips every file without fetching it
    archived = cli("-d", str(out), "--json", "--no-state", url, password=subsonic.password)
    assert archived.returncode == 0, archived.stderr
    records = [json.loads(line) for line in archived.stdout.splitlines()]
    assert len(records) == 5
    assert {r["status"] for r in records} == {"skipped"}
    assert all(r["message"].startswith("in the download archive since ") for r in records)
    assert all("--force" in r["message"] for r in records)
    assert subsonic.password not in archived.stdout


def test_wrong_or_missing_password_is_exit_2_and_writes_nothing(
    subsonic: SubsonicServer, tmp_path: Path
) -> None:
    out = tmp_path / "music"
    url = album_url(subsonic, "Deep Water")
    wrong = cli("-d", str(out), url, password="not-the-password")
    assert wrong.returncode == 2
    assert "ripstream: error:" in wrong.stderr
    assert "not-the-password" not in wrong.stderr
    missing = cli("-d", str(out), url, password=None)
    assert missing.returncode == 2
    assert "RIPSTREAM_SUBSONIC_PASSWORD" in missing.stderr
    assert not out.exists()


def test_sources_lists_subsonic_and_the_internet_archive() -> None:
    run = cli("sources", password=None, options=())
    assert run.returncode == 0
    assert "subsonic[s]://" in run.stdout
    assert "archive.org/details/" in run.stdout
