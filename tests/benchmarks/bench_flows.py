"""What each flow costs, on the local stack, in one run: safe vs fast provision, rotate.

Every figure is the median of ROUNDS calls against the real OpenBao dev server, moto server and
the Unkey emulator on loopback. The emulator answers in well under a millisecond, so the
figures measure the flows and the stores. Printed as milliseconds and as ratios to fast mode,
the cheapest way to get a key stored.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections.abc import Callable

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))


def _median_ms(action: Callable[[], object]) -> float:
    action()  # warm the connection pools
    samples = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _measure(unkey: UnkeyClient, store: SecretStore, api_id: str) -> dict[str, float]:
    keys: list[str] = []

    def safe() -> None:
        keys.append(provision(unkey, store, api_id, mode="safe").key_id)

    def fast() -> None:
        keys.append(provision(unkey, store, api_id, mode="fast").key_id)

    def rotate_one() -> None:
        rotate(unkey, store, api_id, keys.pop(), grace_period=dt.timedelta(hours=1))

    figures = {"fast": _median_ms(fast), "safe": _median_ms(safe)}
    figures["rotate"] = _median_ms(rotate_one)
    return figures


def main() -> int:
    """Print the figures; always succeeds (a benchmark reports, it does not judge)."""
    with (
        OpenBaoServer() as bao,
        MotoServer() as moto,
        EmulatorServer() as emulator,
        UnkeyClient(emulator.root_key, base_url=emulator.url) as unkey,
    ):
        stores: dict[str, SecretStore] = {
            "vault": VaultStore(bao.client()),
            "aws": SecretsManagerStore(moto.client("secretsmanager")),
        }
        for name, store in stores.items():
            api_id = unkey.create_api(f"bench-{name}")
            figures = _measure(unkey, store, api_id)
            fast = figures["fast"]
            print(
                f"{name:>5}: provision fast {fast:6.2f} ms | "
                f"safe {figures['safe']:6.2f} ms ({figures['safe'] / fast:.2f}x fast) | "
                f"rotate {figures['rotate']:6.2f} ms ({figures['rotate'] / fast:.2f}x fast)"
                f"  [median of {ROUNDS}]",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
