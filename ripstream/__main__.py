"""``python -m ripstream``: see :mod:`ripstream.cli`."""

from __future__ import annotations

from ripstream.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
