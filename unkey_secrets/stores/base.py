"""The small abstract base every secret store implements."""

from __future__ import annotations

import contextvars
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from .._errors import ConfigurationError, InvalidInputError, StoredValueError, StoreError
from .._models import AliasState, IssuedKey, KeyEntry, KeyRef, StoredKey, StoredLocation
from .._redact import confined, guarded
from .._validate import PathTemplate, validate_alias, validate_api_id, validate_key_id
from ..telemetry.tracing import store_call

if TYPE_CHECKING:
    from ..rotation.record import RotationRecord

__all__ = [
    "DEFAULT_ALIAS_TEMPLATE",
    "DEFAULT_KEY_TEMPLATE",
    "DEFAULT_READ_CONCURRENCY",
    "DEFAULT_ROTATION_TEMPLATE",
    "UNCHECKED",
    "SecretStore",
]

#: Where a key is written: one location per key_id.
DEFAULT_KEY_TEMPLATE = "unkey/{api_id}/{key_id}"
#: Where the stable, reader-facing alias lives. A key_id is ``[A-Za-z0-9_]`` only, so the
#: ``by-name`` segment can never collide with a key's own location.
DEFAULT_ALIAS_TEMPLATE = "unkey/{api_id}/by-name/{alias}"
#: Where the record of a rotation of ``key_id`` (the original) lives; it holds no plaintext.
#: An api_id has no ``-``, so ``rotated-from`` is never an API's folder; being the second
#: segment, it can be granted read on its own (``unkey/rotated-from/*``) in a Vault policy.
DEFAULT_ROTATION_TEMPLATE = "unkey/rotated-from/{api_id}/{key_id}"
#: Reads :meth:`SecretStore.get_many` runs at once by default (within a client's default pool).
DEFAULT_READ_CONCURRENCY = 8
# Today's key_ids are "key_" + 9 characters, older ones up to about 26.
_STAND_IN_KEY_ID = "key_" + "x" * 28
# An alias of a typical length, standing in for the one a caller will name.
_STAND_IN_ALIAS = "alias-stand-in"


class _Unchecked:
    def __repr__(self) -> str:
        return "UNCHECKED"


#: ``set_current(..., expected=UNCHECKED)``: move the alias whatever it names now.
UNCHECKED = _Unchecked()


