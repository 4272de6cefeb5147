"""The httpx transport of the clients we build: httpcore over sockets that keep the deadline.

httpcore gives each socket operation a timeout of its own (connect, read, write), so an answer
trickled one byte per read never trips it. Here every operation's timeout is also capped at
what is left of the :class:`~.policy.Deadline` in force (:func:`~.policy.deadline`), so a
request ends by its deadline whatever the server does: while connecting, during the TLS
handshake (Python bounds a handshake as a whole by the socket's timeout), while sending, while
the status line and headers trickle in, and while the body does. The one wait it cannot bound
is the resolver's (``getaddrinfo`` takes no timeout).

Imported when a client is built, not with the package: httpcore is not a cold-start cost.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from .policy import Deadline, DeadlineExceededError, current_deadline

__all__ = ["DeadlineBackend", "DeadlineStream", "PolicyTransport"]

#: httpx's own defaults for a client's connection pool.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)

# Most specific first: the first match is the httpx error raised for an httpcore one.
_HTTPX_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


def _wait(limit: Deadline | None, timeout: float | None) -> float | None:
    """``timeout`` capped at what is left of ``limit``; DeadlineExceededError if nothing is."""
    return timeout if limit is None else limit.timeout(timeout)


def _connect_wait(limit: Deadline | None, timeout: float | None) -> float | None:
    """As :func:`_wait`, for a step before the request is sent: a lapse is a connect timeout."""
    if limit is None:
        return timeout
    left = limit.remaining()
    if left <= 0:
        raise httpcore.ConnectTimeout(f"no connection within the {limit.seconds:g} s deadline")
    return left if timeout is None else min(timeout, left)


def _expired(limit: Deadline | None) -> Deadline | None:
    """``limit`` if it has passed, else None."""
    return limit if limit is not None and limit.remaining() <= 0 else None


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read (or is closed): an idle connection gone stale."""
    if sock.fileno() == -1:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)  # pragma: no cover (no poll: Windows)
    return bool(readable)  # pragma: no cover


class DeadlineStream(httpcore.NetworkStream):
    """A TCP or TLS socket whose every operation ends by the deadline in force.

    A wait cut short by the deadline raises :class:`~.policy.DeadlineExceededError` (while
    sending or reading) or ``httpcore.ConnectTimeout`` (during the TLS handshake, before
    anything is sent); one cut short by its own timeout raises httpcore's timeout error.
    """

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Read up to ``max_bytes``; ``b""`` at the end of the stream."""
        limit = current_deadline()
        wait = _wait(limit, timeout)
        try:
            self._sock.settimeout(wait)
            return self._sock.recv(max_bytes)
        except TimeoutError:
            timed_out = True
        except OSError:
            timed_out = False
        # Raised here, outside the except blocks: nothing chains to the socket's error.
        lapsed = _expired(limit)
        if timed_out and lapsed is not None:
            raise DeadlineExceededError(lapsed.seconds)
        if timed_out:
            raise httpcore.ReadTimeout("the read timed out")
        raise httpcore.ReadError("the read failed")

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send all of ``buffer``; each send waits at most what is left of the deadline."""
        limit = current_deadline()
        view = memoryview(buffer)
        while view:
            wait = _wait(limit, timeout)
            try:
                self._sock.settimeout(wait)
                sent = self._sock.send(view)
            except TimeoutError:
                timed_out = True
            except OSError:
                timed_out = False
            else:
                view = view[sent:]
                continue
            lapsed = _expired(limit)
            if timed_out and lapsed is not None:
                raise DeadlineExceededError(lapsed.seconds)
            if timed_out:
                raise httpcore.WriteTimeout("the write timed out")
            raise httpcore.WriteError("the write failed")

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """Wrap the socket in TLS; the whole handshake ends by the deadline."""
        if isinstance(self._sock, ssl.SSLSocket):
            # TLS inside TLS (an https:// proxy): build_client refuses such a proxy first.
            raise httpcore.ConnectError("TLS inside TLS (an https:// proxy) is not supported")
        wait = _connect_wait(current_deadline(), timeout)
        try:
            self._sock.settimeout(wait)
            wrapped = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except TimeoutError:
            timed_out, reason = True, "timed out"
        except ssl.SSLError as exc:
            # The reason (CERTIFICATE_VERIFY_FAILED...) is the server's doing, never a secret.
            timed_out, reason = False, f"failed: {exc.reason or type(exc).__name__}"
        except OSError:
            timed_out, reason = False, "failed"
        else:
            return DeadlineStream(wrapped)
        self._sock.close()
        kind = httpcore.ConnectTimeout if timed_out else httpcore.ConnectError
        raise kind(f"the TLS handshake {reason}")

    def get_extra_info(self, info: str) -> Any:
        """What httpcore and httpx ask a stream: its TLS object, addresses, socket, staleness."""
        if info == "ssl_object":
            # An SSLSocket answers what httpcore asks an SSL object (the ALPN protocol, version).
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _readable(self._sock)
        return None


