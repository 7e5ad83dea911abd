"""BatchJournal, the file behind ``--state``: what a rerun of the same command skips."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ripstream.app.batch import Batch, BatchItem
from ripstream.app.journal import SYNC_EVERY, SYNC_SECONDS, BatchJournal, url_key
from ripstream.downloader import ResultStatus
from ripstream.downloader.exceptions import ContentNotFoundError, StorageError
from ripstream.sources import load_registry
from tests.support.clock import FakeClock
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config
from tests.support.syncs import recorded_fsyncs


def entries(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    kept = tmp_path / "kept.bin"
    kept.write_bytes(b"x")
    with BatchJournal(path) as journal:
        journal.record("http://h/kept", "done", [kept])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "' + url_key("http://h/torn") + '", "status": "do')  # killed here
    reopened = BatchJournal(path)
    try:
        assert reopened.is_done("http://h/kept")
        assert not reopened.is_done("http://h/torn")
    finally:
        reopened.close()


def test_a_url_recorded_after_a_torn_line_stays_done(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    done = tmp_path / "done.bin"
    done.write_bytes(b"x")
    path.write_text('{"key": "abc", "sta', encoding="utf-8")  # the last run was killed mid-write
    with BatchJournal(path) as journal:
        journal.record("http://h/after", "done", [done])
    with BatchJournal(path) as reopened:
        assert reopened.is_done("http://h/after")


def test_urls_are_stored_redacted_and_keyed_by_digest(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    url = "https://user:hunter2@cdn.example/song.flac?token=SECRET123&quality=lossless"
    with BatchJournal(path) as journal:
        journal.record(url, "done", [tmp_path / "song.flac"])
    text = path.read_text(encoding="utf-8")
    assert "SECRET123" not in text
    assert "hunter2" not in text
    assert "user" not in text
    [entry] = entries(path)
    assert entry["url"] == "https://cdn.example/song.flac?token=***&quality=lossless"
    assert entry["key"] == url_key(url)
    assert entry["status"] == "done"


def test_a_url_whose_file_was_deleted_comes_back(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    kept, gone = tmp_path / "kept.bin", tmp_path / "gone.bin"
    kept.write_bytes(b"x")
    gone.write_bytes(b"y")
    with BatchJournal(path) as journal:
        journal.record("http://h/kept", "done", [kept])
        journal.record("http://h/gone", "done", [gone])
        assert journal.is_done("http://h/gone")
        gone.unlink()  # the user deleted the file: the URL is to be done again
        assert not journal.is_done("http://h/gone")
    with BatchJournal(path) as reopened:
        assert reopened.is_done("http://h/kept")
        assert not reopened.is_done("http://h/gone")
        assert not reopened.is_done("http://h/never")


def test_a_later_failure_undoes_an_earlier_success(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    file = tmp_path / "f.bin"
    file.write_bytes(b"x")
    with BatchJournal(path) as journal:
        journal.record("http://h/f", "done", [file])
        journal.record("http://h/f", "failed", [])
    with BatchJournal(path) as reopened:
        assert not reopened.is_done("http://h/f")


def test_a_rerun_skips_done_urls_and_retries_failed_ones(
    server: TestServer, out_dir: Path, tmp_path: Path
) -> None:
    server.add("/ok.bin", make_body(3000, 1))
    urls = [server.url("/ok.bin"), server.url("/late.bin")]  # /late.bin is not there yet
    state = tmp_path / "state.jsonl"
    registry = load_registry(plugins=False)
    items = [BatchItem(url) for url in urls]

    with BatchJournal(state) as journal:
        first = Batch(make_config(out_dir, max_retries=0), registry=registry, journal=journal)
        results = first.run(items)
    assert [r.status for r in results] == [ResultStatus.COMPLETED, ResultStatus.FAILED]
    assert isinstance(results[1].error, ContentNotFoundError)

    server.add("/late.bin", make_body(2000, 2))
    server.reset_stats()
    with BatchJournal(state) as journal:
        second = Batch(make_config(out_dir), registry=registry, journal=journal)
        again = second.run(items)
    by_status = {r.status: r for r in again}
    assert set(by_status) == {ResultStatus.SKIPPED, ResultStatus.COMPLETED}
    assert (by_status[ResultStatus.SKIPPED].message or "").startswith("done in an earlier run")
    assert server.requests_for("/ok.bin") == []  # not even resolved again
    assert (out_dir / "late.bin").read_bytes() == make_body(2000, 2)
    assert (out_dir / "ok.bin").read_bytes() == make_body(3000, 1)


# -- group commit -------------------------------------------------------------------------------
# FakeClock starts at 1000 s, as a monotonic clock is far from 0: a test clock at 0 once hid a
# journal that synced every line (``now + since`` passes every bound from 0).


def test_many_lines_share_one_sync_to_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = recorded_fsyncs(monkeypatch)
    kept = tmp_path / "f.bin"
    kept.write_bytes(b"x")
    with BatchJournal(tmp_path / "state.jsonl", sync=True, clock=FakeClock()) as journal:
        for n in range(SYNC_EVERY * 2 + 5):
            journal.record(f"http://h/{n}", "done", [kept])
        assert len(fsyncs) == 2, "one sync per group of lines, not one per line"
        assert journal.unsynced == 5
    assert len(fsyncs) == 3, "closing syncs what is left"
    assert len(entries(tmp_path / "state.jsonl")) == SYNC_EVERY * 2 + 5


def test_an_old_unsynced_line_is_synced_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = recorded_fsyncs(monkeypatch)
    clock = FakeClock()
    with BatchJournal(tmp_path / "state.jsonl", sync=True, clock=clock) as journal:
        journal.record("http://h/1", "failed", [])
        clock.now += SYNC_SECONDS / 2
        journal.record("http://h/2", "failed", [])
        assert fsyncs == []
        clock.now += SYNC_SECONDS / 2
        journal.record("http://h/3", "failed", [])
        assert len(fsyncs) == 1
        assert journal.unsynced == 0


def test_a_failed_sync_at_close_is_a_warning_naming_the_file_and_loses_no_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.jsonl"
    journal = BatchJournal(path, sync=True, clock=FakeClock())
    journal.record("http://h/a", "failed", [])
    assert journal.unsynced == 1

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing)
    with caplog.at_level(logging.WARNING, logger="ripstream.app.journal"):
        journal.close()  # closing never raises: the batch's results stand
    assert [r.getMessage() for r in caplog.records] == [
        f"cannot sync the state file {path}: [Errno 5] {os.strerror(errno.EIO)}"
    ]
    assert [e["key"] for e in entries(path)] == [url_key("http://h/a")]


def test_without_sync_nothing_is_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only --fsync pays for syncs (each one writes out every file downloaded since)."""
    fsyncs = recorded_fsyncs(monkeypatch)
    with BatchJournal(tmp_path / "state.jsonl", clock=FakeClock()) as journal:
        for n in range(SYNC_EVERY * 2):
            journal.record(f"http://h/{n}", "failed", [])
    assert fsyncs == []
    assert len(entries(tmp_path / "state.jsonl")) == SYNC_EVERY * 2


