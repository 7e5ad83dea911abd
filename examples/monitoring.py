"""Monitoring a run: events as they happen, ``manager.stats()``, and Prometheus metrics.

A :class:`DownloadManager` takes event sinks (any callable taking a ``RunEvent``); here one
prints a line of ``manager.stats()`` on every progress and completion, as a notebook or a
service would, and, when ``prometheus_client`` is installed (``pip install
'ripstream[metrics]'``), a ``PrometheusSink`` counts the same run and prints what ``/metrics``
would serve. Downloads are throttled (64 KiB/s for the run) so there is something to watch.

Run::

    python examples/monitoring.py [--base-url URL] [--output DIR]
"""

from __future__ import annotations

import importlib.util

from _local_server import TRACK_IDS, output_directory, parse_args, service
from basic_downloader import MyStreamingServiceDownloader

from ripstream.downloader import DownloadConfig, DownloadManager, DownloadQueue, DownloadTask
from ripstream.downloader.events import EventKind, EventSink, RunEvent


def main() -> int:
    args = parse_args(__doc__)
    with service(args.base_url) as base_url, output_directory(args.output) as output:
        config = DownloadConfig(
            download_directory=output, max_concurrent_downloads=2, bandwidth_limit=64 * 1024
        )
        sinks: list[EventSink] = []
        prometheus = None
        if importlib.util.find_spec("prometheus_client") is not None:
            from ripstream.app.metrics import PrometheusSink

            prometheus = PrometheusSink()
            sinks.append(prometheus)

        def show(event: RunEvent) -> None:
            # a sink runs on the thread that saw the event; stats() is thread-safe
            if event.event in (EventKind.PROGRESS, EventKind.COMPLETED):
                stats = manager.stats()
                print(
                    f"stats: {stats.active} active, {stats.completed} completed, "
                    f"{stats.bytes_done} bytes, {stats.speed / 1024:.0f} KiB/s"
                )

        with MyStreamingServiceDownloader(config, api_base=base_url) as source:
            manager = DownloadManager(config, downloaders=[source], events=[*sinks, show])
            with manager:
                queue = DownloadQueue()
                for track_id in TRACK_IDS:
                    queue.add_task(DownloadTask.from_content(source.get_download_info(track_id)))
                results = manager.run(queue)
            final = manager.stats()
        print(f"done: {final.completed} completed, {final.failed} failed, {final.bytes_done} bytes")
        if prometheus is not None:
            for line in prometheus.exposition().decode().splitlines():
                if line.startswith("ripstream_downloads_total"):
                    print(line)
    return 0 if all(result.is_success for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
