"""The ``unkey-secrets`` console script against OpenBao, moto server and the Unkey emulator.

Each test runs the installed script in a subprocess configured through the environment only, as
a deployment script would, then checks the store and Unkey in-process.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer
from unkey_secrets.testing.openbao import OpenBaoServer

from ._cli_harness import (
    aws_env,
    base_env,
    cli_script,
    json_lines,
    run_cli,
    tapped_emulator,
    unkey_env,
    vault_env,
)

pytestmark = pytest.mark.functional

MODES = {"human": [], "json": ["--json"], "debug": ["-vv"]}


def reported_key_id(mode: str, stdout: str, pattern: str) -> str:
    """The new key_id, read from the JSON object or from the human headline."""
    if mode == "json":
        (record,) = json_lines(stdout)
        return str(record["key_id"])
    match = re.search(pattern, stdout)
    assert match, stdout
    return match.group(1)


def assert_mode_output(mode: str, done: subprocess.CompletedProcess[str], command: str) -> None:
    if mode == "json":
        (record,) = json_lines(done.stdout)
        assert record["ok"] is True
        assert record["command"] == command
        assert record["location"]["version"]
    elif mode == "debug":
        # Every library at DEBUG, and our INFO line with what was done.
        assert "DEBUG " in done.stderr
        assert re.search(rf"INFO unkey_secrets\.flows: {command}\w* key_id=", done.stderr)
    else:
        assert done.stderr == ""
        assert "stored at " in done.stdout


@pytest.mark.parametrize("mode", list(MODES))
def test_provision(
    mode: str,
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    done = run_cli(
        [
            *MODES[mode],
            *("--store", kind, "provision", "--api-id", unkey_api_id, "--alias", "svc"),
            *("--prefix", "cli", "--name", "deploy", "--meta", '{"team": "payments"}'),
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    assert_mode_output(mode, done, "provision")
    key_id = reported_key_id(mode, done.stdout, r"provisioned key (\w+)")
    stored = target.get(api_id=unkey_api_id, key_id=key_id)
    current = target.get_current(api_id=unkey_api_id, alias="svc")
    assert current.key_id == key_id
    plaintext = stored.secret.reveal()
    assert plaintext not in done.stdout + done.stderr
    verdict = unkey_client.verify_key(stored.secret)
    assert verdict.valid
    assert verdict.key_id == key_id
    info = unkey_client.get_key(key_id)
    assert info.name == "deploy"
    assert info.meta == {"team": "payments"}


@pytest.mark.parametrize("mode", list(MODES))
def test_rotate(
    mode: str,
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, target, unkey_api_id, alias="svc", mode="fast")
    done = run_cli(
        [
            *MODES[mode],
            *("--store", kind, "rotate", "--api-id", unkey_api_id, "--key-id", first.key_id),
            *("--alias", "svc", "--grace-period", "600"),
        ],
        env,
    )
    assert done.returncode == 0, done.stderr
    assert_mode_output(mode, done, "rotate")
    new_id = reported_key_id(mode, done.stdout, rf"rotated key {first.key_id} to key (\w+)")
    assert new_id != first.key_id
    assert target.get_current(api_id=unkey_api_id, alias="svc").key_id == new_id
    new = target.get(api_id=unkey_api_id, key_id=new_id).secret
    old = target.get(api_id=unkey_api_id, key_id=first.key_id).secret
    for plaintext in (new.reveal(), old.reveal()):
        assert plaintext not in done.stdout + done.stderr
    assert unkey_client.verify_key(new).valid
    assert unkey_client.verify_key(old).valid  # in its grace period
    if mode == "json":
        (record,) = json_lines(done.stdout)
        assert record["original_key_id"] == first.key_id
        assert record["grace_period_seconds"] == 600
        assert record["current"]["key_id"] == new_id


@pytest.mark.parametrize("mode", list(MODES))
def test_capture_from_stdin(
    mode: str,
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    issued = unkey_client.create_key(unkey_api_id, prefix="cap")
    plaintext = issued.secret.reveal()
    done = run_cli(
        [
            *MODES[mode],
            *("--store", kind, "capture", "--api-id", unkey_api_id),
            *("--key-id", issued.key_id, "--alias", "svc"),
        ],
        env,
        stdin=plaintext.encode() + b"\n",
    )
    assert done.returncode == 0, done.stderr
    assert plaintext not in done.stdout + done.stderr
    if mode == "json":
        (record,) = json_lines(done.stdout)
        assert record["key_id"] == issued.key_id
        assert record["location"]["store"] == kind
    elif mode == "debug":
        assert "DEBUG " in done.stderr
    else:
        assert f"captured key {issued.key_id} of API {unkey_api_id}" in done.stdout
    assert target.get(api_id=unkey_api_id, key_id=issued.key_id).secret.reveal() == plaintext
    assert target.get_current(api_id=unkey_api_id, alias="svc").key_id == issued.key_id


@pytest.mark.parametrize("mode", ["human", "json"])
def test_store_unreachable_exits_2_before_unkey_is_called(
    mode: str,
    kind: str,
    dead_port: int,
    unkey_emulator_server: EmulatorServer,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    url = f"http://127.0.0.1:{dead_port}"
    store = vault_env(url=url) if kind == "vault" else aws_env(url=url)
    issued: list[str] = []
    with tapped_emulator(unkey_emulator_server, issued) as server:
        done = run_cli(
            [*MODES[mode], "--store", kind, "provision", "--api-id", unkey_api_id],
            {**store, **unkey_env(server)},
        )
    # The live preflight finds the dead store: bad configuration, and Unkey never called.
    assert done.returncode == 2, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert "reach" in line
    assert unkey_emulator.keys(unkey_api_id) == []
    assert issued == []
    if mode == "json":
        (record,) = json_lines(done.stdout)
        assert record["ok"] is False
        assert record["exit_code"] == 2
        assert record["error"] == "ConfigurationError"


def test_missing_root_key_is_a_configuration_error(
    openbao_server: OpenBaoServer, unkey_api_id: str
) -> None:
    done = run_cli(
        ["--store", "vault", "provision", "--api-id", unkey_api_id], vault_env(openbao_server)
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: UNKEY_ROOT_KEY is not set; the Unkey client needs a root key"
    )


def test_capture_refuses_a_terminal_on_stdin(openbao_server: OpenBaoServer) -> None:
    leader, follower = os.openpty()
    try:
        done = subprocess.run(
            [
                cli_script(),
                "--store",
                "vault",
                "capture",
                "--api-id",
                "api_123",
                "--key-id",
                "key_1",
            ],
            stdin=follower,
            capture_output=True,
            text=True,
            env=base_env(**vault_env(openbao_server)),
            timeout=60,
            check=False,
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 2
    assert "error: invalid stdin: is a terminal" in done.stderr


def test_module_entry_point_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "unkey_secrets.cli", "--json", "stores"],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stores"] == ["aws", "vault"]


def test_cli_process_disables_core_dumps() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard == 0:
        pytest.skip("core dumps are already impossible here (hard RLIMIT_CORE is 0)")
    allowed = hard if hard != resource.RLIM_INFINITY else 1 << 20
    program = (
        "import resource, unkey_secrets.cli as cli\n"
        f"resource.setrlimit(resource.RLIMIT_CORE, ({allowed}, {hard}))\n"
        "before = resource.getrlimit(resource.RLIMIT_CORE)\n"
        "code = cli.main(['stores'])\n"
        "print(before, resource.getrlimit(resource.RLIMIT_CORE), code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=base_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.splitlines()[-1]
    assert last == f"({allowed}, {hard}) (0, 0) 0"


@pytest.mark.parametrize("delete", [False, True])
def test_capture_with_a_wrong_vault_token_deletes_only_when_asked(
    delete: bool,
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_emulator: Emulator,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    issued = unkey_client.create_key(unkey_api_id, prefix="cap")
    plaintext = issued.secret.reveal()
    env = {
        **vault_env(openbao_server),
        "VAULT_TOKEN": "s.not-a-token-of-this-server",
        **unkey_env(unkey_emulator_server),
    }
    flags = ["--delete-if-unstored"] if delete else []
    done = run_cli(
        [
            "--json",
            "--store",
            "vault",
            "capture",
            "--api-id",
            unkey_api_id,
            "--key-id",
            issued.key_id,
            *flags,
        ],
        env,
        stdin=plaintext.encode(),
    )
    # A token Vault refuses is the store's failure once the key is in hand: with
    # --delete-if-unstored the key is deleted (it can never be stored); without, the error
    # names its key_id and says to revoke it. Either way the key's id is in the answer.
    assert done.returncode == 1, done.stderr
    assert plaintext not in done.stdout + done.stderr
    (record,) = json_lines(done.stdout)
    assert record["key_id"] == issued.key_id
    (key,) = [key for key in unkey_emulator.keys(unkey_api_id) if key.key_id == issued.key_id]
    if delete:
        assert record["error"] == "CompensatedError"
        assert key.deleted
    else:
        assert record["error"] == "FlowError"
        assert "revoke it" in record["message"]
        assert not key.deleted
        assert unkey_client.verify_key(issued.secret).valid


def run_with_stdout(
    args: list[str], env: dict[str, str], *, closed: bool
) -> subprocess.CompletedProcess[str]:
    """Run the script with stdout closed (``>&-``) or a pipe nobody reads (``| true``)."""
    reader, writer = os.pipe()
    os.close(reader)  # every write to ``writer`` now fails with EPIPE
    try:
        done = subprocess.run(
            [cli_script(), *args],
            stdin=subprocess.DEVNULL,
            stdout=writer,
            stderr=subprocess.PIPE,
            env=base_env(**env),
            timeout=120,
            check=False,
            text=True,
            # Runs after the child's descriptors are set up: fd 1 is then closed at exec.
            preexec_fn=(lambda: os.close(1)) if closed else None,
        )
    finally:
        os.close(writer)
    return done


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "broken-pipe"])
def test_an_unwritable_stdout_after_success_exits_0_without_a_traceback(
    closed: bool,
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    before = {key.key_id for key in unkey_emulator.keys(unkey_api_id)}
    done = run_with_stdout(
        ["--json", "--store", "vault", "provision", "--api-id", unkey_api_id],
        {**vault_env(openbao_server), **unkey_env(unkey_emulator_server)},
        closed=closed,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert done.stderr.startswith("warning: the result could not be written to stdout")
    (new,) = [key for key in unkey_emulator.keys(unkey_api_id) if key.key_id not in before]
    assert not new.deleted
    target = VaultStore(openbao_server.client())
    assert target.get(api_id=unkey_api_id, key_id=new.key_id).key_id == new.key_id


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "broken-pipe"])
@pytest.mark.parametrize("args", [["--help"], ["--json", "stores"], ["--json", "nope"]])
def test_an_unwritable_stdout_never_shows_a_traceback(closed: bool, args: list[str]) -> None:
    done = run_with_stdout(args, {}, closed=closed)
    assert done.returncode == (2 if "nope" in args else 0), done.stderr
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr


@pytest.mark.parametrize("mode", list(MODES))
def test_show_after_a_rotation(
    mode: str,
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    first = provision(unkey_client, target, unkey_api_id, alias="svc", prefix="shw")
    rotated = rotate(unkey_client, target, unkey_api_id, alias="svc")
    # Only reading: the environment needs no Unkey root key.
    store_only = {k: v for k, v in env.items() if not k.startswith("UNKEY_")}
    done = run_cli(
        [*MODES[mode], "--store", kind, "show", "--api-id", unkey_api_id, "--alias", "svc"],
        store_only,
    )
    assert done.returncode == 0, done.stderr
    current = target.get_current(api_id=unkey_api_id, alias="svc")
    for stored in (current, target.get(api_id=unkey_api_id, key_id=first.key_id)):
        assert stored.secret.reveal() not in done.stdout + done.stderr
    if mode == "json":
        (record,) = json_lines(done.stdout)
        assert record["key_id"] == rotated.key_id
        assert record["rerolled_from"] == first.key_id
        assert record["store"] == kind
        assert record["location"] == current.location
        assert record["version"] == current.version
        assert record["issued_at"] == current.issued_at
        assert record["prefix"] == "shw"
        assert "key" not in record
    elif mode == "human":
        assert done.stderr == ""
        assert done.stdout.startswith(
            f"alias svc names key {rotated.key_id} of API {unkey_api_id}\n"
        )
        assert f"rerolled from key {first.key_id}" in done.stdout
    by_id = run_cli(
        ["--json", "--store", kind, "show", "--api-id", unkey_api_id, "--key-id", first.key_id],
        store_only,
    )
    assert by_id.returncode == 0, by_id.stderr
    (record,) = json_lines(by_id.stdout)
    assert (record["key_id"], record["alias"], record["rerolled_from"]) == (
        first.key_id,
        None,
        None,
    )


def test_show_of_a_missing_alias_exits_1(kind: str, env: dict[str, str], unkey_api_id: str) -> None:
    done = run_cli(
        ["--store", kind, "show", "--api-id", unkey_api_id, "--alias", "never_made"], env
    )
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"error: {kind} holds no alias never_made of API {unkey_api_id}")


def test_show_with_a_writers_token_names_the_reader_policy(
    openbao_server: OpenBaoServer, unkey_emulator_server: EmulatorServer, unkey_api_id: str
) -> None:
    policies = Path(__file__).resolve().parents[2] / "policies"
    openbao_server.write_policy("show-writer", (policies / "vault-writer.hcl").read_text())
    token = openbao_server.create_token("show-writer")
    env = {**vault_env(openbao_server), "VAULT_TOKEN": token, **unkey_env(unkey_emulator_server)}
    done = run_cli(["--store", "vault", "show", "--api-id", unkey_api_id, "--alias", "x"], env)
    assert done.returncode == 1, done.stderr
    assert "policies/vault-reader.hcl" in done.stderr
    assert token not in done.stderr
