"""issue 14, kind 6: capture settles the key whatever store call fails (in-memory store).

The same matrix runs against OpenBao and moto in tests/functional/test_capture_settles.py.
"""

from __future__ import annotations

import pytest

from unkey_secrets import ConfigurationError, FlowError, InvalidInputError, RetryPolicy, capture
from unkey_secrets.testing import InMemoryStore

from ._capture_faults import (
    ALIAS,
    CALLERS,
    CALLS,
    MODES,
    check_end_state,
    emulated,
    inject,
    run_capture,
)


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("call", CALLS)
def test_capture_settles_the_key_whatever_store_call_fails(
    call: str,
    mode: str,
    caller: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = InMemoryStore()
    with emulated() as (emulator, client):
        api_id = emulator.create_api("capture")
        issued = client.create_key(api_id)
        plaintext = issued.secret.reveal()
        log = inject(store, call, mode)
        outcome = run_capture(
            caller, store, client, api_id, issued.key_id, plaintext, monkeypatch, capsys
        )
        assert log  # the call was made, and failed as asked
        if mode != "unavailable":
            assert len(log) == 2  # retried once
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


def _alias_key(store: InMemoryStore, api_id: str) -> str | None:
    state = store.alias_state(api_id=api_id, alias=ALIAS)
    return None if state is None else state.key_id


def test_a_bad_alias_settles_the_key_too() -> None:
    """A check that fails without I/O (an alias no template allows) is not retried."""
    store = InMemoryStore()
    with emulated() as (emulator, client):
        api_id = emulator.create_api("capture")
        issued = client.create_key(api_id)
        with pytest.raises(FlowError) as raised:
            capture(store, api_id=api_id, key_id=issued.key_id, key=issued.secret, alias="a/b")
        assert issued.key_id in str(raised.value)
        assert isinstance(raised.value.__cause__, InvalidInputError)
        assert not emulator.key(issued.key_id).deleted


def test_a_lasting_configuration_error_is_retried_then_named() -> None:
    store = InMemoryStore()
    calls: list[str] = []

    def refuse(**_: object) -> None:
        calls.append("check")
        raise ConfigurationError("Vault refused the token: check VAULT_TOKEN")

    store.check_writable = refuse  # type: ignore[method-assign]
    with emulated() as (emulator, client):
        api_id = emulator.create_api("capture")
        issued = client.create_key(api_id)
        with pytest.raises(FlowError) as raised:
            capture(
                store,
                api_id=api_id,
                key_id=issued.key_id,
                key=issued.secret,
                unkey=client,
                retry=RetryPolicy(attempts=3, sleep=lambda _: None),
            )
        assert len(calls) == 3
        assert "check VAULT_TOKEN" in str(raised.value)
        assert issued.key_id in str(raised.value)
        assert emulator.key(issued.key_id).deleted
