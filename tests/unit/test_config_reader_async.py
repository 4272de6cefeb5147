"""The asyncio reader (unkey_secrets.config.AsyncKeyReader/AsyncCachedKey) on the in-memory store.

A store read that hangs is held on a ``threading.Event`` the test releases; a test that needs
every coroutine waiting on the read yields to the loop once (``asyncio.sleep(0)``), which runs
each ready task up to its first suspension: no timed sleep stands in for an ordering.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import warnings
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

import pytest

from unkey_secrets import (
    ConfigurationError,
    IssuedKey,
    Secret,
    StoredKey,
    StoreUnavailableError,
)
from unkey_secrets.config import (
    MAX_READ_THREADS,
    AsyncCachedKey,
    AsyncKeyReader,
    KeyExpiredError,
    KeyInfo,
    KeyNotFoundError,
    KeyReader,
    KeyStoreUnavailableError,
    UnkeyKey,
    UnkeySecretStr,
)
from unkey_secrets.config import reader as reader_module
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key

API = "api_config"
T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GatedStore(InMemoryStore):
    """Reads of an alias wait on ``gate`` while it is closed; ``entered`` is set by each read."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.read_threads: list[int] = []

    def _get_current(self, path: str) -> StoredKey:
        self.read_threads.append(threading.get_ident())
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        return super()._get_current(path)


def _stored(store: InMemoryStore, alias: str = "billing", expires: int | None = None) -> IssuedKey:
    key = canary_key(api_id=API, alias=alias)
    if expires is not None:
        key = IssuedKey(
            key_id=key.key_id, secret=key.secret, api_id=API, alias=alias, expires=expires
        )
    store.put(key)
    store.set_current(key, alias=alias)
    return key


def _count_sync_calls(key: AsyncCachedKey) -> list[bool]:
    """Record each call of the wrapped CachedKey's _obtain (one per worker-thread hop)."""
    calls: list[bool] = []
    original = key.sync._obtain

    def counted(*, force: bool, field: str | None) -> StoredKey:
        calls.append(force)
        return original(force=force, field=field)

    key.sync._obtain = counted  # type: ignore[method-assign]
    return calls


async def _lag_while(work: Awaitable[T], interval: float = 0.002) -> tuple[T, float, int]:
    """Run ``work`` while a ticker measures its own oversleep: the result, the worst, the ticks."""
    worst = 0.0
    ticks = 0
    done = False

    async def tick() -> None:
        nonlocal worst, ticks
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(interval)
            worst = max(worst, time.perf_counter() - started - interval)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    try:
        result = await work
    finally:
        done = True
        await ticker
    return result, worst, ticks


# -- the hot path ----------------------------------------------------------------------------


def test_a_fresh_key_comes_from_memory_with_no_thread_hop() -> None:
    store = InMemoryStore()
    key = _stored(store)
    clock = Clock()

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60, clock=clock) as reader:
            cached = reader.key(api_id=API, alias="billing")
            assert (await cached.get()).key_id == key.key_id
            calls = _count_sync_calls(cached)

            def no_thread() -> Any:
                raise AssertionError("a fresh key took a worker thread")

            reader._executor_for_reads = no_thread  # type: ignore[method-assign]
            clock.now += 59.9
            for _ in range(100):
                assert (await cached.get()).key_id == key.key_id
            assert (await reader.get(api_id=API, alias="billing")).secret == key.secret
            assert isinstance(await cached.secret(), Secret)
            assert (await cached.info()).key_id == key.key_id
            assert calls == []
            assert cached.reads == 1

    run(main())


def test_reads_run_on_worker_threads_and_pick_up_a_moved_alias() -> None:
    store = GatedStore()
    first = _stored(store)
    clock = Clock()

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60, clock=clock) as reader:
            cached = reader.key(api_id=API, alias="billing")
            assert (await cached.get()).key_id == first.key_id
            assert store.read_threads[-1] != threading.get_ident()
            second = _stored(store)
            assert (await cached.get()).key_id == first.key_id  # still fresh
            clock.now += 61
            assert (await cached.get()).key_id == second.key_id
            third = _stored(store)
            assert (await cached.refresh()).key_id == third.key_id  # ignores max_age
            secret_str = await cached.secret_str()
            assert isinstance(secret_str, UnkeySecretStr)
            assert secret_str.info.key_id == third.key_id
            assert cached.reads == 3
            assert threading.get_ident() not in store.read_threads

    run(main())


