"""Every location the console script prints for Vault reads ``mount/path``, as the store names it.

The store's results and errors name a Vault location with its KV mount (``secret/unkey/...``);
what the command line computes without I/O (a rotation found done, a reconcile finding, a
listing) names it the same way, in text and JSON. Real OpenBao and the Unkey emulator.
"""

from __future__ import annotations

import dataclasses

import pytest

from unkey_secrets import UnkeyClient, provision, rotate
from unkey_secrets.settle.keys import MARKER_META_KEY
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.openbao import OpenBaoServer

from ._cli_harness import json_lines, run_cli, unkey_env, vault_env

pytestmark = pytest.mark.functional


@pytest.fixture
def store(openbao_server: OpenBaoServer) -> VaultStore:
    return VaultStore(openbao_server.client())


@pytest.fixture
def env(openbao_server: OpenBaoServer, unkey_emulator_server: EmulatorServer) -> dict[str, str]:
    return {**vault_env(openbao_server), **unkey_env(unkey_emulator_server)}


def shown(store: VaultStore, api_id: str, *, key_id: str = "", alias: str = "") -> str:
    """The location as the store's own results name it: ``mount/path``."""
    if alias:
        path = store.alias_location(api_id=api_id, alias=alias)
    else:
        path = store.key_location(api_id=api_id, key_id=key_id)
    return f"{store.mount}/{path}"


def test_a_rotation_found_done_names_the_alias_with_its_mount(
    store: VaultStore, env: dict[str, str], unkey_client: UnkeyClient, unkey_api_id: str
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="payments")
    done = rotate(unkey_client, store, unkey_api_id, alias="payments")
    alias_at = shown(store, unkey_api_id, alias="payments")
    assert done.current is not None
    assert done.current.location == alias_at  # what the rotation itself said
    argv = ["--store", "vault", "rotate", "--api-id", unkey_api_id, "--key-id", first.key_id]

    text = run_cli(argv, env)
    assert text.returncode == 0, text.stderr
    assert f"-> vault {alias_at}" in text.stdout
    assert f"vault {shown(store, unkey_api_id, key_id=done.key_id)}" in text.stdout

    as_json = run_cli(["--json", *argv], env)
    assert as_json.returncode == 0, as_json.stderr
    (record,) = json_lines(as_json.stdout)
    assert record["key_id"] == done.key_id
    assert [a["location"] for a in record["aliases"]] == [alias_at]
    assert record["current"]["location"] == alias_at
    assert record["location"]["location"] == shown(store, unkey_api_id, key_id=done.key_id)


def test_reconcile_names_a_stale_key_with_its_mount(
    store: VaultStore, env: dict[str, str], unkey_client: UnkeyClient, unkey_api_id: str
) -> None:
    gone = provision(unkey_client, store, unkey_api_id, alias="old", mode="fast").key_id
    unkey_client.delete_key(gone)
    key_at = shown(store, unkey_api_id, key_id=gone)
    argv = ["--store", "vault", "reconcile", "--api-id", unkey_api_id, "--alias", "old"]

    text = run_cli([*argv, "--min-age", "0"], env)
    assert text.returncode == 3, text.stderr
    assert f"stale: key {gone} is deleted in Unkey, still stored at {key_at}: " in text.stdout

    applied = run_cli(["--json", *argv, "--min-age", "0", "--apply"], env)
    assert applied.returncode == 3, applied.stderr
    (stale,) = [r for r in json_lines(applied.stdout) if r.get("finding") == "stale"]
    assert stale["location"] == key_at
    assert f"remove {key_at} with an administrator's credential" in stale["action"]


def test_reconcile_names_an_unnamed_key_with_its_mount(
    store: VaultStore, env: dict[str, str], unkey_client: UnkeyClient, unkey_api_id: str
) -> None:
    provision(unkey_client, store, unkey_api_id, alias="svc")
    # A key made for alias svc and stored, whose alias move never happened.
    issued = unkey_client.create_key(unkey_api_id, meta={MARKER_META_KEY: "op_vault_" + "c" * 24})
    store.put(dataclasses.replace(issued, alias="svc"))
    argv = ["--json", "--store", "vault", "reconcile", "--api-id", unkey_api_id, "--alias", "svc"]

    done = run_cli([*argv, "--min-age", "0"], env)
    assert done.returncode == 3, done.stderr
    (unnamed,) = [r for r in json_lines(done.stdout) if r.get("finding") == "unnamed"]
    assert unnamed["key_id"] == issued.key_id
    assert unnamed["location"] == shown(store, unkey_api_id, key_id=issued.key_id)


def test_list_names_each_stored_key_with_its_mount(
    store: VaultStore, env: dict[str, str], unkey_client: UnkeyClient, unkey_api_id: str
) -> None:
    live = provision(unkey_client, store, unkey_api_id, alias="svc", mode="fast").key_id
    gone = provision(unkey_client, store, unkey_api_id, alias="old", mode="fast").key_id
    unkey_client.delete_key(gone)  # listed through the alias: Unkey no longer lists it
    argv = ["--json", "--store", "vault", "list", "--api-id", unkey_api_id]

    done = run_cli([*argv, "--alias", "svc", "--alias", "old"], env)
    assert done.returncode == 0, done.stderr
    *items, _summary = json_lines(done.stdout)
    assert {i["key_id"]: i["location"] for i in items} == {
        live: shown(store, unkey_api_id, key_id=live),
        gone: shown(store, unkey_api_id, key_id=gone),
    }
