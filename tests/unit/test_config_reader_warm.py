"""KeyReader.warm(): many keys in one SecretStore.get_many call, and the settings sources."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Sequence
from typing import Annotated, Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from unkey_secrets import (
    InvalidInputError,
    IssuedKey,
    KeyRef,
    StoreAccessError,
    StoredKey,
    StoreError,
    StoreUnavailableError,
    UnkeyClient,
)
from unkey_secrets.config import (
    KeyAccessDeniedError,
    KeyExpiredError,
    KeyExpiringWarning,
    KeyInfo,
    KeyNotFoundError,
    KeyReader,
    KeyRevokedError,
    KeyShapeError,
    UnkeyKey,
    UnkeyKeySource,
    UnkeySecretStr,
)
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

API = "api_warm"
WALL = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingStore(InMemoryStore):
    """Counts get_many calls (and the refs of each); reads them one after the other."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[KeyRef]] = []
        #: Aliases whose reads are refused (StoreAccessError), however often they are tried.
        self.refused: set[str] = set()

    def _get_current(self, path: str) -> StoredKey:
        if path.rsplit("/", 1)[-1] in self.refused:
            self.calls.append("get_current")
            raise StoreAccessError("permission denied", store=self.name, location=path)
        return super()._get_current(path)

    def _get_many(self, refs: list[KeyRef], concurrency: int) -> list[StoredKey | StoreError]:
        self.batches.append(list(refs))
        return super()._get_many(refs, 1)

    def plain_reads(self) -> int:
        return (
            self.calls.count("get_current")
            + self.calls.count("get")
            - sum(len(batch) for batch in self.batches)
        )


def _put(store: InMemoryStore, alias: str, api_id: str = API, **fields: Any) -> IssuedKey:
    key = canary_key(api_id=api_id, alias=alias)
    if fields:
        key = IssuedKey(key_id=key.key_id, secret=key.secret, api_id=api_id, alias=alias, **fields)
    store.put(key)
    store.set_current(key, alias=alias)
    return key


def _refs(*aliases: str) -> list[UnkeyKey]:
    return [UnkeyKey(api_id=API, alias=alias) for alias in aliases]


@pytest.fixture
def store() -> CountingStore:
    return CountingStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def reader(store: CountingStore, clock: Clock) -> KeyReader:
    return KeyReader(store, max_age=60, clock=clock, wall_clock=lambda: WALL)


def test_one_get_many_call_for_every_key(store: CountingStore, reader: KeyReader) -> None:
    keys = {alias: _put(store, alias) for alias in ("billing", "reports", "search")}
    refs = _refs(*keys)
    warmed = reader.warm(refs)
    assert len(store.batches) == 1
    assert sorted(r.alias or "" for r in store.batches[0]) == sorted(keys)
    assert set(warmed) == set(refs)
    for ref in refs:
        info = warmed[ref]
        assert isinstance(info, KeyInfo)
        assert ref.alias is not None
        assert info.key_id == keys[ref.alias].key_id
        assert info.alias == ref.alias
    # Cached: get() and a second warm() read nothing.
    for ref in refs:
        assert reader.cached(ref).get().key_id == keys[ref.alias or ""].key_id
    assert reader.warm(refs)[refs[0]] == warmed[refs[0]]
    assert len(store.batches) == 1
    assert store.plain_reads() == 0


def test_only_keys_not_fresh_are_read(
    store: CountingStore, reader: KeyReader, clock: Clock
) -> None:
    _put(store, "billing")
    _put(store, "reports")
    _put(store, "search")
    reader.get(api_id=API, alias="billing")
    clock.now += 30
    reader.get(api_id=API, alias="reports")
    clock.now += 31  # billing is past max_age, reports is not
    reader.warm(_refs("billing", "reports", "search"))
    assert [sorted(r.alias or "" for r in batch) for batch in store.batches] == [
        ["billing", "search"]
    ]


def test_a_single_key_is_one_plain_read(store: CountingStore, reader: KeyReader) -> None:
    key = _put(store, "billing")
    warmed = reader.warm(_refs("billing", "billing"))
    assert [info.key_id for info in warmed.values() if isinstance(info, KeyInfo)] == [key.key_id]
    assert store.batches == []
    assert store.calls.count("get_current") == 1


