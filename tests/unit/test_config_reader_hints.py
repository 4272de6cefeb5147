"""What a reader's error tells the user to do, for the store it read: no server needed.

A missing key names where the store looked (Vault's mount, Secrets Manager's regions and the
role assumed) and a provision command that writes there; a settings class with two
unkey-secrets sources says which marker needs ``store=``; through a Vault Agent, a refusal
names the agent's auto-auth and an unreachable agent its address, not a sealed Vault.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import hvac
import pytest
import requests
from botocore.stub import Stubber
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from unkey_secrets import IssuedKey
from unkey_secrets.config import (
    KeyAccessDeniedError,
    KeyNotFoundError,
    KeyReader,
    KeyStoreUnavailableError,
    UnkeyKey,
    UnkeySecretsManagerSource,
    UnkeyVaultSource,
)
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.failover import RegionFailoverStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key

from ._aws_client import make_client
from .test_vault_offline import attach

API = "api_hints"
ROLE = "arn:aws:iam::111122223333:role/unkey-reader"
AGENT = "https://127.0.0.1:8100"
VAULT = "https://vault.internal:8200"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_", "BAO_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


# -- a missing key: where the store looked, and the command that writes there ---------------


def _missing(request: requests.PreparedRequest) -> tuple[int, Any]:
    return 404, {"errors": []}


def test_vault_names_its_mount_and_template_and_a_command_for_that_mount() -> None:
    store = VaultStore(
        hvac.Client(url=VAULT, token="hvs.unit-token"),
        mount="team-kv",
        alias_template="apps/{api_id}/{alias}",
    )
    attach(store, _missing)
    with pytest.raises(KeyNotFoundError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    text = str(raised.value)
    assert "team-kv/apps/api_hints/billing" in text
    assert "UNKEY_SECRETS_VAULT_MOUNT" in text
    assert "apps/{api_id}/{alias}" in text
    # The command writes where this reader reads: the same mount and alias template.
    assert (
        "UNKEY_SECRETS_VAULT_ALIAS_TEMPLATE='apps/{api_id}/{alias}' unkey-secrets --store vault "
        f"--mount team-kv provision --api-id {API} --alias billing" in text
    )
    assert "region" not in text


def _stub_missing(store: SecretsManagerStore, times: int = 1) -> Stubber:
    stubber = Stubber(store.client)
    for _ in range(times):
        stubber.add_client_error(
            "get_secret_value", "ResourceNotFoundException", "no such secret", 400
        )
    stubber.activate()
    return stubber


def test_secrets_manager_names_its_region_not_a_mount() -> None:
    store = SecretsManagerStore(make_client())
    _stub_missing(store)
    with pytest.raises(KeyNotFoundError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    text = str(raised.value)
    assert "mount" not in text
    assert "us-east-1" in text
    assert "AWS_REGION" in text
    assert "UNKEY_SECRETS_AWS_ALIAS_TEMPLATE" in text
    assert (
        f"unkey-secrets --store aws --region us-east-1 provision --api-id {API} --alias billing"
        in text
    )


@pytest.fixture
def chain_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")


def test_secrets_manager_through_a_role_names_the_role_and_its_region(
    chain_credentials: None,
) -> None:
    store = SecretsManagerStore(
        region="eu-west-1", endpoint_url="http://127.0.0.1:9", role_arn=ROLE
    )
    _stub_missing(store)
    with pytest.raises(KeyNotFoundError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    text = str(raised.value)
    assert ROLE in text
    assert "eu-west-1" in text
    assert "--store aws --region eu-west-1 provision" in text


def test_several_regions_are_all_named_and_the_command_writes_in_the_first(
    chain_credentials: None,
) -> None:
    store = RegionFailoverStore.for_regions(
        ["eu-west-1", "eu-central-1"], endpoint_url="http://127.0.0.1:9", role_arn=ROLE
    )
    for region_store in store.stores:
        _stub_missing(region_store)
    with pytest.raises(KeyNotFoundError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    text = str(raised.value)
    assert "eu-west-1, eu-central-1" in text
    assert "UNKEY_SECRETS_AWS_READ_REGIONS" in text
    assert ROLE in text
    assert "--store aws --region eu-west-1 provision" in text
    assert "mount" not in text


def test_a_key_id_read_names_the_key_template() -> None:
    store = SecretsManagerStore(make_client())
    _stub_missing(store)
    with pytest.raises(KeyNotFoundError) as raised:
        KeyReader(store).get(api_id=API, key_id="key_nothing1")
    text = str(raised.value)
    assert "mount" not in text
    assert "us-east-1" in text
    assert "UNKEY_SECRETS_AWS_KEY_TEMPLATE" in text


# -- a settings class with both sources: the marker without store= --------------------------


class _VaultLike(InMemoryStore):
    name = "vault"


class _AwsLike(InMemoryStore):
    name = "aws"


def _stored(store: InMemoryStore, alias: str) -> IssuedKey:
    key = canary_key(api_id=API, alias=alias)
    store.put(key)
    store.set_current(key, alias=alias)
    return key


def _two_sources(vault: KeyReader, aws: KeyReader, marker: UnkeyKey) -> type[BaseSettings]:
    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, UnkeyKey(api_id=API, alias="billing", store="vault")]
        reports_key: Annotated[SecretStr, marker]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                sources["init_settings"],
                UnkeyVaultSource(settings_cls, vault),
                UnkeySecretsManagerSource(settings_cls, aws),
            )

    return Settings


def test_a_marker_without_store_in_a_two_source_class_is_told_to_name_its_store() -> None:
    vault, aws = _VaultLike(), _AwsLike()
    _stored(vault, "billing")
    _stored(aws, "reports")
    settings_cls = _two_sources(
        KeyReader(vault), KeyReader(aws), UnkeyKey(api_id=API, alias="reports")
    )
    with pytest.raises(KeyNotFoundError) as raised:
        settings_cls()
    text = str(raised.value)
    assert raised.value.field == "reports_key"
    assert 'store="aws"' in text
    assert 'store="vault"' in text
    # Not told to write the key into the store that read it, as if that were the only one.
    assert "give" in text.split("--store vault")[0]

    # Named, the key is read from its store.
    settings_cls = _two_sources(
        KeyReader(vault), KeyReader(aws), UnkeyKey(api_id=API, alias="reports", store="aws")
    )
    assert settings_cls().reports_key.get_secret_value()  # type: ignore[attr-defined]


def test_a_marker_naming_its_store_or_a_one_source_class_gets_no_store_hint() -> None:
    vault, aws = _VaultLike(), _AwsLike()
    _stored(vault, "billing")
    named = _two_sources(
        KeyReader(vault), KeyReader(aws), UnkeyKey(api_id=API, alias="reports", store="vault")
    )
    with pytest.raises(KeyNotFoundError) as raised:
        named()
    assert "store=" not in str(raised.value)

    reader = KeyReader(vault)

    class Alone(BaseSettings):
        reports_key: Annotated[SecretStr, UnkeyKey(api_id=API, alias="reports")]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (UnkeyVaultSource(settings_cls, reader),)

    with pytest.raises(KeyNotFoundError) as raised:
        Alone()
    assert "store=" not in str(raised.value)
    assert "--store vault" in str(raised.value)


# -- through a Vault Agent: its auto-auth, and its address ------------------------------------


def _agent_store(monkeypatch: pytest.MonkeyPatch, **env: str) -> VaultStore:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return VaultStore.from_settings()


def test_a_refusal_through_the_agent_names_its_auto_auth_not_an_expired_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _agent_store(monkeypatch, VAULT_AGENT_ADDR=AGENT)
    attach(store, lambda request: (403, {"errors": ["permission denied"]}))
    with pytest.raises(KeyAccessDeniedError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    text = str(raised.value)
    assert "expired" not in text
    assert "auto-auth" in text
    assert "policies/vault-reader.hcl" in text
    assert f"secret/data/unkey/{API}/by-name/billing" in text


def test_a_refusal_with_a_token_still_mentions_its_expiry() -> None:
    store = VaultStore(hvac.Client(url=VAULT, token="hvs.unit-token"))
    attach(store, lambda request: (403, {"errors": ["permission denied"]}))
    with pytest.raises(KeyAccessDeniedError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    assert "expired" in str(raised.value)
    assert "auto-auth" not in str(raised.value)


def _refused(request: requests.PreparedRequest) -> BaseException:
    return requests.exceptions.ConnectionError("[Errno 111] Connection refused")


@pytest.mark.parametrize(
    ("env", "setting", "other"),
    [
        ({"VAULT_AGENT_ADDR": AGENT, "VAULT_ADDR": VAULT}, "VAULT_AGENT_ADDR", "VAULT_ADDR"),
        ({"VAULT_ADDR": VAULT, "VAULT_TOKEN": "hvs.unit-token"}, "VAULT_ADDR", "VAULT_AGENT_ADDR"),
    ],
)
def test_a_refused_connection_names_the_address_setting_not_a_sealed_vault(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], setting: str, other: str
) -> None:
    store = _agent_store(monkeypatch, **env)
    attach(store, _refused)
    with pytest.raises(KeyStoreUnavailableError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    text = str(raised.value)
    assert "sealed" not in text
    assert "503" not in text
    assert setting in text
    assert other not in text


def test_a_sealed_vault_is_named_as_such_not_as_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = _agent_store(monkeypatch, VAULT_AGENT_ADDR=AGENT)
    attach(store, lambda request: (503, {"errors": ["Vault is sealed"]}))
    with pytest.raises(KeyStoreUnavailableError) as raised:
        KeyReader(store).get(api_id=API, alias="billing")
    text = str(raised.value)
    assert "sealed" in text
    assert "unreachable" not in text
    assert "refused" not in text
