"""An operator deletes a Vault alias's current KV version, or ``delete_version_after`` does.

Real OpenBao, the real console script and the Unkey emulator. ``bao kv delete`` (a soft delete
of the latest version), ``bao kv destroy`` and ``delete_version_after`` on the path or on the
mount each leave the alias's metadata naming its key: readers and ``show`` say which version
went and what to run, ``rotate --alias`` and ``provision --alias --replace`` proceed from the
metadata and store a readable version, and ``doctor`` and the write paths warn of
``delete_version_after``.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets import (
    DeletedVersionError,
    IssuedKey,
    SecretNotFoundError,
    StoreConflictError,
    UnkeyClient,
    UnkeySecretsError,
    provision,
    rotate,
)
from unkey_secrets.config import KeyReader, KeyVersionDeletedError
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.openbao import OpenBaoServer

from ._cli_harness import json_lines, run_cli, unkey_env, vault_env

pytestmark = pytest.mark.functional

MOUNT = "secret"


# -- what an operator does, as root ------------------------------------------------------------


def kv_delete(server: OpenBaoServer, store: VaultStore, api_id: str, alias: str = "svc") -> int:
    """``bao kv delete`` of the alias (its latest version); the version deleted."""
    path = store.alias_location(api_id=api_id, alias=alias)
    client = server.client()
    client.secrets.kv.v2.delete_latest_version_of_secret(path=path, mount_point=store.mount)
    meta = client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=store.mount)
    version: int = meta["data"]["current_version"]
    return version


def kv_destroy(server: OpenBaoServer, store: VaultStore, api_id: str, alias: str = "svc") -> int:
    """``bao kv destroy`` of the alias's current version (no delete first); that version."""
    path = store.alias_location(api_id=api_id, alias=alias)
    client = server.client()
    meta = client.secrets.kv.v2.read_secret_metadata(path=path, mount_point=store.mount)
    version: int = meta["data"]["current_version"]
    client.secrets.kv.v2.destroy_secret_versions(
        path=path, versions=[version], mount_point=store.mount
    )
    return version


def set_path_delete_version_after(
    server: OpenBaoServer, store: VaultStore, api_id: str, after: str, alias: str = "svc"
) -> None:
    """``bao kv metadata put -delete-version-after=<after>`` on the alias path (only that)."""
    path = store.alias_location(api_id=api_id, alias=alias)
    server.client().adapter.post(
        f"/v1/{store.mount}/metadata/{path}", json={"delete_version_after": after}
    )


def set_mount_delete_version_after(server: OpenBaoServer, mount: str, after: str) -> None:
    """``bao write <mount>/config delete_version_after=<after>``."""
    server.client().adapter.post(f"/v1/{mount}/config", json={"delete_version_after": after})


def wait_until_deleted(store: VaultStore, api_id: str, alias: str = "svc") -> DeletedVersionError:
    """Poll the alias until Vault answers its read as deleted.

    Vault applies delete_version_after on read, once the version's deletion_time has passed
    (a few seconds at most here).
    """
    deadline = time.monotonic() + 15
    while True:
        try:
            store.get_current(api_id=api_id, alias=alias)
        except DeletedVersionError as exc:
            return exc
        assert time.monotonic() < deadline, "Vault never deleted the version"
        time.sleep(0.05)


@pytest.fixture
def kv_mount(openbao_server: OpenBaoServer) -> Iterator[str]:
    """A KV v2 mount of this test's own (the session's ``secret/`` keeps its config)."""
    mount = "kv-" + secrets.token_hex(4)
    client = openbao_server.client()
    client.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    yield mount
    client.sys.disable_secrets_engine(path=mount)  # type: ignore[no-untyped-call]


@pytest.fixture
def store(openbao_server: OpenBaoServer) -> VaultStore:
    return VaultStore(openbao_server.client())


@pytest.fixture
def env(openbao_server: OpenBaoServer, unkey_emulator_server: EmulatorServer) -> dict[str, str]:
    return {**vault_env(openbao_server), **unkey_env(unkey_emulator_server)}


def cli(env: dict[str, str], *args: str) -> Any:
    return run_cli(["--json", "--store", "vault", *args], env)


def assert_names_the_fix(message: str, api_id: str, version: int, location: str) -> None:
    assert f"the current version {version} of {location} was" in message
    assert f"`unkey-secrets --store vault rotate --api-id {api_id} --alias svc`" in message


