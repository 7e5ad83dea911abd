"""Progress bars in a real Jupyter kernel (issue 11, problem 7): with ipywidgets, one overall
widget and at most ``max_bars`` file widgets however many files run; without it, plain text
with no ``IProgress`` warning and no cursor-movement escape codes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.support.httpserver import TestServer, make_body

ROOT = Path(__file__).resolve().parent.parent
WIDGET = "application/vnd.jupyter.widget-view+json"


def run_cells(cells: list[str], tmp_path: Path) -> list[Any]:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    return outputs


def download_cell(server: TestServer, count: int, out: Path) -> str:
    urls = [server.url(f"/f{n:02d}.bin") for n in range(count)]
    return f"""
from pathlib import Path
from ripstream.downloader import DownloadConfig, ProgressTracker, TqdmProgress
from ripstream.sources.http import HttpDownloader

config = DownloadConfig(download_directory=Path({str(out)!r}), max_concurrent_downloads=3)
tracker = ProgressTracker()
with HttpDownloader(config, progress_tracker=tracker) as http, \\
        TqdmProgress(total_files={count}, max_bars=3) as bars:
    tracker.add_callback(bars)
    results = http.download_many({urls!r})
print(sum(r.is_success for r in results), "downloaded")
"""


@pytest.fixture
def kernel_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel is a child process: it must import this checkout's ripstream
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("kernel_path")
def test_sixty_files_make_one_overall_widget_and_three_file_widgets(
    server: TestServer, tmp_path: Path
) -> None:
    for n in range(60):
        server.add(f"/f{n:02d}.bin", make_body(20_000, n), rate_limit_bps=2_000_000)
    outputs = run_cells([download_cell(server, 60, tmp_path / "out")], tmp_path)
    widgets = [o for o in outputs if WIDGET in o.get("data", {})]
    assert 2 <= len(widgets) <= 4, len(widgets)  # overall + at most -j file bars, reused
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "60 downloaded" in text
    assert "IProgress" not in text
    assert len(list((tmp_path / "out").glob("*.bin"))) == 60


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("kernel_path")
def test_without_ipywidgets_plain_text_and_no_warning(server: TestServer, tmp_path: Path) -> None:
    for n in range(5):
        server.add(f"/f{n:02d}.bin", make_body(20_000, n))
    hide = "import sys\nsys.modules['ipywidgets'] = None  # as if it were not installed"
    outputs = run_cells([hide, download_cell(server, 5, tmp_path / "out")], tmp_path)
    assert not [o for o in outputs if WIDGET in o.get("data", {})]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "5 downloaded" in text
    assert "total: 100%" in text  # a plain text bar
    assert "IProgress" not in text
    assert "\x1b[" not in text  # no cursor-up codes printed as text
