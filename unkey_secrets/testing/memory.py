"""An in-memory :class:`~unkey_secrets.stores.SecretStore` for tests, with failure injection.

:class:`InMemoryStore` keeps every value in a dict, as the JSON string a real store would hold
(:func:`~unkey_secrets.stores.key_fields`), and follows the same rules as the Vault and
Secrets Manager stores: create-only, idempotent puts; ownership; aliases holding a full copy of
their key's value; conditional alias moves; revisioned rotation records. It passes
:class:`~unkey_secrets.testing.contract.SecretStoreContract`.

It is a test double, not a backend: no entry point registers it. Use :meth:`InMemoryStore.fail_next`
to make an operation fail, and :attr:`InMemoryStore.calls` to see which operations ran::

    store = InMemoryStore()
    store.fail_next("set_current", StoreUnavailableError("down", store="memory"))
"""

from __future__ import annotations

import dataclasses
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from .._errors import NotOwnedError, SecretNotFoundError, StoreConflictError
from .._models import AliasState, IssuedKey, KeyEntry, StoredKey, StoredLocation
from .._payload import key_fields, parse_key_json
from .._redact import MaskedText
from ..stores.base import (
    DEFAULT_ALIAS_TEMPLATE,
    DEFAULT_KEY_TEMPLATE,
    DEFAULT_ROTATION_TEMPLATE,
    SecretStore,
    _Unchecked,
)

if TYPE_CHECKING:
    from ..rotation.record import RotationRecord

__all__ = ["OPERATIONS", "InMemoryStore"]

#: The operations :meth:`InMemoryStore.fail_next` can make fail, as :attr:`~InMemoryStore.calls`
#: names them.
OPERATIONS = frozenset(
    {
        "put",
        "set_current",
        "alias_state",
        "key_entry",
        "read_rotation",
        "write_rotation",
        "get",
        "get_current",
    }
)

_Kind = Literal["key", "alias", "rotation", "foreign"]


@dataclass
class _Entry:
    """One stored location: its value (a JSON string, masked in reprs) and what we know of it."""

    kind: _Kind
    value: str = field(repr=False)
    revision: int = 1
    api_id: str | None = None
    key_id: str = ""
    alias: str | None = None
    rerolled_from: str | None = None


