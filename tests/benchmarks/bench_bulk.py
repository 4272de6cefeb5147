"""Bulk provisioning: speed-up, the quota, client CPU per key, memory, overhead.

Against the real OpenBao dev server and moto server, each in a process of its own, as is the
Unkey emulator (``_stack.RemoteEmulator``, ``_cpu.RemoteMoto``): the CPU figures are this
process's alone (``time.process_time`` counts every thread of the process, so a server in a
thread of it would be counted as the client's).

1. speed-up: BULK_KEYS lines into Vault (safe mode, an alias each) with 20 ms injected per
   Unkey call, at concurrency 1, 4 and 16: keys/s, speed-up over concurrency 1, and its share
   of linear (goal >= 0.8), with the client's CPU per key (process time / keys; goal <= 5 ms);
2. the quota: the same into Secrets Manager with its write quota (50 CreateSecret/s; two per
   line, the key and its alias) at concurrency 1, 4, 16: the rate levels off at the quota; the
   client's CPU per key beside it (goal <= 5 ms);
3. where a key's client CPU goes, Vault and Secrets Manager: PROFILE_KEYS provisions in one
   thread, no injected delay, sampled on the CPU clock (``_cpu.CpuSampler``) and charged to
   the library owning each sample; with the requests a key makes to each service, each
   library's CPU per key and per request;
4. peak RSS of a process running ``provision_many`` over a file of 1,000 and 10,000 lines
   (VmHWM from /proc/self/status, a fresh process each; goal within 1.1x);
5. per key, ``provision_many`` at concurrency 1 reading a file against a plain loop of
   ``provision`` over the same lines, interleaved blocks, no injected delay (goal within 1.2x).

The workers share one GIL, so the client's CPU per key bounds the speed-up: at C ms a key the
process tops out near 1000 / C keys a second whatever the concurrency.
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
from pathlib import Path

from unkey_secrets import SecretStore, UnkeyClient, provision
from unkey_secrets.bulk import provision_many, read_lines
from unkey_secrets.flows import RetryPolicy
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.openbao import OpenBaoServer

from ._cpu import CpuSampler, RemoteMoto
from ._stack import RemoteEmulator

BULK_KEYS = int(os.environ.get("BENCH_BULK_KEYS", "1000"))
QUOTA_KEYS = int(os.environ.get("BENCH_QUOTA_KEYS", "300"))
DELAY = 0.020
LEVELS = (1, 4, 16)
RSS_SIZES = (1_000, 10_000)
OVERHEAD_BLOCKS = int(os.environ.get("BENCH_OVERHEAD_BLOCKS", "6"))
OVERHEAD_BLOCK = 50
PROFILE_KEYS = int(os.environ.get("BENCH_PROFILE_KEYS", "500"))
#: The goal for the client's CPU per key in bulk, in ms (Vault and Secrets Manager alike).
CPU_GOAL_MS = 5.0


def _cpu_verdict(ms: float) -> str:
    return f"goal <= {CPU_GOAL_MS:.0f} ms: {'met' if ms <= CPU_GOAL_MS else 'MISSED'}"


def _write_file(path: Path, api_id: str, count: int, tag: str) -> None:
    with path.open("w") as handle:
        for index in range(count):
            handle.write(json.dumps({"api": api_id, "alias": f"{tag}-{index}"}) + "\n")


def _unkey(url: str, root_key: str) -> UnkeyClient:
    return UnkeyClient(root_key, base_url=url)


def _run_bulk(
    unkey: UnkeyClient,
    store: SecretStore,
    path: Path,
    concurrency: int,
    mode: str = "safe",
) -> tuple[float, float, int]:
    cpu, wall = time.process_time(), time.perf_counter()
    failed = sum(
        not r.done
        for r in provision_many(
            unkey,
            store,
            read_lines(path),
            concurrency=concurrency,
            mode=mode,  # type: ignore[arg-type]
        )
    )
    return time.perf_counter() - wall, time.process_time() - cpu, failed


def _speedup(bao: OpenBaoServer, url: str, root_key: str, tmp: Path) -> float:
    print(
        f"speed-up: {BULK_KEYS} keys into Vault, safe mode with an alias, "
        f"{DELAY * 1000:.0f} ms per Unkey call (2 calls a key)"
    )
    print(
        f"{'workers':>7} | {'seconds':>7} | {'keys/s':>7} | {'speed-up':>8} | "
        f"{'of linear':>9} | {'client CPU/key':>14} | failed"
    )
    base_rate = 0.0
    worst = 1.0
    with _unkey(url, root_key) as unkey:
        store = VaultStore(bao.client(), max_connections=32)
        for level in LEVELS:
            api_id = unkey.create_api(f"bulk-{level}-{uuid.uuid4().hex[:6]}")
            path = tmp / f"speed-{level}.jsonl"
            _write_file(path, api_id, BULK_KEYS, "s")
            wall, cpu, failed = _run_bulk(unkey, store, path, level)
            rate = BULK_KEYS / wall
            base_rate = base_rate or rate
            share = rate / base_rate / level
            worst = min(worst, share)
            ms = cpu / BULK_KEYS * 1000
            print(
                f"{level:>7} | {wall:>7.2f} | {rate:>7.1f} | {rate / base_rate:>7.2f}x | "
                f"{share:>8.0%} | {ms:>11.2f} ms | {failed}   "
                f"(speed-up goal >= 80% of linear: {'met' if share >= 0.8 else 'MISSED'}; "
                f"CPU {_cpu_verdict(ms)})",
                flush=True,
            )
    return worst


class _Requests:
    """Counts the HTTP requests each service receives, through the clients' public hooks."""

    def __init__(self) -> None:
        self.counts = {"Unkey": 0, "Vault": 0, "Secrets Manager": 0}

    def unkey(self, unkey: UnkeyClient) -> None:
        def hit(_: object) -> None:
            self.counts["Unkey"] += 1

        http = unkey._wire.http  # our own client's httpx.Client: its public event hooks
        http.event_hooks = {**http.event_hooks, "response": [*http.event_hooks["response"], hit]}

    def vault(self, store: VaultStore) -> None:
        def hit(response: object, *_: object, **__: object) -> None:
            self.counts["Vault"] += 1

        store.client.adapter.session.hooks["response"].append(hit)

    def aws(self, client: object) -> None:
        def hit(**_: object) -> None:
            self.counts["Secrets Manager"] += 1

        client.meta.events.register("before-send.secrets-manager", hit)  # type: ignore[attr-defined]