# -- single flight ---------------------------------------------------------------------------


def test_one_read_and_one_thread_however_many_coroutines_ask() -> None:
    store = GatedStore()
    key = _stored(store)

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60) as reader:
            cached = reader.key(api_id=API, alias="billing")
            calls = _count_sync_calls(cached)
            store.gate.clear()
            tasks = [asyncio.ensure_future(cached.get()) for _ in range(50)]
            await asyncio.sleep(0)  # every task runs up to its wait on the one read
            assert await asyncio.to_thread(store.entered.wait, 10)
            store.gate.set()
            results = await asyncio.gather(*tasks)
            assert [r.key_id for r in results] == [key.key_id] * 50
            assert calls == [True]  # one worker-thread hop for the 50 callers
            assert cached.reads == 1
            assert store.calls.count("get_current") == 1

    run(main())


def test_every_waiter_gets_the_reads_error_as_its_own_copy() -> None:
    store = GatedStore()

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60) as reader:
            cached = reader.key(api_id=API, alias="missing")
            store.gate.clear()
            tasks = [asyncio.ensure_future(cached.get()) for _ in range(8)]
            await asyncio.sleep(0)
            store.gate.set()
            errors = await asyncio.gather(*tasks, return_exceptions=True)
            assert all(isinstance(e, KeyNotFoundError) for e in errors)
            assert len({id(e) for e in errors}) == 8
            assert store.calls.count("get_current") == 1

    run(main())


def test_a_cancelled_waiter_does_not_cancel_the_read() -> None:
    store = GatedStore()
    key = _stored(store)

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60) as reader:
            cached = reader.key(api_id=API, alias="billing")
            store.gate.clear()
            leader = asyncio.ensure_future(cached.get())
            other = asyncio.ensure_future(cached.get())
            await asyncio.sleep(0)
            assert await asyncio.to_thread(store.entered.wait, 10)
            leader.cancel()  # the caller that started the read goes away
            with pytest.raises(asyncio.CancelledError):
                await leader
            store.gate.set()
            assert (await other).key_id == key.key_id
            assert (await cached.get()).key_id == key.key_id
            assert cached.reads == 1

    run(main())


def test_a_read_whose_every_waiter_was_cancelled_still_fills_the_cache() -> None:
    store = GatedStore()
    key = _stored(store)

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60) as reader:
            cached = reader.key(api_id=API, alias="billing")
            store.gate.clear()
            waiter = asyncio.ensure_future(cached.get())
            await asyncio.sleep(0)
            flight = next(iter(cached._flights.values()))
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            store.gate.set()
            await asyncio.wait([flight.future])
            assert cached._flights == {}
            calls = _count_sync_calls(cached)
            assert (await cached.get()).key_id == key.key_id
            assert calls == []  # served from the cache the cancelled read filled
            assert cached.reads == 1

    run(main())


def test_sync_and_async_callers_share_one_read() -> None:
    store = GatedStore()
    key = _stored(store)

    async def main() -> None:
        sync_reader = KeyReader(store, max_age=60)
        async with AsyncKeyReader(sync_reader) as reader:
            cached = reader.key(api_id=API, alias="billing")
            assert cached.sync is sync_reader.key(api_id=API, alias="billing")
            store.gate.clear()
            from_thread = asyncio.ensure_future(asyncio.to_thread(cached.sync.get))
            assert await asyncio.to_thread(store.entered.wait, 10)
            from_loop = asyncio.ensure_future(cached.get())
            await asyncio.sleep(0)
            store.gate.set()
            assert (await from_thread).key_id == key.key_id
            assert (await from_loop).key_id == key.key_id
            assert store.calls.count("get_current") == 1

    run(main())


# -- the read's bound ------------------------------------------------------------------------


