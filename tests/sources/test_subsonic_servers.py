"""The subsonic source against recorded behaviour of Navidrome, gonic and LMS (real HTTP fakes
on 127.0.0.1, tests/support/fake_subsonic.py): original bytes, honest names, every login."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import mutagen
import pytest

from ripstream.downloader import DownloadManager, DownloadQueue
from ripstream.downloader.content import ContentType, DownloadResult, ResultStatus
from ripstream.library.tags import TagWriter
from ripstream.sources.subsonic import SubsonicDownloader
from ripstream.sources.subsonic_errors import (
    DownloadsDisabledError,
    MediaMismatchError,
    SubsonicAuthError,
)
from tests.support.audio import flac_bytes, mp3_bytes
from tests.support.fake_subsonic import (
    API_KEY,
    GONIC_OLD,
    LMS,
    NAVIDROME,
    PASSWORD,
    USERNAME,
    FakeSubsonic,
    FakeTrack,
    Profile,
    default_tracks,
)
from tests.support.settings import make_config


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(
    server: FakeSubsonic,
    out: Path,
    *,
    login: dict[str, str] | None = None,
    tags: bool = False,
    **settings: Any,
) -> tuple[list[DownloadResult], dict[ContentType, DownloadResult]]:
    config = make_config(out, jobs=1, **settings)
    source = SubsonicDownloader(config)
    source.authenticate(login or {"username": USERNAME, "password": PASSWORD})
    queue = DownloadQueue()
    queue.add_tasks(source.tasks_for_url(server.url()))
    kinds: dict[ContentType, DownloadResult] = {}
    with (
        source,
        DownloadManager(
            config, downloaders=[source], post_processors=[TagWriter()] if tags else []
        ) as manager,
    ):
        results = manager.run(queue, on_result=lambda task, r: kinds.update({task.content_type: r}))
    return results, kinds


def _folder(out: Path) -> Path:
    return out / FakeSubsonic.artist / f"{FakeSubsonic.album} (2024)"


def _playlist(out: Path) -> list[str]:
    text = (_folder(out) / f"{FakeSubsonic.album}.m3u8").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if not line.startswith("#")]


# --------------------------------------------------------------------------- original bytes


@pytest.mark.parametrize(
    ("profile", "endpoints"),
    [
        pytest.param(NAVIDROME, ["download", "download"], id="navidrome-auto-transcode"),
        pytest.param(
            NAVIDROME.but(downloads_disabled=True),
            ["download", "stream", "stream"],
            id="navidrome-downloads-disabled",
        ),
        pytest.param(GONIC_OLD, ["stream", "stream"], id="gonic-download-is-stream"),
        pytest.param(
            GONIC_OLD.but(version="0.21.0", download_is_stream=False, downloads_disabled=True),
            ["download", "stream", "stream"],
            id="gonic-refuses-download-with-status-fail",
        ),
        pytest.param(
            Profile("airsonic", "11.0", open_subsonic=False),
            ["download", "download"],
            id="not-open-subsonic",
        ),
    ],
)
def test_the_files_on_disk_are_the_original_bytes(
    tmp_path: Path, profile: Profile, endpoints: list[str]
) -> None:
    with FakeSubsonic(profile) as server:
        results, _ = _run(server, tmp_path)
        media = server.media_requests()
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 3
    assert [r.method for r in media] == endpoints
    assert all(r.params["format"] == "raw" for r in media)
    assert all(
        r.params.get("estimateContentLength") == "true" for r in media if r.method == "stream"
    )
    for track in server.tracks:
        assert _sha(_folder(tmp_path) / f"1-{track.number:02d} {track.title}.flac") == track.sha256
    assert _playlist(tmp_path) == ["1-01 First.flac", "1-02 Second.flac"]


# --------------------------------------------------------------------------- transcodes


@pytest.mark.parametrize(
    ("profile", "asked", "extension", "note"),
    [
        pytest.param(NAVIDROME, "mp3:128", "mp3", None, id="mp3-as-asked"),
        pytest.param(NAVIDROME.but(transcoder="opus"), "opus:96", "opus", None, id="opus-as-asked"),
        pytest.param(
            NAVIDROME,
            "opus",
            "mp3",
            "the bytes are MP3, not .opus: saved as .mp3",
            id="opus-asked-mp3-sent",
        ),
    ],
)
def test_a_transcode_gets_the_extension_of_its_real_format_and_valid_tags(
    tmp_path: Path, profile: Profile, asked: str, extension: str, note: str | None
) -> None:
    login = {"username": USERNAME, "password": PASSWORD, "format": asked}
    with FakeSubsonic(profile) as server:
        results, _ = _run(server, tmp_path, login=login, tags=True)
        media = server.media_requests()
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 3
    assert {r.method for r in media} == {"stream"}
    assert {r.params["format"] for r in media} == {asked.partition(":")[0]}
    assert all("estimateContentLength" not in r.params for r in media)
    names = [f"1-{t.number:02d} {t.title}.{extension}" for t in server.tracks]
    assert sorted(p.name for p in _folder(tmp_path).iterdir()) == sorted(
        [*names, f"{FakeSubsonic.album}.m3u8"]
    )
    for name, track in zip(names, server.tracks, strict=True):
        tags = mutagen.File(_folder(tmp_path) / name, easy=True)
        assert tags is not None
        assert tags["title"] == [track.title]
        assert tags["album"] == [FakeSubsonic.album]
    assert [r.message for r in results[:2]] == [note, note]
    assert _playlist(tmp_path) == names


def test_a_raw_file_whose_metadata_lies_is_renamed_and_listed_so(tmp_path: Path) -> None:
    liar = FakeTrack("tr-3", "Third", 3, mp3_bytes(50, seed=3), suffix="flac")
    with FakeSubsonic(NAVIDROME, (*default_tracks(), liar)) as server:
        (_folder(tmp_path)).mkdir(parents=True)
        (_folder(tmp_path) / "1-01 First.flac").write_bytes(b"someone else's file")
        results, _ = _run(server, tmp_path, overwrite="rename")
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 4
    assert _playlist(tmp_path) == ["1-01 First (1).flac", "1-02 Second.flac", "1-03 Third.mp3"]
    assert _sha(_folder(tmp_path) / "1-03 Third.mp3") == liar.sha256
    assert "saved as .mp3" in str(results[2].message)


# --------------------------------------------------------------------------- bad bodies


@pytest.mark.parametrize("poison", ["empty", "html"])
def test_an_empty_body_or_an_error_page_is_never_saved_as_a_track(
    tmp_path: Path, poison: str
) -> None:
    first, second = default_tracks()
    tracks = (first, FakeTrack(second.id, second.title, 2, second.data, poison=poison))
    with FakeSubsonic(NAVIDROME, tracks) as server:
        results, kinds = _run(server, tmp_path)
        tries = [r for r in server.media_requests() if r.params["id"] == second.id]
    failed = results[1]
    assert failed.error is not None, failed
    assert failed.status is ResultStatus.FAILED
    assert isinstance(failed.error, MediaMismatchError)
    assert failed.error.reason == ("empty" if poison == "empty" else "document")
    assert len(tries) == 1  # not retried: the same request gets the same answer
    assert kinds[ContentType.PLAYLIST].status is ResultStatus.CANCELLED
    assert sorted(p.name for p in _folder(tmp_path).iterdir()) == ["1-01 First.flac"]


def test_a_server_that_refuses_download_and_stream_says_so_plainly(tmp_path: Path) -> None:
    profile = NAVIDROME.but(downloads_disabled=True, streams_disabled=True)
    with FakeSubsonic(profile) as server:
        results, _ = _run(server, tmp_path)
        media = server.media_requests()
    error = results[0].error
    assert isinstance(error, DownloadsDisabledError)
    assert str(error).startswith("downloads are disabled on this server")
    assert [r.status for r in results] == [ResultStatus.FAILED] * 2 + [ResultStatus.CANCELLED]
    assert [r.method for r in media] == ["download", "stream", "stream"]  # asked once each
    assert list(_folder(tmp_path).iterdir()) == []  # no track, no .part, no playlist


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize(
    ("login_format", "resumed", "second_range"),
    [
        pytest.param("raw", 300, "bytes=300-", id="raw-resumes-with-if-range"),
        pytest.param("mp3", 0, None, id="transcode-starts-over"),
    ],
)
def test_resume_where_the_answer_allows_it(
    tmp_path: Path, login_format: str, resumed: int, second_range: str | None
) -> None:
    login = {"username": USERNAME, "password": PASSWORD, "format": login_format}
    with FakeSubsonic(NAVIDROME, cut_after=300) as server:
        results, _ = _run(server, tmp_path, login=login)
        first_track = [r for r in server.media_requests() if r.params["id"] == "tr-1"]
    assert all(r.is_success for r in results)
    assert [r.range for r in first_track] == [None, second_range]
    assert first_track[1].if_range == ("Wed, 01 May 2024 10:00:00 GMT" if resumed else None)
    assert results[0].resumed_from == resumed
    assert results[0].attempts == 2
    if login_format == "raw":
        assert _sha(_folder(tmp_path) / "1-01 First.flac") == server.tracks[0].sha256


# --------------------------------------------------------------------------- logins


@pytest.mark.parametrize(
    ("profile", "login", "error", "words", "sent"),
    [
        pytest.param(LMS, {"api_key": API_KEY}, None, None, {"apiKey"}, id="lms-api-key"),
        pytest.param(
            LMS,
            {"username": USERNAME, "password": PASSWORD},
            SubsonicAuthError,
            "does not accept passwords; this server takes OpenSubsonic API keys",
            {"u", "t"},
            id="lms-password-explained-without-sending-it",
        ),
        pytest.param(
            NAVIDROME,
            {"api_key": API_KEY},
            SubsonicAuthError,
            "does not accept API keys",
            set(),
            id="navidrome-no-key-support-announced",
        ),
        pytest.param(
            NAVIDROME.but(tokens=False),
            {"username": USERNAME, "password": PASSWORD},
            None,
            None,
            {"u", "t", "p"},
            id="ldap-user-falls-back-to-password",
        ),
        pytest.param(
            NAVIDROME,
            {"username": USERNAME, "password": "not-the-Pa55"},
            SubsonicAuthError,
            "wrong username or password",
            {"u", "t"},
            id="wrong-password",
        ),
        pytest.param(
            LMS,
            {"api_key": "key-revoked-999"},
            SubsonicAuthError,
            "the API key is not valid",
            {"apiKey"},
            id="invalid-key",
        ),
    ],
)
def test_every_login_a_server_accepts(
    tmp_path: Path,
    profile: Profile,
    login: dict[str, str],
    error: type[Exception] | None,
    words: str | None,
    sent: set[str],
) -> None:
    with FakeSubsonic(profile) as server:
        source = SubsonicDownloader(make_config(tmp_path))
        source.authenticate(login)
        if error is None:
            assert len(source.tasks_for_url(server.url())) == 3
        else:
            with pytest.raises(error) as info:
                source.tasks_for_url(server.url())
            assert words is not None
            assert words in str(info.value)
            for secret in (PASSWORD, API_KEY, "key-revoked-999", "not-the-Pa55"):
                assert secret not in str(info.value)
        authed = [r for r in server.requests() if r.method != "getOpenSubsonicExtensions"]
    assert {key for r in authed for key in r.params} & {"u", "t", "p", "apiKey"} == sent


def test_a_password_over_plain_http_is_warned_about_first(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with FakeSubsonic(NAVIDROME.but(tokens=False)) as server:
        source = SubsonicDownloader(make_config(tmp_path))
        source.authenticate({"username": USERNAME, "password": PASSWORD})
        with caplog.at_level(logging.WARNING, logger="ripstream"):
            source.tasks_for_url(server.url())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "over plain http" in warnings[0]
    assert PASSWORD.encode().hex() not in warnings[0]


def test_discovery_is_asked_once_per_server(tmp_path: Path) -> None:
    with FakeSubsonic(NAVIDROME) as server:
        _run(server, tmp_path)
        asked = [r for r in server.requests() if r.method == "getOpenSubsonicExtensions"]
    assert len(asked) == 1
    assert not {"u", "t", "p", "apiKey"} & set(asked[0].params)


# --------------------------------------------------------------------------- the command line


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RIPSTREAM_")}
    clean["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run(
        [sys.executable, "-m", "ripstream", "--no-progress", *args],
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_cli_asks_for_a_transcode_and_explains_an_api_key_only_server(tmp_path: Path) -> None:
    with FakeSubsonic(NAVIDROME.but(transcoder="opus")) as server:
        url = server.url().replace("://", f"://{USERNAME}@")
        done = _cli(
            "-d",
            str(tmp_path),
            "--subsonic-format",
            "opus:96",
            url,
            env={"RIPSTREAM_SUBSONIC_PASSWORD": PASSWORD},
        )
    assert done.returncode == 0, done.stderr
    assert _playlist(tmp_path) == ["1-01 First.opus", "1-02 Second.opus"]
    with FakeSubsonic(LMS) as server:
        url = server.url().replace("://", f"://{USERNAME}@")
        refused = _cli(
            "-d", str(tmp_path / "lms"), url, env={"RIPSTREAM_SUBSONIC_PASSWORD": PASSWORD}
        )
        keyed = _cli(
            "--no-tags",
            "-d",
            str(tmp_path / "lms"),
            server.url(),
            env={"RIPSTREAM_SUBSONIC_API_KEY": API_KEY},
        )
    assert refused.returncode == 2
    assert "takes OpenSubsonic API keys" in refused.stderr
    assert PASSWORD not in refused.stderr
    assert keyed.returncode == 0, keyed.stderr
    assert _sha(_folder(tmp_path / "lms") / "1-01 First.flac") == server.tracks[0].sha256
    bad = _cli("--subsonic-format", "opus:fast", url, env={})
    assert bad.returncode == 2
    assert "opus:fast" in bad.stderr


def test_a_line_break_in_a_title_adds_no_playlist_entry(tmp_path: Path) -> None:
    tracks = (
        FakeTrack("tr-1", "First\n../../etc/evil.flac", 1, flac_bytes(60, sample_value=100)),
        FakeTrack("tr-2", "Second", 2, flac_bytes(60, sample_value=200)),
    )
    with FakeSubsonic(NAVIDROME, tracks=tracks) as server:
        results, _ = _run(server, tmp_path)
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 3
    text = (_folder(tmp_path) / f"{FakeSubsonic.album}.m3u8").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 5  # the header, then one #EXTINF line and one path per track
    assert lines[1].startswith("#EXTINF:")
    assert "First ../../etc/evil.flac" in lines[1]
    assert all("evil" not in line for line in _playlist(tmp_path)[1:])
