"""The CLI's scheduling and monitoring options end to end, as a subprocess against the real
local server: --retry-failed, --max-per-host (on threads and across --processes), a host's
cool-down across worker processes, --events and --metrics-port read during a run."""

from __future__ import annotations

import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

from tests.support.httpserver import Fault, TestServer, make_body

TIMEOUT = 60
CONFIG = {
    "default_settings": {
        "retry_delay": 0,
        "max_retry_delay": 0,
        "retry_jitter": 0,
        "max_retry_after": 0,
        "min_segment_size": 65536,
    }
}


def command(tmp_path: Path, *args: str) -> list[str]:
    """The CLI, writing to ``tmp_path/out`` (set in the config: no -o/-d spelling needed)."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**CONFIG, "download_directory": str(tmp_path / "out")}))
    return [sys.executable, "-m", "ripstream", "--no-progress", "--config", str(config), *args]


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(tmp_path, *args), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


def test_retry_failed_fetches_only_the_failed_urls(server: TestServer, tmp_path: Path) -> None:
    out = tmp_path / "out"
    server.add("/good.bin", make_body(1000, seed=1))
    first = run(tmp_path, server.url("/good.bin"), server.url("/late.bin"))
    assert first.returncode == 1
    server.add("/late.bin", make_body(1000, seed=2))
    server.add("/new.bin", make_body(1000, seed=3))
    listing = tmp_path / "urls.txt"
    listing.write_text("\n".join(server.url(p) for p in ("/good.bin", "/late.bin", "/new.bin")))
    server.reset_stats()
    again = run(tmp_path, "-i", str(listing), "--retry-failed")
    assert again.returncode == 0, again.stderr
    assert [r.path for r in server.requests] == ["/late.bin"]
    assert (out / "late.bin").read_bytes() == make_body(1000, seed=2)
    assert not (out / "new.bin").exists()


def test_max_per_host_is_counted_at_the_server(server: TestServer, tmp_path: Path) -> None:
    urls = []
    for i in range(8):
        server.add(f"/p{i}.bin", make_body(512 * 1024, seed=i), rate_limit_bps=2_000_000)
        urls.append(server.url(f"/p{i}.bin"))
    done = run(tmp_path, "-j", "8", "--segments", "4", "--max-per-host", "3", *urls)
    assert done.returncode == 0, done.stderr
    assert server.max_concurrent_requests == 3
    assert sum(1 for r in server.requests if r.range_header) > 8


def test_max_per_host_holds_across_worker_processes(server: TestServer, tmp_path: Path) -> None:
    urls = []
    for i in range(12):
        server.add(f"/w{i}.bin", make_body(256 * 1024, seed=i), rate_limit_bps=2_000_000)
        urls.append(server.url(f"/w{i}.bin"))
    args = ["--processes", "2", "-j", "8", "--segments", "4", "--max-per-host", "2", "--json"]
    done = run(tmp_path, *args, *urls)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert len({r["worker"] for r in records}) == 2  # both worker processes downloaded...
    assert server.max_concurrent_requests == 2  # ...and never more than two at the host
    assert sum(1 for r in server.requests if r.range_header) > 12
    for i in range(12):
        assert (tmp_path / "out" / f"w{i}.bin").read_bytes() == make_body(256 * 1024, seed=i)


def copy_lines(stream: IO[str], into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_a_429_in_one_worker_process_pauses_the_host_for_the_other(
    server: TestServer, tmp_path: Path
) -> None:
    # -j 2 over two processes of one thread: one download each, both held mid-body by the
    # server, so both workers are up and busy. Then /a.bin is cut and its retry answered 429
    # with Retry-After: 3. Once the parent says so, /b.bin is let go and its worker moves on
    # to /c.bin: that request must wait for the end of the cool-down, although its own
    # process never saw the 429.
    hold_a, hold_b = threading.Event(), threading.Event()
    bodies = {
        name: make_body(size, seed)
        for name, size, seed in [("a", 50_000, 1), ("b", 50_000, 2), ("c", 5000, 3)]
    }
    held = [
        Fault.pause_after(1000, hold_a, timeout=TIMEOUT, times=1),
        Fault.drop_after(2000, times=1),
    ]
    server.add("/a.bin", bodies["a"], faults=held)
    server.add(
        "/b.bin", bodies["b"], faults=[Fault.pause_after(1000, hold_b, timeout=TIMEOUT, times=1)]
    )
    server.add("/c.bin", bodies["c"])
    args = ["--processes", "2", "-j", "2", "--json", *(server.url(f"/{n}.bin") for n in "abc")]
    stderr: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        command(tmp_path, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        reader = threading.Thread(target=copy_lines, args=(process.stderr, stderr))
        reader.start()
        try:
            server.wait_for_requests(1, "/a.bin", timeout=TIMEOUT)
            server.wait_for_requests(1, "/b.bin", timeout=TIMEOUT)
            server.resource("/a.bin").add_fault(Fault.status(429, retry_after=3, times=1))
            hold_a.set()  # /a.bin is cut at 2000 bytes; its retry gets the 429
            while "127.0.0.1 asked us to slow down" not in (line := stderr.get(timeout=TIMEOUT)):
                assert "Traceback" not in line
        finally:
            hold_a.set()
            hold_b.set()  # /b.bin ends; its worker takes /c.bin
        records = [json.loads(line) for line in process.stdout]
        assert process.wait(TIMEOUT) == 0
        reader.join()
    workers = {Path(r["file_path"]).name: r["worker"] for r in records}
    assert workers["c.bin"] == workers["b.bin"] != workers["a.bin"]
    _, a_429, a_after = server.requests_for("/a.bin")
    [c_request] = server.requests_for("/c.bin")
    ends = a_429.time + 3 - 0.05  # the cool-down's end, less a small margin
    assert c_request.time >= ends
    assert a_after.time >= ends
    for name, body in bodies.items():
        assert (tmp_path / "out" / f"{name}.bin").read_bytes() == body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_events_and_metrics_are_readable_during_a_run(server: TestServer, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    server.add("/fast.bin", make_body(10_000, seed=1))
    server.add("/slow.bin", make_body(600_000, seed=2), rate_limit_bps=150_000)
    port = free_port()
    args = ["-j", "1", "--events", str(events), "--metrics-port", str(port)]
    urls = [server.url("/fast.bin"), server.url("/slow.bin?token=s3cret")]
    server.add("/slow.bin?token=s3cret", make_body(600_000, seed=2), rate_limit_bps=150_000)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with subprocess.Popen(
        command(tmp_path, *args, *urls), env=env, stderr=subprocess.PIPE, text=True
    ) as process:
        seen: dict[str, float] = {}
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            try:
                seen = scrape(port)
            except OSError:
                seen = {}
            lines = events.read_text().splitlines() if events.exists() else []
            completed = 'ripstream_downloads_total{source="http",status="completed"}'
            # the slow file is running (its progress is out) and the fast one has completed
            if (
                any('"event":"progress"' in line and "slow.bin" in line for line in lines)
                and seen.get("ripstream_active_downloads", 0)
                and seen.get(completed, 0)
            ):
                break
            time.sleep(0.05)  # polling a live process; the condition decides, not the delay
        assert process.poll() is None, "the run ended before anything could be read"
        assert seen["ripstream_active_downloads"] == 1
        assert seen['ripstream_downloads_total{source="http",status="completed"}'] == 1
        assert seen['ripstream_bytes_total{source="http"}'] >= 10_000
        assert process.wait(TIMEOUT) == 0
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert {r["version"] for r in records} == {1}
    slow = [r for r in records if r["url"] and "slow.bin" in r["url"]]
    kinds = [r["event"] for r in slow]
    assert kinds[0] == "queued"
    assert "started" in kinds
    assert "progress" in kinds
    assert kinds[-1] == "completed"
    assert slow[-1]["bytes"] == 600_000
    assert all("s3cret" not in json.dumps(r) for r in records)
    progress = [r["time"] for r in slow if r["event"] == "progress"]
    assert all(b - a >= 0.99 for a, b in itertools.pairwise(progress))
