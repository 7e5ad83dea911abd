"""The TCP server: accept loop, one thread per connection, recorded requests, statistics."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from .bodies import AUTO, FIXED_LAST_MODIFIED, Auto
from .connection import Connection, Stopped
from .faults import Fault
from .protocol import BadRequest, RecordedRequest, Request, parse_head, split_target
from .resources import Resource
from .responses import Responder

__all__ = ["JOIN_TIMEOUT", "TestServer"]

JOIN_TIMEOUT: Final = 5.0
"""How long :meth:`TestServer.stop` waits for its threads, in all."""


class _TCPServer(socketserver.ThreadingTCPServer):
    """Accept loop only: every connection is handed to :meth:`TestServer._run`."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, owner: TestServer, address: tuple[str, int]) -> None:
        self.owner = owner
        super().__init__(address, socketserver.BaseRequestHandler)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        sock = request if isinstance(request, socket.socket) else request[1]
        self.owner._spawn(sock, client_address)

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: object
    ) -> None:
        self.owner._record_error(traceback.format_exc())


class TestServer:
    """Threaded HTTP/1.1 server on ``host`` (default 127.0.0.1), port chosen by the OS.

    Binds in the constructor; :meth:`start` begins serving; :meth:`stop` (or
    leaving the ``with`` block) closes the listening socket and every client
    connection, interrupts stalls and delays, and joins the threads.
    """

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._resources: dict[str, Resource] = {}
        self._requests: list[RecordedRequest] = []
        self._bytes: dict[str, int] = {}
        self._connections_opened = 0
        self._next_conn_id = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._errors: list[str] = []
        self._serve_thread: threading.Thread | None = None
        self._closed = False
        self._responder = Responder(self._lookup, self._wait)
        self._tcp = _TCPServer(self, (host, port))
        bound = self._tcp.server_address
        self.host: str = str(bound[0])
        self.port: int = int(bound[1])

    # ------------------------------------------------------------- lifecycle
    def start(self) -> TestServer:
        if self._closed:
            raise RuntimeError("TestServer cannot be restarted after stop()")
        if self._serve_thread is None:
            self._serve_thread = threading.Thread(
                target=self._tcp.serve_forever,
                kwargs={"poll_interval": 0.01},
                name=f"testserver-{self.port}",
                daemon=True,
            )
            self._serve_thread.start()
        return self

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        deadline = time.monotonic() + JOIN_TIMEOUT
        if self._serve_thread is not None:
            self._tcp.shutdown()
            self._serve_thread.join(max(0.0, deadline - time.monotonic()))
        self._tcp.server_close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
            self._cond.notify_all()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------ addresses
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    # ------------------------------------------------------------ resources
    def add(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "application/octet-stream",
        etag: str | Auto | None = AUTO,
        last_modified: str | None = FIXED_LAST_MODIFIED,
        accept_ranges: bool = True,
        headers: Mapping[str, str] | None = None,
        faults: Iterable[Fault] | None = None,
        rate_limit_bps: float | None = None,
    ) -> Resource:
        """Serve ``body`` at ``path`` (replacing any earlier resource there).

        ``etag=AUTO`` gives :func:`default_etag`; ``None`` omits the header (same
        for ``last_modified``).  ``headers`` are added verbatim to 200/206
        responses.  ``rate_limit_bps`` paces bodies to that many bytes/second.
        """
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        resource = Resource(
            self._lock,
            path,
            body,
            content_type=content_type,
            etag=etag,
            last_modified=last_modified,
            accept_ranges=accept_ranges,
            headers=headers or {},
            faults=faults or (),
            rate_limit_bps=rate_limit_bps,
        )
        with self._lock:
            self._resources[path] = resource
        return resource

    def remove(self, path: str) -> None:
        with self._lock:
            self._resources.pop(path, None)

    def resource(self, path: str) -> Resource:
        with self._lock:
            return self._resources[path]

    def add_redirect(self, path: str, location: str, status: int = 302) -> Resource:
        """A path that always redirects to ``location`` (used verbatim)."""
        return self.add(path, b"", faults=[Fault.redirect(location, status)])

    def add_redirect_chain(
        self, path: str, target: str, hops: int, *, status: int = 302, absolute: bool = True
    ) -> list[str]:
        """``hops`` redirects: path -> path~hop1 -> ... -> target.  Returns the redirecting paths.

        Locations are absolute URLs on this server unless ``absolute=False``.
        ``target`` may be a path on this server or a full URL.
        """
        if hops < 1:
            raise ValueError("hops must be >= 1")
        paths = [path] + [f"{path}~hop{i}" for i in range(1, hops)]
        for i, here in enumerate(paths):
            nxt = paths[i + 1] if i + 1 < hops else target
            location = self.url(nxt) if absolute and nxt.startswith("/") else nxt
            self.add_redirect(here, location, status)
        return paths

    def add_redirect_loop(
        self, path: str, length: int = 2, *, status: int = 302, absolute: bool = True
    ) -> list[str]:
        """A cycle of ``length`` redirects starting and ending at ``path`` (1 = self-loop)."""
        if length < 1:
            raise ValueError("length must be >= 1")
        paths = [path] + [f"{path}~loop{i}" for i in range(1, length)]
        for i, here in enumerate(paths):
            nxt = paths[(i + 1) % length]
            self.add_redirect(here, self.url(nxt) if absolute else nxt, status)
        return paths

    # ----------------------------------------------------------- statistics
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.path == path]

    def bytes_sent(self, path: str) -> int:
        with self._lock:
            return self._bytes.get(path, 0)

    @property
    def connections_opened(self) -> int:
        with self._lock:
            return self._connections_opened

    @property
    def open_connections(self) -> int:
        """Client connections currently open on the server side."""
        with self._lock:
            return len(self._open)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_concurrent_requests(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def errors(self) -> list[str]:
        """Tracebacks of unexpected exceptions inside the server (should stay empty)."""
        with self._lock:
            return list(self._errors)

    def reset_stats(self) -> None:
        """Forget requests, byte counts, connection and concurrency counts (not faults)."""
        with self._lock:
            self._requests.clear()
            self._bytes.clear()
            self._connections_opened = 0
            self._max_in_flight = self._in_flight

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block until ``predicate()`` (re-checked on every server event) is true."""
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise TimeoutError("condition not reached in time")

    def wait_for_requests(
        self, count: int, path: str | None = None, timeout: float = 5.0
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` requests (for ``path``, if given) arrived."""

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        self.wait_until(lambda: len(matching()) >= count, timeout)
        with self._lock:
            return matching()

    # ------------------------------------------------------------ internals
    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _record_error(self, text: str) -> None:
        with self._lock:
            self._errors.append(text)

    def _count_bytes(self, path: str, n: int) -> None:
        with self._lock:
            self._bytes[path] = self._bytes.get(path, 0) + n
        self._notify()  # so wait_until(bytes_sent(...) >= n) wakes mid-body

    def _lookup(self, path: str) -> Resource | None:
        with self._lock:
            return self._resources.get(path)

    def _wait(self, seconds: float) -> None:
        """Sleep that ends early (raising Stopped) when the server stops."""
        if seconds > 0 and self._stopping.wait(seconds):
            raise Stopped

    def _spawn(self, sock: socket.socket, client_address: object) -> None:
        with self._lock:
            self._next_conn_id += 1
            conn_id = self._next_conn_id
            self._connections_opened += 1
            self._open.add(sock)
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(
                target=self._run,
                args=(sock, conn_id, client_address),
                name=f"testserver-{self.port}-conn{conn_id}",
                daemon=True,
            )
            self._threads.append(thread)
            self._cond.notify_all()
        thread.start()

    def _close_socket(self, sock: socket.socket, *, reset: bool = False) -> None:
        with self._lock:
            self._open.discard(sock)
            self._cond.notify_all()
        with contextlib.suppress(OSError):
            if reset:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                sock.shutdown(socket.SHUT_WR)
        sock.close()

    def _run(self, sock: socket.socket, conn_id: int, client_address: object) -> None:
        conn = Connection(self, sock, conn_id)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._serve_connection(conn, client_address)
        except (OSError, Stopped):
            pass
        except Exception:  # noqa: BLE001 - a server bug must not kill the thread silently
            self._record_error(traceback.format_exc())
        finally:
            conn.close()

    def _serve_connection(self, conn: Connection, client_address: object) -> None:
        while not self._stopping.is_set():
            try:
                head = conn.read_head()
                if head is None:
                    return
                method, target, version, headers = parse_head(head)
                if "Transfer-Encoding" in headers:
                    raise BadRequest(501)
                length = headers.get("Content-Length", "0").strip()
                if not length.isdigit():
                    raise BadRequest(400)
                body = conn.read_exact(int(length)) if int(length) else b""
            except BadRequest as exc:
                self._responder.send_simple(conn, exc.code, close=True)
                return
            path, query = split_target(target)
            req = Request(method, target, path, query, version, headers, body)
            addr = client_address if isinstance(client_address, tuple) else ("", 0)
            with self._lock:
                self._requests.append(
                    RecordedRequest(
                        method=method,
                        path=path,
                        headers=headers,
                        range_header=headers.get("Range"),
                        time=time.monotonic(),
                        connection_id=conn.id,
                        query=query,
                        target=target,
                        version=version,
                        body=body,
                        client_address=(str(addr[0]), int(addr[1])),
                    )
                )
                self._in_flight += 1
                self._max_in_flight = max(self._max_in_flight, self._in_flight)
                self._cond.notify_all()
            try:
                keep_alive = self._responder.respond(conn, req)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._cond.notify_all()
            if not keep_alive or req.wants_close or conn.closed:
                return
