"""Retry rules: create/reroll/createApi never repeat; idempotent calls back off and retry."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.unit._unkey_fake import FakeUnkey, Reply, error, fail, issued, make_client, ok, raw
from unkey_secrets import (
    UnkeyAmbiguousError,
    UnkeyAPIError,
    UnkeyRateLimitedError,
    UnkeyServerError,
    UnkeyTransportError,
)
from unkey_secrets.unkey import UnkeyClient
from unkey_secrets.unkey.backoff import Backoff, parse_retry_after

KEY = {"keyId": "key_abc123", "start": "pk_x", "createdAt": 1, "enabled": True}

NEVER_RETRIED: dict[str, Callable[[UnkeyClient], Any]] = {
    "create_key": lambda c: c.create_key("api_123"),
    "reroll_key": lambda c: c.reroll_key("key_old123", expiration_ms=60_000, api_id="api_123"),
    "create_api": lambda c: c.create_api("demo"),
}
IDEMPOTENT: dict[str, tuple[Callable[[UnkeyClient], Any], httpx.Response]] = {
    "verify_key": (lambda c: c.verify_key("some_key"), ok({"valid": True, "code": "VALID"})),
    "get_key": (lambda c: c.get_key("key_abc123"), ok(KEY)),
    "update_key": (lambda c: c.update_key("key_abc123", enabled=True), ok({})),
    "delete_key": (lambda c: c.delete_key("key_abc123"), ok({})),
    "list_keys": (
        lambda c: list(c.list_keys("api_123")),
        ok([KEY], pagination={"hasMore": False}),
    ),
    "get_api": (lambda c: c.get_api("api_123"), ok({"id": "api_123", "name": "x"})),
}
SENT_THEN_LOST = [
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.RemoteProtocolError,
    httpx.ReadError,
    httpx.WriteError,
]


def fixed_jitter(client: UnkeyClient, value: float = 1.0) -> None:
    """Make the jitter factor a constant so delays are exact."""
    wire = client._wire
    wire.backoff = dataclasses.replace(wire.backoff, random=lambda: value)


# -- never retried ----------------------------------------------------------------------------


@pytest.mark.parametrize("call", NEVER_RETRIED.values(), ids=NEVER_RETRIED.keys())
def test_non_idempotent_calls_are_not_retried_on_500(call: Callable[[UnkeyClient], Any]) -> None:
    fake = FakeUnkey(error(500), issued())
    sleeps: list[float] = []
    with make_client(fake, sleeps, max_retries=5) as client, pytest.raises(UnkeyServerError):
        call(client)
    assert len(fake.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("call", NEVER_RETRIED.values(), ids=NEVER_RETRIED.keys())
@pytest.mark.parametrize("kind", SENT_THEN_LOST)
def test_non_idempotent_calls_lost_after_sending_are_ambiguous(
    call: Callable[[UnkeyClient], Any], kind: type[httpx.TransportError]
) -> None:
    fake = FakeUnkey(fail(kind), issued())
    sleeps: list[float] = []
    with (
        make_client(fake, sleeps, max_retries=5) as client,
        pytest.raises(UnkeyAmbiguousError) as raised,
    ):
        call(client)
    assert kind.__name__ in str(raised.value)
    assert len(fake.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("call", NEVER_RETRIED.values(), ids=NEVER_RETRIED.keys())
@pytest.mark.parametrize("kind", [httpx.ConnectError, httpx.ConnectTimeout])
def test_non_idempotent_calls_that_never_connected_are_plain_transport_errors(
    call: Callable[[UnkeyClient], Any], kind: type[httpx.TransportError]
) -> None:
    fake = FakeUnkey(fail(kind), issued())
    sleeps: list[float] = []
    with (
        make_client(fake, sleeps, max_retries=5) as client,
        pytest.raises(UnkeyTransportError) as raised,
    ):
        call(client)
    assert not isinstance(raised.value, UnkeyAmbiguousError)
    assert "nothing was sent" in str(raised.value)
    assert len(fake.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize("call", NEVER_RETRIED.values(), ids=NEVER_RETRIED.keys())
def test_non_idempotent_calls_are_not_retried_on_429(call: Callable[[UnkeyClient], Any]) -> None:
    fake = FakeUnkey(error(429, headers={"Retry-After": "1"}), issued())
    with make_client(fake, max_retries=5) as client, pytest.raises(UnkeyRateLimitedError):
        call(client)
    assert len(fake.requests) == 1


# -- idempotent calls -----------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "success"), IDEMPOTENT.values(), ids=IDEMPOTENT.keys())
@pytest.mark.parametrize(
    "failure",
    [
        lambda: error(500),
        lambda: raw(502, b"<html>gateway</html>", "text/html"),
        lambda: error(429),
        lambda: fail(httpx.ConnectError),
        lambda: fail(httpx.ReadTimeout),
        lambda: fail(httpx.RemoteProtocolError),
    ],
    ids=["500", "bare-502", "429", "connect", "read-timeout", "protocol"],
)
def test_idempotent_calls_are_retried_until_they_succeed(
    call: Callable[[UnkeyClient], Any], success: httpx.Response, failure: Callable[[], Reply]
) -> None:
    fake = FakeUnkey(failure(), failure(), success)
    sleeps: list[float] = []
    with make_client(fake, sleeps, max_retries=3) as client:
        call(client)
    assert len(fake.requests) == 3
    assert len(sleeps) == 2
    assert fake.bodies[0] == fake.bodies[1] == fake.bodies[2]


def test_backoff_doubles_and_is_capped() -> None:
    fake = FakeUnkey(*[error(503)] * 5, ok(KEY))
    sleeps: list[float] = []
    with make_client(fake, sleeps, max_retries=5, backoff=0.25, max_backoff=1.5) as client:
        fixed_jitter(client)
        client.get_key("key_abc123")
    assert sleeps == [0.25, 0.5, 1.0, 1.5, 1.5]


def test_jitter_keeps_every_delay_within_its_ceiling() -> None:
    fake = FakeUnkey(*[error(500)] * 4)
    sleeps: list[float] = []
    with (
        make_client(fake, sleeps, max_retries=3, backoff=1.0, max_backoff=3.0) as client,
        pytest.raises(UnkeyServerError),
    ):
        client.get_key("key_abc123")
    assert len(sleeps) == 3
    for delay, ceiling in zip(sleeps, [1.0, 2.0, 3.0], strict=True):
        assert 0 <= delay <= ceiling


def test_retries_stop_after_max_retries_with_the_last_error() -> None:
    fake = FakeUnkey(*[error(500, request_id=f"req_{i}") for i in range(4)])
    sleeps: list[float] = []
    with (
        make_client(fake, sleeps, max_retries=3) as client,
        pytest.raises(UnkeyServerError) as raised,
    ):
        client.get_key("key_abc123")
    assert len(fake.requests) == 4
    assert len(sleeps) == 3
    assert raised.value.request_id == "req_3"


def test_max_retries_zero_sends_once() -> None:
    fake = FakeUnkey(error(500))
    with make_client(fake, max_retries=0) as client, pytest.raises(UnkeyServerError):
        client.get_key("key_abc123")
    assert len(fake.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 412])
def test_client_errors_are_not_retried(status: int) -> None:
    fake = FakeUnkey(error(status), ok(KEY))
    with make_client(fake, max_retries=3) as client, pytest.raises(UnkeyAPIError):
        client.get_key("key_abc123")
    assert len(fake.requests) == 1


def test_retry_after_is_honoured_on_429() -> None:
    fake = FakeUnkey(error(429, headers={"Retry-After": "3"}), ok(KEY))
    sleeps: list[float] = []
    with make_client(fake, sleeps, max_backoff=5.0) as client:
        client.get_key("key_abc123")
    assert sleeps == [3.0]


def test_retry_after_as_a_past_http_date_waits_nothing() -> None:
    fake = FakeUnkey(error(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), ok(KEY))
    sleeps: list[float] = []
    with make_client(fake, sleeps) as client:
        client.get_key("key_abc123")
    assert sleeps == [0.0]


def test_retry_after_longer_than_max_backoff_is_raised_not_waited() -> None:
    fake = FakeUnkey(error(429, headers={"Retry-After": "120"}), ok(KEY))
    sleeps: list[float] = []
    with (
        make_client(fake, sleeps, max_backoff=10.0) as client,
        pytest.raises(UnkeyRateLimitedError) as raised,
    ):
        client.get_key("key_abc123")
    assert raised.value.retry_after == 120.0
    assert sleeps == []
    assert len(fake.requests) == 1


def test_retry_after_on_a_5xx_is_not_used_as_the_delay() -> None:
    fake = FakeUnkey(error(503, headers={"Retry-After": "120"}), ok(KEY))
    sleeps: list[float] = []
    with make_client(fake, sleeps, backoff=0.5, max_backoff=10.0) as client:
        fixed_jitter(client)
        client.get_key("key_abc123")
    assert sleeps == [0.5]


def test_a_failing_page_of_list_keys_is_retried_alone() -> None:
    fake = FakeUnkey(
        ok([KEY], pagination={"hasMore": True, "cursor": "c1"}),
        error(500),
        ok([{**KEY, "keyId": "key_def456"}], pagination={"hasMore": False}),
    )
    with make_client(fake) as client:
        keys = list(client.list_keys("api_123"))
    assert [k.key_id for k in keys] == ["key_abc123", "key_def456"]
    assert [b.get("cursor") for b in fake.bodies] == [None, "c1", "c1"]


STATE_CHANGES: dict[str, Callable[[UnkeyClient], Any]] = {
    "update": lambda c: c.update_key("key_abc123", enabled=True),
    "delete": lambda c: c.delete_key("key_abc123"),
}


@pytest.mark.parametrize("call", STATE_CHANGES.values(), ids=STATE_CHANGES.keys())
def test_a_state_change_lost_after_every_retry_is_ambiguous(
    call: Callable[[UnkeyClient], Any],
) -> None:
    fake = FakeUnkey(*[fail(httpx.ReadTimeout)] * 3)
    with (
        make_client(fake, max_retries=2) as client,
        pytest.raises(UnkeyAmbiguousError, match="after 3 attempts"),
    ):
        call(client)
    assert len(fake.requests) == 3


def test_a_read_lost_after_every_retry_is_a_transport_error() -> None:
    fake = FakeUnkey(*[fail(httpx.ReadTimeout)] * 2)
    with make_client(fake, max_retries=1) as client, pytest.raises(UnkeyTransportError) as raised:
        client.get_key("key_abc123")
    assert not isinstance(raised.value, UnkeyAmbiguousError)


def test_a_delete_that_never_connected_is_not_ambiguous() -> None:
    fake = FakeUnkey(*[fail(httpx.ConnectError)] * 2)
    with make_client(fake, max_retries=1) as client, pytest.raises(UnkeyTransportError) as raised:
        client.delete_key("key_abc123")
    assert not isinstance(raised.value, UnkeyAmbiguousError)


def test_unsupported_protocol_is_not_retried() -> None:
    fake = FakeUnkey(fail(httpx.UnsupportedProtocol), ok(KEY))
    with make_client(fake, max_retries=3) as client, pytest.raises(UnkeyTransportError):
        client.get_key("key_abc123")
    assert len(fake.requests) == 1


# -- the policy's own pieces ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("0", 0.0),
        (" 42 ", 42.0),
        ("-1", None),
        ("1.5", None),
        ("later", None),
        ("Thu, 01 Jan 1970 00:01:40 GMT", 60.0),
        ("Thu, 01 Jan 1970 00:00:10 GMT", 0.0),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, now=lambda: 40.0) == expected


def test_backoff_delay_uses_full_jitter() -> None:
    backoff = Backoff(max_retries=3, base=0.2, cap=10.0, random=lambda: 0.5)
    assert [backoff.delay(n) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert Backoff(max_retries=3, base=0.2, cap=10.0, random=lambda: 0.0).delay(3) == 0.0