# -- readers: never "nothing stored", never a guessed key ---------------------------------------


def test_a_reader_of_a_deleted_alias_version_is_told_which_version_went_and_what_to_run(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    version = kv_delete(openbao_server, store, unkey_api_id)
    location = f"{MOUNT}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"

    with pytest.raises(DeletedVersionError) as raised:
        store.get_current(api_id=unkey_api_id, alias="svc")
    error = raised.value
    assert not isinstance(error, SecretNotFoundError), "something was stored: not 'not found'"
    assert (error.version, error.destroyed, error.key_id) == (version, False, first.key_id)
    assert error.deleted_at is not None
    assert error.deleted_at.endswith("Z")
    assert error.location == location
    message = str(error)
    assert_names_the_fix(message, unkey_api_id, version, location)
    assert f"deleted (at {error.deleted_at})" in message
    assert f"still names {first.key_id}" in message
    assert f"bao kv undelete -versions={version} {location}" in message

    # The app's reader: a reader-side error of its own, with the same fix; no key served.
    reader = KeyReader(store, max_age=60)
    with pytest.raises(KeyVersionDeletedError) as read:
        reader.get(api_id=unkey_api_id, alias="svc")
    assert isinstance(read.value, DeletedVersionError)
    assert not isinstance(read.value, SecretNotFoundError)
    assert read.value.key_id == first.key_id
    assert "provision" not in str(read.value)
    assert_names_the_fix(str(read.value), unkey_api_id, version, location)
    # Nothing ever stored is still that, and only that.
    with pytest.raises(SecretNotFoundError) as never:
        store.get_current(api_id=unkey_api_id, alias="never-stored")
    assert not isinstance(never.value, DeletedVersionError)


def test_a_destroyed_alias_version_is_named_destroyed_without_an_undelete(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    version = kv_destroy(openbao_server, store, unkey_api_id)
    with pytest.raises(DeletedVersionError) as raised:
        store.get_current(api_id=unkey_api_id, alias="svc")
    assert (raised.value.destroyed, raised.value.deleted_at) == (True, None)
    assert raised.value.key_id == first.key_id
    assert f"the current version {version} of" in str(raised.value)
    assert "destroyed" in str(raised.value)
    assert "undelete" not in str(raised.value), "a destroyed version cannot come back"
    # Moving the alias to the key it names (capture --alias) is no no-op over a version readers
    # cannot read: it writes that key again.
    key = store.get(api_id=unkey_api_id, key_id=first.key_id)
    again = store.set_current(
        IssuedKey(api_id=unkey_api_id, key_id=first.key_id, secret=key.secret), alias="svc"
    )
    assert again.created
    assert again.version == str(version + 1)
    assert store.get_current(api_id=unkey_api_id, alias="svc").key_id == first.key_id
    # Destroyed again; the rotation stores a readable version over it.
    kv_destroy(openbao_server, store, unkey_api_id)
    result = rotate(unkey_client, store, unkey_api_id, alias="svc")
    assert result.original_key_id == first.key_id
    assert store.get_current(api_id=unkey_api_id, alias="svc").key_id == result.key_id


# -- the CLI: show names it, rotate and provision --replace recover ---------------------------


def test_show_names_the_deleted_version_and_the_rotation_that_fixes_it(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    version = kv_delete(openbao_server, store, unkey_api_id)
    location = f"{MOUNT}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"
    done = cli(env, "show", "--api-id", unkey_api_id, "--alias", "svc")
    assert done.returncode == 1, done.stdout
    (record,) = json_lines(done.stdout)
    assert record["error"] == "DeletedVersionError"
    assert record["location"] == location
    assert "holds no alias" not in record["message"]
    assert f"still names {first.key_id}" in record["message"]
    assert_names_the_fix(record["message"], unkey_api_id, version, location)


def test_an_alias_its_metadata_does_not_vouch_for_names_a_command_that_repairs_it(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    path = store.alias_location(api_id=unkey_api_id, alias="svc")
    # Another tool writes the alias's data: a version no metadata of ours vouches for.
    openbao_server.client().secrets.kv.v2.create_or_update_secret(
        path=path, secret={"key": "not-ours"}, mount_point=MOUNT
    )
    with pytest.raises(StoreConflictError) as raised:
        store.alias_state(api_id=unkey_api_id, alias="svc")
    message = str(raised.value)
    assert "set_current" not in message, "not a command"
    command = f"unkey-secrets --store vault capture --api-id {unkey_api_id} --alias svc --key-id"
    assert f"`{command} KEY_ID` with that key on stdin" in message
    # That command, as written, repairs it.
    key = store.get(api_id=unkey_api_id, key_id=first.key_id)
    done = run_cli(
        [*command.split()[1:], first.key_id],
        env,
        stdin=key.secret.reveal().encode(),
    )
    assert done.returncode == 0, done.stderr
    assert store.get_current(api_id=unkey_api_id, alias="svc").key_id == first.key_id
    assert store.alias_state(api_id=unkey_api_id, alias="svc") is not None


def test_verify_reports_the_deleted_alias_and_goes_on_to_the_next(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    provision(unkey_client, store, unkey_api_id, alias="svc")
    good = provision(unkey_client, store, unkey_api_id, alias="good")
    version = kv_delete(openbao_server, store, unkey_api_id)
    location = f"{MOUNT}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"
    done = cli(env, "verify", "--api-id", unkey_api_id, "--alias", "svc", "--alias", "good")
    assert done.returncode == 3, done.stderr
    deleted, verified, summary = json_lines(done.stdout)
    assert deleted["alias"] == "svc"
    assert deleted["ok"] is False
    # No key was read: the record says what happened to the alias's version instead.
    assert (deleted["key_id"], deleted["version_gone"]) == (None, "deleted")
    assert_names_the_fix(deleted["problem"], unkey_api_id, version, location)
    assert (verified["alias"], verified["ok"], verified["key_id"]) == ("good", True, good.key_id)
    assert verified["version_gone"] is None
    assert summary["problems"] == 1


@pytest.mark.parametrize("gone", ["deleted", "destroyed"])
def test_verify_in_text_says_the_alias_version_was_deleted_or_destroyed(
    gone: str,
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    remove = kv_delete if gone == "deleted" else kv_destroy
    version = remove(openbao_server, store, unkey_api_id)
    location = f"{MOUNT}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"
    argv = ["--store", "vault", "verify", "--api-id", unkey_api_id, "--alias", "svc"]

    done = run_cli(argv, env)
    assert done.returncode == 3, done.stderr
    line, summary = done.stdout.splitlines()
    assert line.startswith(
        f"PROBLEM  alias svc: its current version was {gone}: "
        f"the current version {version} of {location} was {gone}"
    ), line
    assert "?" not in line
    assert f"its metadata still names {first.key_id}" in line
    assert summary == f"1 checked, 1 problem(s) (API {unkey_api_id}, vault)"

    (record, _) = json_lines(run_cli(["--json", *argv], env).stdout)
    assert (record["key_id"], record["version_gone"]) == (None, gone)


def test_rotate_by_alias_proceeds_from_the_metadata_over_a_deleted_version(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    version = kv_delete(openbao_server, store, unkey_api_id)
    done = cli(env, "rotate", "--api-id", unkey_api_id, "--alias", "svc")
    assert done.returncode == 0, done.stderr
    (record,) = json_lines(done.stdout)
    assert record["original_key_id"] == first.key_id
    # The warning said what it found, and that the rotation is what repairs it.
    assert f"the current version {version} of" in done.stderr
    assert "WARNING" in done.stderr
    # The alias holds a readable version naming the new key; the old key is on its grace.
    current = store.get_current(api_id=unkey_api_id, alias="svc")
    assert current.key_id == record["key_id"]
    assert int(current.version or 0) == version + 1
    assert unkey_client.get_key(first.key_id).expires is not None
    shown = cli(env, "show", "--api-id", unkey_api_id, "--alias", "svc")
    assert shown.returncode == 0, shown.stderr
    assert json_lines(shown.stdout)[0]["key_id"] == record["key_id"]


def test_provision_replace_proceeds_over_a_deleted_version(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    kv_delete(openbao_server, store, unkey_api_id)
    # Without --replace, the alias is still taken: it names a key.
    taken = cli(env, "provision", "--api-id", unkey_api_id, "--alias", "svc")
    assert taken.returncode == 1
    assert "names a key already" in json_lines(taken.stdout)[0]["message"]
    done = cli(env, "provision", "--api-id", unkey_api_id, "--alias", "svc", "--replace")
    assert done.returncode == 0, done.stderr
    (record,) = json_lines(done.stdout)
    assert store.get_current(api_id=unkey_api_id, alias="svc").key_id == record["key_id"]
    assert unkey_client.get_key(first.key_id).expires is not None, "the old key is cut"


# -- delete_version_after: on the path, on the mount ------------------------------------------


def test_delete_version_after_on_the_alias_path_is_warned_of_and_rotated_out_of(
    openbao_server: OpenBaoServer,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = VaultStore(openbao_server.client())
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    set_path_delete_version_after(openbao_server, store, unkey_api_id, "1s")
    rotator = VaultStore(openbao_server.client())
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.vault"):
        second = rotate(unkey_client, rotator, unkey_api_id, alias="svc")
    location = f"{MOUNT}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"
    warnings = [r.getMessage() for r in caplog.records if "delete_version_after" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert f"alias {location} sets delete_version_after (1s)" in warnings[0]
    assert f"bao kv metadata put -delete-version-after=0s {location}" in warnings[0]
    # The operator follows the warning; the version written under it still goes, on read.
    set_path_delete_version_after(openbao_server, store, unkey_api_id, "0s")
    error = wait_until_deleted(store, unkey_api_id)
    assert (error.key_id, error.destroyed) == (second.key_id, False)
    assert_names_the_fix(str(error), unkey_api_id, error.version, location)
    third = rotate(unkey_client, store, unkey_api_id, alias="svc")
    assert third.original_key_id == second.key_id != first.key_id
    assert store.get_current(api_id=unkey_api_id, alias="svc").key_id == third.key_id


def test_delete_version_after_on_the_mount_is_warned_of_and_rotated_out_of(
    openbao_server: OpenBaoServer,
    kv_mount: str,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_mount_delete_version_after(openbao_server, kv_mount, "2s")
    store = VaultStore(openbao_server.client(), mount=kv_mount)
    assert store.mount_delete_version_after() == 2.0
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.vault"):
        first = provision(unkey_client, store, unkey_api_id, alias="svc")
    warnings = [r.getMessage() for r in caplog.records if "delete_version_after" in r.getMessage()]
    assert len(warnings) == 1, "once per store object, not per write"
    assert f"on the mount {kv_mount}/config" in warnings[0]
    # The operator turns it off: versions written under it still go (the key's path too).
    set_mount_delete_version_after(openbao_server, kv_mount, "0s")
    assert store.mount_delete_version_after() == 0.0
    error = wait_until_deleted(store, unkey_api_id)
    location = f"{kv_mount}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"
    assert error.key_id == first.key_id
    assert error.location == location
    assert f"--store vault --mount {kv_mount} rotate --api-id {unkey_api_id} --alias svc" in str(
        error
    )
    done = cli(
        {**env, "UNKEY_SECRETS_VAULT_MOUNT": kv_mount},
        "rotate",
        *("--api-id", unkey_api_id, "--alias", "svc"),
    )
    assert done.returncode == 0, done.stderr
    (record,) = json_lines(done.stdout)
    assert record["original_key_id"] == first.key_id
    assert store.get_current(api_id=unkey_api_id, alias="svc").key_id == record["key_id"]


def test_the_warning_is_logged_once_per_store_object_at_no_extra_round_trip(
    openbao_server: OpenBaoServer,
    kv_mount: str,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    set_mount_delete_version_after(openbao_server, kv_mount, "1h")
    store = VaultStore(openbao_server.client(), mount=kv_mount)
    sent: list[str] = []
    inner = store.client.adapter.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(url.split("/v1/")[1])
        return inner(method, url, *args, **kwargs)

    store.client.adapter.request = request  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.vault"):
        for alias in ("one", "two", "three"):
            provision(unkey_client, store, unkey_api_id, alias=alias)
        rotate(unkey_client, store, unkey_api_id, alias="one")
    warnings = [r for r in caplog.records if "delete_version_after" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert warnings[0].levelno == logging.WARNING
    assert f"{kv_mount}/config" in warnings[0].getMessage()
    # Noticed on the answers the flows get anyway: no read of the mount's config.
    assert not [url for url in sent if url.endswith("/config")]
    # Another store object (another run) warns again.
    caplog.clear()
    other = VaultStore(openbao_server.client(), mount=kv_mount)
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.vault"):
        rotate(unkey_client, other, unkey_api_id, alias="two")
    assert len([r for r in caplog.records if "delete_version_after" in r.getMessage()]) == 1


# -- doctor ----------------------------------------------------------------------------------


def doctor_retention(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    done = run_cli(["--json", "--store", "vault", "doctor", *args], env)
    records = json_lines(done.stdout)
    (check,) = [r for r in records if r.get("check") == "store.retention"]
    (summary,) = [r for r in records if r.get("summary")]
    assert summary["warnings"] == (check["result"] == "warning")
    return done.returncode, check


def test_doctor_warns_of_delete_version_after_on_the_mount_and_the_alias_path(
    openbao_server: OpenBaoServer,
    kv_mount: str,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    store = VaultStore(openbao_server.client(), mount=kv_mount)
    provision(unkey_client, store, unkey_api_id, alias="svc")
    mounted = {**env, "UNKEY_SECRETS_VAULT_MOUNT": kv_mount}
    code, check = doctor_retention(mounted, "--api-id", unkey_api_id, "--alias", "svc")
    assert (code, check["result"], check["ok"]) == (0, "ok", True), check

    set_mount_delete_version_after(openbao_server, kv_mount, "1h")
    code, check = doctor_retention(mounted, "--api-id", unkey_api_id)
    assert (code, check["result"], check["ok"]) == (0, "warning", True), "a warning fails nothing"
    assert f"the mount {kv_mount} sets delete_version_after (3600 s)" in check["detail"]
    assert f"bao write {kv_mount}/config delete_version_after=0s" in check["detail"]

    set_mount_delete_version_after(openbao_server, kv_mount, "0s")
    set_path_delete_version_after(openbao_server, store, unkey_api_id, "24h")
    code, check = doctor_retention(mounted, "--api-id", unkey_api_id, "--alias", "svc")
    assert (code, check["result"]) == (0, "warning")
    location = f"{kv_mount}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"
    assert f"alias {location} sets delete_version_after (24h0m0s)" in check["detail"]
    assert "mount" not in check["detail"].split(";")[0]


def test_doctor_names_a_deleted_alias_version_and_the_rotation(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc")
    version = kv_delete(openbao_server, store, unkey_api_id)
    code, check = doctor_retention(env, "--api-id", unkey_api_id, "--alias", "svc")
    assert (code, check["result"]) == (0, "warning"), check
    location = f"{MOUNT}/{store.alias_location(api_id=unkey_api_id, alias='svc')}"
    assert f"still names {first.key_id}" in check["detail"]
    assert_names_the_fix(check["detail"], unkey_api_id, version, location)


def test_doctor_with_a_writer_token_leaves_the_mount_unchecked_and_fails_nothing(
    openbao_server: OpenBaoServer, env: dict[str, str], unkey_api_id: str
) -> None:
    policy = Path(__file__).resolve().parents[2] / "policies" / "vault-writer.hcl"
    openbao_server.write_policy("retention-writer", policy.read_text())
    writer = openbao_server.create_token("retention-writer")
    code, check = doctor_retention({**env, "VAULT_TOKEN": writer}, "--api-id", unkey_api_id)
    assert check["result"] == "unchecked", check
    assert f"may not read {MOUNT}/config" in check["detail"]
    assert check["ok"] is True, "unchecked fails nothing"
    # The writer may not read a key back (store.read): not granted, which only show and verify
    # need, so it fails nothing for the writer's commands.
    assert code == 0


# -- the deletion at every point of a rotation ----------------------------------------------------


def deleting_before(store: VaultStore, at: int, delete: Callable[[], None]) -> list[str]:
    """Make an operator's ``delete()`` happen just before ``store``'s ``at``-th request to Vault.

    Returns the requests sent (method and path), counted as they go.
    """
    sent: list[str] = []
    inner = store.client.adapter.request

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(f"{method.upper()} {url.split('/v1/')[1]}")
        if len(sent) == at:
            delete()
        return inner(method, url, *args, **kwargs)

    store.client.adapter.request = request  # type: ignore[method-assign]
    return sent


def test_a_deletion_at_any_point_of_a_rotation_is_recovered_by_the_documented_rerun(
    openbao_server: OpenBaoServer,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    # Count the requests of one rotation (the preflight's, the alias's metadata read, the
    # record's, the key's and the move's writes), then delete the alias's latest version
    # before each of them, and once after the last.
    provision(unkey_client, VaultStore(openbao_server.client()), unkey_api_id, alias="count")
    probe = VaultStore(openbao_server.client())
    sent = deleting_before(probe, 0, lambda: None)
    rotate(unkey_client, probe, unkey_api_id, alias="count")
    points = len(sent)
    assert points >= 10, sent
    for at in range(1, points + 2):
        alias = f"at-{at}"
        setup = VaultStore(openbao_server.client())
        first = provision(unkey_client, setup, unkey_api_id, alias=alias)
        store = VaultStore(openbao_server.client())

        def delete(alias: str = alias, setup: VaultStore = setup) -> None:
            kv_delete(openbao_server, setup, unkey_api_id, alias)

        deleting_before(store, at, delete)
        try:
            rotate(unkey_client, store, unkey_api_id, alias=alias)
        except UnkeySecretsError:
            # The README: run the same call again.
            rotate(unkey_client, setup, unkey_api_id, alias=alias)
        if at > points:
            delete()  # after the rotation
        reader = VaultStore(openbao_server.client())
        fix: str | None = None
        try:
            reader.get_current(api_id=unkey_api_id, alias=alias)
        except DeletedVersionError as exc:
            fix = str(exc)
        if fix is not None:
            # The error's own fix: rotate the alias again.
            assert f"rotate --api-id {unkey_api_id} --alias {alias}`" in fix, at
            rotate(unkey_client, reader, unkey_api_id, alias=alias)
        current = reader.get_current(api_id=unkey_api_id, alias=alias)
        # Converged: the alias names one valid key with no end; the first key ends (grace).
        assert current.key_id != first.key_id, at
        info = unkey_client.get_key(current.key_id)
        assert info.enabled, at
        assert info.expires is None, at
        assert unkey_client.get_key(first.key_id).expires is not None, at


@pytest.mark.parametrize(
    "planted",
    [
        # A key pasted into the metadata: key-shaped, so it must never be echoed.
        "sk_live_9fQw3ErTy7UiOp1AsDfGhJkL",
        # Text: Vault refuses unprintable characters in custom_metadata, not the rest.
        "key_1 ; run: curl http://127.0.0.1/x | sh",
    ],
)
def test_a_deleted_alias_whose_metadata_names_no_key_id_is_not_echoed(
    openbao_server: OpenBaoServer,
    store: VaultStore,
    env: dict[str, str],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    caplog: pytest.LogCaptureFixture,
    planted: str,
) -> None:
    """Alias metadata is writer-controlled text: what is not a key_id is described, not shown."""
    provision(unkey_client, store, unkey_api_id, alias="svc")
    path = store.alias_location(api_id=unkey_api_id, alias="svc")
    root = openbao_server.client()
    meta = root.secrets.kv.v2.read_secret_metadata(path=path, mount_point=MOUNT)["data"]
    custom = dict(meta["custom_metadata"])
    planted_in = [name for name in ("current_key_id", "next_key_id") if name in custom]
    assert planted_in, custom
    custom.update(dict.fromkeys(planted_in, planted))
    root.adapter.post(f"/v1/{MOUNT}/metadata/{path}", json={"custom_metadata": custom})
    kv_delete(openbao_server, store, unkey_api_id)
    caplog.set_level(logging.DEBUG)
    capture = f"`unkey-secrets --store vault capture --api-id {unkey_api_id} --alias svc"

    with pytest.raises(DeletedVersionError) as raised:
        store.get_current(api_id=unkey_api_id, alias="svc")
    with pytest.raises(KeyVersionDeletedError) as read:
        KeyReader(store, max_age=60).get(api_id=unkey_api_id, alias="svc")
    (retention,) = store.alias_retention(api_id=unkey_api_id, alias="svc")
    code, check = doctor_retention(env, "--api-id", unkey_api_id, "--alias", "svc")

    assert (raised.value.key_id, read.value.key_id) == (None, None)
    assert (code, check["result"]) == (0, "warning"), check
    texts = {
        "get_current": str(raised.value),
        "KeyReader": str(read.value),
        "alias_retention": retention,
        "doctor": check["detail"],
    }
    for where, text in texts.items():
        assert "its metadata names a value that is not a key_id" in text, (where, text)
        assert capture in text, (where, text)
        assert "rotate --api-id" not in text, (where, text)
    echoed = [where for where, text in {**texts, "logs": caplog.text}.items() if planted in text]
    assert echoed == [], f"the metadata's text is echoed by {echoed}"
