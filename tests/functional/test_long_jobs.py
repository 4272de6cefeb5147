"""CLI jobs that outlive their Vault token several times end with every line done (issue 16).

``bulk`` and ``rotate-due --all-aliases`` run as users run them: the console script, configured
through the environment only, logged in by AppRole or given a renewable ``VAULT_TOKEN`` with
the writer policy alone, against the real OpenBao and the Unkey emulator slowed down so that
each job lasts at least three token lifetimes.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from unkey_secrets import provision
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.openbao import OpenBaoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey
from unkey_secrets.unkey import UnkeyClient

from ._cli_harness import json_lines, run_cli, unkey_env

POLICIES = Path(__file__).resolve().parents[2] / "policies"
AUTH_MOUNT = "t-long-jobs"
#: Token lifetimes, seconds: a renewal, due at two thirds, has 1.3 s to be made.
TTL = {"approle": 4, "token": 4}
LINES = 24
CONCURRENCY = 2


@pytest.fixture(scope="module")
def writer(openbao_server: OpenBaoServer) -> dict[str, str]:
    """An AppRole role with 4 s tokens carrying the writer policy only; its credentials."""
    root = openbao_server.client()
    openbao_server.write_policy("long-writer", (POLICIES / "vault-writer.hcl").read_text())
    root.sys.enable_auth_method("approle", path=AUTH_MOUNT)
    root.auth.approle.create_or_update_approle(
        "job",
        token_policies=["long-writer"],
        token_no_default_policy=True,
        token_ttl=f"{TTL['approle']}s",
        token_max_ttl="1h",
        mount_point=AUTH_MOUNT,
    )
    role_id = root.auth.approle.read_role_id("job", mount_point=AUTH_MOUNT)["data"]["role_id"]
    secret = root.auth.approle.generate_secret_id("job", mount_point=AUTH_MOUNT)
    return {"role_id": role_id, "secret_id": secret["data"]["secret_id"]}


class Job:
    """Runs the console script logged in by AppRole, or with a renewable token.

    The token reaches the job through ``~/.vault-token`` (the vault CLI's token file), made a
    named pipe: the token is created at the moment the job reads it, so its lifetime starts
    with the job, however long the interpreter takes to start on a loaded machine.
    """

    def __init__(
        self, method: str, server: OpenBaoServer, role: dict[str, str], unkey: EmulatorServer
    ) -> None:
        self.method = method
        self.server = server
        self.role = role
        self.unkey = unkey
        self.ttl = TTL[method]

    def run(self, args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
        env = {"VAULT_ADDR": self.server.url, "HOME": str(home), **unkey_env(self.unkey)}
        if self.method == "approle":
            env |= {
                "UNKEY_SECRETS_VAULT_AUTH_METHOD": "approle",
                "UNKEY_SECRETS_VAULT_AUTH_MOUNT": AUTH_MOUNT,
                "UNKEY_SECRETS_VAULT_ROLE_ID": self.role["role_id"],
                "UNKEY_SECRETS_VAULT_SECRET_ID": self.role["secret_id"],
            }
            return run_cli(args, env)
        pipe = home / ".vault-token"
        os.mkfifo(pipe)
        writer = threading.Thread(target=self._hand_over, args=(pipe,), daemon=True)
        writer.start()
        try:
            return run_cli(args, env)
        finally:
            writer.join(timeout=5)

    def _hand_over(self, pipe: Path) -> None:
        # Blocks until the job opens the pipe to read the token (the job's timeout bounds it).
        with open(pipe, "w", encoding="utf-8") as sink:
            sink.write(self.server.create_token("long-writer", ttl=f"{self.ttl}s"))


@pytest.fixture(params=["approle", "token"])
def job(
    request: pytest.FixtureRequest,
    openbao_server: OpenBaoServer,
    writer: dict[str, str],
    unkey_emulator_server: EmulatorServer,
) -> Job:
    return Job(request.param, openbao_server, writer, unkey_emulator_server)


def test_bulk_outliving_its_token_ends_with_every_line_done(
    job: Job,
    unkey_emulator: LocalUnkey,
    unkey_api_id: str,
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("api,alias\n" + "".join(f"{unkey_api_id},long{i}\n" for i in range(LINES)))
    # Each createKey takes 0.75 s: 24 lines, 2 at a time, last at least 9 s, plus the
    # store's calls: more than twice the TTL.
    unkey_emulator.faults.delay("keys.createKey", 0.75, times=LINES)
    started = time.monotonic()
    done = job.run(
        ["--json", "--store", "vault", "bulk", str(path), "--concurrency", str(CONCURRENCY)],
        tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr + done.stdout[-1500:]
    results = [line for line in json_lines(done.stdout) if "alias" in line]
    assert sorted(r["alias"] for r in results if r.get("status") == "created") == sorted(
        f"long{i}" for i in range(LINES)
    ), done.stdout
    assert elapsed > 2 * job.ttl, "the job must outlive its first token"
    assert "403" not in done.stderr


def test_rotate_due_outliving_its_token_ends_with_every_alias_rotated(
    job: Job,
    openbao_server: OpenBaoServer,
    unkey_client: UnkeyClient,
    unkey_emulator: LocalUnkey,
    unkey_api_id: str,
    tmp_path: Path,
) -> None:
    store = VaultStore(openbao_server.client())
    aliases = [f"due{i}" for i in range(10)]
    before = {a: provision(unkey_client, store, unkey_api_id, alias=a).key_id for a in aliases}
    # Each rerollKey takes 0.9 s: 10 rotations last at least 9 s.
    unkey_emulator.faults.delay("keys.rerollKey", 0.9, times=len(aliases))
    started = time.monotonic()
    done = job.run(
        [
            "--json",
            "--store",
            "vault",
            "rotate-due",
            "--api-id",
            unkey_api_id,
            "--all-aliases",
            "--older-than",
            "0",
            "--grace-period",
            "1h",
        ],
        tmp_path,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr + done.stdout[-1500:]
    items = [line for line in json_lines(done.stdout) if "outcome" in line]
    assert sorted(i["alias"] for i in items if i["outcome"] == "rotated") == sorted(aliases)
    for alias in aliases:
        assert store.get_current(api_id=unkey_api_id, alias=alias).key_id != before[alias]
    assert elapsed > 2 * job.ttl, "the job must outlive its first token"
