"""The Unkey emulator over real loopback HTTP: endpoints, errors, semantics, faults, CLI."""

from __future__ import annotations

import hashlib
import json
import re
import select
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unkey_secrets.testing.emulator import Emulator, EmulatorServer, main
from unkey_secrets.testing.emulator.schemas import (
    BAD_REQUEST_ENVELOPE,
    ERROR_ENVELOPE,
    MAX_META_DEPTH,
    RESPONSES,
    validate,
)

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z, on a minute boundary


class Clock:
    """A clock the test moves by hand (Unix seconds)."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Api:
    """Calls one emulator over HTTP and checks every answer against its documented shape."""

    def __init__(self, server: EmulatorServer, client: httpx.Client) -> None:
        self.server = server
        self.emulator = server.emulator
        self.client = client

    def raw(
        self, op: str, body: Any = None, *, root_key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", None)
        if headers is None:
            headers = {"Authorization": f"Bearer {root_key or self.server.root_key}"}
        if body is not None:
            kwargs["json"] = body
        response = self.client.post(f"/v2/{op}", headers=headers, **kwargs)
        document = response.json()
        if response.status_code == 200:
            schema = RESPONSES[op]
        elif response.status_code == 400:
            schema = BAD_REQUEST_ENVELOPE
        else:
            schema = ERROR_ENVELOPE
        assert validate(schema, document) == [], document
        assert document["meta"]["requestId"].startswith("req_")
        if response.status_code != 200:
            assert document["error"]["status"] == response.status_code
        return response

    def ok(self, op: str, body: Any, **kwargs: Any) -> Any:
        response = self.raw(op, body, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def error(self, op: str, body: Any, status: int, **kwargs: Any) -> dict[str, Any]:
        response = self.raw(op, body, **kwargs)
        assert response.status_code == status, response.text
        error: dict[str, Any] = response.json()["error"]
        return error

    def create(self, api_id: str, *, root_key: str | None = None, **fields: Any) -> tuple[str, str]:
        data = self.ok("keys.createKey", {"apiId": api_id, **fields}, root_key=root_key)
        return data["keyId"], data["key"]

    def verify(self, key: str, **fields: Any) -> dict[str, Any]:
        data: dict[str, Any] = self.ok("keys.verifyKey", {"key": key, **fields})
        return data


@pytest.fixture
def start() -> Iterator[Callable[..., Api]]:
    """Start an emulator server (with Emulator options) and return a client for it."""
    stack: list[tuple[EmulatorServer, httpx.Client]] = []

    def _start(**options: Any) -> Api:
        server = EmulatorServer(Emulator(**options))
        server.start()
        client = httpx.Client(base_url=server.url, timeout=5)
        stack.append((server, client))
        return Api(server, client)

    yield _start
    for server, client in stack:
        client.close()
        server.stop()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def api(start: Callable[..., Api], clock: Clock) -> Api:
    return start(clock=clock)


@pytest.fixture
def api_id(api: Api) -> str:
    return api.emulator.create_api("test")


# apis ------------------------------------------------------------------------------------------


def test_create_and_get_api(api: Api) -> None:
    created = api.ok("apis.createApi", {"name": "payments"})
    assert re.fullmatch(r"api_[a-zA-Z0-9]+", created["apiId"])
    assert api.ok("apis.getApi", {"apiId": created["apiId"]}) == {
        "id": created["apiId"],
        "name": "payments",
    }
    error = api.error("apis.getApi", {"apiId": "api_missing1"}, 404)
    assert error["type"] == "https://unkey.com/docs/errors/unkey/data/api_not_found"


def test_api_permissions(api: Api, api_id: str) -> None:
    reader = api.emulator.add_root_key([f"api.{api_id}.read_api"])
    assert api.ok("apis.getApi", {"apiId": api_id}, root_key=reader)["id"] == api_id
    other = api.emulator.create_api("other")
    error = api.error("apis.getApi", {"apiId": other}, 403, root_key=reader)
    assert error["type"].endswith("/authorization/insufficient_permissions")
    api.error("apis.createApi", {"name": "nope"}, 403, root_key=reader)
    creator = api.emulator.add_root_key(["api.*.create_api"])
    api.ok("apis.createApi", {"name": "yes"}, root_key=creator)


# request validation and auth -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "body", "location"),
    [
        ("keys.createKey", {"apiId": "x", "surprise": 1}, "body.surprise"),
        ("keys.createKey", {}, "body.apiId"),
        ("keys.createKey", {"apiId": "a"}, "body.apiId"),
        ("keys.createKey", {"apiId": "api_1234", "prefix": "no-dash"}, "body.prefix"),
        ("keys.createKey", {"apiId": "api_1234", "byteLength": 8}, "body.byteLength"),
        ("keys.createKey", {"apiId": "api_1234", "enabled": "yes"}, "body.enabled"),
        ("keys.createKey", {"apiId": "api_1234", "expires": 1.5}, "body.expires"),
        ("keys.createKey", {"apiId": "api_1234", "name": "n" * 256}, "body.name"),
        ("keys.createKey", {"apiId": "api_1234", "permissions": ["a b"]}, "body.permissions[0]"),
        ("keys.createKey", {"apiId": "api_1234", "credits": {}}, "body.credits.remaining"),
        (
            "keys.createKey",
            {"apiId": "api_1234", "meta": {str(i): i for i in range(101)}},
            "body.meta",
        ),
        ("keys.rerollKey", {"keyId": "key_123456789"}, "body.expiration"),
        ("keys.rerollKey", {"keyId": "key_123456789", "expiration": -1}, "body.expiration"),
        ("keys.updateKey", {"keyId": "key_123456789", "enabled": None}, "body.enabled"),
        ("keys.updateKey", {"keyId": "key_123456789", "roles": None}, "body.roles"),
        ("keys.deleteKey", {"keyId": "key_123456789", "permanent": 1}, "body.permanent"),
        ("keys.getKey", {"keyId": "key_123456789", "extra": True}, "body.extra"),
        ("apis.listKeys", {"apiId": "api_1234", "limit": 101}, "body.limit"),
        ("apis.getApi", {"apiId": "api_1"}, "body.apiId"),
        ("apis.createApi", {"name": "ab"}, "body.name"),
    ],
)
def test_bad_requests_are_400_with_errors(api: Api, op: str, body: Any, location: str) -> None:
    error = api.error(op, body, 400)
    assert error["type"] == "https://unkey.com/docs/errors/unkey/application/invalid_input"
    assert location in [problem["location"] for problem in error["errors"]]


def test_validation_errors_never_quote_the_key(api: Api) -> None:
    canary = "sk_CANARYplaintext"
    response = api.raw("keys.verifyKey", {"key": canary, "tags": [1], "extra": canary})
    assert response.status_code == 400
    assert "CANARY" not in response.text


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"", b'{"name": NaN}'])
def test_bodies_that_are_not_a_json_object(api: Api, content: bytes) -> None:
    error = api.error("apis.createApi", None, 400, content=content)
    assert error["errors"][0]["location"] == "body"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing"),
        ("Basic dXNlcjpwYXNz", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer unkey_wrong", "key_not_found"),
    ],
)
def test_root_key_problems_are_401(api: Api, authorization: str | None, code: str) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    error = api.error("apis.createApi", {"name": "x"}, 401, headers=headers)
    assert error["type"] == f"https://unkey.com/docs/errors/unkey/authentication/{code}"


def test_problem_json_when_asked_and_unknown_routes(api: Api) -> None:
    headers = {"Accept": "application/problem+json"}
    response = api.client.post("/v2/keys.createKey", json={}, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert api.client.post("/v2/keys.nope", json={}).status_code == 404
    assert api.client.get("/v2/liveness").json()["data"] == {"message": "OK"}


# createKey, getKey ------------------------------------------------------------------------------


def test_create_key_shape_and_storage(api: Api, api_id: str) -> None:
    key_id, key = api.create(api_id, prefix="live", name="svc", externalId="tenant_1")
    assert re.fullmatch(r"key_[a-zA-Z0-9]{9}", key_id)
    prefix, _, body = key.partition("_")
    assert prefix == "live"
    assert set(body) <= set(BASE58)
    stored = api.emulator.key(key_id)
    assert stored.start == key[: len("live_") + 4]
    assert stored.hash == hashlib.sha256(key.encode()).hexdigest()
    assert stored.external_id == "tenant_1"
    assert key not in repr(api.emulator.keys()) + repr(api.emulator) + repr(api.server)
    _, bare = api.create(api_id, byteLength=64)
    assert set(bare) <= set(BASE58)
    assert len(bare) > len(body) * 3
    info = api.ok("keys.getKey", {"keyId": key_id})
    assert info["start"] == stored.start
    assert info["identity"]["externalId"] == "tenant_1"
    assert "plaintext" not in info


def test_create_key_hides_missing_permission_as_404(api: Api, api_id: str) -> None:
    other = api.emulator.create_api("other")
    scoped = api.emulator.add_root_key([f"api.{api_id}.create_key", "api.*.read_key"])
    assert api.create(api_id, root_key=scoped)
    for target in (other, "api_doesnotexist"):
        error = api.error("keys.createKey", {"apiId": target}, 404, root_key=scoped)
        assert error["detail"] == "The specified API was not found."
        assert error["type"] == "https://unkey.com/docs/errors/unkey/data/api_not_found"
    # recoverable also needs encrypt_key, and is hidden the same way
    vault_api = api.emulator.create_api("vault", store_encrypted_keys=True)
    creator = api.emulator.add_root_key(["api.*.create_key"])
    body = {"apiId": vault_api, "recoverable": True}
    api.error("keys.createKey", body, 404, root_key=creator)


def test_recoverable_keys_and_412(api: Api, api_id: str) -> None:
    error = api.error("keys.createKey", {"apiId": api_id, "recoverable": True}, 412)
    assert error["detail"] == "This API does not support key encryption."
    assert error["type"].endswith("/application/precondition_failed")
    plain_id, _ = api.create(api_id)
    api.error("keys.getKey", {"keyId": plain_id, "decrypt": True}, 412)
    vault_api = api.emulator.create_api("vault", store_encrypted_keys=True)
    key_id, key = api.create(vault_api, recoverable=True)
    assert api.ok("keys.getKey", {"keyId": key_id, "decrypt": True})["plaintext"] == key
    assert "plaintext" not in api.ok("keys.getKey", {"keyId": key_id})
    reader = api.emulator.add_root_key(["api.*.read_key"])
    api.error("keys.getKey", {"keyId": key_id, "decrypt": True}, 403, root_key=reader)
    new = api.ok("keys.rerollKey", {"keyId": key_id, "expiration": 0})
    assert (
        api.ok("keys.getKey", {"keyId": new["keyId"], "decrypt": True})["plaintext"] == (new["key"])
    )


def test_get_key_errors(api: Api, api_id: str) -> None:
    error = api.error("keys.getKey", {"keyId": "key_123456789"}, 404)
    assert error["type"] == "https://unkey.com/docs/errors/unkey/data/key_not_found"
    key_id, _ = api.create(api_id)
    nobody = api.emulator.add_root_key(["api.*.verify_key"])
    api.error("keys.getKey", {"keyId": key_id}, 403, root_key=nobody)
    # an older, longer id is a well-formed request: not found, not a 400
    api.error("keys.getKey", {"keyId": "key_2cGKbMxRyIzhCxo1Idjz8q"}, 404)


# rerollKey ---------------------------------------------------------------------------------------


def test_reroll_issues_a_new_key_and_expires_the_original_rounded_up(
    api: Api, api_id: str, clock: Clock
) -> None:
    original, old_key = api.create(
        api_id,
        prefix="sk_live",
        name="svc",
        meta={"team": "a"},
        externalId="tenant_9",
        permissions=["read"],
        roles=["admin"],
        credits={"remaining": 7, "refill": {"interval": "daily", "amount": 7}},
        ratelimits=[{"name": "per_sec", "limit": 5, "duration": 1000, "autoApply": True}],
        expires=int(T0 * 1000) + 10 * 86_400_000,
    )
    clock.now = T0 + 12.345
    new = api.ok("keys.rerollKey", {"keyId": original, "expiration": 90_000})
    assert new["keyId"] != original
    assert new["key"] != old_key
    assert new["key"].startswith("sk_"), "the new prefix is the start before the first '_'"
    assert not new["key"].startswith("sk_live_")
    old, fresh = api.emulator.key(original), api.emulator.key(new["keyId"])
    assert old.expires == int(T0 * 1000) + 120_000, "now + 90 s = 1:42.345, rounded up to 2:00"
    assert not old.deleted
    assert fresh.expires == int(T0 * 1000) + 10 * 86_400_000, "inherits the original expiry"
    for field in ("name", "meta", "external_id", "permissions", "roles", "credits", "enabled"):
        assert getattr(fresh, field) == getattr(old, field), field
    assert [r["name"] for r in fresh.ratelimits] == ["per_sec"]
    assert fresh.rerolled_from == original
    assert api.verify(old_key)["code"] == "VALID", "valid during the overlap"
    clock.now = T0 + 120
    assert api.verify(old_key)["code"] == "EXPIRED"
    assert api.verify(new["key"])["code"] == "VALID"


def test_reroll_with_zero_expiration_revokes_now(api: Api, api_id: str, clock: Clock) -> None:
    original, old_key = api.create(api_id)
    clock.now = T0 + 30.5
    new = api.ok("keys.rerollKey", {"keyId": original, "expiration": 0, "unknown": 1})
    assert api.emulator.key(original).expires == int((T0 + 30.5) * 1000)
    assert api.verify(old_key)["code"] == "EXPIRED"
    assert re.fullmatch(r"[1-9A-HJ-NP-Za-km-z]+", new["key"]), "no prefix: base58 only"


def test_reroll_errors(api: Api, api_id: str) -> None:
    key_id, _ = api.create(api_id)
    reader = api.emulator.add_root_key(["api.*.read_key"])
    error = api.error("keys.rerollKey", {"keyId": key_id, "expiration": 0}, 403, root_key=reader)
    assert error["type"].endswith("/authorization/insufficient_permissions")
    api.error("keys.rerollKey", {"keyId": "key_2cGKbMxRyIzhCxo1Idjz8q", "expiration": 0}, 404)
    api.ok("keys.deleteKey", {"keyId": key_id})
    api.error("keys.rerollKey", {"keyId": key_id, "expiration": 0}, 404)
    assert [k.key_id for k in api.emulator.keys(api_id)] == [key_id]


# verifyKey ---------------------------------------------------------------------------------------


def test_verify_codes(api: Api, api_id: str, clock: Clock) -> None:
    _, valid = api.create(api_id, name="n", meta={"m": 1}, externalId="ext", permissions=["p"])
    data = api.verify(valid)
    assert data["valid"] is True
    assert data["code"] == "VALID"
    assert (data["name"], data["meta"], data["permissions"]) == ("n", {"m": 1}, ["p"])
    assert data["identity"]["externalId"] == "ext"
    assert data["enabled"] is True
    _, disabled = api.create(api_id, enabled=False)
    assert api.verify(disabled) == {**api.verify(disabled), "valid": False, "code": "DISABLED"}
    _, expiring = api.create(api_id, expires=int(T0 * 1000) + 1000)
    assert api.verify(expiring)["code"] == "VALID"
    clock.now = T0 + 1
    assert api.verify(expiring)["code"] == "EXPIRED"
    assert api.verify("no_such_key") == {"valid": False, "code": "NOT_FOUND"}
    gone_id, gone = api.create(api_id)
    api.ok("keys.deleteKey", {"keyId": gone_id})
    assert api.verify(gone)["code"] == "NOT_FOUND"


def test_verify_permission_queries(api: Api, api_id: str) -> None:
    _, key = api.create(api_id, permissions=["docs.read", "docs.write", "billing.read"])
    cases = {
        "docs.read": True,
        "docs.read AND billing.read": True,
        "docs.read AND admin": False,
        "admin OR docs.write": True,
        "admin or docs.write": True,
        "(admin OR docs.read) AND (billing.read OR x)": True,
        "docs.read AND (admin OR x)": False,
        "admin OR docs.read AND billing.read": True,
    }
    for query, valid in cases.items():
        data = api.verify(key, permissions=query)
        assert data["valid"] is valid, query
        assert data["code"] == ("VALID" if valid else "INSUFFICIENT_PERMISSIONS"), query
    for bad in ("docs.read AND", "(docs.read", "AND x", "a b", "a ) b"):
        error = api.error("keys.verifyKey", {"key": key, "permissions": bad}, 400)
        assert error["type"].endswith("/bad_request/permissions_query_syntax_error")
        assert error["errors"][0]["location"] == "body.permissions"


def test_verify_spends_credits(api: Api, api_id: str) -> None:
    key_id, key = api.create(api_id, credits={"remaining": 3})
    assert api.verify(key)["credits"] == 2
    assert api.verify(key, credits={"cost": 2})["credits"] == 0
    exhausted = api.verify(key)
    assert (exhausted["valid"], exhausted["code"], exhausted["credits"]) == (
        False,
        "USAGE_EXCEEDED",
        0,
    )
    assert api.verify(key, credits={"cost": 0})["code"] == "VALID"
    assert api.emulator.key(key_id).credits == {"remaining": 0}


def test_verify_rate_limits(api: Api, api_id: str, clock: Clock) -> None:
    limit = {"name": "burst", "limit": 2, "duration": 60_000, "autoApply": True}
    _, key = api.create(api_id, ratelimits=[limit])
    assert [api.verify(key)["code"] for _ in range(3)] == ["VALID", "VALID", "RATE_LIMITED"]
    assert api.verify(key)["ratelimits"][0]["exceeded"] is True
    clock.now = T0 + 60
    assert api.verify(key)["code"] == "VALID"


def test_verify_needs_a_verify_permission(api: Api, api_id: str) -> None:
    _, key = api.create(api_id)
    reader = api.emulator.add_root_key(["api.*.read_key"])
    api.error("keys.verifyKey", {"key": key}, 403, root_key=reader)
    elsewhere = api.emulator.add_root_key(["api.api_elsewhere.verify_key"])
    data = api.ok("keys.verifyKey", {"key": key}, root_key=elsewhere)
    assert data == {"valid": False, "code": "NOT_FOUND"}
    scoped = api.emulator.add_root_key([f"api.{api_id}.verify_key"])
    assert api.ok("keys.verifyKey", {"key": key}, root_key=scoped)["code"] == "VALID"


# updateKey, deleteKey -----------------------------------------------------------------------


def test_update_sets_keeps_and_clears(api: Api, api_id: str) -> None:
    key_id, key = api.create(
        api_id,
        name="svc",
        externalId="tenant_1",
        meta={"a": 1},
        expires=int(T0 * 1000) + 3_600_000,
        credits={"remaining": 5},
        permissions=["x", "y"],
        roles=["r1"],
    )
    api.ok("keys.updateKey", {"keyId": key_id, "enabled": False, "permissions": ["z"]})
    stored = api.emulator.key(key_id)
    assert (stored.enabled, stored.permissions, stored.roles) == (False, ("z",), ("r1",))
    assert (stored.name, stored.meta, stored.credits) == ("svc", {"a": 1}, {"remaining": 5})
    assert api.verify(key)["code"] == "DISABLED"
    cleared = {"name": None, "externalId": None, "meta": None, "expires": None, "credits": None}
    api.ok("keys.updateKey", {"keyId": key_id, **cleared, "enabled": True, "roles": []})
    stored = api.emulator.key(key_id)
    assert (stored.name, stored.external_id, stored.meta, stored.expires) == (None,) * 4
    assert stored.credits is None
    assert stored.roles == ()
    info = api.ok("keys.getKey", {"keyId": key_id})
    assert not {"name", "meta", "expires", "credits", "identity"} & info.keys()
    assert info["updatedAt"] >= info["createdAt"]
    api.ok("keys.updateKey", {"keyId": key_id, "name": "new", "meta": {"b": 2}})
    data = api.verify(key)
    assert (data["code"], data["name"], data["meta"]) == ("VALID", "new", {"b": 2})


def test_update_errors(api: Api, api_id: str) -> None:
    api.error("keys.updateKey", {"keyId": "key_123456789", "name": "x"}, 404)
    key_id, _ = api.create(api_id)
    reader = api.emulator.add_root_key(["api.*.read_key"])
    api.error("keys.updateKey", {"keyId": key_id, "name": "x"}, 403, root_key=reader)


def test_delete_soft_and_permanent(api: Api, api_id: str) -> None:
    soft_id, soft = api.create(api_id)
    hard_id, hard = api.create(api_id)
    reader = api.emulator.add_root_key(["api.*.read_key"])
    api.error("keys.deleteKey", {"keyId": soft_id}, 403, root_key=reader)
    assert api.ok("keys.deleteKey", {"keyId": soft_id}) == {}
    assert api.ok("keys.deleteKey", {"keyId": hard_id, "permanent": True}) == {}
    for key_id, key in ((soft_id, soft), (hard_id, hard)):
        assert api.emulator.key(key_id).deleted
        assert api.verify(key)["code"] == "NOT_FOUND"
        api.error("keys.getKey", {"keyId": key_id}, 404)
        api.error("keys.deleteKey", {"keyId": key_id}, 404)
    assert api.emulator.key(soft_id).hash
    assert api.emulator.key(hard_id).hash == "", "a permanent delete erases the hash"


# listKeys ----------------------------------------------------------------------------------------


def test_list_keys_pages_and_filters(api: Api, api_id: str) -> None:
    made = sorted(api.create(api_id, externalId="t_a" if i % 2 else "t_b")[0] for i in range(5))
    gone, _ = api.create(api_id)
    api.ok("keys.deleteKey", {"keyId": gone})
    seen: list[str] = []
    body: dict[str, Any] = {"apiId": api_id, "limit": 2}
    pages = 0
    while True:
        response = api.raw("apis.listKeys", body)
        document = response.json()
        seen += [item["keyId"] for item in document["data"]]
        pages += 1
        if not document["pagination"]["hasMore"]:
            assert "cursor" not in document["pagination"]
            break
        body = {**body, "cursor": document["pagination"]["cursor"]}
    assert pages == 3
    assert seen == made
    tenant = api.ok("apis.listKeys", {"apiId": api_id, "externalId": "t_a"})
    assert len(tenant) == 2
    assert {item["identity"]["externalId"] for item in tenant} == {"t_a"}
    assert api.ok("apis.listKeys", {"apiId": api_id, "externalId": "nobody"}) == []


def test_list_keys_cache_hides_new_keys_until_revalidated(
    start: Callable[..., Api], clock: Clock
) -> None:
    api = start(clock=clock, list_cache_seconds=60)
    api_id = api.emulator.create_api("cached")
    key_id, _ = api.create(api_id)
    assert api.ok("apis.listKeys", {"apiId": api_id}) == []
    fresh = api.ok("apis.listKeys", {"apiId": api_id, "revalidateKeysCache": True})
    assert [item["keyId"] for item in fresh] == [key_id]
    clock.now = T0 + 60
    assert [item["keyId"] for item in api.ok("apis.listKeys", {"apiId": api_id})] == [key_id]


def test_list_keys_errors(api: Api, api_id: str) -> None:
    api.error("apis.listKeys", {"apiId": "api_doesnotexist"}, 404)
    key_only = api.emulator.add_root_key([f"api.{api_id}.read_key"])
    api.error("apis.listKeys", {"apiId": api_id}, 403, root_key=key_only)
    both = api.emulator.add_root_key([f"api.{api_id}.read_key", f"api.{api_id}.read_api"])
    assert api.ok("apis.listKeys", {"apiId": api_id}, root_key=both) == []
    api.error("apis.listKeys", {"apiId": api_id, "decrypt": True}, 403, root_key=both)


# workspace rate limit ----------------------------------------------------------------------------


def test_workspace_rate_limit(start: Callable[..., Api], clock: Clock) -> None:
    clock.now = T0 + 4
    api = start(clock=clock, rate_limit=(2, 10.0))
    first = api.raw("apis.createApi", {"name": "one"})
    assert first.headers["RateLimit-Limit"] == "2"
    assert first.headers["RateLimit-Remaining"] == "1"
    assert first.headers["RateLimit-Reset"] == "6"
    assert "Retry-After" not in first.headers
    api.ok("apis.createApi", {"name": "two"})
    limited = api.raw("apis.createApi", {"name": "three"})
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "6"
    assert limited.headers["RateLimit-Remaining"] == "0"
    error = limited.json()["error"]
    assert error["type"] == (
        "https://unkey.com/docs/errors/user/too_many_requests/workspace_rate_limited"
    )
    assert "2/10s" in error["detail"]
    clock.now = T0 + 10
    api.ok("apis.createApi", {"name": "four"})


def test_no_rate_limit_headers_without_a_limit(api: Api) -> None:
    response = api.raw("apis.createApi", {"name": "free"})
    assert not [name for name in response.headers if name.lower().startswith("ratelimit")]


# faults ------------------------------------------------------------------------------------------


def test_fail_next_answers_errors_without_acting(api: Api, api_id: str) -> None:
    api.emulator.faults.fail_next("keys.createKey", times=2, status=503)
    api.emulator.faults.fail_next("keys.createKey", status=500)
    for status in (503, 503, 500):
        error = api.error("keys.createKey", {"apiId": api_id}, status)
        assert "Injected fault" in error["detail"]
    assert api.emulator.keys(api_id) == []
    assert api.emulator.calls["keys.createKey"] == 3
    api.create(api_id)
    assert api.emulator.calls["keys.createKey"] == 4
    api.emulator.faults.fail_next("keys.verifyKey", status=429)
    assert api.raw("keys.verifyKey", {"key": "x"}).headers["Retry-After"] == "1"
    api.emulator.faults.fail_next("keys.getKey", status=400)
    assert api.error("keys.getKey", {"keyId": "key_123456789"}, 400)["errors"]


def test_delay_happens_before_acting(start: Callable[..., Api]) -> None:
    seen: list[tuple[float, int]] = []
    holder: dict[str, Api] = {}

    def sleep(seconds: float) -> None:
        seen.append((seconds, len(holder["api"].emulator.keys())))

    api = holder["api"] = start(sleep=sleep)
    api_id = api.emulator.create_api("slow")
    api.emulator.faults.delay("keys.createKey", 2.5, times=2)
    api.create(api_id)
    api.create(api_id)
    api.create(api_id)
    assert seen == [(2.5, 0), (2.5, 1)], "two delays, each before the key was made"


def test_drop_after_action_acts_then_closes_without_answer(api: Api, api_id: str) -> None:
    api.emulator.faults.drop_after_action("keys.createKey")
    with pytest.raises(httpx.RemoteProtocolError):
        api.client.post(
            "/v2/keys.createKey",
            json={"apiId": api_id},
            headers={"Authorization": f"Bearer {api.server.root_key}"},
        )
    (made,) = api.emulator.keys(api_id)
    assert not made.deleted, "the server acted although nobody heard the answer"
    assert api.create(api_id), "the next call on the same client works"


def test_faults_are_checked_and_cleared(api: Api) -> None:
    faults = api.emulator.faults
    with pytest.raises(ValueError, match="unknown operation"):
        faults.fail_next("keys.createkey")
    with pytest.raises(ValueError, match="status"):
        faults.fail_next("keys.createKey", status=200)
    with pytest.raises(ValueError, match="times"):
        faults.drop_after_action("keys.createKey", times=0)
    faults.fail_next("apis.createApi")
    faults.drop_after_action("apis.createApi")
    faults.delay("apis.createApi", 1)
    assert "apis.createApi" in repr(faults)
    api.emulator.reset_faults()
    api.ok("apis.createApi", {"name": "fine"})


def test_faults_are_thread_safe(api: Api, api_id: str) -> None:
    api.emulator.faults.fail_next("apis.getApi", times=7, status=500)
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        with httpx.Client(base_url=api.server.url, timeout=5) as client:
            for _ in range(5):
                response = client.post(
                    "/v2/apis.getApi",
                    json={"apiId": api_id},
                    headers={"Authorization": f"Bearer {api.server.root_key}"},
                )
                with lock:
                    statuses.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 23 + [500] * 7
    assert api.emulator.calls["apis.getApi"] == 30


# the server --------------------------------------------------------------------------------------


def test_keep_alive_answers_are_correct_on_one_connection(api: Api, api_id: str) -> None:
    key_id, key = api.create(api_id)
    addresses = set()
    for index in range(50):
        response = api.raw("keys.verifyKey", {"key": key})
        assert response.json()["data"]["keyId"] == key_id
        assert response.http_version == "HTTP/1.1"
        stream = response.extensions["network_stream"]
        addresses.add(stream.get_extra_info("client_addr"))
        if index % 10 == 0:
            api.error("keys.getKey", {"keyId": "key_123456789"}, 404)
    assert len(addresses) == 1, "every call reused the same connection"
    assert api.emulator.calls["keys.verifyKey"] == 50


def test_server_is_quiet(api: Api, api_id: str, capfd: pytest.CaptureFixture[str]) -> None:
    _, key = api.create(api_id)
    api.verify(key)
    api.error("keys.verifyKey", {"key": key, "bad": 1}, 400)
    captured = capfd.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_server_refuses_non_loopback_hosts() -> None:
    for host in ("0.0.0.0", "192.168.1.10", "example.com"):  # noqa: S104 - refused, never bound
        with pytest.raises(ValueError, match="loopback"):
            EmulatorServer(host=host)
    server = EmulatorServer()
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        assert repr(server) == f"EmulatorServer({server.url})"
        assert server.root_key not in repr(server)


def test_command_line_serves_until_terminated() -> None:
    command = [
        sys.executable,
        "-m",
        "unkey_secrets.testing.emulator",
        "--port",
        "0",
        "--root-key",
        "unkey_cli_test",
        "--api",
        "demo",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 10)
        assert ready, "the emulator printed nothing within 10 s"
        first = process.stdout.readline()
        match = re.fullmatch(r"Unkey emulator listening on (http://127\.0\.0\.1:\d+)\n", first)
        assert match, first
        name, api_id = process.stdout.readline().split()[1:]
        assert name == "demo"
        response = httpx.post(
            f"{match.group(1)}/v2/apis.getApi",
            json={"apiId": api_id},
            headers={"Authorization": "Bearer unkey_cli_test"},
        )
        assert response.json()["data"] == {"id": api_id, "name": "demo"}
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert "unkey_cli_test" not in out + err


def test_an_emulator_bug_still_answers_an_envelope(
    api: Api, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: object) -> None:
        raise KeyError("sk_CANARY")

    monkeypatch.setattr(api.emulator, "handle", broken)
    error = api.error("apis.createApi", {"name": "x"}, 500)
    assert error["detail"] == "The emulator failed unexpectedly (KeyError)."
    assert "CANARY" not in capfd.readouterr().err


def test_command_line_refuses_a_non_loopback_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--host", "10.1.2.3"])
    assert raised.value.code == 2
    assert "not a loopback address" in capsys.readouterr().err


# what the emulator accepts, it serves ---------------------------------------------------------


def _nest(levels: int) -> Any:
    """``levels`` objects and arrays, one inside the other, around a number."""
    value: Any = 0
    for level in range(levels):
        value = {"n": value} if level % 2 else [value]
    return value


def _meta(levels: int) -> dict[str, Any]:
    """A meta whose nesting is ``levels`` deep, the meta object itself included."""
    return {"m": _nest(levels - 1)}


def _deep_json(levels: int) -> bytes:
    """``_nest(levels)`` as JSON text, written without recursion (any depth)."""
    opening = "".join('{"n":' if level % 2 else "[" for level in reversed(range(levels)))
    closing = "".join("}" if level % 2 else "]" for level in range(levels))
    return (opening + "0" + closing).encode()


def _strict(content: bytes) -> Any:
    """Parse an answer as JSON proper: ``Infinity`` and ``NaN`` are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(content, parse_constant=refuse)


