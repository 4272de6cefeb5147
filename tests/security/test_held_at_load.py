"""A credential is held (masked by value) from where it is loaded, not from a per-call re-read.

Issue 19 moved the environment's credentials from every guarded call to the points that load
them: a store's client built or given, a settings object, a login. A credential set in the
environment after import and then loaded by a store is still masked, with no
``install_guards()`` in between; a botocore client's own credentials, never in the
environment, are held when a store takes the client.
"""

from __future__ import annotations

from typing import Any

import pytest

from unkey_secrets._redact import MASK, scrub
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore

from ._canary import needles, new_canary


def masked(canary: str) -> bool:
    text = f"credential resolution: found {canary} and {canary!r}"
    clean = scrub(text)
    return MASK in clean and not any(needle in clean for needle in needles(canary))


def test_aws_credentials_set_after_import_are_masked_once_a_store_loads_them(
    moto_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_key, token = new_canary(), new_canary()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDCANARY",
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_SESSION_TOKEN": token,
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_DEFAULT_REGION": moto_server.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    SecretsManagerStore(preflight=False)
    assert masked(secret_key)
    assert masked(token)


def test_a_given_botocore_clients_own_credentials_are_masked(moto_server: Any) -> None:
    secret_key, token = new_canary(), new_canary()
    client = moto_server.client(
        "secretsmanager", aws_secret_access_key=secret_key, aws_session_token=token
    )
    assert not masked(token), "nothing has loaded it yet"
    SecretsManagerStore(client, preflight=False)
    assert masked(secret_key)
    assert masked(token)


def test_a_vault_token_set_after_import_is_masked_once_a_store_loads_it(
    openbao_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = openbao_server.create_token("root")
    monkeypatch.setenv("VAULT_TOKEN", token)
    monkeypatch.setenv("VAULT_ADDR", openbao_server.url)
    VaultStore.from_settings()
    assert masked(token)
