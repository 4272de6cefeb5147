"""Refresh-ahead (KeyReader(refresh_ahead=True)): background reads before max_age runs out.

Time is stepped on an injected clock. Most tests start no thread (``refresh_thread=False``)
and run the due reads with ``run_refreshes()``; the thread's own tests wake it after stepping
the clock, and wait on events the store or a callback sets, never on the wall clock.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from unkey_secrets import (
    ConfigurationError,
    InvalidInputError,
    IssuedKey,
    StoredKey,
    StoreUnavailableError,
)
from unkey_secrets.config import (
    KeyExpiredError,
    KeyInfo,
    KeyReader,
    KeyStoreUnavailableError,
)
from unkey_secrets.config.reader import _THREAD, DEFAULT_REFRESH_WINDOW
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key

API = "api_ahead"
MAX_AGE = 100.0


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GatedStore(InMemoryStore):
    """Reads of the current key wait on ``gate`` (open at first); ``entered`` marks each one."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.reads = 0
        self.fail_after_gate: BaseException | None = None

    def _get_current(self, path: str) -> StoredKey:
        self.reads += 1
        self.entered.set()
        assert self.gate.wait(10), "the test never opened the gate"
        failure, self.fail_after_gate = self.fail_after_gate, None
        if failure is not None:
            raise failure
        return super()._get_current(path)


