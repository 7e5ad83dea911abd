"""Basic downloader implementation: a source for the fictional streaming service "my_service".

The seed's first example, translated to sync. A source implements four things:
``source_name``, ``supported_content_types``, ``authenticate`` and ``get_download_info``.
Everything else (target path, ``.part`` file, streaming, retries, resume, checksum, atomic
rename, progress) is :meth:`BaseDownloader.download`'s job.

Run::

    python examples/basic_downloader.py [--base-url URL] [--output DIR]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from _local_server import describe, output_directory, parse_args, service, sha256_of

from ripstream.downloader import (
    BaseDownloader,
    ContentType,
    DownloadableContent,
    DownloadConfig,
    ProgressReporter,
    ProgressTracker,
    SessionManager,
    TrackMetadata,
)
from ripstream.downloader.exceptions import AuthenticationError, ResponseMismatchError


class MyStreamingServiceDownloader(BaseDownloader):
    """Downloads tracks of "my_service", whose API describes a track as JSON.

    :param api_base: the service's base URL (in these examples: the local stand-in server).
    """

    source_name = "my_service"
    supported_content_types: ClassVar[list[ContentType]] = [ContentType.TRACK]

    def __init__(
        self,
        config: DownloadConfig | None = None,
        session_manager: SessionManager | None = None,
        progress_tracker: ProgressTracker | None = None,
        *,
        api_base: str = "https://api.my-service.example",
    ) -> None:
        super().__init__(config, session_manager, progress_tracker)
        self.api_base = api_base.rstrip("/")

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        api_key = credentials.get("api_key")
        if not api_key:
            raise AuthenticationError("my_service needs an api_key", source=self.source_name)
        # A real service would exchange the key for a token here. Every request this source
        # makes from now on (metadata and audio) carries the key.
        self.session.http.headers["X-Api-Key"] = str(api_key)
        return True

    def get_download_info(self, content_id: str) -> DownloadableContent:
        # One API call turns "track_123" into a URL plus what makes the download safe: the
        # size and checksum are verified by download(), the tags feed the naming template.
        info = self.session.get_json(f"{self.api_base}/api/tracks/{quote(content_id)}.json")
        return DownloadableContent(
            content_id=content_id,
            content_type=ContentType.TRACK,
            source=self.source_name,
            title=info["title"],
            url=self.api_base + info["stream_path"],
            artist=info["artist"],
            album=info["album"],
            file_extension=info["format"],
            size=info["size"],
            checksum=f"sha256:{info['sha256']}",
            metadata=TrackMetadata(tracknumber=info["track_number"]),
        )

    # There is no _download_content here, on purpose: the base class streams content.url
    # through this source's session with retries, resume (.part file + HTTP Range),
    # throttling, checksum verification and progress. Override it only when the bytes need
    # more than one plain stream: encrypted audio to decrypt while writing, an HLS/DASH
    # playlist whose segments must be fetched and joined, a file assembled from parts.
    # The class below shows the shape of such an override.


class SegmentedServiceDownloader(MyStreamingServiceDownloader):
    """The same service, as if each track came in two halves that must be joined.

    The override fills ``file_path`` (the ``.part`` file), reports bytes through
    ``progress_callback`` and returns ``None``; ``download()`` still retries it, checks the
    size and checksum, and moves the file into place.
    """

    source_name = "my_service_segmented"

    def _download_content(
        self, content: DownloadableContent, file_path: Path, progress_callback: ProgressReporter
    ) -> None:
        assert content.size is not None  # our get_download_info always knows it
        middle = content.size // 2
        progress_callback.set_total(content.size)  # also restarts the count on a retry
        with open(file_path, "wb") as out:
            for first, last in ((0, middle - 1), (middle, content.size - 1)):
                response = self.session.get(content.url, headers={"Range": f"bytes={first}-{last}"})
                if response.status_code != 206:
                    raise ResponseMismatchError(
                        f"asked for bytes {first}-{last}, got HTTP {response.status_code}",
                        url=content.url,
                        source=self.source_name,
                    )
                out.write(response.content)
                progress_callback(len(response.content))


def main() -> int:
    args = parse_args(__doc__)
    with service(args.base_url) as base_url, output_directory(args.output) as output:
        config = DownloadConfig(
            download_directory=output,
            filename_template="{artist}/{album}/{tracknumber:02d} {title}.{ext}",
        )
        with MyStreamingServiceDownloader(config, api_base=base_url) as downloader:
            downloader.authenticate({"api_key": "demo-key"})
            content = downloader.get_download_info("track_123")
            print(f"resolved {content.content_id} -> {content.url}")
            result = downloader.download(content)
            print(f"[{downloader.source_name}] {describe(result)}")

        with SegmentedServiceDownloader(config, api_base=base_url) as segmented:
            segmented.authenticate({"api_key": "demo-key"})
            content = segmented.get_download_info("track_123")
            joined = segmented.download(content, output / "segmented" / "01 Overture.wav")
            print(f"[{segmented.source_name}] {describe(joined)}")

        if not (result.is_success and joined.is_success):
            return 1
        # the same bytes either way: hash both files as they are on disk
        digests = {sha256_of(r.file_path) for r in (result, joined) if r.file_path}
        print(f"sha256 of both files: {', '.join(digests)}")
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
