"""provision(mode="fast") against a hand-written job making the same calls, interleaved.

The hand-written job is what a careful script would do without this library: httpx to Unkey's
``keys.createKey``, then the store's own SDK (hvac: the data with ``cas=0`` and the ownership
marker in ``custom_metadata``; boto3: one tagged ``CreateSecret`` with the key_id's token). Each
round runs ours and theirs back to back on the same servers, so drift hits both; printed are
the medians, their ratio, and the round trips per flow against the floor. Ours runs on a warm
store (its once-per-object preflight is reported on its own line).
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from unkey_secrets import SecretStore, UnkeyClient, provision
from unkey_secrets.stores.aws import SecretsManagerStore, version_id_for
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "200"))
#: Round trips of the cheapest correct job: createKey + the store's create-only write(s).
FLOOR = {"vault": 3, "aws": 2}


class Trips:
    """Counts a store SDK's HTTP round trips (hvac's adapter, botocore's event hooks)."""

    def __init__(self) -> None:
        self.count = 0

    def hit(self, *_: Any, **__: Any) -> None:
        self.count += 1

    def wrap_hvac(self, client: Any) -> None:
        adapter = client.adapter
        inner = adapter.request

        def request(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return inner(*args, **kwargs)

        adapter.request = request

    def wrap_boto(self, client: Any) -> None:
        client.meta.events.register("before-call.secrets-manager", self.hit)


def _hand_written(
    kind: str, http: httpx.Client, emulator: EmulatorServer, store_client: Any, api_id: str
) -> Callable[[], None]:
    """One provision done by hand: the same calls our fast provision makes on a warm store."""

    def create_key() -> tuple[str, str]:
        answer = http.post(
            f"{emulator.url}/v2/keys.createKey",
            headers={"Authorization": f"Bearer {emulator.root_key}"},
            json={"apiId": api_id},
        )
        answer.raise_for_status()
        data = answer.json()["data"]
        return data["keyId"], data["key"]

    def value(key_id: str, key: str) -> dict[str, Any]:
        return {"format": "unkey-secrets/key/v1", "key_id": key_id, "api_id": api_id, "key": key}

    if kind == "vault":

        def vault_job() -> None:
            key_id, key = create_key()
            path = f"unkey/{api_id}/{key_id}"
            store_client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=value(key_id, key), cas=0, mount_point="secret"
            )
            marker = {"managed-by": "unkey-secrets", "kind": "key", "key_id": key_id}
            store_client.adapter.post(
                f"/v1/secret/metadata/{path}",
                json={"custom_metadata": {**marker, "api_id": api_id, "version": "1"}},
            )

        return vault_job

    def aws_job() -> None:
        key_id, key = create_key()
        store_client.create_secret(
            Name=f"unkey/{api_id}/{key_id}",
            ClientRequestToken=version_id_for(key_id),
            SecretString=json.dumps(value(key_id, key)),
            Tags=[
                {"Key": "managed-by", "Value": "unkey-secrets"},
                {"Key": "unkey-kind", "Value": "key"},
                {"Key": "unkey-key-id", "Value": key_id},
                {"Key": "unkey-api-id", "Value": api_id},
            ],
        )

    return aws_job


def _timed(action: Callable[[], None], samples: list[float]) -> None:
    started = time.perf_counter()
    action()
    samples.append((time.perf_counter() - started) * 1000)


def _bench(
    kind: str,
    store: SecretStore,
    hand_client: Any,
    unkey: UnkeyClient,
    http: httpx.Client,
    server: EmulatorServer,
) -> None:
    ours_trips, hand_trips = Trips(), Trips()
    if isinstance(store, VaultStore):
        ours_trips.wrap_hvac(store.client)
        hand_trips.wrap_hvac(hand_client)
    else:
        ours_trips.wrap_boto(store.client)
        hand_trips.wrap_boto(hand_client)
    api_id = server.emulator.create_api(f"floor-{kind}-{uuid.uuid4().hex[:6]}")
    first = ours_trips.count
    store.check_writable(api_id=api_id)
    preflight = ours_trips.count - first
    ours = lambda: provision(unkey, store, api_id, mode="fast")  # noqa: E731
    hand = _hand_written(kind, http, server, hand_client, api_id)
    for _ in range(5):  # warm both: connection pools, caches
        ours()
        hand()
    mine: list[float] = []
    theirs: list[float] = []
    calls_before = sum(server.emulator.calls.values())
    ours_before, hand_before = ours_trips.count, hand_trips.count
    for index in range(ROUNDS):
        # Alternate who goes first, so neither always meets a cold moment.
        if index % 2:
            _timed(ours, mine)
            _timed(hand, theirs)
        else:
            _timed(hand, theirs)
            _timed(ours, mine)
    unkey_calls = (sum(server.emulator.calls.values()) - calls_before) / (2 * ROUNDS)
    ours_per = unkey_calls + (ours_trips.count - ours_before) / ROUNDS
    hand_per = unkey_calls + (hand_trips.count - hand_before) / ROUNDS
    ours_ms, hand_ms = statistics.median(mine), statistics.median(theirs)
    print(
        f"{kind:>5}: provision fast {ours_ms:6.2f} ms | by hand {hand_ms:6.2f} ms | "
        f"ratio {ours_ms / hand_ms:4.2f}x | round trips ours {ours_per:.1f}, by hand "
        f"{hand_per:.1f}, floor {FLOOR[kind]}  [median of {ROUNDS}, interleaved]",
        flush=True,
    )
    print(f"{'':>5}  first check_writable of a store object: {preflight} round trip(s)")


def main() -> int:
    """Print the figures; always succeeds (a benchmark reports, it does not judge)."""
    with (
        OpenBaoServer() as bao,
        MotoServer() as moto,
        EmulatorServer() as server,
        UnkeyClient(server.root_key, base_url=server.url) as unkey,
        httpx.Client() as http,
    ):
        _bench("vault", VaultStore(bao.client()), bao.client(), unkey, http, server)
        aws = SecretsManagerStore(moto.client("secretsmanager"))
        _bench("aws", aws, moto.client("secretsmanager"), unkey, http, server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