class InMemoryStore(SecretStore):
    """A thread-safe store in a dict, with the semantics of the real stores (``name="memory"``).

    Locations are rendered from the same templates as every store. Each location holds a JSON
    string; the plaintext exists only inside it, and neither the store's nor an entry's repr
    shows it. A location's revision starts at 1 and grows with each write: it is the
    ``version`` of a :class:`~unkey_secrets.StoredLocation` and the ``revision`` of an
    :class:`~unkey_secrets.AliasState`.

    Test helpers: :meth:`plant_foreign` (a secret another tool created), :meth:`fail_next`
    (make an operation raise) and :attr:`calls` (every operation, in order).
    """

    name: ClassVar[str] = "memory"

    def __init__(
        self,
        *,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        alias_template: str = DEFAULT_ALIAS_TEMPLATE,
        rotation_template: str = DEFAULT_ROTATION_TEMPLATE,
    ) -> None:
        super().__init__(
            key_template=key_template,
            alias_template=alias_template,
            rotation_template=rotation_template,
        )
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._failures: dict[str, list[BaseException]] = {}
        #: The operations called so far, in order (one of :data:`OPERATIONS` per round trip a
        #: real store would make for it), including those made to fail.
        self.calls: list[str] = []

    def __repr__(self) -> str:
        # getattr with a default: safe on a half-built object (rendered with frame locals).
        return f"{type(self).__name__}(locations={len(getattr(self, '_entries', ()))})"

    # -- test helpers ------------------------------------------------------------------------

    def plant_foreign(self, location: str, value: str = "someone else's secret") -> None:
        """Create ``location`` the way another tool would: a value without our ownership mark."""
        with self._lock:
            self._entries[location] = _Entry(kind="foreign", value=value)

    def fail_next(self, operation: str, error: BaseException, times: int = 1) -> None:
        """Make the next ``times`` calls of ``operation`` raise ``error`` before they act.

        ``operation`` is one of :data:`OPERATIONS`. Failures queue up: two calls of
        ``fail_next`` for the same operation make its next two calls fail, in that order.
        Input validation (done by :class:`~unkey_secrets.stores.SecretStore` before the
        operation) still comes first.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; one of {sorted(OPERATIONS)}")
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._failures.setdefault(operation, []).extend([error] * times)

    def clear_failures(self) -> None:
        """Drop every failure :meth:`fail_next` queued that has not happened yet."""
        with self._lock:
            self._failures.clear()

    def locations(self) -> list[str]:
        """Return every location held, sorted (values are never shown)."""
        with self._lock:
            return sorted(self._entries)

    def _begin(self, operation: str) -> None:
        """Record ``operation`` and raise the failure queued for it, if any (lock held)."""
        self.calls.append(operation)
        queued = self._failures.get(operation)
        if queued:
            raise queued.pop(0)

    # -- hooks -------------------------------------------------------------------------------

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        with self._lock:
            self._begin("put")
            entry = self._entries.get(path)
            if entry is None:
                self._entries[path] = _Entry(
                    kind="key",
                    value=_encode(key),
                    api_id=key.api_id,
                    key_id=key.key_id,
                    alias=key.alias,
                    rerolled_from=key.rerolled_from,
                )
                return self._stored(path, key.key_id, 1, created=True)
            self._check_owned(entry, path, "key")
            if entry.key_id != key.key_id:
                raise StoreConflictError(
                    f"{path} already holds another key ({entry.key_id})",
                    store=self.name,
                    location=path,
                )
            return self._stored(path, key.key_id, entry.revision, created=False)

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | _Unchecked | None
    ) -> StoredLocation:
        with self._lock:
            self._begin("set_current")
            entry = self._entries.get(path)
            if entry is not None:
                self._check_owned(entry, path, "alias")
            if entry is not None and entry.key_id == key.key_id:
                # Already there (a repeated move, or one whose answer was lost): a no-op.
                return self._stored(path, key.key_id, entry.revision, created=False, alias=alias)
            if isinstance(expected, AliasState):
                if entry is None or str(entry.revision) != expected.revision:
                    raise StoreConflictError(
                        f"alias {path} was moved by someone else meanwhile; read it and retry",
                        store=self.name,
                        location=path,
                    )
            elif expected is None and entry is not None and entry.key_id != key.key_id:
                raise StoreConflictError(
                    f"alias {path} names key {entry.key_id} already",
                    store=self.name,
                    location=path,
                )
            key_path = self.key_location(api_id=key.api_id, key_id=key.key_id)
            stored = self._entries.get(key_path)
            if stored is None or stored.kind != "key" or stored.key_id != key.key_id:
                raise SecretNotFoundError(
                    f"{key.key_id} is not stored at {key_path}; put it before making it current",
                    store=self.name,
                    location=key_path,
                )
            if stored.alias is None:
                # Stored without its alias (captured first, aliased later): record it, as the
                # real stores do where they can, so a rotation by key_id moves this alias.
                stored.alias = alias
            revision = entry.revision + 1 if entry is not None else 1
            self._entries[path] = _Entry(
                kind="alias",
                value=_encode(dataclasses.replace(key, alias=alias)),
                revision=revision,
                api_id=key.api_id,
                key_id=key.key_id,
                alias=alias,
                rerolled_from=key.rerolled_from,
            )
            return self._stored(path, key.key_id, revision, created=True, alias=alias)

    def _alias_state(self, path: str, api_id: str, alias: str) -> AliasState | None:
        with self._lock:
            self._begin("alias_state")
            entry = self._entries.get(path)
            if entry is None:
                return None
            self._check_owned(entry, path, "alias")
            return AliasState(
                alias=alias,
                api_id=api_id,
                key_id=entry.key_id,
                revision=str(entry.revision),
                rerolled_from=entry.rerolled_from,
            )

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        with self._lock:
            self._begin("key_entry")
            entry = self._entries.get(path)
            if (
                entry is None
                or entry.kind != "key"
                or entry.key_id != key_id
                or entry.api_id != api_id
            ):
                return None
            return KeyEntry(
                api_id=api_id, key_id=key_id, alias=entry.alias, rerolled_from=entry.rerolled_from
            )

    def _get(self, path: str) -> StoredKey:
        return self._read("get", path)

    def _get_current(self, path: str) -> StoredKey:
        return self._read("get_current", path)

    def _read_rotation(self, path: str) -> RotationRecord | None:
        from ..rotation.record import parse_rotation_fields

        with self._lock:
            self._begin("read_rotation")
            entry = self._entries.get(path)
            if entry is None:
                return None
            value = entry.value
        try:
            data = json.loads(value)
        except (ValueError, RecursionError):
            data = None
        return parse_rotation_fields(data, store=self.name, location=path)

    def _write_rotation(self, record: RotationRecord, path: str) -> None:
        with self._lock:
            self._begin("write_rotation")
            entry = self._entries.get(path)
            if entry is not None:
                self._check_owned(entry, path, "rotation")
            stored = entry.revision if entry is not None else 0
            if stored != record.revision - 1:
                raise StoreConflictError(
                    f"rotation record {path} is at revision {stored}, not "
                    f"{record.revision - 1}: another run wrote it meanwhile",
                    store=self.name,
                    location=path,
                )
            self._entries[path] = _Entry(
                kind="rotation",
                value=json.dumps(record.fields(), separators=(",", ":"), sort_keys=True),
                revision=record.revision,
                api_id=record.api_id,
                key_id=record.from_key_id,
            )

    # -- helpers -----------------------------------------------------------------------------

    def _read(self, operation: str, path: str) -> StoredKey:
        with self._lock:
            self._begin(operation)
            entry = self._entries.get(path)
            if entry is None:
                raise SecretNotFoundError(
                    f"nothing is stored at {path}", store=self.name, location=path
                )
            value, revision = entry.value, entry.revision
        return parse_key_json(value, store=self.name, location=path, version=str(revision))

    def _check_owned(self, entry: _Entry, path: str, kind: _Kind) -> None:
        if entry.kind == "foreign":
            raise NotOwnedError(
                f"{path} exists and was not created by unkey-secrets; not overwriting it",
                store=self.name,
                location=path,
            )
        if entry.kind != kind:
            raise StoreConflictError(
                f"{path} holds an unkey-secrets {entry.kind}, not a {kind}",
                store=self.name,
                location=path,
            )

    def _stored(
        self, path: str, key_id: str, revision: int, *, created: bool, alias: str | None = None
    ) -> StoredLocation:
        return StoredLocation(
            store=self.name,
            location=path,
            key_id=key_id,
            version=str(revision),
            created=created,
            alias=alias,
        )


def _encode(key: IssuedKey) -> str:
    """The stored JSON string of ``key``; its repr is masked (the plaintext is inside)."""
    return MaskedText(json.dumps(key_fields(key), separators=(",", ":")))