#: Which service's requests a library's CPU is spent on (the rest is spread over all of them).
_SERVICE_OF = {
    "hvac": "Vault",
    "requests": "Vault",
    "httpx": "Unkey",
    "httpcore": "Unkey",
    "h11": "Unkey",
    "botocore": "Secrets Manager",
    "boto3": "Secrets Manager",
}


def _breakdown(
    label: str, unkey: UnkeyClient, store: SecretStore, requests: _Requests, mode: str
) -> float:
    """PROFILE_KEYS provisions in one thread, sampled on the CPU clock: where the CPU goes."""
    api_id = unkey.create_api(f"profile-{uuid.uuid4().hex[:6]}")
    for index in range(10):  # warm: connections open, the store's preflight done
        provision(unkey, store, api_id, alias=f"w{index}", mode=mode)  # type: ignore[arg-type]
    before = dict(requests.counts)
    with CpuSampler() as sampler:
        for index in range(PROFILE_KEYS):
            provision(unkey, store, api_id, alias=f"p{index}", mode=mode)  # type: ignore[arg-type]
    per_key = {
        name: (requests.counts[name] - before[name]) / PROFILE_KEYS for name in requests.counts
    }
    ms = sampler.cpu / PROFILE_KEYS * 1000
    calls = ", ".join(f"{name} {count:g}" for name, count in per_key.items() if count)
    print(
        f"{label}, {mode} mode with an alias, one thread, {PROFILE_KEYS} keys: client CPU "
        f"{ms:.2f} ms a key (system {sampler.system / PROFILE_KEYS * 1000:.2f}), "
        f"{_cpu_verdict(ms)}; requests a key: {calls}"
    )
    print(f"  {'library':<16} | {'share':>6} | {'ms/key':>6} | ms/request")
    for name, share in sampler.shares():
        service = _SERVICE_OF.get(name)
        if name in ("urllib3", "http.client"):
            service = "Vault" if per_key["Vault"] else "Secrets Manager"
        each = ""
        if service is not None and per_key[service]:
            each = f"{share * ms / per_key[service]:.3f} ({service})"
        print(f"  {name:<16} | {share:>6.1%} | {share * ms:>6.2f} | {each}")
    return ms


def _where_cpu_goes(bao: OpenBaoServer, moto: RemoteMoto, url: str, root_key: str) -> None:
    print(
        "where a key's client CPU goes (sampled on the CPU clock; a standard-library frame "
        "counts for its caller, http.client and its header parser on their own):"
    )
    requests = _Requests()
    with _unkey(url, root_key) as unkey:
        requests.unkey(unkey)
        vault = VaultStore(bao.client(), max_connections=32)
        requests.vault(vault)
        _breakdown("Vault", unkey, vault, requests, "safe")
        client = moto.client("secretsmanager")
        requests.aws(client)
        _breakdown("Secrets Manager", unkey, SecretsManagerStore(client), requests, "fast")


