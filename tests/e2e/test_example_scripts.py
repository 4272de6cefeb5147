"""examples/deploy_provision.py and examples/rotate_scheduled.py, run as scripts against the stack.

Each runs in a fresh process configured by the environment only, which the plugin's
``unkey_env`` and ``vault_env`` fixtures set (OpenBao, the emulator, a new API per test).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.openbao import OpenBaoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TENANTS = ["acme", "globex", "initech"]


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )


def assert_no_key_printed(done: subprocess.CompletedProcess[str], store: VaultStore) -> None:
    api_id = os.environ["UNKEY_API_ID"]
    for tenant in TENANTS:
        if store.alias_exists(api_id=api_id, alias=f"tenant-{tenant}"):
            current = store.get_current(api_id=api_id, alias=f"tenant-{tenant}")
            assert current.secret.reveal() not in done.stdout + done.stderr


@pytest.fixture
def vault(
    openbao_server: OpenBaoServer, unkey_env: dict[str, str], vault_env: dict[str, str]
) -> VaultStore:
    return VaultStore(openbao_server.client())


def test_deploy_provision_issues_one_key_per_tenant_and_a_rerun_changes_nothing(
    vault: VaultStore, unkey_emulator: LocalUnkey
) -> None:
    api_id = os.environ["UNKEY_API_ID"]
    first = run_example("deploy_provision.py")
    assert first.returncode == 0, first.stderr
    assert "done: 3 issued, 0 failed" in first.stdout
    holders = {}
    for tenant in TENANTS:
        current = vault.get_current(api_id=api_id, alias=f"tenant-{tenant}")
        assert current.external_id == tenant
        assert f"{tenant}: issued key {current.key_id}" in first.stdout
        holders[tenant] = current.key_id
    assert_no_key_printed(first, vault)
    calls = unkey_emulator.calls.copy()
    keys = len(unkey_emulator.keys(api_id))

    again = run_example("deploy_provision.py")
    assert again.returncode == 0, again.stderr
    assert "done: 0 issued, 0 failed" in again.stdout
    for tenant in TENANTS:
        assert f"{tenant}: alias tenant-{tenant} exists, nothing to do" in again.stdout
        assert vault.get_current(api_id=api_id, alias=f"tenant-{tenant}").key_id == holders[tenant]
    assert len(unkey_emulator.keys(api_id)) == keys
    assert unkey_emulator.calls == calls, "a re-run sent nothing to Unkey"

    # One more tenant: only it gets a key.
    more = run_example("deploy_provision.py", "--tenant", "acme", "--tenant", "hooli")
    assert more.returncode == 0, more.stderr
    assert "done: 1 issued, 0 failed" in more.stdout
    assert len(unkey_emulator.keys(api_id)) == keys + 1


def test_deploy_provision_reports_an_alias_another_run_created(
    vault: VaultStore,
    unkey_emulator: LocalUnkey,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # In-process. The script's own check answers "no", as it would have just before another run
    # created the alias; provision's check then refuses it before calling Unkey.
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import deploy_provision

    from unkey_secrets import UnkeyClient

    api_id = os.environ["UNKEY_API_ID"]
    with UnkeyClient.from_settings() as unkey:
        assert deploy_provision.ensure_key(unkey, vault, api_id, "acme") is True
        real = vault.alias_exists
        checks: list[str] = []

        def stale_first(**kw: str) -> bool:
            checks.append(kw["alias"])
            return False if len(checks) == 1 else real(**kw)

        monkeypatch.setattr(vault, "alias_exists", stale_first)
        keys = len(unkey_emulator.keys(api_id))
        assert deploy_provision.ensure_key(unkey, vault, api_id, "acme") is False
        assert len(unkey_emulator.keys(api_id)) == keys
        assert checks == ["tenant-acme", "tenant-acme"]
    out = capsys.readouterr().out
    assert "acme: alias tenant-acme was just created by another run, nothing to do" in out


def test_rotate_scheduled_rotates_each_alias_and_a_rerun_does_only_what_is_left(
    vault: VaultStore, unkey_emulator: LocalUnkey
) -> None:
    api_id = os.environ["UNKEY_API_ID"]
    assert run_example("deploy_provision.py").returncode == 0
    before = {t: vault.get_current(api_id=api_id, alias=f"tenant-{t}").key_id for t in TENANTS}
    aliases = [arg for t in TENANTS for arg in ("--alias", f"tenant-{t}")]

    # Young keys are left alone by default (--min-age 3600).
    young = run_example("rotate_scheduled.py", *aliases)
    assert young.returncode == 0, young.stderr
    assert young.stdout.count("not rotated") == 3

    # One alias that does not exist fails; the others are rotated all the same.
    done = run_example(
        "rotate_scheduled.py", *aliases, "--alias", "tenant-missing", "--min-age", "0",
        "--grace-period", "600",
    )  # fmt: skip
    assert done.returncode == 1
    assert "tenant-missing: FAILED: alias tenant-missing" in done.stderr
    assert "done: 3 ok, 1 failed" in done.stdout
    after = {t: vault.get_current(api_id=api_id, alias=f"tenant-{t}") for t in TENANTS}
    for tenant in TENANTS:
        assert after[tenant].key_id != before[tenant]
        assert after[tenant].rerolled_from == before[tenant]
        assert re.search(
            rf"tenant-{tenant}: rotated key {before[tenant]} -> {after[tenant].key_id}", done.stdout
        )
        old = unkey_emulator.key(before[tenant])
        assert old.expires is not None  # cut to the grace period
        assert after[tenant].secret.reveal() not in done.stdout + done.stderr

    # The re-run after the failure: the rotated keys are young now, so nothing is rotated twice.
    rerun = run_example("rotate_scheduled.py", *aliases)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.count("not rotated") == 3
    for tenant in TENANTS:
        current = vault.get_current(api_id=api_id, alias=f"tenant-{tenant}")
        assert current.key_id == after[tenant].key_id
