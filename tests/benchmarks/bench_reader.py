"""What the reader costs: hot get(), cold get(), and the batch warm-up, each against a floor.

Against the real OpenBao dev server and moto server on loopback, one store at a time. Each
round runs ours and the floor back to back (which goes first alternates), so drift hits both;
printed are the medians and their ratio.

* hot ``get()`` (a key cached and fresh) against a plain cached read: a dict lookup and a
  clock check, the least any cache does. Timed over blocks of HOT_BLOCK calls (per call, ns).
* cold ``get()`` (``max_age=0``: every call reads the store) against a bare SDK read: boto3's
  ``get_secret_value`` or hvac's ``read_secret_version``, and ``json.loads`` of the value.
* ``warm()`` of WARM_KEYS keys (one ``get_many`` call) against one ``get()`` per key, both
  with ``max_age=0`` so that every round reads every key.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from unkey_secrets import SecretStore
from unkey_secrets.config import KeyReader, UnkeyKey
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))
#: Calls per sample of the hot path (one call is far below the clock's resolution).
HOT_BLOCK = 2000
#: Keys per warm-up.
WARM_KEYS = 20
API_ID = "api_benchreader"


def _timed(action: Callable[[], object], samples: list[float], per: int = 1) -> None:
    started = time.perf_counter()
    action()
    samples.append((time.perf_counter() - started) / per)


def _interleaved(
    ours: Callable[[], object], floor: Callable[[], object], rounds: int, per: int = 1
) -> tuple[float, float]:
    """Medians (seconds per call) of ``ours`` and ``floor``, run back to back ``rounds`` times."""
    for _ in range(3):  # warm both: connection pools, caches
        ours()
        floor()
    mine: list[float] = []
    theirs: list[float] = []
    for index in range(rounds):
        # Alternate who goes first, so neither always meets a cold moment.
        if index % 2:
            _timed(ours, mine, per)
            _timed(floor, theirs, per)
        else:
            _timed(floor, theirs, per)
            _timed(ours, mine, per)
    return statistics.median(mine), statistics.median(theirs)


def _hot(reader: KeyReader) -> tuple[float, float]:
    cached = reader.key(api_id=API_ID, alias="hot")
    cached.get()
    # The floor: what any cache does at least, a lookup and a freshness check.
    cache = {UnkeyKey(api_id=API_ID, alias="hot"): (cached.get(), time.monotonic() + 300.0)}
    ref = UnkeyKey(api_id=API_ID, alias="hot")
    clock = time.monotonic

    def ours() -> None:
        get = cached.get
        for _ in range(HOT_BLOCK):
            get()

    def floor() -> None:
        for _ in range(HOT_BLOCK):
            _stored, fresh_until = cache[ref]
            if clock() >= fresh_until:
                raise AssertionError("stale")

    return _interleaved(ours, floor, ROUNDS, per=HOT_BLOCK)


def _bare_read(store: SecretStore, sdk: Any) -> Callable[[], object]:
    location = store.alias_location(api_id=API_ID, alias="cold")
    if isinstance(store, VaultStore):

        def vault() -> object:
            answer = sdk.secrets.kv.v2.read_secret_version(
                path=location, mount_point=store.mount, raise_on_deleted_version=True
            )
            return answer["data"]["data"]

        return vault

    def aws() -> object:
        return json.loads(sdk.get_secret_value(SecretId=location)["SecretString"])

    return aws


def _bench(name: str, store: SecretStore, sdk: Any) -> None:
    for alias in ("hot", "cold", *(f"warm-{n}" for n in range(WARM_KEYS))):
        key = canary_key(api_id=API_ID, alias=alias)
        store.put(key)
        store.set_current(key, alias=alias)
    reader = KeyReader(store, max_age=300, expiry_warning=0)
    hot, plain = _hot(reader)
    print(
        f"{name:>5}: hot get() {hot * 1e9:7.0f} ns | plain cached read {plain * 1e9:5.0f} ns | "
        f"ratio {hot / plain:5.2f}x  [median of {ROUNDS} blocks of {HOT_BLOCK}, interleaved]",
        flush=True,
    )
    cold_reader = KeyReader(store, max_age=0, expiry_warning=0)
    cold_key = cold_reader.key(api_id=API_ID, alias="cold")
    cold, bare = _interleaved(cold_key.get, _bare_read(store, sdk), ROUNDS)
    print(
        f"{name:>5}: cold get() {cold * 1e3:6.2f} ms | bare SDK read {bare * 1e3:6.2f} ms | "
        f"ratio {cold / bare:5.2f}x  [median of {ROUNDS}, interleaved]",
        flush=True,
    )
    refs = [UnkeyKey(api_id=API_ID, alias=f"warm-{n}") for n in range(WARM_KEYS)]
    keys = [cold_reader.cached(ref) for ref in refs]

    def warm() -> None:
        outcomes = cold_reader.warm(refs)
        assert len(outcomes) == WARM_KEYS

    def one_by_one() -> None:
        for cached in keys:
            cached.get()

    rounds = max(ROUNDS // 4, 5)
    batch, each = _interleaved(warm, one_by_one, rounds)
    print(
        f"{name:>5}: warm() of {WARM_KEYS} keys {batch * 1e3:6.2f} ms | one get() per key "
        f"{each * 1e3:6.2f} ms | ratio {batch / each:5.2f}x  [median of {rounds}, interleaved]",
        flush=True,
    )


def main() -> int:
    """Print the figures; always succeeds (a benchmark reports, it does not judge)."""
    with OpenBaoServer() as bao, MotoServer() as moto:
        vault_sdk = bao.client()
        aws_sdk = moto.client("secretsmanager")
        _bench("vault", VaultStore(bao.client()), vault_sdk)
        _bench("aws", SecretsManagerStore(moto.client("secretsmanager")), aws_sdk)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