def test_a_hung_read_is_waited_for_at_most_read_timeout_without_blocking_the_loop() -> None:
    store = GatedStore()
    _stored(store)
    bound = 0.3

    async def main() -> None:
        reader = AsyncKeyReader(store, max_age=60, read_timeout=bound)
        cached = reader.key(api_id=API, alias="billing")
        calls = _count_sync_calls(cached)
        store.gate.clear()
        try:
            started = time.monotonic()
            with pytest.raises(KeyStoreUnavailableError) as raised:
                await _lag_while(cached.get())
            waited = time.monotonic() - started
            assert bound <= waited < bound + 0.5
            assert "within read_timeout (0.3 s)" in str(raised.value)
            # A caller arriving while the hung read is still running joins it, past its bound:
            # its answer at once, and no second read piles up.
            started = time.monotonic()
            with pytest.raises(KeyStoreUnavailableError):
                await cached.refresh()
            assert time.monotonic() - started < bound
            assert calls == [True]
        finally:
            store.gate.set()
            await reader.aclose()

    run(main())


def test_the_loop_keeps_ticking_while_a_read_hangs() -> None:
    store = GatedStore()
    _stored(store)

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60, read_timeout=0.3) as reader:
            store.gate.clear()
            try:
                outcome, worst, ticks = await _lag_while(
                    asyncio.gather(reader.get(api_id=API, alias="billing"), return_exceptions=True)
                )
            finally:
                store.gate.set()
            assert isinstance(outcome[0], KeyStoreUnavailableError)
            # The read hangs for the whole 0.3 s bound; the loop ticks all along (a loaded
            # machine may pause it now and then, never for the read's length).
            assert ticks >= 20, f"the loop ticked {ticks} times in 0.3 s"
            assert worst < 0.15, f"the loop stalled {worst * 1000:.0f} ms"

    run(main())


def test_a_read_past_read_timeout_serves_the_cached_key_within_the_bound() -> None:
    store = GatedStore()
    key = _stored(store)
    clock = Clock()

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60, read_timeout=0.2, clock=clock) as reader:
            cached = reader.key(api_id=API, alias="billing")
            await cached.get()
            clock.now += 61
            store.gate.clear()
            calls = _count_sync_calls(cached)
            try:
                started = time.monotonic()
                assert (await cached.get()).key_id == key.key_id
                assert time.monotonic() - started < 0.7
                assert cached.sync._backoff == 1.0
                # The back-off: the next get() within 1 s is served from memory, no new read.
                assert (await cached.get()).key_id == key.key_id
                assert calls == [True]
            finally:
                store.gate.set()

    run(main())


# -- max_stale, back-off, expiry -------------------------------------------------------------


def test_the_cached_key_is_served_while_the_store_fails_then_max_stale_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryStore()
    key = _stored(store)
    clock = Clock()

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60, max_stale=100, clock=clock) as reader:
            cached = reader.key(api_id=API, alias="billing")
            await cached.get()
            clock.now += 61
            store.fail_next("get_current", StoreUnavailableError("down", store="memory"), times=99)
            with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
                waiters = await asyncio.gather(*(cached.get() for _ in range(5)))
            assert [s.key_id for s in waiters] == [key.key_id] * 5
            assert caplog.text.count("serving the cached key") == 1
            assert cached.sync._backoff == 1.0
            assert cached.reads == 2  # the first read, then one for the five callers
            clock.now += 0.5  # within the back-off: no read
            assert (await cached.get()).key_id == key.key_id
            assert cached.reads == 2
            clock.now += 0.6  # past it: read again, fail, back off 2 s
            assert (await cached.get()).key_id == key.key_id
            assert cached.reads == 3
            assert cached.sync._backoff == 2.0
            with pytest.raises(KeyStoreUnavailableError):
                await cached.refresh()  # refresh never falls back
            clock.now += 100  # max_age + max_stale passed
            with pytest.raises(KeyStoreUnavailableError):
                await cached.get()

    run(main())


def test_a_stored_key_that_has_expired_is_never_served() -> None:
    store = InMemoryStore()
    wall = Clock(time.time())
    _stored(store, expires=int(wall.now * 1000) - 1)

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60, wall_clock=wall) as reader:
            with pytest.raises(KeyExpiredError):
                await reader.key(api_id=API, alias="billing").get(field="billing_key")

    run(main())


