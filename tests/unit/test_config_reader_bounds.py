"""The cached reader's bounds: no caller waits past ``read_timeout`` for a read in flight.

A store double blocks its alias reads on an Event. With ``keeps_deadline``, it gives up at the
transport deadline in force (as the Vault, Secrets Manager and Unkey clients do); without, it
stands for a read stuck past any deadline, which only its waiters' own bound can cut short.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from unkey_secrets import InvalidInputError, IssuedKey, StoredKey, StoreUnavailableError
from unkey_secrets.config import (
    DEFAULT_READ_TIMEOUT,
    CachedKey,
    KeyReader,
    KeyStoreUnavailableError,
)
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.transport.policy import current_deadline

API = "api_bounds"
#: The read bound of these tests, in seconds: long enough for four threads to start, short
#: enough that a run of the file stays quick.
BOUND = 0.5
#: How long past the bound a caller may take to be scheduled back, in seconds. A caller that
#: waits for the read itself (the old unbounded wait) never returns while the store blocks.
SLACK = 2.0
#: How long the test waits for the callers before declaring them stuck, in seconds.
STUCK = BOUND + 10.0


class Clock:
    """The reader's monotonic clock (max_age and max_stale), moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BlockingStore(InMemoryStore):
    """Alias reads wait for ``release``; with ``keeps_deadline``, at most to the deadline."""

    def __init__(self, *, keeps_deadline: bool) -> None:
        super().__init__()
        self.keeps_deadline = keeps_deadline
        self.blocking = False
        self.release = threading.Event()
        self.arrived = threading.Event()
        self.entered = 0
        #: The seconds of the deadline in force at each blocked read (None: no deadline).
        self.deadlines: list[float | None] = []
        self._count = threading.Lock()

    def _get_current(self, path: str) -> StoredKey:
        if self.blocking:
            bound = current_deadline()
            with self._count:
                self.entered += 1
                self.deadlines.append(None if bound is None else bound.seconds)
            self.arrived.set()
            if not self.keeps_deadline or bound is None:
                self.release.wait()
            elif not self.release.wait(max(bound.remaining(), 0.0)):
                # What the clients raise for a request past its deadline: a lost answer.
                raise StoreUnavailableError("no answer within the deadline", store=self.name)
        return super()._get_current(path)


@dataclass
class Outcome:
    thread: threading.Thread | None = None
    value: StoredKey | BaseException | None = None
    seconds: float = math.inf


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _cached(store: BlockingStore, clock: Clock) -> tuple[CachedKey, IssuedKey]:
    """A key read once and cached, then older than max_age (60 s); max_stale is 100 s."""
    key = canary_key(api_id=API, alias="billing")
    store.put(key)
    store.set_current(key, alias="billing")
    reader = KeyReader(store, max_age=60, max_stale=100, read_timeout=BOUND, clock=clock)
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    clock.now += 61
    store.blocking = True
    return cached, key


@pytest.fixture
def callers() -> Iterator[Callable[[Callable[[], StoredKey]], Outcome]]:
    """Start callers in threads; each returns its Outcome (filled in when the call ends)."""
    threads: list[threading.Thread] = []

    def start(call: Callable[[], StoredKey]) -> Outcome:
        outcome = Outcome()

        def run() -> None:
            began = time.monotonic()
            try:
                outcome.value = call()
            except BaseException as exc:  # noqa: BLE001 (handed to the test)
                outcome.value = exc
            outcome.seconds = time.monotonic() - began

        outcome.thread = threading.Thread(target=run, daemon=True)
        threads.append(outcome.thread)
        outcome.thread.start()
        return outcome

    yield start
    for thread in threads:
        thread.join(STUCK)


def _finished(*outcomes: Outcome) -> None:
    """Fail unless every caller returned within the bound (each is given STUCK seconds)."""
    stop = time.monotonic() + STUCK
    for outcome in outcomes:
        assert outcome.thread is not None
        outcome.thread.join(max(stop - time.monotonic(), 0.0))
    assert [o.value is not None for o in outcomes] == [True] * len(outcomes), "callers stuck"
    assert max(o.seconds for o in outcomes) < BOUND + SLACK


def test_four_threads_get_the_cached_key_within_the_bound(
    clock: Clock, callers: Callable[[Callable[[], StoredKey]], Outcome]
) -> None:
    store = BlockingStore(keeps_deadline=True)
    cached, key = _cached(store, clock)
    try:
        outcomes = [callers(cached.get) for _ in range(4)]
        _finished(*outcomes)
    finally:
        store.release.set()
    assert [getattr(o.value, "key_id", o.value) for o in outcomes] == [key.key_id] * 4
    # One read, made under the reader's deadline, which the store kept.
    assert store.deadlines == [BOUND]
    assert cached.reads == 2


