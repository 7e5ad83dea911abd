"""The download archive: what was downloaded and verified, skipped by later runs.

The CLI keeps an archive (OUTPUT/.ripstream-archive.sqlite3 by default) so that a rerun skips
what was downloaded. It is a manager hook (:class:`ArchiveHook`): a task it holds is settled as
skipped before dispatch, and only a completed result is recorded. A download whose last step,
the move into place, failed is not downloaded: were it recorded, every later run would skip it
and the user would never get the file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ripstream.downloader import (
    ContentType,
    DownloadManager,
    DownloadQueue,
    DownloadTask,
    ResultStatus,
)
from ripstream.downloader.content import DownloadResult
from ripstream.downloader.exceptions import StorageError
from ripstream.library.archive import ArchiveHook, DownloadArchive
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import Fault, TestServer, make_body
from tests.support.settings import make_config

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
USERS_FILE = b"the user's own file, created while the download ran\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ripstream(*args: str) -> subprocess.Popen[str]:
    """``python -m ripstream`` from this checkout, with the default archive and no journal
    (a journal would also decide what a rerun skips)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "ripstream", "--no-progress", "--no-state", "--retries", "0", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_download_that_failed_to_move_is_fetched_by_the_next_run(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    body = make_body(300_000, seed=14)
    release = threading.Event()
    server.add(
        "/song.flac", body, faults=[Fault.pause_after(100_000, release, timeout=TIMEOUT, times=1)]
    )
    final = out_dir / "song.flac"

    first = ripstream("-d", str(out_dir), server.url("/song.flac"))
    try:
        # the run is past its overwrite check and receiving the body: the user's file appears
        server.wait_until(lambda: server.bytes_sent("/song.flac") >= 100_000, TIMEOUT)
        final.write_bytes(USERS_FILE)
    finally:
        release.set()
        _, stderr = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 1, stderr
    assert final.read_bytes() == USERS_FILE

    # the user moves their file away and runs the same command again
    final.rename(tmp_path / "mine.flac")
    requests_before = len(server.requests_for("/song.flac"))
    second = ripstream("-d", str(out_dir), server.url("/song.flac"))
    _, stderr = second.communicate(timeout=TIMEOUT)

    assert second.returncode == 0, stderr
    assert final.exists(), f"the rerun skipped the file: {stderr}"
    assert sha(final.read_bytes()) == sha(body)
    assert len(server.requests_for("/song.flac")) > requests_before
    assert (tmp_path / "mine.flac").read_bytes() == USERS_FILE

    # a plain URL is not skipped by the archive: once the file is gone, it comes back
    final.unlink()
    requests_before = len(server.requests_for("/song.flac"))
    third = ripstream("-d", str(out_dir), server.url("/song.flac"))
    _, stderr = third.communicate(timeout=TIMEOUT)
    assert third.returncode == 0, stderr
    assert sha(final.read_bytes()) == sha(body)
    assert len(server.requests_for("/song.flac")) > requests_before


def run_with_archive(
    archive: DownloadArchive, server: TestServer, out_dir: Path, paths: list[str]
) -> list[DownloadResult]:
    """Download ``paths`` through a manager with the archive as its hook."""
    config = make_config(out_dir, max_retries=0)
    with (
        HttpDownloader(config) as http,
        DownloadManager(config, downloaders=[http], hooks=[ArchiveHook(archive)]) as manager,
    ):
        queue = DownloadQueue()
        for path in paths:
            queue.add_task(DownloadTask.from_content(http.get_download_info(server.url(path))))
        return manager.run(queue)


def test_a_held_task_is_skipped_with_a_message_and_no_request(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    server.add("/held.flac", make_body(1000, 1))
    server.add("/new.flac", make_body(1000, 2))
    with DownloadArchive(tmp_path / "archive.sqlite3") as archive:
        archive.record("http", server.url("/held.flac"), out_dir / "held.flac")
        held, new = run_with_archive(archive, server, out_dir, ["/held.flac", "/new.flac"])
    assert held.status is ResultStatus.SKIPPED
    assert (held.message or "").startswith("in the download archive since ")
    assert server.requests_for("/held.flac") == []
    assert not (out_dir / "held.flac").exists()
    assert new.status is ResultStatus.COMPLETED
    assert (out_dir / "new.flac").read_bytes() == make_body(1000, 2)


def test_only_completed_results_are_recorded(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    server.add("/ok.flac", make_body(2000, 3))
    server.add("/there.flac", make_body(10, 4))
    (out_dir / "there.flac").write_bytes(b"the user's own")  # skipped: the file exists
    with DownloadArchive(tmp_path / "archive.sqlite3") as archive:
        results = run_with_archive(
            archive, server, out_dir, ["/ok.flac", "/missing.flac", "/there.flac"]
        )
        assert [r.status for r in results] == [
            ResultStatus.COMPLETED,
            ResultStatus.FAILED,
            ResultStatus.SKIPPED,
        ]
        assert archive.contains("http", server.url("/ok.flac"))
        assert not archive.contains("http", server.url("/missing.flac"))
        assert not archive.contains("http", server.url("/there.flac"))
        assert len(archive) == 1


def test_a_failed_result_is_never_recorded(tmp_path: Path) -> None:
    task = DownloadTask(
        content_id="song-1", content_type=ContentType.TRACK, source="s", title="t", url="u"
    )
    with DownloadArchive(tmp_path / "archive.sqlite3") as archive:
        hook = ArchiveHook(archive)
        for status in (ResultStatus.FAILED, ResultStatus.CANCELLED, ResultStatus.SKIPPED):
            hook.after(
                task,
                DownloadResult(
                    content_id="song-1", source="s", status=status, file_path=tmp_path / "f"
                ),
            )
        assert not archive.contains("s", "song-1")
        assert hook.before(task) is None
        hook.after(
            task,
            DownloadResult(
                content_id="song-1",
                source="s",
                status=ResultStatus.COMPLETED,
                file_path=tmp_path / "f",
            ),
        )
        skipped = hook.before(task)
    assert skipped is not None
    assert skipped.status is ResultStatus.SKIPPED


def test_the_archive_records_lookups_and_forgets(tmp_path: Path) -> None:
    with DownloadArchive(tmp_path / "a.sqlite3") as archive:
        assert not archive.contains("s", "1")
        assert not (tmp_path / "a.sqlite3").exists()  # nothing written until something lands
        archive.record("s", "1", tmp_path / "f", checksum="sha256:00", size=1)
        assert archive.contains("s", "1")
        assert not archive.contains("other", "1")
        assert len(archive) == 1
        archive.forget("s", "1")
        assert not archive.contains("s", "1")


def test_two_archive_objects_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    first, second = DownloadArchive(path), DownloadArchive(path)
    try:
        first.record("s", "a", tmp_path / "a")
        assert second.contains("s", "a")
        second.record("s", "b", tmp_path / "b")
        assert first.contains("s", "b")
        assert len(first) == len(second) == 2
    finally:
        first.close()
        second.close()
    with DownloadArchive(path) as reopened:
        assert reopened.contains("s", "a")
        assert reopened.contains("s", "b")
        assert len(reopened) == 2


def test_a_file_that_is_not_an_archive_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StorageError, match="not a download archive"):
        DownloadArchive(path)
    assert path.read_bytes() == b"this is not sqlite at all" * 100  # left as it was
