"""Many plain URLs over several processes (--processes): exact bytes, bounded concurrency,
clean interrupts, and workers that stop when their parent is killed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from ripstream.app.modes import auto_processes
from tests.support.httpserver import TestServer, make_body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "ripstream", "--no-progress", *args]


def listing(tmp_path: Path, server: TestServer, paths: list[str]) -> Path:
    path = tmp_path / "list.txt"
    path.write_text("".join(server.url(p) + "\n" for p in paths))
    return path


def test_auto_processes_only_for_many_urls() -> None:
    assert auto_processes(10, jobs=8, cpus=4) == 1
    assert auto_processes(2000, jobs=8, cpus=2) == 1  # the parent needs a CPU of its own
    assert auto_processes(2000, jobs=8, cpus=4) == 3
    assert auto_processes(2000, jobs=1, cpus=8) == 1
    assert auto_processes(2000, jobs=8, cpus=64) == 8


def test_two_processes_land_every_file_exactly(server: TestServer, tmp_path: Path) -> None:
    bodies = {f"/p/{n:03d}.bin": make_body(20_000 + n, n) for n in range(120)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=5_000_000)
    out = tmp_path / "out"
    seen: list[int] = []
    done = threading.Event()

    def count_processes() -> None:  # the parent and its workers all carry the output path
        while not done.wait(0.02):
            seen.append(len(workers_writing_to(out)))

    watcher = threading.Thread(target=count_processes)
    watcher.start()
    try:
        run = subprocess.run(
            command(
                "--processes",
                "2",
                "-j",
                "2",
                "--json",
                "-d",
                str(out),
                "-i",
                str(listing(tmp_path, server, list(bodies))),
            ),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        done.set()
        watcher.join()
    assert run.returncode == 0, run.stderr
    assert max(seen) == 3  # the parent and two workers
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == 120
    assert all(r["ok"] for r in records)
    for path, body in bodies.items():
        assert sha((out / Path(path).name).read_bytes()) == sha(body)
    assert server.max_concurrent_requests <= 2  # two workers of one thread each: never over -j


def test_a_failure_in_one_worker_gives_exit_1(server: TestServer, tmp_path: Path) -> None:
    paths = [f"/q/{n:03d}.bin" for n in range(60)]
    for n, path in enumerate(paths):
        if n != 17:
            server.add(path, make_body(1000, n))
    out = tmp_path / "out"
    run = subprocess.run(
        command("--processes", "2", "-d", str(out), "-i", str(listing(tmp_path, server, paths))),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert "failed: 017.bin" in run.stderr
    assert len([p for p in out.iterdir() if not p.name.startswith(".")]) == 59


def test_ctrl_c_stops_every_worker_and_a_rerun_finishes(server: TestServer, tmp_path: Path) -> None:
    bodies = {f"/r/{n:03d}.bin": make_body(400_000, n) for n in range(60)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=400_000)
    out = tmp_path / "out"
    files = str(listing(tmp_path, server, list(bodies)))
    process = subprocess.Popen(
        command("--processes", "2", "-j", "4", "-d", str(out), "-i", files),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        server.wait_until(lambda: len(server.requests) >= 4, timeout=30)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    finished = [p for p in out.iterdir() if p.suffix == ".bin"]
    assert len(finished) < 60
    for landed in finished:  # whatever landed is whole
        assert landed.read_bytes() == bodies[f"/r/{landed.name}"]
    for resource in bodies:
        server.resource(resource).rate_limit_bps = None
    again = subprocess.run(
        command("--processes", "2", "-d", str(out), "-i", files),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    for path, body in bodies.items():
        assert (out / Path(path).name).read_bytes() == body


def test_workers_stop_when_the_parent_is_killed(server: TestServer, tmp_path: Path) -> None:
    bodies = {f"/k/{n:03d}.bin": make_body(2_000_000, n) for n in range(60)}
    for path, body in bodies.items():
        server.add(path, body, rate_limit_bps=200_000)
    out = tmp_path / "out"
    process = subprocess.Popen(
        command(
            "--processes",
            "2",
            "-j",
            "2",
            "-d",
            str(out),
            "-i",
            str(listing(tmp_path, server, list(bodies))),
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        server.wait_until(lambda: server.in_flight >= 2, timeout=30)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # the orphaned workers notice within a fraction of a second and drop their connections
    server.wait_until(lambda: server.in_flight == 0, timeout=10)
    assert len(server.requests) <= 4
    assert not [p for p in out.iterdir() if p.suffix == ".bin"]
    # and the workers themselves are gone, not idling
    pause = threading.Event()
    for _ in range(100):
        if not workers_writing_to(out):
            break
        pause.wait(0.1)
    assert workers_writing_to(out) == []


def workers_writing_to(out: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(out).encode() in cmdline and b"ripstream" in cmdline:
                found.append(int(entry.name))
    return found


def test_a_url_listed_twice_is_downloaded_once(server: TestServer, tmp_path: Path) -> None:
    paths = [f"/d/{n:03d}.bin" for n in range(60)]
    for n, path in enumerate(paths):
        server.add(path, make_body(1000, n))
    doubled = paths + paths[1:11]  # round-robin would send each repeat to the other worker
    out = tmp_path / "out"
    run = subprocess.run(
        command(
            "--processes",
            "2",
            "--json",
            "-d",
            str(out),
            "-i",
            str(listing(tmp_path, server, doubled)),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert len(run.stdout.splitlines()) == 60
    assert all(len(server.requests_for(path)) == 1 for path in paths)


def test_two_urls_with_one_file_name_never_leave_the_wrong_bytes_reported_verified(
    server: TestServer, tmp_path: Path
) -> None:
    first, second = make_body(300_000, seed=1), make_body(300_000, seed=2)
    server.add("/a/01.flac", first, rate_limit_bps=600_000)
    server.add("/b/01.flac", second, rate_limit_bps=600_000)
    out = tmp_path / "out"
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"{server.url('/a/01.flac')} sha256:{hashlib.sha256(first).hexdigest()}\n"
        f"{server.url('/b/01.flac')} sha256:{hashlib.sha256(second).hexdigest()}\n"
    )
    run = subprocess.run(
        command("--processes", "2", "-j", "2", "--json", "-d", str(out), "-i", str(listing)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    records = {r["url"]: r for r in map(json.loads, run.stdout.splitlines())}
    done = [url for url, r in records.items() if r["status"] == "completed"]
    assert len(done) == 1, records
    assert run.returncode == 1
    other = next(r for url, r in records.items() if url not in done)
    assert other["status"] == "failed"
    assert "writ" in other["error"]  # "another ... is writing/also writes ..." in plain words
    kept = (out / "01.flac").read_bytes()
    assert kept == (first if "/a/" in done[0] else second)  # the bytes of the one reported
