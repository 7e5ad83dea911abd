"""Shared command-line plumbing for the peer driver scripts."""

from __future__ import annotations

import argparse
import os
from urllib.parse import unquote, urlsplit


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-o", "--output-dir", required=True, help="directory to write into")
    parser.add_argument("-i", "--input-file", help="file with one URL per line")
    parser.add_argument("urls", nargs="*", help="URLs to download")
    return parser


def collect_urls(args: argparse.Namespace) -> list[str]:
    urls = list(args.urls)
    if args.input_file:
        with open(args.input_file, encoding="utf-8") as fh:
            urls.extend(line.strip() for line in fh if line.strip() and not line.startswith("#"))
    if not urls:
        raise SystemExit("no URLs given")
    return urls


def target_path(output_dir: str, url: str) -> str:
    """OUTPUT_DIR/<last path segment of URL>, like curl -O / wget / aria2c."""
    name = os.path.basename(unquote(urlsplit(url).path)) or "index.html"
    return os.path.join(output_dir, name)
