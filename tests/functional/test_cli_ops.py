"""The operations commands and the CLI conventions, as the console script, against the stack.

OpenBao, moto server and the Unkey emulator; each run is a subprocess configured through the
environment (and the settings flags), as a deployment script or a CronJob would run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from unkey_secrets import SecretStore, UnkeyClient, provision
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

from ._cli_harness import aws_env, json_lines, run_cli, unkey_env, vault_env

pytestmark = pytest.mark.functional

POLICIES = Path(__file__).resolve().parents[2] / "policies"
MARKER = "unkey_secrets_op"


def split(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    *items, summary = json_lines(stdout)
    assert summary["summary"] is True
    return items, summary


def secrets_of(store: SecretStore, api_id: str, *key_ids: str) -> list[str]:
    return [store.get(api_id=api_id, key_id=k).secret.reveal() for k in key_ids]


def test_list_verify_reconcile(
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    live = provision(unkey_client, target, unkey_api_id, alias="svc", mode="fast").key_id
    gone = provision(unkey_client, target, unkey_api_id, alias="old", mode="fast").key_id
    unkey_client.delete_key(gone)
    orphan = unkey_client.create_key(unkey_api_id, meta={MARKER: f"op_{kind}_" + "a" * 24}).key_id
    plaintexts = secrets_of(target, unkey_api_id, live, gone)

    listed = run_cli(["--json", "list", "--api-id", unkey_api_id, "--store", kind, "--all"], env)
    assert listed.returncode == 0, listed.stderr
    items, summary = split(listed.stdout)
    assert {i["key_id"]: (i["stored"], i["status"]) for i in items} == {
        live: (True, "valid"),
        orphan: (False, "valid"),
    }
    assert summary["store"] == kind

    verified = run_cli(
        ["--store", kind, "verify", "--api-id", unkey_api_id, "--alias", "svc", "--alias", "old"],
        env,
    )
    assert verified.returncode == 3, verified.stderr
    assert verified.stdout.splitlines() == [
        f"ok       alias svc: key {live} verifies (VALID)",
        f"PROBLEM  alias old: key {gone} does not verify (NOT_FOUND)",
        f"2 checked, 1 problem(s) (API {unkey_api_id}, {kind})",
    ]

    argv = ["--json", "--store", kind, "reconcile", "--api-id", unkey_api_id, "--alias", "old"]
    reported = run_cli([*argv, "--min-age", "0"], env)
    assert reported.returncode == 3, reported.stderr
    items, _ = split(reported.stdout)
    assert {(i["finding"], i.get("key_id")) for i in items} == {
        ("orphan", orphan),
        ("stale", gone),
        ("dead-alias", gone),
    }
    applied = run_cli([*argv, "--min-age", "0s", "--apply"], env)
    assert applied.returncode == 3  # the stale entry stays: no store has a delete
    assert unkey_client.get_key(live).enabled
    items, summary = split(applied.stdout)
    assert summary["fixed"] == 1
    assert [i["action"] for i in items if i["finding"] == "orphan"] == ["deleted in Unkey"]
    again = run_cli([*argv, "--min-age", "0"], env)
    assert {i["finding"] for i in split(again.stdout)[0]} == {"stale", "dead-alias"}
    for done in (listed, verified, reported, applied):
        for plaintext in plaintexts:
            assert plaintext not in done.stdout + done.stderr


def test_reconcile_against_the_other_store_deletes_none_of_its_keys(
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    vault = VaultStore(openbao_server.client())
    aws = SecretsManagerStore(moto_server.client("secretsmanager"))
    # Fast mode: the key keeps its marker, op_vault_..., once stored.
    in_vault = provision(unkey_client, vault, unkey_api_id, alias="svc", mode="fast").key_id
    env = {**vault_env(openbao_server), **aws_env(moto_server), **unkey_env(unkey_emulator_server)}
    argv = ["--json", "--store", "aws", "reconcile", "--api-id", unkey_api_id, "--min-age", "0"]

    refused = run_cli([*argv, "--apply"], env)
    assert refused.returncode == 2, refused.stderr
    assert "holds none of API" in refused.stderr
    assert unkey_client.get_key(in_vault).enabled

    in_aws = provision(unkey_client, aws, unkey_api_id, alias="api", mode="fast").key_id
    lost = unkey_client.create_key(unkey_api_id, meta={MARKER: "op_aws_" + "b" * 24}).key_id
    applied = run_cli([*argv, "--apply"], env)
    assert applied.returncode == 0, applied.stderr
    items, summary = split(applied.stdout)
    by_key = {i["key_id"]: i for i in items if i["finding"] == "orphan"}
    assert set(by_key) == {in_vault, lost}
    assert by_key[in_vault]["belongs_to"] == "vault"
    assert by_key[lost]["action"] == "deleted in Unkey"
    assert summary["other_store_skipped"] == 1
    assert unkey_client.get_key(in_vault).enabled
    assert unkey_client.get_key(in_aws).enabled
    vaults = run_cli([*argv[:2], "vault", *argv[3:], "--apply"], env)
    assert vaults.returncode == 0, vaults.stdout + vaults.stderr
    assert [i["belongs_to"] for i in split(vaults.stdout)[0]] == ["aws"]
    assert unkey_client.get_key(in_aws).enabled


def test_verify_with_a_readers_token_and_no_root_key_in_vault(
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    store = VaultStore(openbao_server.client())
    key = provision(unkey_client, store, unkey_api_id, alias="svc").key_id
    openbao_server.write_policy("unkey-reader", (POLICIES / "vault-reader.hcl").read_text())
    reader = openbao_server.create_token("unkey-reader")
    verifier = unkey_emulator_server.emulator.add_root_key(["api.*.verify_key"])
    done = run_cli(
        ["--json", "verify", "--api-id", unkey_api_id, "--alias", "svc", "--store", "vault"],
        {
            **vault_env(openbao_server),
            "VAULT_TOKEN": reader,
            "UNKEY_ROOT_KEY": verifier,
            "UNKEY_BASE_URL": unkey_emulator_server.url,
        },
    )
    assert done.returncode == 0, done.stderr
    (item,), _ = split(done.stdout)
    assert (item["key_id"], item["verified_key_id"], item["valid"]) == (key, key, True)


def test_doctor_all_granted(kind: str, env: dict[str, str], unkey_api_id: str) -> None:
    done = run_cli(["--json", "doctor", "--api-id", unkey_api_id, "--store", kind], env)
    assert done.returncode == 0, done.stdout
    items, summary = split(done.stdout)
    checks = {i["check"]: i["result"] for i in items if "check" in i}
    assert {name for name, result in checks.items() if result != "ok"} == {
        "unkey.create_key",
        "unkey.update_key",
        "unkey.delete_key",
    }
    assert summary["failed"] == 0
    probed = run_cli(["doctor", "--api-id", unkey_api_id, "--store", kind, "--write-probe"], env)
    assert probed.returncode == 0, probed.stdout
    assert "provision          ready: yes" in probed.stdout.splitlines()


def test_doctor_with_exactly_the_writer_policy_is_ready_for_the_writers_commands(
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_api_id: str,
) -> None:
    # The job's own credentials, as the docs say to run it: a token of exactly the writer
    # policy, which has no read on keys by design. store.read is not the writer's: it fails
    # nothing.
    openbao_server.write_policy("unkey-writer", (POLICIES / "vault-writer.hcl").read_text())
    env = {
        **vault_env(openbao_server),
        "VAULT_TOKEN": openbao_server.create_token("unkey-writer"),
        **unkey_env(unkey_emulator_server),
    }
    argv = ["--store", "vault", "doctor", "--api-id", unkey_api_id, "--write-probe"]
    done = run_cli(argv, env)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    (read,) = [line for line in lines if " store.read: " in line]
    assert read.startswith("not granted store.read: not needed here (show and verify need it; ")
    assert "403" in read
    assert read.endswith("(granted by policies/vault-reader.hcl)")
    for command in ("provision", "rotate", "rotate-due", "bulk", "capture", "reconcile"):
        assert f"{command:<18} ready: yes" in lines
    assert any(line.startswith("show               ready: no (not checked for)") for line in lines)
    # Unchecked: store.retention (the writer may not read the mount's config).
    assert lines[-1] == (
        "0 check(s) failed, 1 unchecked, 1 not granted (needed by no command checked)"
    )

    done = run_cli(["--json", *argv], env)
    assert done.returncode == 0, done.stdout
    items, summary = split(done.stdout)
    checks = {i["check"]: i for i in items if "check" in i}
    assert (checks["store.read"]["result"], checks["store.read"]["ok"]) == ("not granted", True)
    assert checks["store.read"]["granted_by"] == "policies/vault-reader.hcl"
    assert (summary["failed"], summary["not_granted"]) == (0, 1)
    assert "show" not in summary["for_commands"]
    assert "rotate-due" in summary["for_commands"]

    # Asked for the reader's command, the same token fails: store.read is needed now.
    done = run_cli(["--json", *argv, "--for", "show", "--for", "provision"], env)
    assert done.returncode == 3, done.stdout
    items, summary = split(done.stdout)
    checks = {i["check"]: i for i in items if "check" in i}
    commands = {i["for_command"]: i for i in items if "for_command" in i}
    assert checks["store.read"]["result"] == "failed"
    assert (commands["show"]["checked"], commands["show"]["ok"]) == (True, False)
    assert (commands["rotate"]["checked"], commands["rotate"]["ready"]) == (False, "yes")
    assert summary["for_commands"] == ["provision", "show"]
    assert (summary["failed"], summary["not_granted"]) == (1, 0)


def test_doctor_names_what_a_writer_token_and_a_narrow_root_key_lack(
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_api_id: str,
) -> None:
    openbao_server.write_policy("unkey-writer", (POLICIES / "vault-writer.hcl").read_text())
    writer = openbao_server.create_token("unkey-writer")
    narrow = unkey_emulator_server.emulator.add_root_key(["api.*.read_api", "api.*.read_key"])
    env = {
        **vault_env(openbao_server),
        "VAULT_TOKEN": writer,
        "UNKEY_ROOT_KEY": narrow,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
    }
    argv = ["--json", "--store", "vault", "doctor", "--api-id", unkey_api_id]
    done = run_cli([*argv, "--for", "verify", "--for", "list"], env)
    assert done.returncode == 3, done.stderr
    items, summary = split(done.stdout)
    checks = {i["check"]: i for i in items if "check" in i}
    commands = {i["for_command"]: i for i in items if "for_command" in i}
    # The writer may not read a key back: show and verify need the reader policy.
    assert checks["store.read"]["result"] == "failed"
    assert checks["store.read"]["granted_by"] == "policies/vault-reader.hcl"
    assert checks["store.write"]["result"] == "ok"
    assert checks["unkey.verify_key"]["result"] == "failed"
    assert commands["show"]["missing"] == ["store.read"]
    assert commands["verify"]["ready"] == "no"
    assert commands["list"]["ready"] == "yes"
    assert commands["reconcile"]["ready"] == "yes"
    assert summary["failed"] == 2
    # For the writer's commands (the default), neither is needed: both are named, neither fails.
    done = run_cli(argv, env)
    assert done.returncode == 0, done.stdout
    items, summary = split(done.stdout)
    checks = {i["check"]: i for i in items if "check" in i}
    assert checks["store.read"]["result"] == checks["unkey.verify_key"]["result"] == "not granted"
    assert (summary["failed"], summary["not_granted"]) == (0, 2)


def test_doctor_with_an_unreachable_store_and_no_root_key(
    kind: str, dead_port: int, unkey_api_id: str
) -> None:
    url = f"http://127.0.0.1:{dead_port}"
    store = vault_env(url=url) if kind == "vault" else aws_env(url=url)
    done = run_cli(["doctor", "--api-id", unkey_api_id, "--store", kind], store)
    assert done.returncode == 3
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("failed    unkey.config: UNKEY_ROOT_KEY is not set") for line in lines
    )
    (write,) = [
        line
        for line in lines
        if line.startswith(("ok        store.write", "failed    store.write"))
    ]
    assert write.startswith("failed")
    assert "reach" in write
    assert lines[-1].endswith("unchecked")


def test_rotate_due(
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    tmp_path: Path,
) -> None:
    first = provision(unkey_client, target, unkey_api_id, alias="svc").key_id
    provision(unkey_client, target, unkey_api_id, alias="web")
    names = tmp_path / "aliases.txt"
    names.write_text("svc\nweb\nmissing\n")
    base = ["--json", "rotate-due", "--api-id", unkey_api_id, "--aliases-file", str(names)]
    not_yet = run_cli([*base, "--store", kind, "--older-than", "30d"], env)
    assert not_yet.returncode == 4, not_yet.stderr  # "missing" names nothing
    items, _ = split(not_yet.stdout)
    assert [i["outcome"] for i in items] == ["not-due", "not-due", "missing"]
    names.write_text("svc\n")
    due = run_cli([*base, "--store", kind, "--older-than", "0", "--grace-period", "1h"], env)
    assert due.returncode == 0, due.stderr
    (item,), _summary = split(due.stdout)
    assert (item["key_id"], item["outcome"]) == (first, "rotated")
    assert target.get_current(api_id=unkey_api_id, alias="svc").key_id == item["new_key_id"]
    assert unkey_client.get_key(first).expires is not None  # cut to the grace period
    for plaintext in secrets_of(target, unkey_api_id, first, item["new_key_id"]):
        assert plaintext not in due.stdout + due.stderr


def test_rotate_due_needs_an_age(env: dict[str, str], kind: str) -> None:
    done = run_cli(["--store", kind, "rotate-due", "--api-id", "api_1", "--alias", "a"], env)
    assert done.returncode == 2
    assert "required: --older-than" in done.stderr


@pytest.mark.parametrize("command", ["rotate", "rotate-due"])
def test_a_short_grace_period_is_refused_up_front_in_the_clis_words(
    command: str,
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    unkey_emulator_server: EmulatorServer,
) -> None:
    """Without --allow-short-grace, a grace period under 5m is a usage error: nothing is sent."""
    first = provision(unkey_client, target, unkey_api_id, alias="svc").key_id
    argv = ["--json", "--store", kind, command, "--api-id", unkey_api_id, "--alias", "svc"]
    if command == "rotate-due":
        argv += ["--older-than", "0"]
    before = sum(unkey_emulator_server.emulator.calls.values())
    refused = run_cli([*argv, "--grace-period", "4m"], env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert sum(unkey_emulator_server.emulator.calls.values()) == before, "nothing was sent"
    assert target.get_current(api_id=unkey_api_id, alias="svc").key_id == first
    (record,) = json_lines(refused.stdout)
    assert record["exit_code"] == 2
    assert record["field"] == "--grace-period"
    assert record["message"] == (
        "invalid --grace-period: 4m is shorter than 5m, which readers' caches may outlive; "
        "pass --allow-short-grace to revoke sooner"
    )
    assert "allow_short_grace" not in refused.stderr
    assert "0:04:00" not in refused.stderr

    allowed = run_cli([*argv, "--grace-period", "4m", "--allow-short-grace"], env)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert target.get_current(api_id=unkey_api_id, alias="svc").key_id != first
    ends = unkey_client.get_key(first).expires
    assert ends is not None


# -- conventions ---------------------------------------------------------------------------


def test_global_options_after_the_command(
    kind: str, env: dict[str, str], target: SecretStore, unkey_api_id: str
) -> None:
    done = run_cli(["provision", "--api-id", unkey_api_id, "--store", kind, "--json"], env)
    assert done.returncode == 0, done.stderr
    (record,) = json_lines(done.stdout)
    assert target.contains(api_id=unkey_api_id, key_id=record["key_id"])


def test_settings_flags_override_the_environment(
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
    dead_port: int,
    unkey_api_id: str,
) -> None:
    dead = f"http://127.0.0.1:{dead_port}"
    # The environment points at a dead Vault; --vault-addr at the live one.
    vault = {**vault_env(openbao_server), "VAULT_ADDR": dead, **unkey_env(unkey_emulator_server)}
    argv = ["--store", "vault", "provision", "--api-id", unkey_api_id]
    assert run_cli(argv, vault).returncode == 2
    done = run_cli([*argv, "--vault-addr", openbao_server.url, "--mount", "secret"], vault)
    assert done.returncode == 0, done.stderr
    # A mount that is not there is refused by the store's preflight.
    done = run_cli([*argv, "--vault-addr", openbao_server.url, "--mount", "nope"], vault)
    assert done.returncode == 2
    assert "nope" in done.stderr
    aws = {**aws_env(moto_server), "AWS_ENDPOINT_URL": dead, **unkey_env(unkey_emulator_server)}
    argv = ["--store", "aws", "provision", "--api-id", unkey_api_id]
    assert run_cli(argv, aws).returncode == 2
    done = run_cli([*argv, "--endpoint-url", moto_server.url, "--region", moto_server.region], aws)
    assert done.returncode == 0, done.stderr
    done = run_cli([*argv, "--endpoint-url", moto_server.url, "--profile", "nope"], aws)
    assert done.returncode == 2
    assert "AWS profile 'nope'" in done.stderr


def test_a_mistyped_command_is_named(env: dict[str, str]) -> None:
    done = run_cli(["--store", "vault", "rotate_due", "--api-id", "api_1"], env)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith("did you mean 'rotate-due'?")
    cut = run_cli(["--store", "vault", "rotate-du", "--api-id", "api_1"], env)
    assert cut.returncode == 2
    assert "'rotate-due', 'bulk'" in cut.stderr or "'rotate-due')" in cut.stderr
    assert "<value>e" not in cut.stderr


def test_capture_onto_an_alias_that_names_a_key_moves_it_and_leaves_that_key_valid(
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    # What cli.md's capture section says: unlike provision, capture --alias moves an alias that
    # names a key; the key it named stays valid and stored, list --alias shows it, reconcile
    # does not report it (a safe-mode key carries no marker), and ending it is Unkey's.
    displaced = provision(unkey_client, target, unkey_api_id, alias="svc").key_id
    held = unkey_client.create_key(unkey_api_id, name="held elsewhere")
    argv = ["--store", kind, "capture", "--api-id", unkey_api_id, "--key-id", held.key_id]
    done = run_cli([*argv, "--alias", "svc"], env, stdin=held.secret.reveal().encode())
    assert done.returncode == 0, done.stderr
    state = target.alias_state(api_id=unkey_api_id, alias="svc")
    assert state is not None
    assert state.key_id == held.key_id
    assert unkey_client.get_key(displaced).enabled
    assert target.key_entry(api_id=unkey_api_id, key_id=displaced) is not None
    listed = run_cli(
        ["--json", "list", "--api-id", unkey_api_id, "--store", kind, "--alias", "svc"], env
    )
    items, _ = split(listed.stdout)
    assert {(i["key_id"], i["status"]) for i in items} == {
        (displaced, "valid"),
        (held.key_id, "valid"),
    }
    found = run_cli(
        ["--json", "reconcile", "--api-id", unkey_api_id, "--store", kind, "--min-age", "0"], env
    )
    assert found.returncode == 0, found.stdout
    items, _ = split(found.stdout)
    assert items == []
