"""The Vault store against a real OpenBao dev server: the contract plus Vault's own promises."""

from __future__ import annotations

import json
import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest

from unkey_secrets import (
    ConfigurationError,
    InvalidInputError,
    IssuedKey,
    NotOwnedError,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoredValueError,
    StoreError,
    StoreUnavailableError,
    UnkeyClient,
    provision,
    rotate,
)
from unkey_secrets._payload import MANAGED_BY, alias_fields, key_fields
from unkey_secrets.stores.base import SecretStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.contract import SecretStoreContract, canary_key, random_id
from unkey_secrets.testing.openbao import OpenBaoServer

POLICIES = Path(__file__).resolve().parents[2] / "policies"
MOUNT = "secret"


def plant(server: OpenBaoServer, path: str, data: dict[str, Any]) -> None:
    """Write ``data`` at ``path`` as a foreign tool would: a plain data write, as root."""
    server.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=MOUNT)


def metadata(server: OpenBaoServer, path: str) -> dict[str, Any]:
    answer = server.client().secrets.kv.v2.read_secret_metadata(path=path, mount_point=MOUNT)
    return dict(answer["data"])


def write_metadata(server: OpenBaoServer, path: str, body: dict[str, Any]) -> None:
    server.client().adapter.post(f"/v1/{MOUNT}/metadata/{path}", json=body)


def assert_clean(error: BaseException, key: IssuedKey) -> None:
    """The error, its chain and its rendered traceback never show the plaintext."""
    plaintext = key.secret.reveal()
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert plaintext not in rendered
    assert plaintext not in repr(error.args)
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def store(openbao_server: OpenBaoServer) -> VaultStore:
    return VaultStore(openbao_server.client())


class TestVaultStoreContract(SecretStoreContract):
    """Every store promise, on OpenBao."""

    @pytest.fixture
    def store(self, openbao_server: OpenBaoServer) -> SecretStore:
        self.server = openbao_server
        return VaultStore(openbao_server.client())

    def plant_foreign(self, store: SecretStore, location: str) -> None:
        plant(self.server, location, {"password": "not-ours"})


# -- what put writes ------------------------------------------------------------------------