def _served(api: Api, api_id: str, key_id: str | None, key: str | None) -> None:
    """Every later read of the key and its API answers 200, in the documented shape."""
    reads: list[tuple[str, dict[str, Any]]] = [
        ("apis.getApi", {"apiId": api_id}),
        ("apis.listKeys", {"apiId": api_id, "revalidateKeysCache": True}),
        ("apis.listKeys", {"apiId": api_id, "revalidateKeysCache": True, "limit": 1}),
    ]
    if key_id is not None:
        reads.append(("keys.getKey", {"keyId": key_id}))
    if key is not None:
        reads.append(("keys.verifyKey", {"key": key}))
    for op, body in reads:
        response = api.raw(op, body)
        assert response.status_code == 200, (op, response.text[:300])
        _strict(response.content)
    if key_id is not None:
        # A reroll copies everything the key holds: the new key must be servable too.
        new = api.raw("keys.rerollKey", {"keyId": key_id, "expiration": 60_000})
        assert new.status_code == 200, new.text[:300]
        data = _strict(new.content)["data"]
        for op, body in [
            ("keys.getKey", {"keyId": data["keyId"]}),
            ("keys.verifyKey", {"key": data["key"]}),
            ("apis.listKeys", {"apiId": api_id, "revalidateKeysCache": True}),
        ]:
            response = api.raw(op, body)
            assert response.status_code == 200, (op, response.text[:300])
            _strict(response.content)


