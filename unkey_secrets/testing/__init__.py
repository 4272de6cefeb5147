"""Test kit: Unkey emulator, local servers, pytest fixtures and an in-memory store.

Importing this package stays light: the servers, the emulator and their SDKs (hvac, boto3)
load only from their own modules.
"""

from .memory import InMemoryStore

__all__ = ["InMemoryStore"]
