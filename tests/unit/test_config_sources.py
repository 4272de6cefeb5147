"""pydantic-settings sources (unkey_secrets.config) against the in-memory store."""

from __future__ import annotations

import pickle
from typing import Annotated, Any

import pytest
from pydantic import ConfigDict, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from unkey_secrets import ConfigurationError, IssuedKey, Secret
from unkey_secrets.config import (
    KeyInfo,
    KeyNotFoundError,
    KeyReader,
    UnkeyKey,
    UnkeyKeySource,
    UnkeySecretStr,
    UnkeyVaultSource,
    field_ref,
    key_info,
)
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key

API = "api_config"
BILLING = UnkeyKey(api_id=API, alias="billing")


def _stored(store: InMemoryStore, alias: str) -> IssuedKey:
    key = canary_key(api_id=API, alias=alias)
    store.put(key)
    store.set_current(key, alias=alias)
    return key


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def reader(store: InMemoryStore) -> KeyReader:
    return KeyReader(store, max_age=60)


def _settings_class(reader: KeyReader) -> type[BaseSettings]:
    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, BILLING]
        typed_key: Annotated[UnkeySecretStr, BILLING]
        billing_info: Annotated[KeyInfo, BILLING]
        other: str = "plain setting"

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, UnkeyKeySource(settings_cls, reader))

    return Settings


def test_fields_are_filled_as_secret_str_with_their_metadata(
    store: InMemoryStore, reader: KeyReader
) -> None:
    key = _stored(store, "billing")
    settings: Any = _settings_class(reader)()
    plaintext = key.secret.reveal()
    assert isinstance(settings.billing_key, UnkeySecretStr)
    assert settings.billing_key.get_secret_value() == plaintext
    assert settings.typed_key.info.key_id == key.key_id
    info = key_info(settings.billing_key)
    assert info is not None
    assert (info.key_id, info.api_id, info.alias) == (key.key_id, API, "billing")
    assert (info.store, info.version) == ("memory", "1")
    assert settings.billing_info.key_id == key.key_id
    assert plaintext not in repr(settings)
    assert plaintext not in str(settings.model_dump())
    assert plaintext not in settings.model_dump_json()
    # Three fields, one alias: one read.
    assert reader.key(api_id=API, alias="billing").reads == 1


def test_a_value_given_by_an_earlier_source_is_not_read(
    store: InMemoryStore, reader: KeyReader
) -> None:
    info = KeyInfo(
        key_id="key_given",
        api_id=API,
        store="test",
        location="-",
        version=None,
        alias=None,
        expires=None,
        issued_at=None,
        rerolled_from=None,
        name=None,
        external_id=None,
        prefix=None,
        fetched_at=0.0,
    )
    given = UnkeySecretStr("from-init", info)
    settings: Any = _settings_class(reader)(
        billing_key="from-init", typed_key=given, billing_info=info
    )
    assert settings.billing_key.get_secret_value() == "from-init"
    assert settings.typed_key is given
    assert reader.key(api_id=API, alias="billing").reads == 0


def test_a_plain_str_field_is_refused(reader: KeyReader) -> None:
    class Settings(BaseSettings):
        billing_key: Annotated[str, BILLING]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (UnkeyKeySource(settings_cls, reader),)

    with pytest.raises(ConfigurationError, match=r"Settings.billing_key .* typed str"):
        Settings()


def test_a_secret_field_gets_our_holder(store: InMemoryStore, reader: KeyReader) -> None:
    key = _stored(store, "billing")

    class Settings(BaseSettings):
        model_config = ConfigDict(arbitrary_types_allowed=True)  # type: ignore[assignment]
        billing_key: Annotated[Secret, BILLING]
        maybe: Annotated[SecretStr | None, UnkeyKey(api_id=API, alias="billing")] = None

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (UnkeyKeySource(settings_cls, reader),)

    settings = Settings()
    assert settings.billing_key == key.secret
    assert isinstance(settings.maybe, UnkeySecretStr)
    with pytest.raises(TypeError):
        pickle.dumps(settings.billing_key)


def test_fields_for_another_store_are_left_alone(store: InMemoryStore, reader: KeyReader) -> None:
    _stored(store, "billing")

    class Settings(BaseSettings):
        mine: Annotated[SecretStr, BILLING]
        theirs: Annotated[SecretStr | None, UnkeyKey(api_id=API, alias="x", store="aws")] = None

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (UnkeyKeySource(settings_cls, reader),)

    settings = Settings()
    assert settings.theirs is None
    assert key_info(settings.mine) is not None


def test_a_missing_alias_fails_the_load_with_a_useful_error(reader: KeyReader) -> None:
    with pytest.raises(KeyNotFoundError) as raised:
        _settings_class(reader)()
    assert raised.value.field == "billing_key"
    assert "settings field 'billing_key'" in str(raised.value)


def test_field_ref_and_for_field(store: InMemoryStore, reader: KeyReader) -> None:
    key = _stored(store, "billing")
    settings_cls = _settings_class(reader)
    assert field_ref(settings_cls, "billing_key") == BILLING
    assert reader.for_field(settings_cls, "billing_key").get().key_id == key.key_id
    with pytest.raises(ConfigurationError, match="no UnkeyKey"):
        field_ref(settings_cls, "other")


def test_a_store_source_refuses_a_reader_of_another_store(reader: KeyReader) -> None:
    settings_cls = _settings_class(reader)
    with pytest.raises(ConfigurationError, match="reader of the vault store"):
        UnkeyVaultSource(settings_cls, reader)


def test_importing_config_loads_no_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, unkey_secrets.config; "
        "print(sorted(m for m in ('hvac', 'boto3', 'botocore') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]"


CANARY = "canary_" + "ab12" * 8


def _typed_class(reader: KeyReader) -> type[BaseSettings]:
    class Settings(BaseSettings):
        typed_key: Annotated[UnkeySecretStr, BILLING]

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings, env_settings, UnkeyKeySource(settings_cls, reader))

    return Settings


def _check_unread(value: object) -> None:
    assert isinstance(value, UnkeySecretStr)
    assert value.get_secret_value() == CANARY
    assert value.info is None
    assert key_info(value) is None
    assert CANARY not in repr(value)
    assert CANARY not in str(value)
    assert repr(value) == "UnkeySecretStr('**********')"


def test_an_unkey_secret_str_field_accepts_a_value_from_init(reader: KeyReader) -> None:
    settings: Any = _typed_class(reader)(typed_key=CANARY)
    _check_unread(settings.typed_key)
    assert reader.key(api_id=API, alias="billing").reads == 0


def test_an_unkey_secret_str_field_accepts_a_value_from_the_environment(
    reader: KeyReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TYPED_KEY", CANARY)
    settings: Any = _typed_class(reader)()
    _check_unread(settings.typed_key)


def test_an_unkey_secret_str_field_survives_a_json_round_trip(
    store: InMemoryStore, reader: KeyReader
) -> None:
    key = _stored(store, "billing")
    settings_cls = _typed_class(reader)
    settings: Any = settings_cls()
    assert settings.typed_key.info.key_id == key.key_id
    dumped = settings.model_dump_json()
    assert key.secret.reveal() not in dumped
    again: Any = settings_cls.model_validate_json(dumped)  # pydantic dumps the mask
    assert isinstance(again.typed_key, UnkeySecretStr)
    assert again.typed_key.info is None
    loaded: Any = settings_cls.model_validate_json(f'{{"typed_key": "{CANARY}"}}')
    _check_unread(loaded.typed_key)
