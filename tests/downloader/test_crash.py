"""Crash consistency: a resume state never claims bytes that are not on disk, and after
``kill -9`` at any point the next run fetches only what is missing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ripstream.downloader import ResultStatus
from ripstream.downloader.fetch.partfile import PartFile
from ripstream.downloader.safefs import part_path
from ripstream.downloader.state import ResumeState, sidecar_path
from ripstream.sources.http import HttpDownloader
from tests.support.httpserver import TestServer, make_body
from tests.support.settings import make_config

ROOT = Path(__file__).resolve().parents[2]
NAME = "big.flac"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_checkpoint_is_written_after_the_bytes_it_claims_are_synced(
    server: TestServer, out_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = make_body(700_000)
    server.add(f"/{NAME}", body, rate_limit_bps=250_000)  # ~2.8 s: two or more checkpoints
    events: list[tuple[str, int]] = []
    real_sync, real_save = os.fdatasync, PartFile.save

    def sync(fd: int) -> None:
        real_sync(fd)
        events.append(("sync", os.fstat(fd).st_size))

    def save(self: PartFile, state: ResumeState) -> None:
        events.append(("save", -1 if state.length is None else state.length))
        real_save(self, state)

    monkeypatch.setattr(os, "fdatasync", sync)
    monkeypatch.setattr(PartFile, "save", save)
    with HttpDownloader(make_config(out_dir)) as http:
        result = http.download(http.get_download_info(server.url(f"/{NAME}")))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert sha((out_dir / NAME).read_bytes()) == sha(body)
    saves = [i for i, (kind, _) in enumerate(events) if kind == "save"]
    assert len(saves) >= 2, events
    for index in saves:
        kind, synced = events[index - 1]
        assert kind == "sync", events  # the data was synced right before the state was written
        claimed = events[index][1]
        assert 0 < claimed <= synced, events


def test_a_resume_trusts_only_the_length_the_state_proves(
    server: TestServer, out_dir: Path
) -> None:
    body = make_body(300_000)
    server.add(f"/{NAME}", body)
    url = server.url(f"/{NAME}")
    part = part_path(out_dir / NAME, ("http", url))
    # a crash after the state said 100,000 bytes, with 50,000 unsynced bytes of junk after it
    part.write_bytes(body[:100_000] + b"\xee" * 50_000)
    state = ResumeState("http", url, etag=server.resource(f"/{NAME}").etag, length=100_000)
    sidecar_path(part).write_text(state.to_json())
    with HttpDownloader(make_config(out_dir)) as http:
        result = http.download(http.get_download_info(url))
    assert result.status is ResultStatus.COMPLETED, result.error
    assert result.resumed_from == 100_000
    assert sha((out_dir / NAME).read_bytes()) == sha(body)


def _progress(sidecar: Path) -> list[list[int]]:
    try:
        return list(json.loads(sidecar.read_text())["segments"])
    except (OSError, ValueError, KeyError):
        return []


def test_kill_9_under_segments_then_the_rerun_fetches_only_what_is_missing(
    server: TestServer, out_dir: Path
) -> None:
    size = 16 * 1024 * 1024  # four parts of the default 4 MiB minimum
    body = make_body(size)
    server.add(f"/{NAME}", body, rate_limit_bps=1_000_000)  # per connection
    url = server.url(f"/{NAME}")
    sidecar = sidecar_path(part_path(out_dir / NAME, ("http", url)))
    command = [
        sys.executable,
        "-m",
        "ripstream",
        "--no-progress",
        "--no-state",
        "--no-archive",
        "--segments",
        "4",
        "-d",
        str(out_dir),
        url,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        # wait until every part has checkpointed progress inside itself
        while time.monotonic() < deadline:
            parts = _progress(sidecar)
            if len(parts) >= 4 and all(start < done < end for start, end, done in parts):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"no progress inside every part was checkpointed: {_progress(sidecar)}")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    recorded = _progress(sidecar)
    proven = sum(done - start for start, _, done in recorded)
    assert proven > 0
    server.resource(f"/{NAME}").rate_limit_bps = None
    server.reset_stats()
    rerun = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    assert sha((out_dir / NAME).read_bytes()) == sha(body)
    # only the missing bytes are asked for: every range lies inside an unfinished part
    ranges = [
        tuple(int(x) for x in r.range_header.split("=")[1].split("-"))
        for r in server.requests_for(f"/{NAME}")
        if r.range_header
    ]
    assert ranges, "the rerun did not resume"
    for first, last in ranges:
        assert any(done <= first and last < end for _, end, done in recorded), (first, last)
    unfinished = {done for _, end, done in recorded if done < end}
    assert unfinished <= {first for first, _ in ranges}  # each part resumed at its checkpoint
    # on the wire, the missing bytes and at most a little read-ahead of parts split by stealing
    assert size - proven <= server.bytes_sent(f"/{NAME}") <= size - proven + 1024 * 1024
