"""A faithful, in-memory Unkey v2 API emulator on loopback, with fault injection.

It answers ``apis.createApi``, ``apis.getApi``, ``apis.listKeys`` and ``keys.createKey``,
``rerollKey``, ``verifyKey``, ``getKey``, ``updateKey``, ``deleteKey`` as Unkey does: the same
envelopes, error types and statuses, closed request bodies checked against schemas, root key
permissions, and the handler behaviour Unkey documents (reroll's expiry rounded up to the
minute, createKey hiding a missing permission as 404, the listKeys cache). Keys are kept as
SHA-256 hashes and ``start`` only; the emulator never logs or prints a key.

Tests drive it in-process through :class:`Emulator` (state, inspection, ``faults``) and over
HTTP through :class:`EmulatorServer`; ``python -m unkey_secrets.testing.emulator`` runs one
from the command line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import copy
import http.server
import json
import math
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from ..._validate import is_loopback_host
from .model import OPERATIONS, ApiError, EmulatedKey, Faults, base58, new_id, sha256
from .schemas import REQUESTS, validate
from .store import Principal, Store

__all__ = [
    "MAX_BODY_BYTES",
    "Emulator",
    "EmulatorServer",
    "Response",
    "main",
]

MAX_BODY_BYTES = 1024 * 1024
_JSON = "application/json"
_PROBLEM_JSON = "application/problem+json"
_INJECTED_CODES = {
    400: "err:unkey:application:invalid_input",
    401: "err:unkey:authentication:key_not_found",
    403: "err:unkey:authorization:insufficient_permissions",
    404: "err:unkey:data:key_not_found",
    412: "err:unkey:application:precondition_failed",
    429: "err:user:too_many_requests:workspace_rate_limited",
    503: "err:unkey:application:service_unavailable",
}
Response = tuple[int, dict[str, str], bytes]


def _reject_constant(name: str) -> Any:
    raise ValueError("non-finite number")


class _OutOfRange(ValueError):
    """A JSON number past a 64-bit float, which Unkey's decoder refuses (the value unquoted)."""


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange
    return value


def _int(text: str) -> int:
    value = int(text)
    if abs(value) > sys.float_info.max:
        raise _OutOfRange
    return value


