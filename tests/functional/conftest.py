from __future__ import annotations

from collections.abc import Iterator

import pytest

from unkey_secrets import SecretStore, UnkeyClient
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer


@pytest.fixture
def unkey_client(unkey_emulator_server: EmulatorServer) -> Iterator[UnkeyClient]:
    """Our client, talking to the session's emulator."""
    with UnkeyClient(
        unkey_emulator_server.root_key,
        base_url=unkey_emulator_server.url,
        sleep=lambda _: None,
    ) as client:
        yield client


@pytest.fixture
def vault_store(openbao_server: OpenBaoServer) -> VaultStore:
    return VaultStore(openbao_server.client())


@pytest.fixture
def aws_store(moto_server: MotoServer) -> SecretsManagerStore:
    return SecretsManagerStore(moto_server.client("secretsmanager"))


@pytest.fixture(params=["vault", "aws"])
def store(request: pytest.FixtureRequest) -> SecretStore:
    """Each real store in turn."""
    return request.getfixturevalue(f"{request.param}_store")


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the CLI's functional tests: one store kind at a time, by environment ---------------------


@pytest.fixture(params=["vault", "aws"])
def kind(request: pytest.FixtureRequest) -> str:
    """The store the CLI is pointed at: ``vault`` or ``aws``."""
    return str(request.param)


@pytest.fixture
def env(
    kind: str,
    openbao_server: OpenBaoServer,
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
) -> dict[str, str]:
    """The CLI's environment for the store ``kind`` and the session's emulator."""
    from ._cli_harness import aws_env, unkey_env, vault_env

    store = vault_env(openbao_server) if kind == "vault" else aws_env(moto_server)
    return {**store, **unkey_env(unkey_emulator_server)}


@pytest.fixture
def target(kind: str, openbao_server: OpenBaoServer, moto_server: MotoServer) -> SecretStore:
    """The same store, in-process, to check what the CLI wrote."""
    if kind == "vault":
        return VaultStore(openbao_server.client())
    return SecretsManagerStore(moto_server.client("secretsmanager"))
