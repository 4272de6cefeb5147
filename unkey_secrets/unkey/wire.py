"""The Unkey client's wire: one POST per attempt, the retry loop, and errors from answers.

Nothing here keeps a foreign exception: httpx errors hold the request (the Authorization
header, and for verifyKey a key in the body) and JSON errors hold the whole body, so only
their class name survives, and our errors are raised outside the ``except`` blocks so no
``__context__`` points at them either.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Operation:
    """One Unkey operation and how failures of it are treated."""

    name: str
    #: Idempotent calls are retried; the others make something new each time they are sent.
    retried: bool
    #: A call that changes state and got no answer may have acted (ambiguous).
    changes_state: bool


@dataclass(frozen=True)
class Answer:
    """A success envelope: its ``data``, the whole envelope, and ``meta.requestId``."""

    data: Any
    envelope: dict[str, Any]
    request_id: str | None


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
    """Sends operations to one Unkey base URL with one root key."""

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
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.root_key = root_key
        self.user_agent = user_agent
        self.timeout = timeout
        self.backoff = backoff
        self.sleep = sleep

    def __repr__(self) -> str:
        return f"Wire(base_url={self.base_url!r})"

    @guarded
    def call(self, op: Operation, body: dict[str, Any], hide: tuple[str, ...] = ()) -> Answer:
        """Send ``body`` to ``op``, retrying if it is idempotent; return the success envelope.

        ``hide`` lists strings (a key being verified) to mask in Unkey's error text.
        """
        content = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        retries = 0
        while True:
            failure: httpx.RequestError | None = None
            started = time.perf_counter()
            try:
                response = self.http.post(
                    f"{self.base_url}/v2/{op.name}",
                    content=content,
                    headers={
                        "Authorization": f"Bearer {self.root_key.reveal()}",
                        "Accept": "application/json",
                        "Content-Type": "application/json",
                        "User-Agent": self.user_agent,
                    },
                    timeout=self.timeout,
                    follow_redirects=False,
                )
            except httpx.RequestError as exc:
                failure = exc
            elapsed_ms = (time.perf_counter() - started) * 1000
            if failure is not None:
                kind, never_sent = type(failure).__name__, isinstance(failure, _NEVER_SENT)
                worth_retrying = isinstance(failure, _WORTH_RETRYING)
                failure = None
                logger.debug("%s failed: %s after %.1f ms", op.name, kind, elapsed_ms)
                if op.retried and worth_retrying and retries < self.backoff.max_retries:
                    self._pause(op, retries, self.backoff.delay(retries), kind)
                    retries += 1
                    continue
                raise _transport_error(op, kind, never_sent, retries + 1)
            doc = _parse_json(response.content)
            request_id = _request_id(doc)
            status = response.status_code
            logger.debug(
                "%s answered %d requestId=%s in %.1f ms", op.name, status, request_id, elapsed_ms
            )
            if self._should_retry(op, status, retries):
                delay = self.backoff.delay(retries)
                hint = parse_retry_after(response.headers.get("Retry-After"))
                if status == 429 and hint is not None:
                    delay = hint
                # A server that asks for a longer wait than max_backoff gets its error raised.
                if delay <= self.backoff.cap:
                    self._pause(op, retries, delay, f"status {status}")
                    retries += 1
                    continue
            return self._decode(op, response, doc, request_id, hide)

    def _should_retry(self, op: Operation, status: int, retries: int) -> bool:
        return (
            op.retried and retries < self.backoff.max_retries and (status == 429 or status >= 500)
        )

    def _pause(self, op: Operation, retries: int, delay: float, reason: str) -> None:
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
        self,
        op: Operation,
        response: httpx.Response,
        doc: object,
        request_id: str | None,
        hide: tuple[str, ...],
    ) -> Answer:
        status = response.status_code
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
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            raise UnkeyRateLimitedError(**common, retry_after=retry_after)
        if status >= 500:
            raise UnkeyServerError(**common)
        raise UnkeyAPIError(**common)
