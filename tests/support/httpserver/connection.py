"""One accepted client socket: buffered reads of request heads, counted writes."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Final

from .protocol import BadRequest

if TYPE_CHECKING:
    from .server import TestServer

__all__ = ["MAX_HEAD", "Connection", "Stopped"]

MAX_HEAD: Final = 64 * 1024
"""The longest request head read before answering 431."""


class Stopped(Exception):
    """The server is stopping; abandon the connection."""


class Connection:
    """One accepted socket with a read buffer."""

    def __init__(self, owner: TestServer, sock: socket.socket, conn_id: int) -> None:
        self.owner = owner
        self.sock = sock
        self.id = conn_id
        self.buffer = bytearray()
        self.closed = False

    def _recv(self) -> bytes:
        return self.sock.recv(65536)

    def read_head(self) -> bytes | None:
        """Bytes up to and including the blank line; None on a clean EOF."""
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buffer[: end + 4])
                del self.buffer[: end + 4]
                return head
            if len(self.buffer) > MAX_HEAD:
                raise BadRequest(431)
            data = self._recv()
            if not data:
                if self.buffer.strip():
                    raise BadRequest(400)
                return None
            self.buffer += data
            # Tolerate stray CRLFs between requests (RFC 9112 2.2).
            while self.buffer.startswith(b"\r\n"):
                del self.buffer[:2]

    def read_exact(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = self._recv()
            if not data:
                raise BadRequest(400)
            self.buffer += data
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def send(self, data: bytes | memoryview, count_for: str | None = None) -> None:
        """Write everything; body bytes are counted for ``count_for`` as they go."""
        view = memoryview(data)
        while view:
            if count_for is None:
                view = view[self.sock.send(view) :]
                continue
            # Count before sending, so that the count is never behind what the
            # client may already have received; take back what did not go out.
            pending = len(view)
            self.owner._count_bytes(count_for, pending)
            sent = 0
            try:
                sent = self.sock.send(view)
            finally:
                if sent < pending:
                    self.owner._count_bytes(count_for, sent - pending)
            view = view[sent:]

    def close(self, *, reset: bool = False) -> None:
        if not self.closed:
            self.closed = True
            self.owner._close_socket(self.sock, reset=reset)
