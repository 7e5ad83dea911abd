"""Batches end to end: credentials, the journal behind --state, and the download archive."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ripstream.app.batch import Batch, BatchItem
from ripstream.app.journal import url_key
from ripstream.downloader import BaseDownloader, ContentType, DownloadableContent, ResultStatus
from ripstream.downloader.exceptions import AuthenticationError, ContentNotFoundError
from ripstream.sources import load_registry
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ripstream", "--no-progress", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Locked(BaseDownloader):
    """A source that needs a password and checks it."""

    source_name: ClassVar[str] = "locked"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.TRACK]
    required_credentials: ClassVar[tuple[str, ...]] = ("password",)
    base_url: ClassVar[str] = ""
    seen: ClassVar[list[Mapping[str, Any]]] = []

    @classmethod
    def claims_url(cls, url: str) -> bool:
        return url.startswith("locked://")

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        Locked.seen.append(dict(credentials))
        if credentials.get("password") != "s3cret":
            raise AuthenticationError("wrong password", source="locked")
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        name = content_id.removeprefix("locked://")
        return DownloadableContent(
            content_id=name,
            content_type=ContentType.TRACK,
            source="locked",
            title=name,
            url=f"{self.base_url}/{name}",
        )


def test_a_source_is_authenticated_once_before_its_urls_resolve(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/a", b"aaa")
    server.add("/b", b"bbb")
    Locked.base_url = server.base_url
    Locked.seen.clear()
    registry = load_registry(plugins=False, extra=[Locked])
    batch = Batch(
        make_config(out_dir), registry=registry, environ={"RIPSTREAM_LOCKED_PASSWORD": "s3cret"}
    )
    results = batch.run([BatchItem("locked://a"), BatchItem("locked://b")])
    assert [r.status for r in results] == [ResultStatus.COMPLETED] * 2
    assert Locked.seen == [{"password": "s3cret"}]
    assert (out_dir / "a").read_bytes() == b"aaa"
    wrong = Batch(
        make_config(out_dir), registry=registry, environ={"RIPSTREAM_LOCKED_PASSWORD": "nope"}
    )
    with pytest.raises(AuthenticationError):
        wrong.run([BatchItem("locked://a")])


def test_journal_skips_finished_urls_and_keeps_no_secrets(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    server.add("/ok.bin", make_body(1000, 1))
    server.add("/flaky.bin", make_body(1000, 2), faults=[Fault.permanent_status(503)])
    state = tmp_path / "state.jsonl"
    urls = [server.url("/ok.bin?token=SECRET123"), server.url("/flaky.bin")]
    first = cli("-d", str(out_dir), "--retries", "0", "--state", str(state), *urls)
    assert first.returncode == 1
    text = state.read_text()
    assert "SECRET123" not in text
    entries = {e["key"]: e for e in map(json.loads, text.splitlines())}
    assert entries[url_key(urls[0])]["status"] == "done"
    assert entries[url_key(urls[1])]["status"] == "failed"
    server.resource("/flaky.bin").set_faults([])
    server.reset_stats()
    second = cli("-d", str(out_dir), "--state", str(state), *urls)
    assert second.returncode == 0, second.stderr
    assert server.requests_for("/ok.bin") == []  # done before: not even resolved again
    assert len(server.requests_for("/flaky.bin")) == 1
    assert (out_dir / "flaky.bin").read_bytes() == make_body(1000, 2)


def test_archive_does_not_skip_a_plain_url_whose_file_is_gone(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/song.flac", make_body(5000))
    url = server.url("/song.flac")
    first = cli("-d", str(out_dir), "--no-state", url)
    assert first.returncode == 0, first.stderr
    (out_dir / "song.flac").unlink()  # a plain URL's id is not stable: the file comes back
    second = cli("-d", str(out_dir), "--no-state", "--json", url)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["status"] == "completed"
    assert (out_dir / "song.flac").read_bytes() == make_body(5000)


def test_template_flag_names_files_from_metadata(server: TestServer, out_dir: Path) -> None:
    server.add("/x/track.mp3", b"data")
    run = cli("-d", str(out_dir), "--template", "{type}/{title}.{ext}", server.url("/x/track.mp3"))
    assert run.returncode == 0, run.stderr
    assert (out_dir / "file" / "track.mp3").read_bytes() == b"data"
    bad = cli("-d", str(out_dir / "new"), "--template", "{title", server.url("/x/track.mp3"))
    assert bad.returncode == 2
    assert "filename template '{title' is malformed" in bad.stderr
    assert not (out_dir / "new").exists()


class Flaky(BaseDownloader):
    """A source whose resolution fails for some URLs: one typed, one a plain bug."""

    source_name: ClassVar[str] = "flaky"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.TRACK]
    base_url: ClassVar[str] = ""

    @classmethod
    def claims_url(cls, url: str) -> bool:
        return url.startswith("flaky://")

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        name = content_id.removeprefix("flaky://")
        if name == "gone":
            raise ContentNotFoundError("the service has no track 'gone'", source="flaky")
        if name == "bug":
            raise KeyError("tracks")  # a plugin's bug on an odd API answer
        return DownloadableContent(
            content_id=name,
            content_type=ContentType.TRACK,
            source="flaky",
            title=name,
            url=f"{self.base_url}/{name}",
        )


def test_one_item_that_cannot_be_resolved_never_stops_the_batch(
    server: TestServer, out_dir: Path
) -> None:
    server.add("/a", b"aaa")
    server.add("/b", b"bbb")
    Flaky.base_url = server.base_url
    registry = load_registry(plugins=False, extra=[Flaky])
    items = [BatchItem(f"flaky://{name}") for name in ("a", "gone", "bug", "b")]
    results = Batch(make_config(out_dir), registry=registry).run(items)
    by_status = sorted((r.status.value, r.content_id) for r in results)
    assert by_status == [
        ("completed", "a"),
        ("completed", "b"),
        ("failed", "flaky://bug"),
        ("failed", "flaky://gone"),
    ]
    failed = {r.content_id: r.error for r in results if r.status is ResultStatus.FAILED}
    assert isinstance(failed["flaky://gone"], ContentNotFoundError)
    assert "KeyError" in str(failed["flaky://bug"])
    assert (out_dir / "a").read_bytes() == b"aaa"
    assert (out_dir / "b").read_bytes() == b"bbb"
