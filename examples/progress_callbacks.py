"""Progress tracking: plain functions and callable objects as progress callbacks.

The seed's ``on_progress`` example, run for real. A callback is anything called as
``callback(download_id, progress)`` (the ``ProgressCallback`` protocol); a tracker calls
every callback it has, on the downloading thread, at most every ``min_interval`` seconds
per download and always on start and finish. Downloads here are throttled to 32 KiB/s
each (read in 8 KiB chunks), so there is progress to watch even on 127.0.0.1.

Run::

    python examples/progress_callbacks.py [--base-url URL] [--output DIR]
"""

from __future__ import annotations

import threading

from _local_server import TRACK_IDS, describe, output_directory, parse_args, service
from basic_downloader import MyStreamingServiceDownloader

from ripstream.downloader import (
    DownloadBehaviorSettings,
    DownloadConfig,
    DownloadProgress,
    ProgressTracker,
)

print_lock = threading.Lock()


def on_progress(download_id: str, progress: DownloadProgress) -> None:
    # Callbacks run on the download threads, several at once: the lock keeps lines whole.
    with print_lock:
        print(
            f"Download {download_id}: {progress.percentage:.1f}% - {progress.get_formatted_speed()}"
        )


class FinishedCounter:
    """A callback with state: counts finished downloads. Callbacks run on many threads at
    once (one per running download), so shared state needs a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.finished: list[str] = []

    def __call__(self, download_id: str, progress: DownloadProgress) -> None:
        if progress.is_finished:
            with self._lock:
                self.finished.append(f"{progress.title} ({progress.state.value})")


def main() -> int:
    args = parse_args(__doc__)
    with service(args.base_url) as base_url, output_directory(args.output) as output:
        config = DownloadConfig(
            download_directory=output,
            max_concurrent_downloads=3,
            default_settings=DownloadBehaviorSettings(rate_limit=32 * 1024, chunk_size=8 * 1024),
        )
        progress_tracker = ProgressTracker(min_interval=0.1)
        progress_tracker.add_callback(on_progress)
        counter = FinishedCounter()
        progress_tracker.add_callback(counter)

        with MyStreamingServiceDownloader(
            config, progress_tracker=progress_tracker, api_base=base_url
        ) as downloader:
            contents = [downloader.get_download_info(track_id) for track_id in TRACK_IDS]
            results = downloader.download_many(contents)

        print(f"finished: {', '.join(sorted(counter.finished))}")
        for result in results:
            print(describe(result))
    return 0 if all(result.is_success for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
