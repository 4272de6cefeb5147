"""The reader side against real servers: OpenBao, moto and the Unkey emulator over loopback."""

from __future__ import annotations

import datetime as dt
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import SecretStr
from pydantic_settings import (
    AWSSecretsManagerSettingsSource,
    BaseSettings,
    PydanticBaseSettingsSource,
)

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.config import (
    KeyAccessDeniedError,
    KeyNotFoundError,
    KeyReader,
    KeyRevokedError,
    KeyStoreUnavailableError,
    MaxAgeWarning,
    UnkeyKey,
    UnkeySecretsManagerSource,
    UnkeySecretStr,
    UnkeyVaultSource,
)
from unkey_secrets.settings import VaultSettings
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

POLICIES = Path(__file__).resolve().parents[2] / "policies"
GRACE = dt.timedelta(minutes=5)


@pytest.fixture(scope="module")
def reader_token(openbao_server: OpenBaoServer) -> str:
    openbao_server.write_policy("unkey-reader", (POLICIES / "vault-reader.hcl").read_text())
    return openbao_server.create_token("unkey-reader", ttl="30m")


def vault_reader(server: OpenBaoServer, token: str, **options: Any) -> KeyReader:
    return KeyReader.vault(VaultSettings(addr=server.url, token=token), **options)


@pytest.fixture
def make_reader(
    request: pytest.FixtureRequest, openbao_server: OpenBaoServer, moto_server: MotoServer
) -> Callable[..., KeyReader]:
    """A reader of the store the test is parametrized with, as an app would build it."""

    def make(kind: str, **options: Any) -> KeyReader:
        if kind == "vault":
            token = request.getfixturevalue("reader_token")
            return vault_reader(openbao_server, token, **options)
        return KeyReader.secrets_manager(client=moto_server.client("secretsmanager"), **options)

    return make


# -- settings sources ------------------------------------------------------------------------


def test_settings_load_one_key_from_vault_and_one_from_secrets_manager(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    vault_store: VaultStore,
    aws_store: SecretsManagerStore,
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
    reader_token: str,
) -> None:
    in_vault = provision(unkey_client, vault_store, unkey_api_id, alias="billing")
    in_aws = provision(unkey_client, aws_store, unkey_api_id, alias="reports")
    vault = vault_reader(openbao_server, reader_token)
    aws = KeyReader.secrets_manager(client=moto_server.client("secretsmanager"))
    api_id = unkey_api_id

    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, UnkeyKey(api_id=api_id, alias="billing", store="vault")]
        reports_key: Annotated[
            UnkeySecretStr, UnkeyKey(api_id=api_id, alias="reports", store="aws")
        ]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                sources["init_settings"],
                UnkeyVaultSource(settings_cls, vault),
                UnkeySecretsManagerSource(settings_cls, aws),
            )

    settings = Settings()
    assert isinstance(settings.billing_key, UnkeySecretStr)
    assert settings.billing_key.info.key_id == in_vault.key_id
    assert settings.billing_key.info.store == "vault"
    assert settings.reports_key.info.key_id == in_aws.key_id
    assert settings.reports_key.info.store == "aws"
    for field in (settings.billing_key, settings.reports_key):
        assert unkey_client.verify_key(field.get_secret_value()).valid
        assert field.get_secret_value() not in repr(settings)


def test_a_marker_without_store_for_a_key_in_the_other_store_is_told_to_name_it(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    aws_store: SecretsManagerStore,
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
    reader_token: str,
) -> None:
    provision(unkey_client, aws_store, unkey_api_id, alias="reports")
    vault = vault_reader(openbao_server, reader_token)
    aws = KeyReader.secrets_manager(client=moto_server.client("secretsmanager"))
    api_id = unkey_api_id

    class Settings(BaseSettings):
        reports_key: Annotated[SecretStr, UnkeyKey(api_id=api_id, alias="reports")]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                sources["init_settings"],
                UnkeyVaultSource(settings_cls, vault),
                UnkeySecretsManagerSource(settings_cls, aws),
            )

    # The Vault source comes first and reads the unnamed marker, in Vault.
    with pytest.raises(KeyNotFoundError) as raised:
        Settings()
    text = str(raised.value)
    assert 'give its UnkeyKey store="aws"' in text
    assert raised.value.field == "reports_key"


