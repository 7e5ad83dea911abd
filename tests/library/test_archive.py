"""The download archive records a file only once it is in place.

The CLI keeps an archive (OUTPUT/.ripstream-archive.sqlite3 by default) so that a rerun skips
what was downloaded. A download whose last step, the move into place, failed is not downloaded:
were it recorded, every later run would skip it and the user would never get the file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.support.httpserver import Fault, TestServer, make_body

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

    first = ripstream("-o", str(out_dir), server.url("/song.flac"))
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
    second = ripstream("-o", str(out_dir), server.url("/song.flac"))
    _, stderr = second.communicate(timeout=TIMEOUT)

    assert second.returncode == 0, stderr
    assert final.exists(), f"the rerun skipped the file: {stderr}"
    assert sha(final.read_bytes()) == sha(body)
    assert len(server.requests_for("/song.flac")) > requests_before
    assert (tmp_path / "mine.flac").read_bytes() == USERS_FILE

    # and the archive is in use: once the file is in place, a run skips it even if it is gone
    final.unlink()
    requests_before = len(server.requests_for("/song.flac"))
    third = ripstream("-o", str(out_dir), server.url("/song.flac"))
    _, stderr = third.communicate(timeout=TIMEOUT)
    assert third.returncode == 0, stderr
    assert not final.exists()
    assert len(server.requests_for("/song.flac")) == requests_before
