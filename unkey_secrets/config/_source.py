"""The pydantic-settings source every unkey-secrets store shares: fields marked UnkeyKey."""

from __future__ import annotations

import threading
import types
import typing
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AliasPath, BaseModel, SecretStr
from pydantic.dataclasses import is_pydantic_dataclass
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from .._errors import ConfigurationError
from .._models import StoredKey
from .._redact import guarded
from .._secret import Secret
from ._model import KeyInfo, UnkeyKey, UnkeySecretStr
from .errors import KeyNotFoundError, key_not_found

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from .reader import CachedKey, KeyReader

__all__ = ["UnkeyKeySource"]

_Kind = Literal["secret_str", "secret", "info"]


def _markers(field: FieldInfo) -> list[UnkeyKey]:
    return [item for item in field.metadata if isinstance(item, UnkeyKey)]


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


# -- the names pydantic validates a field from ------------------------------------------------
#
# Mirrored from pydantic's own rules with its public API (``convert_to_aliases``, the config
# keys), not from pydantic-settings' helpers: those are private, and within the pinned range
# (pydantic-settings 2.3 onwards) they moved module and changed signature more than once.

#: A place in the input pydantic validates: dict keys (str) and list indexes (int).
_Path = tuple[str | int, ...]


class _Missing:
    pass


_MISSING: Any = _Missing()


def _config_of(model: type[Any]) -> Mapping[str, Any]:
    """The pydantic config of a model class or pydantic dataclass."""
    config = getattr(model, "model_config", None)
    if config is None:
        config = getattr(model, "__pydantic_config__", None)
    return config or {}


def _fields_of(model: type[Any]) -> dict[str, FieldInfo]:
    if is_pydantic_dataclass(model):
        fields: dict[str, FieldInfo] = model.__pydantic_fields__
        return fields
    return dict(typing.cast("type[BaseModel]", model).model_fields)


def _by_alias_and_name(config: Mapping[str, Any]) -> tuple[bool, bool]:
    """Whether pydantic validates by alias and by field name, as it resolves its config.

    ``populate_by_name`` stands for ``validate_by_name`` when that is unset (pydantic < 2.11
    knows only the former), and ``validate_by_alias=False`` implies validation by name.
    """
    by_alias = config.get("validate_by_alias") is not False
    by_name = config.get("validate_by_name")
    if by_name is None:
        populate = config.get("populate_by_name")
        if populate is not None:
            return True, bool(populate)
        return by_alias, not by_alias
    return by_alias, bool(by_name)


def _lookup_paths(name: str, field: FieldInfo, config: Mapping[str, Any]) -> list[_Path]:
    """Where pydantic looks for ``field``'s input, in its order: the first one present wins.

    The aliases (``validation_alias``, else ``alias``: a str, an ``AliasPath`` or the choices of
    an ``AliasChoices``, alias generators' included) when validating by alias, then the field
    name when validating by name or when no alias applies.
    """
    by_alias, by_name = _by_alias_and_name(config)
    alias = field.validation_alias if field.validation_alias is not None else field.alias
    paths: list[_Path] = []
    if by_alias and alias is not None:
        if isinstance(alias, str):
            paths.append((alias,))
        elif isinstance(alias, AliasPath):
            paths.append(tuple(alias.convert_to_aliases()))
        else:
            paths.extend(tuple(path) for path in alias.convert_to_aliases())
    if by_name or not paths:
        paths.append((name,))
    return list(dict.fromkeys(paths))


def _resolve(data: Any, path: _Path) -> Any:
    """The value at ``path`` in ``data`` as pydantic finds it, or ``_MISSING``."""
    for step in path:
        if isinstance(step, str):
            if not isinstance(data, Mapping) or step not in data:
                return _MISSING
        elif not isinstance(data, (list, tuple)) or not -len(data) <= step < len(data):
            return _MISSING
        data = data[step]
    return data


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _model(annotation: Any) -> type[Any] | None:
    """The model a field nests (a BaseModel or pydantic dataclass, maybe Optional), or None."""
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            return None
        annotation = _strip(members[0])
    # get_origin first: Python 3.10 calls list[int] a type, and issubclass(list[int],
    # BaseModel) raises TypeError there (ABCMeta's check wants a class).
    if (
        typing.get_origin(annotation) is None
        and isinstance(annotation, type)
        and (issubclass(annotation, BaseModel) or is_pydantic_dataclass(annotation))
    ):
        return annotation
    return None


def _holds_marker(annotation: Any, seen: frozenset[type[Any]]) -> bool:
    """Whether an UnkeyKey marker sits anywhere inside ``annotation`` (its models' included)."""
    if typing.get_origin(annotation) is Annotated and any(
        isinstance(item, UnkeyKey) for item in annotation.__metadata__
    ):
        return True
    model = _model(annotation)
    if model is not None:
        if model in seen:
            return False
        inner = seen | {model}
        return any(
            _markers(field) or _holds_marker(field.annotation, inner)
            for field in _fields_of(model).values()
        )
    return any(_holds_marker(arg, seen) for arg in typing.get_args(annotation))


