"""The store sources name key fields as pydantic-settings does, against OpenBao and moto.

One settings class uses the conventions together (``AliasChoices``, ``env_prefix``, a nested
model filled through ``env_nested_delimiter``) and loads from the real store a ``provision``
wrote; the same class with every name given in the environment reads nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from unkey_secrets import SecretStore, UnkeyClient, provision
from unkey_secrets.config import (
    KeyReader,
    UnkeyKey,
    UnkeySecretsManagerSource,
    UnkeySecretStr,
    UnkeyVaultSource,
)
from unkey_secrets.settings import VaultSettings
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(scope="module")
def reader_token(openbao_server: OpenBaoServer) -> str:
    openbao_server.write_policy("unkey-reader", (POLICIES / "vault-reader.hcl").read_text())
    return openbao_server.create_token("unkey-reader", ttl="30m")


def _reader(
    store: SecretStore, openbao_server: OpenBaoServer, moto_server: MotoServer, token: str
) -> KeyReader:
    """A reader of ``store``'s kind as an app builds it (max_age 0: every settings build reads)."""
    if store.name == "vault":
        return KeyReader.vault(
            VaultSettings(addr=openbao_server.url, token=SecretStr(token)), max_age=0
        )
    return KeyReader.secrets_manager(client=moto_server.client("secretsmanager"), max_age=0)


def _settings_class(api_id: str, reader: KeyReader) -> type[BaseSettings]:
    ref = UnkeyKey(api_id=api_id, alias="billing")

    class Keys(BaseModel):
        billing: Annotated[UnkeySecretStr, ref] = Field(
            validation_alias=AliasChoices("BILLING", "billing")
        )
        region: str = "eu"

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="APP_", env_nested_delimiter="__")
        billing_key: Annotated[SecretStr, ref] = Field(
            validation_alias=AliasChoices("BILLING_KEY", "billing")
        )
        keys: Keys

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            source = UnkeyVaultSource if reader.store.name == "vault" else UnkeySecretsManagerSource
            return (init_settings, env_settings, source(settings_cls, reader))

    return Settings


def _load(settings_cls: type[BaseSettings]) -> Any:
    return settings_cls()


def test_key_fields_named_by_alias_choices_and_nesting_load_from_the_store(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    store: SecretStore,
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    reader_token: str,
) -> None:
    issued = provision(unkey_client, store, unkey_api_id, alias="billing")
    reader = _reader(store, openbao_server, moto_server, reader_token)
    cached = reader.key(api_id=unkey_api_id, alias="billing")
    settings_cls = _settings_class(unkey_api_id, reader)
    for name in ("BILLING_KEY", "billing", "APP_KEYS__BILLING", "APP_KEYS__billing"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("APP_KEYS__REGION", "us")

    settings = _load(settings_cls)
    assert cached.reads == 1  # both fields name one key: one read of the store fills both
    for field in (settings.billing_key, settings.keys.billing):
        assert isinstance(field, UnkeySecretStr)
        assert field.info is not None
        assert (field.info.key_id, field.info.store) == (issued.key_id, store.name)
        assert unkey_client.verify_key(field.get_secret_value()).valid
        assert field.get_secret_value() not in repr(settings)
    assert settings.keys.region == "us"

    # Every field given in the environment, under a name other than its first: no read.
    monkeypatch.setenv("billing", "from-env")
    monkeypatch.setenv("APP_KEYS__billing", "nested-from-env")
    given = _load(settings_cls)
    assert given.billing_key.get_secret_value() == "from-env"
    assert given.keys.billing.get_secret_value() == "nested-from-env"
    assert given.keys.billing.info is None
    assert given.keys.region == "us"
    assert cached.reads == 1
