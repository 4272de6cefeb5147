"""The records that travel between Unkey, the flows and the stores.

``IssuedKey`` is the only one that holds a plaintext, inside a :class:`~unkey_secrets.Secret`.
``StoredLocation`` and the flow results hold none.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ._secret import Secret
from ._validate import validate_api_id, validate_key_id

__all__ = ["IssuedKey", "StoredKey", "StoredLocation"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class IssuedKey:
    """A key Unkey has just issued, with what we asked for and what Unkey answered.

    ``secret`` is the plaintext, masked in every repr. ``request_id`` is Unkey's requestId for
    the create or reroll; ``rerolled_from`` is the original key_id after a reroll.
    """

    key_id: str
    secret: Secret
    api_id: str
    request_id: str | None = None
    name: str | None = None
    external_id: str | None = None
    prefix: str | None = None
    expires: int | None = None
    rerolled_from: str | None = None
    issued_at: dt.datetime = field(default_factory=_utcnow)

    def __post_init__(self) -> None:
        validate_key_id(self.key_id)
        validate_api_id(self.api_id)
        if not isinstance(self.secret, Secret):
            raise TypeError("IssuedKey.secret must be a Secret")
        if self.rerolled_from is not None:
            validate_key_id(self.rerolled_from, "rerolled_from")


@dataclass(frozen=True)
class StoredKey:
    """A key read back from a store: what a reader gets. ``secret`` is masked in every repr."""

    key_id: str
    secret: Secret
    api_id: str
    location: str
    version: str | None = None
    name: str | None = None
    external_id: str | None = None
    issued_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredLocation:
    """Where a key was written: no plaintext, safe to print and log.

    ``store`` is the backend name, ``location`` a Vault path (``mount/path``) or a Secrets
    Manager ARN, ``version`` the KV version or the Secrets Manager VersionId, and ``created``
    False when the write was an idempotent no-op because the same key was already there.
    """

    store: str
    location: str
    key_id: str
    version: str
    created: bool = True
    name: str | None = None
