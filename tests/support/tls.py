"""HTTPS for tests: a private CA (``trustme``) and the test server behind TLS.

:class:`TLSServer` is :class:`~tests.support.httpserver.TestServer` with its listening socket
wrapped by an :class:`ssl.SSLContext`: every accepted connection speaks TLS, and everything
else (resources, faults, recorded requests, statistics) is the plain server's. The handshake
is not done on ``accept`` (that would let one client that never finishes it stall the accept
loop) but on the connection's own thread, at its first read; a client that rejects the
certificate only ends its own connection.

Example::

    ca = trustme.CA()
    with TLSServer(ca) as server:
        server.add("/a.bin", body)
        server.url("/a.bin")            # https://localhost:PORT/a.bin
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
"""

from __future__ import annotations

import ssl

import trustme

from tests.support.httpserver import TestServer

__all__ = ["TLS_HOST", "TLSServer"]

TLS_HOST = "localhost"
"""The name the server's certificate is issued for (and its URLs use); it resolves to
127.0.0.1 without any DNS."""


class TLSServer(TestServer):
    """The test server on 127.0.0.1 speaking HTTPS with a certificate that ``ca`` issued for
    ``localhost`` and ``127.0.0.1``. Its URLs are ``https://localhost:PORT/...``."""

    __test__ = False

    def __init__(self, ca: trustme.CA) -> None:
        super().__init__("127.0.0.1")
        self.ca = ca
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(TLS_HOST, "127.0.0.1").configure_cert(context)
        self._tcp.socket = context.wrap_socket(
            self._tcp.socket, server_side=True, do_handshake_on_connect=False
        )

    def __enter__(self) -> TLSServer:
        self.start()
        return self

    @property
    def base_url(self) -> str:
        return f"https://{TLS_HOST}:{self.port}"
