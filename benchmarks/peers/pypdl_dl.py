#!/usr/bin/env python3
"""pypdl driver: ``Pypdl(max_concurrent=J).start(tasks=[...], segments=S)``.

pypdl takes many URLs at once as a task list, so all files go to one
``start()`` call with ``max_concurrent`` files in flight. ``--segments 1``
turns multi-segment downloading off; left out, pypdl's default (multisegment,
5 segments) is kept. Progress display is off and pypdl's log goes to stderr
instead of ./pypdl.log. Exit status is 1 if any download failed.
"""

from __future__ import annotations

import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import base_parser, collect_urls, target_path


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "-j",
        "--concurrent",
        type=int,
        default=1,
        help="files at a time (pypdl max_concurrent, default 1)",
    )
    parser.add_argument(
        "--segments",
        type=int,
        default=None,
        help="segments per file; 1 = multisegment off (default: pypdl's 5)",
    )
    args = parser.parse_args()
    urls = collect_urls(args)
    os.makedirs(args.output_dir, exist_ok=True)

    from pypdl import Pypdl

    logger = logging.getLogger("pypdl-bench")
    logger.setLevel(logging.WARNING)
    logger.addHandler(logging.StreamHandler(sys.stderr))

    start_kwargs = {"display": False, "block": True, "retries": 0, "overwrite": True}
    if args.segments is not None:
        start_kwargs["multisegment"] = args.segments > 1
        start_kwargs["segments"] = max(1, args.segments)

    dl = Pypdl(max_concurrent=args.concurrent, logger=logger)
    tasks = [{"url": u, "file_path": target_path(args.output_dir, u)} for u in urls]
    dl.start(tasks=tasks, **start_kwargs)
    failed = list(dl.failed)
    if failed or len(dl.success) != len(urls):
        print(
            f"pypdl: {len(dl.success)} of {len(urls)} succeeded, failed: {failed[:20]}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
