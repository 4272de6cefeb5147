"""The cached reader (unkey_secrets.config.KeyReader/CachedKey) against the in-memory store."""

from __future__ import annotations

import copy
import logging
import pickle
import threading
import time
import warnings

import pytest

from unkey_secrets import (
    IssuedKey,
    Secret,
    SecretNotFoundError,
    StoreAccessError,
    StoredValueError,
    StoreUnavailableError,
    UnkeyClient,
)
from unkey_secrets.config import (
    CachedKey,
    KeyAccessDeniedError,
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
