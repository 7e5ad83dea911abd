"""``--dask``: the same batch on a real dask LocalCluster of two worker processes. Files land
exact, results name the workers, the driver alone writes the journal (one line per URL), a
rerun skips everything, a worker killed mid-download costs nothing, and an output folder the
workers cannot write stops the run before any download."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ripstream.cli import main
from ripstream.downloader.safefs import PART_SUFFIX
from tests.support.batches import listing, serve_numbered, sha
from tests.support.httpserver import TestServer

pytest.importorskip("distributed")


def cli(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["--no-progress", "--json", *args], stdout=out, stderr=err)
    return code, [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def journal(out: Path) -> list[dict[str, Any]]:
    lines = (out / ".ripstream-state.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_200_files_land_exact_on_two_workers_and_a_rerun_skips_them(
    dask_client: Any, server: TestServer, tmp_path: Path
) -> None:
    bodies = serve_numbered(server, "c", 200, 8_000)
    out = tmp_path / "out"
    files = str(listing(tmp_path, server, list(bodies)))
    address = dask_client.scheduler.address
    code, records, err = cli("--dask", address, "-j", "4", "-d", str(out), "-i", files)
    assert code == 0, err
    assert f"downloading on the dask cluster {address}" in err
    assert len(records) == 200
    assert {r["status"] for r in records} == {"completed"}
    assert len({r["worker"] for r in records}) == 2  # both worker processes fetched files
    for path, body in bodies.items():
        assert sha((out / Path(path).name).read_bytes()) == sha(body)
    lines = journal(out)
    assert sorted(line["url"] for line in lines) == sorted(server.url(p) for p in bodies)
    assert {line["status"] for line in lines} == {"done"}
    requests = len(server.requests)

    again, records, err = cli("--dask", address, "-d", str(out), "-i", files)
    assert again == 0, err
    assert len(records) == 200
    assert {r["status"] for r in records} == {"skipped"}
    assert len(server.requests) == requests  # nothing was asked of the server again
    assert len(journal(out)) == 200


def test_a_worker_killed_mid_download_costs_nothing(
    dask_client: Any, server: TestServer, tmp_path: Path
) -> None:
    bodies = serve_numbered(server, "kill", 8, 2 * 1024 * 1024, rate_limit_bps=1024 * 1024)
    out = tmp_path / "out"
    files = str(listing(tmp_path, server, list(bodies)))
    outcome: list[tuple[int, list[dict[str, Any]], str]] = []
    run = threading.Thread(
        target=lambda: outcome.append(
            cli("--dask", dask_client.scheduler.address, "-j", "4", "-d", str(out), "-i", files)
        )
    )
    run.start()
    try:
        # a checkpoint (after the first MiB) proves a .part worth resuming is on disk; with
        # one for each of the four running downloads, whichever worker dies has left one
        server.wait_until(
            lambda: len(list(out.glob(f"*{PART_SUFFIX}.json"))) >= 4 and server.in_flight >= 4,
            timeout=30,
        )
        victim = sorted(dask_client.run(os.getpid).values())[0]
        os.kill(victim, signal.SIGKILL)
    finally:
        run.join(timeout=110)
    assert not run.is_alive()
    code, records, err = outcome[0]
    assert code == 0, err
    assert len(records) == 8  # one result per URL: nothing recorded twice
    assert all(r["ok"] for r in records)
    assert str(victim) not in {r["worker"].rsplit(":", 1)[1] for r in records}
    for path, body in bodies.items():
        assert sha((out / Path(path).name).read_bytes()) == sha(body)
    resumed = [r for p in bodies for r in server.requests_for(p) if r.range_header]
    assert resumed  # another worker went on from the killed one's .part
    assert sorted(line["url"] for line in journal(out)) == sorted(server.url(p) for p in bodies)
    assert list(out.glob(f"*{PART_SUFFIX}*")) == []


def test_an_output_folder_the_workers_cannot_write_fails_fast(
    dask_client: Any, server: TestServer, tmp_path: Path
) -> None:
    bodies = serve_numbered(server, "ro", 20, 1000)
    blocker = tmp_path / "plain-file"
    blocker.write_bytes(b"")
    files = str(listing(tmp_path, server, list(bodies)))
    code, records, err = cli(
        "--dask", dask_client.scheduler.address, "--no-state", "--no-archive",
        "-d", str(blocker / "out"), "-i", files,
    )  # fmt: skip
    # this machine cannot make it either, so the command refuses it before the cluster is
    # asked (a folder only some workers cannot see: tests/downloader/test_cluster.py)
    assert code == 2
    assert "plain-file" in err
    assert err.count("Traceback") == 0
    assert records == []
    assert server.requests == []  # stopped before the first task


def test_bad_dask_options_are_usage_errors(tmp_path: Path) -> None:
    code, _, err = cli("--dask", "local:0", "-o", str(tmp_path), "http://127.0.0.1:9/a")
    assert code == 2
    assert "local:N needs a number of worker processes >= 1" in err
    code, _, err = cli(
        "--dask", "local:2", "-o", str(tmp_path), "subsonic://user@127.0.0.1:9/album/1"
    )
    assert code == 2
    assert "--dask applies to plain http(s) URLs only" in err


def test_dask_local_starts_worker_processes_for_the_run_and_stops_them(
    server: TestServer, tmp_path: Path
) -> None:
    bodies = serve_numbered(server, "loc", 30, 4_000)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(
        [
            sys.executable, "-m", "ripstream", "--no-progress", "--json", "--dask", "local:2",
            "-j", "4", "-d", str(out), "-i", str(listing(tmp_path, server, list(bodies))),
        ],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    workers = {int(r["worker"].rsplit(":", 1)[1]) for r in records}
    assert len(workers) == 2
    for pid in workers:  # the run stopped the processes it started
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    for path, body in bodies.items():
        assert (out / Path(path).name).read_bytes() == body
    assert "INFO" not in run.stderr  # dask's chatter stays out of the user's terminal
