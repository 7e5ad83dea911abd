"""The command line: ``python -m ripstream [OPTIONS] [URL ...]``, plus ``demo`` and ``sources``.

Argument parsing and printing only; the work is in :mod:`ripstream.app.batch`.
Exit status: 0 all succeeded, 1 some failed, 2 bad usage or bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from ripstream import __version__
from ripstream.app.batch import Batch, BatchItem, read_input_file
from ripstream.app.config import AppConfig
from ripstream.app.journal import BatchJournal
from ripstream.app.modes import choose_strategy
from ripstream.downloader.config import OverwritePolicy, parse_rate
from ripstream.downloader.content import Checksum, DownloadResult
from ripstream.downloader.exceptions import (
    AuthenticationError,
    ConfigError,
    DownloadError,
    StorageError,
)
from ripstream.downloader.executors import ExecutorStrategy
from ripstream.downloader.files import render_template
from ripstream.downloader.progress import ProgressTracker, TqdmProgress
from ripstream.downloader.queue import DownloadQueue, DownloadTask
from ripstream.library.archive import DownloadArchive
from ripstream.sources import load_registry
from ripstream.sources.subsonic_media import MediaFormat
from ripstream.terminal import Reporter, redact_logs, secrets_of

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_SUBCOMMANDS = ("demo", "sources")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _positive_int(name: str, low: int = 1) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} must be a whole number, got {text!r}"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{name} must be >= {low}, got {value}")
        return value

    return parse


def _rate(text: str) -> float | None:
    try:
        return parse_rate(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str) -> int:
    value = _rate(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"size must be > 0, got {text!r}")
    return int(value)


def _seconds(name: str) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(
                f"{name} must be a finite number of seconds > 0, got {text!r}"
            )
        return value

    return parse


def _checksum(text: str) -> Checksum:
    try:
        return Checksum.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    """The parser of the main command."""
    parser = _Parser(
        prog="ripstream",
        description="Download music and files, safely and fast.",
        epilog="Subcommands: 'ripstream demo' downloads a generated album from a "
        "local server; 'ripstream sources' lists the installed sources.",
    )
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="output folder (default: the config's download_directory, else ./downloads)",
    )
    parser.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        action="append",
        default=[],
        help="read URLs from FILE, one per line ('URL [ALGO:HEX]'); - for stdin",
    )
    parser.add_argument(
        "-j",
        "--jobs",
        type=_positive_int("--jobs"),
        metavar="N",
        help="downloads at once (default 3)",
    )
    parser.add_argument(
        "--segments",
        type=_positive_int("--segments"),
        metavar="N",
        help="split each file into N ranged parts downloaded in parallel",
    )
    parser.add_argument(
        "--limit-rate",
        type=_rate,
        metavar="RATE",
        help="total bandwidth for the run, e.g. 500k, 10M",
    )
    parser.add_argument(
        "--retries",
        type=_positive_int("--retries", 0),
        metavar="N",
        help="retries per download after the first attempt (default 5)",
    )
    parser.add_argument(
        "--checksum",
        type=_checksum,
        action="append",
        default=[],
        metavar="ALGO:HEX",
        help="expected digest (md5, sha1, sha256, sha512); once per URL",
    )
    parser.add_argument(
        "--on-exists",
        choices=[p.value for p in OverwritePolicy],
        help="when the file exists: skip (default), overwrite, rename, error",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds("--timeout"),
        metavar="SECONDS",
        help="seconds without data before a download counts as stalled",
    )
    parser.add_argument(
        "--stall-timeout",
        type=float,
        metavar="SECONDS",
        help="seconds without a byte before a download counts as stalled (default 30)",
    )
    parser.add_argument(
        "--min-speed",
        type=_rate,
        metavar="RATE",
        help="slower than RATE over a minute counts as stalled (default 1k; 0 turns it off)",
    )
    parser.add_argument(
        "--max-filesize",
        type=_size,
        metavar="SIZE",
        help="refuse files larger than SIZE, e.g. 2G (default: no limit)",
    )
    parser.add_argument("--config", metavar="FILE", help="JSON config file")
    parser.add_argument(
        "--template",
        metavar="TEMPLATE",
        help="naming template, e.g. '{albumartist}/{album} ({year})/{tracknumber:02d} "
        "{title}.{ext}' (default: each source's own)",
    )
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="journal of this batch: a rerun skips what finished (default: "
        "OUTPUT/.ripstream-state.jsonl)",
    )
    parser.add_argument("--no-state", action="store_true", help="keep no batch journal")
    parser.add_argument(
        "--no-archive",
        action="store_true",
        help="ignore the download archive (OUTPUT/.ripstream-archive.sqlite3) and record nothing",
    )
    parser.add_argument("--no-tags", action="store_true", help="do not write tags into tracks")
    parser.add_argument(
        "--subsonic-format",
        metavar="FORMAT[:KBPS]",
        help="Subsonic: a transcode to ask for on purpose (opus:128, mp3:320); default raw, "
        "the original files",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int("--processes", 0),
        default=0,
        metavar="N",
        help="split many plain URLs over N processes (default 0: automatic, by CPUs and -j)",
    )
    parser.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a dask cluster: a scheduler (tcp://host:8786), or local:N to start N "
        "worker processes for this run; the output folder must be shared by every worker",
    )
    parser.add_argument(
        "--fsync", action="store_true", help="flush each file to disk before it is renamed"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON result per line on stdout"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more")
    parser.add_argument("--version", action="version", version=f"ripstream {__version__}")
    return parser


def _behaviour_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The download settings the options change."""
    changes: dict[str, Any] = {}
    if args.segments is not None:
        changes["segments"] = args.segments
    if args.retries is not None:
        changes["max_retries"] = args.retries
    if args.on_exists is not None:
        changes["overwrite"] = args.on_exists
    if args.fsync:
        changes["fsync"] = True
    if args.timeout is not None:
        changes["stall_timeout"] = changes["timeout_seconds"] = args.timeout
    if args.stall_timeout is not None:
        changes["stall_timeout"] = args.stall_timeout
    if args.min_speed is not None or _given(args, "--min-speed"):
        changes["min_speed"] = args.min_speed
    if args.max_filesize is not None:
        changes["max_filesize"] = args.max_filesize
    return changes


