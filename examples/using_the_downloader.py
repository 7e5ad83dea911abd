"""Using the downloader: set up, authenticate, resolve a track, download it, check the result.

The seed's "Using the Downloader", translated to sync: no event loop, no ``await``; every
call blocks until it is done. The source is ``MyStreamingServiceDownloader`` from
``basic_downloader.py`` beside this file.

Run::

    python examples/using_the_downloader.py [--base-url URL] [--output DIR]
"""

from __future__ import annotations

from pathlib import Path

from _local_server import output_directory, parse_args, service
from basic_downloader import MyStreamingServiceDownloader

from ripstream.downloader import DownloadConfig, ProgressTracker, SessionManager


def download_example(api_base: str, download_directory: Path) -> bool:
    # Setup. The session manager holds one pooled HTTP session per source; whoever creates
    # it closes it (here: the with-block). A downloader closes only sessions it created.
    config = DownloadConfig(download_directory=download_directory)
    with SessionManager(config) as session_manager:
        progress_tracker = ProgressTracker()

        # Create downloader
        downloader = MyStreamingServiceDownloader(
            config, session_manager, progress_tracker, api_base=api_base
        )

        # Authenticate
        downloader.authenticate({"api_key": "your_key"})

        # Get content info
        content = downloader.get_download_info("track_123")
        print(f"Resolved: {content.artist} - {content.title} ({content.size} bytes)")

        # Download
        result = downloader.download(content)

    if result.is_success:
        print(f"Downloaded: {result.file_path}")
        print(
            f"  {result.bytes_downloaded} bytes in {result.elapsed:.2f}s, "
            f"{result.attempts} attempt(s), checksum {result.checksum}"
        )
    else:
        print(f"Failed: {result.error_message}")
    return result.is_success


def main() -> int:
    args = parse_args(__doc__)
    with service(args.base_url) as base_url, output_directory(args.output) as output:
        ok = download_example(base_url, output)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
