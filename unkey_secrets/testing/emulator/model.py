"""The Unkey emulator's records and helpers: keys, ids, errors, faults, permission queries."""

from __future__ import annotations

import collections
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = [
    "OPERATIONS",
    "ApiError",
    "ApiRecord",
    "EmulatedKey",
    "Faults",
    "PermissionQuery",
    "QuerySyntaxError",
    "base58",
    "forbidden",
    "new_id",
    "not_found_key",
    "sha256",
]

#: Every operation the emulator answers, by Unkey's operationId.
OPERATIONS = (
    "apis.createApi",
    "apis.getApi",
    "apis.listKeys",
    "keys.createKey",
    "keys.deleteKey",
    "keys.getKey",
    "keys.rerollKey",
    "keys.updateKey",
    "keys.verifyKey",
)

_ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def new_id(prefix: str, length: int = 9) -> str:
    """Return ``<prefix>_`` and ``length`` random letters and digits, as Unkey's ids look."""
    return prefix + "_" + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(length))


def base58(data: bytes) -> str:
    """Encode ``data`` in the Bitcoin base58 alphabet (leading zero bytes become '1')."""
    number = int.from_bytes(data, "big")
    digits: list[str] = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(_BASE58[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def sha256(text: str) -> str:
    """Hex SHA-256 of ``text``: the only form in which the emulator keeps a key."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ApiRecord:
    """An API (keyspace)."""

    api_id: str
    name: str
    store_encrypted_keys: bool = False
    default_prefix: str | None = None
    default_bytes: int = 16
    created_at: int = 0


@dataclass(frozen=True)
class EmulatedKey:
    """One key as the emulator stores it: its hash and ``start``, never its plaintext.

    Times are Unix milliseconds. ``credits`` is ``{"remaining": n, "refill": {...}}`` or None
    (unlimited); ``ratelimits`` are Unkey's rate limit objects.
    """

    key_id: str
    api_id: str
    start: str
    hash: str
    created_at: int
    name: str | None = None
    meta: dict[str, Any] | None = None
    external_id: str | None = None
    enabled: bool = True
    expires: int | None = None
    deleted: bool = False
    permissions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    credits: dict[str, Any] | None = None
    ratelimits: tuple[dict[str, Any], ...] = ()
    recoverable: bool = False
    updated_at: int | None = None
    last_used_at: int | None = None
    rerolled_from: str | None = field(default=None, compare=False)


class ApiError(Exception):
    """An answer in Unkey's error envelope; ``code`` is Unkey's ``err:...`` code."""

    TITLES: ClassVar[dict[int, str]] = {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        409: "Conflict",
        412: "Precondition Failed",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, code)
        self.status = status
        self.code = code
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The ``error`` member of the envelope."""
        error: dict[str, Any] = {
            "title": self.TITLES.get(self.status, "Error"),
            "detail": self.detail,
            "status": self.status,
            "type": "https://unkey.com/docs/errors/"
            + self.code.removeprefix("err:").replace(":", "/"),
        }
        if self.status == 400:
            error["errors"] = self.errors or []
        return error


def not_found_key() -> ApiError:
    """The 404 for a key that does not exist (or was deleted)."""
    return ApiError(404, "err:unkey:data:key_not_found", "The specified key was not found.")


def forbidden(permission: str) -> ApiError:
    """The 403 for a root key that lacks ``permission``."""
    return ApiError(
        403,
        "err:unkey:authorization:insufficient_permissions",
        f"Missing one of these permissions: [{permission}].",
    )


# -- fault injection ----------------------------------------------------------------------------


def _check_operation(operation: str) -> str:
    if operation not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; expected one of {OPERATIONS}")
    return operation


def _check_times(times: int) -> int:
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise ValueError("times must be an integer >= 1")
    return times


class Faults:
    """Faults to inject, per operation; thread-safe, each one used up as calls consume it.

    * :meth:`fail_next`: answer the next calls with an error status; the emulator does not act.
    * :meth:`delay`: wait before acting.
    * :meth:`drop_after_action`: act, then close the connection without any answer, so the
      caller cannot tell whether the call took effect.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fail: dict[str, collections.deque[int]] = collections.defaultdict(collections.deque)
        self._delay: dict[str, collections.deque[float]] = collections.defaultdict(
            collections.deque
        )
        self._drop: collections.Counter[str] = collections.Counter()

    def __repr__(self) -> str:
        lock = getattr(self, "_lock", None)
        if lock is None:  # half-built (a constructor's error rendered with frame locals)
            return "Faults()"
        with lock:
            fail = {op: list(q) for op, q in getattr(self, "_fail", {}).items() if q}
            delay = {op: list(q) for op, q in getattr(self, "_delay", {}).items() if q}
            dropped = getattr(self, "_drop", None)
            drop = +dropped if dropped is not None else collections.Counter()
        return f"Faults(fail={fail}, delay={delay}, drop={dict(drop)})"

    def fail_next(self, operation: str, times: int = 1, status: int = 500) -> None:
        """Answer the next ``times`` calls of ``operation`` with ``status`` (400-599)."""
        _check_operation(operation)
        _check_times(times)
        if not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError("status must be an HTTP error status, 400-599")
        with self._lock:
            self._fail[operation].extend([status] * times)

    def delay(self, operation: str, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before acting on the next ``times`` calls of ``operation``."""
        _check_operation(operation)
        _check_times(times)
        if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 300:
            raise ValueError("seconds must be a number from 0 to 300")
        with self._lock:
            self._delay[operation].extend([float(seconds)] * times)

    def drop_after_action(self, operation: str, times: int = 1) -> None:
        """Act on the next ``times`` calls of ``operation``, then drop the connection."""
        _check_operation(operation)
        _check_times(times)
        with self._lock:
            self._drop[operation] += times

    def clear(self) -> None:
        """Forget every pending fault."""
        with self._lock:
            self._fail.clear()
            self._delay.clear()
            self._drop.clear()

    def take_failure(self, operation: str) -> int | None:
        """Use up the next injected failure of ``operation``; its status, or None."""
        with self._lock:
            queue = self._fail.get(operation)
            return queue.popleft() if queue else None

    def take_delay(self, operation: str) -> float:
        """Use up the next injected delay of ``operation``; 0 if none."""
        with self._lock:
            queue = self._delay.get(operation)
            return queue.popleft() if queue else 0.0

    def take_drop(self, operation: str) -> bool:
        """Use up the next injected drop of ``operation``; whether there was one."""
        with self._lock:
            if self._drop[operation] > 0:
                self._drop[operation] -= 1
                return True
            return False


# -- permission queries -------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(\()|(\))|([a-zA-Z0-9_:\-.*]+))")


class QuerySyntaxError(ValueError):
    """A permission query that does not parse; the message names the position only."""


class PermissionQuery:
    """A verifyKey permission query: names joined by AND and OR, with parentheses.

    AND binds tighter than OR; the keywords are case-insensitive. A name matches only a
    permission the key holds exactly.
    """

    def __init__(self, text: str) -> None:
        self._tokens = self._tokenize(text)
        self._index = 0
        self.tree = self._or()
        if self._index != len(self._tokens):
            raise QuerySyntaxError(f"unexpected token at position {self._tokens[self._index][1]}")

    @staticmethod
    def _tokenize(text: str) -> list[tuple[str, int]]:
        tokens: list[tuple[str, int]] = []
        position = 0
        while position < len(text):
            if text[position:].strip() == "":
                break
            match = _TOKEN.match(text, position)
            if match is None:
                raise QuerySyntaxError(f"unexpected character at position {position}")
            start = match.start(match.lastindex or 0)
            word = match.group(match.lastindex or 0)
            tokens.append((word, start))
            position = match.end()
        if not tokens:
            raise QuerySyntaxError("the query is empty")
        return tokens

    def _peek(self) -> str | None:
        return self._tokens[self._index][0] if self._index < len(self._tokens) else None

    def _or(self) -> Any:
        terms = [self._and()]
        while (self._peek() or "").upper() == "OR":
            self._index += 1
            terms.append(self._and())
        return ("OR", terms) if len(terms) > 1 else terms[0]

    def _and(self) -> Any:
        factors = [self._factor()]
        while (self._peek() or "").upper() == "AND":
            self._index += 1
            factors.append(self._factor())
        return ("AND", factors) if len(factors) > 1 else factors[0]

    def _factor(self) -> Any:
        word = self._peek()
        if word is None:
            raise QuerySyntaxError("the query ends where a permission was expected")
        position = self._tokens[self._index][1]
        if word == "(":
            self._index += 1
            inner = self._or()
            if self._peek() != ")":
                raise QuerySyntaxError(f"unclosed parenthesis at position {position}")
            self._index += 1
            return inner
        if word == ")" or word.upper() in ("AND", "OR"):
            raise QuerySyntaxError(f"unexpected word at position {position}")
        self._index += 1
        return word

    def matches(self, held: frozenset[str] | set[str]) -> bool:
        """Whether a key holding ``held`` satisfies the query."""
        return self._eval(self.tree, held)

    def _eval(self, node: Any, held: frozenset[str] | set[str]) -> bool:
        if isinstance(node, str):
            return node in held
        operator, children = node
        results = (self._eval(child, held) for child in children)
        return all(results) if operator == "AND" else any(results)
