"""Test kit: Unkey emulator, local servers, pytest fixtures and in-memory doubles.

Importing this package stays light: the servers, the emulator and their SDKs (hvac, boto3)
load only from their own modules; :class:`InMemorySecretsManager` imports botocore when the
first one is built.
"""

from .memory import InMemoryStore
from .secretsmanager import InMemorySecretsManager

__all__ = ["InMemorySecretsManager", "InMemoryStore"]
