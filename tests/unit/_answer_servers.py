"""Tiny HTTP servers on loopback that answer badly on purpose, and a proxy that only listens.

Each connection's request is read whole (headers and a Content-Length body), then the server's
``answer`` writes to the socket however it likes: slowly, endlessly, or compressed. A server
stops writing when the client hangs up or the server is closed, so no test waits on it.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "AnswerServer",
    "Connection",
    "ListeningProxy",
    "body_trickle",
    "endless_chunked",
    "fixed",
    "gzip_bomb",
    "status_trickle",
]


@dataclass
class Connection:
    """One client connection: what it sent, how many bytes we wrote, when it ended."""

    request: bytes = b""
    sent: int = 0
    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None


Answer = Callable[["AnswerServer", socket.socket, Connection], None]


class AnswerServer:
    """A loopback HTTP server whose every connection is answered by ``answer``."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self.stopping = threading.Event()
        self.connections: list[Connection] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> AnswerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every answer and wait for the server's threads."""
        self.stopping.set()
        # shutdown, not just close: it wakes the thread blocked in accept().
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(5)
        for thread in self._threads:
            thread.join(5)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            connection = Connection()
            self.connections.append(connection)
            thread = threading.Thread(target=self._serve, args=(sock, connection), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, connection: Connection) -> None:
        with sock:
            try:
                connection.request = _read_request(sock)
                self._answer(self, sock, connection)
            except OSError:
                pass  # the client hung up: that is how most of these answers end
            finally:
                connection.closed = time.monotonic()

    def send(self, sock: socket.socket, connection: Connection, data: bytes) -> None:
        """Write ``data`` and count it."""
        sock.sendall(data)
        connection.sent += len(data)

    def pause(self, seconds: float) -> bool:
        """Wait ``seconds`` between writes; False once the server is closing."""
        return not self.stopping.wait(seconds)


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


# -- answers ------------------------------------------------------------------------------------


def status_trickle(interval: float, for_seconds: float) -> Answer:
    """The status line and an endless header, one byte per ``interval``, for ``for_seconds``."""

    def answer(server: AnswerServer, sock: socket.socket, connection: Connection) -> None:
        text = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 10_000
        ends = time.monotonic() + for_seconds
        for byte in text:
            if time.monotonic() > ends or not server.pause(interval):
                return
            server.send(sock, connection, bytes([byte]))

    return answer


def body_trickle(interval: float, for_seconds: float, content: bytes = b'{"data":{}}') -> Answer:
    """Headers at once, then a body declared 100 000 bytes long, one byte per ``interval``."""

    def answer(server: AnswerServer, sock: socket.socket, connection: Connection) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        server.send(sock, connection, head)
        ends = time.monotonic() + for_seconds
        for byte in content.ljust(100_000):
            if time.monotonic() > ends or not server.pause(interval):
                return
            server.send(sock, connection, bytes([byte]))

    return answer


def endless_chunked(most: int) -> Answer:
    """A chunked body of 64 KiB chunks that goes on until the client hangs up (or ``most``)."""
    chunk = b"%x\r\n" % 65536 + b"7" * 65536 + b"\r\n"

    def answer(server: AnswerServer, sock: socket.socket, connection: Connection) -> None:
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        server.send(sock, connection, head)
        while connection.sent < most and not server.stopping.is_set():
            server.send(sock, connection, chunk)

    return answer


def fixed(status: int, body: bytes, headers: dict[str, str] | None = None) -> Answer:
    """One answer, sent at once; ``Content-Length`` is the body's unless ``headers`` say."""

    def answer(server: AnswerServer, sock: socket.socket, connection: Connection) -> None:
        fields = {"Content-Type": "application/json", "Content-Length": str(len(body))}
        fields.update(headers or {})
        head = f"HTTP/1.1 {status} Whatever\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items()
        )
        server.send(sock, connection, head.encode() + b"\r\n")
        for start in range(0, len(body), 65536):
            if server.stopping.is_set():
                return
            server.send(sock, connection, body[start : start + 65536])

    return answer


def gzip_bomb(inflated_mib: int) -> bytes:
    """A gzip stream of ``inflated_mib`` MiB of zero bytes, about 1 KiB per MiB.

    Built from one compressed MiB: after a full flush deflate starts afresh, so each MiB
    compresses to the same bytes, repeated here; the trailer is the whole stream's CRC and size.
    """
    block = bytes(1 << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    head = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    middle = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    tail = packer.flush()[:-8]  # the final empty block, without the trailer for two MiB
    crc = 0
    for _ in range(inflated_mib):
        crc = zlib.crc32(block, crc)
    trailer = struct.pack("<II", crc, (inflated_mib << 20) & 0xFFFFFFFF)
    return head + middle * (inflated_mib - 1) + tail + trailer


# -- a proxy that only listens ------------------------------------------------------------------


class ListeningProxy:
    """A "proxy" on loopback that records whatever reaches it and answers 502."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._server = AnswerServer(self._record)

    def _record(self, server: AnswerServer, sock: socket.socket, connection: Connection) -> None:
        self.received.append(connection.request)
        server.send(sock, connection, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self._server.url

    def __enter__(self) -> ListeningProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
