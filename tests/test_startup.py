"""Start-up imports only what the run needs: a download of plain URLs without a terminal
loads no progress bars, no dataclasses-json/marshmallow, no asyncio or tornado (tenacity's
coroutine support), and no source module the URLs do not use."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from tests.support.httpserver import TestServer, make_body

NOT_NEEDED = (
    "tqdm",
    "dataclasses_json",
    "marshmallow",
    "asyncio",
    "tornado",
    "uuid",
    "platform",
    "ripstream.sources.subsonic",
    "ripstream.sources.internet_archive",
)

SCRIPT = """
import json, sys
from ripstream.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_a_plain_download_imports_nothing_it_does_not_need(
    server: TestServer, tmp_path: Path
) -> None:
    body = make_body(4096, seed=5)
    server.add("/one.bin", body)
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, "-q", "-d", str(tmp_path), server.url("/one.bin")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["code"] == 0
    digest = hashlib.sha256((tmp_path / "one.bin").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(body).hexdigest()
    loaded = set(report["modules"])
    assert [name for name in NOT_NEEDED if name in loaded] == []
