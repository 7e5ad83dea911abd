"""Running the CLI as a user does: ``python -m ripstream`` in a subprocess."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

__all__ = ["TIMEOUT", "cli", "closed_port", "fast_config", "traceback_free"]

TIMEOUT = 60


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m ripstream --no-progress ARGS``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ripstream", "--no-progress", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def fast_config(tmp_path: Path, **settings: object) -> Path:
    """A ``--config`` file with instant retries (and ``settings`` on top)."""
    path = tmp_path / "fast.json"
    values = {"retry_delay": 0, "max_retry_delay": 0, "retry_jitter": 0, **settings}
    path.write_text(json.dumps({"default_settings": values}), encoding="utf-8")
    return path


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def traceback_free(text: str) -> bool:
    """Whether ``text`` has no Python traceback and no exception class names in it."""
    return "Traceback" not in text and not re.search(r"\b\w+(Error|Exception)\(", text)
