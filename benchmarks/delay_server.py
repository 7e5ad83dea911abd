#!/usr/bin/env python3
"""A tiny HTTP/1.1 file server that answers every request after a fixed delay.

Used by the *latency* scenario of benchmarks/bench.py (started and stopped by
benchmarks/run.sh, like nginx): nginx-light has no per-request delay, so this
server stands in for a far-away host. It serves the files under ROOT (the
bench work dir's ``www``) at the same paths as nginx (``/files/...``):

* asyncio, one coroutine per connection: a request waits ``--delay-ms``
  (default 50) with ``asyncio.sleep`` and never blocks the others;
* keep-alive (HTTP/1.1 default; ``Connection: close`` is honoured),
  ``Content-Length``, ``Accept-Ranges: bytes``, one ``Range: bytes=a-b`` (206),
  ``HEAD``, and ``Content-Disposition`` like benchmarks/nginx.conf;
* file bodies are cached in memory (files up to 4 MiB), so a response is one
  ``write`` of a bytes object;
* ``/healthz`` answers at once (no delay);
* listens on 127.0.0.1 only, and exits by itself when its parent process goes
  away (so a killed run.sh cannot leave it behind), or after ``--max-seconds``.

    python benchmarks/delay_server.py --root /tmp/ripstream-bench/www --port 18081
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from email.utils import formatdate
from pathlib import Path
from urllib.parse import unquote, urlsplit

CACHE_LIMIT = 4 << 20  # bodies of files up to this size are kept in memory


class Server:
    def __init__(self, root: Path, delay: float) -> None:
        self.root = root.resolve()
        self.delay = delay
        self.cache: dict[str, bytes | None] = {}

    def body(self, path: str) -> bytes | None:
        """The bytes of ROOT/path, or None if it is not a regular file under ROOT."""
        if path in self.cache:
            return self.cache[path]
        target = (self.root / path.lstrip("/")).resolve()
        data: bytes | None = None
        if target.is_relative_to(self.root) and target.is_file():
            data = target.read_bytes()
            if len(data) > CACHE_LIMIT:
                return data
        self.cache[path] = data
        return data

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers = {}
                for line in lines[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                conn = headers.get("connection", "").lower()
                keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
                path = unquote(urlsplit(target).path)
                if path != "/healthz":
                    await asyncio.sleep(self.delay)
                writer.write(self.respond(method, path, headers, keep))
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    def respond(self, method: str, path: str, headers: dict[str, str], keep: bool) -> bytes:
        extra = [f"Date: {formatdate(usegmt=True)}", "Server: ripstream-bench-delay"]
        extra.append("Connection: keep-alive" if keep else "Connection: close")
        if path == "/healthz":
            return self.message(200, "OK", b"ok\n", extra, method, "text/plain")
        if method not in ("GET", "HEAD"):
            return self.message(405, "Method Not Allowed", b"", extra, method)
        data = self.body(path)
        if data is None:
            return self.message(404, "Not Found", b"not found\n", extra, method, "text/plain")
        name = path.rsplit("/", 1)[-1]
        extra += ["Accept-Ranges: bytes", f'Content-Disposition: attachment; filename="{name}"']
        rng = headers.get("range", "")
        if rng.startswith("bytes=") and "," not in rng:
            first, _, last = rng[6:].partition("-")
            size = len(data)
            try:
                if first:
                    a, b = int(first), (int(last) if last else size - 1)
                else:  # suffix range: the last N bytes
                    a, b = max(0, size - int(last)), size - 1
            except ValueError:
                a, b = 0, -1
            b = min(b, size - 1)
            if a > b or a >= size:
                extra.append(f"Content-Range: bytes */{size}")
                return self.message(416, "Range Not Satisfiable", b"", extra, method)
            extra.append(f"Content-Range: bytes {a}-{b}/{size}")
            return self.message(206, "Partial Content", data[a : b + 1], extra, method)
        return self.message(200, "OK", data, extra, method)

    @staticmethod
    def message(
        status: int,
        reason: str,
        body: bytes,
        extra: list[str],
        method: str,
        ctype: str = "application/octet-stream",
    ) -> bytes:
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Type: {ctype}"]
        head += [f"Content-Length: {len(body)}", *extra]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        return raw if method == "HEAD" else raw + body


async def watch_parent(parent: int, max_seconds: float, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds if max_seconds > 0 else None
    while not stop.is_set():
        if os.getppid() != parent:
            print("[delay_server] parent went away; exiting", file=sys.stderr)
            stop.set()
        elif deadline is not None and loop.time() > deadline:
            print(f"[delay_server] --max-seconds {max_seconds:g} reached", file=sys.stderr)
            stop.set()
        await asyncio.sleep(0.5)


async def main_async(args: argparse.Namespace) -> None:
    server = Server(Path(args.root), args.delay_ms / 1000)
    srv = await asyncio.start_server(
        server.handle, "127.0.0.1", args.port, backlog=4096, limit=1 << 16, reuse_address=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(watch_parent(os.getppid(), args.max_seconds, stop))
    print(
        f"[delay_server] http://127.0.0.1:{args.port}/ serving {server.root},"
        f" {args.delay_ms:g} ms per request",
        file=sys.stderr,
        flush=True,
    )
    async with srv:
        await stop.wait()
    watcher.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="directory served (WORK/www)")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--delay-ms", type=float, default=50.0)
    parser.add_argument(
        "--max-seconds", type=float, default=0, help="exit after this long (0: never)"
    )
    args = parser.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
