"""The HashiCorp Vault (and OpenBao) KV store (see :mod:`unkey_secrets.stores.vault.store`).

Importing this package does not import hvac: the store imports it when it is built.
"""

from __future__ import annotations

from .store import VaultStore

__all__ = ["VaultStore"]
