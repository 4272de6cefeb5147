"""The cached reader (unkey_secrets.config.KeyReader/CachedKey) against the in-memory store."""

from __future__ import annotations

import copy
import logging
import pickle
import threading
import time
import warnings
from collections.abc import Callable

import pytest

from unkey_secrets import (
    IssuedKey,
    Secret,
    SecretNotFoundError,
    StoreAccessError,
    StoredKey,
    StoredValueError,
    StoreUnavailableError,
    UnkeyClient,
)
from unkey_secrets.config import (
    DEFAULT_MAX_STALE,
    CachedKey,
    KeyAccessDeniedError,
    KeyExpiredError,
    KeyInfo,
    KeyNotFoundError,
    KeyReader,
    KeyRevokedError,
    KeyShapeError,
    KeyStoreUnavailableError,
    MaxAgeWarning,
    UnkeyKey,
    UnkeySecretStr,
    key_info,
)
from unkey_secrets.config.errors import translate_read_error
from unkey_secrets.rotation.record import RotationRecord
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

API = "api_config"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stored(store: InMemoryStore, alias: str = "billing", **kw: str | None) -> IssuedKey:
    key = canary_key(api_id=API, alias=alias, **kw)  # type: ignore[arg-type]
    store.put(key)
    store.set_current(key, alias=alias)
    return key


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reader(store: InMemoryStore, clock: Clock) -> KeyReader:
    return KeyReader(store, max_age=60, clock=clock)


def test_reads_once_within_max_age_then_again(
    store: InMemoryStore, reader: KeyReader, clock: Clock
) -> None:
    first = _stored(store)
    cached = reader.key(api_id=API, alias="billing")
    assert cached.get().key_id == first.key_id
    assert cached.get().secret == first.secret
    assert cached.reads == 1
    clock.now += 59.9
    cached.get()
    assert cached.reads == 1
    clock.now += 0.2
    cached.get()
    assert cached.reads == 2
    assert reader.key(api_id=API, alias="billing") is cached


def test_picks_up_a_moved_alias_after_max_age_and_calls_back(
    store: InMemoryStore, reader: KeyReader, clock: Clock
) -> None:
    first = _stored(store)
    cached = reader.key(api_id=API, alias="billing")
    seen: list[tuple[str, str]] = []
    unsubscribe = cached.on_change(lambda old, new: seen.append((old.key_id, new.key_id)))
    assert cached.info().key_id == first.key_id
    second = canary_key(api_id=API, alias="billing", rerolled_from=first.key_id)
    store.put(second)
    store.set_current(second, alias="billing")
    assert cached.get().key_id == first.key_id  # still fresh
    clock.now += 61
    assert cached.get().key_id == second.key_id
    assert seen == [(first.key_id, second.key_id)]
    third = canary_key(api_id=API, alias="billing")
    store.put(third)
    store.set_current(third, alias="billing")
    unsubscribe()
    assert cached.refresh().key_id == third.key_id  # refresh ignores max_age
    assert seen == [(first.key_id, second.key_id)]


def test_a_failing_callback_is_logged_not_raised(
    store: InMemoryStore, reader: KeyReader, caplog: pytest.LogCaptureFixture
) -> None:
    _stored(store)
    cached = reader.key(api_id=API, alias="billing")
    cached.get()

    def boom(old: KeyInfo, new: KeyInfo) -> None:
        raise RuntimeError("callback bug")

    cached.on_change(boom)
    _stored(store)
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        cached.refresh()
    assert "on_change callback failed (RuntimeError)" in caplog.text