class DeadlineBackend(httpcore.NetworkBackend):
    """Opens :class:`DeadlineStream` connections; each address tried within the deadline."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect to ``host``:``port``, trying each address it resolves to in turn.

        Raises ``httpcore.ConnectTimeout`` or ``httpcore.ConnectError``: nothing was sent.
        """
        limit = current_deadline()
        try:
            addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            addresses = []
        timed_out = False
        for family, kind, proto, _name, address in addresses:
            wait = _connect_wait(limit, timeout)
            sock = socket.socket(family, kind, proto)
            try:
                for option in socket_options or ():
                    sock.setsockopt(*option)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if local_address is not None:
                    sock.bind((local_address, 0))
                sock.settimeout(wait)
                sock.connect(address)
            except TimeoutError:
                timed_out = True
            except OSError:
                pass
            else:
                return DeadlineStream(sock)
            sock.close()
        if not addresses:
            raise httpcore.ConnectError(f"could not resolve {host}")
        if timed_out:
            raise httpcore.ConnectTimeout(f"could not connect to {host}:{port} in time")
        raise httpcore.ConnectError(f"could not connect to {host}:{port}")


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """Raise httpcore's errors as httpx's (unchained); let every other error through."""
    failure: tuple[type[httpx.TransportError], str] | None = None
    try:
        yield
    except Exception as exc:
        kind = next((to for core, to in _HTTPX_ERRORS if isinstance(exc, core)), None)
        if kind is None:
            raise
        failure = (kind, str(exc))
    if failure is not None:
        raise failure[0](failure[1])


class _AnswerStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _as_httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if callable(close):
            with _as_httpx_errors():
                close()


class PolicyTransport(httpx.BaseTransport):
    """An httpx transport over an httpcore pool on :class:`DeadlineBackend` sockets.

    ``ssl_context`` verifies servers (None: for a client of a plain-http URL, which never does
    TLS); ``proxy`` is the proxy's URL (http:// or socks5://), or None to connect directly.
    ``max_connections`` is how many threads send at once: the pool opens and keeps that many
    connections (at least httpx's defaults, 100 open and 20 kept), so none waits for a
    connection or opens one only to close it. While a :func:`~.policy.deadline` is in force,
    the wait for a pooled connection is capped at what is left of it too.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None,
        proxy: str | None = None,
        max_connections: int | None = None,
    ) -> None:
        route = None
        if proxy is not None:
            parsed = httpx.Proxy(url=proxy)
            route = httpcore.Proxy(
                url=httpcore.URL(
                    scheme=parsed.url.raw_scheme,
                    host=parsed.url.raw_host,
                    port=parsed.url.port,
                    target=parsed.url.raw_path,
                ),
                auth=parsed.raw_auth,
                headers=parsed.headers.raw,
            )
        #: Whether requests go through a proxy (its URL may hold credentials: not kept).
        self.proxied = route is not None
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            proxy=route,
            max_connections=max(_LIMITS.max_connections or 0, max_connections or 0),
            max_keepalive_connections=max(
                _LIMITS.max_keepalive_connections or 0, max_connections or 0
            ),
            keepalive_expiry=_LIMITS.keepalive_expiry,
            network_backend=DeadlineBackend(),
        )

    def __repr__(self) -> str:
        return f"PolicyTransport(proxied={getattr(self, 'proxied', None)!r})"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the pool; httpcore's errors come out as httpx's."""
        if not isinstance(request.stream, httpx.SyncByteStream):
            raise TypeError("PolicyTransport sends synchronous requests only")
        extensions = dict(request.extensions)
        limit = current_deadline()
        if limit is not None:
            timeouts = dict(extensions.get("timeout") or {})
            left = limit.remaining()
            if left <= 0:
                raise httpx.PoolTimeout(f"no connection within the {limit.seconds:g} s deadline")
            pool = timeouts.get("pool")
            timeouts["pool"] = left if pool is None else min(pool, left)
            extensions["timeout"] = timeouts
        outgoing = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=extensions,
        )
        with _as_httpx_errors():
            answer = self._pool.handle_request(outgoing)
        if not isinstance(answer.stream, Iterable):  # pragma: no cover (httpcore's sync pool)
            raise TypeError("httpcore answered with an asynchronous stream")
        return httpx.Response(
            status_code=answer.status,
            headers=answer.headers,
            stream=_AnswerStream(answer.stream),
            extensions=answer.extensions,
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()
