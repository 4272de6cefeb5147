"""The transport policy against the real OpenBao, moto server and Unkey emulator.

A proxy in the environment never sees loopback traffic (tokens, keys); a key write whose answer
never completes is a lost answer that provision settles within its deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import hvac
import pytest
from pydantic import SecretStr

from tests._policy_servers import (
    Handler,
    Received,
    Server,
    endless_chunks,
    forward_to,
    record_only,
    serve,
    trickle,
)
from unkey_secrets import IssuedKey, RetryPolicy, SecretStore, UnkeyClient, provision
from unkey_secrets.config import KeyReader
from unkey_secrets.settings import AwsSettings, VaultSettings
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.emulator import Emulator
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A recording "corporate proxy" in every proxy variable, with no NO_PROXY exemption."""
    with serve(record_only) as server:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, server.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        yield server


def round_trip(store: SecretStore) -> IssuedKey:
    """Write a new key through ``store`` and read it back; the key."""
    key = canary_key()
    assert store.put(key).created
    assert store.get(api_id=key.api_id, key_id=key.key_id).secret.reveal() == key.secret.reveal()
    return key


def test_vault_loopback_traffic_never_goes_through_the_proxy(
    proxy: Server, openbao_server: OpenBaoServer
) -> None:
    # A caller's client, made while the proxy variables are set (requests reads them per call).
    round_trip(VaultStore(openbao_server.client()))
    settings = VaultSettings(addr=openbao_server.url, token=SecretStr(openbao_server.root_token))
    key = round_trip(VaultStore(settings=settings))
    reader = KeyReader.vault(settings)
    assert reader.get(api_id=key.api_id, key_id=key.key_id).key_id == key.key_id
    assert proxy.received == []


def test_secrets_manager_loopback_traffic_never_goes_through_the_proxy(
    proxy: Server, moto_server: MotoServer, aws_env: dict[str, str]
) -> None:
    # botocore reads the proxy variables when a client is made: this one would use them.
    given = moto_server.client("secretsmanager")
    round_trip(SecretsManagerStore(given))
    key = round_trip(SecretsManagerStore(settings=AwsSettings()))
    reader = KeyReader.secrets_manager(client=moto_server.client("secretsmanager"))
    assert reader.get(api_id=key.api_id, key_id=key.key_id).key_id == key.key_id
    assert proxy.received == []


# -- a lost answer, settled -------------------------------------------------------------------


def spoil_first_key_write(answer: Handler) -> Callable[[Received], Handler | None]:
    """After the first KV write of a key has reached OpenBao, answer it with ``answer``."""
    spoiled: list[Received] = []

    def spoil(request: Received) -> Handler | None:
        if request.method == "POST" and "/data/unkey/" in request.path and not spoiled:
            spoiled.append(request)
            return answer
        return None

    return spoil


@pytest.mark.parametrize("answer", [trickle, endless_chunks], ids=["trickle", "endless"])
def test_provision_settles_a_key_write_whose_answer_never_completes(
    answer: Handler,
    openbao_server: OpenBaoServer,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    upstream = forward_to(openbao_server.url, spoil=spoil_first_key_write(answer))
    with serve(upstream) as vault:
        client = hvac.Client(url=vault.url, token=openbao_server.root_token, timeout=2)
        store = VaultStore(client)
        started = time.monotonic()
        result = provision(
            unkey_client, store, unkey_api_id, retry=RetryPolicy(attempts=3, backoff=0.01)
        )
        elapsed = time.monotonic() - started
    # One deadline (2 s) for the lost write, then the retry finds its own landed write.
    assert elapsed < 2 + 6
    direct = VaultStore(openbao_server.client())
    assert direct.get(api_id=unkey_api_id, key_id=result.key_id).key_id == result.key_id
    # No enabled key that nobody holds.
    for key in unkey_emulator.keys(unkey_api_id):
        if key.enabled and not key.deleted:
            assert direct.key_entry(api_id=unkey_api_id, key_id=key.key_id) is not None
    assert unkey_emulator.key(result.key_id).enabled