class WatchedEvent(threading.Event):
    """An Event that says when someone starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def _put(store: InMemoryStore, alias: str = "billing", **fields: object) -> IssuedKey:
    key = canary_key(api_id=API, alias=alias)
    if fields:
        key = IssuedKey(
            key_id=key.key_id,
            secret=key.secret,
            api_id=API,
            alias=alias,
            **fields,  # type: ignore[arg-type]
        )
    store.put(key)
    store.set_current(key, alias=alias)
    return key


def _manual(store: InMemoryStore, clock: Clock, **options: object) -> KeyReader:
    options.setdefault("max_age", MAX_AGE)
    return KeyReader(
        store,
        clock=clock,
        refresh_ahead=True,
        refresh_thread=False,
        **options,  # type: ignore[arg-type]
    )


def _refresh_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == _THREAD]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> GatedStore:
    return GatedStore()


# -- the schedule ---------------------------------------------------------------------------


def test_reads_again_inside_the_window_before_max_age(store: GatedStore, clock: Clock) -> None:
    first = _put(store)
    reader = _manual(store, clock)
    cached = reader.key(api_id=API, alias="billing")
    changes: list[tuple[str, str]] = []
    cached.on_change(lambda old, new: changes.append((old.key_id, new.key_id)))
    assert cached.get().key_id == first.key_id
    second = _put(store)
    clock.now += MAX_AGE * DEFAULT_REFRESH_WINDOW[0] - 0.01
    assert reader.run_refreshes() == 0
    assert cached.reads == 1
    clock.now += MAX_AGE * (DEFAULT_REFRESH_WINDOW[1] - DEFAULT_REFRESH_WINDOW[0]) + 0.02
    assert reader.run_refreshes() == 1
    assert cached.reads == 2
    assert changes == [(first.key_id, second.key_id)]
    # Read at ~0.75..0.9 of max_age: fresh until well past the first read's max_age.
    clock.now += MAX_AGE * 0.5
    assert cached.get().key_id == second.key_id
    assert cached.reads == 2


def test_refresh_window_sets_the_point(store: GatedStore, clock: Clock) -> None:
    _put(store)
    reader = _manual(store, clock, refresh_window=(0.5, 0.5))
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    clock.now += MAX_AGE * 0.5 - 0.001
    assert reader.run_refreshes() == 0
    clock.now += 0.002
    assert reader.run_refreshes() == 1
    assert cached.reads == 2


def test_jitter_spreads_the_keys_over_the_window(clock: Clock) -> None:
    store = InMemoryStore()
    aliases = [f"svc-{n}" for n in range(40)]
    for alias in aliases:
        _put(store, alias)
    reader = _manual(store, clock)
    for alias in aliases:
        reader.get(api_id=API, alias=alias)
    start = clock.now
    read_at: list[float] = []
    while clock.now < start + MAX_AGE:
        clock.now += 1.0
        read_at += [clock.now - start] * reader.run_refreshes()
    low, high = (MAX_AGE * f for f in DEFAULT_REFRESH_WINDOW)
    assert len(read_at) == len(aliases)
    assert all(low <= at <= high + 1.0 for at in read_at), read_at
    assert len(set(read_at)) >= 5, read_at  # not in step


def test_get_never_waits_on_a_background_read(store: GatedStore, clock: Clock) -> None:
    first = _put(store)
    reader = _manual(store, clock, max_stale=600)
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    second = _put(store)
    store.gate.clear()
    store.entered.clear()
    clock.now += MAX_AGE * 0.95
    background = threading.Thread(target=reader.run_refreshes)
    background.start()
    assert store.entered.wait(5)
    flight = cached._flight
    assert flight is not None
    flight.done = watched = WatchedEvent()
    # The background read is blocked in the store: get() answers at once from the cache,
    # before max_age and after it (within max_stale).
    started = time.monotonic()
    assert cached.get().key_id == first.key_id
    clock.now += MAX_AGE * 0.1
    assert cached.get().key_id == first.key_id
    assert cached.info().key_id == first.key_id
    assert time.monotonic() - started < 2
    assert store.reads == 2
    # refresh() joins the background read rather than making another.
    refreshed: list[str] = []
    joiner = threading.Thread(target=lambda: refreshed.append(cached.refresh().key_id))
    joiner.start()
    assert watched.waiting.wait(5)
    store.gate.set()
    background.join(5)
    joiner.join(5)
    assert refreshed == [second.key_id]
    assert store.reads == 2
    assert cached.get().key_id == second.key_id


def test_a_get_blocks_only_when_nothing_servable_is_cached(store: GatedStore, clock: Clock) -> None:
    _put(store)
    reader = _manual(store, clock, max_stale=20)
    cached = reader.key(api_id=API, alias="billing")
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"))
    with pytest.raises(KeyStoreUnavailableError):
        cached.get()  # the first read: nothing to serve
    key = _put(store)
    assert cached.get().key_id == key.key_id
    clock.now += MAX_AGE + 20  # past max_age + max_stale, no background read ran
    reads = cached.reads
    assert cached.get().key_id == key.key_id
    assert cached.reads == reads + 1  # read in the caller


# -- failures -------------------------------------------------------------------------------


def test_failed_background_reads_back_off_as_get_does(
    store: GatedStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    key = _put(store)
    reader = _manual(store, clock, refresh_window=(0.8, 0.8))
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"), times=3)
    clock.now += MAX_AGE * 0.8
    tries: list[float] = []
    start = clock.now
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        while clock.now < start + 10:
            if reader.run_refreshes():
                tries.append(round(clock.now - start, 2))
            assert cached.get().key_id == key.key_id  # served at once throughout
            clock.now += 0.25
    # Tried at once, then after 1 s, 2 s and 4 s (the fourth one succeeded).
    assert tries == [0.0, 1.0, 3.0, 7.0]
    assert caplog.text.count("serving the cached key") == 3
    assert "next try in 1 s" in caplog.text
    assert "next try in 4 s" in caplog.text
    assert key.secret.reveal() not in caplog.text
    assert cached._backoff == 0.0


def test_past_max_stale_the_next_get_reads_and_raises(store: GatedStore, clock: Clock) -> None:
    _put(store)
    reader = _manual(store, clock, max_age=10, max_stale=20)
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"), times=100)
    while clock.now < 1000 + 30:
        reader.run_refreshes()
        cached.get()
        clock.now += 0.5
    with pytest.raises(KeyStoreUnavailableError):
        cached.get()


def test_an_error_get_must_raise_is_raised_by_the_next_get(
    store: GatedStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    wall = Clock(1_700_000_000.0)
    first = _put(store)
    reader = _manual(store, clock, wall_clock=wall, expiry_warning=0)
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    _put(store, expires=int(wall.now * 1000) - 1)  # the alias now names an expired key
    clock.now += MAX_AGE * 0.95
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        assert reader.run_refreshes() == 1
    assert "the next get() reads the store itself" in caplog.text
    # Within max_age the cached key is served, as without refresh-ahead; past it, get()
    # reads itself (rather than serve the cached key) and raises what the store holds.
    assert cached.get().key_id == first.key_id
    clock.now += MAX_AGE * 0.1
    reads = cached.reads
    with pytest.raises(KeyExpiredError):
        cached.get()
    assert cached.reads == reads + 1
    fixed = _put(store)
    assert cached.get().key_id == fixed.key_id
    assert first.key_id != fixed.key_id
    clock.now += MAX_AGE * 0.95
    assert reader.run_refreshes() == 1  # scheduled again after the read that worked


def test_a_refresh_failing_while_the_background_read_was_due_keeps_the_schedule(
    store: GatedStore, clock: Clock
) -> None:
    key = _put(store)
    reader = _manual(store, clock)
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    store.gate.clear()
    store.entered.clear()
    store.fail_after_gate = StoreUnavailableError("down", store="memory")
    outcome: list[BaseException] = []

    def refresh() -> None:
        try:
            cached.refresh()
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    caller = threading.Thread(target=refresh)
    caller.start()
    assert store.entered.wait(5)
    clock.now += MAX_AGE * 0.95
    assert reader.run_refreshes() == 1  # due, but a read is in flight: it is not repeated
    assert store.reads == 2
    store.gate.set()
    caller.join(5)
    assert isinstance(outcome[0], KeyStoreUnavailableError)
    # The background wanted that read: it backs off and tries again, as for its own.
    assert cached._backoff == 1.0
    assert reader.run_refreshes() == 0
    clock.now += 1.0
    assert reader.run_refreshes() == 1
    assert store.reads == 3
    assert cached.get().key_id == key.key_id


# -- options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "window", [(0, 0.5), (0.9, 0.8), (0.5, 1.5), (0.5,), "ab", (float("nan"), 0.9), (True, 0.9)]
)
def test_refresh_window_is_checked(window: object) -> None:
    with pytest.raises(InvalidInputError, match="refresh_window"):
        KeyReader(InMemoryStore(), refresh_ahead=True, refresh_window=window)  # type: ignore[arg-type]


def test_refresh_ahead_needs_a_max_age() -> None:
    with pytest.raises(ConfigurationError, match="max_age > 0"):
        KeyReader(InMemoryStore(), max_age=0, refresh_ahead=True)


def test_no_thread_without_refresh_ahead(store: GatedStore) -> None:
    before = _refresh_threads()
    _put(store)
    reader = KeyReader(store)
    reader.get(api_id=API, alias="billing")
    assert _refresh_threads() == before
    reader.close()  # harmless
    assert "refresh_ahead=False" in repr(reader)


# -- the thread -----------------------------------------------------------------------------


@pytest.fixture
def threaded(store: GatedStore, clock: Clock) -> Iterator[KeyReader]:
    reader = KeyReader(store, max_age=MAX_AGE, clock=clock, refresh_ahead=True)
    yield reader
    reader.close()


def test_the_thread_starts_at_the_first_read_and_runs_callbacks(
    threaded: KeyReader, store: GatedStore, clock: Clock
) -> None:
    first = _put(store)
    cached = threaded.key(api_id=API, alias="billing")
    assert threaded._refresher is not None
    assert threaded._refresher._thread is None  # lazily: nothing read yet
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def changed(old: KeyInfo, new: KeyInfo) -> None:
        seen.append((new.key_id, threading.current_thread().name))
        done.set()

    cached.on_change(changed)
    cached.get()
    thread = threaded._refresher._thread
    assert thread is not None
    assert thread.is_alive()
    assert thread.daemon
    second = _put(store)
    clock.now += MAX_AGE * 0.95
    threaded._refresher.wake()
    assert done.wait(5)
    assert seen == [(second.key_id, _THREAD)]
    assert cached.get().key_id == second.key_id
    assert first.key_id != second.key_id


def test_close_stops_and_joins_the_thread(threaded: KeyReader, store: GatedStore) -> None:
    _put(store)
    threaded.get(api_id=API, alias="billing")
    assert threaded._refresher is not None
    thread = threaded._refresher._thread
    assert thread is not None
    assert thread in threading.enumerate()
    threaded.close()
    assert not thread.is_alive()
    assert thread not in threading.enumerate()
    threaded.close()  # idempotent
    # Still answers, reading in the caller, and starts no thread again.
    assert threaded.get(api_id=API, alias="billing")
    assert threaded.key(api_id=API, alias="billing").refresh()
    assert threaded._refresher._thread is thread


def test_the_context_manager_closes(store: GatedStore) -> None:
    _put(store)
    before = _refresh_threads()
    with KeyReader(store, refresh_ahead=True) as reader:
        reader.get(api_id=API, alias="billing")
        assert len(_refresh_threads()) == len(before) + 1
    assert _refresh_threads() == before


def test_close_waits_for_a_background_read_in_progress(
    threaded: KeyReader, store: GatedStore, clock: Clock
) -> None:
    _put(store)
    threaded.get(api_id=API, alias="billing")
    assert threaded._refresher is not None
    thread = threaded._refresher._thread
    assert thread is not None
    store.gate.clear()
    store.entered.clear()
    clock.now += MAX_AGE * 0.95
    threaded._refresher.wake()
    assert store.entered.wait(5)
    closer = threading.Thread(target=threaded.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # waiting for the read
    store.gate.set()
    closer.join(5)
    assert not thread.is_alive()


def test_a_reader_dropped_without_close_stops_its_thread(store: GatedStore, clock: Clock) -> None:
    _put(store)
    reader = KeyReader(store, max_age=MAX_AGE, clock=clock, refresh_ahead=True)
    cached = reader.key(api_id=API, alias="billing")
    read = threading.Event()
    cached.on_change(lambda old, new: read.set())
    cached.get()
    refresher = reader._refresher
    assert refresher is not None
    thread = refresher._thread
    assert thread is not None
    assert thread.is_alive()
    # One background read first: the thread must not keep the reader it read for.
    _put(store)
    clock.now += MAX_AGE * 0.95
    refresher.wake()
    assert read.wait(5)
    del reader, cached
    # The thread may still be finishing that read (holding the reader): collect until the
    # reference it held is gone, for at most 5 s.
    for _ in range(50):
        gc.collect()
        thread.join(0.1)
        if not thread.is_alive():
            break
    assert not thread.is_alive()


def test_a_callback_closing_the_reader_does_not_deadlock(
    threaded: KeyReader, store: GatedStore, clock: Clock
) -> None:
    _put(store)
    cached = threaded.key(api_id=API, alias="billing")
    closed = threading.Event()

    def close(old: KeyInfo, new: KeyInfo) -> None:
        threaded.close()
        closed.set()

    cached.on_change(close)
    cached.get()
    assert threaded._refresher is not None
    thread = threaded._refresher._thread
    assert thread is not None
    _put(store)
    clock.now += MAX_AGE * 0.95
    threaded._refresher.wake()
    assert closed.wait(5)
    thread.join(5)
    assert not thread.is_alive()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_has_no_thread_and_starts_its_own(
    threaded: KeyReader, store: GatedStore, clock: Clock
) -> None:
    _put(store)
    cached = threaded.key(api_id=API, alias="billing")
    read = threading.Event()
    cached.on_change(lambda old, new: read.set())
    cached.get()
    assert threaded._refresher is not None
    parent_thread = threaded._refresher._thread
    assert parent_thread is not None
    second = _put(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
        pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 1
        try:
            if not _refresh_threads() and threaded._refresher._thread is None:
                status = 2
                clock.now += MAX_AGE * 0.95
                # Past its due time: served at once, and the child's thread reads it.
                if cached.get().key_id != second.key_id and read.wait(5):
                    status = 3
                    if cached.get().key_id == second.key_id and len(_refresh_threads()) == 1:
                        status = 0
        finally:
            os._exit(status)
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 0
    assert parent_thread.is_alive()
