"""The Unkey client's wire: one POST per attempt, the retry loop, and errors from answers.

Each attempt runs under a deadline of its own (connect, send and the whole answer) and reads
its answer into a byte budget (:mod:`unkey_secrets.transport`); a breach of either is a lost
answer, like a dropped connection.

Nothing here keeps a foreign exception: httpx errors hold the request (the Authorization
header, and for verifyKey a key in the body), JSON errors hold the whole body, and whatever a
caller's client, hooks or transport raise may hold either, so only a description survives
(the class name, and an HTTP status), and our errors are raised outside the ``except`` blocks
so no ``__context__`` points at them either.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from .._errors import (
    InvalidInputError,
    UnkeyAmbiguousError,
    UnkeyAPIError,
    UnkeyAuthError,
    UnkeyError,
    UnkeyNotFoundError,
    UnkeyRateLimitedError,
    UnkeyResponseError,
    UnkeyServerError,
    UnkeyTransportError,
)
from .._redact import guarded
from .._secret import Secret
from .._validate import _describe, is_loopback_host, untrusted_request_id, untrusted_text
from ..telemetry.tracing import annotate, span_event
from ..transport.httpx import ACCEPT_ENCODING, deadline_seconds, read_answer
from ..transport.policy import DEFAULT_MAX_ANSWER_BYTES, Budget, TransportBreachError, deadline
from ._repr import field_repr
from .backoff import Backoff, parse_retry_after

__all__ = ["Answer", "Operation", "Wire", "ambiguous", "check_base_url"]

logger = logging.getLogger("unkey_secrets.unkey")

# Failures that happen before a request leaves the machine: Unkey cannot have seen it.
_NEVER_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)
_WORTH_RETRYING = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
)
_UNREADABLE: Final = object()
_MAX_ERROR_TEXT = 500


@dataclass(frozen=True, repr=False)
class Operation:
    """One Unkey operation and how failures of it are treated."""

    name: str
    #: Idempotent calls are retried; the others make something new each time they are sent.
    retried: bool
    #: A call that changes state and got no answer may have acted (ambiguous).
    changes_state: bool

    __repr__ = field_repr


@dataclass(frozen=True, repr=False)
class Answer:
    """A success envelope: its ``data``, the whole envelope, and ``meta.requestId``.

    Its repr shows the requestId only: an answer (getKey with decrypt) may hold a plaintext.
    """

    data: Any
    envelope: dict[str, Any]
    request_id: str | None

    def __repr__(self) -> str:
        return f"Answer(request_id={getattr(self, 'request_id', None)!r})"


@dataclass(frozen=True, repr=False)
class _Reply:
    """An attempt's answer, read whole: its status, Retry-After header and parsed body."""

    status: int
    retry_after: str | None
    #: Not in the repr: an answer (getKey with decrypt) may hold a plaintext.
    doc: object = field(repr=False)

    __repr__ = field_repr


@dataclass(frozen=True, repr=False)
class _Lost:
    """An attempt that ended without an answer: what happened, and how to treat it."""

    kind: str
    never_sent: bool
    worth_retrying: bool

    __repr__ = field_repr


