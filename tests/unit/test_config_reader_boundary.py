"""The reader's boundary: a failed login leaves no credential in any frame, and every repr works.

The login goes to a loopback stand-in for Vault's login endpoint that answers ``{"auth": null}``
(a 200 without a token), so the failure happens inside hvac, below the frames that hold the
AppRole role_id and secret_id, or the JWT.
"""

from __future__ import annotations

import json
import secrets
import threading
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets.config import CachedKey, KeyReader, UnkeyKey
from unkey_secrets.testing import InMemoryStore


class _NoToken(BaseHTTPRequestHandler):
    """Answers every login with 200 ``{"auth": null}``; keeps the bodies it was sent."""

    bodies: list[bytes]

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
        answer = json.dumps({"auth": None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads the bodies instead."""


@pytest.fixture
def no_token_vault() -> Iterator[tuple[str, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Handler", (_NoToken,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Vault settings, token file or proxy of the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_VAULT_")) or name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


def _raised(call: Callable[[], object]) -> BaseException:
    """The exception ``call`` raised; this frame holds no credential, so it renders clean."""
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 (KeyboardInterrupt included)
        return exc
    raise AssertionError("expected the login to fail")


def _rendered(exc: BaseException) -> str:
    """The traceback as Sentry or rich render it: every frame's locals, chained errors too."""
    return "".join(
        traceback.TracebackException(
            type(exc), exc, exc.__traceback__, capture_locals=True
        ).format()
    )


def _credential(kind: str) -> str:
    return f"{kind}-{secrets.token_hex(16)}"


def _login_environment(monkeypatch: pytest.MonkeyPatch, addr: str, method: str) -> list[str]:
    """Point the environment at ``addr`` with ``method``'s credentials; return them."""
    monkeypatch.setenv("VAULT_ADDR", addr)
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", method)
    if method == "approle":
        role_id, secret_id = _credential("role"), _credential("secret")
        monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE_ID", role_id)
        monkeypatch.setenv("UNKEY_SECRETS_VAULT_SECRET_ID", secret_id)
        return [role_id, secret_id]
    jwt = _credential("jwt")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE", "reader")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_JWT", jwt)
    return [jwt]


@pytest.mark.parametrize("method", ["approle", "jwt"])
def test_a_login_answered_without_a_token_leaves_no_credential_in_the_traceback(
    no_token_vault: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    addr, bodies = no_token_vault
    credentials = _login_environment(monkeypatch, addr, method)
    exc = _raised(KeyReader.vault)
    # The credentials did reach the login, and so were in the frames below KeyReader.vault.
    assert len(bodies) == 1
    for credential in credentials:
        assert credential.encode() in bodies[0]
    rendered = _rendered(exc)
    assert "in vault" in rendered  # the frames are still named, only their locals go
    for credential in credentials:
        assert credential not in rendered


def test_an_interrupted_login_leaves_no_credential_in_the_traceback(
    no_token_vault: tuple[str, list[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from hvac.api.auth_methods.approle import AppRole

    addr, _ = no_token_vault
    credentials = _login_environment(monkeypatch, addr, "approle")

    def interrupted(self: AppRole, role_id: str, secret_id: str | None = None, **_: Any) -> None:
        raise KeyboardInterrupt  # Ctrl-C while hvac holds both credentials

    monkeypatch.setattr(AppRole, "login", interrupted)
    exc = _raised(KeyReader.vault)
    assert isinstance(exc, KeyboardInterrupt)
    rendered = _rendered(exc)
    assert "interrupted" in rendered
    for credential in credentials:
        assert credential not in rendered


# -- reprs on objects not (yet) built --------------------------------------------------------


def test_reprs_work_on_bare_objects() -> None:
    reader = object.__new__(KeyReader)
    assert repr(reader).startswith("KeyReader(store=None")
    cached = object.__new__(CachedKey)
    assert repr(cached) == "CachedKey(?, store=None, key_id=None)"


def test_reprs_work_on_half_built_objects() -> None:
    reader = object.__new__(KeyReader)
    reader.store = InMemoryStore()
    reader.max_age = 60.0
    shown = repr(reader)
    assert "max_age=60" in shown
    assert "max_stale=None" in shown
    assert "keys=None" in shown
    cached = object.__new__(CachedKey)
    cached._reader = reader
    cached.ref = UnkeyKey(api_id="api_half", alias="billing")
    shown = repr(cached)
    assert "api_half" in shown
    assert "store='memory'" in shown
    assert "key_id=None" in shown
