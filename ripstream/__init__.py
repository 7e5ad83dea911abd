"""RipStream: a synchronous framework and CLI for building music downloaders.

The framework lives in :mod:`ripstream.downloader`; sources in :mod:`ripstream.sources`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
