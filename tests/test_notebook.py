"""The notebook walkthrough, run cell by cell in a real Jupyter kernel (ipykernel + nbclient).

A kernel runs its own asyncio loop on the main thread; RipStream must work there as it is,
with no event loop of its own and no ``await``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def percent_cells(script: str) -> list[nbformat.NotebookNode]:
    """Split a ``# %%`` script into notebook cells, as Jupytext and VS Code do."""
    cells = []
    for block in re.split(r"^# %%", script, flags=re.MULTILINE)[1:]:
        header, _, body = block.partition("\n")
        if "[markdown]" in header:
            text = "\n".join(
                line.removeprefix("# ").removeprefix("#") for line in body.strip().splitlines()
            )
            cells.append(nbformat.v4.new_markdown_cell(text))
        elif body.strip():
            cells.append(nbformat.v4.new_code_cell(body.strip()))
    return cells


@pytest.mark.timeout(180)
def test_the_walkthrough_runs_in_a_real_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel is a child process: make it import this checkout's ripstream, not an
    # installed one (an editable install may point at another checkout)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    notebook = nbformat.v4.new_notebook()
    notebook.cells = percent_cells((EXAMPLES / "notebook_walkthrough.py").read_text())
    assert sum(cell.cell_type == "code" for cell in notebook.cells) >= 5
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(EXAMPLES)}},
    )
    client.execute()
    outputs = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
    ]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert re.search(r"(\d+)/\1 files verified by sha256", text), text[-2000:]
    assert "completed" in text
