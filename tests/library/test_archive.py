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
import re
import sqlite3
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
from ripstream.library.archive import (
    RECORD_EVERY,
    RECORD_SECONDS,
    ArchiveHook,
    DownloadArchive,
    archive_key,
)
from ripstream.sources.http import HttpDownloader
from tests.support.clock import FakeClock
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
        assert second.contains("s", "b")  # its own look-ups see a record at once
        second.flush()  # the others once its group is written
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


def _task(source: str = "s", content_id: str = "song-1") -> DownloadTask:
    return DownloadTask(
        content_id=content_id,
        content_type=ContentType.TRACK,
        source=source,
        title="t",
        url=f"http://h/{content_id}",
    )


def _rows(path: Path) -> list[tuple[object, ...]]:
    """What the archive file holds, read with plain sqlite as a user would."""
    db = sqlite3.connect(path)
    try:
        return db.execute(
            "SELECT source, content_id, path, checksum, size FROM downloads"
        ).fetchall()
    finally:
        db.close()


def test_a_skip_says_since_when_and_how_to_fetch_again(tmp_path: Path) -> None:
    with DownloadArchive(tmp_path / "archive.sqlite3") as archive:
        archive.record("s", "song-1", tmp_path / "f")
        skipped = ArchiveHook(archive).before(_task())
        hinted = ArchiveHook(archive, hint="run with --force").before(_task())
    assert skipped is not None
    assert hinted is not None
    assert (skipped.content_id, skipped.source, skipped.url) == ("song-1", "s", "http://h/song-1")
    pattern = r"in the download archive since \d{4}-\d\d-\d\d \d\d:\d\d; "
    assert re.fullmatch(
        pattern + "forget it in the archive to fetch it again", skipped.message or ""
    )
    assert re.fullmatch(pattern + "run with --force", hinted.message or "")


def test_force_and_unstable_sources_fetch_held_content_again(tmp_path: Path) -> None:
    with DownloadArchive(tmp_path / "archive.sqlite3") as archive:
        archive.record("stable", "song-1", tmp_path / "f")
        archive.record("plain", "song-1", tmp_path / "f")
        only_stable = ArchiveHook(archive, skips=lambda source: source == "stable")
        assert only_stable.before(_task("stable")) is not None
        assert only_stable.before(_task("plain")) is None
        assert ArchiveHook(archive, force=True).before(_task("stable")) is None


def test_a_completed_download_is_recorded_with_its_file_checksum_and_size(
    tmp_path: Path,
) -> None:
    path = tmp_path / "archive.sqlite3"
    result = DownloadResult(
        content_id="song-1",
        source="s",
        status=ResultStatus.COMPLETED,
        file_path=tmp_path / "song.flac",
        checksum="ab" * 32,
        total_bytes=1234,
    )
    with DownloadArchive(path) as archive:
        ArchiveHook(archive).after(_task(), result)
    assert _rows(path) == [("s", "song-1", str(tmp_path / "song.flac"), "ab" * 32, 1234)]


def test_a_secret_in_a_content_id_is_stored_redacted_and_still_tells_ids_apart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "archive.sqlite3"
    first, second = "https://h/a.flac?token=SECRET-ONE", "https://h/a.flac?token=SECRET-TWO"
    assert archive_key("song-1") == "song-1"
    assert archive_key(first) == f"https://h/a.flac?token=***#sha256:{sha(first.encode())}"
    with DownloadArchive(path) as archive:
        archive.record("http", first, tmp_path / "a.flac")
        assert archive.contains("http", first)
        assert not archive.contains("http", second)
    assert "SECRET" not in repr(_rows(path))


