"""The in-memory Unkey v2 API emulator (see :mod:`unkey_secrets.testing.emulator.server`)."""

from __future__ import annotations

from .model import EmulatedKey, Faults
from .server import Emulator, EmulatorServer, Response, main
from .transport import EmulatorTransport

__all__ = [
    "EmulatedKey",
    "Emulator",
    "EmulatorServer",
    "EmulatorTransport",
    "Faults",
    "Response",
    "main",
]