class Emulator:
    """The emulator's state and request handling, without sockets.

    ``root_key`` has every permission; :meth:`add_root_key` makes narrower ones. ``clock``
    returns Unix seconds (default :func:`time.time`). With ``list_cache_seconds`` > 0,
    ``apis.listKeys`` leaves out keys younger than that unless ``revalidateKeysCache`` is
    true. ``rate_limit=(n, seconds)`` is a workspace limit of n requests per fixed window.
    ``sleep`` is what an injected delay calls.
    """

    def __init__(
        self,
        *,
        root_key: str = "unkey_root",
        clock: Callable[[], float] | None = None,
        list_cache_seconds: float = 0.0,
        rate_limit: tuple[int, float] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not isinstance(root_key, str) or not root_key or not root_key.isprintable():
            raise ValueError("root_key must be a non-empty printable string")
        if list_cache_seconds < 0:
            raise ValueError("list_cache_seconds must be >= 0")
        if rate_limit is not None and (rate_limit[0] < 1 or rate_limit[1] <= 0):
            raise ValueError("rate_limit must be (requests >= 1, seconds > 0)")
        self._clock = clock or time.time
        self._lock = threading.RLock()
        self._store = Store(self._now_ms, list_cache_seconds)
        self._root_keys: dict[str, Principal] = {sha256(root_key): Principal(frozenset({"*"}))}
        self._root_key = root_key
        self._rate_limit = rate_limit
        self._window: tuple[int, int] = (-1, 0)
        self._sleep = sleep
        #: Requests received, per operation (``"keys.createKey"``...), faulted ones included.
        self.calls: collections.Counter[str] = collections.Counter()
        #: Faults to inject; see :class:`Faults`.
        self.faults = Faults()

    def __repr__(self) -> str:
        store = getattr(self, "_store", None)
        if store is None:  # half-built (a constructor's error rendered with frame locals)
            return "Emulator()"
        with self._lock:
            return f"Emulator(apis={len(store.apis)}, keys={len(store.keys)})"

    @property
    def root_key(self) -> str:
        """The root key that holds every permission."""
        return self._root_key

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    # -- set-up and inspection --------------------------------------------------------------

    def create_api(self, name: str = "api", *, store_encrypted_keys: bool = False) -> str:
        """Create an API (keyspace) and return its id, ``api_`` and random characters."""
        if not isinstance(name, str) or not 1 <= len(name) <= 256:
            raise ValueError("name must be a string of 1-256 characters")
        with self._lock:
            return self._store.add_api(name, bool(store_encrypted_keys)).api_id

    def add_root_key(self, permissions: Iterable[str]) -> str:
        """Return a new root key holding exactly ``permissions`` (e.g. ``api.*.read_key``)."""
        held = frozenset(permissions)
        if not all(isinstance(p, str) and p for p in held):
            raise ValueError("permissions must be non-empty strings")
        root_key = "unkey_" + base58(secrets.token_bytes(16))
        with self._lock:
            self._root_keys[sha256(root_key)] = Principal(held)
        return root_key

    def delete_root_key(self, root_key: str) -> None:
        """Delete a root key :meth:`add_root_key` made: Unkey answers 401 to it from now on.

        Raises ValueError for the emulator's own :attr:`root_key` or a key it does not hold
        (the message never quotes the value).
        """
        digest = sha256(root_key) if isinstance(root_key, str) else ""
        with self._lock:
            if digest == sha256(self._root_key) or digest not in self._root_keys:
                raise ValueError("not a root key add_root_key made (or it is already deleted)")
            del self._root_keys[digest]

    def keys(self, api_id: str | None = None) -> list[EmulatedKey]:
        """Every stored key (deleted ones too), oldest first; ``api_id`` narrows to one API."""
        with self._lock:
            found = [k for k in self._store.keys.values() if api_id in (None, k.api_id)]
            return copy.deepcopy(found)

    def key(self, key_id: str) -> EmulatedKey:
        """The stored key ``key_id``; KeyError if the emulator never made it."""
        with self._lock:
            return copy.deepcopy(self._store.keys[key_id])

    def reset_faults(self) -> None:
        """Forget every pending fault."""
        self.faults.clear()

    # -- requests ---------------------------------------------------------------------------

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        """Answer one POST: status, headers and body, or None to drop the connection."""
        lowered = {str(name).lower(): str(value) for name, value in headers.items()}
        problem_json = _PROBLEM_JSON in lowered.get("accept", "")
        route = path.split("?", 1)[0]
        operation = route.removeprefix("/v2/") if route.startswith("/v2/") else ""
        if operation not in OPERATIONS:
            error = ApiError(404, "err:unkey:data:route_not_found", "No such route.")
            return self._error(error, problem_json)
        with self._lock:
            self.calls[operation] += 1
        status = self.faults.take_failure(operation)
        if status is not None:
            return self._error(self._injected(operation, status), problem_json)
        pause = self.faults.take_delay(operation)
        if pause:
            self._sleep(pause)
        response = self._answer(operation, lowered, body, problem_json)
        if self.faults.take_drop(operation):
            return None
        return response

    def _answer(
        self, operation: str, headers: dict[str, str], body: bytes, problem_json: bool
    ) -> Response:
        extra: dict[str, str] = {}
        try:
            principal = self._authenticate(headers.get("authorization"))
            extra = self._charge_rate_limit()
            document = self._parse(body)
            problems = validate(REQUESTS[operation], document)
            if problems:
                raise ApiError(
                    400,
                    "err:unkey:application:invalid_input",
                    "One or more fields of the request body are invalid.",
                    problems,
                )
            assert isinstance(document, dict)
            with self._lock:
                envelope = self._run(operation, principal, document)
        except ApiError as error:
            error.headers = {**extra, **error.headers}
            return self._error(error, problem_json)
        return 200, {"Content-Type": _JSON, **extra}, _dump(envelope)

    def _run(self, operation: str, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        store = self._store
        meta = {"requestId": new_id("req", 16)}
        if operation == "apis.listKeys":
            page, pagination = store.list_keys(who, body)
            return {"meta": meta, "data": page, "pagination": pagination}
        handlers: dict[str, Callable[[Principal, dict[str, Any]], dict[str, Any]]] = {
            "apis.createApi": store.create_api,
            "apis.getApi": store.get_api,
            "keys.createKey": store.create_key,
            "keys.rerollKey": store.reroll_key,
            "keys.verifyKey": store.verify_key,
            "keys.getKey": store.get_key,
            "keys.updateKey": store.update_key,
            "keys.deleteKey": store.delete_key,
        }
        return {"meta": meta, "data": handlers[operation](who, body)}

    def _authenticate(self, header: str | None) -> Principal:
        if header is None or not header.strip():
            raise ApiError(
                401,
                "err:unkey:authentication:missing",
                "Authorization header is missing; send 'Authorization: Bearer <root key>'.",
            )
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "err:unkey:authentication:malformed",
                "Authorization header must have the form 'Bearer <root key>'.",
            )
        with self._lock:
            principal = self._root_keys.get(sha256(token.strip()))
        if principal is None:
            raise ApiError(
                401, "err:unkey:authentication:key_not_found", "The provided root key is invalid."
            )
        return principal

    def _charge_rate_limit(self) -> dict[str, str]:
        if self._rate_limit is None:
            return {}
        limit, seconds = self._rate_limit
        now = self._clock()
        window = math.floor(now / seconds)
        reset = str(max(1, math.ceil((window + 1) * seconds - now)))
        with self._lock:
            current, used = self._window
            used = used if current == window else 0
            allowed = used < limit
            used += allowed
            self._window = (window, used)
        headers = {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(limit - used),
            "RateLimit-Reset": reset,
        }
        if not allowed:
            raise ApiError(
                429,
                "err:user:too_many_requests:workspace_rate_limited",
                f"The workspace exceeded its API rate limit of {limit}/{seconds:g}s.",
                headers={**headers, "Retry-After": reset},
            )
        return headers

    @staticmethod
    def _parse(body: bytes) -> object:
        try:
            return json.loads(
                body.decode("utf-8"),
                parse_constant=_reject_constant,
                parse_float=_float,
                parse_int=_int,
            )
        except _OutOfRange:
            pass
        except (ValueError, RecursionError):
            # The decoder's message would quote the body; say where, not what.
            raise ApiError(
                400,
                "err:unkey:application:invalid_input",
                "The request body is not valid JSON.",
                [
                    {
                        "location": "body",
                        "message": "is not valid JSON",
                        "fix": "Send a JSON object.",
                    }
                ],
            ) from None
        # Past a 64-bit float a number would be answered back as Infinity (not JSON), and
        # Unkey's decoder refuses it: refused here, at the write, outside the except block.
        raise ApiError(
            400,
            "err:unkey:application:invalid_input",
            "The request body holds a number out of range.",
            [
                {
                    "location": "body",
                    "message": "holds a number outside the range of a 64-bit float",
                    "fix": "Send numbers of at most 1.7976931348623157e308 in magnitude.",
                }
            ],
        )

    @staticmethod
    def _injected(operation: str, status: int) -> ApiError:
        code = _INJECTED_CODES.get(status, "err:unkey:application:unexpected_error")
        if status == 404 and operation.startswith("apis."):
            code = "err:unkey:data:api_not_found"
        errors = [{"location": "body", "message": "injected fault"}] if status == 400 else None
        headers = {"Retry-After": "1"} if status == 429 else None
        return ApiError(status, code, f"Injected fault: {operation} failed.", errors, headers)

    @staticmethod
    def _error(error: ApiError, problem_json: bool) -> Response:
        envelope = {"meta": {"requestId": new_id("req", 16)}, "error": error.body()}
        content_type = _PROBLEM_JSON if problem_json else _JSON
        return error.status, {"Content-Type": content_type, **error.headers}, _dump(envelope)


def _dump(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


# -- the HTTP server ----------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """One connection: HTTP/1.1 keep-alive, each answer sent in a single write."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Without it a small answer waits for the client's delayed ACK (about 40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines and errors are not logged."""

    def do_POST(self) -> None:
        """Read the body and answer from the emulator, or drop the connection."""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self.close_connection = True
            error = ApiError(
                400,
                "err:unkey:application:invalid_input",
                f"The request body must have a Content-Length of at most {MAX_BODY_BYTES} bytes.",
                [{"location": "body", "message": "is missing, too large or of unknown length"}],
            )
            self._send(*Emulator._error(error, False))
            return
        body = self.rfile.read(length)
        try:
            answer = self.server.emulator.handle(self.path, dict(self.headers.items()), body)
        except Exception as exc:  # noqa: BLE001 - an emulator bug still gets Unkey's envelope
            error = ApiError(
                500,
                "err:unkey:application:unexpected_error",
                f"The emulator failed unexpectedly ({type(exc).__name__}).",
            )
            answer = Emulator._error(error, False)
        if answer is None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(*answer)

    def do_GET(self) -> None:
        """Answer Unkey's liveness probe; any other GET is an unknown route."""
        meta = {"requestId": new_id("req", 16)}
        if self.path.split("?", 1)[0] == "/v2/liveness":
            body = {"meta": meta, "data": {"message": "OK"}}
            self._send(200, {"Content-Type": _JSON}, _dump(body))
            return
        error = ApiError(404, "err:unkey:data:route_not_found", "No such route.")
        self._send(*Emulator._error(error, False))

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        phrase = self.responses.get(status, ("Error",))[0]
        lines = [f"HTTP/1.1 {status} {phrase}", f"Content-Length: {len(payload)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + payload)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: Emulator, family: int) -> None:
        self.address_family = family
        self.emulator = emulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: a client that hangs up mid-answer is not worth a traceback on stderr."""

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class EmulatorServer:
    """Run an :class:`Emulator` over HTTP on loopback in a daemon thread.

    ``port=0`` picks a free port; ``url`` is known once started. A host that is not loopback
    is refused unless ``allow_non_loopback=True``.
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_non_loopback: bool = False,
    ) -> None:
        if not allow_non_loopback and not is_loopback_host(host):
            raise ValueError(f"refusing to listen on {host!r}: not a loopback address")
        self.emulator = emulator or Emulator()
        self.host = host
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        # getattr with a default: safe on a half-built object (rendered with frame locals).
        where = self.url if getattr(self, "_server", None) is not None else "not started"
        return f"EmulatorServer({where})"

    @property
    def root_key(self) -> str:
        """The emulator's all-powerful root key."""
        return self.emulator.root_key

    @property
    def url(self) -> str:
        """Base URL such as ``http://127.0.0.1:43211``."""
        if self._server is None:
            raise RuntimeError("the emulator server is not started")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    def start(self) -> None:
        """Bind and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the emulator server is already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = _Server((self.host, self.port), self.emulator, family)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="unkey-emulator",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> EmulatorServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# -- command line -------------------------------------------------------------------------------


def _rate_limit(text: str) -> tuple[int, float]:
    count, _, seconds = text.partition("/")
    try:
        return int(count), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError("expected N/SECONDS, e.g. 100/10") from None


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a port number, 0 to 65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("expected a port number, 0 to 65535")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until SIGINT or SIGTERM; print its URL, root key and the APIs it made.

    A port that cannot be bound (taken, or not permitted) is one ``error:`` line on stderr and
    exit status 2, as is a bad option.
    """
    parser = argparse.ArgumentParser(
        prog="python -m unkey_secrets.testing.emulator",
        description="Run the in-memory Unkey v2 API emulator on loopback until Ctrl-C or "
        "SIGTERM. It prints its URL, its root key and the id of each API it made (new at every "
        "start: the state lives in memory only).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=0, help="port to listen on (default 0: a free port)"
    )
    parser.add_argument(
        "--root-key",
        default="unkey_root",
        help="the root key clients authenticate with (default unkey_root); a local test value, "
        "printed at start",
    )
    parser.add_argument(
        "--api",
        action="append",
        default=[],
        metavar="NAME",
        help="create an API with this name at start and print its id (repeatable)",
    )
    parser.add_argument(
        "--list-cache-seconds",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="apis.listKeys leaves out keys younger than this unless revalidateKeysCache is "
        "true, as Unkey's cache does (default 0: no cache)",
    )
    parser.add_argument(
        "--rate-limit",
        type=_rate_limit,
        default=None,
        metavar="N/SECONDS",
        help="answer 429 after N requests per window of SECONDS, e.g. 100/10 (default: none)",
    )
    parser.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="allow a --host that is not a loopback address (the emulator has no TLS and "
        "accepts its root key from anyone)",
    )
    args = parser.parse_args(argv)
    try:
        emulator = Emulator(
            root_key=args.root_key,
            list_cache_seconds=args.list_cache_seconds,
            rate_limit=args.rate_limit,
        )
        server = EmulatorServer(
            emulator, host=args.host, port=args.port, allow_non_loopback=args.allow_non_loopback
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        server.start()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        sys.stderr.write(f"error: cannot listen on {args.host} port {args.port}: {reason}\n")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        lines = [f"Unkey emulator listening on {server.url}"]
        lines += [f"api {name} {emulator.create_api(name)}" for name in args.api]
        lines.append(f"root key {emulator.root_key}")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0
