"""The pytest plugin's fixtures, as a newcomer meets them (docs/guides/testing.md)."""

from __future__ import annotations

import os

import pytest

from unkey_secrets import UnkeyClient, UnkeyError
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey

pytestmark = pytest.mark.e2e


def test_unkey_emulator_has_url_root_key_and_state(
    unkey_emulator: LocalUnkey, unkey_emulator_server: EmulatorServer
) -> None:
    assert unkey_emulator.url == unkey_emulator_server.url
    assert unkey_emulator.root_key == unkey_emulator_server.root_key
    assert isinstance(unkey_emulator.emulator, Emulator)
    assert unkey_emulator.emulator is unkey_emulator_server.emulator
    assert "url=" in repr(unkey_emulator)
    assert unkey_emulator.root_key not in repr(unkey_emulator)


def test_unkey_emulator_still_does_what_the_emulator_did(unkey_emulator: LocalUnkey) -> None:
    api_id = unkey_emulator.create_api("kit")
    before = unkey_emulator.calls.copy()
    with unkey_emulator.client() as unkey:
        issued = unkey.create_key(api_id)
        unkey_emulator.faults.fail_next("keys.getKey", status=404)
        with pytest.raises(UnkeyError):
            unkey.get_key(issued.key_id)
    assert (unkey_emulator.calls - before)["keys.createKey"] == 1
    assert [key.key_id for key in unkey_emulator.keys(api_id)] == [issued.key_id]
    assert unkey_emulator.key(issued.key_id).enabled
    narrow = unkey_emulator.add_root_key(["api.*.read_key"])
    assert narrow != unkey_emulator.root_key


def test_unkey_api_id_is_new_per_test(unkey_api_id: str, unkey_emulator: LocalUnkey) -> None:
    assert unkey_api_id.startswith("api_")
    assert unkey_emulator.keys(unkey_api_id) == []


def test_env_fixtures_point_the_standard_variables_at_the_stack(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setenv("VAULT_NAMESPACE", "team-a")  # a caller's setting that must not leak in
    monkeypatch.setenv("AWS_PROFILE", "prod")
    unkey_env = request.getfixturevalue("unkey_env")
    vault_env = request.getfixturevalue("vault_env")
    aws_env = request.getfixturevalue("aws_env")
    assert set(unkey_env) == {"UNKEY_ROOT_KEY", "UNKEY_BASE_URL", "UNKEY_API_ID"}
    for values in (unkey_env, vault_env, aws_env):
        for name, value in values.items():
            assert os.environ[name] == value
    assert "VAULT_NAMESPACE" not in os.environ
    assert "AWS_PROFILE" not in os.environ
    with UnkeyClient.from_settings() as unkey:
        issued = unkey.create_key(unkey_env["UNKEY_API_ID"])
        assert unkey.verify_key(issued.secret).valid
    api_id = unkey_env["UNKEY_API_ID"]
    VaultStore.from_settings().check_writable(api_id=api_id)
    SecretsManagerStore.from_settings().check_writable(api_id=api_id)


def test_moto_clean_resets_moto(moto_server: MotoServer, request: pytest.FixtureRequest) -> None:
    client = moto_server.client("secretsmanager")
    client.create_secret(Name="kit/leftover", SecretString="x")
    assert request.getfixturevalue("moto_clean") is moto_server
    assert client.list_secrets()["SecretList"] == []
