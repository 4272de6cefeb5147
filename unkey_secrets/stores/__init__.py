"""Secret stores, found through the ``unkey_secrets.stores`` entry-point group.

The built-in backends (``vault``, ``aws``) register through the same group as third-party ones,
and this package never imports a backend's SDK: each backend imports its own lazily.

What a store (a plugin's too) builds on: :class:`SecretStore`, and the stored value every
store holds for a key and an alias (format :data:`KEY_FORMAT`), written with
:func:`key_fields` and read back with :func:`parse_key_json` (a JSON string) or
:func:`parse_key_fields` (a decoded object).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import StoreNotFoundError
from .._payload import KEY_FORMAT, key_fields, parse_key_fields, parse_key_json
from .base import DEFAULT_ALIAS_TEMPLATE, DEFAULT_KEY_TEMPLATE, SecretStore

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

__all__ = [
    "DEFAULT_ALIAS_TEMPLATE",
    "DEFAULT_KEY_TEMPLATE",
    "ENTRY_POINT_GROUP",
    "KEY_FORMAT",
    "SecretStore",
    "available_stores",
    "key_fields",
    "load_store",
    "parse_key_fields",
    "parse_key_json",
]

ENTRY_POINT_GROUP = "unkey_secrets.stores"


def _entry_points() -> list[EntryPoint]:
    # importlib.metadata pulls in zipfile and csv: load it on first use, not at import, to keep
    # the rotation Lambda's cold start small.
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _own_entry_points() -> list[EntryPoint]:
    # This package's own registrations (vault, aws), read from its own metadata: no scan of
    # every installed distribution's, which costs a command line more than the rest of its
    # start-up in a large environment. None when the package runs without its metadata.
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        own = distribution("unkey-secrets")
    except PackageNotFoundError:  # pragma: no cover - a source tree on sys.path
        return []
    return [ep for ep in own.entry_points if ep.group == ENTRY_POINT_GROUP]


def available_stores() -> list[str]:
    """Return the names of the installed stores, sorted."""
    return sorted({ep.name for ep in _entry_points()})


def load_store(name: str) -> type[SecretStore]:
    """Return the store class registered as ``name``.

    A built-in name (``vault``, ``aws``) is this package's own store, found without scanning
    the other distributions; any other name is looked up among every installed one. Raises
    :class:`~unkey_secrets.StoreNotFoundError` listing the installed stores when there is none;
    an error raised while importing a plugin propagates unchanged, so it can be fixed.
    """
    matches = [ep for ep in _own_entry_points() if ep.name == name]
    matches = matches or [ep for ep in _entry_points() if ep.name == name]
    if not matches:
        raise StoreNotFoundError(name, available_stores())
    store_class = matches[0].load()
    if not (isinstance(store_class, type) and issubclass(store_class, SecretStore)):
        raise TypeError(
            f"entry point {name!r} in {ENTRY_POINT_GROUP} is {store_class!r}, not a SecretStore"
        )
    return store_class
