"""provision_many against the local stack: the emulator over HTTP, OpenBao and moto.

Injected 429s (the emulator's workspace rate limit, with Retry-After), a store outage in the
middle of the file, a re-run, and Secrets Manager's write quota; never a second key per line.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from unkey_secrets import UnkeyClient
from unkey_secrets.bulk import BulkLine, provision_many
from unkey_secrets.flows import RetryPolicy
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

NO_WAIT = RetryPolicy(sleep=lambda _: None)


def lines(api_id: str, count: int, start: int = 0) -> list[BulkLine]:
    return [
        BulkLine(
            number=i + 1,
            api_id=api_id,
            alias=f"k{i}" if i % 2 else None,
            external_id=f"tenant{i}",
        )
        for i in range(start, count)
    ]


def one_key_per_line(server: EmulatorServer, api_id: str, count: int) -> None:
    live = [k for k in server.emulator.keys(api_id) if not k.deleted]
    assert Counter(k.external_id for k in live) == {f"tenant{i}": 1 for i in range(count)}
    assert all(k.enabled for k in live)


def test_429s_then_a_rerun(unkey_emulator_server: EmulatorServer, vault_store: VaultStore) -> None:
    # A workspace limit of its own: 30 requests a second, Retry-After on each 429.
    with EmulatorServer(Emulator(rate_limit=(30, 1.0))) as server:
        api_id = server.emulator.create_api("bulk-429")
        with UnkeyClient(server.root_key, base_url=server.url) as unkey:
            started = time.monotonic()
            first = list(
                provision_many(unkey, vault_store, lines(api_id, 40), concurrency=8, retry=NO_WAIT)
            )
            assert Counter(r.status for r in first) == {"created": 40}
            # 120 requests (listKeys, createKey, updateKey per line) at 30 a second: the
            # limit was hit, and waited out.
            assert time.monotonic() - started >= 3.0
            again = list(provision_many(unkey, vault_store, lines(api_id, 40), concurrency=8))
        assert Counter(r.status for r in again) == {"exists": 40}
        one_key_per_line(server, api_id, 40)
        assert server.emulator.calls["keys.createKey"] >= 40


def test_a_store_outage_mid_file(
    unkey_emulator_server: EmulatorServer, openbao_server: OpenBaoServer, dead_port: int
) -> None:
    """The store goes away for some lines: they fail, the rest go on, a re-run finishes."""
    server = unkey_emulator_server
    api_id = server.emulator.create_api("bulk-outage")
    store = VaultStore(openbao_server.client())
    good_client = store.client
    dead_client = openbao_server.client()
    dead_client.adapter.base_uri = f"http://127.0.0.1:{dead_port}"
    with UnkeyClient(server.root_key, base_url=server.url, sleep=lambda _: None) as unkey:
        results = []
        for result in provision_many(
            unkey, store, lines(api_id, 30), concurrency=1, retry=NO_WAIT, attempts=1
        ):
            results.append(result)
            if result.line == 10:
                store.client = dead_client  # the store goes away mid-file
            if result.line == 20:
                store.client = good_client
        statuses = Counter(r.status for r in results)
        assert statuses["failed"] >= 5
        assert statuses["created"] + statuses["failed"] == 30
        again = list(provision_many(unkey, store, lines(api_id, 30), concurrency=4))
    assert Counter(r.status for r in again)["failed"] == 0
    one_key_per_line(server, api_id, 30)


def test_secrets_manager_writes_stay_under_the_quota(
    unkey_emulator_server: EmulatorServer, moto_server: MotoServer
) -> None:
    server = unkey_emulator_server
    api_id = server.emulator.create_api("bulk-quota")
    client = moto_server.client("secretsmanager")
    store = SecretsManagerStore(client)
    writes: list[float] = []

    def count(request: Any = None, **_: Any) -> None:
        # Sent requests (after the throttle, which runs at before-call).
        if request is not None and request.headers.get("X-Amz-Target", b"").endswith(
            b"CreateSecret"
        ):
            writes.append(time.monotonic())

    client.meta.events.register("before-send.secrets-manager", count)
    rate = 20.0
    with UnkeyClient(server.root_key, base_url=server.url) as unkey:
        results = list(
            provision_many(
                unkey,
                store,
                [BulkLine(number=i, api_id=api_id, alias=f"q{i}") for i in range(30)],
                concurrency=8,
                mode="fast",
                store_writes_per_second=rate,
            )
        )
    assert Counter(r.status for r in results) == {"created": 30}
    # 60 CreateSecrets (key + alias), at most `burst` (2) at once, then `rate` a second.
    assert len(writes) >= 60
    span = writes[-1] - writes[0]
    assert span >= (len(writes) - 2) / rate * 0.95
    # The hook is gone after the run.
    before = len(writes)
    client.describe_secret(SecretId=results[0].location or "")
    assert len(writes) == before


@pytest.mark.parametrize("store_name", ["vault", "aws"])
def test_cli_bulk_against_the_real_stores(
    store_name: str,
    tmp_path: Any,
    unkey_env: dict[str, str],
    vault_env: dict[str, str],
    aws_env: dict[str, str],
    unkey_emulator_server: EmulatorServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.unit.test_bulk_cli import main

    api_id = unkey_env["UNKEY_API_ID"]
    path = tmp_path / "keys.csv"
    path.write_text(
        "api,alias,externalId,prefix,meta\n"
        + "".join(f'{api_id},c{i},t{i},live,"{{""n"": {i}}}"\n' for i in range(6))
    )
    import io

    out = io.StringIO()
    assert main(["--json", "--store", store_name, "bulk", str(path)], out, io.StringIO()) == 0
    assert '"created": 6' in out.getvalue()
    out = io.StringIO()
    assert main(["--json", "--store", store_name, "bulk", str(path)], out, io.StringIO()) == 0
    assert '"exists": 6' in out.getvalue()
    live = [k for k in unkey_emulator_server.emulator.keys(api_id) if not k.deleted]
    assert len(live) == 6
    assert all(k.meta and "n" in k.meta for k in live)


def test_two_runs_at_once_leave_every_alias_on_an_enabled_key(
    unkey_emulator_server: EmulatorServer, vault_store: VaultStore
) -> None:
    import threading

    api_id = unkey_emulator_server.emulator.create_api("bulk-race")
    work = [
        BulkLine(number=i + 1, api_id=api_id, alias=f"r{i}", external_id=f"race{i}")
        for i in range(12)
    ]
    with UnkeyClient(unkey_emulator_server.root_key, base_url=unkey_emulator_server.url) as unkey:
        results: list[Any] = []

        def one_run() -> None:
            results.extend(provision_many(unkey, vault_store, work, concurrency=4, retry=NO_WAIT))

        runs = [threading.Thread(target=one_run) for _ in range(2)]
        for thread in runs:
            thread.start()
        for thread in runs:
            thread.join(60)
        for line in work:
            assert line.alias is not None
            current = vault_store.get_current(api_id=api_id, alias=line.alias)
            assert unkey_emulator_server.emulator.key(current.key_id).enabled
        aliases = {
            line.alias: vault_store.get_current(api_id=api_id, alias=line.alias or "").key_id
            for line in work
        }
        keys = len(unkey_emulator_server.emulator.keys(api_id))
        # A later run makes no key and moves no alias; what it cannot finish it reports.
        later = list(
            provision_many(
                unkey, vault_store, work, retry=NO_WAIT, wall_clock=lambda: time.time() + 3600
            )
        )
        assert {r.error for r in later if not r.done} <= {"StoreConflictError"}
        assert len(unkey_emulator_server.emulator.keys(api_id)) == keys
        for alias, key_id in aliases.items():
            assert vault_store.get_current(api_id=api_id, alias=alias or "").key_id == key_id


def test_a_killed_runs_leftover_is_deleted_by_a_later_run(
    unkey_emulator_server: EmulatorServer, vault_store: VaultStore
) -> None:
    import secrets

    api_id = unkey_emulator_server.emulator.create_api("bulk-killed")
    with UnkeyClient(unkey_emulator_server.root_key, base_url=unkey_emulator_server.url) as unkey:
        # What a run killed between Unkey's create and the store's put leaves (safe mode).
        marker = f"op_{vault_store.name}_{secrets.token_hex(12)}"
        leftover = unkey.create_key(
            api_id, external_id="killed", enabled=False, meta={"unkey_secrets_op": marker}
        ).key_id
        work = [BulkLine(number=1, api_id=api_id, alias="killed", external_id="killed")]
        first = list(provision_many(unkey, vault_store, work, retry=NO_WAIT))
        assert first[0].status == "created"
        later = list(
            provision_many(
                unkey, vault_store, work, retry=NO_WAIT, wall_clock=lambda: time.time() + 3600
            )
        )
        assert later[0].status == "exists"
        assert any(leftover in action for action in later[0].actions)
    live = [k.key_id for k in unkey_emulator_server.emulator.keys(api_id) if not k.deleted]
    assert live == [first[0].key_id]
