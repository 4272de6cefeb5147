"""The environment read once per client: the cached ``get()`` and the client CPU of a bulk run.

Against the real OpenBao dev server, moto server and the Unkey emulator, each in a process of
its own (so this interpreter's CPU is the client's alone):

* a cached ``CachedKey.get()`` (Secrets Manager, a key cached and fresh) against
  aws-lambda-powertools' cached ``parameters.get_secret`` of the same secret, both with a
  300 s cache, timed over blocks of HOT_BLOCK calls, interleaved (goal: within 2x);
* the client CPU per key of ``provision_many`` (safe mode, an alias a key, BULK_CONCURRENCY
  workers, no injected delay) into Vault and into Secrets Manager: process CPU time over the
  keys, median of BULK_ROUNDS runs of BULK_KEYS keys, the two stores interleaved (goal: at most
  5 ms a key).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from unkey_secrets import SecretStore, UnkeyClient
from unkey_secrets.bulk import provision_many, read_lines
from unkey_secrets.config import KeyReader
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.openbao import OpenBaoServer

from ._stack import RemoteEmulator

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))
HOT_BLOCK = 2000
BULK_KEYS = int(os.environ.get("BENCH_ENV_BULK_KEYS", "200"))
BULK_ROUNDS = int(os.environ.get("BENCH_ENV_BULK_ROUNDS", "3"))
BULK_CONCURRENCY = 4
API_ID = "api_benchenv"
GOAL_RATIO = 2.0
GOAL_CPU_MS = 5.0

_MOTO_CHILD = """
import sys
from unkey_secrets.testing.moto import MotoServer
with MotoServer() as server:
    print(server.url, server.region, flush=True)
    sys.stdin.read()
"""


@contextmanager
def _remote_moto() -> Iterator[tuple[str, str]]:
    """moto server in a child process: ``(url, region)`` until the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-c", _MOTO_CHILD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        url, region = child.stdout.readline().split()
        yield url, region
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def _moto_client(url: str, region: str, max_connections: int = 10) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "secretsmanager",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(max_pool_connections=max_connections),
    )


def _timed_block(action: Callable[[], object], samples: list[float], per: int) -> None:
    started = time.perf_counter()
    action()
    samples.append((time.perf_counter() - started) / per)


def _cached_get(url: str, region: str) -> tuple[float, float]:
    """Medians (seconds a call) of our cached get() and Powertools' cached get_secret."""
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters import base

    store = SecretsManagerStore(_moto_client(url, region))
    key = canary_key(api_id=API_ID, alias="hot")
    store.put(key)
    store.set_current(key, alias="hot")
    cached = KeyReader(store, max_age=300, expiry_warning=0).key(api_id=API_ID, alias="hot")
    cached.get()
    name = store.alias_location(api_id=API_ID, alias="hot")
    base.DEFAULT_PROVIDERS["secrets"] = parameters.SecretsProvider(
        boto3_client=_moto_client(url, region)
    )
    parameters.get_secret(name, max_age=300)

    def ours() -> None:
        get = cached.get
        for _ in range(HOT_BLOCK):
            get()

    def theirs() -> None:
        get_secret = parameters.get_secret
        for _ in range(HOT_BLOCK):
            get_secret(name, max_age=300)

    mine: list[float] = []
    floor: list[float] = []
    for index in range(ROUNDS + 2):
        order = (ours, theirs) if index % 2 else (theirs, ours)
        for action in order:
            _timed_block(action, mine if action is ours else floor, HOT_BLOCK)
    # The first round of each warms it.
    return statistics.median(mine[1:]), statistics.median(floor[1:])


def _bulk_cpu(unkey: UnkeyClient, store: SecretStore, tmp: Path, tag: str) -> float:
    """Client CPU seconds a key of one provision_many run of BULK_KEYS keys into ``store``."""
    api_id = unkey.create_api(f"env-{tag}-{uuid.uuid4().hex[:6]}")
    path = tmp / f"{tag}.jsonl"
    with path.open("w") as handle:
        for index in range(BULK_KEYS):
            handle.write(json.dumps({"api": api_id, "alias": f"{tag}-{index}"}) + "\n")
    cpu = time.process_time()
    failed = sum(
        not result.done
        for result in provision_many(
            unkey,
            store,
            read_lines(path),
            concurrency=BULK_CONCURRENCY,
            store_writes_per_second=None,
        )
    )
    spent = time.process_time() - cpu
    if failed:
        print(f"  ({failed} of {BULK_KEYS} lines failed into {tag})")
    return spent / BULK_KEYS


def _bulk(bao: OpenBaoServer, moto_url: str, region: str, tmp: Path) -> dict[str, float]:
    samples: dict[str, list[float]] = {"vault": [], "aws": []}
    with RemoteEmulator(0.0) as (url, root_key), UnkeyClient(root_key, base_url=url) as unkey:
        stores: dict[str, SecretStore] = {
            "vault": VaultStore(bao.client(), max_connections=BULK_CONCURRENCY),
            "aws": SecretsManagerStore(
                _moto_client(moto_url, region, BULK_CONCURRENCY),
                max_connections=BULK_CONCURRENCY,
            ),
        }
        _bulk_cpu(unkey, stores["vault"], tmp, "warm-vault")
        _bulk_cpu(unkey, stores["aws"], tmp, "warm-aws")
        for index in range(BULK_ROUNDS):
            order = ("vault", "aws") if index % 2 == 0 else ("aws", "vault")
            for name in order:
                samples[name].append(_bulk_cpu(unkey, stores[name], tmp, f"{name}-{index}"))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    """Print the figures; always succeeds (a benchmark reports, it does not judge)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        OpenBaoServer() as bao,
        _remote_moto() as (moto_url, region),
    ):
        ours, theirs = _cached_get(moto_url, region)
        print(
            f"cached get(): CachedKey.get() {ours * 1e6:5.2f} us | Powertools' cached "
            f"get_secret {theirs * 1e6:5.2f} us | ratio {ours / theirs:4.2f}x (goal within "
            f"{GOAL_RATIO:g}x)  [Secrets Manager, median of {ROUNDS} blocks of {HOT_BLOCK}, "
            "interleaved]",
            flush=True,
        )
        cpu = _bulk(bao, moto_url, region, Path(tmp))
        for name, label in (("vault", "Vault"), ("aws", "Secrets Manager")):
            print(
                f"client CPU a key, bulk into {label}: {cpu[name] * 1e3:5.2f} ms (goal at most "
                f"{GOAL_CPU_MS:g} ms)  [{BULK_KEYS} keys, safe mode with an alias, "
                f"{BULK_CONCURRENCY} workers, median of {BULK_ROUNDS} runs, stores interleaved]",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
