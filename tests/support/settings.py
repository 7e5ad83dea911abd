"""Settings and configs for tests: the careful defaults, with retry waits of zero."""

from __future__ import annotations

from pathlib import Path

from ripstream.downloader import DownloadBehaviorSettings, DownloadConfig

__all__ = ["fast_settings", "make_config"]


def fast_settings(**changes: object) -> DownloadBehaviorSettings:
    """Careful defaults, but with retry waits of zero so tests never sleep between attempts."""
    values: dict[str, object] = {
        "retry_delay": 0.0,
        "max_retry_delay": 0.0,
        "retry_jitter": 0.0,
        "max_retry_after": 0.0,
        "stall_timeout": 5.0,
        "timeout_seconds": 5.0,
        "min_segment_size": 64 * 1024,
    }
    values.update(changes)
    return DownloadBehaviorSettings(**values)  # type: ignore[arg-type]


def make_config(directory: Path, *, jobs: int = 3, **changes: object) -> DownloadConfig:
    """A config writing to ``directory`` with :func:`fast_settings`."""
    return DownloadConfig(
        download_directory=directory,
        max_concurrent_downloads=jobs,
        default_settings=fast_settings(**changes),
    )