def _shown(path: _Path) -> str:
    return ".".join(str(step) for step in path)


class _Build:
    """The unkey-secrets sources built together for one settings class: their stores' names.

    pydantic-settings builds every source (``settings_customise_sources``) before it calls
    the first, so the sources built for a class on one thread, with no call in between, are
    one build's. A source knows of the others through it, which no source order hides.
    """

    __slots__ = ("called", "stores")

    def __init__(self) -> None:
        self.stores: list[str] = []
        self.called = False


class _Builds(threading.local):
    def __init__(self) -> None:
        self.by_class: weakref.WeakKeyDictionary[type[Any], _Build] = weakref.WeakKeyDictionary()


_builds = _Builds()


def _join_build(settings_cls: type[Any], store: str) -> _Build:
    """The build a source of ``store`` for ``settings_cls``, being made now, belongs to."""
    build = _builds.by_class.get(settings_cls)
    if build is None or build.called:
        build = _Build()
        _builds.by_class[settings_cls] = build
    build.stores.append(store)
    return build


@dataclass(frozen=True)
class _Slot:
    """One marked field this source fills: where its value goes, and what it holds."""

    label: str  # the field names from the settings class down, dotted: ``keys.billing``
    path: _Path  # where the value goes in the source's dict
    ref: UnkeyKey
    kind: _Kind


