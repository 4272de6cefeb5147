"""One precedence chain for every component's settings: explicit argument > environment > default.

:func:`load_settings` builds any of our pydantic-settings classes (``UnkeySettings``,
``VaultSettings``, ``AwsSettings``, or a plugin's own) and is the one place where pydantic's
errors become :class:`~unkey_secrets.ConfigurationError`. pydantic is imported on first use,
so importing this module costs nothing at start-up.

:func:`setting_names` lets a caller that takes settings under names of its own (the CLI's
flags) have errors name them so: :func:`load_settings`' messages, and the stores' own checks
through :func:`setting_given` and :func:`setting_to_give`.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ._errors import ConfigurationError
from ._redact import guarded

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

__all__ = ["load_settings", "setting_given", "setting_names", "setting_to_give"]

_S = TypeVar("_S", bound="BaseSettings")

#: Inputs shorter than this are not masked in a message: they cannot be a credential, and
#: replacing them would cut words ("1" in "must be 1 or 2").
_MASK_FROM = 4


class _Names:
    """How the caller names settings: ``flags`` (field -> name), ``given`` (fields it set)."""

    __slots__ = ("flags", "given")

    def __init__(self, flags: Mapping[str, str], given: frozenset[str]) -> None:
        self.flags = MappingProxyType(dict(flags))
        self.given = given


_NAMES: contextvars.ContextVar[_Names | None] = contextvars.ContextVar(
    "unkey_secrets_setting_names", default=None
)


@contextlib.contextmanager
def setting_names(flags: Mapping[str, str], given: Iterable[str] = ()) -> Iterator[None]:
    """Within the block, errors name settings as the caller's user sets them (CLI flags).

    ``flags`` maps a settings field to its name there (``{"duration_seconds":
    "--duration-seconds"}``), ``given`` lists the fields whose value the caller gave that way.
    An error about a given field's value names it so (:func:`setting_given`, and
    :func:`load_settings`' messages); one asking to set a field names it so whether given or
    not (:func:`setting_to_give`). Outside any block, the field names are used.
    """
    token = _NAMES.set(_Names(flags, frozenset(given) & frozenset(flags)))
    try:
        yield
    finally:
        _NAMES.reset(token)


def _given_as(field: str) -> str | None:
    """The caller's name for setting ``field`` if the caller gave its value, else None."""
    names = _NAMES.get()
    return names.flags[field] if names is not None and field in names.given else None


def setting_given(field: str, default: str | None = None) -> str:
    """How an error about the value of setting ``field`` names it.

    The caller's name for it (a CLI flag) when the caller gave that value, else ``default``
    (else ``field``).
    """
    return _given_as(field) or default or field


def setting_to_give(field: str, default: str | None = None) -> str:
    """How an error asking to set setting ``field`` names it.

    The caller's name for it (a CLI flag) when it has one, given or not, else ``default``
    (else ``field``).
    """
    names = _NAMES.get()
    if names is not None and field in names.flags:
        return names.flags[field]
    return default or field


@guarded(fresh=True)
def load_settings(cls: type[_S], /, **overrides: Any) -> _S:
    """Build ``cls`` from ``overrides`` (by field name), then the environment, then defaults.

    ``cls`` is a :class:`pydantic_settings.BaseSettings` subclass. An override whose value is
    None counts as not given, so optional arguments can be passed straight through; every
    other override wins over the environment variable of the same field.

    Raises :class:`~unkey_secrets.ConfigurationError` when an override names no field of
    ``cls``, or when a value, from the environment or an override alike, is invalid: the
    message names ``cls``, each field with the environment variables it reads (or, for a value
    given under :func:`setting_names`, the name it was given by: a CLI flag) and the problem,
    never the value, and pydantic's error (which holds the input) is not chained.
    Any other error (a settings source's own) leaves as a fresh one, and no frame below this
    call, pydantic-settings' own included, keeps its locals (the environment's values).
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    given = {name: value for name, value in overrides.items() if value is not None}
    unknown = sorted(set(given) - set(cls.model_fields))
    if unknown:
        raise ConfigurationError(f"{cls.__name__} has no setting {', '.join(unknown)}")
    failure: ConfigurationError
    try:
        return cls(**given)
    except ValidationError as exc:
        problems = dict.fromkeys(_problem(cls, error) for error in exc.errors(include_url=False))
        failure = ConfigurationError(f"invalid {cls.__name__}: {'; '.join(problems)}")
    except SettingsError as exc:
        # A value that is not JSON where JSON is expected (a dict or list field, from the
        # environment); the text names the field, its cause holds the value.
        match = re.search(r'field "([^"]+)"', str(exc))
        field = match.group(1) if match and match.group(1) in cls.model_fields else None
        what = _field_label(cls, field) if field else "a setting"
        failure = ConfigurationError(f"invalid {cls.__name__}: {what}: not valid JSON")
    # Raised outside the handler (and marked so): pydantic's error, and the input it holds, is
    # neither the cause nor the context.
    raise failure from None


def _problem(cls: type[BaseSettings], error: Mapping[str, Any]) -> str:
    """``field (VARIABLE): problem`` for one of pydantic's errors, with the input masked."""
    loc = error.get("loc") or ()
    # Only the first part: a later one may be a key of the input itself (a dict field).
    field = _field_of(cls, str(loc[0])) if loc else None
    message = str(error.get("msg", "invalid"))
    value = error.get("input")
    # Our own validators word their errors without the value; this catches one that does not.
    if isinstance(value, str) and len(value) >= _MASK_FROM:
        message = message.replace(value, "<value>")
    named = _given_as(field) if field is not None else None
    if field is not None and named is not None:
        # Given by a flag: its variable (which a validator's text may name) is not the source.
        for variable in _aliases(cls, field):
            message = re.sub(rf"\b{re.escape(variable)}\b", named, message)
    return f"{_field_label(cls, field) if field else 'a setting'}: {message}"


def _field_of(cls: type[BaseSettings], name: str) -> str | None:
    """The field that ``name`` (a field name or one of its aliases, any case) stands for."""
    folded = name.lower()
    for field in cls.model_fields:
        if field.lower() == folded or folded in (n.lower() for n in _aliases(cls, field)):
            return field
    return None


def _aliases(cls: type[BaseSettings], field: str) -> list[str]:
    """The names a field is read under besides its own (environment variables, mostly)."""
    alias = cls.model_fields[field].validation_alias
    if isinstance(alias, str):
        return [alias]
    choices = getattr(alias, "choices", ())
    return [choice for choice in choices if isinstance(choice, str) and choice != field]


def _field_label(cls: type[BaseSettings], field: str) -> str:
    """``addr (VAULT_ADDR)``: the field and the environment variables a user would set.

    A value given by a CLI flag (:func:`setting_names`) is named by that flag alone.
    """
    given = _given_as(field)
    if given is not None:
        return given
    names = _aliases(cls, field)
    if not names:
        prefix = str(cls.model_config.get("env_prefix") or "")
        names = [f"{prefix}{field}".upper()]
    return f"{field} ({', '.join(names)})"
