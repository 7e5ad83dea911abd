"""Every code block of README.rst runs as written (issue 11, problem 8).

A block is run according to the RST comment just before it:

- none: a ``python`` block runs as a script in an empty folder; a ``json`` block is loaded
  as the configuration it shows;
- ``.. readme-test: notebook``: the block runs as one cell in a real Jupyter kernel, and
  prints the lines of the ``text`` block that follows it;
- ``.. readme-test: file NAME``: the block is written to NAME in a plugin folder, which is
  installed with pip and run through the CLI;
- ``.. readme-test: skip -- reason``: not run here (the reason says where it is run).

``text`` blocks are usage and output listings, not code.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ripstream.app.config import AppConfig
from tests.support.httpserver import TestServer, make_body

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"


@dataclass(frozen=True)
class Block:
    language: str
    code: str
    marker: str  # the readme-test comment before it, or ""
    line: int


def blocks() -> list[Block]:
    lines = README.read_text(encoding="utf-8").splitlines()
    found = []
    marker = ""
    for number, line in enumerate(lines):
        if line.startswith(".. readme-test:"):
            marker = line.removeprefix(".. readme-test:").strip()
            continue
        match = re.match(r"\.\. code-block:: (\w+)", line)
        if not match:
            if line and not line.startswith(" ") and not line.startswith(".."):
                marker = ""  # a paragraph between the comment and a block ends it
            continue
        body = []
        for text in lines[number + 1 :]:
            if text and not text.startswith(" "):
                break
            body.append(text[4:])
        found.append(Block(match.group(1), "\n".join(body).strip("\n") + "\n", marker, number + 1))
        marker = ""
    return found


BLOCKS = blocks()


def env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def test_every_block_is_run_or_marked() -> None:
    kinds = {(b.language, b.marker.split(" ")[0]) for b in BLOCKS}
    assert ("python", "") in kinds
    assert ("python", "notebook") in kinds
    assert ("python", "file") in kinds
    assert ("toml", "file") in kinds
    for block in BLOCKS:
        assert block.language in ("python", "json", "text", "toml", "sh"), block
        if block.language == "sh":
            assert block.marker.startswith("skip -- "), f"README line {block.line}"


@pytest.mark.parametrize(
    "block",
    [b for b in BLOCKS if b.language == "python" and not b.marker],
    ids=lambda b: f"line{b.line}",
)
def test_python_blocks_run_as_written(block: Block, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", block.code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env(),
        check=False,
    )
    assert run.returncode == 0, f"README line {block.line}:\n{run.stderr}"
    assert "Traceback" not in run.stderr
    assert "failed" not in run.stdout


def test_json_blocks_are_valid_configs() -> None:
    configs = [b for b in BLOCKS if b.language == "json"]
    assert configs
    for block in configs:
        app = AppConfig.from_dict(json.loads(block.code))
        assert app.download.max_concurrent_downloads >= 1


@pytest.mark.timeout(180)
def test_the_notebook_block_prints_what_the_readme_shows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = next(i for i, b in enumerate(BLOCKS) if b.marker == "notebook")
    cell, shown = BLOCKS[index], BLOCKS[index + 1]
    assert shown.language == "text"
    monkeypatch.setenv("PYTHONPATH", env()["PYTHONPATH"])
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(cell.code)]
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()
    outputs = notebook.cells[0].get("outputs", [])
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    printed = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
    assert printed.splitlines() == shown.code.splitlines()


@pytest.mark.timeout(180)
def test_the_plugin_installs_with_its_entry_point_and_downloads(
    server: TestServer, tmp_path: Path
) -> None:
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    for block in BLOCKS:
        if block.marker.startswith("file "):
            (plugin / block.marker.removeprefix("file ")).write_text(block.code, encoding="utf-8")
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(plugin),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    body = make_body(3000, 42)

    server.add(
        "/api/tracks/42",
        json.dumps(
            {
                "title": "Forty-Two",
                "stream_url": server.url("/stream/42"),
                "album": "Numbers",
                "number": 1,
                "md5": hashlib.md5(body).hexdigest(),
            }
        ).encode(),
        content_type="application/json",
    )
    server.add("/stream/42", body)
    environ = {**env(), "MY_SERVICE_API": server.url("/api")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ["PYTHONPATH"]])
    sources = subprocess.run(
        [sys.executable, "-m", "ripstream", "sources"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
        cwd=tmp_path,
    )
    assert "my_service" in sources.stdout, sources.stdout + sources.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ripstream",
            "--no-progress",
            "--json",
            "-d",
            "out",
            "myservice://track/42",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environ,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["content_id"] == "42"  # not the whole URL
    assert (tmp_path / "out" / "Forty-Two.flac").read_bytes() == body
