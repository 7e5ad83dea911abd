"""The command line's options: the parser, the value types, and what ``-d``/``-o`` mean.

The flags follow aria2c, wget, curl and yt-dlp where they agree: ``-d/--dir`` (``-P``) is the
output folder, ``-o/--output`` the file name of a single URL or a naming template for many.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from ripstream import __version__
from ripstream.app.monitoring import add_schedule_options, limit_rate
from ripstream.downloader.config import OverwritePolicy, parse_rate
from ripstream.downloader.content import Checksum
from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.urls import check_proxy

__all__ = [
    "Output",
    "Parser",
    "UsageError",
    "build_parser",
    "check_cookies",
    "header",
    "output_of",
    "with_scheme",
]


class UsageError(Exception):
    """Bad usage: one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, exit 2, no usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


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


def header(text: str) -> tuple[str, str]:
    """``'Name: value'`` -> ``("Name", "value")``, as curl's ``-H`` takes it."""
    name, colon, value = text.partition(":")
    name = name.strip()
    if not colon or not name or any(c in name for c in " \t\r\n") or "\n" in value:
        raise argparse.ArgumentTypeError(f"--header wants 'Name: value', got {text!r}")
    return name, value.strip()


def _proxy(text: str) -> str:
    try:
        check_proxy(text)
    except ConfigError as exc:  # its message shows the URL without credentials
        raise argparse.ArgumentTypeError(f"--{exc}") from None
    return text


def check_cookies(path: str) -> None:
    """Refuse a cookies file that is not a readable Netscape cookies.txt.

    :raises ConfigError: naming the file and what is wrong with it.
    """
    jar = http.cookiejar.MozillaCookieJar()
    try:
        jar.load(path, ignore_discard=True, ignore_expires=True)
    except FileNotFoundError as exc:
        raise ConfigError(f"cookies file {path!r} does not exist", field="cookies") from exc
    except (OSError, http.cookiejar.LoadError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cookies file {path!r} is not a Netscape cookies.txt: {exc}", field="cookies"
        ) from exc


def with_scheme(url: str) -> str:
    """A bare ``host/path`` means ``https://host/path``, as in curl and browsers."""
    if "://" in url or not url or url.startswith(("/", ".")):
        return url
    host = url.split("/", 1)[0]
    if ":" in host and not host.rsplit(":", 1)[1].isdigit():
        return url  # mailto:x, subsonic:... : a scheme without slashes, not a host
    if "." in host or host.startswith(("localhost", "[")) or ":" in host:
        return f"https://{url}"
    return url


@dataclass(frozen=True, slots=True)
class Output:
    """Where files go: the folder, the naming template, and a note to print (deprecations)."""

    directory: Path | None
    template: str | None
    note: str | None = None


def output_of(args: argparse.Namespace, downloads: int) -> Output:
    """What ``-d`` and ``-o`` (and ``--template``) mean for ``downloads`` URLs.

    ``-o NAME`` names the file of a single URL (curl, wget, aria2c); with many URLs it must be
    a template with ``{fields}``. The old ``-o DIR`` still works when it can only be a folder
    (an existing one, or a path ending in ``/``), with a deprecation line.

    :raises UsageError: when ``-o`` is ambiguous.
    """
    directory = Path(args.dir) if args.dir else None
    template = args.template
    name = args.output
    if name is None:
        return Output(directory, template)
    looks_like_folder = name.endswith(("/", os.sep)) or Path(name).is_dir()
    if directory is None and looks_like_folder:
        return Output(
            Path(name),
            template,
            f"-o {name} as the output folder is deprecated: use -d {name} "
            "(-o names the file, as in curl and wget)",
        )
    if template is not None:
        raise UsageError("give -o NAME or --template, not both")
    if "{" in name:
        return Output(directory, name)
    if downloads != 1:
        raise UsageError(
            f"-o {name!r} names one file but {downloads} URLs were given; use a template "
            "with fields (-o '{title}.{ext}') or -d DIR for the folder"
        )
    return Output(directory, name.replace("{", "{{").replace("}", "}}"))


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-d",
        "--dir",
        "-P",
        "--directory-prefix",
        dest="dir",
        metavar="DIR",
        help="output folder (default: the config's download_directory, else ./downloads)",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="NAME",
        help="file name for a single URL, or a naming template with {fields} for many",
    )
    parser.add_argument(
        "--template",
        metavar="TEMPLATE",
        help="naming template, e.g. '{albumartist}/{album} ({year})/{tracknumber:02d} "
        "{title}.{ext}' (default: each source's own)",
    )
    parser.add_argument(
        "--on-exists",
        choices=[p.value for p in OverwritePolicy],
        help="when the file exists: skip (default), overwrite, rename, error",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="fetch again whatever the state file and the download archive say",
    )


