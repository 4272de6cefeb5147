"""The records that travel between Unkey, the flows and the stores.

``IssuedKey`` is the only one that holds a plaintext, inside a :class:`~unkey_secrets.Secret`.
``StoredLocation`` and the flow results hold none.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from ._secret import Secret
from ._validate import validate_alias, validate_api_id, validate_key_id

# What a stored member name may look like to be shown in a repr.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")

__all__ = ["AliasState", "IssuedKey", "KeyEntry", "KeyRef", "StoredKey", "StoredLocation"]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class IssuedKey:
    """A key Unkey has just issued, with what we asked for and what Unkey answered.

    ``secret`` is the plaintext, masked in every repr. ``request_id`` is Unkey's requestId for
    the create or reroll; ``rerolled_from`` is the original key_id after a reroll; ``alias`` the
    reader-facing name the flow is about to point at it (recorded with the key, so a later
    rotation of the key moves that alias too). ``expires`` is Unix ms, None for never.
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
    alias: str | None = None

    def __post_init__(self) -> None:
        validate_key_id(self.key_id)
        validate_api_id(self.api_id)
        if not isinstance(self.secret, Secret):
            raise TypeError("IssuedKey.secret must be a Secret")
        if self.rerolled_from is not None:
            validate_key_id(self.rerolled_from, "rerolled_from")
        if self.alias is not None:
            validate_alias(self.alias)


@dataclass(frozen=True)
class StoredKey:
    """A key read back from a store: what a reader gets. ``secret`` is masked in every repr.

    The fields are the stored value's members (:func:`unkey_secrets.stores.key_fields`):
    ``expires`` is Unix ms (None: never), ``issued_at`` ISO 8601, ``rerolled_from`` the key
    this one replaced, ``alias`` the reader-facing name it was stored for. ``extra`` names the
    members this version does not know, sorted, each name that does not look like one
    (lower-case letters, digits and ``_``, up to 32) shown as ``"?"``; their values are not
    kept, since a writer's unknown member may hold anything (an earlier key, say), so
    ``dataclasses.asdict``, ``vars``, ``repr`` and copies show none.
    """

    key_id: str
    secret: Secret
    api_id: str
    location: str
    version: str | None = None
    name: str | None = None
    external_id: str | None = None
    issued_at: str | None = None
    prefix: str | None = None
    expires: int | None = None
    rerolled_from: str | None = None
    alias: str | None = None
    extra: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A member name is a writer's text too: only one that looks like a name is kept.
        names = (n if isinstance(n, str) and _NAME.fullmatch(n) else "?" for n in self.extra)
        object.__setattr__(self, "extra", tuple(sorted(names)))

    def __repr__(self) -> str:
        # getattr with a default: safe on a half-built object rendered with frame locals.
        shown = ", ".join(f"{name}={getattr(self, name, None)!r}" for name in _SHOWN)
        return f"StoredKey({shown}, extra={list(getattr(self, 'extra', ()))!r})"


_SHOWN = (
    "key_id",
    "secret",
    "api_id",
    "location",
    "version",
    "name",
    "external_id",
    "issued_at",
    "prefix",
    "expires",
    "rerolled_from",
    "alias",
)


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
    alias: str | None = None


@dataclass(frozen=True)
class AliasState:
    """What an alias names now, read without its value where the store allows.

    ``key_id`` is the key it names, ``rerolled_from`` that key's original (after a rotation),
    ``revision`` the store's own token for this state (a Vault KV version, a Secrets Manager
    VersionId): a move that names it fails if the alias changed meanwhile.
    ``rotation_enabled`` is True when Secrets Manager rotates the alias's secret itself
    (``RotationEnabled``: the rotation Lambda owns its rotations).
    """

    alias: str
    api_id: str
    key_id: str
    revision: str
    rerolled_from: str | None = None
    rotation_enabled: bool = False


@dataclass(frozen=True)
class KeyEntry:
    """What a store's metadata says about a key it holds, without reading the value.

    ``alias`` is the reader-facing name the key was stored for, ``rerolled_from`` its original.
    """

    api_id: str
    key_id: str
    alias: str | None = None
    rerolled_from: str | None = None


@dataclass(frozen=True)
class KeyRef:
    """One key to read: the current key behind ``alias``, or the key stored for ``key_id``.

    Exactly one of ``alias`` and ``key_id`` is given (checked by
    :meth:`~unkey_secrets.SecretStore.get_many`, which takes a sequence of them).
    """

    api_id: str
    alias: str | None = None
    key_id: str | None = None

    def describe(self) -> str:
        """``alias 'billing' of api_123`` or ``key key_abc of api_123`` (no I/O, no secret)."""
        if self.alias is not None:
            return f"alias {self.alias!r} of {self.api_id}"
        return f"key {self.key_id} of {self.api_id}"