def test_a_killed_process_loses_no_recorded_line(tmp_path: Path) -> None:
    """Lines are written as they come; only the sync to the disk is grouped."""
    path = tmp_path / "state.jsonl"
    kept = tmp_path / "f.bin"
    kept.write_bytes(b"x")
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from ripstream.app.journal import BatchJournal\n"
        "journal = BatchJournal(Path(sys.argv[1]))\n"
        "for n in range(10):\n"
        "    journal.record(f'http://h/{n}', 'done', [Path(sys.argv[2])])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path), str(kept)], check=False, timeout=60
    )
    assert done.returncode == -signal.SIGKILL
    reopened = BatchJournal(path)
    try:
        assert all(reopened.is_done(f"http://h/{n}") for n in range(10))
    finally:
        reopened.close()


def test_failed_urls_are_what_retry_failed_picks_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    with BatchJournal(path) as journal:
        journal.record("http://h/a", "failed", [])
        journal.record("http://h/b", "failed", [])
        journal.record("http://h/b", "done", [])
        assert journal.is_failed("http://h/a")
        assert not journal.is_failed("http://h/b")
    with BatchJournal(path) as reopened:
        assert reopened.is_failed("http://h/a")
        assert not reopened.is_failed("http://h/b")
        assert not reopened.is_failed("http://h/never")


def test_each_line_is_one_complete_entry_even_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_bytes(b"")  # an empty journal is not a torn one
    with BatchJournal(path) as journal:
        journal.record("http://h/a", "done", [])
    with BatchJournal(path) as journal:
        journal.record("http://h/b", "failed", [])
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # ends with a newline, and no blank line anywhere else
    assert all(lines[:-1])
    assert len(lines) == 3
    for entry in entries(path):
        assert set(entry) == {"key", "url", "status", "files", "time"}
        assert isinstance(entry["time"], float)


