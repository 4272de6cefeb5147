"""Batch warm-up and refresh-ahead against real servers: OpenBao and moto over loopback."""

from __future__ import annotations

import contextvars
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from unkey_secrets import SecretStore, StoredKey, UnkeyClient, provision, rotate
from unkey_secrets.config import (
    KeyInfo,
    KeyNotFoundError,
    KeyReader,
    UnkeyKey,
    UnkeyKeySource,
    UnkeySecretStr,
)
from unkey_secrets.config.reader import _THREAD
from unkey_secrets.settings import VaultSettings
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ALIASES = ("billing", "reports", "search")


@pytest.fixture(scope="module")
def reader_token(openbao_server: OpenBaoServer) -> str:
    """A token with the shipped reader policy alone."""
    openbao_server.write_policy("unkey-reader", (POLICIES / "vault-reader.hcl").read_text())
    return openbao_server.create_token("unkey-reader", ttl="30m")


#: Set while a get_many call runs (its worker threads run in a copy of the caller's context).
_IN_BATCH: contextvars.ContextVar[bool] = contextvars.ContextVar("in_batch", default=False)


class Calls:
    """What a reader asked its store: get_many calls (their sizes), other reads by thread."""

    def __init__(self, store: SecretStore) -> None:
        self.batches: list[int] = []
        self.reads: list[str] = []
        get_many, get_current = store.get_many, store.get_current

        def counted_many(refs: Any, **options: Any) -> Any:
            self.batches.append(len(refs))
            token = _IN_BATCH.set(True)
            try:
                return get_many(refs, **options)
            finally:
                _IN_BATCH.reset(token)

        def counted_read(**options: Any) -> StoredKey:
            if not _IN_BATCH.get():  # a read of its own, not one of a batch's (Vault's)
                self.reads.append(threading.current_thread().name)
            return get_current(**options)

        store.get_many = counted_many  # type: ignore[method-assign]
        store.get_current = counted_read  # type: ignore[method-assign]


@pytest.fixture(params=["vault", "aws"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def writer(kind: str, request: pytest.FixtureRequest) -> SecretStore:
    store: SecretStore = request.getfixturevalue(f"{kind}_store")
    return store


@pytest.fixture
def make_reader(
    kind: str,
    request: pytest.FixtureRequest,
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
) -> Iterator[Callable[..., KeyReader]]:
    """A reader of the store ``kind``, as an app builds it (the Vault one with reader rights)."""
    readers: list[KeyReader] = []

    def make(**options: Any) -> KeyReader:
        if kind == "vault":
            token = request.getfixturevalue("reader_token")
            settings = VaultSettings(addr=openbao_server.url, token=token)
            reader = KeyReader.vault(settings, **options)
        else:
            reader = KeyReader.secrets_manager(
                client=moto_server.client("secretsmanager"), **options
            )
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


def test_warm_reads_three_aliases_in_one_call(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    writer: SecretStore,
    make_reader: Callable[..., KeyReader],
) -> None:
    keys = {alias: provision(unkey_client, writer, unkey_api_id, alias=alias) for alias in ALIASES}
    reader = make_reader(max_age=300)
    calls = Calls(reader.store)
    refs = [UnkeyKey(api_id=unkey_api_id, alias=alias) for alias in ALIASES]
    missing = UnkeyKey(api_id=unkey_api_id, alias="missing")
    warmed = reader.warm([*refs, missing])
    assert calls.batches == [4]
    assert calls.reads == []
    for ref in refs:
        info = warmed[ref]
        assert isinstance(info, KeyInfo), info
        assert ref.alias is not None
        assert info.key_id == keys[ref.alias].key_id
        assert info.store == reader.store.name
    error = warmed[missing]
    assert isinstance(error, KeyNotFoundError)
    assert error.alias == "missing"
    # Cached: the keys are served with no further read, and they verify in Unkey.
    for ref in refs:
        cached = reader.cached(ref)
        assert cached.reads == 1
        assert unkey_client.verify_key(cached.secret()).valid
    assert calls.batches == [4]
    assert calls.reads == []


def test_a_settings_class_of_three_keys_loads_in_one_batch(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    writer: SecretStore,
    make_reader: Callable[..., KeyReader],
) -> None:
    keys = {alias: provision(unkey_client, writer, unkey_api_id, alias=alias) for alias in ALIASES}
    reader = make_reader()
    calls = Calls(reader.store)
    api_id = unkey_api_id

    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, UnkeyKey(api_id=api_id, alias="billing")]
        reports_key: Annotated[UnkeySecretStr, UnkeyKey(api_id=api_id, alias="reports")]
        search_info: Annotated[KeyInfo, UnkeyKey(api_id=api_id, alias="search")]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (sources["init_settings"], UnkeyKeySource(settings_cls, reader))

    settings: Any = Settings()
    assert calls.batches == [3]
    assert calls.reads == []
    assert settings.billing_key.info.key_id == keys["billing"].key_id
    assert unkey_client.verify_key(settings.billing_key.get_secret_value()).valid
    assert settings.reports_key.info.key_id == keys["reports"].key_id
    assert settings.search_info.key_id == keys["search"].key_id


def test_refresh_ahead_follows_a_rotation_in_the_background(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    writer: SecretStore,
    make_reader: Callable[..., KeyReader],
) -> None:
    first = provision(unkey_client, writer, unkey_api_id, alias="svc")
    # A background read every ~0.3 s (half of max_age), on the real clock.
    reader = make_reader(max_age=0.6, refresh_ahead=True, refresh_window=(0.5, 0.5))
    calls = Calls(reader.store)
    cached = reader.key(api_id=unkey_api_id, alias="svc")
    changed = threading.Event()
    seen: list[tuple[str, str, str]] = []

    def on_change(old: KeyInfo, new: KeyInfo) -> None:
        seen.append((old.key_id, new.key_id, threading.current_thread().name))
        changed.set()

    cached.on_change(on_change)
    assert cached.get().key_id == first.key_id
    rotated = rotate(
        unkey_client, writer, unkey_api_id, alias="svc", grace_period=dt.timedelta(minutes=5)
    )
    assert changed.wait(10)
    assert seen == [(first.key_id, rotated.key_id, _THREAD)]
    assert cached.get().key_id == rotated.key_id
    # Only the first read was the caller's: every later one ran on the refresh thread.
    assert calls.reads[0] == threading.current_thread().name
    assert set(calls.reads[1:]) == {_THREAD}
    refresher = reader._refresher
    assert refresher is not None
    thread = refresher._thread
    reader.close()
    assert thread is not None
    assert not thread.is_alive()
