"""The driver's side of an isolated executor (worker processes, a dask cluster).

Made once per manager, when its first task goes out: the
:class:`~ripstream.downloader.worker.WorkerSpec` every worker builds its runtime from (the
config with this process's share of the run's limits), the
:class:`~ripstream.downloader.relay.Relay` that replays the workers' progress into the
manager's tracker, and the channel a cancel, a hold (a paused run, a closed window) and a
new share of the run's limit (the bandwidth timetable switched it) go down to the downloads
running there.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Any

from ripstream.downloader.config import DownloadBehaviorSettings, DownloadConfig
from ripstream.downloader.executors import ExecutorStrategy
from ripstream.downloader.hosts import HostGate
from ripstream.downloader.hostserver import share_hosts
from ripstream.downloader.progress import ProgressTracker
from ripstream.downloader.relay import Relay
from ripstream.downloader.services import PostProcessor
from ripstream.downloader.worker import SourceFactory, WorkerSpec

__all__ = ["Isolation", "split_limits"]

logger = logging.getLogger(__name__)

_UNTOLD = object()


class Isolation:
    """The worker spec, the progress relay and the cancel and hold channel of one manager's
    isolated executor. Thread-safe.

    :param strategy: the isolated strategy; asked for its shares and its channel.
    :param executor: the executor it made (connected, checked).
    :param tracker: the manager's tracker, where the workers' progress is replayed.
    :param hosts: the driver's per-host gate, served to worker processes of this machine so
        that they count with it (:func:`~ripstream.downloader.hostserver.share_hosts`).
    :param follow: subscribes :meth:`hold` to the run's holds and returns its unsubscribe
        (the manager's :meth:`~ripstream.downloader.pacing.Pacer.follow`).
    :param follow_rate: subscribes :meth:`limit` to the run's bandwidth limit as the
        timetable switches it (:meth:`~ripstream.downloader.pacing.Pacer.follow_rate`).
    """

    def __init__(
        self,
        strategy: ExecutorStrategy,
        executor: Executor,
        *,
        config: DownloadConfig,
        factory: SourceFactory,
        post_processors: Sequence[PostProcessor],
        tracker: ProgressTracker,
        hosts: HostGate | None = None,
        follow: Callable[[Callable[[bool], None]], Callable[[], None]] | None = None,
        follow_rate: Callable[[Callable[[float | None], None]], Callable[[], None]] | None = None,
    ) -> None:
        self.relay = Relay(tracker)
        self.shares = strategy.shares(executor)
        self.channel = strategy.open_channel(executor, self.relay.deliver)
        gates, self.host_server = share_hosts(strategy, hosts)
        self.spec = WorkerSpec(
            split_limits(config, self.shares).to_json(),
            factory,
            tuple(post_processors),
            host_gate=gates,
            link=self.channel.link if self.channel is not None else None,
        )
        self._lock = threading.Lock()
        self._cancelled = False
        self._held = False  # what the workers were last told
        self._hold_lock = threading.Lock()  # holds and rates reach the workers in order
        self._share: object = _UNTOLD  # the share of the limit the workers were last told
        self._unfollow = follow(self.hold) if follow is not None else None
        self._unfollow_rate = follow_rate(self.limit) if follow_rate is not None else None

    def cancel(self) -> None:
        """Stop the downloads running on the workers (once; later calls do nothing)."""
        with self._lock:
            if self._cancelled or self.channel is None:
                return
            self._cancelled = True
        try:
            self.channel.cancel()
        except Exception:  # a cluster already gone has nothing left running for this run
            logger.exception("could not tell the workers to stop")

    def hold(self, held: bool) -> None:
        """Hold the transfers running on the workers at their next buffer (``held``), or let
        them go on; a repeat of what the workers were last told sends nothing."""
        with self._hold_lock:
            if held == self._held or self.channel is None:
                return
            self._held = held
            try:
                self.channel.hold(held)
            except Exception:  # a cluster already gone has nothing left running for this run
                logger.exception("could not tell the workers to %s", "hold" if held else "go on")

    def limit(self, rate: float | None) -> None:
        """Switch the workers' throttles to their share of the run's limit ``rate`` (divided
        as :func:`split_limits` divides it; ``None``: unlimited); a repeat sends nothing."""
        share = rate / self.shares if rate else None
        with self._hold_lock:
            if share == self._share or self.channel is None:
                return
            self._share = share
            try:
                self.channel.limit(share)
            except Exception:  # a cluster already gone has nothing left running for this run
                logger.exception("could not tell the workers the new bandwidth limit")

    def close(self) -> None:
        """Stop relaying progress and serving the per-host count."""
        for unfollow in (self._unfollow, self._unfollow_rate):
            if unfollow is not None:
                unfollow()
        if self.channel is not None:
            self.channel.stop()
        if self.host_server is not None:
            self.host_server.close()


def split_limits(config: DownloadConfig, shares: int) -> DownloadConfig:
    """``config`` as one of ``shares`` worker processes runs it: the run's bandwidth and each
    source's request rate divided among them (so ``--limit-rate`` stays the run's total),
    and the output folder made absolute (a worker's working folder may differ).

    Dividing up front costs nothing per chunk; the price is that a worker left alone at the
    end of a run does not get the idle workers' share.
    """

    def slower(settings: DownloadBehaviorSettings) -> dict[str, Any]:
        if shares == 1 or not settings.requests_per_period:
            return {}
        return {"rate_period_seconds": settings.rate_period_seconds * shares}

    bandwidth = config.bandwidth_limit
    return dataclasses.replace(
        config,
        download_directory=config.download_directory.absolute(),
        bandwidth_limit=bandwidth / shares if bandwidth else bandwidth,
        default_settings=config.default_settings.replace(**slower(config.default_settings)),
        source_settings={
            name: {**overrides, **slower(config.get_behavior_for_source(name))}
            for name, overrides in config.source_settings.items()
        },
    )