def _given(args: argparse.Namespace, option: str) -> bool:
    """Whether ``option`` was on the command line (``--min-speed 0`` parses to None)."""
    return option in getattr(args, "raw_options", ())


def _config_from(args: argparse.Namespace) -> AppConfig:
    app = AppConfig.load(args.config) if args.config else AppConfig()
    config = app.download
    changes = _behaviour_changes(args)
    settings = config.default_settings.replace(**changes) if changes else config.default_settings
    if args.template is not None:
        render_template(args.template, {})  # a malformed template is bad input: fail now
    download = dataclasses.replace(
        config,
        filename_template=args.template or config.filename_template,
        download_directory=Path(args.output) if args.output else config.download_directory,
        max_concurrent_downloads=args.jobs or config.max_concurrent_downloads,
        default_settings=settings,
        bandwidth_limit=(
            args.limit_rate if args.limit_rate is not None else config.bandwidth_limit
        ),
    )
    credentials = app.source_credentials
    if args.subsonic_format is not None:
        MediaFormat.parse(args.subsonic_format)  # a bad format is bad input: fail now
        credentials = {**credentials, "subsonic": {**credentials.get("subsonic", {})}}
        credentials["subsonic"]["format"] = args.subsonic_format
    return app.replace(
        download=download,
        write_tags=app.write_tags and not args.no_tags,
        source_credentials=credentials,
    )


def _items_from(args: argparse.Namespace, stdin: TextIO) -> list[BatchItem]:
    items = [BatchItem(url) for url in args.urls]
    for name in args.input_file:
        items.extend(read_input_file(name, stdin))
    if args.checksum:
        if len(args.checksum) != len(items):
            raise ConfigError(
                f"--checksum was given {len(args.checksum)} times for "
                f"{len(items)} URLs; give it once per URL",
                field="checksum",
            )
        items = [
            BatchItem(item.url, checksum)
            for item, checksum in zip(items, args.checksum, strict=True)
        ]
    if not items:
        raise _UsageError("no URLs given (pass URLs, or -i FILE; try 'ripstream demo')")
    return items


