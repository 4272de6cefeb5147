"""issue 14, kind 6: every store call ``capture`` makes, failing every way, on any store.

Shared by the unit matrix (the in-memory store) and the functional one (OpenBao, moto): a
store's calls are wrapped on the instance, so the real adapter does the work and the fault is
where a network would put it. The Unkey side is the in-process emulator.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from unkey_secrets import (
    CompensatedError,
    ConfigurationError,
    FlowError,
    RetryPolicy,
    SecretStore,
    StoreUnavailableError,
    UnkeyClient,
    UnkeySecretsError,
    capture,
)
from unkey_secrets.cli import app as cli
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

#: Every store call capture makes, in order (set_current: it is given an alias).
CALLS = ("check_writable", "put", "set_current")
#: unavailable: every attempt fails; lost: the first one acts and its answer is lost, then
#: fine; dropped: the first one fails before acting, then fine.
MODES = ("unavailable", "lost", "dropped")
CALLERS = ("client", "no-client", "cli")
ALIAS = "svc"


class Injected(Exception):
    """Marks our own injection in a traceback."""


def _failure(store: SecretStore, call: str) -> Exception:
    # What each real store raises when it cannot reach its server: the live preflight says
    # so as a ConfigurationError, the writes as StoreUnavailableError.
    if call == "check_writable":
        return ConfigurationError(f"could not reach {store.name} (injected: ConnectionError)")
    return StoreUnavailableError("injected: connection reset", store=store.name)


def inject(store: SecretStore, call: str, mode: str) -> list[str]:
    """Make ``store.<call>`` fail as ``mode`` says; return the list its calls are logged in."""
    real = getattr(store, call)
    log: list[str] = []
    state = {"failed": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        log.append(call)
        if mode == "unavailable":
            raise _failure(store, call)
        if state["failed"] == 0:
            state["failed"] = 1
            if mode == "lost":
                real(*args, **kwargs)
            raise _failure(store, call)
        return real(*args, **kwargs)

    setattr(store, call, wrapped)
    return log


@dataclass
class Outcome:
    ok: bool
    error: str | None
    text: str  # the error's message, or the CLI's whole output
    exc: BaseException | None = None


@contextmanager
def emulated() -> Iterator[tuple[Emulator, UnkeyClient]]:
    emulator = Emulator()
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=EmulatorTransport(emulator),
        sleep=lambda _: None,
    ) as client:
        yield emulator, client


def run_capture(
    caller: str,
    store: SecretStore,
    client: UnkeyClient,
    api_id: str,
    key_id: str,
    plaintext: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Outcome:
    """Capture one key as ``caller`` does; never raises what capture raises."""
    if caller == "cli":
        monkeypatch.setenv("UNKEY_ROOT_KEY", "unkey_set")
        monkeypatch.setattr(cli, "store_from_env", lambda name: store)
        monkeypatch.setattr(cli, "unkey_from_env", lambda: _unclosed(client))
        stream = io.TextIOWrapper(io.BytesIO(plaintext.encode()), encoding="utf-8")
        monkeypatch.setattr(stream, "isatty", lambda: False)
        monkeypatch.setattr("sys.stdin", stream)
        capsys.readouterr()
        code = cli.main(
            [
                *("--json", "--store", store.name, "capture", "--api-id", api_id),
                *("--key-id", key_id, "--alias", ALIAS, "--delete-if-unstored"),
            ]
        )
        out, err = capsys.readouterr()
        record = json.loads(out.splitlines()[-1]) if out.strip() else {}
        return Outcome(code == 0, record.get("error"), out + err)
    unkey = client if caller == "client" else None
    try:
        capture(
            store,
            api_id=api_id,
            key_id=key_id,
            key=plaintext,
            alias=ALIAS,
            unkey=unkey,
            retry=RetryPolicy(sleep=lambda _: None),
        )
    except UnkeySecretsError as exc:
        return Outcome(False, type(exc).__name__, str(exc), exc)
    return Outcome(True, None, "")


def _unclosed(client: UnkeyClient) -> UnkeyClient:
    # The CLI closes the client it is given; the test still needs this one afterwards.
    client.close = lambda: None  # type: ignore[method-assign]
    return client


def check_end_state(
    *,
    call: str,
    mode: str,
    caller: str,
    outcome: Outcome,
    store: SecretStore,
    emulator: Emulator,
    client: UnkeyClient,
    api_id: str,
    key_id: str,
    plaintext: str,
    read: Callable[[], str | None],
) -> None:
    """Assert where the key ended up, for one case of the matrix."""
    assert plaintext not in outcome.text
    deleted = emulator.key(key_id).deleted
    stored = store.contains(api_id=api_id, key_id=key_id)
    if mode != "unavailable":
        # One dropped answer, or one lost after the call acted: retried, and it went through.
        assert outcome.ok, outcome.text
        assert stored
        assert not deleted
        assert read() == key_id
        return
    assert not outcome.ok
    assert key_id in outcome.text
    if call == "set_current":
        # Stored already: the alias move may have landed, so nothing is deleted.
        assert stored
        assert not deleted
        assert outcome.error == "FlowError"
        assert "alias" in outcome.text
        return
    assert not stored
    if caller == "no-client":
        assert not deleted
        assert client.verify_key(_secret(plaintext)).valid
        assert outcome.error == "FlowError"
        assert "revoke it" in outcome.text
        assert isinstance(outcome.exc, FlowError)
        assert outcome.exc.key_id == key_id
    else:
        assert deleted
        assert outcome.error == "CompensatedError"
        assert f"deleted key {key_id}" in outcome.text
        if outcome.exc is not None:
            assert isinstance(outcome.exc, CompensatedError)
            assert outcome.exc.key_id == key_id


def _secret(plaintext: str) -> Any:
    from unkey_secrets import Secret

    return Secret(plaintext)
