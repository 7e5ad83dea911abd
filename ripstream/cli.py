"""The command line: ``python -m ripstream [OPTIONS] [URL ...]``, plus ``demo`` and ``sources``.

Argument parsing and printing only; the options are in :mod:`ripstream.options`, the work is
in :mod:`ripstream.app.batch`. Exit status: 0 all succeeded, 1 some failed, 2 bad usage or
bad input, 130 interrupted (143 SIGTERM, 129 SIGHUP), 141 stdout closed (``| head``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import getpass
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ripstream.app.batch import Batch, BatchItem
from ripstream.app.config import AppConfig
from ripstream.app.journal import BatchJournal
from ripstream.app.modes import choose_strategy
from ripstream.app.monitoring import RunSinks, waiting_notice
from ripstream.cli_config import config_from, items_from
from ripstream.downloader.bars import TqdmProgress
from ripstream.downloader.content import DownloadResult, ResultStatus
from ripstream.downloader.events import EventSink
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    DownloadError,
    StorageError,
)
from ripstream.downloader.progress import DownloadProgress, ProgressTracker
from ripstream.downloader.queue import DownloadQueue, DownloadTask
from ripstream.downloader.safefs import probe_writable
from ripstream.library.archive import DownloadArchive
from ripstream.options import Parser, UsageError, build_parser, output_of
from ripstream.sources import load_registry
from ripstream.terminal import OutputClosed, Reporter, logs_above_bars, redact_logs, secrets_of

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PIPE = 0, 1, 2, 141
_SUBCOMMANDS = ("demo", "sources")


class _Stop(KeyboardInterrupt):
    """A signal stopping the run as Ctrl-C does (the manager's clean stop), with its status."""

    def __init__(self, why: str, status: int) -> None:
        super().__init__(why)
        self.why = why
        self.status = status


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop the run as cleanly as Ctrl-C (only on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        if not stopping:  # a second signal during the clean stop is not a second stop
            stopping = True
            raise _Stop(f"stopped by {signal.Signals(signum).name}", 128 + signum)

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, stop) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _configure_logging(verbose: int) -> None:
    """The library logs quietly on the ``ripstream`` logger; ``-v`` shows INFO, ``-vv`` DEBUG."""
    level = {0: logging.CRITICAL, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


#: glibc's ``mallopt`` parameter for the most malloc arenas
_M_ARENA_MAX = -8


def _fewer_malloc_arenas() -> None:
    """Let the download threads share two malloc arenas. glibc gives each new thread an
    arena of its own (up to eight per core) and each keeps what was freed in it: a run of
    20,000 small files held 108 MiB with them, 97 MiB with two. Nothing happens where the C
    library has no ``mallopt`` (only glibc has this parameter)."""
    import ctypes  # already loaded by the HTTP stack; here only for this call

    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the CLI; returns the exit status."""
    if argv is None:  # the program itself, not a caller of main(): before any thread starts
        _fewer_malloc_arenas()
    args_list = list(sys.argv[1:] if argv is None else argv)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    say = Reporter(quiet=False, as_json=False, out=out, err=err, secrets=[])
    try:
        if any("\x00" in item for item in args_list):  # only a caller of main() can pass one
            raise UsageError("an argument holds a NUL character, which no path or URL can")
        if args_list and args_list[0] in _SUBCOMMANDS:
            return _subcommand(args_list[0], args_list[1:], out, err)
        args = build_parser().parse_args(args_list)
        args.raw_options = {item.split("=", 1)[0] for item in args_list if item.startswith("--")}
        _configure_logging(args.verbose)
        redact_logs([])
        items = items_from(args, stdin or sys.stdin)
        output = output_of(args, len(items))
        app = config_from(args, output)
    except (UsageError, ConfigError) as exc:
        say.error(exc)
        return EXIT_USAGE
    if not args.quiet:
        _notes(output.note, app, err)
    secrets = secrets_of(app)
    redact_logs(secrets)
    reporter = Reporter(quiet=args.quiet, as_json=args.json, out=out, err=err, secrets=secrets)
    with _stop_on_signals():
        try:
            return _run(items, app, args, reporter)
        except KeyboardInterrupt as exc:  # a signal between the run's own handlers
            return _stopped(exc, reporter)


def _notes(note: str | None, app: AppConfig, err: TextIO) -> None:
    """What the run should say before it starts: how it runs, and an unchecked TLS."""
    if note:
        print(f"ripstream: {note}", file=err)
    if not _verifies_tls(app):
        print(
            "ripstream: warning: TLS certificates are not checked: anyone between here and "
            "the server can read and change the downloads",
            file=err,
        )


def _verifies_tls(app: AppConfig) -> bool:
    """Whether every source of this run checks TLS certificates."""
    config = app.download
    sources = [config.get_behavior_for_source(name) for name in config.source_settings]
    return all(settings.verify_ssl for settings in [config.default_settings, *sources])


def _stopped(exc: KeyboardInterrupt, say: Reporter) -> int:
    """The exit status of a stopped run, after one line saying so."""
    if isinstance(exc, OutputClosed):
        if say.out is sys.stdout:  # nothing more can reach it, not even the final flush
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        return EXIT_PIPE
    why, status = (exc.why, exc.status) if isinstance(exc, _Stop) else ("interrupted", 130)
    with contextlib.suppress(OSError):
        print(f"ripstream: {why}; partial files are kept and resume on the next run", file=say.err)
    return status


def _run(items: list[BatchItem], app: AppConfig, args: argparse.Namespace, say: Reporter) -> int:
    state, archive_path = _state_paths(args, app)
    with contextlib.ExitStack() as stack:
        # a file in the output path, or a FIFO, a device or garbage as --state or archive
        # is bad input: nothing runs
        try:
            _check_output_path(app.download.download_directory)
            durable = app.download.default_settings.fsync  # --fsync: the journal too
            journal = stack.enter_context(BatchJournal(state, sync=durable)) if state else None
            archive = stack.enter_context(DownloadArchive(archive_path)) if archive_path else None
            sinks = stack.enter_context(
                RunSinks(args.events, say.out, None if args.quiet else say.err, args.metrics_port)
            )
        except (StorageError, ConfigError) as exc:
            say.error(exc)
            return EXIT_USAGE
        if args.retry_failed:
            if journal is None:
                say.error("--retry-failed needs the batch journal (drop --no-state)")
                return EXIT_USAGE
            items = [item for item in items if journal.is_failed(item.url)]
            if not items:
                print("ripstream: no URL failed in the earlier runs", file=say.err)
                return EXIT_OK
        notice = waiting_notice(app.download.schedule, datetime.datetime.now())
        if notice and not args.quiet:
            print(f"ripstream: {notice}", file=say.err)
        return _run_batch(items, app, args, say, (journal, archive), sinks.sinks)


def _check_output_path(directory: Path) -> None:
    """Refuse an output folder that cannot be made, before anything is written.

    :raises ConfigError: when a part of its path is a file.
    """
    existing = directory
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(
            f"cannot write to the output folder {str(directory)!r}: "
            f"{str(existing)!r} is a file, not a folder",
            field="dir",
            value=str(directory),
        )


def _check_output_folder(directory: Path) -> None:
    """Make the output folder and prove a file can be created in it (root ignores modes, so
    asking ``os.access`` is not enough).

    :raises ConfigError: in one line naming the folder (bad input: exit 2).
    """
    try:
        probe_writable(directory)
    except OSError as exc:
        raise ConfigError(
            f"cannot write to the output folder {str(directory)!r}: "
            f"{(exc.strerror or str(exc)).lower()}",
            field="dir",
            value=str(directory),
        ) from exc


def _progress_lines(say: Reporter) -> Callable[[str, DownloadProgress], None]:
    """Without bars, a retry is one line on stderr (each one once)."""
    shown: dict[str, str] = {}

    def show(download_id: str, progress: DownloadProgress) -> None:
        if progress.note and shown.get(download_id) != progress.note:
            shown[download_id] = progress.note
            say.line(f"ripstream: {progress.title}: {progress.note}")
        if progress.is_finished:
            shown.pop(download_id, None)

    return show


def _run_batch(
    items: list[BatchItem],
    app: AppConfig,
    args: argparse.Namespace,
    say: Reporter,
    stores: tuple[BatchJournal | None, DownloadArchive | None],
    events: Sequence[EventSink] = (),
) -> int:
    err = say.err
    tracker = ProgressTracker()
    show_bars = not (args.quiet or args.no_progress) and err.isatty()
    bars: TqdmProgress | None = None
    if not show_bars and not args.quiet:
        tracker.add_callback(_progress_lines(say))
    settled: list[DownloadResult] = []
    planned = len(items)  # until the sources have resolved every item into downloads
    logs = contextlib.ExitStack()

    def on_queue(queue: DownloadQueue) -> None:
        nonlocal bars, planned
        planned = len(queue)
        _check_output_folder(app.download.download_directory)  # every URL resolved: now write
        if show_bars:
            jobs = app.download.max_concurrent_downloads
            bars = TqdmProgress(
                total_files=len(queue), file=err, disable=False, max_bars=jobs, count_files=False
            )
            tracker.add_callback(bars)
            say.line = bars.write
            logs.enter_context(logs_above_bars(bars.write, err))

    def on_result(task: DownloadTask, result: DownloadResult) -> None:
        settled.append(result)
        say.result(task, result)
        if bars is not None:
            bars.count(_OUTCOMES.get(result.status, "failed"), result.bytes_downloaded)

    try:
        strategy = choose_strategy(
            items,
            app,
            args.processes,
            None if args.quiet else err,
            dask=args.dask,
            max_per_host=args.max_per_host,
        )
        batch = Batch(
            app,
            progress_tracker=tracker,
            journal=stores[0],
            archive=stores[1],
            prompt=_secret_prompt(err),
            executor=strategy,
            force=args.force,
            events=events,
        )
        results = batch.run(items, on_result=on_result, on_queue=on_queue)
    except KeyboardInterrupt as exc:
        logs.close()
        if bars is not None:
            bars.close()
            bars = None
        status = _stopped(exc, say)
        if not isinstance(exc, OutputClosed):  # what was done, failed and stopped, counted
            with contextlib.suppress(OSError):  # a terminal that hung up takes no summary
                say.summary(settled, not_started=max(0, planned - len(settled)))
        return status
    except (ConfigError, AuthenticationError) as exc:
        say.error(exc)
        return EXIT_USAGE
    except DownloadError as exc:
        say.error(exc)
        return EXIT_FAILED
    finally:
        logs.close()
        if bars is not None:
            bars.close()
        say.line = say.print_err
    say.summary(results)
    return EXIT_OK if all(r.is_success for r in results) else EXIT_FAILED


_OUTCOMES = {
    ResultStatus.COMPLETED: "done",
    ResultStatus.SKIPPED: "skipped",
    ResultStatus.CANCELLED: "cancelled",
}


def _state_paths(args: argparse.Namespace, app: AppConfig) -> tuple[Path | None, Path | None]:
    """The batch journal and the download archive this run uses (``None``: none)."""
    directory = app.download.download_directory
    state = None if args.no_state else Path(args.state or directory / ".ripstream-state.jsonl")
    archive = None if args.no_archive else app.archive_path
    if archive is None and not args.no_archive:
        archive = directory / ".ripstream-archive.sqlite3"
    return state, archive


def _secret_prompt(err: TextIO) -> Callable[[str], str] | None:
    """Ask for a missing secret on the terminal, or ``None`` when there is no terminal."""
    if not (sys.stdin.isatty() and err.isatty()):
        return None

    def ask(question: str) -> str:
        return getpass.getpass(question, stream=err)

    return ask


def _subcommand(name: str, argv: list[str], out: TextIO, err: TextIO) -> int:
    if name == "demo":
        from ripstream.demo import run_demo

        parser = Parser(
            prog="ripstream demo",
            description="Download a generated album from a "
            "local server through the real pipeline, then verify it.",
        )
        parser.add_argument(
            "-d", "-o", "--dir", "--output", dest="output", default="ripstream-demo", metavar="DIR"
        )
        parser.add_argument("--no-progress", action="store_true")
        args = parser.parse_args(argv)
        return run_demo(
            Path(args.output), out=out, err=err, progress=not args.no_progress and err.isatty()
        )

    Parser(prog="ripstream sources", description="List the installed sources.").parse_args(argv)
    registry = load_registry()
    for source_name, source in registry:
        types = ", ".join(t.value for t in getattr(source, "supported_content_types", []))
        patterns = ", ".join(getattr(source, "url_patterns", ()))
        description = getattr(source, "description", "") or (source.__doc__ or "").split("\n")[0]
        print(f"{source_name:<12} {description}", file=out)
        print(f"{'':<12} accepts: {patterns or '-'}; content: {types or '-'}", file=out)
    for plugin, problem in sorted(registry.broken.items()):
        print(f"{plugin:<12} BROKEN: {problem}", file=out)
    return EXIT_OK