def _quota(moto: RemoteMoto, url: str, root_key: str, tmp: Path) -> None:
    print(
        f"quota: {QUOTA_KEYS} keys into Secrets Manager (moto), fast mode with an alias: "
        "2 CreateSecret a line, held to 50/s"
    )
    print(
        f"{'workers':>7} | {'seconds':>7} | {'keys/s':>7} | {'CreateSecret/s':>14} | "
        f"{'client CPU/key':>14} | failed"
    )
    with _unkey(url, root_key) as unkey:
        store = SecretsManagerStore(moto.client("secretsmanager"))
        for level in LEVELS:
            api_id = unkey.create_api(f"quota-{level}-{uuid.uuid4().hex[:6]}")
            path = tmp / f"quota-{level}.jsonl"
            _write_file(path, api_id, QUOTA_KEYS, "q")
            wall, cpu, failed = _run_bulk(unkey, store, path, level, mode="fast")
            ms = cpu / QUOTA_KEYS * 1000
            print(
                f"{level:>7} | {wall:>7.2f} | {QUOTA_KEYS / wall:>7.1f} | "
                f"{2 * QUOTA_KEYS / wall:>14.1f} | {ms:>11.2f} ms | {failed}   "
                f"(CPU {_cpu_verdict(ms)})",
                flush=True,
            )


_RSS_CHILD = """
import json, sys
from unkey_secrets import UnkeyClient
from unkey_secrets.bulk import provision_many, read_lines
from unkey_secrets.stores.vault import VaultStore
import hvac
def peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
url, root_key, vault_url, token, path = sys.argv[1:6]
store = VaultStore(hvac.Client(url=vault_url, token=token), max_connections=8)
with UnkeyClient(root_key, base_url=url) as unkey:
    failed = sum(not r.done for r in provision_many(
        unkey, store, read_lines(path), concurrency=8, mode="fast"))
print(json.dumps({"kib": peak_kib(), "failed": failed}))
"""


def _rss(bao: OpenBaoServer, url: str, root_key: str, tmp: Path) -> None:
    print("peak RSS of a process running provision_many over a file (fast mode, 8 workers)")
    peaks = {}
    with _unkey(url, root_key) as unkey:
        for size in RSS_SIZES:
            api_id = unkey.create_api(f"rss-{size}-{uuid.uuid4().hex[:6]}")
            path = tmp / f"rss-{size}.jsonl"
            _write_file(path, api_id, size, "r")
            started = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _RSS_CHILD,
                    url,
                    root_key,
                    bao.url,
                    bao.root_token,
                    str(path),
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            sample = json.loads(done.stdout.strip().splitlines()[-1])
            peaks[size] = sample["kib"]
            print(
                f"  {size:>6} lines: peak RSS {sample['kib'] / 1024:6.1f} MiB "
                f"({time.perf_counter() - started:.1f} s, failed {sample['failed']})",
                flush=True,
            )
    ratio = peaks[RSS_SIZES[-1]] / peaks[RSS_SIZES[0]]
    print(f"  {RSS_SIZES[-1]:,} / {RSS_SIZES[0]:,} lines: {ratio:.2f}x (goal within 1.1x)")


def _overhead(bao: OpenBaoServer, url: str, root_key: str, tmp: Path) -> None:
    retry = RetryPolicy()
    bulk_ms: list[float] = []
    loop_ms: list[float] = []
    with _unkey(url, root_key) as unkey:
        store = VaultStore(bao.client())
        api_id = unkey.create_api(f"overhead-{uuid.uuid4().hex[:6]}")
        for block in range(OVERHEAD_BLOCKS + 1):
            path = tmp / f"over-{block}.jsonl"
            _write_file(path, api_id, OVERHEAD_BLOCK, f"b{block}")
            loop_path = tmp / f"loop-{block}.jsonl"
            _write_file(loop_path, api_id, OVERHEAD_BLOCK, f"l{block}")

            def bulk(path: Path = path) -> None:
                for _ in provision_many(unkey, store, read_lines(path), concurrency=1):
                    pass

            def loop(path: Path = loop_path) -> None:
                for line in read_lines(path):
                    provision(unkey, store, line.api_id, alias=line.alias, retry=retry)

            order = (bulk, loop) if block % 2 else (loop, bulk)
            for action in order:
                started = time.perf_counter()
                action()
                elapsed = (time.perf_counter() - started) * 1000 / OVERHEAD_BLOCK
                if block:  # the first block warms both
                    (bulk_ms if action is bulk else loop_ms).append(elapsed)
    ours, theirs = statistics.median(bulk_ms), statistics.median(loop_ms)
    print(
        f"per key, no injected delay, Vault, safe mode with an alias: provision_many "
        f"(concurrency 1, from a file) {ours:.2f} ms | loop of provision {theirs:.2f} ms | "
        f"ratio {ours / theirs:.2f}x (goal within 1.2x)  "
        f"[median of {OVERHEAD_BLOCKS} blocks of {OVERHEAD_BLOCK}, interleaved]"
    )


def main() -> int:
    """Print the tables; always succeeds (a benchmark reports, it does not judge)."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        OpenBaoServer() as bao,
        RemoteMoto() as moto,
    ):
        with RemoteEmulator(DELAY) as (url, root_key):
            _speedup(bao, url, root_key, Path(tmp))
            _quota(moto, url, root_key, Path(tmp))
        with RemoteEmulator(0.0) as (url, root_key):
            _where_cpu_goes(bao, moto, url, root_key)
            _rss(bao, url, root_key, Path(tmp))
            _overhead(bao, url, root_key, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
