"""Text from outside (Unkey's error bodies, a store's members) never reaches a rendering as is."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from unkey_secrets import UnkeyClient, UnkeyError
from unkey_secrets._payload import KEY_FORMAT, parse_key_fields

ROOT = "unkey_rootkeycanary9f8e7d6c5b4a"


def failing_client(status: int) -> UnkeyClient:
    def answer(request: httpx.Request) -> httpx.Response:
        body = {
            "meta": {"requestId": "req_abc123"},
            "error": {
                "title": "Bad",
                "detail": f"header was Authorization: Bearer {ROOT}",
                "status": status,
                "type": "https://unkey.com/docs/errors/x",
            },
        }
        return httpx.Response(status, json=body)

    return UnkeyClient(
        ROOT,
        base_url="http://127.0.0.1",
        transport=httpx.MockTransport(answer),
        max_retries=0,
        sleep=lambda _: None,
    )


CALLS: dict[str, Callable[[UnkeyClient], Any]] = {
    "update_key": lambda c: c.update_key("key_abc", name="n"),
    "delete_key": lambda c: c.delete_key("key_abc"),
    "list_keys": lambda c: list(c.list_keys("api_abc")),
    "get_api": lambda c: c.get_api("api_abc"),
    "create_api": lambda c: c.create_api("name"),
    "get_key": lambda c: c.get_key("key_abc"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize("status", [400, 500])
def test_an_error_body_quoting_the_root_key_leaves_no_trace_of_it(call: str, status: int) -> None:
    client = failing_client(status)
    with pytest.raises(UnkeyError) as raised:
        CALLS[call](client)
    rendered = "".join(
        traceback.TracebackException.from_exception(raised.value, capture_locals=True).format()
    )
    assert ROOT not in rendered
    assert ROOT not in repr(raised.value.args)
    assert "req_abc123" in str(raised.value), "a requestId stays quotable"


def test_stored_members_are_kept_only_in_their_own_shape() -> None:
    key = "live_" + "A1b2C3d4" * 4
    data = {
        "format": KEY_FORMAT,
        "key_id": "key_abc123",
        "api_id": "api_abc123",
        "key": key,
        "alias": "svc\nFAKE LOG LINE",
        "name": f"contains {key}",
        "external_id": "tenant/../x",
        "prefix": "way_too_long_prefix_here",
        "issued_at": "2026-11-30T00:00:00+00:00\u202e",
        f"x{key}": 1,
    }
    stored = parse_key_fields(data, store="memory", location="loc")
    assert (stored.alias, stored.name, stored.external_id, stored.prefix, stored.issued_at) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert key not in repr(stored)
    assert "FAKE LOG LINE" not in repr(stored)
    assert stored.extra == ("?",)  # a member name holding the key is no name: kept as "?"
