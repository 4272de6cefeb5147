"""A key passed where an id belongs never reaches a store, a log record or the output.

The stores are the real OpenBao and moto server, reached through a loopback tap that counts
the bytes a client sends, so "nothing was sent" is measured on the wire, whatever client
library or transport sits in between. Logging runs at DEBUG everywhere (urllib3's request
lines, botocore's request and response dumps), the way the leak was seen.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import hvac
import pytest
from botocore.config import Config

from unkey_secrets import (
    InvalidInputError,
    SecretStore,
    UnkeyClient,
    provision,
    reconcile,
    rotate,
)
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

from ._cli_harness import aws_env, run_cli, unkey_env, vault_env

pytestmark = pytest.mark.functional


class Tap:
    """A loopback TCP forwarder to ``upstream`` that counts the bytes clients send through it."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.sent = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            with self._lock:
                self.connections += 1
                self._open += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if counted:
                    with self._lock:
                        self.sent += len(chunk)
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()


def _port_of(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


@pytest.fixture(params=["vault", "aws"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def tap(kind: str, openbao_server: OpenBaoServer, moto_server: MotoServer) -> Iterator[Tap]:
    upstream = openbao_server.url if kind == "vault" else moto_server.url
    tapped = Tap(_port_of(upstream))
    yield tapped
    tapped.close()


@pytest.fixture
def tapped_store(kind: str, tap: Tap, openbao_server: OpenBaoServer) -> SecretStore:
    """The real store of ``kind``, its client connected through ``tap``."""
    if kind == "vault":
        return VaultStore(hvac.Client(url=tap.url, token=openbao_server.root_token, timeout=10))
    client = boto3.client(
        "secretsmanager",
        endpoint_url=tap.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )
    return SecretsManagerStore(client)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record at DEBUG, from every logger (urllib3, botocore, hvac, httpx, ours)."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "botocore", "boto3", "hvac", "httpx", "httpcore", "unkey_secrets"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _rendered(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


def _a_key(unkey: UnkeyClient, api_id: str, prefix: str) -> str:
    """A real key Unkey issued, as a caller holding it would paste it."""
    return unkey.create_key(api_id, prefix=prefix).secret.reveal()


def test_the_tap_sees_what_a_store_sends(tapped_store: SecretStore, tap: Tap) -> None:
    # The control: a store call through the tap is counted, so a zero below means nothing.
    tapped_store.key_entry(api_id="api_tapcontrol", key_id="key_tapctl01")
    assert tap.sent > 0


@pytest.mark.parametrize("swapped", [False, True], ids=["as-key_id", "api_id-and-key-swapped"])
def test_a_key_passed_to_rotate_is_refused_before_any_request(
    swapped: bool,
    unkey_client: UnkeyClient,
    unkey_emulator: Any,
    unkey_api_id: str,
    tapped_store: SecretStore,
    tap: Tap,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    plaintext = _a_key(unkey_client, unkey_api_id, "prod")
    calls = unkey_emulator.calls.copy()
    debug_logs.clear()

    api_id, key_id = (plaintext, unkey_api_id) if swapped else (unkey_api_id, plaintext)
    with pytest.raises(InvalidInputError) as raised:
        rotate(unkey_client, tapped_store, api_id, key_id)

    assert plaintext not in _rendered(debug_logs)
    assert tap.sent == 0
    assert unkey_emulator.calls == calls
    assert raised.value.field == ("api_id" if swapped else "key_id")
    assert "key's shape" in raised.value.problem
    assert plaintext not in repr(raised.value)


def test_a_key_with_the_prefix_key_is_refused_once_unkey_does_not_know_it(
    unkey_client: UnkeyClient,
    unkey_emulator: Any,
    unkey_api_id: str,
    tapped_store: SecretStore,
    tap: Tap,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    # key_ and a long random run: an older keyId's shape exactly, so only Unkey can tell.
    plaintext = _a_key(unkey_client, unkey_api_id, "key")
    calls = unkey_emulator.calls.copy()
    debug_logs.clear()

    with pytest.raises(InvalidInputError) as raised:
        rotate(unkey_client, tapped_store, unkey_api_id, plaintext)

    assert plaintext not in _rendered(debug_logs)
    assert tap.sent == 0
    assert unkey_emulator.calls - calls == {"keys.getKey": 1}
    assert raised.value.field == "key_id"
    assert "getKey: not found" in raised.value.problem
    assert plaintext not in repr(raised.value)


def test_reconcile_refuses_a_key_as_api_id_before_any_request(
    unkey_client: UnkeyClient,
    unkey_emulator: Any,
    unkey_api_id: str,
    tapped_store: SecretStore,
    tap: Tap,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    plaintext = _a_key(unkey_client, unkey_api_id, "prod")
    calls = unkey_emulator.calls.copy()
    debug_logs.clear()

    with pytest.raises(InvalidInputError) as raised:
        reconcile(unkey_client, tapped_store, plaintext, aliases=["svc"])

    assert plaintext not in _rendered(debug_logs)
    assert tap.sent == 0
    assert unkey_emulator.calls == calls
    assert raised.value.field == "api_id"


def test_a_rotation_by_key_id_still_reaches_the_store(
    unkey_client: UnkeyClient, unkey_api_id: str, tapped_store: SecretStore, tap: Tap
) -> None:
    provisioned = provision(unkey_client, tapped_store, unkey_api_id, alias="ids", mode="fast")
    result = rotate(unkey_client, tapped_store, unkey_api_id, provisioned.key_id)
    assert result.original_key_id == provisioned.key_id
    assert tap.sent > 0


# -- the command line: rotate, show, verify and capture by --key-id -------------------------------


@pytest.fixture
def cli_env(
    kind: str,
    tap: Tap,
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
) -> dict[str, str]:
    """The CLI's environment, its store reached through ``tap``."""
    store = vault_env(openbao_server) if kind == "vault" else aws_env(moto_server)
    store["VAULT_ADDR" if kind == "vault" else "AWS_ENDPOINT_URL"] = tap.url
    return {**store, **unkey_env(unkey_emulator_server)}


@pytest.mark.parametrize(
    "command",
    [
        ["rotate", "--key-id", "{key}"],
        ["show", "--key-id", "{key}"],
        ["verify", "--key-id", "{key}"],
        ["capture", "--key-id", "{key}"],
    ],
    ids=["rotate", "show", "verify", "capture"],
)
@pytest.mark.parametrize("prefix", ["prod", "key"])
def test_the_cli_refuses_a_key_as_key_id_before_the_store(
    command: list[str],
    prefix: str,
    kind: str,
    cli_env: dict[str, str],
    tap: Tap,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    plaintext = _a_key(unkey_client, unkey_api_id, prefix)
    args = [part.replace("{key}", plaintext) for part in command]
    done = run_cli(
        ["-vv", *args[:1], "--api-id", unkey_api_id, "--store", kind, *args[1:]],
        cli_env,
        stdin=b"prod_3ZkCliStdinCanary8uVq2Lr7Wm1Nx\n",
    )
    output = done.stdout + done.stderr
    assert plaintext not in output
    assert tap.sent == 0
    assert done.returncode == 2, output
    assert "invalid --key-id" in output or "invalid key_id" in output
