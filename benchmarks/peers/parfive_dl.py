#!/usr/bin/env python3
"""parfive driver: ``parfive.Downloader(max_conn, max_splits, progress=False)``.

``--max-conn`` is how many files parfive downloads at once, ``--max-splits``
how many ranged connections it opens per file; either left out keeps
parfive's own default (5 and 5). Exit status is 1 if any download failed.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import base_parser, collect_urls, target_path


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--max-conn", type=int, default=None)
    parser.add_argument("--max-splits", type=int, default=None)
    args = parser.parse_args()
    urls = collect_urls(args)
    os.makedirs(args.output_dir, exist_ok=True)

    from parfive import Downloader

    kwargs = {"progress": False, "overwrite": True}
    if args.max_conn is not None:
        kwargs["max_conn"] = args.max_conn
    if args.max_splits is not None:
        kwargs["max_splits"] = args.max_splits
    dl = Downloader(**kwargs)
    for url in urls:
        dl.enqueue_file(
            url, path=args.output_dir, filename=os.path.basename(target_path(args.output_dir, url))
        )
    results = dl.download()
    if results.errors:
        for err in results.errors[:20]:
            print(f"FAILED {err.url}: {err.exception!r}", file=sys.stderr)
        print(f"{len(results.errors)} of {len(urls)} downloads failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
