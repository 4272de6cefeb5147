"""issue 14, kind 6: capture settles the key whatever store call fails, in OpenBao and moto.

The matrix of tests/unit/test_capture_settles.py on the real stores (the faults wrap each
store call; the adapters do the real work), and the reported case itself: a store that is down
when capture's up-front check runs.
"""

from __future__ import annotations

import hvac
import pytest

from unkey_secrets import CompensatedError, FlowError, RetryPolicy, SecretStore, capture
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore

from ..unit._capture_faults import (
    ALIAS,
    CALLERS,
    CALLS,
    MODES,
    check_end_state,
    emulated,
    inject,
    run_capture,
)

pytestmark = pytest.mark.functional


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("call", CALLS)
def test_capture_settles_the_key_whatever_store_call_fails(
    store: SecretStore,
    call: str,
    mode: str,
    caller: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with emulated() as (emulator, client):
        api_id = emulator.create_api("capture")
        issued = client.create_key(api_id)
        plaintext = issued.secret.reveal()
        log = inject(store, call, mode)
        outcome = run_capture(
            caller, store, client, api_id, issued.key_id, plaintext, monkeypatch, capsys
        )
        assert log
        check_end_state(
            call=call,
            mode=mode,
            caller=caller,
            outcome=outcome,
            store=store,
            emulator=emulator,
            client=client,
            api_id=api_id,
            key_id=issued.key_id,
            plaintext=plaintext,
            read=lambda: _alias_key(store, api_id),
        )


def _alias_key(store: SecretStore, api_id: str) -> str | None:
    state = store.alias_state(api_id=api_id, alias=ALIAS)
    return None if state is None else state.key_id


def _down_store(kind: str, dead_port: int) -> SecretStore:
    """A real store, live preflight on, pointed at a loopback port where nothing listens."""
    url = f"http://127.0.0.1:{dead_port}"
    if kind == "vault":
        return VaultStore(hvac.Client(url=url, token="unused", timeout=2))
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "secretsmanager",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    return SecretsManagerStore(client)


@pytest.mark.parametrize("with_client", [True, False])
@pytest.mark.parametrize("kind", ["vault", "aws"])
def test_a_store_down_at_the_up_front_check_settles_the_key(
    kind: str, with_client: bool, dead_port: int
) -> None:
    store = _down_store(kind, dead_port)
    with emulated() as (emulator, client):
        api_id = emulator.create_api("capture")
        issued = client.create_key(api_id)
        with pytest.raises(FlowError) as raised:
            capture(
                store,
                api_id=api_id,
                key_id=issued.key_id,
                key=issued.secret,
                unkey=client if with_client else None,
                retry=RetryPolicy(attempts=2, sleep=lambda _: None),
            )
        message = str(raised.value)
        assert issued.key_id in message
        assert issued.secret.reveal() not in message
        assert raised.value.key_id == issued.key_id
        assert "could not reach" in message
        if with_client:
            assert isinstance(raised.value, CompensatedError)
            assert emulator.key(issued.key_id).deleted
        else:
            assert "revoke it" in message
            assert client.verify_key(issued.secret).valid
