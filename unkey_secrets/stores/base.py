"""The small abstract base every secret store implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from .._models import IssuedKey, StoredKey, StoredLocation
from .._redact import confined, guarded
from .._validate import PathTemplate

__all__ = ["DEFAULT_ALIAS_TEMPLATE", "DEFAULT_KEY_TEMPLATE", "SecretStore"]

#: Where a key is written: one location per key_id.
DEFAULT_KEY_TEMPLATE = "unkey/{api_id}/{key_id}"
#: Where the stable, reader-facing name lives. A key_id is ``[A-Za-z0-9_]`` only, so the
#: ``by-name`` segment can never collide with a key's own location.
DEFAULT_ALIAS_TEMPLATE = "unkey/{api_id}/by-name/{name}"
# Today's key_ids are "key_" + 9 characters, older ones up to about 26.
_STAND_IN_KEY_ID = "key_" + "x" * 28


class SecretStore(ABC):
    """A place to keep Unkey keys, one location per key_id.

    Public methods validate their input, render locations from the templates and then call the
    backend's ``_``-prefixed hook, so a backend only speaks to its own API. They also keep the
    plaintext confined (:mod:`unkey_secrets._redact`): log records made during a write have it
    masked, and an error leaving them carries no frame locals. Every write is
    create-only and idempotent: writing the same key_id again is a no-op (``created=False``),
    writing over anything we did not create raises :class:`~unkey_secrets.NotOwnedError`.
    """

    #: The entry-point name of the backend (``"vault"``, ``"aws"``).
    name: ClassVar[str]

    def __init__(
        self,
        *,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        alias_template: str = DEFAULT_ALIAS_TEMPLATE,
    ) -> None:
        self.key_template = PathTemplate(key_template, required=frozenset({"key_id"}))
        self.alias_template = PathTemplate(alias_template, required=frozenset({"name"}))

    def key_location(self, *, api_id: str, key_id: str) -> str:
        """Return the path or secret name a key is written to (validated, no I/O)."""
        return self.key_template.render({"api_id": api_id, "key_id": key_id})

    def alias_location(self, *, api_id: str, name: str) -> str:
        """Return the path or secret name of a stable reader-facing name (validated, no I/O)."""
        return self.alias_template.render({"api_id": api_id, "name": name})

    def check_writable(self, *, api_id: str, alias: str | None = None) -> None:
        """Raise before any I/O if a key of ``api_id`` (and ``alias``) could not be written here.

        The flows call it before asking Unkey for a key, so a bad api_id, alias, template or
        store configuration costs nothing in Unkey. A key_id of a typical length stands in for
        the one Unkey will choose; the flows still undo Unkey's side if the real one fails.
        """
        self.key_location(api_id=api_id, key_id=_STAND_IN_KEY_ID)
        if alias is not None:
            self.alias_location(api_id=api_id, name=alias)
        self._check_writable()

    @guarded
    def contains(self, *, api_id: str, key_id: str) -> bool:
        """Return True when this store holds ``key_id`` at its location.

        Decided from metadata and tags, never by reading the value, so a writer whose policy
        has no read permission may call it. The flows use it to never delete a stored key.
        """
        return self._contains(self.key_location(api_id=api_id, key_id=key_id))

    @guarded
    def put(self, key: IssuedKey) -> StoredLocation:
        """Write ``key`` at its own location, create-only; repeating it is a no-op."""
        path = self.key_location(api_id=key.api_id, key_id=key.key_id)
        with confined(key.secret):
            return self._put(key, path)

    @guarded
    def set_current(self, key: IssuedKey, *, name: str) -> StoredLocation:
        """Make ``key`` the current key behind the stable ``name`` that readers use."""
        path = self.alias_location(api_id=key.api_id, name=name)
        with confined(key.secret):
            return self._set_current(key, path, name)

    @guarded
    def get(self, *, api_id: str, key_id: str) -> StoredKey:
        """Read the key stored for ``key_id`` (a reader's call; the writer never needs it)."""
        return self._get(self.key_location(api_id=api_id, key_id=key_id))

    @guarded
    def get_current(self, *, api_id: str, name: str) -> StoredKey:
        """Read the current key behind the stable ``name``."""
        return self._get_current(self.alias_location(api_id=api_id, name=name))

    @abstractmethod
    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        """Create ``path`` holding ``key``; no-op if it already holds this key_id."""

    @abstractmethod
    def _set_current(self, key: IssuedKey, path: str, name: str) -> StoredLocation:
        """Point the alias at ``path`` at ``key``, creating it if needed."""

    @abstractmethod
    def _get(self, path: str) -> StoredKey:
        """Read the key stored at ``path``."""

    @abstractmethod
    def _get_current(self, path: str) -> StoredKey:
        """Read the current key behind the alias at ``path``."""

    @abstractmethod
    def _contains(self, path: str) -> bool:
        """Whether ``path`` holds a key we stored, decided without reading the value."""

    def _check_writable(self) -> None:  # noqa: B027 (a hook: by default a store can write)
        """Raise :class:`~unkey_secrets.ConfigurationError` if this store cannot write at all."""