def test_pydantic_settings_own_aws_source_reads_our_alias(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    aws_store: SecretsManagerStore,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The alias is plain JSON with a "key" member: AWSSecretsManagerSettingsSource, unchanged."""
    done = provision(unkey_client, aws_store, unkey_api_id, alias="billing")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    secret_id = aws_store.alias_location(api_id=unkey_api_id, alias="billing")
    url = moto_server.url

    class Settings(BaseSettings):
        key: SecretStr
        key_id: str

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], **sources: PydanticBaseSettingsSource
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                AWSSecretsManagerSettingsSource(
                    settings_cls, secret_id, region_name="us-east-1", endpoint_url=url
                ),
            )

    settings = Settings()
    assert settings.key_id == done.key_id
    assert unkey_client.verify_key(settings.key.get_secret_value()).valid


# -- least privilege and errors --------------------------------------------------------------


def test_vault_reader_needs_read_on_the_alias_path_alone(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    vault_store: VaultStore,
    openbao_server: OpenBaoServer,
) -> None:
    provision(unkey_client, vault_store, unkey_api_id, alias="billing")
    done = rotate(unkey_client, vault_store, unkey_api_id, alias="billing", grace_period=GRACE)
    path = vault_store.alias_location(api_id=unkey_api_id, alias="billing")
    name = f"alias-only-{unkey_api_id}"
    openbao_server.write_policy(
        name, f'path "secret/data/{path}" {{\n  capabilities = ["read"]\n}}\n'
    )
    token = openbao_server.create_token(name)
    # max_age is longer than the grace period, but the record is not readable: no warning.
    reader = vault_reader(openbao_server, token, max_age=600)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reader.get(api_id=unkey_api_id, alias="billing").key_id == done.key_id
    # The same token may not read anything else, and the error names the policy to grant.
    with pytest.raises(KeyAccessDeniedError) as raised:
        reader.get(api_id=unkey_api_id, key_id=done.key_id)
    assert "policies/vault-reader.hcl" in str(raised.value)
    assert f"secret/data/unkey/{unkey_api_id}/{done.key_id}" in str(raised.value)


def test_vault_missing_alias(openbao_server: OpenBaoServer, reader_token: str) -> None:
    reader = vault_reader(openbao_server, reader_token)
    with pytest.raises(KeyNotFoundError, match="provision --api-id api_nothing --alias billing"):
        reader.get(api_id="api_nothing", alias="billing")


def test_vault_unreachable(dead_port: int) -> None:
    reader = KeyReader.vault(VaultSettings(addr=f"http://127.0.0.1:{dead_port}", token="t"))
    with pytest.raises(KeyStoreUnavailableError, match="VAULT_ADDR"):
        reader.get(api_id="api_123", alias="billing")


def test_vault_sealed() -> None:
    with OpenBaoServer() as server:
        store = VaultStore(server.client())
        from unkey_secrets.testing.contract import canary_key

        key = canary_key()
        store.put(key)
        store.set_current(key, alias="billing")
        reader = vault_reader(server, server.root_token)
        assert reader.get(api_id=key.api_id, alias="billing").key_id == key.key_id
        server.client().sys.seal()
        with pytest.raises(KeyStoreUnavailableError, match="sealed"):
            reader.key(api_id=key.api_id, alias="billing").refresh()


def test_vault_approle_reader_logs_in_again_when_its_token_is_gone(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    vault_store: VaultStore,
    openbao_server: OpenBaoServer,
    reader_token: str,
) -> None:
    done = provision(unkey_client, vault_store, unkey_api_id, alias="billing")
    root = openbao_server.client()
    mount = f"cfg-{unkey_api_id}".replace("_", "-")
    root.sys.enable_auth_method("approle", path=mount)
    root.auth.approle.create_or_update_approle(
        "app", token_policies=["unkey-reader"], token_ttl="10m", mount_point=mount
    )
    role_id = root.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("app", mount_point=mount)["data"]["secret_id"]
    reader = KeyReader.vault(
        VaultSettings(
            addr=openbao_server.url,
            auth_method="approle",
            auth_mount=mount,
            role_id=role_id,
            secret_id=secret_id,
        )
    )
    cached = reader.key(api_id=unkey_api_id, alias="billing")
    assert cached.get().key_id == done.key_id
    assert isinstance(reader.store, VaultStore)
    reader.store.client.auth.token.revoke_self()
    assert cached.refresh().key_id == done.key_id


@pytest.fixture
def iam_reader(moto_server: MotoServer) -> Callable[[str], Any]:
    from unkey_secrets.testing.contract import random_id

    iam = moto_server.client("iam")

    def make(policy_file: str) -> Any:
        import json

        document = json.loads((POLICIES / policy_file).read_text())
        for statement in document["Statement"]:
            statement["Resource"] = "*"
            statement.pop("Condition", None)
        user = random_id("user")
        iam.create_user(UserName=user)
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(document))
        access = iam.create_access_key(UserName=user)["AccessKey"]
        return moto_server.client(
            "secretsmanager",
            aws_access_key_id=access["AccessKeyId"],
            aws_secret_access_key=access["SecretAccessKey"],
        )

    return make


def test_aws_reader_policy_reads_and_a_writer_is_told_which_policy(
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    aws_store: SecretsManagerStore,
    moto_server: MotoServer,
    iam_reader: Callable[[str], Any],
) -> None:
    done = provision(unkey_client, aws_store, unkey_api_id, alias="billing")
    reader = KeyReader.secrets_manager(client=iam_reader("aws-reader.json"))
    writer = KeyReader.secrets_manager(client=iam_reader("aws-writer.json"))
    with moto_server.enforce_iam():
        assert reader.get(api_id=unkey_api_id, alias="billing").key_id == done.key_id
        with pytest.raises(KeyAccessDeniedError) as raised:
            writer.get(api_id=unkey_api_id, alias="billing")
    assert "policies/aws-reader.json" in str(raised.value)


def test_aws_missing_alias(moto_server: MotoServer) -> None:
    client = moto_server.client("secretsmanager")
    reader = KeyReader.secrets_manager(client=client)
    with pytest.raises(KeyNotFoundError) as raised:
        reader.get(api_id="api_nothing", alias="billing")
    # The region read, and a command that writes there; Secrets Manager has no mount.
    region = client.meta.region_name
    assert f"--store aws --region {region} provision --api-id api_nothing" in str(raised.value)
    assert "mount" not in str(raised.value)


# -- rotation and revocation -----------------------------------------------------------------


@pytest.fixture
def app_threads() -> Iterator[Callable[[Callable[[], None], int], None]]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(body: Callable[[], None], count: int) -> None:
        def loop() -> None:
            while not stop.is_set():
                body()
                time.sleep(0.005)

        for _ in range(count):
            thread = threading.Thread(target=loop, daemon=True)
            thread.start()
            threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(5)


@pytest.mark.parametrize("kind", ["vault", "aws"])
def test_an_app_follows_a_rotation_and_no_call_fails_in_the_grace_period(
    kind: str,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    make_reader: Callable[..., KeyReader],
    request: pytest.FixtureRequest,
    app_threads: Callable[[Callable[[], None], int], None],
) -> None:
    writer: SecretStore = request.getfixturevalue(f"{kind}_store")
    first = provision(unkey_client, writer, unkey_api_id, alias="svc")
    max_age = 0.5
    cached = make_reader(kind, max_age=max_age).key(api_id=unkey_api_id, alias="svc")
    old_secret = cached.secret()
    changes: list[tuple[str, str]] = []
    cached.on_change(lambda old, new: changes.append((old.key_id, new.key_id)))
    failures: list[str] = []
    used: set[str] = set()
    lock = threading.Lock()

    def protected_call() -> None:
        # What the app does per request: take the current key, call the protected endpoint.
        try:
            stored = cached.get()
            verdict = unkey_client.verify_key(stored.secret)
        except Exception as exc:  # noqa: BLE001 (any failure is what the test looks for)
            with lock:
                failures.append(type(exc).__name__)
            return
        with lock:
            used.add(stored.key_id)
            if not verdict.valid:
                failures.append(f"{stored.key_id}: {verdict.code}")

    app_threads(protected_call, 4)
    time.sleep(0.3)
    rotated = rotate(unkey_client, writer, unkey_api_id, alias="svc", grace_period=GRACE)
    rotated_at = time.monotonic()
    while cached.info().key_id != rotated.key_id and time.monotonic() - rotated_at < 10:
        time.sleep(0.01)
    picked_up_after = time.monotonic() - rotated_at
    time.sleep(0.3)
    assert cached.info().key_id == rotated.key_id
    assert picked_up_after <= max_age + 0.5, picked_up_after
    with lock:
        assert failures == []
        assert used == {first.key_id, rotated.key_id}
    assert changes == [(first.key_id, rotated.key_id)]
    # The rotated-out key is still valid for the grace period, the new one too.
    assert unkey_client.verify_key(old_secret).valid
    assert unkey_client.verify_key(cached.secret()).valid


@pytest.mark.parametrize("kind", ["vault", "aws"])
def test_max_age_longer_than_the_recorded_grace_period_warns(
    kind: str,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    make_reader: Callable[..., KeyReader],
    request: pytest.FixtureRequest,
) -> None:
    writer: SecretStore = request.getfixturevalue(f"{kind}_store")
    provision(unkey_client, writer, unkey_api_id, alias="svc")
    rotate(unkey_client, writer, unkey_api_id, alias="svc", grace_period=GRACE)
    with pytest.warns(MaxAgeWarning, match="300 s grace period"):
        make_reader(kind, max_age=600).get(api_id=unkey_api_id, alias="svc")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_reader(kind, max_age=60).get(api_id=unkey_api_id, alias="svc")


@pytest.mark.parametrize("kind", ["vault", "aws"])
def test_verify_reports_a_stored_key_unkey_revoked(
    kind: str,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    make_reader: Callable[..., KeyReader],
    request: pytest.FixtureRequest,
) -> None:
    writer: SecretStore = request.getfixturevalue(f"{kind}_store")
    done = provision(unkey_client, writer, unkey_api_id, alias="svc")
    cached = make_reader(kind, unkey=unkey_client, verify=True).key(
        api_id=unkey_api_id, alias="svc"
    )
    assert cached.get().key_id == done.key_id
    unkey_client.update_key(done.key_id, enabled=False)
    with pytest.raises(KeyRevokedError) as raised:
        cached.refresh()
    assert raised.value.code == "DISABLED"
    unkey_client.delete_key(done.key_id)
    with pytest.raises(KeyRevokedError) as raised:
        cached.refresh()
    assert raised.value.code == "NOT_FOUND"
    assert "rotate the alias" in str(raised.value)


@pytest.mark.parametrize("kind", ["vault", "aws"])
def test_no_plaintext_in_any_log_record_even_at_debug(
    kind: str,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    make_reader: Callable[..., KeyReader],
    request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    writer: SecretStore = request.getfixturevalue(f"{kind}_store")
    provision(unkey_client, writer, unkey_api_id, alias="svc")
    reader = make_reader(kind, max_age=0)
    with caplog.at_level(logging.DEBUG):
        cached = reader.key(api_id=unkey_api_id, alias="svc")
        plaintext = cached.secret().reveal()
        cached.refresh()
        cached.secret_str()
    assert caplog.records
    assert plaintext not in caplog.text
    for record in caplog.records:
        assert plaintext not in record.getMessage()
