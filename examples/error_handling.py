"""Error handling: the seed's try/except, with every branch provoked by a real local server.

``download(content, raise_on_error=True)`` raises the typed error instead of returning a
failed result. Which errors reach your ``except`` depends on retries:

* permanent errors (401/403, 404, other 4xx) are raised at once;
* transient ones (connection drops, 5xx, 429) are retried first, honouring ``Retry-After``;
  when every attempt fails you get ``RetryExhaustedError``, whose ``last_error`` is the
  final attempt's typed error (e.g. the ``RateLimitError`` of a 429 that never ended);
* API calls of a source (``get_download_info``) are not retried by the framework, so a 429
  there surfaces directly as ``RateLimitError`` with ``retry_after``.

Besides the regular stand-in (or ``--base-url``), this example always starts a second,
misbehaving server of its own: it answers 401, 429 and 404 and 503 for particular tracks.

Run::

    python examples/error_handling.py [--base-url URL] [--output DIR]
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from _local_server import album_files, output_directory, parse_args, service
from basic_downloader import MyStreamingServiceDownloader

from ripstream.downloader import (
    BaseDownloader,
    DownloadBehaviorSettings,
    DownloadConfig,
    RetryStrategy,
)
from ripstream.downloader.exceptions import (
    AuthenticationError,
    NetworkError,
    RateLimitError,
    RetryExhaustedError,
)

BUSY_TRACK = album_files()[1]  # the bytes the "busy" track serves once the 429 is over


class TroubledService(BaseHTTPRequestHandler):
    """The service on a bad day. Its API describes tracks as the regular stand-in does."""

    protocol_version = "HTTP/1.1"
    busy_requests = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        if self.path == "/api/tracks/popular.json":
            self.reply(429, headers={"Retry-After": "30"})  # the API itself is rate limited
        elif self.path.startswith("/api/tracks/"):
            track_id = self.path.removeprefix("/api/tracks/").removesuffix(".json")
            self.reply(200, json.dumps(self.metadata(track_id)).encode())
        elif self.path == "/files/locked.wav":
            self.reply(401)  # not in your subscription
        elif self.path == "/files/flaky.wav":
            self.reply(503)  # always down: every retry fails too
        elif self.path == "/files/busy.wav":
            with self.lock:
                TroubledService.busy_requests += 1
                first = TroubledService.busy_requests == 1
            if first:
                self.reply(429, headers={"Retry-After": "1"})  # "come back in a second"
            else:
                self.reply(200, BUSY_TRACK.data)
        else:
            self.reply(404)  # e.g. /files/gone.wav

    def metadata(self, track_id: str) -> dict[str, object]:
        return {
            "title": track_id.title(),
            "artist": "The Loopbacks",
            "album": "Bad Day",
            "track_number": 1,
            "stream_path": f"/files/{track_id}.wav",
            "format": "wav",
            "size": len(BUSY_TRACK.data),  # every track would be this file, if it came
            "sha256": BUSY_TRACK.sha256,
        }

    def reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return  # keep the example's output readable


@contextmanager
def troubled_service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TroubledService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def fetch(downloader: BaseDownloader, content_id: str) -> str:
    """The seed's try/except around one track; returns the name of the branch taken."""
    print(f"{content_id}:")
    try:
        content = downloader.get_download_info(content_id)
        result = downloader.download(content, raise_on_error=True)
        print(f"  Downloaded: {result.file_path} after {result.attempts} attempt(s)")
        return "downloaded"
    except AuthenticationError:
        print("  Authentication failed - check credentials")
        return "AuthenticationError"
    except RateLimitError as e:
        print(f"  Rate limited - retry after {e.retry_after} seconds")
        return "RateLimitError"
    except NetworkError as e:
        print(f"  Network error: {e.status_code} ({type(e).__name__}: {e})")
        return "NetworkError"
    except RetryExhaustedError as e:
        print(f"  Download failed after {e.retry_count} retries; last error: {e.last_error!r}")
        return "RetryExhaustedError"


def main() -> int:
    args = parse_args(__doc__)
    expected = {
        "track_123": "downloaded",
        "locked": "AuthenticationError",  # 401 on the audio file
        "popular": "RateLimitError",  # 429 with Retry-After: 30 on the API call
        "gone": "NetworkError",  # 404 on the audio file (ContentNotFoundError)
        "flaky": "RetryExhaustedError",  # 503 on every attempt
        "busy": "downloaded",  # 429 with Retry-After: 1 once, then the file
    }
    outcomes = {}
    with service(args.base_url) as base_url, output_directory(args.output) as output:
        # Two retries, 0.2 s apart, so the failing cases fail fast.
        settings = DownloadBehaviorSettings(
            max_retries=2, retry_strategy=RetryStrategy.FIXED, retry_delay=0.2
        )
        config = DownloadConfig(download_directory=output, default_settings=settings)

        with MyStreamingServiceDownloader(config, api_base=base_url) as downloader:
            outcomes["track_123"] = fetch(downloader, "track_123")

        with (
            troubled_service() as trouble_url,
            MyStreamingServiceDownloader(config, api_base=trouble_url) as downloader,
        ):
            for content_id in ("locked", "popular", "gone", "flaky", "busy"):
                outcomes[content_id] = fetch(downloader, content_id)

    ok = outcomes == expected
    print("every branch was taken as expected" if ok else f"UNEXPECTED: {outcomes}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
