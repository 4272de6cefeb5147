"""The in-memory Unkey v2 API emulator (see :mod:`unkey_secrets.testing.emulator.server`)."""

from __future__ import annotations

from .server import EmulatedKey, Emulator, EmulatorServer, Faults, main
from .server import Response as Response

__all__ = ["EmulatedKey", "Emulator", "EmulatorServer", "Faults", "main"]