class SecretStore(ABC):
    """A place to keep Unkey keys, one location per key_id, plus aliases and rotation records.

    Public methods validate their input, render locations from the templates and then call the
    backend's ``_``-prefixed hook, so a backend only speaks to its own API. They also keep the
    plaintext confined (:mod:`unkey_secrets._redact`): log records made during a write have it
    masked, and an error leaving them carries no frame locals. Each call of a hook is a span
    when tracing is on, and :meth:`put` and :meth:`set_current` emit the audit events
    ``key.stored`` and ``alias.moved`` (:mod:`unkey_secrets.telemetry`). Every write is
    create-only and idempotent: writing the same key_id again is a no-op (``created=False``),
    writing over anything we did not create raises :class:`~unkey_secrets.NotOwnedError`.

    An alias holds the same JSON as the key's own location (one read gives a reader its key);
    a rotation record (:mod:`unkey_secrets.rotation.record`) holds no plaintext. A backend
    that keeps no rotation records inherits hooks that raise
    :class:`~unkey_secrets.ConfigurationError`, so :func:`~unkey_secrets.rotate` refuses it
    before calling Unkey.
    """

    #: The entry-point name of the backend (``"vault"``, ``"aws"``).
    name: ClassVar[str]

    def __init__(
        self,
        *,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        alias_template: str = DEFAULT_ALIAS_TEMPLATE,
        rotation_template: str = DEFAULT_ROTATION_TEMPLATE,
    ) -> None:
        self.key_template = PathTemplate(key_template, required=frozenset({"key_id"}))
        self.alias_template = PathTemplate(alias_template, required=frozenset({"alias"}))
        self.rotation_template = PathTemplate(rotation_template, required=frozenset({"key_id"}))

    def key_location(self, *, api_id: str, key_id: str) -> str:
        """Return the path or secret name a key is written to (validated, no I/O)."""
        return self.key_template.render({"api_id": api_id, "key_id": key_id})

    def alias_location(self, *, api_id: str, alias: str) -> str:
        """Return the path or secret name of an alias (validated, no I/O)."""
        return self.alias_template.render({"api_id": api_id, "alias": alias})

    def rotation_location(self, *, api_id: str, key_id: str) -> str:
        """Return where the record of a rotation of ``key_id`` is kept (validated, no I/O)."""
        return self.rotation_template.render({"api_id": api_id, "key_id": key_id})

    def describe_location(
        self, *, api_id: str, key_id: str, alias: str | None = None
    ) -> StoredLocation:
        """A :class:`StoredLocation` for a key stored earlier, without I/O (version unknown).

        With ``alias``, the location of that alias (naming ``key_id``) instead of the key's.
        ``location`` reads as the store's own results and errors name it (Vault's
        ``mount/path``, :meth:`_describe_path`): use it, not :meth:`key_location` or
        :meth:`alias_location` (the paths the hooks are given), wherever a location is shown.
        """
        if alias is None:
            path = self.key_location(api_id=api_id, key_id=key_id)
        else:
            path = self.alias_location(api_id=api_id, alias=alias)
        return StoredLocation(
            store=self.name,
            location=self._describe_path(path),
            key_id=key_id,
            version="",
            created=False,
            alias=alias,
        )

    def check_writable(self, *, api_id: str, alias: str | None = None) -> None:
        """Raise before any I/O if a key of ``api_id`` (and ``alias``) could not be written here.

        The flows call it before asking Unkey for a key, so a bad api_id, alias, template or
        store configuration costs nothing in Unkey. A key_id of a typical length stands in for
        the one Unkey will choose; the flows still undo Unkey's side if the real one fails.
        Each rendered location (the key's, the rotation record's, the alias's) also passes the
        backend's own name rules (:meth:`_check_location`).
        """
        self._check_location(self.key_location(api_id=api_id, key_id=_STAND_IN_KEY_ID))
        self._check_location(self.rotation_location(api_id=api_id, key_id=_STAND_IN_KEY_ID))
        if alias is not None:
            self._check_location(self.alias_location(api_id=api_id, alias=alias))
        self._check_writable()

    @guarded
    def contains(self, *, api_id: str, key_id: str) -> bool:
        """Return True when this store holds ``key_id`` at its location.

        Decided from metadata and tags, never by reading the value, so a writer whose policy
        has no read permission may call it. The flows use it to never delete a stored key.
        """
        return self.key_entry(api_id=api_id, key_id=key_id) is not None

    @guarded
    def key_entry(self, *, api_id: str, key_id: str) -> KeyEntry | None:
        """What the store's metadata says about ``key_id``'s entry; None if it holds no such key.

        Read without the value (Vault custom_metadata, Secrets Manager tags).
        """
        validate_api_id(api_id)
        validate_key_id(key_id)
        path = self.key_location(api_id=api_id, key_id=key_id)
        with store_call(self.name, "key_entry", api_id=api_id, key_id=key_id, location=path):
            return self._key_entry(path, api_id, key_id)

    @guarded
    def put(self, key: IssuedKey) -> StoredLocation:
        """Write ``key`` at its own location, create-only; repeating it is a no-op."""
        path = self.key_location(api_id=key.api_id, key_id=key.key_id)
        with store_call(
            self.name, "put", "key.stored", api_id=key.api_id, key_id=key.key_id, location=path
        ) as call:
            with confined(key.secret):
                stored = self._put(key, path)
            call.set(location=stored.location, version=stored.version, created=stored.created)
        return stored

    @guarded
    def set_current(
        self,
        key: IssuedKey,
        *,
        alias: str,
        expected: AliasState | _Unchecked | None = UNCHECKED,
    ) -> StoredLocation:
        """Make ``key`` the key behind ``alias``: the alias then holds a copy of its value.

        ``expected`` makes the move conditional: an :class:`AliasState` read earlier (the move
        fails with :class:`~unkey_secrets.StoreConflictError` if the alias changed since), or
        None (the alias must not exist yet). ``key`` must have been :meth:`put` first.
        """
        validate_alias(alias)
        path = self.alias_location(api_id=key.api_id, alias=alias)
        with store_call(
            self.name,
            "set_current",
            "alias.moved",
            api_id=key.api_id,
            key_id=key.key_id,
            alias=alias,
            location=path,
        ) as call:
            with confined(key.secret):
                moved = self._set_current(key, path, alias, expected)
            call.set(location=moved.location, version=moved.version, created=moved.created)
        return moved

    @guarded
    def prepare_move(self, key: IssuedKey, *, alias: str, expected: AliasState) -> None:
        """Do, before ``key`` is stored, what a move of ``alias`` to it can do before it is.

        Nothing a reader sees changes, and nothing is named that a later move would trust
        before it is made: Vault writes the alias's metadata saying which key its next version
        will hold, Secrets Manager adds the alias's next version under a label of its own. A
        :meth:`set_current` of the same key from the same ``expected`` state, through this
        store object, then makes only the move itself. A store with nothing to prepare does
        nothing here (the default). The flows call it at the same time as :meth:`put` of the
        key; a failure here is no failure of the move, which then does it all.
        """
        validate_alias(alias)
        path = self.alias_location(api_id=key.api_id, alias=alias)
        with (
            store_call(
                self.name,
                "prepare_move",
                api_id=key.api_id,
                key_id=key.key_id,
                alias=alias,
                location=path,
            ),
            confined(key.secret),
        ):
            self._prepare_move(key, path, alias, expected)

    @guarded
    def alias_state(self, *, api_id: str, alias: str) -> AliasState | None:
        """Which key ``alias`` names now (None if the alias does not exist).

        The result's ``revision`` is what a conditional :meth:`set_current` names. Vault
        answers from the alias's metadata; Secrets Manager reads the alias's current value
        (GetSecretValue on the alias), as it keeps no metadata of its own.
        """
        validate_api_id(api_id)
        validate_alias(alias)
        path = self.alias_location(api_id=api_id, alias=alias)
        observed = store_call(self.name, "alias_state", api_id=api_id, alias=alias, location=path)
        with observed as call:
            state = self._alias_state(path, api_id, alias)
            if state is not None:
                call.set(key_id=state.key_id)
        return state

    @guarded
    def alias_exists(self, *, api_id: str, alias: str) -> bool:
        """Whether ``alias`` names a key, decided without reading any value."""
        validate_api_id(api_id)
        validate_alias(alias)
        path = self.alias_location(api_id=api_id, alias=alias)
        with store_call(self.name, "alias_exists", api_id=api_id, alias=alias, location=path):
            return self._alias_exists(path, api_id, alias)

    @guarded
    def get(self, *, api_id: str, key_id: str) -> StoredKey:
        """Read the key stored for ``key_id`` (a reader's call; the writer never needs it).

        A value that names another key_id or api_id than the ones asked for raises
        :class:`~unkey_secrets.StoredValueError`: a reader never gets another key than its own.
        """
        path = self.key_location(api_id=api_id, key_id=key_id)
        with store_call(self.name, "get", api_id=api_id, key_id=key_id, location=path):
            stored = self._get(path)
        return self._check_read(KeyRef(api_id=api_id, key_id=key_id), path, stored)

    @guarded
    def get_current(self, *, api_id: str, alias: str) -> StoredKey:
        """Read the key behind ``alias`` (one read of the alias).

        The value must be a key of ``api_id`` stored for this alias (its ``alias`` member, when
        it has one, names it); otherwise :class:`~unkey_secrets.StoredValueError`.
        """
        path = self.alias_location(api_id=api_id, alias=alias)
        observed = store_call(self.name, "get_current", api_id=api_id, alias=alias, location=path)
        with observed as call:
            stored = self._get_current(path)
            call.set(key_id=stored.key_id, version=stored.version)
        return self._check_read(KeyRef(api_id=api_id, alias=alias), path, stored)

    @guarded
    def get_many(
        self, refs: Sequence[KeyRef], *, concurrency: int = DEFAULT_READ_CONCURRENCY
    ) -> list[StoredKey | StoreError]:
        """Read several keys at once; one failing read fails no other.

        Returns, for each :class:`~unkey_secrets.KeyRef` in order, its
        :class:`~unkey_secrets.StoredKey` or the :class:`~unkey_secrets.StoreError` its read
        raised (a key not found, a refusal, a bad value).

        Each ref is read as :meth:`get_current` (``alias``) or :meth:`get` (``key_id``) reads
        it, with the same checks (:meth:`_check_read`). Every ref is validated before anything is
        read: a bad id, alias, or a ref with none or both of ``alias`` and ``key_id``, or a
        location the backend could not hold (:meth:`_check_location`: a Secrets Manager name
        ending like an ARN suffix, say) raises :class:`~unkey_secrets.InvalidInputError` for
        the whole call; an empty ``refs`` reads nothing and returns ``[]``. By default at most
        ``concurrency`` reads run at once (fewer if the backend's connection pool is smaller:
        :meth:`_max_parallel_reads`), on worker threads; a backend with a batch read, such as
        Secrets Manager's ``BatchGetSecretValue``, overrides :meth:`_get_many`.
        """
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidInputError("concurrency", "expected a whole number, 1 or more")
        checked: list[KeyRef] = []
        for ref in refs:
            if not isinstance(ref, KeyRef):
                raise InvalidInputError("refs", "expected KeyRef items")
            validate_api_id(ref.api_id)
            if (ref.alias is None) == (ref.key_id is None):
                raise InvalidInputError("refs", "give exactly one of alias= or key_id= per KeyRef")
            if ref.alias is not None:
                validate_alias(ref.alias)
            else:
                assert ref.key_id is not None
                validate_key_id(ref.key_id)
            self._check_location(self._ref_location(ref))
            checked.append(ref)
        if not checked:
            return []
        return self._get_many(checked, concurrency)

    def _ref_location(self, ref: KeyRef) -> str:
        """The path or secret name :meth:`get_many` reads for ``ref`` (validated, no I/O)."""
        if ref.alias is not None:
            return self.alias_location(api_id=ref.api_id, alias=ref.alias)
        if ref.key_id is None:
            raise InvalidInputError("refs", "give exactly one of alias= or key_id= per KeyRef")
        return self.key_location(api_id=ref.api_id, key_id=ref.key_id)

    def _read_one(self, ref: KeyRef) -> StoredKey | StoreError:
        """``ref`` read alone (:meth:`get_current` or :meth:`get`): its key, or the error raised."""
        try:
            if ref.alias is not None:
                return self.get_current(api_id=ref.api_id, alias=ref.alias)
            assert ref.key_id is not None
            return self.get(api_id=ref.api_id, key_id=ref.key_id)
        except StoreError as exc:
            return exc

    def _get_many(self, refs: list[KeyRef], concurrency: int) -> list[StoredKey | StoreError]:
        """Read ``refs`` (validated) at most ``concurrency`` at a time; each result in order.

        Each ref is read alone (:meth:`_read_one`), on worker threads when there are several.
        """
        workers = min(concurrency, len(refs), self._max_parallel_reads() or concurrency)
        if workers <= 1:
            return [self._read_one(ref) for ref in refs]
        # Each read runs in a copy of the caller's context: its deadline and current span.
        # Imported here: the rotation Lambda imports this module and never reads in batches.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, self._read_one, ref) for ref in refs
            ]
            return [future.result() for future in futures]

    def _max_parallel_reads(self) -> int | None:
        """The most reads :meth:`_get_many` runs at once whatever it is asked (None: no cap).

        A backend whose client keeps a bounded connection pool answers its size, so a
        ``concurrency`` above it never opens connections the pool would discard.
        """
        return None

    def _check_read(self, ref: KeyRef, path: str, stored: StoredKey) -> StoredKey:
        """``stored``, read at ``path`` for ``ref``, if it is the key ``ref`` asks for.

        By key_id: the value must name that key_id and api_id. By alias: a key of that api_id
        stored for this alias (its ``alias`` member, when it has one, names it). Otherwise
        :class:`~unkey_secrets.StoredValueError`: a reader never gets another key than its
        own. :meth:`get`, :meth:`get_current` and every batch read apply it alike.
        """
        if ref.alias is None:
            if stored.key_id == ref.key_id and stored.api_id == ref.api_id:
                return stored
            raise StoredValueError(
                f"value at {path} holds key {stored.key_id} of API {stored.api_id}, not key "
                f"{ref.key_id} of API {ref.api_id}",
                store=self.name,
                location=path,
            )
        if stored.api_id != ref.api_id:
            problem = f"a key of API {stored.api_id}, not of API {ref.api_id}"
        elif stored.alias not in (None, ref.alias):
            problem = f"key {stored.key_id} stored for alias {stored.alias}, not {ref.alias}"
        else:
            return stored
        raise StoredValueError(f"alias at {path} holds {problem}", store=self.name, location=path)

    @guarded
    def read_rotation(self, *, api_id: str, key_id: str) -> RotationRecord | None:
        """The record of the rotation of ``key_id``, or None if it was never rotated here."""
        path = self.rotation_location(api_id=api_id, key_id=key_id)
        with store_call(self.name, "read_rotation", api_id=api_id, key_id=key_id, location=path):
            return self._read_rotation(path)

    @guarded
    def write_rotation(self, record: RotationRecord) -> None:
        """Write revision ``record.revision`` of a rotation record, replacing the one before it.

        Revision 1 is created only if there is no record; revision ``n`` only if the stored
        one is ``n - 1``. Otherwise :class:`~unkey_secrets.StoreConflictError`: another run
        wrote first.
        """
        path = self.rotation_location(api_id=record.api_id, key_id=record.from_key_id)
        with store_call(
            self.name,
            "write_rotation",
            api_id=record.api_id,
            key_id=record.from_key_id,
            location=path,
            revision=record.revision,
        ):
            self._write_rotation(record, path)

    @abstractmethod
    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        """Create ``path`` holding ``key``; no-op if it already holds this key_id."""

    @abstractmethod
    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | _Unchecked | None
    ) -> StoredLocation:
        """Point the alias at ``path`` at ``key``, creating it if needed."""

    @abstractmethod
    def _get(self, path: str) -> StoredKey:
        """Read the key stored at ``path``."""

    @abstractmethod
    def _get_current(self, path: str) -> StoredKey:
        """Read the current key behind the alias at ``path``."""

    @abstractmethod
    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        """What ``path``'s metadata says about the key we stored there; None if it is not ours."""

    def _alias_exists(self, path: str, api_id: str, alias: str) -> bool:
        return self._alias_state(path, api_id, alias) is not None

    def _prepare_move(  # noqa: B027 (a hook: by default a move has nothing to prepare)
        self, key: IssuedKey, path: str, alias: str, expected: AliasState
    ) -> None:
        """Prepare a move of the alias at ``path`` to ``key`` (see :meth:`prepare_move`)."""

    def _alias_state(self, path: str, api_id: str, alias: str) -> AliasState | None:
        raise ConfigurationError(f"the {self.name} store keeps no alias state; it cannot rotate")

    def _read_rotation(self, path: str) -> RotationRecord | None:
        raise ConfigurationError(f"the {self.name} store keeps no rotation records")

    def _write_rotation(self, record: RotationRecord, path: str) -> None:
        raise ConfigurationError(f"the {self.name} store keeps no rotation records")

    def _check_writable(self) -> None:  # noqa: B027 (a hook: by default a store can write)
        """Raise :class:`~unkey_secrets.ConfigurationError` if this store cannot write at all."""

    def _describe_path(self, path: str) -> str:
        """How this store's results and errors name the rendered ``path``: ``path`` itself.

        A backend whose :class:`StoredLocation` names a location otherwise (Vault adds its KV
        mount) says so here, so :meth:`describe_location` names it the same way.
        """
        return path

    def _check_location(self, location: str) -> None:  # noqa: B027 (a hook: no rule by default)
        """Raise :class:`~unkey_secrets.InvalidInputError` if ``location`` breaks a backend rule.

        A backend's own name rules, beyond the templates' (a Secrets Manager name that ends
        like the random ``-xxxxxx`` suffix AWS adds, say).

        :meth:`check_writable` calls it on every location a flow will write, before Unkey is
        called; the templates' rules are checked already.
        """
