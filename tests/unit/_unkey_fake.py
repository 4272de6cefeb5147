"""A scripted stand-in for Unkey behind httpx.MockTransport, shared by the test_unkey_* files."""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

import httpx

from unkey_secrets.unkey import UnkeyClient

ROOT_KEY = "unkey_R00tKeyCanary7f3a9c1d2e4b5a6c"
PLAINTEXT = "prod_3ZkPlaintextCanary8uVq2Lr7Wm1Nx"

Reply = httpx.Response | Callable[[httpx.Request], httpx.Response]


def ok(data: Any, request_id: str | None = "req_ok", **extra: Any) -> httpx.Response:
    """A success envelope."""
    meta = {} if request_id is None else {"requestId": request_id}
    return httpx.Response(200, json={"meta": meta, "data": data, **extra})


def error(
    status: int,
    *,
    title: str = "Some Title",
    detail: str = "some detail",
    type_: str = "https://unkey.com/docs/errors/unkey/some_error",
    request_id: str = "req_err",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """An error envelope."""
    body = {
        "meta": {"requestId": request_id},
        "error": {"title": title, "detail": detail, "status": status, "type": type_},
    }
    return httpx.Response(status, json=body, headers=headers)


def raw(status: int, content: bytes, content_type: str = "application/json") -> httpx.Response:
    """A response with a body as given, JSON or not."""
    return httpx.Response(status, content=content, headers={"Content-Type": content_type})


def fail(kind: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    """A reply that raises the httpx transport error ``kind``."""

    def reply(request: httpx.Request) -> httpx.Response:
        raise kind("simulated failure", request=request)

    return reply


def issued(key_id: str = "key_new123", key: str = PLAINTEXT) -> httpx.Response:
    """createKey/rerollKey's answer."""
    return ok({"keyId": key_id, "key": key}, request_id="req_issue")


class FakeUnkey:
    """Answers requests from a script, in order, and records every request."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.replies:
            raise AssertionError("the client sent more requests than the script has replies")
        reply = self.replies.pop(0)
        return reply(request) if callable(reply) else reply

    @property
    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies sent, in order."""
        return [json.loads(request.content) for request in self.requests]

    @property
    def paths(self) -> list[str]:
        """The URL paths requested, in order."""
        return [request.url.path for request in self.requests]


def make_client(fake: FakeUnkey, sleeps: list[float] | None = None, **options: Any) -> UnkeyClient:
    """A client over ``fake``; delays it would sleep are appended to ``sleeps``."""
    recorded = sleeps if sleeps is not None else []
    return UnkeyClient(
        ROOT_KEY,
        base_url="https://unkey.test",
        transport=httpx.MockTransport(fake),
        sleep=recorded.append,
        **options,
    )


def exception_texts(exc: BaseException) -> str:
    """Everything an exception shows: str, repr, args, attributes, traceback, whole chain."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [str(current), repr(current), repr(current.args), repr(vars(current))]
        parts += traceback.format_exception(type(current), current, current.__traceback__)
        current = current.__cause__ or current.__context__
    return "\n".join(parts)
