"""BatchJournal, the file behind ``--state``: what a rerun of the same command skips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ripstream.app.batch import Batch, BatchItem
from ripstream.app.journal import SYNC_EVERY, SYNC_SECONDS, BatchJournal, url_key
from ripstream.downloader import ResultStatus
from ripstream.downloader.exceptions import ContentNotFoundError
from ripstream.sources import load_registry
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config


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


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", counting)
    return calls


def test_many_lines_share_one_sync_to_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = _fsyncs(monkeypatch)
    kept = tmp_path / "f.bin"
    kept.write_bytes(b"x")
    with BatchJournal(tmp_path / "state.jsonl", clock=_Clock()) as journal:
        for n in range(SYNC_EVERY * 2 + 5):
            journal.record(f"http://h/{n}", "done", [kept])
        assert len(fsyncs) == 2, "one sync per group of lines, not one per line"
        assert journal.unsynced == 5
    assert len(fsyncs) == 3, "closing syncs what is left"
    assert len(entries(tmp_path / "state.jsonl")) == SYNC_EVERY * 2 + 5


def test_an_old_unsynced_line_is_synced_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsyncs = _fsyncs(monkeypatch)
    clock = _Clock()
    with BatchJournal(tmp_path / "state.jsonl", clock=clock) as journal:
        journal.record("http://h/1", "failed", [])
        clock.now += SYNC_SECONDS / 2
        journal.record("http://h/2", "failed", [])
        assert fsyncs == []
        clock.now += SYNC_SECONDS / 2
        journal.record("http://h/3", "failed", [])
        assert len(fsyncs) == 1
        assert journal.unsynced == 0


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
