"""pytest fixtures for real local servers: OpenBao, moto and the Unkey emulator.

Registered through the ``pytest11`` entry point, so any project that installs
``unkey-secrets[test]`` gets them. Each server starts on a free loopback port once per session,
only when a test asks for it, and stops at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

__all__ = [
    "moto_server",
    "openbao_server",
    "unkey_api_id",
    "unkey_emulator",
    "unkey_emulator_server",
]

if TYPE_CHECKING:
    from .emulator import Emulator, EmulatorServer
    from .moto import MotoServer
    from .openbao import OpenBaoServer


@pytest.fixture(scope="session")
def unkey_emulator_server() -> Iterator[EmulatorServer]:
    """A running Unkey emulator for the whole session."""
    from .emulator import EmulatorServer

    with EmulatorServer() as server:
        yield server


@pytest.fixture
def unkey_emulator(unkey_emulator_server: EmulatorServer) -> Iterator[Emulator]:
    """The session's emulator state, with fault injection cleared after each test."""
    emulator = unkey_emulator_server.emulator
    emulator.reset_faults()
    yield emulator
    emulator.reset_faults()


@pytest.fixture
def unkey_api_id(unkey_emulator: Emulator) -> str:
    """A fresh API (keyspace) in the emulator, so tests never see each other's keys."""
    return unkey_emulator.create_api("test")


@pytest.fixture(scope="session")
def openbao_server() -> Iterator[OpenBaoServer]:
    """A running OpenBao dev server (the real ``bao`` binary) for the whole session."""
    from .openbao import OpenBaoServer

    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A running moto server (Secrets Manager, IAM, STS, KMS, Lambda) for the whole session."""
    from .moto import MotoServer

    with MotoServer() as server:
        yield server
