"""``--dask ADDRESS`` and ``--dask local:N``: the batch on a dask.distributed cluster.

The cluster is one more executor strategy of the manager
(:class:`~ripstream.downloader.cluster.DaskCluster`); this module only turns the option into
one, refusing what cannot run there, and says what runs the downloads.
"""

from __future__ import annotations

import importlib.util
import logging
from typing import TextIO

from ripstream.app.batch import BatchItem
from ripstream.downloader.cluster import DaskCluster, local_processes
from ripstream.downloader.exceptions import ConfigError, SourceError
from ripstream.downloader.urls import validate_http_url
from ripstream.sources import load_registry
from ripstream.sources.http import HttpDownloader

__all__ = ["cluster_strategy"]


def cluster_strategy(
    items: list[BatchItem],
    address: str,
    say: TextIO | None,
    *,
    max_per_host: int | None = None,
) -> DaskCluster:
    """The strategy for ``--dask address`` over ``items``.

    :raises ConfigError: when dask is not installed, ``local:N`` is malformed, or the list
        has URLs of other sources than plain http(s) (their logins stay on this machine).
    """
    if importlib.util.find_spec("distributed") is None:
        raise ConfigError(
            "--dask needs dask.distributed: pip install 'ripstream[dask]'",
            field="dask",
            value=address,
        )
    _quiet_dask_logs()
    try:
        local_processes(address)
    except ValueError as exc:
        raise ConfigError(f"--dask: {exc}", field="dask", value=address) from exc
    registry = load_registry()
    for item in items:
        try:
            other = registry.for_url(item.url) is not HttpDownloader
        except SourceError:
            other = False  # reported as the usual bad input when the queue is built
        if other:
            raise ConfigError(
                f"--dask applies to plain http(s) URLs only; {item.url!r} is not one",
                field="dask",
                value=address,
            )
        validate_http_url(item.url)
    strategy = DaskCluster.connect(address, max_per_host=max_per_host)
    if say is not None:
        print(f"ripstream: downloading on the {strategy.describe(0)}", file=say)
    return strategy


def _quiet_dask_logs() -> None:
    """dask sets its loggers to INFO when it is imported, and they reach the root logger's
    handler: keep them no chattier than the root logger the CLI set (``-v`` lowers it)."""
    import distributed  # noqa: F401 - its import sets the levels that are changed here

    level = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    logging.getLogger("distributed").setLevel(level)
