"""A complete source for a real public API in under 100 lines of code: Deezer's previews.

Deezer's keyless API gives a 30 s MP3 preview of each track. A source turns URLs into tasks and
RipStream does the rest; plugins name it under the ``ripstream.sources`` entry point. Run::

    python examples/deezer_previews.py --output DIR https://www.deezer.com/album/302127
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ripstream.downloader import plugin as rs

URL = re.compile(r"https?://(?:www\.)?deezer\.com(?:/[a-z]{2})?/(track|album)/(\d+)/?([?#].*)?")
ERRORS = {4: rs.RateLimitError, 700: rs.ServerError, 800: rs.ContentNotFoundError}


class DeezerPreviews(rs.BaseDownloader):
    """The 30 s MP3 previews of a Deezer track or album, and the album's cover.jpg."""

    source_name = "deezer_previews"
    supported_content_types: ClassVar = [rs.ContentType.TRACK, rs.ContentType.COVER]
    default_template = "{albumartist}/{album} ({year})/{tracknumber:02d} {title}.{ext}"
    description = "Deezer's 30-second previews (MP3) and album covers; no account needed"
    url_patterns = ("https://www.deezer.com/[xx/]{track,album}/<id>",)

    def __init__(self, *args: Any, api_base: str = "https://api.deezer.com", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_base = api_base.rstrip("/")

    @classmethod
    def claims_url(cls, url: str) -> bool:
        return URL.fullmatch(url.strip()) is not None

    def authenticate(self, credentials: Mapping[str, Any]) -> bool:
        return True  # the catalogue and the previews are public

    def api(self, path: str) -> dict[str, Any]:
        """``GET {api_base}/<path>``; Deezer's errors come as HTTP 200 ``{"error": {...}}``."""
        url = f"{self.api_base}/{path}"
        data: dict[str, Any] = self.session.get_json(url)
        if error := data.get("error"):
            kind = ERRORS.get(error.get("code"), rs.HTTPStatusError)
            raise kind(f"Deezer {path}: {error['message']}", url=url, source=self.source_name)
        return data

    def get_download_info(self, content_id: str) -> rs.DownloadableContent:
        track = self.api(f"track/{content_id}")
        return self.preview(track, track["album"], track["artist"]["name"], 1)

    def preview(
        self, track: dict[str, Any], album: dict[str, Any], albumartist: str, position: int
    ) -> rs.DownloadableContent:
        """A track's preview; ``metadata`` feeds the naming template and the tags."""
        return rs.DownloadableContent(
            content_id=str(track["id"]),
            content_type=rs.ContentType.TRACK,
            source=self.source_name,
            title=track["title"],
            url=track["preview"],
            artist=track["artist"]["name"],
            album=album["title"],
            file_extension="mp3",
            metadata=rs.TrackMetadata(
                albumartist=albumartist,
                year=int(album["release_date"][:4]) or None,
                tracknumber=track.get("track_position", position),
                discnumber=track.get("disk_number", 1),
            ),
        )

    def tasks_for_url(self, url: str) -> list[rs.DownloadTask]:
        """A track URL gives one task; an album URL its cover, then each track with a preview."""
        if (match := URL.fullmatch(url.strip())) is None:
            raise rs.ConfigError(f"not a Deezer track or album URL: {url!r}", field="url")
        if match[1] == "track":
            return [rs.DownloadTask.from_content(self.get_download_info(match[2]))]
        album = self.api(f"album/{match[2]}")
        tracks = [
            self.preview(track, album, album["artist"]["name"], position)
            for position, track in enumerate(album["tracks"]["data"], 1)
            if track["preview"]
        ]
        if not tracks or not album.get("cover_xl"):
            return [rs.DownloadTask.from_content(track) for track in tracks]
        folder = rs.render_template(self.naming_template, self.naming_values(tracks[0])).parent
        cover = rs.DownloadableContent(
            content_id=f"{album['id']}/cover",
            url=album["cover_xl"],
            content_type=rs.ContentType.COVER,
            source=self.source_name,
            title=f"{album['title']} (cover)",
            file_extension="jpg",
        )
        first = rs.DownloadTask.from_content(cover, file_path=f"{folder}/cover.jpg", priority=10)
        # "after", not "dependencies": tags embed the cover, yet a failed cover costs no track
        return [first, *(rs.DownloadTask.from_content(t, after=[first.task_id]) for t in tracks)]


if __name__ == "__main__":
    from ripstream.downloader import DownloadConfig, DownloadManager, DownloadQueue

    parser = argparse.ArgumentParser(description="Download Deezer's 30-second previews.")
    parser.add_argument("urls", nargs="+", metavar="URL", help="deezer.com track or album URLs")
    parser.add_argument("--output", default="deezer-previews", help="the output folder")
    args = parser.parse_args()
    config = DownloadConfig(download_directory=args.output)
    with DeezerPreviews(config) as source, DownloadManager(config, downloaders=[source]) as manager:
        queue = DownloadQueue()  # an unknown id raises ContentNotFoundError while adding
        queue.add_tasks(task for url in args.urls for task in source.tasks_for_url(url))
        results = manager.run(queue, on_result=lambda _, r: print(r.status.value, r.file_path))
    raise SystemExit(0 if all(result.is_success for result in results) else 1)
