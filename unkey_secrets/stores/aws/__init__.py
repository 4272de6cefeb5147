"""The AWS Secrets Manager store (see :mod:`unkey_secrets.stores.aws.store`).

The store's names are loaded on first access, not when this package is imported: the rotation
Lambda imports ``errors`` and ``secrets`` from here and must not pull in pydantic-settings (the
store's settings) on its cold start. Nothing here imports boto3.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import AssumeRole
    from .failover import RegionFailoverStore
    from .store import (
        MAX_VALUE_BYTES,
        TAG_ALIAS,
        TAG_API_ID,
        TAG_KEY_ID,
        TAG_KIND,
        TAG_MANAGED_BY,
        TAG_REROLLED_FROM,
        VERSION_NAMESPACE,
        SecretsManagerStore,
        validate_secret_name,
        version_id_for,
    )

__all__ = [
    "MAX_VALUE_BYTES",
    "TAG_ALIAS",
    "TAG_API_ID",
    "TAG_KEY_ID",
    "TAG_KIND",
    "TAG_MANAGED_BY",
    "TAG_REROLLED_FROM",
    "VERSION_NAMESPACE",
    "AssumeRole",
    "RegionFailoverStore",
    "SecretsManagerStore",
    "validate_secret_name",
    "version_id_for",
]
#: The names loaded from a module other than ``store``.
_ELSEWHERE = {"AssumeRole": "client", "RegionFailoverStore": "failover"}


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        module = importlib.import_module(f"{__name__}.{_ELSEWHERE.get(name, 'store')}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