class SlowStore(InMemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = 0

    def _get_current(self, path: str):  # type: ignore[no-untyped-def]
        self.entered += 1
        self.gate.wait(5)
        return super()._get_current(path)


def test_one_read_in_flight_however_many_threads_ask() -> None:
    store = SlowStore()
    key = _stored(store)
    cached = KeyReader(store, max_age=60).key(api_id=API, alias="billing")
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(cached.get().key_id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(32)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # every thread is now waiting on the one read
    store.gate.set()
    for thread in threads:
        thread.join(5)
    assert not errors
    assert results == [key.key_id] * 32
    assert store.entered == 1
    assert cached.reads == 1


def test_single_flight_hands_the_error_to_every_waiter() -> None:
    store = SlowStore()
    cached = KeyReader(store, max_age=60).key(api_id=API, alias="missing")
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            cached.get()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    store.gate.set()
    for thread in threads:
        thread.join(5)
    assert len(errors) == 8
    assert all(isinstance(e, KeyNotFoundError) for e in errors)
    assert store.entered == 1


def test_serves_the_cached_key_while_the_store_is_down(
    store: InMemoryStore, reader: KeyReader, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    key = _stored(store)
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    clock.now += 61
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"), times=2)
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        assert cached.get().key_id == key.key_id
    assert "serving the cached key" in caplog.text
    assert key.secret.reveal() not in caplog.text
    # Backed off: the next call within a second does not hit the store.
    reads = cached.reads
    cached.get()
    assert cached.reads == reads
    # refresh() never serves stale: it raises.
    with pytest.raises(KeyStoreUnavailableError) as raised:
        cached.refresh()
    assert isinstance(raised.value, StoreUnavailableError)
    clock.now += 2
    assert cached.get().key_id == key.key_id


def test_no_stale_key_on_a_first_read(store: InMemoryStore, reader: KeyReader) -> None:
    _stored(store)
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"))
    with pytest.raises(KeyStoreUnavailableError):
        reader.get(api_id=API, alias="billing")


def test_missing_alias_names_the_command_that_creates_it(reader: KeyReader) -> None:
    with pytest.raises(KeyNotFoundError) as raised:
        reader.get(api_id=API, alias="nope")
    error = raised.value
    assert isinstance(error, SecretNotFoundError)
    assert "provision --api-id api_config --alias nope" in str(error)
    assert (error.api_id, error.alias, error.key_id) == (API, "nope", None)
    assert pickle.loads(pickle.dumps(error)).alias == "nope"  # noqa: S301 (our own bytes)


def test_wrong_shape_is_a_shape_error(store: InMemoryStore, reader: KeyReader) -> None:
    store.plant_foreign(store.alias_location(api_id=API, alias="billing"), '{"format": "x"}')
    with pytest.raises(KeyShapeError) as raised:
        reader.get(api_id=API, alias="billing")
    assert isinstance(raised.value, StoredValueError)
    assert "unkey-secrets/key/v1" in str(raised.value)


def test_key_id_read_must_hold_that_key(store: InMemoryStore, reader: KeyReader) -> None:
    key = _stored(store)
    assert reader.get(api_id=API, key_id=key.key_id).key_id == key.key_id
    with pytest.raises(KeyNotFoundError):
        reader.get(api_id=API, key_id="key_unknown1")


def test_permission_denied_names_the_reader_policy() -> None:
    ref = UnkeyKey(api_id=API, alias="billing")
    vault = translate_read_error(
        StoreAccessError(
            "Vault refused read on secret/unkey/x: 403",
            store="vault",
            location="secret/unkey/api_config/by-name/billing",
        ),
        ref,
        field="billing_key",
    )
    assert isinstance(vault, KeyAccessDeniedError)
    assert isinstance(vault, StoreAccessError)
    assert "policies/vault-reader.hcl" in str(vault)
    assert "secret/data/unkey/api_config/by-name/billing" in str(vault)
    assert "'billing_key'" in str(vault)
    aws = translate_read_error(
        StoreAccessError("refused", store="aws", location="unkey/api_config/by-name/billing"),
        ref,
    )
    assert "policies/aws-reader.json" in str(aws)
    assert "GetSecretValue" in str(aws)


def test_sealed_vault_says_so() -> None:
    error = translate_read_error(
        StoreUnavailableError("Vault could not serve read: 503 VaultDown", store="vault"),
        UnkeyKey(api_id=API, alias="billing"),
    )
    assert isinstance(error, KeyStoreUnavailableError)
    assert "sealed" in str(error)


def test_relogin_once_after_a_refusal(store: InMemoryStore) -> None:
    key = _stored(store)
    logins: list[int] = []
    reader = KeyReader(store, relogin=lambda: logins.append(1))
    store.fail_next("get_current", StoreAccessError("token expired", store="memory"))
    assert reader.get(api_id=API, alias="billing").key_id == key.key_id
    assert logins == [1]
    store.fail_next("get_current", StoreAccessError("no", store="memory"), times=2)
    with pytest.raises(KeyAccessDeniedError):
        reader.key(api_id=API, alias="billing").refresh()
    assert logins == [1, 1]


def _rotation(original: str, new: str, grace_ms: int) -> RotationRecord:
    return RotationRecord(
        rotation="rot_test",
        api_id=API,
        from_key_id=original,
        key_id=new,
        state="done",
        grace_period_ms=grace_ms,
    )


def test_warns_when_max_age_outlives_the_grace_period(store: InMemoryStore) -> None:
    key = _stored(store, rerolled_from="key_original1")
    store.write_rotation(_rotation("key_original1", key.key_id, 10_000))
    with pytest.warns(MaxAgeWarning, match="longer than the 10 s grace period"):
        KeyReader(store, max_age=60).get(api_id=API, alias="billing")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KeyReader(store, max_age=5).get(api_id=API, alias="billing")


def test_an_unreadable_rotation_record_is_skipped_silently(store: InMemoryStore) -> None:
    key = _stored(store, rerolled_from="key_original1")
    store.write_rotation(_rotation("key_original1", key.key_id, 10_000))
    store.fail_next("read_rotation", StoreAccessError("no read", store="memory"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        KeyReader(store, max_age=60).get(api_id=API, alias="billing")


def test_verify_raises_for_a_key_unkey_revoked(store: InMemoryStore) -> None:
    emulator = Emulator()
    api_id = emulator.create_api("config")
    with UnkeyClient(
        emulator.root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(emulator)
    ) as unkey:
        key = unkey.create_key(api_id)
        store.put(key)
        store.set_current(key, alias="billing")
        reader = KeyReader(store, unkey=unkey, verify=True)
        cached = reader.key(api_id=api_id, alias="billing")
        assert cached.get().key_id == key.key_id
        unkey.delete_key(key.key_id)
        with pytest.raises(KeyRevokedError) as raised:
            cached.refresh()
        assert raised.value.code == "NOT_FOUND"
        assert raised.value.key_id == key.key_id
        assert key.secret.reveal() not in str(raised.value)
        assert key.secret.reveal() not in repr(raised.value.__dict__)


def test_verify_needs_a_client(store: InMemoryStore) -> None:
    from unkey_secrets import ConfigurationError

    with pytest.raises(ConfigurationError, match="unkey="):
        KeyReader(store, verify=True)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "5"])
def test_max_age_is_checked(store: InMemoryStore, bad: object) -> None:
    from unkey_secrets import InvalidInputError

    with pytest.raises(InvalidInputError):
        KeyReader(store, max_age=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"alias": "a", "key_id": "key_abc"}, {"alias": "../x"}, {"key_id": "k"}],
)
def test_marker_is_validated(kwargs: dict[str, str]) -> None:
    from unkey_secrets import InvalidInputError

    with pytest.raises(InvalidInputError):
        UnkeyKey(api_id=API, **kwargs)  # type: ignore[arg-type]


def test_nothing_shows_the_plaintext(store: InMemoryStore, reader: KeyReader) -> None:
    key = _stored(store)
    plaintext = key.secret.reveal()
    cached: CachedKey = reader.key(api_id=API, alias="billing")
    value = cached.secret_str()
    assert isinstance(value, UnkeySecretStr)
    assert value.get_secret_value() == plaintext
    assert key_info(value) == value.info
    assert value.info.key_id == key.key_id
    assert cached.secret() == Secret(plaintext)
    for shown in (repr(cached), repr(reader), repr(value), str(value), repr(value.info)):
        assert plaintext not in shown
    assert key.key_id in repr(value)
    assert copy.deepcopy(value) is value
    with pytest.raises(TypeError):
        pickle.dumps(value)
    with pytest.raises(TypeError):
        value.__getstate__()
    assert hash(value) == hash(cached.secret_str())
    assert key_info("plain") is None


def test_expiry_is_in_unix_ms(store: InMemoryStore, reader: KeyReader) -> None:
    key = canary_key(api_id=API, alias="billing")
    key = IssuedKey(
        key_id=key.key_id, secret=key.secret, api_id=API, alias="billing", expires=4_102_444_800_000
    )
    store.put(key)
    store.set_current(key, alias="billing")
    info = reader.key(api_id=API, alias="billing").info()
    assert info.expires == 4_102_444_800_000
    assert info.expires_at is not None
    assert info.expires_at.year == 2100
    assert not info.expired(time.time())


# -- review fixes: single-flight per caller, expired keys, max_stale, hostile records -------------


class WallClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def _join_a_gated_read(
    store: SlowStore, first: Callable[[], object], second: Callable[[], object]
) -> list[object]:
    """Run ``first`` (it leads the read the gate holds), then ``second`` (it joins), then open."""
    outcomes: list[object] = [None, None]

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            outcomes[index] = call()
        except BaseException as exc:  # noqa: BLE001
            outcomes[index] = exc

    leader = threading.Thread(target=run, args=(0, first))
    leader.start()
    deadline = time.monotonic() + 5
    while store.entered < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    joiner = threading.Thread(target=run, args=(1, second))
    joiner.start()
    time.sleep(0.2)  # the second caller is now waiting on the first one's read
    store.gate.set()
    leader.join(5)
    joiner.join(5)
    return outcomes


def _cached_then_stale(max_age: float = 60) -> tuple[SlowStore, Clock, CachedKey, IssuedKey]:
    store = SlowStore()
    store.gate.set()
    key = _stored(store)
    clock = Clock()
    cached = KeyReader(store, max_age=max_age, clock=clock).key(api_id=API, alias="billing")
    cached.get()
    clock.now += max_age + 1
    store.gate.clear()
    store.entered = 0
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"))
    return store, clock, cached, key


def test_a_get_joining_a_failing_refresh_still_serves_the_cached_key() -> None:
    store, _, cached, key = _cached_then_stale()
    refreshed, got = _join_a_gated_read(store, cached.refresh, cached.get)
    assert isinstance(refreshed, KeyStoreUnavailableError)
    assert isinstance(got, StoredKey)
    assert got.key_id == key.key_id
    assert cached.reads == 2  # the first read, then one read shared by both callers


def test_a_refresh_joining_a_get_that_fell_back_raises() -> None:
    store, _, cached, key = _cached_then_stale()
    got, refreshed = _join_a_gated_read(store, cached.get, cached.refresh)
    assert isinstance(got, StoredKey)
    assert got.key_id == key.key_id
    assert isinstance(refreshed, KeyStoreUnavailableError)
    assert cached.reads == 2


def test_many_gets_joining_a_failed_read_back_off_and_warn_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, _, cached, key = _cached_then_stale()
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        outcomes = _join_a_gated_read(store, cached.get, cached.get)
    assert [o.key_id for o in outcomes if isinstance(o, StoredKey)] == [key.key_id] * 2
    assert caplog.text.count("serving the cached key") == 1
    assert cached._backoff == 1.0


def _expiring(store: InMemoryStore, expires_ms: int) -> IssuedKey:
    key = canary_key(api_id=API, alias="billing")
    key = IssuedKey(
        key_id=key.key_id, secret=key.secret, api_id=API, alias="billing", expires=expires_ms
    )
    store.put(key)
    store.set_current(key, alias="billing")
    return key


def test_a_stored_key_that_has_expired_is_never_served(store: InMemoryStore) -> None:
    wall = WallClock()
    key = _expiring(store, int(wall.now * 1000) - 1)
    cached = KeyReader(store, max_age=60, wall_clock=wall).key(api_id=API, alias="billing")
    with pytest.raises(KeyExpiredError) as raised:
        cached.get(field="billing_key")
    error = raised.value
    assert isinstance(error, KeyRevokedError)
    assert isinstance(error, StoredValueError)
    assert (error.code, error.key_id, error.alias) == ("EXPIRED", key.key_id, "billing")
    assert "expired" in str(error)
    assert "'billing_key'" in str(error)
    assert key.secret.reveal() not in str(error)
    assert key.secret.reveal() not in repr(error.__dict__)


def test_a_cached_key_is_not_served_past_its_own_expiry(store: InMemoryStore) -> None:
    wall = WallClock()
    clock = Clock()
    key = _expiring(store, int(wall.now * 1000) + 10_000)
    cached = KeyReader(store, max_age=300, clock=clock, wall_clock=wall).key(
        api_id=API, alias="billing"
    )
    assert cached.get().key_id == key.key_id
    wall.now += 9
    clock.now += 9
    assert cached.get().key_id == key.key_id
    assert cached.reads == 1
    wall.now += 1  # its expiry, well within max_age
    with pytest.raises(KeyExpiredError):
        cached.get()
    assert cached.reads == 2  # read again, and the store still holds the expired key
    # Once the alias moves on, the next get() picks the new key up within max_age.
    renewed = _stored(store)
    assert cached.get().key_id == renewed.key_id


def test_an_expired_cached_key_is_not_served_while_the_store_is_down(
    store: InMemoryStore,
) -> None:
    wall = WallClock()
    clock = Clock()
    _expiring(store, int(wall.now * 1000) + 100_000)
    cached = KeyReader(store, max_age=60, clock=clock, wall_clock=wall).key(
        api_id=API, alias="billing"
    )
    cached.get()
    clock.now += 61
    wall.now += 100
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"))
    with pytest.raises(KeyStoreUnavailableError):
        cached.get()


def test_the_cached_key_is_served_at_most_max_stale_past_max_age(
    store: InMemoryStore, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    key = _stored(store)
    cached = KeyReader(store, max_age=60, max_stale=100, clock=clock).key(
        api_id=API, alias="billing"
    )
    cached.get()
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"), times=1000)
    served = 0
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        for _ in range(1000):
            clock.now += 10
            try:
                assert cached.get().key_id == key.key_id
            except KeyStoreUnavailableError:
                break
            served += 1
    # Read at 1000; stale from 1060; served until 1160 (exclusive), refused from then on.
    assert clock.now == 1160
    assert served == 15
    assert "more than max_stale" in caplog.text
    assert key.secret.reveal() not in caplog.text
    with pytest.raises(KeyStoreUnavailableError):
        cached.get()
    store._failures.clear()
    assert cached.get().key_id == key.key_id  # the store is back: fresh again


def test_max_stale_zero_never_serves_a_stale_key(store: InMemoryStore, clock: Clock) -> None:
    _stored(store)
    cached = KeyReader(store, max_age=60, max_stale=0, clock=clock).key(api_id=API, alias="billing")
    cached.get()
    clock.now += 61
    store.fail_next("get_current", StoreUnavailableError("down", store="memory"))
    with pytest.raises(KeyStoreUnavailableError):
        cached.get()


def test_max_stale_defaults_to_ten_minutes(store: InMemoryStore) -> None:
    reader = KeyReader(store)
    assert reader.max_stale == DEFAULT_MAX_STALE == 600.0
    assert reader.key(api_id=API, alias="billing").max_stale == 600.0
    assert "max_stale=600" in repr(reader)


@pytest.mark.parametrize("error", [RecursionError("too deep"), ValueError("bad record")])
def test_a_hostile_rotation_record_does_not_break_get(
    store: InMemoryStore, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    key = _stored(store, rerolled_from="key_original1")
    store.fail_next("read_rotation", error)
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        assert KeyReader(store, max_age=60).get(api_id=API, alias="billing").key_id == key.key_id
    assert type(error).__name__ in caplog.text
    assert str(error) not in caplog.text


@pytest.mark.parametrize("name", ["max_age", "max_stale"])
@pytest.mark.parametrize(
    "bad",
    [-0.0, -1e-300, 10**400, float("-inf"), None],
    ids=["minus-zero", "tiny-negative", "huge-int", "minus-inf", "none"],
)
def test_seconds_are_finite_and_not_negative(store: InMemoryStore, name: str, bad: object) -> None:
    from unkey_secrets import InvalidInputError

    with pytest.raises(InvalidInputError, match=name):
        KeyReader(store, **{name: bad})  # type: ignore[arg-type]


def test_zero_max_age_reads_every_time(store: InMemoryStore) -> None:
    _stored(store)
    reader = KeyReader(store, max_age=0, max_stale=0)
    assert (reader.max_age, reader.max_stale) == (0.0, 0.0)
    assert str(reader.max_age) == "0.0"
    cached = reader.key(api_id=API, alias="billing")
    cached.get()
    cached.get()
    assert cached.reads == 2
