"""No planted secret survives anywhere a user or another program could read it.

The run plants every kind of secret RipStream knows: user info in a URL (``alice:pass@``), a
``?token=``, a signature, Subsonic's ``t``/``s``/``p=enc:<hex>`` query, and a configured
``X-Custom-Token`` header. It runs the real CLI with ``-vv --json`` against two local
servers: one download succeeds, one is redirected to another port that fails, one is a 404,
one is redirected on the same origin. Then every output is searched for every secret: stdout,
stderr (with urllib3's DEBUG lines) and every file left in the output folder (the journal, the
archive as an SQL dump, downloaded files' names, anything else).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support.httpserver import Fault, TestServer, make_body

ROOT = Path(__file__).resolve().parents[1]

USER_PASSWORD = "uSerPa55-7f3a91"
QUERY_TOKEN = "qT0ken-c41d2e"
SIGNATURE = "s1gnature-88b0aa"
SUBSONIC_TOKEN = "5ub70ken0f3e9c2d1b"
SUBSONIC_SALT = "5a17ab12cd"
SUBSONIC_PASSWORD = "subPa55w0rd-e19"
SUBSONIC_HEX = SUBSONIC_PASSWORD.encode().hex()
HEADER_TOKEN = "cu5tomHeader-60d1f7"
API_KEY = "ap1key-93aa01"
SECRETS = [
    USER_PASSWORD,
    QUERY_TOKEN,
    SIGNATURE,
    SUBSONIC_TOKEN,
    SUBSONIC_SALT,
    SUBSONIC_PASSWORD,
    SUBSONIC_HEX,
    HEADER_TOKEN,
    API_KEY,
    base64.b64encode(f"alice:{USER_PASSWORD}".encode()).decode(),
]


def everything_in(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (an sqlite file also as its SQL dump), and every name."""
    found: dict[str, bytes] = {"(names)": "\n".join(map(str, folder.rglob("*"))).encode()}
    for path in folder.rglob("*"):
        if path.is_file():
            found[str(path)] = path.read_bytes()
            if found[str(path)].startswith(b"SQLite format 3\x00"):
                with sqlite3.connect(path) as db:
                    found[f"{path} (dump)"] = "\n".join(db.iterdump()).encode()
    return found


def test_no_planted_secret_appears_in_any_output(
    server: TestServer, tmp_path: Path, out_dir: Path
) -> None:
    with TestServer(host=server.host) as other:
        ok_body, moved_body = make_body(20_000, seed=21), make_body(15_000, seed=22)
        server.add("/ok.flac", ok_body)
        server.add("/final.flac", moved_body)
        server.add("/gone.flac", b"", faults=[Fault.status(404, times=None)])
        server.add("/rest/stream.view", b"", faults=[Fault.redirect(other.url("/cdn/track.flac"))])
        other.add("/cdn/track.flac", b"x", faults=[Fault.status(500, times=None)])
        server.add(
            "/moved",
            b"",
            faults=[Fault.redirect(server.url(f"/final.flac?api_key={API_KEY}"))],
        )
        base = server.base_url
        subsonic = (
            f"{base}/rest/stream.view?u=alice&t={SUBSONIC_TOKEN}&s={SUBSONIC_SALT}"
            f"&p=enc:{SUBSONIC_HEX}&id=7&v=1.16.1&c=ripstream"
        )
        urls = [
            base.replace("//", f"//alice:{USER_PASSWORD}@") + f"/ok.flac?token={QUERY_TOKEN}",
            subsonic,
            f"{base}/gone.flac?sig={SIGNATURE}&token={QUERY_TOKEN}",
            f"{base}/moved?password={SUBSONIC_PASSWORD}",
        ]
        listing = tmp_path / "list.txt"
        listing.write_text("\n".join(urls[2:]) + "\n")
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps(
                {
                    "default_settings": {
                        "headers": {"X-Custom-Token": HEADER_TOKEN},
                        "max_retries": 1,
                        "retry_delay": 0,
                        "max_retry_delay": 0,
                        "retry_jitter": 0,
                        "max_retry_after": 0,
                    }
                }
            )
        )
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "ripstream",
                "-vv",
                "--json",
                "--no-progress",
                "--config",
                str(config),
                "-d",
                str(out_dir),
                "-i",
                str(listing),
                *urls[:2],
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            cwd=ROOT,
        )
        to_other = other.requests_for("/cdn/track.flac")

    # the run did what it was meant to: two downloads, two failures, all of it logged
    assert run.returncode == 1, run.stderr
    assert (out_dir / "ok.flac").read_bytes() == ok_body
    assert (out_dir / "moved").read_bytes() == moved_body
    assert "DEBUG urllib3.connectionpool" in run.stderr, "-vv logged nothing from urllib3"
    assert run.stderr.count("ripstream: failed:") == 2, run.stderr
    assert len(run.stdout.splitlines()) == 4, run.stdout
    assert to_other, "the cross-origin redirect was not followed"
    assert all(HEADER_TOKEN not in repr(r.headers) for r in to_other)  # not even sent there
    server_saw = [r.headers.get("X-Custom-Token") for r in server.requests_for("/ok.flac")]
    assert HEADER_TOKEN in server_saw, "the configured header was not sent at all"
    files = everything_in(out_dir)
    assert any(".ripstream-state.jsonl" in name for name in files), files.keys()
    assert any("(dump)" in name and b"ok.flac" in data for name, data in files.items())

    outputs = {"stdout": run.stdout.encode(), "stderr": run.stderr.encode(), **files}
    leaks = [
        (secret, where)
        for where, data in outputs.items()
        for secret in SECRETS
        if secret.encode() in data
    ]
    assert leaks == [], leaks