def check_base_url(value: object) -> str:
    """Return ``value`` without a trailing slash if it is https, or http to a loopback host."""
    if not isinstance(value, str):
        raise InvalidInputError("base_url", f"expected a URL, got {_describe(value)}")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 (parsing the port is the check)
    except ValueError:
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise InvalidInputError("base_url", "expected an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("base_url", "may not carry credentials")
    if parts.query or parts.fragment:
        raise InvalidInputError("base_url", "may not have a query or fragment")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise InvalidInputError(
            "base_url",
            f"plain http is only allowed for loopback hosts (127.0.0.0/8, ::1, localhost), "
            f"not {host!r}; use https",
        )
    return value.rstrip("/")


def _parse_json(content: bytes) -> object:
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        # Returning, not raising: the decoder's error holds the whole body in ``.doc``.
        return _UNREADABLE


#: Made in advance: when memory ran out, building the description could fail too.
_OUT_OF_MEMORY: Final = _Lost(
    "out of memory reading the answer", never_sent=False, worth_retrying=False
)


def _lost(exc: Exception) -> _Lost:
    """Describe a failed attempt by ``exc`` without keeping it (it may hold the request)."""
    if isinstance(exc, TransportBreachError):
        return _Lost(str(exc), never_sent=False, worth_retrying=True)
    if isinstance(exc, httpx.RequestError):
        return _Lost(
            type(exc).__name__,
            never_sent=isinstance(exc, _NEVER_SENT),
            worth_retrying=isinstance(exc, _WORTH_RETRYING),
        )
    if isinstance(exc, MemoryError):
        return _OUT_OF_MEMORY
    # Anything else came from a caller's client, hooks or transport (a raise_for_status hook):
    # the request may have been sent, and what the error means is the caller's, not ours.
    kind = f"{type(exc).__name__} from the HTTP client"
    if isinstance(exc, httpx.HTTPStatusError):
        kind += f" on status {exc.response.status_code}"
    return _Lost(kind, never_sent=False, worth_retrying=False)


def _request_id(doc: object) -> str | None:
    if isinstance(doc, dict) and isinstance(doc.get("meta"), dict):
        value = doc["meta"].get("requestId")
        if isinstance(value, str):
            # Logged and quoted in errors: shown only in a requestId's own shape.
            return untrusted_request_id(value)
    return None


def ambiguous(op: Operation, what: str) -> UnkeyAmbiguousError:
    """Build the error for a call that may have acted although we hold no answer."""
    return UnkeyAmbiguousError(f"{op.name} {what}; Unkey may have acted", operation=op.name)


def _transport_error(op: Operation, kind: str, never_sent: bool, attempts: int) -> UnkeyError:
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    if never_sent:
        return UnkeyTransportError(
            f"{op.name} could not reach Unkey ({kind}){tried}; nothing was sent",
            operation=op.name,
        )
    if op.changes_state:
        return ambiguous(op, f"was sent but no answer came back ({kind}){tried}")
    return UnkeyTransportError(
        f"{op.name} got no answer from Unkey ({kind}){tried}", operation=op.name
    )


class Wire:
    """Sends operations to one Unkey base URL with one root key.

    ``timeout`` caps each socket operation and sets each attempt's deadline
    (:func:`~unkey_secrets.transport.httpx.deadline_seconds`); ``max_answer_bytes`` is each
    answer's byte budget, counted after decompression.
    """

    def __init__(
        self,
        http: httpx.Client,
        *,
        base_url: str,
        root_key: Secret,
        user_agent: str,
        timeout: httpx.Timeout,
        backoff: Backoff,
        sleep: Callable[[float], None],
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.root_key = root_key
        self.user_agent = user_agent
        self.timeout = timeout
        #: Each attempt's deadline, in seconds.
        self.deadline_seconds = deadline_seconds(timeout)
        self.backoff = backoff
        self.sleep = sleep
        self.max_answer_bytes = max_answer_bytes

    def __repr__(self) -> str:
        return f"Wire(base_url={getattr(self, 'base_url', None)!r})"

    @guarded
    def call(self, op: Operation, body: dict[str, Any], hide: tuple[str, ...] = ()) -> Answer:
        """Send ``body`` to ``op``, retrying if it is idempotent; return the success envelope.

        ``hide`` lists strings (a key being verified) to mask in Unkey's error text.
        """
        content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        retries = 0
        while True:
            started = time.perf_counter()
            reply = self._attempt(op, content)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if isinstance(reply, _Lost):
                logger.debug("%s failed: %s after %.1f ms", op.name, reply.kind, elapsed_ms)
                if op.retried and reply.worth_retrying and retries < self.backoff.max_retries:
                    self._pause(op, retries, self.backoff.delay(retries), reply.kind)
                    retries += 1
                    continue
                raise _transport_error(op, reply.kind, reply.never_sent, retries + 1)
            request_id = _request_id(reply.doc)
            status = reply.status
            annotate(**{"http.response.status_code": status})
            logger.debug(
                "%s answered %d requestId=%s in %.1f ms", op.name, status, request_id, elapsed_ms
            )
            if self._should_retry(op, status, retries):
                delay = self.backoff.delay(retries)
                hint = parse_retry_after(reply.retry_after)
                if status == 429 and hint is not None:
                    delay = hint
                # A server that asks for a longer wait than max_backoff gets its error raised.
                if delay <= self.backoff.cap:
                    self._pause(op, retries, delay, f"status {status}")
                    retries += 1
                    continue
            return self._decode(op, reply, request_id, hide)

    def _attempt(self, op: Operation, content: bytes) -> _Reply | _Lost:
        """Send one POST and read its whole answer, under one deadline and one byte budget."""
        lost: _Lost | None = None
        try:
            with (
                deadline(self.deadline_seconds),
                self.http.stream(
                    "POST",
                    f"{self.base_url}/v2/{op.name}",
                    content=content,
                    headers={
                        "Authorization": f"Bearer {self.root_key.reveal()}",
                        "Accept": "application/json",
                        "Accept-Encoding": ACCEPT_ENCODING,
                        "Content-Type": "application/json",
                        "User-Agent": self.user_agent,
                    },
                    timeout=self.timeout,
                    follow_redirects=False,
                ) as response,
            ):
                status = response.status_code
                retry_after = response.headers.get("Retry-After")
                answer = read_answer(response, Budget(self.max_answer_bytes))
        except Exception as exc:  # noqa: BLE001 (every failure is a lost answer: see _lost)
            lost = _lost(exc)
        if lost is not None:
            return lost
        try:
            doc = _parse_json(answer)
        except MemoryError:
            return _OUT_OF_MEMORY
        return _Reply(status, retry_after, doc)

    def _should_retry(self, op: Operation, status: int, retries: int) -> bool:
        return (
            op.retried and retries < self.backoff.max_retries and (status == 429 or status >= 500)
        )

    def _pause(self, op: Operation, retries: int, delay: float, reason: str) -> None:
        # The call's span (when tracing): how many retries, and why each (a status, a class).
        annotate(retries=retries + 1)
        span_event("unkey_secrets.retry", attempt=retries + 2, reason=reason, delay_s=delay)
        logger.debug(
            "%s retry %d/%d in %.3f s after %s",
            op.name,
            retries + 1,
            self.backoff.max_retries,
            delay,
            reason,
        )
        self.sleep(delay)

    def _decode(
        self, op: Operation, reply: _Reply, request_id: str | None, hide: tuple[str, ...]
    ) -> Answer:
        status, doc = reply.status, reply.doc
        if 200 <= status < 300:
            if isinstance(doc, dict) and "data" in doc:
                return Answer(doc["data"], doc, request_id)
            if not op.retried:
                raise ambiguous(op, f"answered {status} but the answer could not be read")
            raise UnkeyResponseError(
                f"{op.name} answered {status} with a body that is not Unkey's envelope",
                operation=op.name,
            )
        error = doc.get("error") if isinstance(doc, dict) else None
        fields: list[object] = (
            [error.get(name) for name in ("type", "title", "detail")]
            if isinstance(error, dict)
            else []
        )
        texts = [value for value in fields if isinstance(value, str)]
        if len(texts) != 3:
            # A gateway's bare 5xx may come after Unkey acted on a call we may not repeat.
            if not op.retried and status >= 500:
                raise ambiguous(op, f"answered {status} without Unkey's error envelope")
            raise UnkeyResponseError(
                f"{op.name} answered {status} with a body that is not Unkey's error envelope",
                operation=op.name,
            )
        # Unkey's text is untrusted: a key it quotes (ours or any key-shaped run) is masked.
        secrets = (self.root_key.reveal(), *hide)
        error_type, title, detail = (
            untrusted_text(text, secrets, limit=_MAX_ERROR_TEXT) for text in texts
        )
        common: dict[str, Any] = {
            "operation": op.name,
            "status": status,
            "error_type": error_type,
            "title": title,
            "detail": detail,
            "request_id": request_id,
        }
        if status in (401, 403):
            raise UnkeyAuthError(**common)
        if status == 404:
            raise UnkeyNotFoundError(**common)
        if status == 429:
            retry_after = parse_retry_after(reply.retry_after)
            raise UnkeyRateLimitedError(**common, retry_after=retry_after)
        if status >= 500:
            raise UnkeyServerError(**common)
        raise UnkeyAPIError(**common)
