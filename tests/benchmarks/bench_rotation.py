"""What one rotation by alias costs as the API grows: Unkey calls, store round trips, time.

For each store and for APIs holding 10, 1,000 and 10,000 keys, a key is provisioned under an
alias and rotated ROTATIONS times by alias (``rotate(..., alias=...)``), against the real
OpenBao dev server, moto server and the Unkey emulator on loopback. Printed per rotation: the
Unkey calls by operation (from the emulator's own counters), the store's round trips (counted
at the SDK's HTTP layer) and the median time. The figures should not grow with the API.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer, EmulatorTransport
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

ROTATIONS = int(os.environ.get("BENCH_ROTATIONS", "15"))
SIZES = (10, 1_000, 10_000)


class StoreCalls:
    """Counts the HTTP round trips a store makes (hvac's adapter, botocore's event hooks)."""

    def __init__(self, store: SecretStore) -> None:
        self.count = 0
        if isinstance(store, VaultStore):
            adapter = store.client.adapter
            inner: Callable[..., Any] = adapter.request

            def request(*args: Any, **kwargs: Any) -> Any:
                self.count += 1
                return inner(*args, **kwargs)

            adapter.request = request
        else:
            store.client.meta.events.register("before-call.secrets-manager", self._hit)

    def _hit(self, **_: Any) -> None:
        self.count += 1


def _seed(emulator: Emulator, api_id: str, count: int) -> None:
    # In-process, so 10,000 keys take a second rather than a minute of HTTP.
    with UnkeyClient(
        emulator.root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(emulator)
    ) as seeder:
        for index in range(count):
            seeder.create_key(api_id, name=f"seed-{index}")


def _measure(
    emulator: Emulator, unkey: UnkeyClient, store: SecretStore, counter: StoreCalls, size: int
) -> tuple[Counter[str], float, float]:
    api_id = emulator.create_api(f"bench-{store.name}-{size}")
    _seed(emulator, api_id, size - 1)
    provision(unkey, store, api_id, alias="svc", mode="fast")
    rotate(unkey, store, api_id, alias="svc", grace_period=dt.timedelta(hours=1))  # warm up
    before_unkey, before_store = Counter(emulator.calls), counter.count
    samples = []
    for _ in range(ROTATIONS):
        started = time.perf_counter()
        rotate(unkey, store, api_id, alias="svc", grace_period=dt.timedelta(hours=1))
        samples.append((time.perf_counter() - started) * 1000)
    calls = Counter(emulator.calls)
    calls.subtract(before_unkey)
    per_rotation = Counter({op: n // ROTATIONS for op, n in calls.items() if n})
    return per_rotation, (counter.count - before_store) / ROTATIONS, statistics.median(samples)


def main() -> int:
    """Print the table; always succeeds (a benchmark reports, it does not judge)."""
    with (
        OpenBaoServer() as bao,
        MotoServer() as moto,
        EmulatorServer() as server,
        UnkeyClient(server.root_key, base_url=server.url) as unkey,
    ):
        stores: list[SecretStore] = [
            VaultStore(bao.client()),
            SecretsManagerStore(moto.client("secretsmanager")),
        ]
        print(
            f"{'store':>5} {'keys':>6} | {'Unkey calls':>11} {'listKeys':>8} | "
            f"{'store trips':>11} | {'median ms':>9}   [{ROTATIONS} rotations by alias each]"
        )
        for store in stores:
            counter = StoreCalls(store)
            for size in SIZES:
                calls, trips, median = _measure(server.emulator, unkey, store, counter, size)
                print(
                    f"{store.name:>5} {size:>6} | {sum(calls.values()):>11} "
                    f"{calls.get('apis.listKeys', 0):>8} | {trips:>11.1f} | {median:>9.2f}",
                    flush=True,
                )
            print(
                f"{'':>5} per rotation: "
                + ", ".join(f"{op} x{n}" for op, n in sorted(calls.items()))
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
