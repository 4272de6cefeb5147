"""The emulator's own schema validator and permission query parser, without a server."""

from __future__ import annotations

import pytest

from unkey_secrets.testing.emulator.model import (
    ApiError,
    EmulatedKey,
    PermissionQuery,
    QuerySyntaxError,
    base58,
)
from unkey_secrets.testing.emulator.schemas import REQUESTS, RESPONSES, validate


def locations(op: str, body: object) -> list[str]:
    return [problem["location"] for problem in validate(REQUESTS[op], body)]


def test_valid_bodies_have_no_problems() -> None:
    body = {
        "apiId": "api_123",
        "prefix": "sk_live",
        "credits": {"remaining": 1, "refill": {"interval": "daily", "amount": 1}},
        "ratelimits": [{"name": "abc", "limit": 1, "duration": 1000, "autoApply": False}],
        "meta": {"nested": {"any": ["thing"]}},
    }
    assert validate(REQUESTS["keys.createKey"], body) == []


def test_every_problem_is_reported_with_its_path() -> None:
    body = {"apiId": 5, "extra": 1, "roles": ["", "ok"], "credits": {"remaining": -1}}
    assert sorted(locations("keys.createKey", body)) == [
        "body.apiId",
        "body.credits.remaining",
        "body.extra",
        "body.roles[0]",
    ]


def test_booleans_and_fractions_are_not_integers() -> None:
    assert locations("keys.rerollKey", {"keyId": "key_123", "expiration": True}) == [
        "body.expiration"
    ]
    assert locations("keys.rerollKey", {"keyId": "key_123", "expiration": 1.0}) == [
        "body.expiration"
    ]


def test_update_accepts_null_only_where_it_clears() -> None:
    nulls = {"name": None, "externalId": None, "meta": None, "expires": None, "credits": None}
    assert locations("keys.updateKey", {"keyId": "key_123", **nulls}) == []
    for field in ("enabled", "roles", "permissions", "ratelimits"):
        assert locations("keys.updateKey", {"keyId": "key_123", field: None}) == [f"body.{field}"]


def test_problems_never_quote_values() -> None:
    canary = "CANARY_value"
    body = {"key": 7, "tags": [canary * 100], canary: canary}
    text = repr(validate(REQUESTS["keys.verifyKey"], body))
    assert "CANARY_value" not in text.replace("body.CANARY_value", "")


def test_response_schemas_are_closed_where_unkey_closes_them() -> None:
    envelope = {"meta": {"requestId": "req_1"}, "data": {}, "extra": 1}
    assert validate(RESPONSES["keys.deleteKey"], envelope) == [
        {
            "location": "body.extra",
            "message": "is not a known property",
            "fix": "Remove it; this object does not accept unknown properties.",
        }
    ]


@pytest.mark.parametrize(
    ("query", "held", "expected"),
    [
        ("a", {"a"}, True),
        ("a AND b", {"a"}, False),
        ("a OR b AND c", {"a"}, True),
        ("(a OR b) AND c", {"a"}, False),
        ("((a))", {"a"}, True),
        ("x.* OR api.read", {"api.read"}, True),
        ("x.*", {"x.read"}, False),
    ],
)
def test_permission_queries(query: str, held: set[str], expected: bool) -> None:
    assert PermissionQuery(query).matches(held) is expected


@pytest.mark.parametrize("query", ["", "   ", "a AND", "OR a", "(a", "a)", "a b", "a & b"])
def test_bad_permission_queries(query: str) -> None:
    with pytest.raises(QuerySyntaxError):
        PermissionQuery(query)


def test_base58_and_error_types() -> None:
    assert base58(b"\0\0\x01") == "112"
    assert base58(bytes([255] * 4)) == "7YXq9G"
    error = ApiError(404, "err:unkey:data:key_not_found", "gone")
    assert error.body()["type"] == "https://unkey.com/docs/errors/unkey/data/key_not_found"
    assert error.body()["title"] == "Not Found"
    assert ApiError(400, "err:unkey:application:invalid_input", "bad").body()["errors"] == []


def test_emulated_key_repr_has_no_secret_fields() -> None:
    key = EmulatedKey(key_id="key_1", api_id="api_1", start="sk_abcd", hash="00", created_at=0)
    assert {"key", "plaintext", "secret"}.isdisjoint(key.__dataclass_fields__)
