"""A real terminal for tests: the CLI runs on a pseudo-terminal that is its controlling
terminal, so tqdm draws bars, Ctrl-C typed into it is SIGINT, and closing it is a hang-up.

Example::

    with Terminal([sys.executable, "-m", "ripstream", url]) as term:
        term.wait_for("total:")
        term.type(CTRL_C)
        assert term.wait() == 130
    term.text  # everything it printed, escape sequences and all
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Sequence
from typing import Final, Self

__all__ = ["CTRL_C", "Terminal", "lines_at_column_zero"]

CTRL_C: Final = b"\x03"
_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


#: Run first in the child (a new session): make the pty on fd 0 its controlling terminal, then
#: become the command (same process). A trampoline rather than ``preexec_fn``, which is unsafe
#: in a process with threads (the test servers').
_TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """``command`` on a 30x120 pseudo-terminal (stdin, stdout and stderr), in a session of
    its own; what it writes is collected by a reader thread."""

    __test__ = False

    def __init__(self, command: Sequence[str], *, env: dict[str, str] | None = None) -> None:
        self._primary, secondary = os.openpty()
        fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _TAKE_TERMINAL, *command],
                stdin=secondary,
                stdout=secondary,
                stderr=secondary,
                start_new_session=True,
                env=env,
            )
        finally:
            os.close(secondary)
        self._lock = threading.Lock()
        self._chunks: list[bytes] = []
        self._closed = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
            ready, _, _ = select.select([self._primary], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._primary, 65536)
            except OSError:  # EIO: every process holding the terminal closed it
                return
            if not data:
                return
            with self._lock:
                self._chunks.append(data)

    @property
    def text(self) -> str:
        """Everything written so far, as the terminal received it (``\\r\\n`` line ends)."""
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", "replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait until the output matches the regular expression ``pattern``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.text)
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"{pattern!r} never appeared; the terminal shows:\n{self.text!r}")

    def type(self, keys: bytes) -> None:
        """Type ``keys`` (``CTRL_C`` is turned into SIGINT by the terminal)."""
        os.write(self._primary, keys)

    def hang_up(self) -> None:
        """Close the terminal: the kernel sends SIGHUP to the session's leader."""
        with self._lock:
            self._closed = True
        self._reader.join(5)
        os.close(self._primary)
        self._primary = -1

    def wait(self, timeout: float = 30.0) -> int:
        """The exit status, once the process ended; then the rest of its output is read."""
        status = self.process.wait(timeout)
        if self._primary >= 0:
            self._reader.join(5)
        return status

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        if self._primary >= 0:
            with self._lock:
                self._closed = True
            self._reader.join(5)
            os.close(self._primary)
            self._primary = -1


def lines_at_column_zero(text: str, start: str) -> list[tuple[str, str]]:
    """Each piece of ``text`` that begins with ``start``, with what precedes it on its
    terminal line (since the last ``\\r`` or ``\\n``, cursor movements removed) and the piece up
    to the next line end. A message printed above progress bars has nothing before it; one
    glued into a bar's line has the bar before it."""
    found = []
    for match in re.finditer(re.escape(start), text):
        line_start = max(text.rfind("\r", 0, match.start()), text.rfind("\n", 0, match.start()))
        before = _ESCAPE.sub("", text[line_start + 1 : match.start()])
        ends = [
            i for i in (text.find("\r", match.start()), text.find("\n", match.start())) if i >= 0
        ]
        piece = text[match.start() : min(ends) if ends else len(text)]
        found.append((before, _ESCAPE.sub("", piece)))
    return found