def test_a_cached_key_is_not_served_past_its_own_expiry_even_while_the_store_fails() -> None:
    store = InMemoryStore()
    wall = Clock(time.time())
    clock = Clock()
    key = _stored(store, expires=int(wall.now * 1000) + 10_000)

    async def main() -> None:
        async with AsyncKeyReader(
            store, max_age=300, clock=clock, wall_clock=wall, expiry_warning=0
        ) as reader:
            cached = reader.key(api_id=API, alias="billing")
            assert (await cached.get()).key_id == key.key_id
            wall.now += 10  # its expiry, well within max_age and max_stale
            store.fail_next("get_current", StoreUnavailableError("down", store="memory"))
            with pytest.raises(KeyStoreUnavailableError):
                await cached.get()
            with pytest.raises(KeyExpiredError):
                await cached.get()  # the store answers: the key it holds has expired
            renewed = _stored(store)
            assert (await cached.get()).key_id == renewed.key_id

    run(main())


# -- on_change -------------------------------------------------------------------------------


def test_on_change_runs_plain_and_async_callbacks_on_the_loop() -> None:
    store = InMemoryStore()
    first = _stored(store)
    clock = Clock()

    async def main() -> None:
        loop_thread = threading.get_ident()
        seen: list[tuple[str, str, str, bool]] = []
        changed = asyncio.Event()

        async def async_callback(old: KeyInfo, new: KeyInfo) -> None:
            await asyncio.sleep(0)
            seen.append(("async", old.key_id, new.key_id, threading.get_ident() == loop_thread))
            changed.set()

        def plain_callback(old: KeyInfo, new: KeyInfo) -> None:
            seen.append(("plain", old.key_id, new.key_id, threading.get_ident() == loop_thread))

        async with AsyncKeyReader(store, max_age=60, clock=clock) as reader:
            cached = reader.key(api_id=API, alias="billing")
            await cached.get()
            cached.on_change(async_callback)
            unsubscribe = cached.on_change(plain_callback)
            second = _stored(store)
            clock.now += 61
            assert (await cached.get()).key_id == second.key_id
            await asyncio.wait_for(changed.wait(), 5)
            assert sorted(seen) == [
                ("async", first.key_id, second.key_id, True),
                ("plain", first.key_id, second.key_id, True),
            ]
            unsubscribe()
            seen.clear()
            changed.clear()
            _stored(store)
            await asyncio.to_thread(cached.sync.refresh)  # a sync caller's read calls back too
            await asyncio.wait_for(changed.wait(), 5)
            assert [s[0] for s in seen] == ["async"]

    run(main())


