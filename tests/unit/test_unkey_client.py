"""UnkeyClient against a scripted MockTransport: paths, bodies, headers, answers, error mapping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.unit._unkey_fake import (
    PLAINTEXT,
    ROOT_KEY,
    FakeUnkey,
    error,
    issued,
    make_client,
    ok,
    raw,
)
from unkey_secrets import (
    ConfigurationError,
    IssuedKey,
    Secret,
    UnkeyAmbiguousError,
    UnkeyAPIError,
    UnkeyAuthError,
    UnkeyNotFoundError,
    UnkeyRateLimitedError,
    UnkeyResponseError,
    UnkeyServerError,
)
from unkey_secrets.settings import UnkeySettings
from unkey_secrets.unkey import UNSET, Credits, KeyInfo, Ratelimit, UnkeyClient, VerifyResult

KEY_DATA: dict[str, Any] = {
    "keyId": "key_abc123",
    "start": "prod_3Zk",
    "createdAt": 1_700_000_000_000,
    "enabled": True,
    "name": "svc",
    "meta": {"plan": "pro"},
    "expires": 1_800_000_000_000,
    "updatedAt": 1_700_000_100_000,
    "permissions": ["documents.read"],
    "roles": ["reader"],
    "credits": {"remaining": 5, "refill": {"interval": "monthly", "amount": 10, "refillDay": 3}},
    "identity": {"id": "id_1", "externalId": "tenant_42"},
    "ratelimits": [
        {"id": "rl_12345678", "name": "requests", "limit": 10, "duration": 1000, "autoApply": True}
    ],
}


def key_item(key_id: str) -> dict[str, Any]:
    return {"keyId": key_id, "start": "pk_abcd", "createdAt": 1, "enabled": True}


# -- requests -------------------------------------------------------------------------------


def test_create_key_sends_only_api_id_when_no_option_is_given() -> None:
    fake = FakeUnkey(issued())
    with make_client(fake) as client:
        key = client.create_key("api_123")
    request = fake.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://unkey.test/v2/keys.createKey"
    assert fake.bodies == [{"apiId": "api_123"}]
    assert request.headers["authorization"] == f"Bearer {ROOT_KEY}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("unkey-secrets")
    assert isinstance(key, IssuedKey)
    assert key.key_id == "key_new123"
    assert key.secret == Secret(PLAINTEXT)
    assert key.api_id == "api_123"
    assert key.request_id == "req_issue"
    assert key.rerolled_from is None


def test_create_key_sends_every_option_in_unkeys_names() -> None:
    fake = FakeUnkey(issued())
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    with make_client(fake) as client:
        key = client.create_key(
            "api_123",
            prefix="prod",
            name="billing service",
            byte_length=32,
            external_id="tenant_42",
            meta={"team": "billing", "n": 1},
            expires=expires,
            credits=Credits(
                remaining=100, refill_interval="monthly", refill_amount=50, refill_day=1
            ),
            ratelimits=[
                Ratelimit(name="requests", limit=10, duration=1000),
                {"name": "heavy", "limit": 1, "duration": 60_000, "autoApply": True},
            ],
            enabled=False,
            recoverable=False,
            roles=["reader"],
            permissions=["documents.read", "documents.*"],
        )
    expires_ms = int(expires.timestamp() * 1000)
    assert fake.bodies == [
        {
            "apiId": "api_123",
            "prefix": "prod",
            "name": "billing service",
            "byteLength": 32,
            "externalId": "tenant_42",
            "meta": {"team": "billing", "n": 1},
            "roles": ["reader"],
            "permissions": ["documents.read", "documents.*"],
            "expires": expires_ms,
            "credits": {
                "remaining": 100,
                "refill": {"interval": "monthly", "amount": 50, "refillDay": 1},
            },
            "ratelimits": [
                {"name": "requests", "limit": 10, "duration": 1000, "autoApply": False},
                {"name": "heavy", "limit": 1, "duration": 60_000, "autoApply": True},
            ],
            "enabled": False,
            "recoverable": False,
        }
    ]
    assert (key.name, key.external_id, key.prefix, key.expires) == (
        "billing service",
        "tenant_42",
        "prod",
        expires_ms,
    )


def test_create_key_accepts_credits_as_a_mapping() -> None:
    fake = FakeUnkey(issued())
    with make_client(fake) as client:
        client.create_key(
            "api_123", credits={"remaining": 3, "refill": {"interval": "daily", "amount": 3}}
        )
    assert fake.bodies[0]["credits"] == {
        "remaining": 3,
        "refill": {"interval": "daily", "amount": 3},
    }


def test_reroll_key_sends_key_id_and_expiration_and_returns_the_new_key() -> None:
    fake = FakeUnkey(issued(key_id="key_rerolled9"))
    with make_client(fake) as client:
        key = client.reroll_key("key_old123", expiration_ms=86_400_000, api_id="api_123")
    assert fake.paths == ["/v2/keys.rerollKey"]
    assert fake.bodies == [{"keyId": "key_old123", "expiration": 86_400_000}]
    assert key.key_id == "key_rerolled9"
    assert key.rerolled_from == "key_old123"
    assert key.api_id == "api_123"
    assert key.secret.reveal() == PLAINTEXT


def test_verify_key_sends_the_key_and_options_and_reads_the_verdict() -> None:
    answer = {
        "valid": True,
        "code": "VALID",
        "keyId": "key_abc123",
        "name": "svc",
        "meta": {"plan": "pro"},
        "expires": 5,
        "enabled": True,
        "credits": 9,
        "permissions": ["a.read"],
        "roles": ["r"],
        "identity": {"id": "id_1", "externalId": "tenant_42"},
    }
    fake = FakeUnkey(ok(answer))
    with make_client(fake) as client:
        result = client.verify_key(
            Secret(PLAINTEXT),
            permissions="a.read AND b.write",
            tags=["path=/v1"],
            credits_cost=2,
            ratelimits=[{"name": "requests", "cost": 1}],
        )
    assert fake.paths == ["/v2/keys.verifyKey"]
    assert fake.bodies == [
        {
            "key": PLAINTEXT,
            "permissions": "a.read AND b.write",
            "tags": ["path=/v1"],
            "credits": {"cost": 2},
            "ratelimits": [{"name": "requests", "cost": 1}],
        }
    ]
    assert result == VerifyResult(
        valid=True,
        code="VALID",
        key_id="key_abc123",
        name="svc",
        meta={"plan": "pro"},
        expires=5,
        enabled=True,
        permissions=("a.read",),
        roles=("r",),
        external_id="tenant_42",
        credits=9,
    )


def test_verify_key_reads_a_negative_verdict_with_only_the_required_members() -> None:
    fake = FakeUnkey(ok({"valid": False, "code": "NOT_FOUND"}))
    with make_client(fake) as client:
        result = client.verify_key("some_key_value")
    assert fake.bodies == [{"key": "some_key_value"}]
    assert result == VerifyResult(valid=False, code="NOT_FOUND")


def test_get_key_reads_every_member() -> None:
    fake = FakeUnkey(ok(KEY_DATA))
    with make_client(fake) as client:
        info = client.get_key("key_abc123")
    assert fake.paths == ["/v2/keys.getKey"]
    assert fake.bodies == [{"keyId": "key_abc123"}]
    assert info == KeyInfo(
        key_id="key_abc123",
        start="prod_3Zk",
        created_at=1_700_000_000_000,
        enabled=True,
        name="svc",
        meta={"plan": "pro"},
        expires=1_800_000_000_000,
        updated_at=1_700_000_100_000,
        external_id="tenant_42",
        permissions=("documents.read",),
        roles=("reader",),
        credits=Credits(remaining=5, refill_interval="monthly", refill_amount=10, refill_day=3),
        ratelimits=(
            Ratelimit(
                name="requests",
                limit=10,
                duration=1000,
                auto_apply=True,
                ratelimit_id="rl_12345678",
            ),
        ),
    )


def test_get_key_with_decrypt_returns_the_plaintext_as_a_masked_secret() -> None:
    fake = FakeUnkey(ok({**key_item("key_abc123"), "plaintext": PLAINTEXT}))
    with make_client(fake) as client:
        info = client.get_key("key_abc123", decrypt=True)
    assert fake.bodies == [{"keyId": "key_abc123", "decrypt": True}]
    assert info.plaintext == Secret(PLAINTEXT)
    assert PLAINTEXT not in repr(info)
    assert PLAINTEXT not in str(info)


def test_update_key_sends_set_and_cleared_fields_and_omits_unset_ones() -> None:
    fake = FakeUnkey(ok({}, request_id="req_upd"))
    with make_client(fake) as client:
        request_id = client.update_key(
            "key_abc123",
            name=None,
            meta={"a": 1},
            expires=None,
            credits=None,
            enabled=True,
            roles=[],
        )
    assert request_id == "req_upd"
    assert fake.paths == ["/v2/keys.updateKey"]
    assert fake.bodies == [
        {
            "keyId": "key_abc123",
            "name": None,
            "meta": {"a": 1},
            "expires": None,
            "credits": None,
            "enabled": True,
            "roles": [],
        }
    ]


def test_update_key_sends_values_for_the_other_fields() -> None:
    fake = FakeUnkey(ok({}))
    with make_client(fake) as client:
        client.update_key(
            "key_abc123",
            external_id="tenant_7",
            expires=123,
            credits=Credits(remaining=None),
            ratelimits=[Ratelimit("requests", 5, 2000, True)],
            permissions=["x.y"],
            name=UNSET,
        )
    assert fake.bodies == [
        {
            "keyId": "key_abc123",
            "externalId": "tenant_7",
            "expires": 123,
            "credits": {"remaining": None},
            "ratelimits": [{"name": "requests", "limit": 5, "duration": 2000, "autoApply": True}],
            "permissions": ["x.y"],
        }
    ]


def test_delete_key_sends_key_id_and_permanent_only_when_asked() -> None:
    fake = FakeUnkey(ok({}, request_id="req_d1"), ok({}, request_id="req_d2"))
    with make_client(fake) as client:
        assert client.delete_key("key_abc123") == "req_d1"
        assert client.delete_key("key_abc123", permanent=True) == "req_d2"
    assert fake.paths == ["/v2/keys.deleteKey"] * 2
    assert fake.bodies == [{"keyId": "key_abc123"}, {"keyId": "key_abc123", "permanent": True}]


@pytest.mark.parametrize(
    "call",
    [lambda c: c.update_key("key_abc123", enabled=False), lambda c: c.delete_key("key_abc123")],
    ids=["update", "delete"],
)
def test_a_success_without_request_id_is_a_response_error(
    call: Callable[[UnkeyClient], Any],
) -> None:
    fake = FakeUnkey(ok({}, request_id=None))
    with make_client(fake) as client, pytest.raises(UnkeyResponseError, match="requestId"):
        call(client)


def test_list_keys_follows_the_cursor_over_three_pages() -> None:
    fake = FakeUnkey(
        ok(
            [key_item("key_1aa"), key_item("key_2bb")], pagination={"hasMore": True, "cursor": "c1"}
        ),
        ok([key_item("key_3cc")], pagination={"hasMore": True, "cursor": "c2"}),
        ok([key_item("key_4dd")], pagination={"hasMore": False}),
    )
    with make_client(fake) as client:
        keys = list(
            client.list_keys(
                "api_123", external_id="tenant_42", limit=2, revalidate_keys_cache=True
            )
        )
    assert [k.key_id for k in keys] == ["key_1aa", "key_2bb", "key_3cc", "key_4dd"]
    assert fake.paths == ["/v2/apis.listKeys"] * 3
    first = {"apiId": "api_123", "limit": 2, "externalId": "tenant_42", "revalidateKeysCache": True}
    assert fake.bodies == [first, {**first, "cursor": "c1"}, {**first, "cursor": "c2"}]


def test_list_keys_is_lazy_and_sends_defaults() -> None:
    fake = FakeUnkey(ok([], pagination={"hasMore": False}))
    with make_client(fake) as client:
        keys = client.list_keys("api_123")
        assert fake.requests == []
        assert list(keys) == []
    assert fake.bodies == [{"apiId": "api_123", "limit": 100}]


def test_list_keys_stops_on_a_cursor_it_has_seen() -> None:
    page = {"hasMore": True, "cursor": "same"}
    fake = FakeUnkey(ok([], pagination=page), ok([], pagination=page))
    with make_client(fake) as client, pytest.raises(UnkeyResponseError, match="cursor"):
        list(client.list_keys("api_123"))
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "pagination", [None, {"hasMore": "yes"}, {"hasMore": True}, {"hasMore": True, "cursor": 5}]
)
def test_list_keys_refuses_bad_pagination(pagination: object) -> None:
    extra = {} if pagination is None else {"pagination": pagination}
    fake = FakeUnkey(ok([], **extra))
    with make_client(fake) as client, pytest.raises(UnkeyResponseError, match="pagination"):
        list(client.list_keys("api_123"))


def test_create_api_and_get_api() -> None:
    fake = FakeUnkey(ok({"apiId": "api_new1234"}), ok({"id": "api_new1234", "name": "demo"}))
    with make_client(fake) as client:
        api_id = client.create_api("demo")
        info = client.get_api(api_id)
    assert fake.paths == ["/v2/apis.createApi", "/v2/apis.getApi"]
    assert fake.bodies == [{"name": "demo"}, {"apiId": "api_new1234"}]
    assert (info.api_id, info.name) == ("api_new1234", "demo")


def test_base_url_path_prefix_and_trailing_slash_are_kept_and_trimmed() -> None:
    fake = FakeUnkey(ok({}))
    client = UnkeyClient(
        ROOT_KEY, base_url="https://gw.test/unkey/", transport=httpx.MockTransport(fake)
    )
    client.delete_key("key_abc123")
    assert str(fake.requests[0].url) == "https://gw.test/unkey/v2/keys.deleteKey"


# -- answers that are not the documented shape ------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"keyId": "key_abc123", "start": "x", "createdAt": 1},  # enabled missing
        {"keyId": "key_abc123", "start": "x", "createdAt": True, "enabled": True},
        {"keyId": "key_abc123", "start": "x", "createdAt": 1, "enabled": True, "roles": [1]},
        {"keyId": "key_abc123", "start": "x", "createdAt": 1, "enabled": True, "credits": 5},
        ["not", "an", "object"],
    ],
)
def test_get_key_refuses_a_malformed_key(data: object) -> None:
    fake = FakeUnkey(ok(data))
    with make_client(fake) as client, pytest.raises(UnkeyResponseError) as raised:
        client.get_key("key_abc123")
    assert raised.value.operation == "keys.getKey"
    assert "data" in str(raised.value)


#: Just past what a datetime holds (years 1 to 9999, in Unix ms), each way.
_PAST_9999 = 253_402_300_800_000
_BEFORE_YEAR_1 = -62_135_596_800_001


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("expires", _PAST_9999),
        ("expires", 10**17),
        ("expires", _BEFORE_YEAR_1),
        ("createdAt", _PAST_9999),
        ("createdAt", -(10**17)),
        ("updatedAt", _PAST_9999),
        ("lastUsedAt", _PAST_9999),
    ],
)
def test_a_time_no_datetime_holds_is_a_malformed_answer(member: str, value: int) -> None:
    fake = FakeUnkey(ok({**KEY_DATA, member: value}))
    fake_list = FakeUnkey(ok([key_item("key_ok1"), {**key_item("key_bad1"), member: value}]))
    with make_client(fake) as client, pytest.raises(UnkeyResponseError) as raised:
        client.get_key("key_abc123")
    assert raised.value.operation == "keys.getKey"
    assert f"data.{member} is missing or not a Unix time in milliseconds" in str(raised.value)
    assert str(value) not in str(raised.value)
    with make_client(fake_list) as client, pytest.raises(UnkeyResponseError) as listed:
        list(client.list_keys("api_123"))
    assert f"data[1].{member} is missing or not a Unix time" in str(listed.value)


def test_a_verdict_whose_expires_no_datetime_holds_is_a_malformed_answer() -> None:
    verdict = {"valid": True, "code": "VALID", "keyId": "key_abc123", "expires": _PAST_9999}
    fake = FakeUnkey(ok(verdict))
    with make_client(fake) as client, pytest.raises(UnkeyResponseError) as raised:
        client.verify_key("some_key_value")
    assert "data.expires is missing or not a Unix time" in str(raised.value)


@pytest.mark.parametrize("value", [253_402_300_799_999, -62_135_596_800_000, 0])
def test_a_time_at_the_ends_of_what_a_datetime_holds_is_read(value: int) -> None:
    fake = FakeUnkey(ok({**KEY_DATA, "expires": value, "createdAt": value}))
    with make_client(fake) as client:
        info = client.get_key("key_abc123")
    assert (info.expires, info.created_at) == (value, value)


@pytest.mark.parametrize(
    "reply",
    [
        raw(200, b"<html>not json</html>", "text/html"),
        raw(200, b'{"meta": {"requestId": "r"}}'),
        raw(200, b"[1, 2]"),
        raw(200, b"\xff\xfe\x00garbage"),
        raw(200, b"[" * 100_000),
    ],
)
def test_a_2xx_that_is_not_the_envelope_is_a_response_error(reply: httpx.Response) -> None:
    fake = FakeUnkey(reply)
    with make_client(fake) as client, pytest.raises(UnkeyResponseError) as raised:
        client.get_key("key_abc123")
    assert "not json" not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


def test_a_redirect_is_not_followed() -> None:
    fake = FakeUnkey(
        httpx.Response(307, headers={"Location": "https://elsewhere.test/v2/keys.getKey"})
    )
    with make_client(fake, max_retries=0) as client, pytest.raises(UnkeyResponseError):
        client.get_key("key_abc123")
    assert len(fake.requests) == 1


# -- error envelope mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, UnkeyAPIError),
        (401, UnkeyAuthError),
        (403, UnkeyAuthError),
        (404, UnkeyNotFoundError),
        (409, UnkeyAPIError),
        (412, UnkeyAPIError),
        (429, UnkeyRateLimitedError),
        (500, UnkeyServerError),
        (503, UnkeyServerError),
    ],
)
def test_error_envelope_maps_by_status(status: int, expected: type[UnkeyAPIError]) -> None:
    fake = FakeUnkey(
        error(status, title="Bad Thing", detail="it broke", type_="https://e/x", request_id="req_9")
    )
    with make_client(fake, max_retries=0) as client, pytest.raises(expected) as raised:
        client.get_key("key_abc123")
    exc = raised.value
    assert type(exc) is expected
    assert (exc.status, exc.error_type, exc.title, exc.detail, exc.request_id) == (
        status,
        "https://e/x",
        "Bad Thing",
        "it broke",
        "req_9",
    )
    assert exc.operation == "keys.getKey"
    assert "req_9" in str(exc)


def test_create_key_hidden_permission_failure_is_not_found() -> None:
    fake = FakeUnkey(error(404, title="Not Found", detail="The specified API was not found."))
    with make_client(fake) as client, pytest.raises(UnkeyNotFoundError):
        client.create_key("api_123")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("soon", None), (None, None)],
)
def test_rate_limited_error_carries_retry_after(header: str | None, expected: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    fake = FakeUnkey(error(429, headers=headers))
    with make_client(fake) as client, pytest.raises(UnkeyRateLimitedError) as raised:
        client.create_key("api_123")
    assert raised.value.retry_after == expected


@pytest.mark.parametrize(
    "reply",
    [
        raw(400, b"Bad Request", "text/plain"),
        raw(404, b'{"message": "no route"}'),
        raw(401, b'{"error": {"title": "t", "detail": 5, "type": "x"}}'),
    ],
)
def test_an_error_without_the_envelope_is_a_response_error(reply: httpx.Response) -> None:
    fake = FakeUnkey(reply)
    with make_client(fake, max_retries=0) as client, pytest.raises(UnkeyResponseError) as raised:
        client.get_key("key_abc123")
    assert str(reply.status_code) in str(raised.value)
    assert "no route" not in str(raised.value)
    assert "Bad Request" not in str(raised.value)


def test_long_error_text_is_trimmed() -> None:
    fake = FakeUnkey(error(400, detail="too long " * 2_000))
    with make_client(fake) as client, pytest.raises(UnkeyAPIError) as raised:
        client.create_key("api_123")
    assert len(raised.value.detail) == 500
    assert raised.value.detail.startswith("too long too long")


def test_a_long_unbroken_error_text_is_masked_as_key_shaped() -> None:
    # 10,000 letters in a row look like a key's random part: masked, not shown cut.
    fake = FakeUnkey(error(400, detail="x" * 10_000))
    with make_client(fake) as client, pytest.raises(UnkeyAPIError) as raised:
        client.create_key("api_123")
    assert raised.value.detail == "**********"


# -- ambiguity of calls that are never repeated ---------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        raw(200, b"<html>ok</html>", "text/html"),
        raw(200, b'{"meta": {"requestId": "r"}}'),
        ok({"keyId": "key_abc123"}),
        ok({"key": PLAINTEXT}),
        ok({"keyId": "bad id!", "key": PLAINTEXT}),
        ok({"keyId": "key_abc123", "key": ""}),
        raw(502, b"<html>Bad Gateway</html>", "text/html"),
        raw(504, b""),
    ],
)
def test_create_key_that_may_have_acted_without_a_readable_answer_is_ambiguous(
    reply: httpx.Response,
) -> None:
    fake = FakeUnkey(reply)
    with make_client(fake) as client, pytest.raises(UnkeyAmbiguousError) as raised:
        client.create_key("api_123")
    assert raised.value.operation == "keys.createKey"
    assert len(fake.requests) == 1


def test_reroll_key_with_a_bare_gateway_error_is_ambiguous() -> None:
    fake = FakeUnkey(raw(502, b"Bad Gateway", "text/plain"))
    with make_client(fake) as client, pytest.raises(UnkeyAmbiguousError):
        client.reroll_key("key_old123", expiration_ms=0, api_id="api_123")


def test_create_key_with_a_bare_4xx_is_a_response_error_not_ambiguous() -> None:
    fake = FakeUnkey(raw(413, b"too large", "text/plain"))
    with make_client(fake) as client, pytest.raises(UnkeyResponseError) as raised:
        client.create_key("api_123")
    assert not isinstance(raised.value, UnkeyAmbiguousError)


# -- a key from Unkey is held to the one key rule --------------------------------------------

BAD_ISSUED_KEYS = {
    "trailing-nul": PLAINTEXT + "\x00",
    "50-kb": "k" * 50_000,
    "short": "k3yTooShort",
    "newline": PLAINTEXT + "\n",
    "space": PLAINTEXT.replace("_", " "),
    "contains-key-id": "prod_key_new123_3ZkPlaintextCanary",
}


@pytest.mark.parametrize("key", BAD_ISSUED_KEYS.values(), ids=BAD_ISSUED_KEYS.keys())
@pytest.mark.parametrize("operation", ["create", "reroll"])
def test_an_issued_key_of_the_wrong_shape_is_a_response_error_naming_the_new_key(
    operation: str, key: str
) -> None:
    fake = FakeUnkey(issued(key_id="key_new123", key=key))
    with make_client(fake) as client:
        call: Callable[[], object] = (
            (lambda: client.create_key("api_123"))
            if operation == "create"
            else (lambda: client.reroll_key("key_old123", expiration_ms=0, api_id="api_123"))
        )
        with pytest.raises(UnkeyResponseError) as raised:
            call()
    error = raised.value
    assert not isinstance(error, UnkeyAmbiguousError)
    assert error.key_id == "key_new123"
    assert "key key_new123" in str(error)
    assert "not an Unkey key" in str(error)
    assert "delete it" in str(error)
    shown = f"{error!s} {error!r} {error.args!r} {vars(error)!r}"
    assert key[:10] not in shown
    assert error.__context__ is None
    assert error.__cause__ is None
    assert len(fake.requests) == 1


def test_a_well_shaped_issued_key_passes() -> None:
    fake = FakeUnkey(issued(key="p_" + "A" * 510))
    with make_client(fake) as client:
        assert client.create_key("api_123").secret.reveal() == "p_" + "A" * 510


# -- lifecycle and settings --------------------------------------------------------------------


def test_the_client_closes_its_own_http_client_but_not_a_borrowed_one() -> None:
    own = make_client(FakeUnkey())
    with own:
        pass
    assert own._wire.http.is_closed

    borrowed = httpx.Client(transport=httpx.MockTransport(FakeUnkey(ok({}))))
    with UnkeyClient(ROOT_KEY, base_url="https://unkey.test", http_client=borrowed) as client:
        client.delete_key("key_abc123")
    assert not borrowed.is_closed
    borrowed.close()


def test_from_settings_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNKEY_ROOT_KEY", ROOT_KEY)
    monkeypatch.setenv("UNKEY_BASE_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("UNKEY_TIMEOUT", "2.5")
    monkeypatch.setenv("UNKEY_MAX_RETRIES", "1")
    fake = FakeUnkey(error(500), ok({}))
    client = UnkeyClient.from_settings(transport=httpx.MockTransport(fake), sleep=lambda _: None)
    client.delete_key("key_abc123")
    assert str(fake.requests[0].url) == "http://127.0.0.1:9999/v2/keys.deleteKey"
    assert fake.requests[0].headers["authorization"] == f"Bearer {ROOT_KEY}"
    assert fake.requests[0].extensions["timeout"]["read"] == 2.5
    assert len(fake.requests) == 2
    assert repr(client) == "UnkeyClient(base_url='http://127.0.0.1:9999')"


def test_from_settings_takes_explicit_settings_and_overrides() -> None:
    settings = UnkeySettings(root_key=ROOT_KEY, base_url="https://a.test")
    fake = FakeUnkey(ok({}))
    client = UnkeyClient.from_settings(
        settings, base_url="https://b.test", transport=httpx.MockTransport(fake)
    )
    client.delete_key("key_abc123")
    assert fake.requests[0].url.host == "b.test"


def test_from_settings_without_a_root_key_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UNKEY_ROOT_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="UNKEY_ROOT_KEY"):
        UnkeyClient.from_settings()


def test_from_settings_with_a_bad_value_names_the_field_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNKEY_ROOT_KEY", ROOT_KEY)
    monkeypatch.setenv("UNKEY_TIMEOUT", "notanumber_zq")
    with pytest.raises(ConfigurationError) as raised:
        UnkeyClient.from_settings()
    assert "timeout" in str(raised.value)
    assert "notanumber_zq" not in str(raised.value)
    assert raised.value.__context__ is None


def test_settings_defaults_and_repr_hide_the_root_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("UNKEY_BASE_URL", "UNKEY_TIMEOUT", "UNKEY_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UNKEY_ROOT_KEY", ROOT_KEY)
    settings = UnkeySettings()
    assert settings.base_url == "https://api.unkey.com"
    assert settings.timeout == 10.0
    assert settings.max_retries == 3
    assert settings.root_key is not None
    assert settings.root_key.get_secret_value() == ROOT_KEY
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert ROOT_KEY not in text
