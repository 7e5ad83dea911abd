"""RipStream: a synchronous framework and CLI for building music downloaders.

The framework lives in :mod:`ripstream.downloader`; sources in :mod:`ripstream.sources`.
"""

from __future__ import annotations

import logging

# A library prints nothing of its own: failures are results (and INFO/DEBUG log records on
# the "ripstream" logger); an application that wants them configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = ["__version__"]