def test_a_failing_callback_is_logged_by_class_only(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryStore()
    _stored(store)

    async def main() -> None:
        done = asyncio.Event()

        async def broken(old: KeyInfo, new: KeyInfo) -> None:
            done.set()
            raise RuntimeError(f"callback bug with {new.key_id} secret-ish detail")

        def broken_plain(old: KeyInfo, new: KeyInfo) -> None:
            raise ValueError("plain callback bug detail")

        async with AsyncKeyReader(store, max_age=60) as reader:
            cached = reader.key(api_id=API, alias="billing")
            await cached.get()
            cached.on_change(broken)
            cached.on_change(broken_plain)
            _stored(store)
            with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
                await cached.refresh()
                await asyncio.wait_for(done.wait(), 5)
                await asyncio.sleep(0)  # the task logs after its coroutine raised
                while reader._tasks:
                    await asyncio.wait(list(reader._tasks))
        assert "on_change callback failed (RuntimeError)" in caplog.text
        assert "on_change callback failed (ValueError)" in caplog.text
        assert "detail" not in caplog.text

    run(main())


# -- closing ---------------------------------------------------------------------------------


def test_aclose_unsubscribes_cancels_callback_tasks_and_ends_its_threads() -> None:
    store = InMemoryStore()
    _stored(store)
    sync_reader = KeyReader(store, max_age=60)

    async def main() -> None:
        started = asyncio.Event()
        cancelled: list[bool] = []
        calls: list[str] = []

        async def slow(old: KeyInfo, new: KeyInfo) -> None:
            calls.append(new.key_id)
            started.set()
            try:
                await asyncio.Event().wait()  # until cancelled
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        reader = AsyncKeyReader(sync_reader)
        cached = reader.key(api_id=API, alias="billing")
        await cached.get()
        threads = [t for t in threading.enumerate() if t.name.startswith("unkey-secrets-reader")]
        assert threads
        cached.on_change(slow)
        _stored(store)
        await cached.refresh()
        await asyncio.wait_for(started.wait(), 5)
        await reader.aclose()
        assert cancelled == [True]
        assert reader.closed
        for thread in threads:
            thread.join(5)
            assert not thread.is_alive()
        with pytest.raises(ConfigurationError, match="closed"):
            await cached.get()
        with pytest.raises(ConfigurationError, match="closed"):
            await reader.get(api_id=API, alias="billing")
        await reader.aclose()  # again: nothing
        # The wrapped reader goes on, without the closed reader's callbacks.
        _stored(store)
        await asyncio.to_thread(cached.sync.refresh)
        assert len(calls) == 1

    run(main())


def test_aclose_waits_for_a_read_in_flight() -> None:
    store = GatedStore()
    key = _stored(store)

    async def main() -> None:
        reader = AsyncKeyReader(store, max_age=60)
        cached = reader.key(api_id=API, alias="billing")
        store.gate.clear()
        waiter = asyncio.ensure_future(cached.get())
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(reader.aclose())
        await asyncio.sleep(0)
        assert not closing.done()
        store.gate.set()
        await closing
        assert (await waiter).key_id == key.key_id

    run(main())


def test_aclose_is_not_held_behind_reads_that_hang() -> None:
    # More keys hang than the reader has worker threads: closing still ends at once, its own
    # step (stopping the wrapped reader) not queued behind them.
    store = GatedStore()
    aliases = [f"svc{n}" for n in range(MAX_READ_THREADS + 2)]
    for alias in aliases:
        _stored(store, alias)

    async def main() -> None:
        reader = AsyncKeyReader(store, max_age=60, read_timeout=0.2)
        store.gate.clear()
        try:
            outcomes = await asyncio.gather(
                *(reader.get(api_id=API, alias=alias) for alias in aliases),
                return_exceptions=True,
            )
            assert all(isinstance(o, KeyStoreUnavailableError) for o in outcomes)
            await asyncio.wait_for(reader.aclose(), 10)
            assert reader.closed
        finally:
            store.gate.set()

    run(main())


def test_a_loop_closed_while_its_read_ran_is_not_kept() -> None:
    # asyncio.run() returning (or a test's loop closing) with a read in flight: the flight
    # never lands on that loop; the next read, on another loop, lets it go.
    store = GatedStore()
    key = _stored(store)
    reader = AsyncKeyReader(store, max_age=0)
    cached = reader.key(api_id=API, alias="billing")
    store.gate.clear()
    store.entered.clear()

    async def leave_a_read_running() -> None:
        waiter = asyncio.ensure_future(cached.get())
        assert await asyncio.to_thread(store.entered.wait, 10)
        assert not waiter.done()  # asyncio.run() cancels it; the read goes on

    run(leave_a_read_running())
    assert [loop.is_closed() for loop in cached._flights] == [True]
    store.gate.set()

    async def read_again() -> str:
        return (await cached.get()).key_id

    assert run(read_again()) == key.key_id
    assert cached._flights == {}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_reads_on_worker_threads_of_its_own() -> None:
    # A reader used before a fork (a server's preloaded app, warmed in the parent): its
    # executor's idle threads did not come along, and a read queued for them never ran.
    store = InMemoryStore()
    _stored(store)
    reader = AsyncKeyReader(store, max_age=0, read_timeout=30)
    cached = reader.key(api_id=API, alias="billing")
    run(cached.get())
    moved = _stored(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            stored = run(asyncio.wait_for(cached.get(), 10))
            if stored.key_id == moved.key_id and cached.reads == 2:
                status = 0
        finally:
            os._exit(status)
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0
    assert run(cached.get()).key_id == moved.key_id  # the parent's threads still serve it


# -- construction and telemetry --------------------------------------------------------------


def test_options_go_to_the_wrapped_reader() -> None:
    store = InMemoryStore()
    reader = AsyncKeyReader(store, max_age=5, max_stale=7, read_timeout=3)
    assert (reader.max_age, reader.max_stale, reader.read_timeout) == (5, 7, 3)
    assert isinstance(reader.sync, KeyReader)
    assert reader.store is store
    assert reader.key(api_id=API, alias="billing") is reader.key(api_id=API, alias="billing")
    assert repr(reader).startswith("AsyncKeyReader(store=")
    assert repr(reader.key(api_id=API, alias="billing")).startswith("AsyncCachedKey(alias")
    with pytest.raises(ConfigurationError, match="takes no options"):
        AsyncKeyReader(KeyReader(store), max_age=1)


def test_each_key_handed_out_is_counted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    store = GatedStore()
    _stored(store)
    lookups: list[str] = []
    monkeypatch.setattr(
        reader_module._metrics,
        "reader_lookup",
        lambda store, api_id, alias, result: lookups.append(result),
    )

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60) as reader:
            cached = reader.key(api_id=API, alias="billing")
            store.gate.clear()
            tasks = [asyncio.ensure_future(cached.get()) for _ in range(4)]
            await asyncio.sleep(0)
            store.gate.set()
            await asyncio.gather(*tasks)
            await cached.get()

    run(main())
    assert sorted(lookups) == ["hit", "miss", "miss", "miss", "miss"]


# -- refresh-ahead and warm-up ---------------------------------------------------------------


def test_with_refresh_ahead_get_never_waits_after_the_first_read() -> None:
    store = InMemoryStore()
    first = _stored(store)
    clock = Clock()

    async def main() -> None:
        async with AsyncKeyReader(
            store, max_age=60, refresh_ahead=True, refresh_thread=False, clock=clock
        ) as reader:
            assert reader.sync.refresh_ahead
            cached = reader.key(api_id=API, alias="billing")
            assert (await cached.get()).key_id == first.key_id
            calls = _count_sync_calls(cached)

            def no_thread() -> Any:
                raise AssertionError("a get() waited on a read with refresh-ahead")

            reader._executor_for_reads = no_thread  # type: ignore[method-assign]
            second = _stored(store)
            clock.now += 61  # past max_age: served from memory while a background read is due
            assert (await cached.get()).key_id == first.key_id
            assert (await reader.get(api_id=API, alias="billing")).key_id == first.key_id
            assert calls == []
            assert reader.sync.run_refreshes() == 1  # the background read (here, in this thread)
            assert (await cached.get()).key_id == second.key_id
            assert cached.reads == 2

    run(main())


def test_aclose_stops_the_refresh_ahead_thread_of_the_reader_it_built() -> None:
    store = InMemoryStore()
    _stored(store)

    def refreshers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "unkey-secrets-key-refresh"]

    async def main() -> None:
        before = set(refreshers())
        reader = AsyncKeyReader(store, max_age=60, refresh_ahead=True)
        await reader.get(api_id=API, alias="billing")
        started = [t for t in refreshers() if t not in before]
        assert started, "the first read starts the refresh-ahead thread"
        await reader.aclose()
        assert not reader.sync._ahead
        assert not any(t.is_alive() for t in started)
        # A reader passed in is the caller's: closing the async one leaves it running.
        shared = KeyReader(store, max_age=60, refresh_ahead=True)
        try:
            async with AsyncKeyReader(shared) as wrapper:
                await wrapper.get(api_id=API, alias="billing")
            assert shared._ahead
        finally:
            shared.close()

    run(main())