def test_past_max_stale_four_threads_get_the_error_within_the_bound(
    clock: Clock, callers: Callable[[Callable[[], StoredKey]], Outcome]
) -> None:
    store = BlockingStore(keeps_deadline=True)
    cached, key = _cached(store, clock)
    clock.now += 100  # 161 s old: past max_age (60 s) + max_stale (100 s)
    try:
        outcomes = [callers(cached.get) for _ in range(4)]
        _finished(*outcomes)
    finally:
        store.release.set()
    for outcome in outcomes:
        assert isinstance(outcome.value, KeyStoreUnavailableError)
        assert outcome.value.alias == "billing"
        assert key.secret.reveal() not in str(outcome.value)
    assert set(store.deadlines) == {BOUND}


def test_waiters_behind_a_stuck_read_get_the_cached_key_at_the_bound(
    clock: Clock, callers: Callable[[Callable[[], StoredKey]], Outcome]
) -> None:
    store = BlockingStore(keeps_deadline=False)
    cached, key = _cached(store, clock)
    try:
        leader = callers(cached.get)
        assert store.arrived.wait(STUCK)
        waiters = [callers(cached.get) for _ in range(3)]
        _finished(*waiters)
        assert [getattr(o.value, "key_id", None) for o in waiters] == [key.key_id] * 3
        assert leader.value is None  # still in the store
        # Past the back-off, a new caller joins the overdue read and is answered at once:
        # no second read, no thread piling up behind the first.
        clock.now += 2
        began = time.monotonic()
        assert cached.get().key_id == key.key_id
        assert time.monotonic() - began < BOUND
        assert store.entered == 1
    finally:
        store.release.set()
    _finished(leader)
    assert getattr(leader.value, "key_id", None) == key.key_id


def test_refresh_behind_a_stuck_read_raises_at_the_bound(
    clock: Clock, callers: Callable[[Callable[[], StoredKey]], Outcome]
) -> None:
    store = BlockingStore(keeps_deadline=False)
    cached, key = _cached(store, clock)
    try:
        leader = callers(cached.get)
        assert store.arrived.wait(STUCK)
        refreshers = [callers(cached.refresh) for _ in range(3)]
        _finished(*refreshers)
        for outcome in refreshers:
            error = outcome.value
            assert isinstance(error, KeyStoreUnavailableError)
            assert isinstance(error, StoreUnavailableError)
            assert f"within read_timeout ({BOUND:g} s)" in str(error)
            assert "api_bounds" in str(error)
            assert "billing" in str(error)
            assert key.secret.reveal() not in str(error)
        # Joining the overdue read: the error at once, and no second read.
        began = time.monotonic()
        with pytest.raises(KeyStoreUnavailableError):
            cached.refresh()
        assert time.monotonic() - began < BOUND
        assert store.entered == 1
    finally:
        store.release.set()
    _finished(leader)


def test_refresh_leading_a_read_raises_at_the_deadline(
    clock: Clock, callers: Callable[[Callable[[], StoredKey]], Outcome]
) -> None:
    store = BlockingStore(keeps_deadline=True)
    cached, _ = _cached(store, clock)
    clock.now -= 61  # fresh: refresh() reads anyway, and never serves the cached key
    try:
        outcome = callers(cached.refresh)
        _finished(outcome)
    finally:
        store.release.set()
    assert isinstance(outcome.value, KeyStoreUnavailableError)
    assert store.deadlines == [BOUND]


# -- where the bound comes from --------------------------------------------------------------


def test_read_timeout_defaults_to_thirty_seconds() -> None:
    reader = KeyReader(InMemoryStore())
    assert reader.read_timeout == DEFAULT_READ_TIMEOUT == 30.0
    assert reader.key(api_id=API, alias="billing").read_timeout == 30.0
    assert "read_timeout=30" in repr(reader)


def test_read_timeout_of_a_secrets_manager_reader_is_its_botocore_read_timeout() -> None:
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(read_timeout=7),
    )
    assert KeyReader.secrets_manager(client=client).read_timeout == 7.0
    assert KeyReader.secrets_manager(client=client, read_timeout=3).read_timeout == 3.0


def test_read_timeout_of_a_vault_reader_is_its_settings_timeout() -> None:
    from pydantic import SecretStr

    from unkey_secrets.stores.vault.settings import VaultSettings

    token = SecretStr("s.dummy-token-value")
    settings = VaultSettings(addr="http://127.0.0.1:9", token=token, timeout=4)
    assert KeyReader.vault(settings).read_timeout == 4.0
    assert KeyReader.vault(settings, read_timeout=2.5).read_timeout == 2.5


@pytest.mark.parametrize(
    "bad",
    [0, 0.0, -0.0, -1, float("nan"), float("inf"), True, "5"],
    ids=["zero", "zero-float", "minus-zero", "negative", "nan", "inf", "bool", "text"],
)
def test_read_timeout_is_a_positive_finite_number_of_seconds(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="read_timeout"):
        KeyReader(InMemoryStore(), read_timeout=bad)  # type: ignore[arg-type]
