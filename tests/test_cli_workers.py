"""``--processes`` and ``--dask local:N`` seen from the terminal during a long download:
``--events`` shows the bytes of a file on a worker moving before it ends, and Ctrl-C (to the
whole process group, as a terminal sends it) stops that download on the worker at once,
keeping its .part; the next run resumes it with a range request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ripstream.downloader.safefs import PART_SUFFIX
from tests.support.batches import listing, sha
from tests.support.httpserver import TestServer, make_body

#: loop limits, far above what the behaviour needs (a dask LocalCluster takes seconds to start)
START_BOUND = 90.0
STOP_BOUND = 30.0
STRATEGIES = {"processes": ["--processes", "2"], "dask": ["--dask", "local:2"]}


def moving_bytes(events: Path, size: int) -> bool:
    """Whether ``--events`` has told of bytes of the file while it was not done."""
    if not events.exists():
        return False
    for line in events.read_text().splitlines():
        if line.endswith("}"):
            record = json.loads(line)
            if record["event"] == "progress" and 0 < (record["bytes"] or 0) < size:
                return True
    return False


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_events_show_bytes_moving_and_ctrl_c_stops_the_worker_download(
    strategy: str, server: TestServer, tmp_path: Path
) -> None:
    if strategy == "dask":
        pytest.importorskip("distributed")
    body = make_body(8_000_000, 3)
    resource = server.add("/long.bin", body, rate_limit_bps=250_000)  # half a minute
    out = tmp_path / "out"
    events = tmp_path / "events.jsonl"
    files = str(listing(tmp_path, server, ["/long.bin"]))
    args = [*STRATEGIES[strategy], "--segments", "1", "-d", str(out), "-i", files]
    command = [sys.executable, "-m", "ripstream", "--no-progress", *args]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [*command, "--events", str(events)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, which Ctrl-C reaches as a whole
    )
    try:
        deadline = time.monotonic() + START_BOUND
        while not moving_bytes(events, len(body)) and process.poll() is None:
            assert time.monotonic() < deadline, "no progress event while the file downloads"
            time.sleep(0.1)  # polling a live process; the condition decides, not the delay
        assert process.poll() is None, "the run ended before its progress could be read"
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=STOP_BOUND)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    server.wait_until(lambda: server.in_flight == 0, timeout=STOP_BOUND)
    assert server.bytes_sent("/long.bin") < len(body)  # the worker stopped reading it
    assert not (out / "long.bin").exists()
    assert [p.stat().st_size > 0 for p in out.glob(f"*{PART_SUFFIX}")] == [True]

    resource.rate_limit_bps = None
    server.reset_stats()
    again = subprocess.run(
        [*command, "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_BOUND,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert sha((out / "long.bin").read_bytes()) == sha(body)
    assert [r.range_header for r in server.requests_for("/long.bin")][-1] != "bytes=0-"
    assert any(r.range_header for r in server.requests_for("/long.bin"))


def test_a_limit_rate_timetable_holds_on_worker_processes(
    server: TestServer, tmp_path: Path
) -> None:
    bodies = {f"/timed{n}.bin": make_body(3_000_000, 4 + n) for n in range(2)}
    for path, body in bodies.items():
        server.add(path, body)
    out = tmp_path / "out"
    finals = [out / path.lstrip("/") for path in bodies]
    # the same limit all day (the real clock decides here): 2M for the whole run, shared by
    # its worker processes; a worker that missed the timetable would run unthrottled
    args = ["--processes", "2", "-j", "2", "--segments", "1", "-d", str(out)]
    args += ["--limit-rate", "00:00,2M 12:00,2M", *(server.url(p) for p in bodies)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "ripstream", "--no-progress", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    landed = None
    deadline = time.monotonic() + START_BOUND
    while landed is None and process.poll() is None:
        assert time.monotonic() < deadline, "the files never landed"
        landed = time.monotonic() if all(final.exists() for final in finals) else None
        time.sleep(0.005)  # polling a live process; the condition decides, not the delay
    _, stderr = process.communicate(timeout=STOP_BOUND)
    assert process.returncode == 0, stderr
    for final, body in zip(finals, bodies.values(), strict=True):
        assert sha(final.read_bytes()) == sha(body)
    assert landed is not None
    first = min(r.time for r in server.requests)
    rate = sum(len(b) for b in bodies.values()) / (landed - first)
    # within 10% of the limit, as the rate tests of test_isolation.py measure it
    assert rate == pytest.approx(2 * 1024 * 1024, rel=0.10), rate / 1024 / 1024