def _what(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("urls", nargs="*", metavar="URL", help="URLs to download")
    parser.add_argument(
        "-i",
        "--input-file",
        metavar="FILE",
        action="append",
        default=[],
        help="read URLs from FILE, one per line ('URL [ALGO:HEX]'); - for stdin",
    )
    parser.add_argument(
        "--checksum",
        type=_checksum,
        action="append",
        default=[],
        metavar="ALGO:HEX",
        help="expected digest (md5, sha1, sha256, sha512); once per URL",
    )


def _how(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-j", "--jobs", type=_positive_int("--jobs"), metavar="N", help="downloads at once"
    )
    parser.add_argument(
        "--segments",
        type=_positive_int("--segments"),
        metavar="N",
        help="split each file into N ranged parts downloaded in parallel",
    )
    parser.add_argument(
        "--limit-rate",
        type=limit_rate,
        metavar="RATE",
        help="total bandwidth for the run, e.g. 500k, 10M, or a timetable "
        "'08:00,512k 12:00,10M 23:00,off'",
    )
    add_schedule_options(parser, _positive_int)
    parser.add_argument(
        "--retries",
        type=_positive_int("--retries", 0),
        metavar="N",
        help="retries per download after the first attempt (default 5)",
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
        "--subsonic-format",
        metavar="FORMAT[:KBPS]",
        help="Subsonic: a transcode to ask for on purpose (opus:128, mp3:320); default raw",
    )


def _http(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-H",
        "--header",
        type=header,
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="an extra request header (repeatable)",
    )
    parser.add_argument("-U", "--user-agent", metavar="TEXT", help="the User-Agent header")
    parser.add_argument("--referer", metavar="URL", help="the Referer header")
    parser.add_argument(
        "--proxy",
        type=_proxy,
        metavar="URL",
        help="proxy for every request: http://, https://, socks5:// or socks5h://HOST:PORT",
    )
    parser.add_argument(
        "--cookies", metavar="FILE", help="send cookies from FILE (Netscape cookies.txt)"
    )
    parser.add_argument(
        "-k",
        "--no-check-certificate",
        "--insecure",
        dest="no_check_certificate",
        action="store_true",
        help="do not verify TLS certificates",
    )
    parser.add_argument("--ca-bundle", metavar="FILE", help="verify TLS with these CAs")


def _state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        metavar="FILE",
        help="journal of this batch: a rerun skips what finished (default: "
        "DIR/.ripstream-state.jsonl)",
    )
    parser.add_argument("--no-state", action="store_true", help="keep no batch journal")
    parser.add_argument(
        "--no-archive",
        action="store_true",
        help="ignore the download archive (DIR/.ripstream-archive.sqlite3) and record nothing",
    )
    parser.add_argument("--no-tags", action="store_true", help="do not write tags into tracks")
    parser.add_argument(
        "--fsync", action="store_true", help="flush each file to disk before it is renamed"
    )


def _output(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON result per line on stdout"
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-v info, -vv debug)"
    )
    parser.add_argument("--version", action="version", version=f"ripstream {__version__}")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the main command."""
    parser = Parser(
        prog="ripstream",
        description="Download music and files, safely and fast.",
        epilog="Subcommands: 'ripstream demo' downloads a generated album from a "
        "local server; 'ripstream sources' lists the installed sources.",
    )
    for group in (_what, _where, _how, _http, _state, _output):
        group(parser)
    return parser
