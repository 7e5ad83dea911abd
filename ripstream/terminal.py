"""What the CLI prints, made safe: results, failures, errors and the summary with secrets
hidden and terminal control sequences shown escaped, and the log redaction of a run.

Text that reaches the terminal comes from servers (error reasons, file names), metadata
(titles) and the user's own input (URLs with tokens); none of it is written raw.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from ripstream.app.config import AppConfig
from ripstream.downloader.content import DownloadResult, ResultStatus
from ripstream.downloader.progress import format_bytes, printable
from ripstream.downloader.queue import DownloadTask
from ripstream.downloader.urls import install_log_redaction, is_secret_param, redact_text

__all__ = ["OutputClosed", "Reporter", "logs_above_bars", "redact_logs", "secrets_of"]


class OutputClosed(KeyboardInterrupt):
    """Standard output was closed (``ripstream --json ... | head -1``): the run stops as
    cleanly as on Ctrl-C, quietly, and the next run resumes."""


class Reporter:
    """Prints results as they come: JSON lines, failures, and the closing summary. Every text
    from a server, metadata or the user's input is redacted and shown with its control
    characters escaped (:meth:`safe`)."""

    def __init__(
        self, *, quiet: bool, as_json: bool, out: TextIO, err: TextIO, secrets: list[str]
    ) -> None:
        self.quiet = quiet
        self.as_json = as_json
        self.out = out
        self.err = err
        self.secrets = secrets
        self.started = time.monotonic()
        #: how a line reaches stderr: above the progress bars while they are drawn
        self.line: Callable[[str], None] = self.print_err

    def print_err(self, line: str) -> None:
        """Print ``line`` on stderr."""
        print(line, file=self.err, flush=True)

    def safe(self, text: str) -> str:
        """``text`` fit for the terminal: secrets hidden, escape sequences shown escaped."""
        return printable(redact_text(text, self.secrets))

    def error(self, exc: BaseException | str) -> None:
        print(f"ripstream: error: {self.safe(str(exc))}", file=self.err, flush=True)

    def result(self, task: DownloadTask, result: DownloadResult) -> None:
        self.titled(task.title, result)

    def titled(self, title: str, result: DownloadResult) -> None:
        if self.as_json:
            record = result.to_record()
            record["title"] = title
            # json.dumps escapes every control character; redaction covers the rest
            try:
                print(redact_text(json.dumps(record), self.secrets), file=self.out, flush=True)
            except BrokenPipeError:
                raise OutputClosed from None
        if result.status is ResultStatus.FAILED:
            line = self.safe(f"{title}: {result.error_message}")
            self.line(f"ripstream: failed: {line}")

    def summary(self, results: list[DownloadResult], not_started: int = 0) -> None:
        """The closing lines: counts, bytes and speed, and where the files are (after a stop,
        ``not_started`` counts the downloads that never began)."""
        if self.quiet:
            return
        counts = {status: 0 for status in ResultStatus}
        for result in results:
            counts[result.status] += 1
        fetched = sum(r.bytes_downloaded for r in results)
        elapsed = max(time.monotonic() - self.started, 1e-9)
        folders = sorted(
            {str(r.file_path.parent) for r in results if r.is_success and r.file_path is not None}
        )
        line = (
            f"{counts[ResultStatus.COMPLETED]} downloaded, {counts[ResultStatus.SKIPPED]} "
            f"already there, {counts[ResultStatus.FAILED]} failed"
        )
        if counts[ResultStatus.CANCELLED]:
            line += f", {counts[ResultStatus.CANCELLED]} cancelled"
        if not_started:
            line += f", {not_started} not started"
        line += (
            f" ({format_bytes(fetched)} in {elapsed:.2f}s, "
            f"{format_bytes(fetched / elapsed, 'B/s')})"
        )
        print(line, file=self.err)
        if folders:
            print(f"saved in: {self.safe(', '.join(folders))}", file=self.err)


def secrets_of(app: AppConfig) -> list[str]:
    """What output must never show: the config's secrets and credentials from the
    environment (``RIPSTREAM_SUBSONIC_PASSWORD``)."""
    from_env = [
        v for k, v in os.environ.items() if k.startswith("RIPSTREAM_") and is_secret_param(k)
    ]
    return app.secrets() + from_env


def redact_logs(secrets: list[str]) -> None:
    """Hide secrets in every log line: the framework's loggers and this run's handlers."""
    shared = install_log_redaction(secrets)
    for handler in logging.getLogger().handlers:
        if shared not in handler.filters:
            handler.addFilter(shared)


class _Lines(io.TextIOBase):
    """A text stream whose complete lines go to ``write`` (one call per line)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        super().__init__()
        self._write = write
        self._pending = ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._write(line)
        return len(text)


@contextlib.contextmanager
def logs_above_bars(write: Callable[[str], None], stream: TextIO) -> Iterator[None]:
    """While inside, log handlers of the root logger that write to ``stream`` (``-v``) write
    each line through ``write`` instead: above the progress bars, never into a bar's line."""
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream is stream
    ]
    previous = [(handler, handler.setStream(_Lines(write))) for handler in handlers]
    try:
        yield
    finally:
        for handler, old in previous:
            handler.setStream(old)
