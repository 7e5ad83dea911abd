"""The CLI's scheduling and monitoring options end to end, as a subprocess against the real
local server: --retry-failed, --max-per-host, --events and --metrics-port read during a run."""

from __future__ import annotations

import itertools
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.support.httpserver import TestServer, make_body

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