def _write_then_read(api: Api, op: str, body: Any, api_id: str, key: tuple[str, str] | None) -> int:
    """Send one write; if it is accepted, check every later read. Returns the write's status."""
    if isinstance(body, bytes):
        headers = {"Authorization": f"Bearer {api.server.root_key}"}
        response = api.raw(op, None, headers=headers, content=body)
    else:
        response = api.raw(op, body)
    if 400 <= response.status_code < 500:
        return response.status_code
    assert response.status_code == 200, response.text[:300]
    data = _strict(response.content)["data"]
    if "apiId" in data:  # a new API: its own reads
        _served(api, data["apiId"], None, None)
        return 200
    key_id = data.get("keyId") if isinstance(data, dict) else None
    plaintext = data.get("key") if isinstance(data, dict) else None
    if key is not None:
        key_id, plaintext = key_id or key[0], plaintext or key[1]
    _served(api, api_id, key_id, plaintext)
    return 200


RATELIMIT = {"name": "burst", "limit": 10, "duration": 60_000, "autoApply": True}

# (what, operation, body, the status Unkey answers): ``{api}`` and ``{key_id}`` stand for a
# fresh API and a key in it, ``{key}`` for that key's plaintext.
HOSTILE: list[tuple[str, str, Any, int]] = [
    (
        "meta 900 deep",
        "keys.createKey",
        b'{"apiId":"{api}","meta":{"m":' + _deep_json(899) + b"}}",
        400,
    ),
    ("meta 400 deep", "keys.createKey", {"apiId": "{api}", "meta": _meta(400)}, 400),
    ("meta 33 deep", "keys.createKey", {"apiId": "{api}", "meta": _meta(33)}, 400),
    ("meta 32 deep", "keys.createKey", {"apiId": "{api}", "meta": _meta(32)}, 200),
    ("meta a float past float64", "keys.createKey", b'{"apiId":"{api}","meta":{"x":1e400}}', 400),
    (
        "meta an integer past float64",
        "keys.createKey",
        b'{"apiId":"{api}","meta":{"x":1' + b"0" * 400 + b"}}",
        400,
    ),
    ("meta an integer past int64", "keys.createKey", {"apiId": "{api}", "meta": {"x": 2**70}}, 200),
    (
        "ratelimit over Unkey's answer bounds",
        "keys.createKey",
        {"apiId": "{api}", "ratelimits": [{**RATELIMIT, "limit": 10**7}]},
        400,
    ),
    (
        "ratelimit duration over 30 days",
        "keys.createKey",
        {"apiId": "{api}", "ratelimits": [{**RATELIMIT, "duration": 10**12}]},
        400,
    ),
    (
        "ratelimit limit past int64",
        "keys.createKey",
        {"apiId": "{api}", "ratelimits": [{**RATELIMIT, "limit": 2**70}]},
        400,
    ),
    (
        "ratelimit at Unkey's bounds",
        "keys.createKey",
        {
            "apiId": "{api}",
            "ratelimits": [{**RATELIMIT, "limit": 1_000_000, "duration": 2_592_000_000}],
        },
        200,
    ),
    ("prefix of one underscore", "keys.createKey", {"apiId": "{api}", "prefix": "_"}, 200),
    (
        "longest prefix and bytes",
        "keys.createKey",
        {"apiId": "{api}", "prefix": "p" * 16, "byteLength": 255},
        200,
    ),
    (
        "update meta 900 deep",
        "keys.updateKey",
        b'{"keyId":"{key_id}","meta":{"m":' + _deep_json(899) + b"}}",
        400,
    ),
    ("update meta 33 deep", "keys.updateKey", {"keyId": "{key_id}", "meta": _meta(33)}, 400),
    (
        "update meta a float past float64",
        "keys.updateKey",
        b'{"keyId":"{key_id}","meta":{"x":-1e999}}',
        400,
    ),
    (
        "update ratelimit over bounds",
        "keys.updateKey",
        {"keyId": "{key_id}", "ratelimits": [{**RATELIMIT, "limit": 2**70, "duration": 2**70}]},
        400,
    ),
    (
        "reroll with a deep unknown member",
        "keys.rerollKey",
        b'{"keyId":"{key_id}","expiration":0,"x":' + _deep_json(900) + b"}",
        200,
    ),
    (
        "verify an unknown ratelimit of 0 per 0 ms",
        "keys.verifyKey",
        {"key": "{key}", "ratelimits": [{"name": "fresh", "limit": 0, "duration": 0}]},
        400,
    ),
    (
        "verify a ratelimit of 1 per 1 ms",
        "keys.verifyKey",
        {"key": "{key}", "ratelimits": [{"name": "fresh", "limit": 1, "duration": 1}]},
        400,
    ),
    (
        "verify a ratelimit over bounds",
        "keys.verifyKey",
        {"key": "{key}", "ratelimits": [{"name": "fresh", "limit": 10**9, "duration": 10**13}]},
        400,
    ),
    (
        "verify an ad hoc ratelimit named past 128 characters",
        "keys.verifyKey",
        {"key": "{key}", "ratelimits": [{"name": "r" * 200, "limit": 5, "duration": 1000}]},
        400,
    ),
    (
        "verify an ad hoc ratelimit at the bounds",
        "keys.verifyKey",
        {
            "key": "{key}",
            "ratelimits": [
                {"name": "r" * 128, "limit": 1_000_000, "duration": 2_592_000_000, "cost": 10**15}
            ],
        },
        200,
    ),
    (
        "verify the key's own ratelimit, limit and duration 0",
        "keys.verifyKey",
        {"key": "{key}", "ratelimits": [{"name": "burst", "limit": 0, "duration": 0}]},
        200,
    ),
    # A lone surrogate, escaped: JSON text allows it, UTF-8 cannot carry it raw.
    ("api with control characters", "apis.createApi", rb'{"name":"\u0000\u202e\ud800 api"}', 200),
]


