#!/usr/bin/env python3
"""The "plain" peer: requests + concurrent.futures.ThreadPoolExecutor.

What a developer would write in twenty lines without a download library:

* many URLs: one streaming GET per file, ``-j`` files at a time, one
  ``requests.Session`` per worker thread (so keep-alive connections are reused);
* one URL with ``--segments N`` (N > 1): a HEAD for the length, then N ranged
  GETs in N threads, each writing its part with ``os.pwrite`` into a file
  truncated to the full size.

Exit status is 1 if any download failed.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import base_parser, collect_urls, target_path

CHUNK = 1 << 20
TIMEOUT = (10, 60)
_local = threading.local()


def session() -> requests.Session:
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = requests.Session()
        _local.session = sess
    return sess


def fetch_whole(url: str, path: str) -> None:
    with session().get(url, stream=True, timeout=TIMEOUT) as resp:
        resp.raise_for_status()
        with open(path, "wb") as fh:
            for chunk in resp.iter_content(CHUNK):
                fh.write(chunk)


def fetch_range(url: str, fd: int, start: int, end: int) -> None:
    headers = {"Range": f"bytes={start}-{end}"}
    with session().get(url, headers=headers, stream=True, timeout=TIMEOUT) as resp:
        resp.raise_for_status()
        if resp.status_code != 206:
            raise RuntimeError(f"server ignored Range (status {resp.status_code})")
        pos = start
        for chunk in resp.iter_content(CHUNK):
            os.pwrite(fd, chunk, pos)
            pos += len(chunk)
        if pos != end + 1:
            raise RuntimeError(f"short range {start}-{end}: got {pos - start} bytes")


def fetch_segmented(url: str, path: str, segments: int) -> None:
    head = requests.head(url, timeout=TIMEOUT, allow_redirects=True)
    head.raise_for_status()
    size = int(head.headers["Content-Length"])
    if head.headers.get("Accept-Ranges") != "bytes" or size < segments:
        fetch_whole(url, path)
        return
    step = size // segments
    bounds = [
        (i * step, (size - 1) if i == segments - 1 else (i + 1) * step - 1) for i in range(segments)
    ]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)
        with ThreadPoolExecutor(max_workers=segments) as pool:
            for fut in [pool.submit(fetch_range, url, fd, a, b) for a, b in bounds]:
                fut.result()
    finally:
        os.close(fd)


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("-j", "--jobs", type=int, default=1, help="files at a time (default 1)")
    parser.add_argument(
        "--segments",
        type=int,
        default=1,
        help="ranged connections per file for a single URL (default 1)",
    )
    args = parser.parse_args()
    urls = collect_urls(args)
    os.makedirs(args.output_dir, exist_ok=True)

    if len(urls) == 1 and args.segments > 1:
        fetch_segmented(urls[0], target_path(args.output_dir, urls[0]), args.segments)
        return 0

    failures = 0
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(fetch_whole, u, target_path(args.output_dir, u)): u for u in urls}
        for fut, url in futures.items():
            try:
                fut.result()
            except Exception as exc:
                failures += 1
                print(f"FAILED {url}: {exc}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
