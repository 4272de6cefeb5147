"""How to test your own code with the pytest fixtures ``unkey-secrets[test]`` installs.

What it shows: a small service that loads its Unkey key from Vault or Secrets Manager through
an alias and checks callers' keys with Unkey, tested against real local servers: the Unkey
emulator (``unkey_emulator``, ``unkey_api_id``), OpenBao (``openbao_server``) and moto
(``moto_server``, ``moto_clean``), with the environment the service reads set by ``unkey_env``,
``vault_env`` and ``aws_env``. Nothing to start by hand, no account, no network: each server
runs on a free loopback port once per session, and each environment fixture is undone after
its test.

How to run it: copy it into your project's tests and ``pip install './unkey-secrets[test]'``
from a checkout, or the git URL (docs/install.md: nothing is on the package index yet); the
fixtures are there with no conftest (a pytest plugin). In this repository::

    .venv/bin/pytest examples/test_my_service.py

(``tests/e2e/test_example_test_my_service.py`` runs it that way.)
"""

from __future__ import annotations

import os

from unkey_secrets import UnkeyClient, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey

# -- the code under test: your service --------------------------------------------------------


class BillingClient:
    """Your code: calls a partner API with the key an alias names, read once from the store."""

    def __init__(self, store: VaultStore | SecretsManagerStore, api_id: str) -> None:
        current = store.get_current(api_id=api_id, alias="billing")
        self.key, self.key_id = current.secret, current.key_id


def is_authorised(unkey: UnkeyClient, presented: str) -> bool:
    """Your code: accept a request whose key Unkey says is valid."""
    return unkey.verify_key(presented).valid


# -- the tests ----------------------------------------------------------------------------------


def test_the_emulator_is_a_real_unkey_api(unkey_emulator: LocalUnkey, unkey_api_id: str) -> None:
    """``unkey_emulator`` has a URL and root key; ``unkey_api_id`` is a new API per test."""
    assert unkey_emulator.url.startswith("http://127.0.0.1:")
    with UnkeyClient(unkey_emulator.root_key, base_url=unkey_emulator.url) as unkey:
        issued = unkey.create_key(unkey_api_id, prefix="test")
        assert is_authorised(unkey, issued.secret.reveal())
        assert not is_authorised(unkey, "test_NotAKeyUnkeyKnowsAbout1234")
    # The emulator's state is there to assert on, too.
    assert [key.key_id for key in unkey_emulator.keys(unkey_api_id)] == [issued.key_id]


def test_service_reads_its_key_from_vault(
    unkey_env: dict[str, str], vault_env: dict[str, str]
) -> None:
    """Code that reads the standard variables finds the local servers, as it would in prod."""
    api_id = unkey_env["UNKEY_API_ID"]
    assert os.environ["VAULT_ADDR"] == vault_env["VAULT_ADDR"]
    vault = VaultStore.from_settings()  # VAULT_ADDR, VAULT_TOKEN
    with UnkeyClient.from_settings() as unkey:  # UNKEY_ROOT_KEY, UNKEY_BASE_URL
        provision(unkey, vault, api_id, alias="billing")
        client = BillingClient(vault, api_id)
        assert is_authorised(unkey, client.key.reveal())
        # After a rotation a new client gets the new key, and the old one still works (grace).
        rotate(unkey, vault, api_id, alias="billing")
        fresh = BillingClient(vault, api_id)
        assert fresh.key_id != client.key_id
        assert is_authorised(unkey, fresh.key.reveal())
        assert is_authorised(unkey, client.key.reveal())


def test_service_reads_its_key_from_secrets_manager(
    unkey_env: dict[str, str], aws_env: dict[str, str], moto_clean: MotoServer
) -> None:
    """``moto_clean`` starts the test with an empty moto; ``aws_env`` points boto3 at it."""
    assert moto_clean.client("secretsmanager").list_secrets()["SecretList"] == []
    aws = SecretsManagerStore.from_settings()  # AWS_ENDPOINT_URL, AWS_REGION, credentials
    with UnkeyClient.from_settings() as unkey:
        provision(unkey, aws, unkey_env["UNKEY_API_ID"], alias="billing")
        client = BillingClient(aws, unkey_env["UNKEY_API_ID"])
        assert is_authorised(unkey, client.key.reveal())


def test_without_environment_fixtures(
    openbao_server: OpenBaoServer, moto_server: MotoServer, unkey_emulator: LocalUnkey
) -> None:
    """The servers themselves, for code that takes its clients as arguments."""
    vault = VaultStore(openbao_server.client())  # root token; .create_token() makes narrower
    aws = SecretsManagerStore(moto_server.client("secretsmanager"))
    api_id = unkey_emulator.create_api("mine")
    with unkey_emulator.client() as unkey:
        for store in (vault, aws):
            provision(unkey, store, api_id, alias="billing")
            assert is_authorised(unkey, BillingClient(store, api_id).key.reveal())