def test_the_journal_creates_its_folders(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "state.jsonl"
    with BatchJournal(path) as journal:
        journal.record("http://h/a", "done", [])
    assert [e["status"] for e in entries(path)] == ["done"]


def test_foreign_lines_are_skipped_with_a_note_naming_the_file_and_nul_padding_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.jsonl"
    line = json.dumps({"key": url_key("http://h/a"), "status": "done", "files": []})
    later = json.dumps({"key": url_key("http://h/b"), "status": "failed", "files": []})
    # NUL bytes are what a power cut can leave where unsynced lines were: not worth a note
    path.write_text(f'{line}\n["a", "list"]\n\x00\x00\x00\n{later}\n', encoding="utf-8")
    with caplog.at_level(logging.INFO, logger="ripstream.app.journal"):
        journal = BatchJournal(path)
    journal.close()
    assert journal.is_done("http://h/a")
    assert journal.is_failed("http://h/b")
    assert [r.getMessage() for r in caplog.records] == [
        f"state file {path}: skipping a torn or foreign line"
    ]


def test_a_line_without_files_counts_as_done(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_text(json.dumps({"key": url_key("http://h/a"), "status": "done"}) + "\n")
    with BatchJournal(path) as journal:
        assert journal.is_done("http://h/a")


def test_binary_data_inside_the_journal_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_bytes(b'{"key": "k", "status": "done"}\n\xff\xfe\x00binary\n')
    with pytest.raises(StorageError) as caught:
        BatchJournal(path)
    assert caught.value.path == str(path)
    assert str(caught.value) == (
        f"the state file {str(path)!r} is not a RipStream state file (binary data on line 2); "
        "pass another --state, or --no-state"
    )


def test_half_a_character_at_the_end_is_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    line = json.dumps({"key": url_key("http://h/a"), "status": "done", "files": []})
    path.write_bytes(line.encode() + b'\n{"key": "\xc3')  # killed inside a two-byte character
    with BatchJournal(path) as journal:
        assert journal.is_done("http://h/a")


def test_a_state_file_that_is_a_symlink_is_refused_by_name(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.jsonl"
    target.write_text("")
    path = tmp_path / "state.jsonl"
    path.symlink_to(target)
    with pytest.raises(StorageError) as caught:
        BatchJournal(path)
    assert str(caught.value).startswith(f"the state file {str(path)!r} is a symbolic link")
    folder = tmp_path / "folder.jsonl"
    journal = BatchJournal(folder)
    folder.mkdir()  # the file is opened at the first record: by then a folder took its name
    with pytest.raises(StorageError) as written:
        journal.record("http://h/a", "done", [])
    assert str(written.value).startswith(f"the state file {str(folder)!r} is a directory")


def test_a_state_file_with_another_name_gets_a_copy_of_its_own_before_a_line_is_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a backup tool's snapshot (or anyone) hard-linked the state file: what this run adds
    # must not change the snapshot, and the run goes on with what the file held
    path = tmp_path / "state.jsonl"
    first = BatchJournal(path)
    first.record("http://h/a", "done", [])
    first.close()
    snapshot = tmp_path / "snapshot.jsonl"
    os.link(path, snapshot)
    before = snapshot.read_bytes()
    path.chmod(0o640)
    synced = recorded_fsyncs(monkeypatch)
    journal = BatchJournal(path)
    journal.record("http://h/b", "done", [])
    journal.close()
    assert snapshot.read_bytes() == before  # the other name is as it was
    # the copy reached the disk under its temporary name before it took the state file's
    # name: a crash in between leaves the old lines, never an empty state file
    copies = [Path(p).name for p in synced if Path(p).name.startswith(".state.jsonl.")]
    assert len(copies) == 1, synced
    assert copies[0].endswith(".tmp"), synced
    assert path.read_bytes().startswith(before)  # this one kept its lines, and has one more
    assert len(path.read_bytes().splitlines()) == len(before.splitlines()) + 1
    assert (path.stat().st_nlink, snapshot.stat().st_nlink) == (1, 1)
    assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot.jsonl", "state.jsonl"]


def test_a_journal_used_again_after_close_appends_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_bytes(b'{"key": "torn')  # a run killed mid-write
    journal = BatchJournal(path)
    journal.record("http://h/a", "done", [])
    journal.close()
    journal.close()  # safe twice
    journal.record("http://h/b", "done", [])
    journal.close()
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == '{"key": "torn'
    assert [json.loads(line)["key"] for line in lines[1:-1]] == [
        url_key("http://h/a"),
        url_key("http://h/b"),
    ]
    assert lines[-1] == ""


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/mem").exists(), reason="needs Linux /proc")
def test_a_state_file_that_cannot_be_read_is_a_storage_error_naming_it() -> None:
    # a regular file whose read fails (offset 0 of this process's memory is unmapped: EIO)
    path = Path(f"/proc/{os.getpid()}/mem")
    with pytest.raises(StorageError) as caught:
        BatchJournal(path)
    assert caught.value.path == str(path)
    assert str(caught.value) == f"cannot read the state file {str(path)!r}: Input/output error"


def test_a_state_file_that_cannot_be_written_is_a_storage_error_naming_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run" / "state.jsonl"
    journal = BatchJournal(path)
    (tmp_path / "run").write_text("a file took the folder's name")  # after the journal loaded
    with pytest.raises(StorageError) as caught:
        journal.record("http://h/a", "done", [])
    journal.close()
    assert caught.value.path == str(path)
    assert str(caught.value) == f"cannot write the state file {str(path)!r}: File exists"
