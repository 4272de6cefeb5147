"""The pydantic-settings source for keys kept in HashiCorp Vault (or OpenBao)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .._redact import guarded
from ._source import UnkeyKeySource
from .reader import KeyReader

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from ..stores.vault.settings import VaultSettings

__all__ = ["UnkeyVaultSource"]


class UnkeyVaultSource(UnkeyKeySource):
    """Fills fields marked ``UnkeyKey(...)`` (with ``store`` "vault" or None) from Vault.

    Use it in ``settings_customise_sources``. Without ``reader``, one is built as the Vault
    store is configured (:meth:`KeyReader.vault`: ``VAULT_ADDR``, ``VAULT_TOKEN`` or
    ``~/.vault-token``, AppRole, Kubernetes, JWT, AWS IAM, ``VAULT_NAMESPACE``, the
    ``UNKEY_SECRETS_VAULT_*`` mount and templates), from ``settings`` or the environment, with
    ``options`` (``max_age``, ``unkey``, ``verify``). A settings class built again (or a
    long-running app) should share one ``reader``, so it logs in once and keeps its cache.

    One read per alias, of ``<mount>/data/<alias path>``, the keys a settings class needs
    read concurrently (:meth:`KeyReader.warm`): the shipped reader policy
    (``policies/vault-reader.hcl``) is all it needs.

    Building it raises what :meth:`KeyReader.vault` raises (a refused login, a bad setting),
    as a fresh error: no cause, no context, and no frame below it keeps a credential.
    """

    store_name: ClassVar[str | None] = "vault"

    @guarded(fresh=True)
    def __init__(
        self,
        settings_cls: type[BaseSettings],
        reader: KeyReader | None = None,
        *,
        settings: VaultSettings | None = None,
        **options: Any,
    ) -> None:
        if reader is None:
            reader = KeyReader.vault(settings, **options)
        super().__init__(settings_cls, reader)
