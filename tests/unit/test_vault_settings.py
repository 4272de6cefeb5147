"""VaultSettings: standard Vault variables, our own prefixed ones, and what is never honoured."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from unkey_secrets import ConfigurationError
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.stores.vault import auth as _vault_auth
from unkey_secrets.stores.vault.settings import VaultSettings, check_mount, check_vault_addr


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_VAULT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


def test_standard_and_prefixed_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "https://vault.internal:8200")
    monkeypatch.setenv("VAULT_TOKEN", "hvs.token-value")
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")
    monkeypatch.setenv("VAULT_CACERT", "/etc/ssl/vault-ca.pem")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_MOUNT", "kv/unkey")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_KV_VERSION", "1")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_KEY_TEMPLATE", "keys/{key_id}")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", "approle")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE_ID", "role-id")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_SECRET_ID", "secret-id-value")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_MOUNT", "approle-prod")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AWS_SERVER_ID", "vault.internal")
    settings = VaultSettings()
    assert settings.addr == "https://vault.internal:8200"
    assert settings.token is not None
    assert settings.token.get_secret_value() == "hvs.token-value"
    assert settings.namespace == "team-a"
    assert settings.cacert == "/etc/ssl/vault-ca.pem"
    assert settings.mount == "kv/unkey"
    assert settings.kv_version == 1
    assert settings.key_template == "keys/{key_id}"
    assert settings.auth_method == "approle"
    assert settings.role_id is not None
    assert settings.role_id.get_secret_value() == "role-id"
    assert settings.secret_id is not None
    assert settings.secret_id.get_secret_value() == "secret-id-value"
    assert settings.auth_mount == "approle-prod"
    assert settings.aws_server_id == "vault.internal"


def test_bare_field_names_are_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADDR", "https://elsewhere.example")
    monkeypatch.setenv("TOKEN", "bare")
    monkeypatch.setenv("NAMESPACE", "bare")
    settings = VaultSettings()
    assert settings.addr is None
    assert settings.token is None
    assert settings.namespace is None


def test_the_standard_name_wins_over_the_prefixed_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_ADDR", "https://prefixed.example")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_TOKEN", "prefixed")
    assert VaultSettings().addr == "https://prefixed.example"
    monkeypatch.setenv("VAULT_ADDR", "https://standard.example")
    monkeypatch.setenv("VAULT_TOKEN", "standard")
    settings = VaultSettings()
    assert settings.addr == "https://standard.example"
    assert settings.token is not None
    assert settings.token.get_secret_value() == "standard"


def test_repr_hides_every_credential() -> None:
    settings = VaultSettings(
        addr="https://vault.internal",
        token="hvs.token-value",
        secret_id="secret-id-value",
        jwt="eyJ.jwt-value",
    )
    for rendering in (repr(settings), str(settings), settings.model_dump_json()):
        for secret in ("hvs.token-value", "secret-id-value", "eyJ.jwt-value"):
            assert secret not in rendering


@pytest.mark.parametrize(
    "url",
    [
        "https://vault.internal:8200",
        "http://127.0.0.1:8200",
        "http://localhost:8200",
        "http://[::1]:8200",
    ],
)
def test_https_or_loopback_http_is_accepted(url: str) -> None:
    assert check_vault_addr(url) == url
    assert VaultSettings(addr=url).addr == url


@pytest.mark.parametrize(
    "url",
    ["http://vault.internal:8200", "http://10.0.0.5:8200", "ftp://vault", "https://", "vault"],
)
def test_plain_http_elsewhere_is_refused(url: str) -> None:
    with pytest.raises(ValidationError):
        VaultSettings(addr=url)


@pytest.mark.parametrize("mount", ["", "../sys", "a//b", "secret/", "/secret", "a/../b", "kv v2"])
def test_unsafe_mounts_are_refused(mount: str) -> None:
    with pytest.raises(ValueError, match="mount"):
        check_mount(mount)
    with pytest.raises(ValidationError):
        VaultSettings(mount=mount)


def test_kv_version_is_1_or_2() -> None:
    with pytest.raises(ValidationError):
        VaultSettings(kv_version=3)


def test_vault_skip_verify_is_not_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_SKIP_VERIFY", "true")
    # Without a CA bundle variable, the default trust store verifies (True).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = _vault_auth.build_client(VaultSettings(addr="https://vault.internal", token="t"))
    assert client.adapter.session.verify is True
    assert client.adapter._kwargs["verify"] is True


def test_vault_cacert_is_the_trust_anchor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_CAPATH", "/etc/ssl/certs")
    monkeypatch.setenv("VAULT_CACERT", "/etc/ssl/vault-ca.pem")
    client = _vault_auth.build_client(VaultSettings(token="t", addr="https://vault.internal"))
    assert client.adapter.session.verify == "/etc/ssl/vault-ca.pem"


def test_redirects_are_not_followed() -> None:
    client = _vault_auth.build_client(VaultSettings(addr="https://vault.internal", token="t"))
    assert client.adapter.allow_redirects is False


def test_the_token_falls_back_to_the_cli_token_file(tmp_path: Path) -> None:
    assert _vault_auth.read_token(VaultSettings()) is None
    (tmp_path / ".vault-token").write_text("hvs.from-file\n")
    assert _vault_auth.read_token(VaultSettings()) == "hvs.from-file"
    assert _vault_auth.read_token(VaultSettings(token="hvs.explicit")) == "hvs.explicit"


def test_hvac_never_reads_the_token_itself_for_other_methods(tmp_path: Path) -> None:
    (tmp_path / ".vault-token").write_text("hvs.from-file\n")
    settings = VaultSettings(addr="https://vault.internal", auth_method="approle")
    assert _vault_auth.build_client(settings).adapter.token == ""


def test_a_missing_address_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="VAULT_ADDR"):
        VaultStore.from_settings(VaultSettings(token="t"))


def test_bad_environment_settings_never_quote_the_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://user:hunter2@10.0.0.1:8200")
    with pytest.raises(ConfigurationError) as raised:
        VaultStore.from_settings()
    assert "hunter2" not in str(raised.value)
    assert "VAULT_ADDR" in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_settings_and_explicit_options_are_not_mixed() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        VaultStore(settings=VaultSettings(addr="https://vault.internal", token="t"), mount="kv")


def test_settings_choose_mount_version_and_templates() -> None:
    store = VaultStore(
        settings=VaultSettings(
            addr="https://vault.internal",
            token="hvs.token-value",
            mount="kv",
            kv_version=1,
            key_template="k/{key_id}",
            alias_template="a/{alias}",
        )
    )
    assert (store.mount, store.kv_version) == ("kv", 1)
    assert store.key_location(api_id="api_123", key_id="key_123") == "k/key_123"
    assert store.alias_location(api_id="api_123", alias="svc") == "a/svc"
    assert "hvs.token-value" not in repr(store)


@pytest.mark.parametrize(
    "url",
    [
        "https://vaultuser:s3cretpass@vault.example",
        "https://s3cretpass@vault.example:8200",
        "http://vaultuser:s3cretpass@127.0.0.1:8200",
        "https://vaultuser:@vault.example",
    ],
)
@pytest.mark.parametrize("variable", ["VAULT_ADDR", "VAULT_AGENT_ADDR"])
def test_an_address_carrying_credentials_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, url: str, variable: str
) -> None:
    # As UnkeyClient refuses a base_url with credentials: they would ride in every request's
    # URL and in whatever logs or shows the address.
    with pytest.raises(ValueError, match=f"{variable} may not carry credentials") as direct:
        check_vault_addr(url, variable)
    field = "addr" if variable == "VAULT_ADDR" else "agent_addr"
    with pytest.raises(ValidationError):
        VaultSettings(**{field: url})
    monkeypatch.setenv("VAULT_ADDR", "https://vault.internal")
    monkeypatch.setenv("VAULT_TOKEN", "t")
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigurationError) as raised:
        VaultStore.from_settings()
    text = str(raised.value)
    assert variable in text
    assert "credentials" in text
    for shown in (text, str(direct.value)):
        assert "s3cretpass" not in shown
        assert "vaultuser" not in shown
