"""What a store object remembers per key is bounded: 2,000 keys through one object.

A bulk run or a long-lived service writes every key through one store object. Whatever that
object keeps per key (paths it stored, names it tried to create, paths it has not marked yet)
must stop growing, and a key it has forgotten must still be stored correctly.
"""

from __future__ import annotations

import json
from typing import Any

import hvac
import pytest
import requests
from requests.adapters import BaseAdapter

from unkey_secrets import SecretNotFoundError
from unkey_secrets.stores import SecretStore
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.secretsmanager import InMemorySecretsManager

KEYS = 2_000
#: The key after which what the object remembers must no longer grow.
FLAT_FROM = 1_500


class _VaultWithoutMemory(BaseAdapter):
    """Vault in-process: the token may do anything, nothing exists, every write succeeds."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = requests.Response()
        response.request = request
        response.url = request.url or ""
        response.headers["Content-Type"] = "application/json"
        if response.url.endswith("/sys/capabilities-self"):
            paths = json.loads(request.body or b"{}")["paths"]
            status, body = 200, {"data": {path: ["root"] for path in paths}}
        elif "/sys/internal/ui/mounts/" in response.url:
            status, body = 200, {"data": {"type": "kv", "options": {"version": "2"}}}
        elif request.method == "GET":
            status, body = 404, {"errors": []}
        elif "/metadata/" in response.url:
            status, body = 204, None
        else:
            status, body = 200, {"data": {"version": 1}}
        response.status_code = status
        response._content = b"" if body is None else json.dumps(body).encode()
        return response

    def close(self) -> None:
        pass


def _vault() -> VaultStore:
    store = VaultStore(hvac.Client(url="https://127.0.0.1:8200", token="hvs.unit-token"))
    store.client.adapter.session.mount("https://", _VaultWithoutMemory())
    return store


def _remembered(store: SecretStore) -> dict[str, int]:
    """The size of every collection the store object holds (its SDK client's aside)."""
    return {
        name: len(value)
        for name, value in vars(store).items()
        if hasattr(value, "__len__") and not isinstance(value, (str, bytes))
    }


def _provision_many(store: SecretStore) -> tuple[dict[str, int], dict[str, int]]:
    """Store KEYS keys, each under its own alias; what is remembered at FLAT_FROM and at the end."""
    api_id = "api_memory"
    at_flat: dict[str, int] = {}
    for index in range(KEYS):
        alias = f"svc-{index}"
        key = canary_key(api_id=api_id, alias=alias)
        store.check_writable(api_id=api_id, alias=alias)
        assert store.put(key).created
        store.set_current(key, alias=alias, expected=None)
        if index + 1 == FLAT_FROM:
            at_flat = _remembered(store)
    return at_flat, _remembered(store)


@pytest.mark.parametrize(
    "make", [_vault, lambda: SecretsManagerStore(InMemorySecretsManager())], ids=["vault", "aws"]
)
def test_what_a_store_object_remembers_stops_growing(make: Any) -> None:
    store = make()
    at_flat, at_end = _provision_many(store)
    assert at_end == at_flat, f"grew from key {FLAT_FROM:,} to key {KEYS:,}: {at_flat} -> {at_end}"
    assert max(at_end.values()) < FLAT_FROM, at_end


def test_a_forgotten_key_is_still_stored_correctly() -> None:
    """Vault: a key whose path the object forgot is asked about, never taken as its own."""
    from unkey_secrets.stores._recent import Recent

    store = _vault()
    store._stored = Recent(1)  # remembers the last key only
    store._unmarked = Recent(1)
    first = canary_key(api_id="api_memory", alias="svc")
    store.put(first)
    store.put(canary_key(api_id="api_memory"))
    # first's path is forgotten: the alias move checks Vault that it is stored, and this Vault
    # holds nothing, so the move is refused rather than pointed at a key it cannot vouch for.
    with pytest.raises(SecretNotFoundError, match="is not stored"):
        store.set_current(first, alias="svc", expected=None)


def test_recent_keeps_the_latest_entries() -> None:
    from unkey_secrets.stores._recent import Recent, RecentSet

    recent: Recent[str, int] = Recent(3)
    for index in range(10):
        recent.set(f"k{index}", index)
    assert len(recent) == 3
    assert "k6" not in recent
    assert [recent.get(f"k{index}") for index in (7, 8, 9)] == [7, 8, 9]
    recent.set("k7", 70)  # written again: now the most recent
    recent.set("k10", 10)
    assert "k8" not in recent
    assert recent.get("k7") == 70
    assert recent.pop("k7") == 70
    assert recent.pop("k7") is None
    members: RecentSet[str] = RecentSet(2)
    for name in ("a", "b", "c"):
        members.add(name)
    assert "a" not in members
    assert "b" in members
    assert "c" in members
    assert repr(members) == "RecentSet(2 of 2)"
    with pytest.raises(ValueError, match="at least 1"):
        Recent(0)


def test_a_forgotten_name_is_still_a_no_op() -> None:
    """AWS: a name the object forgot it tried is created again; the answer says it exists."""
    from unkey_secrets.stores._recent import RecentSet

    store = SecretsManagerStore(InMemorySecretsManager())
    store._attempted = RecentSet(1)
    key = canary_key(api_id="api_memory")
    assert store.put(key).created
    store.put(canary_key(api_id="api_memory"))
    assert not store.put(canary_key(api_id=key.api_id, key_id=key.key_id)).created