def test_each_key_has_its_own_error(store: CountingStore, reader: KeyReader) -> None:
    good = _put(store, "billing")
    store.plant_foreign(store.alias_location(api_id=API, alias="shaped"), '{"format": "x"}')
    refs = _refs("billing", "missing", "shaped")
    warmed = reader.warm(refs)
    assert len(store.batches) == 1
    info = warmed[refs[0]]
    assert isinstance(info, KeyInfo)
    assert info.key_id == good.key_id
    missing = warmed[refs[1]]
    assert isinstance(missing, KeyNotFoundError)
    assert missing.alias == "missing"
    assert "provision" in str(missing)
    assert missing.__traceback__ is None
    assert isinstance(warmed[refs[2]], KeyShapeError)
    # A failing key is not cached: the next get() reads it (and raises).
    failing = reader.cached(refs[1])
    assert failing._stored is None
    with pytest.raises(KeyNotFoundError):
        failing.get()
    assert failing.reads == 2


def test_a_failure_of_the_whole_call_is_every_keys_error(
    store: CountingStore, reader: KeyReader
) -> None:
    _put(store, "billing")
    _put(store, "reports")

    def down(refs: list[KeyRef], concurrency: int) -> list[StoredKey | StoreError]:
        raise StoreUnavailableError("down", store="memory")

    store._get_many = down  # type: ignore[method-assign]
    warmed = reader.warm(_refs("billing", "reports"))
    assert all(type(e).__name__ == "KeyStoreUnavailableError" for e in warmed.values())


def test_an_expired_key_is_an_error_and_not_cached(store: CountingStore, reader: KeyReader) -> None:
    _put(store, "billing")
    _put(store, "old", expires=int(WALL * 1000) - 1)
    refs = _refs("billing", "old")
    warmed = reader.warm(refs)
    expired = warmed[refs[1]]
    assert isinstance(expired, KeyExpiredError)
    assert expired.code == "EXPIRED"
    assert reader.cached(refs[1])._stored is None
    assert isinstance(warmed[refs[0]], KeyInfo)


def test_warnings_callbacks_and_metrics_as_a_read(
    store: CountingStore, reader: KeyReader, clock: Clock
) -> None:
    first = _put(store, "billing")
    _put(store, "ending", expires=int(WALL * 1000) + 3600_000)
    refs = _refs("billing", "ending")
    changes: list[tuple[str, str]] = []
    reader.cached(refs[0]).on_change(lambda old, new: changes.append((old.key_id, new.key_id)))
    with pytest.warns(KeyExpiringWarning, match="expires at"):
        reader.warm(refs)
    second = _put(store, "billing")
    clock.now += 61
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per key_id
        reader.warm(refs)
    assert changes == [(first.key_id, second.key_id)]
    assert reader.cached(refs[0]).reads == 2


def test_a_refusal_logs_in_again_once(store: CountingStore, clock: Clock) -> None:
    keys = [_put(store, alias) for alias in ("billing", "reports", "search")]
    logins: list[int] = []
    reader = KeyReader(store, clock=clock, relogin=lambda: logins.append(1))
    store.fail_next("get_current", StoreAccessError("token expired", store="memory"), times=2)
    warmed = reader.warm(_refs("billing", "reports", "search"))
    assert logins == [1]
    assert [len(batch) for batch in store.batches] == [3, 2]
    assert [i.key_id for i in warmed.values() if isinstance(i, KeyInfo)] == [k.key_id for k in keys]
    # Refused again after the login: that key's error, the other key's info.
    clock.now += 400
    store.refused.add("billing")
    warmed = reader.warm(_refs("billing", "reports"))
    assert logins == [1, 1]
    assert [len(batch) for batch in store.batches] == [3, 2, 2, 1]
    assert isinstance(warmed[_refs("billing")[0]], KeyAccessDeniedError)
    assert isinstance(warmed[_refs("reports")[0]], KeyInfo)


def test_verify_applies_to_each_key(store: CountingStore) -> None:
    emulator = Emulator()
    api_id = emulator.create_api("warm")
    with UnkeyClient(
        emulator.root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(emulator)
    ) as unkey:
        live, dead = unkey.create_key(api_id), unkey.create_key(api_id)
        for key, alias in ((live, "live"), (dead, "dead")):
            store.put(key)
            store.set_current(key, alias=alias)
        unkey.delete_key(dead.key_id)
        reader = KeyReader(store, unkey=unkey, verify=True)
        refs = [UnkeyKey(api_id=api_id, alias=alias) for alias in ("live", "dead")]
        warmed = reader.warm(refs)
    assert isinstance(warmed[refs[0]], KeyInfo)
    revoked = warmed[refs[1]]
    assert isinstance(revoked, KeyRevokedError)
    assert revoked.code == "NOT_FOUND"
    assert dead.secret.reveal() not in repr(revoked.__dict__)


