"""From parsed options to what a run needs: the :class:`AppConfig` and the list of items.

Everything here is checked before anything is written: a bad template, header, cookies file
or checksum count is a :class:`ConfigError` (one line, exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
from pathlib import Path
from typing import Any, TextIO

from ripstream.app.batch import BatchItem, read_input_file
from ripstream.app.config import AppConfig
from ripstream.app.monitoring import build_schedule
from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.files import check_template
from ripstream.downloader.schedule import RateTimetable
from ripstream.options import Output, UsageError, check_cookies, with_scheme
from ripstream.sources.subsonic_media import MediaFormat

__all__ = ["config_from", "items_from"]


def _given(args: argparse.Namespace, option: str) -> bool:
    """Whether ``option`` was on the command line (``--min-speed 0`` parses to None)."""
    return option in getattr(args, "raw_options", ())


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
    if args.max_per_host is not None:
        changes["max_per_host"] = args.max_per_host
    return changes


def _http_changes(args: argparse.Namespace, headers: dict[str, str]) -> dict[str, Any]:
    """The HTTP settings the options change (curl's and wget's flags)."""
    changes: dict[str, Any] = {}
    extra = dict(args.header)
    if args.referer:
        extra["Referer"] = args.referer
    if extra:
        changes["headers"] = {**headers, **extra}
    if args.user_agent:
        changes["user_agent"] = args.user_agent
    if args.no_check_certificate:
        changes["verify_ssl"] = False
    if args.proxy:
        changes["proxy"] = args.proxy
    if args.ca_bundle:
        if not Path(args.ca_bundle).exists():
            raise ConfigError(f"--ca-bundle {args.ca_bundle!r} does not exist", field="ca_bundle")
        changes["ca_bundle"] = args.ca_bundle
    if args.cookies:
        check_cookies(args.cookies)
        changes["cookies_file"] = str(Path(args.cookies).resolve())
    return changes


def config_from(args: argparse.Namespace, output: Output) -> AppConfig:
    """The application config of this run: the ``--config`` file, then the options."""
    app = AppConfig.load(args.config) if args.config else AppConfig()
    config = app.download
    changes = _behaviour_changes(args) | _http_changes(args, config.default_settings.headers)
    settings = config.default_settings.replace(**changes) if changes else config.default_settings
    if output.template is not None:
        check_template(output.template)  # an unknown field is bad input: fail now
    download = dataclasses.replace(
        config,
        filename_template=output.template or config.filename_template,
        download_directory=output.directory or config.download_directory,
        max_concurrent_downloads=args.jobs or config.max_concurrent_downloads,
        default_settings=settings,
        bandwidth_limit=(
            args.limit_rate if isinstance(args.limit_rate, float) else config.bandwidth_limit
        ),
        schedule=build_schedule(
            start_at=args.start_at,
            windows=args.window,
            window_end=args.window_end,
            rates=args.limit_rate if isinstance(args.limit_rate, RateTimetable) else None,
            now=datetime.datetime.now(),
        )
        or config.schedule,
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


def items_from(args: argparse.Namespace, stdin: TextIO) -> list[BatchItem]:
    """The URLs of this run (a bare ``host/path`` means ``https://``), with their checksums."""
    items = [BatchItem(url) for url in args.urls]
    for name in args.input_file:
        items.extend(read_input_file(name, stdin))
    items = [BatchItem(with_scheme(item.url), item.checksum) for item in items]
    if args.checksum:
        if len(args.checksum) != len(items):
            given = len(args.checksum)
            raise ConfigError(
                f"--checksum was given {given} time{'s' if given != 1 else ''} for "
                f"{len(items)} URL{'s' if len(items) != 1 else ''}; give it once per URL",
                field="checksum",
            )
        items = [
            BatchItem(item.url, checksum)
            for item, checksum in zip(items, args.checksum, strict=True)
        ]
    if not items:
        raise UsageError("no URLs given (pass URLs, or -i FILE; try 'ripstream demo')")
    return items
