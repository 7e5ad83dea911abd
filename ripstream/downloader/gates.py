"""The names of the per-host limit that worker processes build, kept where they were first
published. The one per-host limiter (slots and cool-downs, counted in this process, by the
driver for worker processes, or by a dask cluster) is :mod:`ripstream.downloader.hosts`.

Example::

    gates = LocalHostGates(limit=2)
    with gates.build().hold("music.example"):
        ...   # at most two of these run at once for that host
"""

from __future__ import annotations

from ripstream.downloader.hosts import HostGate, HostGateFactory, LocalHostGates, host_key

__all__ = ["HostGate", "HostGateFactory", "LocalHostGates", "host_key"]
