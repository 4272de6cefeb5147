"""urllib3 connections whose every socket operation ends by the deadline in force.

requests (under hvac) and botocore both send over urllib3. A socket timeout bounds one
``recv``: a server trickling a byte at a time never trips it, and a request lasts as long as the
server likes. Here each blocking operation of a connection (connect and the TLS handshake, every
send, every receive, a proxy's ``CONNECT`` answer included) gets at most what is left of the
:class:`~.policy.Deadline` that :func:`~.policy.deadline` put in force, so the whole request ends
by it however slowly the answer comes. Once nothing is left, the operation raises
:class:`TimeoutError` (as a socket timeout does), which urllib3 handles as it handles any
timeout; the client module then sees the deadline has passed and says so. Outside any deadline
the sockets behave exactly as urllib3 set them.
"""

from __future__ import annotations

import io
import socket
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .policy import current_deadline

__all__ = [
    "POOL_CLASSES",
    "DeadlineConnectionMixin",
    "DeadlineHTTPConnection",
    "DeadlineHTTPConnectionPool",
    "DeadlineHTTPSConnection",
    "DeadlineHTTPSConnectionPool",
    "DeadlineSocket",
]


def _capped(timeout: float | None) -> float | None:
    """``timeout`` capped at what is left of the deadline in force (unchanged without one)."""
    current = current_deadline()
    if current is None:
        return timeout
    left = current.remaining()
    if left <= 0:
        raise TimeoutError("the request's deadline has passed")
    return left if timeout is None else min(timeout, left)


class DeadlineSocket:
    """A connected socket (plain or TLS) whose blocking operations end by the deadline.

    ``settimeout`` records the timeout urllib3 asks for; each ``recv``/``recv_into``/``send``/
    ``sendall`` runs with that timeout capped at what is left of the deadline in force. Anything
    else is the wrapped socket's own.
    """

    __slots__ = ("_sock", "_timeout")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._timeout: float | None = sock.gettimeout()

    def __getattr__(self, name: str) -> Any:
        if name in DeadlineSocket.__slots__:  # not set yet: a half-built object
            raise AttributeError(name)
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        return f"DeadlineSocket({getattr(self, '_sock', None)!r})"

    def settimeout(self, value: float | None) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def gettimeout(self) -> float | None:
        return self._timeout

    def _arm(self) -> None:
        if self._timeout == 0:
            return  # non-blocking: nothing waits
        self._sock.settimeout(_capped(self._timeout))

    def recv(self, *args: Any) -> bytes:
        self._arm()
        return self._sock.recv(*args)

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._arm()
        return self._sock.recv_into(*args, **kwargs)

    def send(self, *args: Any) -> int:
        self._arm()
        return self._sock.send(*args)

    def sendall(self, data: Any, flags: int = 0) -> None:
        # One send at a time, each armed anew: a peer that drains slowly cannot stretch a
        # single sendall past the deadline.
        view = memoryview(data).cast("B")
        while view:
            self._arm()
            sent = self._sock.send(view, flags) if flags else self._sock.send(view)
            view = view[sent:]

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: Any) -> Any:
        """A binary reader over this wrapper, so reads through the file are capped too.

        http.client reads every answer (status line, headers, body) through such a file.
        """
        if mode not in ("r", "rb"):
            raise ValueError("a deadline socket makes binary read files only")
        raw = socket.SocketIO(self, "rb")  # type: ignore[arg-type]
        # As socket.makefile does: the socket stays open while a file made from it is, which
        # http.client relies on when it hands a closing connection over to its answer.
        self._sock._io_refs += 1  # type: ignore[attr-defined]
        if buffering == 0:
            return raw
        size = buffering if buffering is not None and buffering > 0 else io.DEFAULT_BUFFER_SIZE
        return io.BufferedReader(raw, size)

    def close(self) -> None:
        self._sock.close()


class DeadlineConnectionMixin:
    """Mixed into a urllib3 connection class: its socket becomes a :class:`DeadlineSocket`.

    The connect timeout is capped at what is left of the deadline, and so is every later
    operation on the socket.
    """

    sock: Any
    timeout: Any

    def connect(self) -> None:
        if current_deadline() is not None:
            base = self.timeout if isinstance(self.timeout, (int, float)) else None
            self.timeout = _capped(base)
        super().connect()  # type: ignore[misc]
        self.sock = DeadlineSocket(self.sock)

    def _tunnel(self) -> None:
        # A proxy's answer to CONNECT is read before connect() returns: cap those reads too.
        real = self.sock
        wrapped = DeadlineSocket(real)
        self.sock = wrapped
        try:
            super()._tunnel()  # type: ignore[misc]
        finally:
            if self.sock is wrapped:
                self.sock = real


class DeadlineHTTPConnection(DeadlineConnectionMixin, HTTPConnection):
    """urllib3's plain connection, every operation bounded by the deadline in force."""


class DeadlineHTTPSConnection(DeadlineConnectionMixin, HTTPSConnection):
    """urllib3's TLS connection, every operation bounded by the deadline in force."""


class DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = DeadlineHTTPConnection


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = DeadlineHTTPSConnection


#: A PoolManager's ``pool_classes_by_scheme`` for deadline-bounded connections.
POOL_CLASSES: dict[str, type[HTTPConnectionPool]] = {
    "http": DeadlineHTTPConnectionPool,
    "https": DeadlineHTTPSConnectionPool,
}
