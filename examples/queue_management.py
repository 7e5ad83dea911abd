"""Queue management: priorities, dependencies, and two ways to drain a DownloadQueue.

The seed's queue example, translated to sync, then the same queue drained by a
DownloadManager (a thread pool of ``max_concurrent_downloads``).

* Higher ``priority`` starts first; equal priorities start in the order added.
* A task starts only once every task in its ``dependencies`` has completed; when one of
  them fails, the task is cancelled and never runs.

Run::

    python examples/queue_management.py [--base-url URL] [--output DIR]
"""

from __future__ import annotations

from _local_server import describe, output_directory, parse_args, service
from basic_downloader import MyStreamingServiceDownloader

from ripstream.downloader import (
    BaseDownloader,
    ContentType,
    DownloadConfig,
    DownloadManager,
    DownloadQueue,
    DownloadTask,
    TaskState,
)


def build_queue(base_url: str) -> DownloadQueue:
    queue = DownloadQueue(max_size=1000)

    # Add tasks. A relative file_path lands under the config's download_directory.
    task = DownloadTask(
        content_id="track_123",
        content_type=ContentType.TRACK,
        source="my_service",
        title="My Song",
        url=f"{base_url}/album/01%20Overture.wav",
        file_path="my_song.wav",
    )
    queue.add_task(task)

    second = queue.add_task(
        DownloadTask(
            content_id="track_456",
            content_type=ContentType.TRACK,
            source="my_service",
            title="Loopback Blues",
            url=f"{base_url}/album/02%20Loopback%20Blues.wav",
            file_path="02 Loopback Blues.wav",
        )
    )
    # The cover is small and shown first in a player: jump the queue.
    queue.add_task(
        DownloadTask(
            content_id="cover",
            content_type=ContentType.COVER,
            source="my_service",
            title="Cover",
            url=f"{base_url}/album/cover.png",
            file_path="cover.png",
            priority=10,
        )
    )
    # The playlist names the tracks, so it waits for them, whatever its priority.
    queue.add_task(
        DownloadTask(
            content_id="playlist",
            content_type=ContentType.PLAYLIST,
            source="my_service",
            title="Playlist",
            url=f"{base_url}/album/Demo%20Album.m3u",
            file_path="Demo Album.m3u",
            priority=5,
            dependencies=[task.task_id, second.task_id],
        )
    )
    # A bonus track the server does not have (404), and a booklet that depends on it: the
    # booklet is cancelled when the bonus track fails, and never downloaded.
    bonus = queue.add_task(
        DownloadTask(
            content_id="bonus",
            content_type=ContentType.TRACK,
            source="my_service",
            title="Bonus Track",
            url=f"{base_url}/album/99%20Bonus%20Track.wav",
            file_path="99 Bonus Track.wav",
        )
    )
    queue.add_task(
        DownloadTask(
            content_id="booklet",
            content_type=ContentType.FILE,
            source="my_service",
            title="Bonus Booklet",
            url=f"{base_url}/album/booklet.pdf",
            file_path="booklet.pdf",
            dependencies=[bonus.task_id],
        )
    )
    return queue


def print_states(queue: DownloadQueue) -> None:
    for task in queue.tasks():
        reason = f" ({task.error})" if task.state is not TaskState.COMPLETED else ""
        print(f"  {task.state.value:<9} {task.title}{reason}")
    counts = {state.value: n for state, n in queue.counts().items() if n}
    print(f"  counts: {counts}")


def drain_by_hand(queue: DownloadQueue, downloader: BaseDownloader) -> None:
    # Process tasks: the seed's loop, one at a time on this thread.
    while not queue.is_empty:
        task = queue.get_next_task()
        if task:
            print(f"  start {task.title} (priority {task.priority})")
            result = downloader.download(task.to_content(), task.file_path)
            if result.is_success:
                queue.complete_task(task.task_id)
            else:
                for cancelled_id in queue.fail_task(task.task_id, result.error_message):
                    print(f"  cancelled {queue.get_task(cancelled_id).title}")


def drain_with_manager(queue: DownloadQueue, config: DownloadConfig, base_url: str) -> None:
    # The manager runs up to max_concurrent_downloads tasks at once, each on the downloader
    # registered for its task.source, and does the complete/fail bookkeeping itself.
    downloader = MyStreamingServiceDownloader(config, api_base=base_url)
    with DownloadManager(config, downloaders=[downloader]) as manager:
        manager.run(queue, on_result=lambda task, result: print(f"  {describe(result)}"))


def main() -> int:
    args = parse_args(__doc__)
    with service(args.base_url) as base_url, output_directory(args.output) as output:
        queue = build_queue(base_url)
        saved = queue.to_json()  # a queue saves to JSON, e.g. to finish a batch later

        print(f"1. the seed's loop, one task at a time, into {output / 'loop'}")
        config = DownloadConfig(download_directory=output / "loop")
        with MyStreamingServiceDownloader(config, api_base=base_url) as downloader:
            drain_by_hand(queue, downloader)
        print_states(queue)

        print(f"2. the same queue (from JSON) through a DownloadManager, into {output / 'manager'}")
        queue = DownloadQueue.from_json(saved)
        config = DownloadConfig(download_directory=output / "manager", max_concurrent_downloads=3)
        drain_with_manager(queue, config, base_url)
        print_states(queue)

    counts = {state.value: n for state, n in queue.counts().items() if n}
    return 0 if counts == {"completed": 4, "failed": 1, "cancelled": 1} else 1


if __name__ == "__main__":
    raise SystemExit(main())