def _fill(template: Any, values: dict[str, str]) -> Any:
    """Put the fixture's ids in: placeholders are top-level members' values only."""
    if isinstance(template, bytes):
        for name, value in values.items():
            template = template.replace(b"{" + name.encode() + b"}", value.encode())
        return template
    return {
        name: values[value[1:-1]] if isinstance(value, str) and value[1:-1] in values else value
        for name, value in template.items()
    }


@pytest.mark.parametrize(
    ("op", "template", "status"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_a_write_is_refused_or_every_later_read_serves_it(
    api: Api, op: str, template: Any, status: int
) -> None:
    api_id = api.emulator.create_api("hostile")
    key_id, key = api.create(api_id, ratelimits=[RATELIMIT])
    body = _fill(template, {"api": api_id, "key_id": key_id, "key": key})
    assert _write_then_read(api, op, body, api_id, (key_id, key)) == status
    # Whatever was refused, the API and its key are served as before.
    _served(api, api_id, key_id, key)


def test_the_emulators_own_limits_are_refused_with_unkeys_400(api: Api, api_id: str) -> None:
    error = api.error("keys.createKey", {"apiId": api_id, "meta": _meta(40)}, 400)
    assert error["type"] == "https://unkey.com/docs/errors/unkey/application/invalid_input"
    assert [(p["location"], p["message"]) for p in error["errors"]] == [
        ("body.meta", f"must not nest objects and arrays more than {MAX_META_DEPTH} levels deep")
    ]
    headers = {"Authorization": f"Bearer {api.server.root_key}"}
    body = f'{{"apiId":"{api_id}","meta":{{"x":1e400}}}}'.encode()
    error = api.error("keys.createKey", None, 400, headers=headers, content=body)
    assert error["errors"][0]["location"] == "body"
    assert "64-bit float" in error["errors"][0]["message"]


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**320), max_value=10**320)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
_METAS = st.dictionaries(st.text(max_size=8), _JSON, max_size=5)


def _meta_json(meta: dict[str, Any], deep: int | None) -> str:
    """``meta`` as JSON, with a member nested ``deep`` levels below it if asked."""
    text = json.dumps(meta)
    if deep is None:
        return text
    member = '"deep":' + _deep_json(deep).decode()
    return "{" + member + ("," + text[1:] if meta else "}")


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(meta=_METAS, deep=st.none() | st.integers(1, 1200), update=st.booleans())
def test_any_meta_is_refused_or_served(
    api: Api, meta: dict[str, Any], deep: int | None, update: bool
) -> None:
    api_id = api.emulator.create_api("property")
    meta_text = _meta_json(meta, deep)
    if update:
        key_id, key = api.create(api_id)
        body = f'{{"keyId":"{key_id}","meta":{meta_text}}}'
        status = _write_then_read(api, "keys.updateKey", body.encode(), api_id, (key_id, key))
    else:
        body = f'{{"apiId":"{api_id}","meta":{meta_text}}}'
        status = _write_then_read(api, "keys.createKey", body.encode(), api_id, None)
    assert status in (200, 400)
