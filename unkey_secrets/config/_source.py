"""The pydantic-settings source every unkey-secrets store shares: fields marked UnkeyKey."""

from __future__ import annotations

import types
import typing
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from .._errors import ConfigurationError
from .._redact import guarded
from .._secret import Secret
from ._model import KeyInfo, UnkeyKey, UnkeySecretStr

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from .reader import KeyReader

__all__ = ["UnkeyKeySource"]

_Kind = Literal["secret_str", "secret", "info"]


def _marker(field: FieldInfo) -> UnkeyKey | None:
    for item in field.metadata:
        if isinstance(item, UnkeyKey):
            return item
    return None


def _kind(owner: str, name: str, annotation: Any) -> _Kind:
    """What a marked field holds, from its type; anything that is not secret-safe is refused."""
    candidates = [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        candidates = [a for a in typing.get_args(annotation) if a is not type(None)]
    if len(candidates) == 1 and isinstance(candidates[0], type):
        kind = candidates[0]
        if issubclass(kind, SecretStr) and kind in (SecretStr, UnkeySecretStr):
            return "secret_str"
        if issubclass(kind, Secret):
            return "secret"
        if issubclass(kind, KeyInfo):
            return "info"
    shown = getattr(annotation, "__name__", None) or repr(annotation)
    raise ConfigurationError(
        f"{owner}.{name} is marked UnkeyKey but typed {shown}: type it SecretStr (or "
        "UnkeySecretStr, or unkey_secrets.Secret), so the key never sits in a plain str, or "
        "KeyInfo for the key's metadata alone"
    )


def _key(name: str, field: FieldInfo) -> str:
    """The name pydantic-settings expects a source's value under: the field's alias if any."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias
    return field.alias or name


class UnkeyKeySource(PydanticBaseSettingsSource):
    """Fills the settings fields marked :class:`UnkeyKey` with the key a :class:`KeyReader` reads.

    A field typed ``SecretStr`` (or :class:`UnkeySecretStr`) gets an :class:`UnkeySecretStr`
    (a ``SecretStr`` with ``.info``), one typed :class:`~unkey_secrets.Secret` a ``Secret``
    (the model needs ``arbitrary_types_allowed=True``), one typed :class:`KeyInfo` the key's
    metadata alone. Any other type (``str`` first of all) raises
    :class:`~unkey_secrets.ConfigurationError` before any read. A field a source earlier in
    ``settings_customise_sources``'s order already filled (say ``init_settings`` in a test) is
    not read. Fields naming the same alias share a read (the reader's cache, while fresh).

    A field whose marker names another store (``store="aws"`` for a Vault source) is left
    to that store's source. Errors: those of :meth:`CachedKey.get`.

    Building a source and calling it are boundaries: an error leaves as a fresh one (no cause,
    no context, no frame below it keeping its locals; see :func:`unkey_secrets._redact.guarded`),
    and a failing call first empties what pydantic-settings shares with it (the values the
    sources before it read, the environment's included), so the pydantic-settings frames the
    error unwinds through show none of them.
    """

    #: The ``UnkeyKey.store`` this source fills; None: whatever the reader's store is named.
    store_name: ClassVar[str | None] = None

    @guarded(fresh=True)
    def __init__(self, settings_cls: type[BaseSettings], reader: KeyReader) -> None:
        super().__init__(settings_cls)
        expected = type(self).store_name
        if expected is not None and reader.store.name != expected:
            raise ConfigurationError(
                f"{type(self).__name__} needs a reader of the {expected} store, not of "
                f"{reader.store.name}"
            )
        self.reader = reader

    def __repr__(self) -> str:
        # Safe on a half-built source (its constructor's error rendered with frame locals).
        return f"{type(self).__name__}(reader={getattr(self, 'reader', None)!r})"

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` fills the marked fields in one pass."""
        return None, field_name, False

    @guarded(fresh=True)
    def __call__(self) -> dict[str, Any]:
        """Return ``{field (or its alias): value}`` for every marked field of this store."""
        try:
            return self._values()
        except BaseException:
            self._forget_shared_state()
            raise

    def _forget_shared_state(self) -> None:
        """Empty the dicts pydantic-settings shares with this source (its build is over).

        ``current_state`` is the very dict pydantic-settings merges every source's values
        into, and ``settings_sources_data`` holds each earlier source's own dict: its frames
        keep them as locals while this source's error unwinds through them.
        """
        shared = getattr(self, "settings_sources_data", None)
        for values in [getattr(self, "current_state", None), *(shared or {}).values(), shared]:
            if isinstance(values, dict):
                values.clear()

    def _values(self) -> dict[str, Any]:
        owner = self.settings_cls.__name__
        store = self.reader.store.name
        plan: list[tuple[str, str, UnkeyKey, _Kind]] = []
        for name, field in self.settings_cls.model_fields.items():
            ref = _marker(field)
            if ref is None or ref.store not in (None, store):
                continue
            plan.append((name, _key(name, field), ref, _kind(owner, name, field.annotation)))
        state = self.current_state
        values: dict[str, Any] = {}
        for name, key, ref, kind in plan:
            if key in state or name in state:
                continue
            cached = self.reader.cached(ref)
            stored = cached.get(field=name)
            if kind == "secret":
                values[key] = stored.secret
            elif kind == "info":
                values[key] = cached.info()
            else:
                values[key] = UnkeySecretStr(stored.secret.reveal(), cached.info())
        return values