class UnkeyKeySource(PydanticBaseSettingsSource):
    """Fills the settings fields marked :class:`UnkeyKey` with the key a :class:`KeyReader` reads.

    A field typed ``SecretStr`` (or :class:`UnkeySecretStr`) gets an :class:`UnkeySecretStr`
    (a ``SecretStr`` with ``.info``), one typed :class:`~unkey_secrets.Secret` a ``Secret``
    (the model needs ``arbitrary_types_allowed=True``), one typed :class:`KeyInfo` the key's
    metadata alone. Any other type (``str`` first of all) raises
    :class:`~unkey_secrets.ConfigurationError` before any read. Every key the fields need is
    read in one batch (:meth:`KeyReader.warm`'s: one
    :meth:`~unkey_secrets.SecretStore.get_many` call for the keys not fresh in the reader's
    cache, a plain read for a single one), each as :meth:`CachedKey.get` gives it (a key
    cached before is served while the store fails, within ``max_stale``); fields naming the
    same key share its read. A field's error names that field (the first one, in declaration
    order, whose key failed).

    A field is named as pydantic validates it: by its ``validation_alias`` (a str, an
    ``AliasPath``, each choice of an ``AliasChoices``) or ``alias`` (an alias generator's
    included), and by its name under ``populate_by_name``/``validate_by_name`` or when it has
    no alias. A field any of whose names a source earlier in ``settings_customise_sources``'s
    order already gave (``init_settings``, the environment, a dotenv file: they apply
    ``env_prefix``, ``case_sensitive`` and ``env_nested_delimiter``) is not read. Otherwise its
    value goes under its first name, the one pydantic looks at first. Marked fields of nested
    models (a field typed a ``BaseModel`` or pydantic dataclass, or an Optional one) are filled
    the same way, inside the nested value the earlier sources started; a nested model given
    whole (a model instance) is left as given.

    Declarations no source can fill raise :class:`~unkey_secrets.ConfigurationError` naming the
    field, before any read: two markers on one field, a marked field whose first name runs
    through a list index (``AliasPath("keys", 0)``), two marked fields filled under the same
    name (or one inside the other), and markers inside a list, dict or union of models.

    A field whose marker names another store (``store="aws"`` for a Vault source) is left
    to that store's source; one whose marker names none is read by the first unkey-secrets
    source, and a key it does not find, in a class with sources of other stores too, raises a
    :class:`~unkey_secrets.config.KeyNotFoundError` saying to give the marker ``store=``.
    Errors: those of :meth:`CachedKey.get`.

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
        self._build = _join_build(settings_cls, reader.store.name)

    def __repr__(self) -> str:
        # Safe on a half-built source (its constructor's error rendered with frame locals).
        return f"{type(self).__name__}(reader={getattr(self, 'reader', None)!r})"

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: :meth:`__call__` fills the marked fields in one pass."""
        return None, field_name, False

    @guarded(fresh=True)
    def __call__(self) -> dict[str, Any]:
        """Return ``{first name: value}`` for every marked field of this store not yet given.

        A nested field's value sits in dicts under its model's names:
        ``{"keys": {"billing": value}}``, which pydantic-settings merges into the earlier
        sources' values.
        """
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

    def _named(self, error: BaseException, slot: _Slot) -> BaseException:
        """The error to raise for ``slot``: ``error``, or one saying to name the key's store.

        The latter for a key not found under a marker that names no store, in a class with
        unkey-secrets sources of other stores too (the first source read it, in its store).
        """
        build: _Build | None = getattr(self, "_build", None)
        others = sorted(set(build.stores if build else ()) - {self.reader.store.name})
        if not isinstance(error, KeyNotFoundError) or slot.ref.store is not None or not others:
            return error
        return key_not_found(
            slot.ref,
            store_name=error.store,
            store=self.reader.store,
            location=error.location,
            field=error.field,
            others=others,
            owner=self.settings_cls.__name__,
        )

    def _values(self) -> dict[str, Any]:
        build: _Build | None = getattr(self, "_build", None)
        if build is not None:  # None: a subclass that built itself without our __init__
            build.called = True
        slots: list[_Slot] = []
        cls = self.settings_cls
        self._plan(cls, _config_of(cls), self.current_state, (), "", frozenset({cls}), slots)
        self._check_apart(slots)
        reader = self.reader
        # Every key the class needs, in one batch (each as get() would give it); a key's error
        # names the first field that needs it, the first field that raises it below.
        firsts: dict[CachedKey, str] = {}
        for slot in slots:
            firsts.setdefault(reader.cached(slot.ref), slot.label)
        outcomes = reader._read_many(list(firsts.items()), "get")
        values: dict[str, Any] = {}
        for slot in slots:
            cached = reader.cached(slot.ref)
            stored = outcomes[cached]
            if not isinstance(stored, StoredKey):
                raise self._named(stored, slot)
            # The metadata of this very read: asking the cache again would read once more
            # (max_age=0), and could describe another key than the plaintext after a rotation.
            info = cached._info_for(stored)
            value: Any
            if slot.kind == "secret":
                value = stored.secret
            elif slot.kind == "info":
                value = info
            else:
                value = UnkeySecretStr(stored.secret.reveal(), info)
            _place(values, slot.path, value)
        return values

    def _plan(
        self,
        model: type[Any],
        config: Mapping[str, Any],
        given: Any,
        at: _Path,
        label: str,
        seen: frozenset[type[Any]],
        slots: list[_Slot],
    ) -> None:
        """Add a slot for every marked field of ``model`` (nested ones too) not yet given.

        ``given`` is what the earlier sources hold for ``model`` (``_MISSING``: nothing), ``at``
        where this model's input sits in the source's dict, ``label`` its dotted field names.
        """
        owner = self.settings_cls.__name__
        store = self.reader.store.name
        for name, field in _fields_of(model).items():
            where = f"{label}{name}"
            markers = _markers(field)
            if len(markers) > 1:
                raise ConfigurationError(
                    f"{owner}.{where} carries {len(markers)} UnkeyKey markers: a field holds "
                    "one key, so give it one"
                )
            paths = _lookup_paths(name, field, config)
            found = next((p for p in paths if _resolve(given, p) is not _MISSING), None)
            if markers:
                ref = markers[0]
                if ref.store not in (None, store):
                    continue
                kind = _kind(owner, where, field.annotation)
                if found is None:  # no earlier source named the field in any of its names
                    slots.append(_Slot(where, self._writable(where, at, paths[0]), ref, kind))
                continue
            nested = _model(field.annotation)
            if nested is None:
                if _holds_marker(field.annotation, seen):
                    raise ConfigurationError(
                        f"{owner}.{where} holds UnkeyKey fields inside a list, dict or union of "
                        "models, where no source can name them: move them to a field typed "
                        "one model (or an Optional one)"
                    )
                continue
            if nested in seen:  # a model that nests itself: its first level is filled
                continue
            inner = _MISSING if found is None else _resolve(given, found)
            if found is not None and not isinstance(inner, Mapping):
                continue  # given whole (a model instance): its fields are not ours to fill
            self._plan(
                nested,
                _config_of(nested),
                inner,
                at + (paths[0] if found is None else found),
                f"{where}.",
                seen | {nested},
                slots,
            )

    def _writable(self, where: str, at: _Path, path: _Path) -> _Path:
        """``at + path``, refused when a list index is on the way (a source fills names)."""
        full = at + path
        if any(isinstance(step, int) for step in full):
            raise ConfigurationError(
                f"{self.settings_cls.__name__}.{where} would be filled at {_shown(full)!r}, "
                "through a list index, which no source can fill alone: name it first by a str "
                "alias (AliasChoices('BILLING_KEY', AliasPath(...))) or an AliasPath of names"
            )
        return full

    def _check_apart(self, slots: list[_Slot]) -> None:
        """Refuse two marked fields whose values would land on the same name (or inside it)."""
        owner = self.settings_cls.__name__
        for index, first in enumerate(slots):
            for second in slots[index + 1 :]:
                short, long = sorted((first.path, second.path), key=len)
                if long[: len(short)] == short:
                    raise ConfigurationError(
                        f"{owner}.{first.label} and {owner}.{second.label} are both filled at "
                        f"{_shown(short)!r}: give each field a name of its own"
                    )


def _place(values: dict[str, Any], path: _Path, value: Any) -> None:
    """Put ``value`` at ``path`` (names only, kept apart by ``_check_apart``) in ``values``."""
    *outer, last = path
    for step in outer:
        values = values.setdefault(typing.cast(str, step), {})
    values[typing.cast(str, last)] = value