def main(
    argv: Sequence[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the CLI; returns the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    out, err = stdout or sys.stdout, stderr or sys.stderr
    say = Reporter(quiet=False, as_json=False, out=out, err=err, secrets=[])
    try:
        if args_list and args_list[0] in _SUBCOMMANDS:
            return _subcommand(args_list[0], args_list[1:], out, err)
        args = build_parser().parse_args(args_list)
        args.raw_options = {item.split("=", 1)[0] for item in args_list if item.startswith("--")}
        logging.basicConfig(
            level=logging.WARNING - 10 * args.verbose if args.verbose else logging.CRITICAL,
            format="%(levelname)s %(name)s: %(message)s",
        )
        redact_logs([])
        app = _config_from(args)
        items = _items_from(args, stdin or sys.stdin)
    except (_UsageError, ConfigError) as exc:
        say.error(exc)
        return EXIT_USAGE
    secrets = secrets_of(app)
    redact_logs(secrets)
    reporter = Reporter(quiet=args.quiet, as_json=args.json, out=out, err=err, secrets=secrets)
    return _run(items, app, args, reporter)


def _run(items: list[BatchItem], app: AppConfig, args: argparse.Namespace, say: Reporter) -> int:
    state, archive_path = _state_paths(args, app)
    with contextlib.ExitStack() as stack:
        try:  # a FIFO, a device or garbage as --state or archive is bad input: nothing runs
            journal = stack.enter_context(BatchJournal(state)) if state else None
            archive = stack.enter_context(DownloadArchive(archive_path)) if archive_path else None
        except StorageError as exc:
            say.error(exc)
            return EXIT_USAGE
        return _run_batch(items, app, args, say, (journal, archive))


def _run_batch(
    items: list[BatchItem],
    app: AppConfig,
    args: argparse.Namespace,
    say: Reporter,
    stores: tuple[BatchJournal | None, DownloadArchive | None],
) -> int:
    err = say.err
    tracker = ProgressTracker()
    show_bars = not (args.quiet or args.no_progress) and err.isatty()
    bars: TqdmProgress | None = None
    strategy: ExecutorStrategy | None = None

    def on_queue(queue: DownloadQueue) -> None:
        nonlocal bars
        if show_bars:
            bars = TqdmProgress(total_files=len(queue), file=err)
            tracker.add_callback(bars)

    def on_result(task: DownloadTask, result: DownloadResult) -> None:
        say.result(task, result)
        if bars is not None and strategy is not None:  # workers report no bytes: count files
            bars.overall.update(1)

    try:
        strategy = choose_strategy(
            items,
            app,
            args.processes,
            None if args.quiet else err,
            dask=args.dask,
            max_per_host=getattr(args, "max_per_host", None),  # --max-per-host: issue 12
        )
        batch = Batch(
            app,
            progress_tracker=tracker,
            journal=stores[0],
            archive=stores[1],
            prompt=_secret_prompt(err),
            executor=strategy,
        )
        results = batch.run(items, on_result=on_result, on_queue=on_queue)
    except KeyboardInterrupt:
        print("ripstream: interrupted; partial files are kept and resume on the next run", file=err)
        return EXIT_INTERRUPTED
    except (ConfigError, AuthenticationError) as exc:
        say.error(exc)
        return EXIT_USAGE
    except DownloadError as exc:
        say.error(exc)
        return EXIT_FAILED
    finally:
        if bars is not None:
            bars.close()
    say.summary(results)
    return EXIT_OK if all(r.is_success for r in results) else EXIT_FAILED


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

        parser = _Parser(
            prog="ripstream demo",
            description="Download a generated album from a "
            "local server through the real pipeline, then verify it.",
        )
        parser.add_argument("-o", "--output", default="ripstream-demo", metavar="DIR")
        parser.add_argument("--no-progress", action="store_true")
        args = parser.parse_args(argv)
        return run_demo(
            Path(args.output), out=out, err=err, progress=not args.no_progress and err.isatty()
        )

    _Parser(prog="ripstream sources", description="List the installed sources.").parse_args(argv)
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
