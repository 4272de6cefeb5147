"""The async reader: the event loop's lag while it refreshes, and its hot path against sync get().

Against moto's server in a process of its own (so the reader measured here pays only its own
CPU, never the server's), reading Secrets Manager through the store the sync reader uses.

* loop lag while refreshing: LAG_KEYS keys with ``max_age`` LAG_MAX_AGE, each asked for by a
  coroutine every 10 ms for LAG_SECONDS, so reads of the store run all along (each on a worker
  thread); a ticker task sleeping 5 ms at a time measures its own oversleep. Printed beside the
  goal (under GOAL_MS at worst), and beside the same workload calling the sync ``get()`` from
  the coroutines, which reads on the loop: what the async reader spares an app. The heap built
  before measuring is frozen out of the garbage collector (``gc.freeze()``, as a server does
  after start-up), so a full collection of it is not counted as the reader's.
* hot path: ``await key.get()`` of a fresh key against the sync ``key.get()`` of the same key,
  called from a coroutine, in blocks of HOT_BLOCK calls, interleaved (which goes first
  alternates) over BENCH_ROUNDS rounds; medians per call and their ratio.
"""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from unkey_secrets.config import AsyncCachedKey, AsyncKeyReader, CachedKey
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.moto import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, MotoServer

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "60"))
LAG_SECONDS = float(os.environ.get("BENCH_LAG_SECONDS", "3"))
LAG_KEYS = 20
LAG_MAX_AGE = 0.25
ASK_EVERY = 0.010
TICK = 0.005
GOAL_MS = 50.0
HOT_BLOCK = 2000
API_ID = "api_benchasync"


@contextmanager
def _remote_moto() -> Iterator[str]:
    """moto's server in a child process; yields its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "unkey_secrets.testing.moto", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _store(url: str) -> SecretsManagerStore:
    client = MotoServer().client(
        "secretsmanager",
        endpoint_url=url,
        aws_access_key_id=DUMMY_ACCESS_KEY_ID,
        aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
    )
    return SecretsManagerStore(client)


async def _lag(keys: list[AsyncCachedKey], *, on_loop: bool) -> tuple[list[float], int]:
    """The ticker's oversleeps (ms) while coroutines keep asking for ``keys``; reads made."""
    stop = asyncio.Event()
    lags: list[float] = []
    before = sum(key.reads for key in keys)

    async def ticker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            lags.append((time.perf_counter() - started - TICK) * 1000)

    async def asker(key: AsyncCachedKey) -> None:
        sync: CachedKey = key.sync
        while not stop.is_set():
            if on_loop:
                sync.get()  # reads on the loop when the key is older than max_age
            else:
                await key.get()
            await asyncio.sleep(ASK_EVERY)

    tasks = [asyncio.ensure_future(ticker())]
    tasks += [asyncio.ensure_future(asker(key)) for key in keys]
    await asyncio.sleep(LAG_SECONDS)
    stop.set()
    await asyncio.gather(*tasks)
    return lags, sum(key.reads for key in keys) - before


async def _hot(key: AsyncCachedKey) -> tuple[float, float]:
    """Medians (ns per call) of ``await key.get()`` and the sync ``get()`` of a fresh key."""
    sync = key.sync
    await key.get()
    mine: list[float] = []
    theirs: list[float] = []

    async def ours() -> None:
        started = time.perf_counter()
        for _ in range(HOT_BLOCK):
            await key.get()
        mine.append((time.perf_counter() - started) / HOT_BLOCK * 1e9)

    def floor() -> None:
        started = time.perf_counter()
        for _ in range(HOT_BLOCK):
            sync.get()
        theirs.append((time.perf_counter() - started) / HOT_BLOCK * 1e9)

    for index in range(ROUNDS + 3):
        if index % 2:
            await ours()
            floor()
        else:
            floor()
            await ours()
    # The first three rounds warm both up.
    return statistics.median(mine[3:]), statistics.median(theirs[3:])


def _describe(lags: list[float]) -> str:
    ordered = sorted(lags)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"median {statistics.median(ordered):5.2f} ms, p99 {p99:6.2f} ms, max {ordered[-1]:6.1f} ms"
    )


async def _measure(url: str) -> None:
    store = _store(url)
    aliases = [f"svc{index}" for index in range(LAG_KEYS)]
    for alias in [*aliases, "hot"]:
        key = canary_key(api_id=API_ID, alias=alias)
        store.put(key)
        store.set_current(key, alias=alias)
    async with AsyncKeyReader(store, max_age=LAG_MAX_AGE) as reader:
        keys = [reader.key(api_id=API_ID, alias=alias) for alias in aliases]
        await asyncio.gather(*(key.get() for key in keys))
        gc.collect()
        gc.freeze()
        try:
            lags, reads = await _lag(keys, on_loop=False)
            blocking, blocking_reads = await _lag(keys, on_loop=True)
        finally:
            gc.unfreeze()
        verdict = "met" if max(lags) < GOAL_MS else "MISSED"
        print(
            f"loop lag while the async reader refreshes: {_describe(lags)} "
            f"(goal: max < {GOAL_MS:.0f} ms, {verdict})  [{reads} reads of {LAG_KEYS} keys "
            f"in {LAG_SECONDS:g} s, {len(lags)} ticks]",
            flush=True,
        )
        print(
            f"  the same calling sync get() on the loop: {_describe(blocking)}  "
            f"[{blocking_reads} reads]",
            flush=True,
        )
        ours, floor = await _hot(reader.key(api_id=API_ID, alias="hot"))
        print(
            f"hot await get(): {ours:6.0f} ns vs sync get() {floor:6.0f} ns "
            f"({ours / floor:.2f}x)  [median of {ROUNDS} interleaved blocks of {HOT_BLOCK}]",
            flush=True,
        )


def main() -> int:
    """Print the figures; always succeeds (a benchmark reports, it does not judge)."""
    with _remote_moto() as url:
        asyncio.run(_measure(url))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