def test_put_marks_the_path_in_custom_metadata(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    stored = store.put(key)
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    assert stored.location == f"{MOUNT}/{path}"
    assert stored.version == "1"
    custom = metadata(openbao_server, path)["custom_metadata"]
    assert custom["managed-by"] == MANAGED_BY
    assert custom["kind"] == "key"
    assert custom["key_id"] == key.key_id
    assert custom["api_id"] == key.api_id
    assert custom["created_at"].endswith("+00:00")
    assert custom["version"] == "1"
    assert key.secret.reveal() not in repr(custom)


def test_put_leaves_delete_version_after_and_max_versions_alone(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    # An operator prepared the path (say, from a template) with retention settings and our
    # marker: the metadata exists, the data does not. put must finish it and keep the settings.
    key = canary_key()
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    write_metadata(
        openbao_server,
        path,
        {
            "delete_version_after": "2h",
            "max_versions": 3,
            "custom_metadata": {"managed-by": MANAGED_BY, "kind": "key", "team": "billing"},
        },
    )
    stored = store.put(key)
    assert stored.created
    meta = metadata(openbao_server, path)
    assert meta["delete_version_after"] == "2h0m0s"
    assert meta["max_versions"] == 3
    assert meta["custom_metadata"]["team"] == "billing", "an operator's own members are kept"
    assert meta["custom_metadata"]["key_id"] == key.key_id
    assert meta["versions"]["1"]["deletion_time"], "the version expires as configured"
    # A version that expires later is still there now: a repeat is a no-op.
    assert not store.put(key).created
    assert store.get(api_id=key.api_id, key_id=key.key_id).secret == key.secret


def test_an_alias_holds_the_full_key_value_not_a_pointer(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    store.put(key)
    store.set_current(key, alias="svc")
    alias = store.alias_location(api_id=key.api_id, alias="svc")
    answer = openbao_server.client().secrets.kv.v2.read_secret_version(
        path=alias, mount_point=MOUNT, raise_on_deleted_version=True
    )
    data = answer["data"]["data"]
    assert data["format"] == "unkey-secrets/key/v1"
    assert (data["key_id"], data["api_id"], data["alias"]) == (key.key_id, key.api_id, "svc")
    assert data["key"] == key.secret.reveal()
    assert "path" not in data


def move_after_an_operator_edit(
    store: VaultStore,
    server: OpenBaoServer,
    edit: Callable[[dict[str, str]], dict[str, Any]],
) -> tuple[IssuedKey, IssuedKey, dict[str, Any]]:
    """Alias ``svc`` at a first key; an operator writes ``edit(custom_metadata)`` to its
    metadata by hand; the alias moves to a second key. The two keys and the alias's metadata.
    """
    first = canary_key()
    second = canary_key(api_id=first.api_id)
    store.put(first)
    store.put(second)
    store.set_current(first, alias="svc")
    alias = store.alias_location(api_id=first.api_id, alias="svc")
    write_metadata(server, alias, edit(metadata(server, alias)["custom_metadata"]))
    store.set_current(second, alias="svc")
    state = store.alias_state(api_id=first.api_id, alias="svc")
    assert state is not None
    assert state.key_id == second.key_id
    return first, second, metadata(server, alias)


def test_alias_move_keeps_retention_settings(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    _, second, meta = move_after_an_operator_edit(
        store,
        openbao_server,
        lambda custom: {
            "delete_version_after": "24h",
            "max_versions": 5,
            "custom_metadata": custom,
        },
    )
    assert meta["delete_version_after"] == "24h0m0s"
    assert meta["max_versions"] == 5
    assert meta["custom_metadata"]["next_key_id"] == second.key_id
    assert meta["custom_metadata"]["next_version"] == str(meta["current_version"])
    assert meta["custom_metadata"]["kind"] == "alias"


def test_alias_move_keeps_an_operators_own_metadata_members(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    # Added by hand: an owner and a team. Ours are rewritten by the move; these stay.
    first, second, meta = move_after_an_operator_edit(
        store,
        openbao_server,
        lambda custom: {
            "custom_metadata": {**custom, "owner": "payments-oncall", "team": "billing"}
        },
    )
    after = meta["custom_metadata"]
    assert after["owner"] == "payments-oncall"
    assert after["team"] == "billing"
    assert after["next_key_id"] == second.key_id
    assert after["current_key_id"] == first.key_id


# -- crash recovery and races ---------------------------------------------------------------


def test_a_put_killed_after_its_data_is_marked_by_the_retry_without_a_second_version(
    store: VaultStore, openbao_server: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = canary_key()
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(store, "_write_metadata", crash)
        with pytest.raises(KeyboardInterrupt):
            store.put(key)
    meta = metadata(openbao_server, path)
    assert meta["current_version"] == 1
    assert not meta["custom_metadata"], "the data landed, the marker did not"

    stored = store.put(key)
    assert stored.created
    assert stored.version == "1", "recognised as its own write: no second version"
    assert metadata(openbao_server, path)["custom_metadata"]["version"] == "1"
    assert store.get(api_id=key.api_id, key_id=key.key_id).secret == key.secret
    assert not store.put(key).created
    # Another store object (another process) cannot tell it from a foreign write.
    other = canary_key(api_id=key.api_id)
    other_path = store.key_location(api_id=other.api_id, key_id=other.key_id)
    with monkeypatch.context() as patch:
        patch.setattr(store, "_write_metadata", crash)
        with pytest.raises(KeyboardInterrupt):
            store.put(other)
    with pytest.raises(NotOwnedError):
        VaultStore(openbao_server.client()).put(other)
    assert metadata(openbao_server, other_path)["current_version"] == 1


def test_a_lost_answer_to_the_data_write_is_recognised_by_the_retry(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    """The write lands, its answer is lost: the retry marks version 1 instead of writing 2."""
    import requests

    key = canary_key()
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    adapter = store.client.adapter
    real = adapter.request
    lost: list[str] = []

    def lose_the_answer(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        answer = real(method, url, *args, **kwargs)
        if "/data/" in url and not lost:
            lost.append(url)
            raise requests.exceptions.ReadTimeout("the answer never came")
        return answer

    adapter.request = lose_the_answer
    with pytest.raises(StoreUnavailableError) as raised:
        store.put(key)
    assert_clean(raised.value, key)
    stored = store.put(key)
    assert stored.version == "1"
    meta = metadata(openbao_server, path)
    assert meta["current_version"] == 1, "the plaintext is in the history once"
    assert meta["custom_metadata"]["version"] == "1"
    assert store.get(api_id=key.api_id, key_id=key.key_id).secret == key.secret


def test_metadata_without_our_marker_is_not_ours(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    write_metadata(openbao_server, path, {"custom_metadata": {"owner": "someone-else"}})
    with pytest.raises(NotOwnedError):
        store.put(key)
    # Metadata alone is no secret: the cas=0 write lands (nothing is overwritten), and the
    # answer, which shows the metadata, stops the marking.
    meta = metadata(openbao_server, path)
    assert meta["custom_metadata"] == {"owner": "someone-else"}, "their metadata is untouched"
    with pytest.raises(NotOwnedError):
        store.put(key)
    assert metadata(openbao_server, path)["current_version"] == 1, "never written again"


class Interleaving(VaultStore):
    """A store that lets ``meanwhile`` run once, right before its first data write."""

    meanwhile: Any = None

    def _write_data_answer(self, path: str, data: dict[str, Any], *, cas: int) -> dict[str, Any]:
        action, self.meanwhile = self.meanwhile, None
        if action is not None:
            action()
        return super()._write_data_answer(path, data, cas=cas)


def test_two_puts_of_the_same_key_racing_end_in_one_version(
    openbao_server: OpenBaoServer,
) -> None:
    key = canary_key()
    other = VaultStore(openbao_server.client())
    racing = Interleaving(openbao_server.client())
    racing.meanwhile = lambda: other.put(key)
    stored = racing.put(key)
    assert not stored.created, "the other writer won the cas=0 write; this one is a no-op"
    assert stored.version == "1"
    assert racing.get(api_id=key.api_id, key_id=key.key_id).secret == key.secret


def test_a_foreign_write_before_ours_is_not_taken_over(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    racing = Interleaving(openbao_server.client())
    racing.meanwhile = lambda: plant(openbao_server, path, {"password": "theirs"})
    with pytest.raises(NotOwnedError):
        racing.put(key)
    with pytest.raises(NotOwnedError):
        racing.put(key)
    data = openbao_server.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point=MOUNT, raise_on_deleted_version=True
    )
    assert data["data"]["data"] == {"password": "theirs"}
    assert not metadata(openbao_server, path)["custom_metadata"], "never marked ours"


def test_a_marker_that_landed_on_foreign_data_is_not_taken_over(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    # The careful path's race: a foreign write, then our marker (vouching for no version).
    key = canary_key()
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    plant(openbao_server, path, {"password": "theirs"})
    marker = {"managed-by": MANAGED_BY, "kind": "key", "key_id": key.key_id}
    write_metadata(openbao_server, path, {"custom_metadata": marker})
    with pytest.raises(NotOwnedError, match="written before the marker"):
        store.put(key)
    data = openbao_server.client().secrets.kv.v2.read_secret_version(
        path=path, mount_point=MOUNT, raise_on_deleted_version=True
    )
    assert data["data"]["data"] == {"password": "theirs"}


def test_a_write_into_our_path_is_replaced_by_the_key(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    store.put(key)
    plant(openbao_server, path, {"password": "intruder"})
    stored = store.put(key)
    assert stored.created
    assert stored.version == "3", "written again over the unvouched version 2"
    assert store.get(api_id=key.api_id, key_id=key.key_id).secret == key.secret
    assert not store.put(key).created


def test_concurrent_alias_moves_conflict_instead_of_losing_one(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    first = canary_key()
    second = canary_key(api_id=first.api_id)
    third = canary_key(api_id=first.api_id)
    for key in (first, second, third):
        store.put(key)
    store.set_current(first, alias="svc")

    racing = Interleaving(openbao_server.client())
    racing.meanwhile = lambda: store.set_current(second, alias="svc")
    with pytest.raises(StoreConflictError) as raised:
        racing.set_current(third, alias="svc")
    assert "moved" in str(raised.value)
    assert store.get_current(api_id=first.api_id, alias="svc").key_id == second.key_id
    # Retrying after the conflict works.
    assert racing.set_current(third, alias="svc").created
    assert store.get_current(api_id=first.api_id, alias="svc").key_id == third.key_id


def test_alias_metadata_is_trusted_only_for_the_version_it_describes(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    first = canary_key()
    second = canary_key(api_id=first.api_id)
    store.put(first)
    store.put(second)
    store.set_current(first, alias="svc")
    alias = store.alias_location(api_id=first.api_id, alias="svc")
    key_path = store.key_location(api_id=second.api_id, key_id=second.key_id)
    # A mover that died after its data write, before updating the metadata.
    openbao_server.client().secrets.kv.v2.create_or_update_secret(
        path=alias,
        secret=alias_fields(key_id=second.key_id, api_id=second.api_id, path=key_path),
        cas=1,
        mount_point=MOUNT,
    )
    again = store.set_current(first, alias="svc")
    assert again.created, "stale metadata (version 1 of 2) is not a reason to skip the write"
    assert again.version == "3"
    assert store.get_current(api_id=first.api_id, alias="svc").key_id == first.key_id


def test_set_current_refuses_a_key_that_was_never_stored(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    with pytest.raises(SecretNotFoundError, match="put it before"):
        store.set_current(key, alias="svc")
    alias = store.alias_location(api_id=key.api_id, alias="svc")
    with pytest.raises(hvac.exceptions.InvalidPath):
        metadata(openbao_server, alias)


def test_set_current_refuses_a_key_path(store: VaultStore) -> None:
    key = canary_key()
    store.put(key)
    odd = VaultStore(store.client, alias_template="unkey/{api_id}/{alias}")
    # The alias "name" renders to the key's own path: it is ours, but not an alias.
    with pytest.raises(StoreConflictError):
        odd.set_current(key, alias=key.key_id)


# -- reading --------------------------------------------------------------------------------


def test_get_current_refuses_an_alias_pointing_elsewhere(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    store.put(key)
    store.set_current(key, alias="svc")
    alias = store.alias_location(api_id=key.api_id, alias="svc")
    plant(openbao_server, alias, alias_fields(key_id=key.key_id, api_id=key.api_id, path="x/y"))
    with pytest.raises(StoredValueError):
        store.get_current(api_id=key.api_id, alias="svc")


def test_get_of_a_foreign_value_is_a_stored_value_error(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    api_id, key_id = random_id("api"), random_id("key")
    plant(openbao_server, store.key_location(api_id=api_id, key_id=key_id), {"k": "v"})
    with pytest.raises(StoredValueError):
        store.get(api_id=api_id, key_id=key_id)


def test_a_deleted_key_reads_as_not_found_and_is_not_rewritten(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    key = canary_key()
    store.put(key)
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    openbao_server.client().secrets.kv.v2.delete_latest_version_of_secret(
        path=path, mount_point=MOUNT
    )
    with pytest.raises(SecretNotFoundError):
        store.get(api_id=key.api_id, key_id=key.key_id)
    with pytest.raises(StoreConflictError, match="deleted"):
        store.put(key)


# -- KV v1: read-only -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def kv1_mount(openbao_server: OpenBaoServer) -> str:
    mount = "kv1-" + random_id("m").lower().replace("_", "")
    openbao_server.enable_kv_v1(mount)
    return mount


def test_kv_v1_is_read_only(openbao_server: OpenBaoServer, kv1_mount: str) -> None:
    store = VaultStore(openbao_server.client(), mount=kv1_mount, kv_version=1)
    key = canary_key()
    with pytest.raises(ConfigurationError, match="KV v2"):
        store.put(key)
    with pytest.raises(ConfigurationError, match="KV v2"):
        store.set_current(key, alias="svc")

    root = openbao_server.client().secrets.kv.v1
    key_path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    root.create_or_update_secret(path=key_path, secret=key_fields(key), mount_point=kv1_mount)
    alias = store.alias_location(api_id=key.api_id, alias="svc")
    root.create_or_update_secret(
        path=alias,
        secret=alias_fields(key_id=key.key_id, api_id=key.api_id, path=key_path),
        mount_point=kv1_mount,
    )
    read = store.get(api_id=key.api_id, key_id=key.key_id)
    assert read.secret == key.secret
    assert read.version is None
    assert read.location == f"{kv1_mount}/{key_path}"
    assert store.get_current(api_id=key.api_id, alias="svc").secret == key.secret
    with pytest.raises(SecretNotFoundError):
        store.get(api_id=key.api_id, key_id=random_id("key"))


# -- least privilege ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def policy_tokens(openbao_server: OpenBaoServer) -> dict[str, str]:
    tokens = {}
    for role in ("writer", "reader"):
        text = (POLICIES / f"vault-{role}.hcl").read_text()
        openbao_server.write_policy(f"unkey-{role}", text)
        tokens[role] = openbao_server.create_token(f"unkey-{role}")
    return tokens


def test_the_writer_policy_writes_and_moves_but_cannot_read(
    openbao_server: OpenBaoServer, policy_tokens: dict[str, str]
) -> None:
    writer = VaultStore(openbao_server.client(policy_tokens["writer"]))
    reader = VaultStore(openbao_server.client(policy_tokens["reader"]))
    first = canary_key()
    second = canary_key(api_id=first.api_id)

    assert writer.put(first).created
    assert not writer.put(first).created
    assert writer.set_current(first, alias="svc").created
    assert not writer.set_current(first, alias="svc").created
    writer.put(second)
    assert writer.set_current(second, alias="svc").version == "2"

    with pytest.raises(StoreAccessError) as raised:
        writer.get(api_id=first.api_id, key_id=first.key_id)
    assert "403" in str(raised.value)
    assert_clean(raised.value, first)
    with pytest.raises(StoreAccessError):
        writer.get_current(api_id=first.api_id, alias="svc")

    assert reader.get(api_id=first.api_id, key_id=first.key_id).secret == first.secret
    assert reader.get_current(api_id=first.api_id, alias="svc").secret == second.secret
    with pytest.raises(StoreAccessError):
        reader.put(canary_key())


def test_the_writer_policy_stays_inside_its_prefix(
    openbao_server: OpenBaoServer, policy_tokens: dict[str, str]
) -> None:
    outside = VaultStore(
        openbao_server.client(policy_tokens["writer"]), key_template="elsewhere/{key_id}"
    )
    with pytest.raises(StoreAccessError):
        outside.put(canary_key())


# -- errors ---------------------------------------------------------------------------------


def test_a_bad_token_is_an_access_error(openbao_server: OpenBaoServer) -> None:
    store = VaultStore(openbao_server.client("not-a-token"))
    key = canary_key()
    with pytest.raises(StoreAccessError) as raised:
        store.put(key)
    assert_clean(raised.value, key)


def test_an_unknown_mount_is_not_reported_as_a_missing_key(
    openbao_server: OpenBaoServer,
) -> None:
    store = VaultStore(openbao_server.client(), mount="no-such-mount")
    with pytest.raises(StoreError) as raised:
        store.get(api_id=random_id("api"), key_id=random_id("key"))
    assert not isinstance(raised.value, SecretNotFoundError)


def test_an_unreachable_server_is_unavailable_and_leaks_nothing(closed_port: int) -> None:
    client = hvac.Client(url=f"http://127.0.0.1:{closed_port}", token="t", timeout=2)
    store = VaultStore(client)
    key = canary_key()
    with pytest.raises(StoreUnavailableError) as raised:
        store.put(key)
    assert_clean(raised.value, key)
    with pytest.raises(StoreUnavailableError):
        store.get(api_id=key.api_id, key_id=key.key_id)


def test_a_stopped_server_is_unavailable_midway(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The caller's settings never reach the server, and it writes nothing to HOME.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("BAO_DEV_LISTEN_ADDRESS", "0.0.0.0:8200")
    monkeypatch.setenv("BAO_DEV_ROOT_TOKEN_ID", "from-the-caller")
    monkeypatch.setenv("VAULT_TOKEN", "from-the-caller")
    with OpenBaoServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.root_token != "from-the-caller"
        store = VaultStore(server.client())
        key = canary_key()
        store.put(key)
        assert list(tmp_path.iterdir()) == []
    assert not server.running
    with pytest.raises(StoreUnavailableError) as raised:
        store.set_current(key, alias="svc")
    assert_clean(raised.value, key)


def test_the_server_runs_on_loopback_without_caller_settings(
    openbao_server: OpenBaoServer,
) -> None:
    assert openbao_server.url.startswith("http://127.0.0.1:")
    assert openbao_server.root_token not in repr(openbao_server)
    health = openbao_server.client().sys.read_health_status(method="GET")
    assert health["initialized"]
    assert not health["sealed"]


def test_the_writer_policy_rotates_by_alias_without_reading_a_key(
    openbao_server: OpenBaoServer,
    policy_tokens: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    writer = VaultStore(openbao_server.client(policy_tokens["writer"]))
    first = provision(unkey_client, writer, unkey_api_id, alias="svc")
    result = rotate(unkey_client, writer, unkey_api_id, alias="svc")
    assert result.original_key_id == first.key_id
    again = rotate(unkey_client, writer, unkey_api_id, first.key_id)
    assert (again.outcome, again.key_id) == ("already-done", result.key_id)
    with pytest.raises(StoreAccessError):
        writer.get_current(api_id=unkey_api_id, alias="svc")


# -- preflight: configuration checked live, before Unkey is called -------------------------------


@pytest.fixture
def vault_env(openbao_server: OpenBaoServer, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """VAULT_ADDR and VAULT_TOKEN for the session's server; no other Vault setting."""
    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_VAULT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VAULT_ADDR", openbao_server.url)
    monkeypatch.setenv("VAULT_TOKEN", openbao_server.root_token)
    return monkeypatch


def refused_before_unkey(
    store: VaultStore, unkey_client: UnkeyClient, unkey_emulator: Any, api_id: str
) -> ConfigurationError:
    before = unkey_emulator.calls.copy()
    with pytest.raises(ConfigurationError) as raised:
        provision(unkey_client, store, api_id, alias="svc")
    assert unkey_emulator.calls == before, "Unkey was called"
    assert unkey_emulator.keys(api_id) == []
    return raised.value


def test_a_bogus_vault_token_is_refused_before_unkey(
    vault_env: pytest.MonkeyPatch, unkey_client: UnkeyClient, unkey_emulator: Any, unkey_api_id: str
) -> None:
    vault_env.setenv("VAULT_TOKEN", "hvs.bogus")
    error = refused_before_unkey(
        VaultStore.from_settings(), unkey_client, unkey_emulator, unkey_api_id
    )
    assert "VAULT_TOKEN" in str(error)
    assert "hvs.bogus" not in str(error)


def test_a_dead_vault_addr_is_refused_before_unkey(
    vault_env: pytest.MonkeyPatch,
    closed_port: int,
    unkey_client: UnkeyClient,
    unkey_emulator: Any,
    unkey_api_id: str,
) -> None:
    vault_env.setenv("VAULT_ADDR", f"http://127.0.0.1:{closed_port}")
    error = refused_before_unkey(
        VaultStore.from_settings(), unkey_client, unkey_emulator, unkey_api_id
    )
    assert "could not reach Vault" in str(error)
    assert "VAULT_ADDR" in str(error)


def test_a_missing_mount_is_refused_before_unkey(
    vault_env: pytest.MonkeyPatch, unkey_client: UnkeyClient, unkey_emulator: Any, unkey_api_id: str
) -> None:
    vault_env.setenv("UNKEY_SECRETS_VAULT_MOUNT", "no-such-mount")
    error = refused_before_unkey(
        VaultStore.from_settings(), unkey_client, unkey_emulator, unkey_api_id
    )
    assert "'no-such-mount'" in str(error)
    assert "UNKEY_SECRETS_VAULT_MOUNT" in str(error)


def test_a_reader_token_is_refused_before_unkey(
    openbao_server: OpenBaoServer,
    policy_tokens: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_emulator: Any,
    unkey_api_id: str,
) -> None:
    reader = VaultStore(openbao_server.client(policy_tokens["reader"]))
    error = refused_before_unkey(reader, unkey_client, unkey_emulator, unkey_api_id)
    assert "policies/vault-writer.hcl" in str(error)
    # The reader's own token, with Vault's default policy (which grants capabilities-self).
    answer = openbao_server.client().auth.token.create(policies=["unkey-reader"], ttl="10m")
    reader = VaultStore(openbao_server.client(answer["auth"]["client_token"]))
    error = refused_before_unkey(reader, unkey_client, unkey_emulator, unkey_api_id)
    assert "lacks create/update on secret/data/unkey/" in str(error)
    assert "policies/vault-writer.hcl" in str(error)


def test_a_kv_v1_mount_with_the_default_kv_version_is_refused_before_unkey(
    vault_env: pytest.MonkeyPatch,
    openbao_server: OpenBaoServer,
    kv1_mount: str,
    unkey_client: UnkeyClient,
    unkey_emulator: Any,
    unkey_api_id: str,
) -> None:
    vault_env.setenv("UNKEY_SECRETS_VAULT_MOUNT", kv1_mount)
    store = VaultStore.from_settings()
    assert store.kv_version == 2
    error = refused_before_unkey(store, unkey_client, unkey_emulator, unkey_api_id)
    assert "KV v1" in str(error)
    assert "UNKEY_SECRETS_VAULT_KV_VERSION" in str(error)
    try:
        listed = openbao_server.client().adapter.request("LIST", f"/v1/{kv1_mount}")
    except hvac.exceptions.InvalidPath:
        listed = None  # an empty mount lists as 404
    assert listed is None or "data/" not in json.dumps(listed), "nothing written at .../data/"


def test_the_preflight_is_paid_once_per_store_object(openbao_server: OpenBaoServer) -> None:
    store = VaultStore(openbao_server.client())
    sent = count_requests(store)
    api_id = random_id("api")
    store.check_writable(api_id=api_id, alias="svc")
    assert [url.split("/v1/")[1] for _, url in sent] == [
        f"sys/internal/ui/mounts/{MOUNT}",
        "sys/capabilities-self",
    ]
    for _ in range(3):
        store.check_writable(api_id=api_id, alias="svc")
    assert len(sent) == 2, "cached"
    store.check_writable(api_id=random_id("api"))
    assert len(sent) == 3, "other paths: their capabilities only"
    VaultStore(openbao_server.client(), preflight=False).check_writable(api_id=api_id)


# -- the write path at its floor -------------------------------------------------------------------


def count_requests(store: VaultStore) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []
    adapter = store.client.adapter
    inner = adapter.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append((method.upper(), url))
        return inner(method, url, *args, **kwargs)

    adapter.request = request
    return sent


def test_a_new_key_costs_a_cas_0_write_and_one_metadata_write(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    sent = count_requests(store)
    key = canary_key()
    assert store.put(key).created
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    assert sent == [
        ("POST", f"/v1/{MOUNT}/data/{path}"),
        ("POST", f"/v1/{MOUNT}/metadata/{path}"),
    ]
    # The key is fully ours: key_entry vouches for it, an alias may name it.
    assert store.key_entry(api_id=key.api_id, key_id=key.key_id) is not None
    other = VaultStore(openbao_server.client())
    assert not other.put(key).created
    other.set_current(key, alias="svc")
    assert other.get_current(api_id=key.api_id, alias="svc").secret == key.secret


def test_sixteen_threads_share_a_store_without_overflowing_its_pool(
    openbao_server: OpenBaoServer, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    store = VaultStore(openbao_server.client(), max_connections=16)
    api_id = random_id("api")
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: store.put(canary_key(api_id=api_id)), range(96)))
    assert all(r.created for r in results)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_max_connections_comes_from_the_settings(vault_env: pytest.MonkeyPatch) -> None:
    vault_env.setenv("UNKEY_SECRETS_VAULT_MAX_CONNECTIONS", "24")
    store = VaultStore.from_settings()
    adapter = store.client.adapter.session.get_adapter(store.client.url)
    assert adapter._pool_maxsize == 24


# -- constructor errors with frame locals ----------------------------------------------------------


def test_constructor_errors_render_with_frame_locals(
    vault_env: pytest.MonkeyPatch, closed_port: int
) -> None:
    """TracebackException(capture_locals=True) of a constructor error keeps the error."""
    failures: list[BaseException] = []
    with pytest.raises(InvalidInputError) as bad_template:
        VaultStore(hvac.Client(url="http://127.0.0.1:1", token="t"), key_template="{nope}")
    failures.append(bad_template.value)
    vault_env.setenv("VAULT_ADDR", f"http://127.0.0.1:{closed_port}")
    vault_env.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", "approle")
    vault_env.setenv("UNKEY_SECRETS_VAULT_ROLE_ID", "role")
    vault_env.setenv("UNKEY_SECRETS_VAULT_SECRET_ID", "secret-id-canary")
    with pytest.raises(StoreUnavailableError) as dead_login:
        VaultStore.from_settings()
    failures.append(dead_login.value)
    for error in failures:
        rendered = "".join(
            traceback.TracebackException.from_exception(error, capture_locals=True).format()
        )
        assert type(error).__name__ in rendered
        assert "secret-id-canary" not in rendered
    half = VaultStore.__new__(VaultStore)
    assert repr(half) == "VaultStore(url=None, mount=None, kv_version=None, key_template=None)"


def test_a_value_nested_too_deeply_is_a_stored_value_error(
    store: VaultStore, openbao_server: OpenBaoServer
) -> None:
    import requests

    deep = "[" * 5000 + "1" + "]" * 5000  # arrays: OpenBao limits the number of strings
    api_id = random_id("api")
    path = store.alias_location(api_id=api_id, alias="deep")
    root = openbao_server.client()
    written = requests.post(
        f"{root.url}/v1/secret/data/{path}",
        data='{"data": {"deep": ' + deep + "}}",
        headers={"X-Vault-Token": root.token},
        timeout=10,
    )
    assert written.ok, written.status_code
    with pytest.raises(StoredValueError, match="could not be decoded"):
        store.get_current(api_id=api_id, alias="deep")