def test_warm_reads_many_keys_in_one_batch_on_a_worker_thread() -> None:
    store = InMemoryStore()
    keys = {alias: _stored(store, alias=alias) for alias in ("a1", "a2", "a3")}

    async def main() -> None:
        async with AsyncKeyReader(store, max_age=60) as reader:
            loop_thread = threading.get_ident()
            threads: list[int] = []
            original = store.get_many

            def get_many(refs: Any) -> Any:
                threads.append(threading.get_ident())
                return original(refs)

            store.get_many = get_many  # type: ignore[method-assign]
            a3 = reader.key(api_id=API, alias="a3")
            outcome = await reader.warm(
                [
                    UnkeyKey(api_id=API, alias="a1"),
                    reader.key(api_id=API, alias="a2"),
                    a3.sync,
                    UnkeyKey(api_id=API, alias="missing"),
                ]
            )
            assert threads
            assert loop_thread not in threads
            for alias, key in keys.items():
                info = outcome[UnkeyKey(api_id=API, alias=alias)]
                assert isinstance(info, KeyInfo)
                assert info.key_id == key.key_id
            assert isinstance(outcome[UnkeyKey(api_id=API, alias="missing")], KeyNotFoundError)
            calls = _count_sync_calls(a3)
            assert (await a3.get()).key_id == keys["a3"].key_id  # cached by the warm-up
            assert calls == []

    run(main())