def test_a_fresh_archive_object_sees_what_an_earlier_run_recorded(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    with DownloadArchive(path) as archive:
        archive.record("s", "song-1", tmp_path / "f")
    with DownloadArchive(path) as later:
        assert later.recorded_at("s", "song-1") is not None
        assert ArchiveHook(later).before(_task()) is not None


def test_a_lookup_in_a_missing_archive_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "archive.sqlite3"
    with DownloadArchive(path) as archive:
        assert archive.recorded_at("s", "song-1") is None
        assert not archive.contains("s", "song-1")
        assert not (tmp_path / "deep").exists()
        archive.record("s", "song-1", tmp_path / "f")  # its folders are made when needed
    assert len(_rows(path)) == 1


def test_the_archive_is_in_wal_mode_and_leaves_no_side_files_once_closed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "archive.sqlite3"
    archive = DownloadArchive(path)
    archive.record("s", "song-1", tmp_path / "f")
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        db.close()
    archive.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.sqlite3"]
    assert archive.contains("s", "song-1")  # a closed archive opens again on use
    archive.close()


def test_an_archive_opens_and_answers_while_another_process_is_writing_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "archive.sqlite3"
    with DownloadArchive(path) as first:
        first.record("s", "song-1", tmp_path / "f")
    writer = sqlite3.connect(path, timeout=0, isolation_level=None)  # another worker
    try:
        writer.execute("BEGIN EXCLUSIVE")  # in WAL mode this keeps out writers, not readers
        writer.execute("INSERT INTO downloads VALUES ('s', 'song-2', 'g', NULL, NULL, 0)")
        with DownloadArchive(path) as later:
            assert later.contains("s", "song-1")
            assert not later.contains("s", "song-2")  # not committed yet
    finally:
        writer.close()


def test_the_archive_answers_from_another_thread(tmp_path: Path) -> None:
    answers: list[bool] = []
    with DownloadArchive(tmp_path / "archive.sqlite3") as archive:
        archive.record("s", "song-1", tmp_path / "f")
        worker = threading.Thread(target=lambda: answers.append(archive.contains("s", "song-1")))
        worker.start()
        worker.join(TIMEOUT)
    assert answers == [True]


def test_a_file_in_the_archives_place_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    path.write_bytes(b"this is not sqlite at all")
    with pytest.raises(StorageError) as caught:
        DownloadArchive(path)
    assert caught.value.path == str(path)
    assert str(caught.value) == (
        f"the download archive {str(path)!r} is not a download archive (not an SQLite "
        "database); move it away, or pass --no-archive"
    )
    link = tmp_path / "link.sqlite3"
    link.symlink_to(path)
    with pytest.raises(StorageError) as linked:
        DownloadArchive(link)
    assert str(linked.value).startswith(f"the download archive {str(link)!r} is a symbolic link")


def test_a_broken_or_foreign_database_is_a_storage_error_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    with DownloadArchive(broken) as archive, pytest.raises(StorageError) as opened:
        archive.record("s", "song-1", tmp_path / "f")
    assert opened.value.path == str(broken)
    assert str(opened.value).startswith(f"cannot open the download archive {str(broken)!r}: ")
    foreign = tmp_path / "foreign.sqlite3"
    db = sqlite3.connect(foreign)
    db.execute("CREATE TABLE downloads (name TEXT)")  # another program's table of that name
    db.commit()
    db.close()
    with DownloadArchive(foreign) as archive, pytest.raises(StorageError) as used:
        archive.record("s", "song-1", tmp_path / "f")
    assert used.value.path == str(foreign)
    assert str(used.value).startswith(f"the download archive {str(foreign)!r} cannot be used: ")


def _stored(path: Path) -> set[str]:
    """The content ids another reader of ``path`` sees now."""
    db = sqlite3.connect(path)
    try:
        return {row[0] for row in db.execute("SELECT content_id FROM downloads")}
    finally:
        db.close()


def test_records_are_written_in_groups_and_all_of_them_at_close(tmp_path: Path) -> None:
    path, clock = tmp_path / "archive.sqlite3", FakeClock()
    archive = DownloadArchive(path, clock=clock)
    archive.record("s", "id-0", tmp_path / "f0")
    assert _stored(path) == {"id-0"}  # the first at once: a bad archive says so at once
    for n in range(1, RECORD_EVERY):
        archive.record("s", f"id-{n}", tmp_path / f"f{n}")
    assert _stored(path) == {"id-0"}  # 63 wait for their group
    assert archive.contains("s", "id-63")  # but this archive's own look-ups see them
    assert _stored(path) == {f"id-{n}" for n in range(RECORD_EVERY)}  # a look-up wrote them
    for n in range(RECORD_EVERY, 2 * RECORD_EVERY):
        archive.record("s", f"id-{n}", tmp_path / f"f{n}")
    assert len(_stored(path)) == 2 * RECORD_EVERY  # the 64th record wrote its group
    archive.record("s", "late", tmp_path / "late")
    assert "late" not in _stored(path)
    archive.close()
    assert "late" in _stored(path)


def test_a_record_waits_at_most_its_group_time(tmp_path: Path) -> None:
    path, clock = tmp_path / "archive.sqlite3", FakeClock()
    with DownloadArchive(path, clock=clock) as archive:
        archive.record("s", "first", tmp_path / "a")
        archive.record("s", "second", tmp_path / "b")
        clock.now += RECORD_SECONDS - 0.01
        archive.record("s", "third", tmp_path / "c")
        assert _stored(path) == {"first"}
        clock.now += 0.01
        archive.record("s", "fourth", tmp_path / "d")  # the group is a second old: written
        assert _stored(path) == {"first", "second", "third", "fourth"}


def test_a_process_killed_mid_run_keeps_every_written_group_whole(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from ripstream.library.archive import DownloadArchive\n"
        "archive = DownloadArchive(Path(sys.argv[1]))\n"
        "for n in range(150):\n"
        "    archive.record('s', f'id-{n}', Path(f'f{n}'), checksum='sha256:' + '0' * 64)\n"
        "os._exit(9)  # no close: as a kill would leave it\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 9
    stored = _stored(path)
    # the first record, then whole groups of 64: 1 + 64 + 64, and no hole; the last 21 are
    # lost (unless a slow machine took a second for them), and a later run looks at their
    # files again
    assert stored == {f"id-{n}" for n in range(len(stored))}
    assert 1 + 2 * RECORD_EVERY <= len(stored) <= 150
    with DownloadArchive(path) as archive:
        assert archive.contains("s", "id-128")


def test_a_group_that_cannot_be_written_at_close_is_a_storage_error_naming_the_archive(
    tmp_path: Path,
) -> None:
    path = tmp_path / "archive.sqlite3"
    archive = DownloadArchive(path, clock=FakeClock())
    archive.record("s", "first", tmp_path / "a")  # written at once
    archive.record("s", "waiting", tmp_path / "b")  # waits for its group
    other = sqlite3.connect(path)
    other.execute("DROP TABLE downloads")  # another program broke the archive meanwhile
    other.execute("CREATE TABLE downloads (name TEXT)")
    other.commit()
    other.close()
    with pytest.raises(StorageError) as closing:
        archive.close()
    assert str(closing.value).startswith(f"the download archive {str(path)!r} cannot be used: ")
    assert closing.value.path == str(path)
    archive.close()  # closed all the same: nothing waits any more
    with pytest.raises(StorageError) as used:  # a look-up names the archive just the same
        archive.contains("s", "first")
    assert str(used.value).startswith(f"the download archive {str(path)!r} cannot be used: ")


def test_a_forgotten_entry_is_gone_for_every_reader_at_once(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    with DownloadArchive(path) as archive:
        archive.record("s", "a", tmp_path / "a")
        archive.record("s", "b", tmp_path / "b")
        archive.forget("s", "a")
        assert _stored(path) == {"b"}  # a forget is not held back with the records
