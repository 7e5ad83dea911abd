"""Prometheus metrics of a run, as an event sink (needs the ``metrics`` extra:
``pip install ripstream[metrics]``, which brings ``prometheus_client``).

Labels are bounded: a source name, a result status, an error type; never a URL or an id.
Everything is counted in the process that runs the manager, from the events it sees, so a
run on worker processes (``--processes``, ``--dask``) is counted whole: bytes arrive while a
worker downloads (its progress is relayed to the driver), the duration with the result, and a
worker's retries as ``reason="unknown"`` from the result's attempt count.

Example::

    from ripstream.app.metrics import PrometheusSink, serve_metrics

    sink = PrometheusSink()
    server = serve_metrics(sink, port=9100)          # http://127.0.0.1:9100/metrics
    DownloadManager(config, events=[sink]).run(queue)
    server.shutdown()
"""

from __future__ import annotations

import importlib
import threading
import wsgiref.simple_server
from dataclasses import dataclass, field
from typing import Any

from ripstream.downloader.events import EventKind, RunEvent
from ripstream.downloader.exceptions import ConfigError
from ripstream.downloader.executors import start_thread

__all__ = ["MetricsServer", "PrometheusSink", "serve_metrics"]


def _prometheus() -> Any:
    try:
        return importlib.import_module("prometheus_client")
    except ImportError as exc:
        raise ConfigError(
            "metrics need prometheus_client: pip install 'ripstream[metrics]'",
            field="metrics_port",
        ) from exc


_ENDED = {
    EventKind.COMPLETED: "completed",
    EventKind.FAILED: "failed",
    EventKind.SKIPPED: "skipped",
    EventKind.CANCELLED: "cancelled",
}


@dataclass(slots=True)
class _Task:
    source: str
    bytes: int = 0
    retries: int = 0
    active: bool = False


@dataclass
class PrometheusSink:
    """Counts the run's events into Prometheus metrics. Thread-safe.

    :param registry: a ``prometheus_client.CollectorRegistry`` (default: a new one, so two
        runs in one process never collide).
    """

    registry: Any = None
    _tasks: dict[str, _Task] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __post_init__(self) -> None:
        prom = _prometheus()
        if self.registry is None:
            self.registry = prom.CollectorRegistry()
        reg = self.registry
        self.downloads = prom.Counter(
            "ripstream_downloads", "Downloads ended", ["source", "status"], registry=reg
        )
        self.bytes = prom.Counter("ripstream_bytes", "Bytes downloaded", ["source"], registry=reg)
        self.active = prom.Gauge("ripstream_active_downloads", "Downloads running", registry=reg)
        self.waiting = prom.Gauge("ripstream_queue_waiting", "Downloads queued", registry=reg)
        self.retries = prom.Counter(
            "ripstream_retries", "Retries", ["source", "reason"], registry=reg
        )
        self.cooldowns = prom.Counter(
            "ripstream_host_cooldowns", "Hosts that asked us to slow down", registry=reg
        )
        self.duration = prom.Histogram(
            "ripstream_download_duration_seconds",
            "Time per download",
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=reg,
        )

    def __call__(self, event: RunEvent) -> None:
        kind = event.event
        if kind is EventKind.HOST_COOLDOWN:
            self.cooldowns.inc()
            return
        if event.task_id is None:
            return
        with self._lock:
            task = self._tasks.setdefault(event.task_id, _Task(event.source or "unknown"))
            self._count(task, event)

    def _count(self, task: _Task, event: RunEvent) -> None:
        kind = event.event
        if kind is EventKind.QUEUED:
            self.waiting.inc()
        elif kind is EventKind.STARTED:
            self.waiting.dec()
            self.active.inc()
            task.active = True
        elif kind is EventKind.PROGRESS:
            self._add_bytes(task, event.bytes)
        elif kind is EventKind.RETRY:
            task.retries += 1
            self.retries.labels(task.source, event.reason or "unknown").inc()
        elif kind in _ENDED:
            self._end(task, event)

    def _add_bytes(self, task: _Task, done: int | None) -> None:
        if done is not None and done > task.bytes:
            self.bytes.labels(task.source).inc(done - task.bytes)
            task.bytes = done

    def _end(self, task: _Task, event: RunEvent) -> None:
        if task.active:
            self.active.dec()
        else:
            self.waiting.dec()
        task.active = False
        self.downloads.labels(task.source, _ENDED[event.event]).inc()
        self._add_bytes(task, event.bytes)
        # retries in a worker process are only known from the result's attempt count
        unseen = (event.attempt or 1) - 1 - task.retries
        if unseen > 0:
            self.retries.labels(task.source, "unknown").inc(unseen)
        if event.event is EventKind.COMPLETED and event.elapsed is not None:
            self.duration.observe(event.elapsed)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return bytes(_prometheus().generate_latest(self.registry))


class MetricsServer:
    """The ``/metrics`` endpoint on a helper thread; :meth:`shutdown` stops it."""

    def __init__(self, sink: PrometheusSink, host: str, port: int) -> None:
        app = _prometheus().make_wsgi_app(sink.registry)
        self._server = wsgiref.simple_server.make_server(
            host, port, app, handler_class=_QuietHandler
        )
        self.port = int(self._server.server_address[1])
        self._thread = start_thread(self._server.serve_forever, name="ripstream-metrics")

    def shutdown(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not worth a line on stderr."""


def serve_metrics(sink: PrometheusSink, port: int, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``sink``'s metrics at ``http://host:port/metrics`` (``port`` 0: any free one).

    :raises ConfigError: without prometheus_client, or when the port cannot be bound.
    """
    try:
        return MetricsServer(sink, host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror}",
            field="metrics_port",
            value=port,
        ) from exc