def test_cached_keys_and_markers_of_any_store(store: CountingStore, reader: KeyReader) -> None:
    key = _put(store, "billing")
    _put(store, "reports")
    marker = UnkeyKey(api_id=API, alias="billing", store="vault")
    cached = reader.key(api_id=API, alias="reports")
    warmed = reader.warm([marker, cached, UnkeyKey(api_id=API, alias="billing")])
    assert len(store.batches) == 1
    assert len(store.batches[0]) == 2  # one read per key
    info = warmed[marker]
    assert isinstance(info, KeyInfo)
    assert info.key_id == key.key_id
    assert isinstance(warmed[cached.ref], KeyInfo)


@pytest.mark.parametrize("bad", ["billing", None, KeyRef(api_id=API, alias="billing")])
def test_items_are_checked_before_any_read(
    store: CountingStore, reader: KeyReader, bad: object
) -> None:
    with pytest.raises(InvalidInputError, match="refs"):
        reader.warm([*_refs("billing"), bad])  # type: ignore[list-item]
    assert store.calls == []


def test_a_cached_key_of_another_reader_is_refused(store: CountingStore, reader: KeyReader) -> None:
    other = KeyReader(store).key(api_id=API, alias="billing")
    with pytest.raises(InvalidInputError, match="this reader"):
        reader.warm([other])


class GatedStore(CountingStore):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def _get_current(self, path: str) -> StoredKey:
        if "billing" in path:
            self.entered.set()
            assert self.gate.wait(10)
        return super()._get_current(path)


def test_a_key_being_read_is_joined_not_read_twice() -> None:
    store = GatedStore()
    key = _put(store, "billing")
    _put(store, "reports")
    reader = KeyReader(store)
    cached = reader.key(api_id=API, alias="billing")
    first = threading.Thread(target=cached.get)
    first.start()
    assert store.entered.wait(5)
    warmer: dict[UnkeyKey, KeyInfo | Exception] = {}
    thread = threading.Thread(
        target=lambda: warmer.update(reader.warm(_refs("billing", "reports")))
    )
    thread.start()
    store.gate.set()
    first.join(5)
    thread.join(5)
    info = warmer[_refs("billing")[0]]
    assert isinstance(info, KeyInfo)
    assert info.key_id == key.key_id
    assert cached.reads == 1


def test_with_refresh_ahead_warmed_keys_are_refreshed(store: CountingStore, clock: Clock) -> None:
    _put(store, "billing")
    _put(store, "reports")
    reader = KeyReader(store, max_age=100, clock=clock, refresh_ahead=True, refresh_thread=False)
    reader.warm(_refs("billing", "reports"))
    clock.now += 90
    assert reader.run_refreshes() == 2
    assert len(store.batches) == 2  # the due keys too, in one call


# -- the settings sources ---------------------------------------------------------------------


def _settings_class(reader: KeyReader) -> type[BaseSettings]:
    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, UnkeyKey(api_id=API, alias="billing")]
        reports_key: Annotated[UnkeySecretStr, UnkeyKey(api_id=API, alias="reports")]
        search_info: Annotated[KeyInfo, UnkeyKey(api_id=API, alias="search")]
        billing_again: Annotated[SecretStr, UnkeyKey(api_id=API, alias="billing")]

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, UnkeyKeySource(settings_cls, reader))

    return Settings


def test_a_settings_class_is_loaded_in_one_batch(store: CountingStore, reader: KeyReader) -> None:
    keys = {alias: _put(store, alias) for alias in ("billing", "reports", "search")}
    settings: Any = _settings_class(reader)()
    assert len(store.batches) == 1
    assert len(store.batches[0]) == 3
    assert store.plain_reads() == 0
    assert settings.billing_key.get_secret_value() == keys["billing"].secret.reveal()
    assert settings.billing_again.get_secret_value() == keys["billing"].secret.reveal()
    assert settings.reports_key.info.key_id == keys["reports"].key_id
    assert settings.search_info.key_id == keys["search"].key_id


def test_a_fields_error_still_names_its_field(store: CountingStore, reader: KeyReader) -> None:
    _put(store, "billing")
    _put(store, "search")
    with pytest.raises(KeyNotFoundError) as raised:
        _settings_class(reader)()
    assert raised.value.field == "reports_key"
    assert "settings field 'reports_key'" in str(raised.value)
    assert len(store.batches) == 1


def test_a_settings_class_built_again_serves_cached_keys_while_the_store_is_down(
    store: CountingStore, reader: KeyReader, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    keys = {alias: _put(store, alias) for alias in ("billing", "reports", "search")}
    settings_class = _settings_class(reader)
    settings_class()
    clock.now += 61

    def down(refs: Sequence[KeyRef], concurrency: int) -> list[StoredKey | StoreError]:
        return [StoreUnavailableError("down", store="memory") for _ in refs]

    store._get_many = down  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.config"):
        settings: Any = settings_class()
    assert settings.reports_key.info.key_id == keys["reports"].key_id
    assert caplog.text.count("serving the cached key") == 3
