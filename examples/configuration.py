"""Configuration: defaults, per-source overrides, validation, and a JSON file round trip.

The seed's "Download Settings" and "Source-Specific Settings" examples, then the config is
saved to JSON, loaded back, and used for a real download.

Run::

    python examples/configuration.py [--base-url URL] [--output DIR]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from _local_server import describe, output_directory, parse_args, service
from basic_downloader import MyStreamingServiceDownloader

from ripstream.downloader import (
    DownloadBehaviorSettings,
    DownloadConfig,
    DownloaderConfig,
    DownloadSettings,
    RetryStrategy,
)
from ripstream.downloader.exceptions import ConfigError


def build_config(download_directory: Path) -> DownloadConfig:
    # Download settings. The seed's names for these classes work too:
    assert DownloaderConfig is DownloadConfig
    assert DownloadSettings is DownloadBehaviorSettings
    config = DownloadConfig(
        download_directory=download_directory,
        max_concurrent_downloads=3,
        default_settings=DownloadBehaviorSettings(
            timeout_seconds=30.0,
            max_retries=3,
            retry_strategy=RetryStrategy.EXPONENTIAL,
            retry_delay=1.0,
            verify_checksums=True,
        ),
    )

    # Add source-specific configuration
    config.add_source_setting("spotify", "max_retries", 5)
    config.add_source_setting("deezer", "timeout_seconds", 60.0)
    # ...and for the source this example downloads from: at most 5 requests per second
    config.add_source_setting("my_service", "requests_per_period", 5)
    return config


def show_settings(config: DownloadConfig) -> None:
    # Get settings for a specific source: the defaults with that source's overrides applied
    for source in ("spotify", "deezer", "my_service", "any_other_source"):
        settings = config.get_behavior_for_source(source)
        print(
            f"  {source:<16} max_retries={settings.max_retries} "
            f"timeout_seconds={settings.timeout_seconds} "
            f"requests_per_period={settings.requests_per_period}"
        )


def show_validation(config: DownloadConfig) -> None:
    # Bad values fail at once, with the field and the value in the error.
    attempts: list[Callable[[], object]] = [
        lambda: DownloadBehaviorSettings(timeout_seconds=-1),
        lambda: DownloadBehaviorSettings(retry_strategy="sometimes"),  # type: ignore[arg-type]
        lambda: config.add_source_setting("deezer", "timeout", 60.0),
        lambda: DownloadConfig(max_concurrent_downloads=0),
    ]
    for attempt in attempts:
        try:
            attempt()
        except ConfigError as error:
            print(f"  ConfigError field={error.field!r} value={error.value!r}: {error}")


def main() -> int:
    args = parse_args(__doc__)
    with service(args.base_url) as base_url, output_directory(args.output) as output:
        config = build_config(output / "downloads")
        print("settings per source:")
        show_settings(config)
        print("validation:")
        show_validation(config)

        path = output / "ripstream.json"
        config.save(path)
        loaded = DownloadConfig.load(path)
        print(f"saved to {path} and loaded back: {'equal' if loaded == config else 'DIFFERENT'}")

        with MyStreamingServiceDownloader(loaded, api_base=base_url) as downloader:
            print(f"my_service uses: {downloader.settings.requests_per_period} requests/s")
            result = downloader.download(downloader.get_download_info("track_123"))
            print(describe(result))
    return 0 if loaded == config and result.is_success else 1


if __name__ == "__main__":
    raise SystemExit(main())
