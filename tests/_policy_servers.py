"""Small misbehaving HTTP servers on loopback, for the transport policy's tests.

Each records what reached it and runs in daemon threads until closed; every answer that never
ends on its own (a trickle, an endless body) stops once the server is closed or after
``TRICKLE_LIMIT`` seconds, so a client without a deadline still finishes (and its test fails).
"""

from __future__ import annotations

import http.client
import http.server
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

#: How long an answer that never ends on its own keeps going before the server gives up.
TRICKLE_LIMIT = 15.0
#: How much an endless body sends before the server gives up, in bytes (16 times the budget).
ENDLESS_LIMIT = 256 * 1024 * 1024
#: A gzip body inflating to 1 GiB, sent as ~1 MiB: 1024 gzip members of 1 MiB of zeros each
#: (a gzip stream may hold several members; decoders inflate them one after the other).
BOMB_INFLATED = 1 << 30


def gzip_bomb() -> bytes:
    """~1 MiB of gzip that inflates to :data:`BOMB_INFLATED` bytes (built with zlib streaming)."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = deflate.compress(bytes(1 << 20)) + deflate.flush()
    return member * (BOMB_INFLATED >> 20)


@dataclass
class Received:
    """One request as a server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """A running server: its ``url``, what it received, and ``stop`` for its endless answers."""

    url: str
    received: list[Received] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


Handler = Callable[["_Handler", Server, Received], None]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Received(self.command, self.path, dict(self.headers.items()), body)
        self.server.state.received.append(request)
        try:
            self.server.answer(self, self.server.state, request)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_LIST = do_DELETE = do_CONNECT = _handle

    def raw(self, data: bytes) -> None:
        """Write ``data`` as it is (no status line or headers added)."""
        self.wfile.write(data)
        self.wfile.flush()


class _HTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, answer: Handler) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        host, port = self.server_address[:2]
        self.state = Server(url=f"http://{host!s}:{port}")


@contextmanager
def serve(answer: Handler) -> Iterator[Server]:
    """Run a server on loopback whose every request is answered by ``answer``."""
    server = _HTTPServer(answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.state
    finally:
        server.state.stop.set()
        server.shutdown()
        server.server_close()


# -- answers ---------------------------------------------------------------------------------


def json_answer(handler: _Handler, status: int, body: bytes) -> None:
    """A complete JSON answer in one write."""
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    handler.raw(head.encode() + body)


def trickle(handler: _Handler, server: Server, _: Received) -> None:
    """A byte every 0.1 s from the status line on, until stopped or :data:`TRICKLE_LIMIT`."""
    body = b'{"data": {"data": {}, "metadata": {"version": 1}}}' + b" " * 1000
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    started = time.monotonic()
    for byte in answer:
        if server.stop.wait(0.1) or time.monotonic() - started > TRICKLE_LIMIT:
            break
        handler.raw(bytes([byte]))
    handler.close_connection = True


def endless_chunks(handler: _Handler, server: Server, _: Received) -> None:
    """A chunked JSON body that never ends (until stopped, :data:`TRICKLE_LIMIT` or
    :data:`ENDLESS_LIMIT`).
    """
    handler.raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * (64 * 1024))
    started, sent = time.monotonic(), 0
    while (
        not server.stop.is_set()
        and time.monotonic() - started < TRICKLE_LIMIT
        and sent < ENDLESS_LIMIT
    ):
        handler.raw(chunk)
        sent += len(chunk)
    handler.close_connection = True


def declared_100_mb(handler: _Handler, server: Server, _: Received) -> None:
    """Headers declaring a 100 MB body, then a slow stream of it (never finished)."""
    handler.raw(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {100 * 1000 * 1000}\r\n\r\n".encode()
    )
    started = time.monotonic()
    while not server.stop.wait(0.05) and time.monotonic() - started < TRICKLE_LIMIT:
        handler.raw(b" " * 1024)
    handler.close_connection = True


def bomb(payload: bytes) -> Handler:
    """An answer whose gzip body is ``payload`` (see :func:`gzip_bomb`)."""

    def answer(handler: _Handler, server: Server, _: Received) -> None:
        handler.raw(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )

    return answer


def redirect_to(target: str) -> Handler:
    """A 307 to the same path on ``target`` (as a Vault standby answers)."""

    def answer(handler: _Handler, server: Server, request: Received) -> None:
        handler.raw(
            f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {target}{request.path}\r\n"
            "Content-Length: 0\r\n\r\n".encode()
        )

    return answer


def record_only(handler: _Handler, server: Server, _: Received) -> None:
    """Answer 502 to anything (a proxy that must never be used)."""
    json_answer(handler, 502, b"{}")


def forward_to(upstream: str, *, spoil: Callable[[Received], Handler | None]) -> Handler:
    """Forward each request to ``upstream`` and relay its answer, unless ``spoil`` gives another.

    ``spoil(request)`` returns the handler that answers instead (after the request was
    forwarded, so it acted upstream), or None to relay the upstream's own answer.
    """
    host_port = upstream.split("://", 1)[1]

    def answer(handler: _Handler, server: Server, request: Received) -> None:
        connection = http.client.HTTPConnection(host_port, timeout=10)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
            connection.request(request.method, request.path, body=request.body, headers=headers)
            upstream_answer = connection.getresponse()
            body = upstream_answer.read()
            status = upstream_answer.status
        finally:
            connection.close()
        instead = spoil(request)
        if instead is not None:
            instead(handler, server, request)
            return
        json_answer(handler, status, body)

    return answer
