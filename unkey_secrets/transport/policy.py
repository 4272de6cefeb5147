"""The transport policy's rules: deadlines, byte budgets and which proxy (if any) a URL takes.

Nothing here does I/O. The client modules put a :class:`Deadline` in force around one request
(:func:`deadline`), cap every socket read at what is left of it (:meth:`Deadline.timeout`), and
count the answer's bytes into a :class:`Budget`.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import urllib.request
from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from .._validate import is_loopback_host

__all__ = [
    "DEFAULT_MAX_ANSWER_BYTES",
    "AnswerTooLargeError",
    "Budget",
    "Deadline",
    "DeadlineExceededError",
    "ProxyEnvironment",
    "TransportBreachError",
    "changes_state",
    "current_deadline",
    "deadline",
    "lost_answer",
    "proxy_for",
]

#: The largest answer any of our requests accepts, in bytes after decompression (16 MiB): a
#: listKeys page or a Vault LIST of tens of thousands of keys fits with room to spare.
DEFAULT_MAX_ANSWER_BYTES = 16 * 1024 * 1024


class TransportBreachError(Exception):
    """A request broke the transport policy mid-answer: the answer is lost.

    Internal: the client modules raise it and translate it into the package's own transport
    error for that client (a lost answer). It carries no request, no response and no text
    from the server.
    """


class DeadlineExceededError(TransportBreachError):
    """The whole request (connect, send, every byte of the answer) outlived its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no complete answer within the {seconds:g} s deadline")
        self.seconds = seconds


class AnswerTooLargeError(TransportBreachError):
    """The answer grew past the byte budget (counted after decompression)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than the {limit} byte budget")
        self.limit = limit


class Deadline:
    """A point in monotonic time by which one request must be done.

    ``seconds`` is the request's whole allowance (connect, send and the complete answer).
    """

    __slots__ = ("expires", "seconds")

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError("a deadline is a positive number of seconds")
        self.seconds = float(seconds)
        self.expires = time.monotonic() + self.seconds

    def __repr__(self) -> str:
        if not hasattr(self, "expires"):  # half-built (rendered with frame locals)
            return "Deadline()"
        return f"Deadline(seconds={self.seconds:g}, remaining={self.remaining():.3f})"

    def remaining(self) -> float:
        """Seconds left (0 or less once passed)."""
        return self.expires - time.monotonic()

    def check(self) -> None:
        """Raise :class:`DeadlineExceededError` once the deadline has passed."""
        if self.remaining() <= 0:
            raise DeadlineExceededError(self.seconds)

    def timeout(self, read_timeout: float | None) -> float:
        """The timeout for the next socket operation: ``read_timeout`` capped at what is left.

        Raises :class:`DeadlineExceededError` when nothing is left.
        """
        left = self.remaining()
        if left <= 0:
            raise DeadlineExceededError(self.seconds)
        return left if read_timeout is None else min(read_timeout, left)


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "unkey_secrets_deadline", default=None
)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Deadline]:
    """Put a :class:`Deadline` of ``seconds`` in force for the requests this context makes.

    Nested deadlines keep the earlier expiry: an inner request never outlives its caller's.
    """
    new = Deadline(seconds)
    outer = _current.get()
    if outer is not None and outer.expires < new.expires:
        new = outer
    token = _current.set(new)
    try:
        yield new
    finally:
        _current.reset(token)


def current_deadline() -> Deadline | None:
    """The deadline in force in this context, if any."""
    return _current.get()


class Budget:
    """Counts an answer's bytes; raises :class:`AnswerTooLargeError` past ``limit``."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int = DEFAULT_MAX_ANSWER_BYTES) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError("a byte budget is a positive whole number of bytes")
        self.limit = limit
        self.used = 0

    def add(self, count: int) -> None:
        """Count ``count`` more bytes of the answer."""
        self.used += count
        if self.used > self.limit:
            raise AnswerTooLargeError(self.limit)


class ProxyEnvironment:
    """The proxy variables as they stood when a client was built, and the routes they give.

    :meth:`read` takes them from the environment, once (``HTTPS_PROXY``/``https_proxy``,
    ``ALL_PROXY``, ``NO_PROXY``..., as urllib reads them); :meth:`proxy_for` answers from that
    snapshot, never from the environment again. A variable changed afterwards is not seen by a
    client built before: build a new client to take it.
    """

    __slots__ = ("_routes", "_variables")

    #: How many targets' answers are remembered (a client talks to a handful of hosts).
    _ROUTES = 64

    def __init__(self, variables: Mapping[str, str]) -> None:
        # urllib's names: "https", "all", "no"..., lower case, as getproxies_environment gives.
        self._variables = dict(variables)
        self._routes: dict[tuple[str, str], str | None] = {}

    @classmethod
    def read(cls) -> ProxyEnvironment:
        """The proxy variables set now."""
        return cls(urllib.request.getproxies_environment())

    def __repr__(self) -> str:
        # A proxy URL may carry a password: the variables are named, never quoted.
        names = sorted(getattr(self, "_variables", {}))
        return f"ProxyEnvironment({', '.join(names)})"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self._variables,))

    def proxy_for(self, url: str) -> str | None:
        """The proxy a request to ``url`` goes through (see :func:`proxy_for`), or None."""
        parts = urlsplit(url)
        route = (parts.scheme, parts.netloc)
        try:
            return self._routes[route]
        except KeyError:
            pass
        proxy = self._resolve(parts.scheme, parts.hostname or "", parts.port)
        if len(self._routes) >= self._ROUTES:
            self._routes.clear()
        self._routes[route] = proxy
        return proxy

    def _resolve(self, scheme: str, host: str, port: int | None) -> str | None:
        if scheme != "https" or is_loopback_host(host):
            return None
        proxy = self._variables.get("https") or self._variables.get("all")
        if not proxy:
            return None
        netloc = host if port is None else f"{host}:{port}"
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        # Given the snapshot, urllib reads NO_PROXY from it, not from the environment.
        if bypass(netloc, self._variables):
            return None
        return proxy


def proxy_for(url: str) -> str | None:
    """The proxy a request to ``url`` goes through, resolved from the environment now.

    Plain http never takes a proxy: the policy only allows it to a loopback host, and a proxy
    would carry that traffic (tokens, keys) off the machine in clear. For https, the standard
    variables decide (``HTTPS_PROXY``/``https_proxy``, then ``ALL_PROXY``; ``NO_PROXY``
    exempts a host), as requests, httpx and botocore read them, but once, here. A client keeps
    the answer (or a :class:`ProxyEnvironment`) for its life.
    """
    return ProxyEnvironment.read().proxy_for(url)


_READS = ("read", "get", "batchget", "list", "describe", "check")


def changes_state(operation: str) -> bool:
    """Whether a store ``operation`` may change what the store holds.

    ``operation`` is a store operation's name (``read``, ``write metadata``, ``GetSecretValue``,
    ``approle login``...); a lost answer to one that changes state may hide a change.
    """
    name = operation.lower().replace(" ", "").replace("_", "")
    return not (name.startswith(_READS) or name.endswith("login"))


def lost_answer(where: str, operation: str, breach: TransportBreachError) -> str:
    """The message for a store request whose answer a breach lost.

    ``where`` names the request (operation and location), ``operation`` the store operation
    (``read``, ``write metadata``, ``GetSecretValue``, ``approle login``...): only a write is
    said to have maybe been carried out.
    """
    tail = "; the write may have been carried out" if changes_state(operation) else ""
    return f"{where}: {breach}, so the answer is lost{tail}"
