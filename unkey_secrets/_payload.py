"""The stored value's JSON shape, the same in every store.

A key's value (format ``unkey-secrets/key/v1``)::

    {"format": "unkey-secrets/key/v1", "key_id": "key_...", "api_id": "api_...",
     "key": "<plaintext>", "issued_at": "2026-11-23T09:30:00+00:00",
     "name": ..., "external_id": ..., "prefix": ..., "expires": <ms or null>,
     "rerolled_from": <key_id or null>, "alias": <alias or null>}

``key_id`` and ``api_id`` are always present so a reader knows what it holds; the optional
members are present (possibly null) in every value we write. Readers must ignore members they
do not know: new optional members may be added without a new format string.

An alias holds the same value as the key it names, in every store, so any reader (Vault Agent,
External Secrets Operator, another language, pydantic-settings) gets the current key in one
read with read permission on the alias alone.

Earlier releases wrote Vault aliases as pointers without the key (format
``unkey-secrets/alias/v1``: ``{"format", "key_id", "api_id", "path"}``); they are still read,
and replaced by a full value at the alias's next move.

A rotation record (format ``unkey-secrets/rotation/v1``, no plaintext) is described in
:mod:`unkey_secrets.rotation.record`.

A store plugin writes and reads the key's value through the public names
:mod:`unkey_secrets.stores` exports (``KEY_FORMAT``, ``key_fields``, ``parse_key_fields``,
``parse_key_json``); the rest of this module is private.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import InvalidInputError, StoredValueError
from ._models import IssuedKey, StoredKey
from ._redact import MaskedDict
from ._secret import Secret
from ._validate import (
    holds_datetime_ms,
    validate_alias,
    validate_api_id,
    validate_external_id,
    validate_key_id,
    validate_key_plaintext,
)

__all__ = [
    "ALIAS_FORMAT",
    "KEY_FORMAT",
    "MANAGED_BY",
    "alias_fields",
    "key_fields",
    "load_stored_json",
    "parse_alias_fields",
    "parse_key_fields",
    "parse_key_json",
]

#: The format string of a stored key (and of an alias, which holds the same value).
KEY_FORMAT = "unkey-secrets/key/v1"
ALIAS_FORMAT = "unkey-secrets/alias/v1"
#: The value of the ownership marker (Vault custom_metadata / Secrets Manager tag "managed-by").
MANAGED_BY = "unkey-secrets"
# Unkey's prefix rule: 1-16 of [A-Za-z0-9_].
_PREFIX = re.compile(r"[A-Za-z0-9_]{1,16}")


def key_fields(issued: IssuedKey) -> dict[str, Any]:
    """The value a store writes for ``issued``: the members of format ``unkey-secrets/key/v1``.

    Public as :func:`unkey_secrets.stores.key_fields`. The one place a store gets the
    plaintext: reveal it only into the request body, as ``json.dumps(key_fields(key))`` (or
    the mapping itself, where the service takes JSON objects). The result is a dict of every
    member::

        {"format": "unkey-secrets/key/v1", "key_id": issued.key_id, "api_id": issued.api_id,
         "key": <the plaintext>, "issued_at": <RFC 3339>, "name": str | None,
         "external_id": str | None, "prefix": str | None, "expires": <Unix ms> | None,
         "rerolled_from": <key_id> | None, "alias": str | None}

    An alias holds the same members, with ``alias`` set: pass
    ``dataclasses.replace(issued, alias=alias)``. The dict is a
    :class:`~unkey_secrets._redact.MaskedDict`: ``json.dumps`` sees every member, its repr (as
    a traceback's locals show it) none of the values. Nothing is checked here (an
    :class:`~unkey_secrets.IssuedKey` was validated when it was made), so nothing is raised.
    """
    return MaskedDict(
        {
            "format": KEY_FORMAT,
            "key_id": issued.key_id,
            "api_id": issued.api_id,
            "key": issued.secret.reveal(),
            "issued_at": issued.issued_at.isoformat(),
            "name": issued.name,
            "external_id": issued.external_id,
            "prefix": issued.prefix,
            "expires": issued.expires,
            "rerolled_from": issued.rerolled_from,
            "alias": issued.alias,
        }
    )


def alias_fields(*, key_id: str, api_id: str, path: str) -> dict[str, Any]:
    """Build an alias value pointing at the key stored at ``path``."""
    return {"format": ALIAS_FORMAT, "key_id": key_id, "api_id": api_id, "path": path}


def _not_ours(store: str, location: str, what: str, problem: str) -> StoredValueError:
    return StoredValueError(
        f"value at {location} is not an unkey-secrets {what}: {problem}",
        store=store,
        location=location,
    )


def _ids(data: Mapping[str, Any], store: str, location: str, what: str) -> tuple[str, str]:
    try:
        return validate_key_id(data.get("key_id")), validate_api_id(data.get("api_id"))
    except ValueError as exc:
        # Our validators describe a bad id by type and length, never by its value.
        raise _not_ours(store, location, what, str(exc)) from None


def parse_key_fields(
    data: object, *, store: str, location: str, version: str | None = None
) -> StoredKey:
    """Read a stored key back from its decoded JSON object: a :class:`StoredKey`.

    Public as :func:`unkey_secrets.stores.parse_key_fields`, for a service that answers with
    the decoded object (a JSON-typed field, a dict from its SDK); a JSON string goes to
    :func:`parse_key_json` instead. ``data`` is what :func:`key_fields` wrote (or an earlier
    writer of the same format; members this release does not know are ignored, their names
    kept in ``StoredKey.extra``). ``store`` is the store's name and ``location`` the location
    read, as errors and the result name them; ``version`` is the service's version of the
    value, kept as ``StoredKey.version``.

    Raises :class:`~unkey_secrets.StoredValueError` (its ``store`` and ``location`` set) when
    ``data`` is not a JSON object, its ``format`` is not ``unkey-secrets/key/v1``, ``key`` is
    missing or empty, ``key_id`` or ``api_id`` is not an Unkey id, or ``key`` cannot be an
    Unkey key (its shape, or it holds the key_id). The message never holds the value or any
    part of the key. The optional members are untrusted text: one in the wrong shape (a name
    holding the key, a control character, an expiry out of range) is read as None, not raised.
    """
    if not isinstance(data, Mapping):
        raise _not_ours(
            store, location, "key", f"expected a JSON object, got {type(data).__name__}"
        )
    if data.get("format") != KEY_FORMAT:
        raise _not_ours(store, location, "key", f"format is not {KEY_FORMAT!r}")
    key = data.get("key")
    if not isinstance(key, str) or not key:
        raise _not_ours(store, location, "key", "member 'key' is missing or not a non-empty string")
    key_id, api_id = _ids(data, store, location, "key")
    secret = Secret(key)
    try:
        # The same rule as for a key Unkey answers or a caller captures.
        validate_key_plaintext(secret, key_id)
    except InvalidInputError as exc:
        problem: str | None = f"member 'key': {exc.problem}"
    else:
        problem = None
    if problem is not None:
        raise _not_ours(store, location, "key", problem)
    known = {
        "format",
        "key",
        "key_id",
        "api_id",
        "name",
        "external_id",
        "issued_at",
        "prefix",
        "expires",
        "rerolled_from",
        "alias",
    }
    expires = data.get("expires")
    rerolled_from = data.get("rerolled_from")
    return StoredKey(
        key_id=key_id,
        secret=secret,
        api_id=api_id,
        location=location,
        version=version,
        # Text from a store is untrusted: each member is kept only in its own shape, so what
        # a reader logs or an error quotes is never text a writer planted.
        name=_optional_text(data.get("name"), key),
        external_id=_optional_checked(data.get("external_id"), validate_external_id),
        issued_at=_optional_text(data.get("issued_at"), key),
        prefix=_optional_checked(data.get("prefix"), _validate_prefix),
        expires=_optional_time(expires),
        rerolled_from=_optional_key_id(rerolled_from),
        alias=_optional_checked(data.get("alias"), validate_alias),
        # Names only: an unknown member's value (an earlier key, say) is not kept anywhere.
        extra=tuple(name for name in data if name not in known),
    )


def _optional_time(value: object) -> int | None:
    """A stored time (Unix ms) in its own shape: an int a datetime holds, else None.

    Out of that range it is dropped as a member of the wrong type is, so no datetime made of
    it later (a reader's expiry warning, ``KeyInfo.expires_at``) raises.
    """
    if isinstance(value, int) and not isinstance(value, bool) and holds_datetime_ms(value):
        return value
    return None


def parse_alias_fields(data: object, *, store: str, location: str) -> tuple[str, str, str]:
    """Read an alias value: the ``(key_id, api_id, path)`` it points at."""
    if not isinstance(data, Mapping):
        raise _not_ours(
            store, location, "alias", f"expected a JSON object, got {type(data).__name__}"
        )
    if data.get("format") != ALIAS_FORMAT:
        raise _not_ours(store, location, "alias", f"format is not {ALIAS_FORMAT!r}")
    path = data.get("path")
    if not isinstance(path, str):
        raise _not_ours(store, location, "alias", "member 'path' is missing or not a string")
    key_id, api_id = _ids(data, store, location, "alias")
    return key_id, api_id, path


def load_stored_json(text: object, *, store: str, location: str) -> object:
    """Decode a stored JSON text; every failure is a :class:`StoredValueError` without the text.

    The one ``json.loads`` for stored values: besides a syntax error (whose ``.doc`` is the
    whole value, plaintext included: only the position is kept) it turns a value nested too
    deeply (a bare ``RecursionError``) and an integer too long to convert (``ValueError``) into
    the store's error, so a reader of a foreign or damaged value gets one error type.
    """
    if not isinstance(text, str):
        raise _not_ours(
            store, location, "value", f"expected a JSON string, got {type(text).__name__}"
        )
    problem: str | None = None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        problem = f"is not JSON (line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        problem = "is not JSON we can read: nested too deeply"
    except ValueError:
        # An integer over Python's digit limit; the message gives counts, but keep none of it.
        problem = "is not JSON we can read: a number is too long"
    # Raised outside the except blocks, so no __context__ keeps the decoder's error.
    raise StoredValueError(
        f"value at {location} {problem}", store=store, location=location
    ) from None


def parse_key_json(
    text: str, *, store: str, location: str, version: str | None = None
) -> StoredKey:
    """Read a stored key back from the JSON text :func:`key_fields` was written as.

    Public as :func:`unkey_secrets.stores.parse_key_json`: what a store's ``_get`` and
    ``_get_current`` hooks return for a value kept as a JSON string. Decodes ``text`` and
    reads it as :func:`parse_key_fields` does (``store``, ``location`` and ``version`` the
    same). Use it rather than ``json.loads``: a decode error's ``.doc`` is the whole text,
    plaintext included, and this keeps only the line and column.

    Raises :class:`~unkey_secrets.StoredValueError` (its ``store`` and ``location`` set) when
    ``text`` is not a string, is not JSON (or nests too deeply, or holds a number too long to
    read), or holds a value :func:`parse_key_fields` refuses. The message never holds the text.
    """
    data = load_stored_json(text, store=store, location=location)
    return parse_key_fields(data, store=store, location=location, version=version)


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _optional_checked(value: object, check: Callable[[object], str]) -> str | None:
    try:
        return check(value) if value is not None else None
    except ValueError:
        return None


def _validate_prefix(value: object) -> str:
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        raise ValueError("not a prefix")
    return value


def _optional_text(value: object, key: str) -> str | None:
    """Free text (a name, a time) if it is short, printable, and does not hold the key."""
    if not isinstance(value, str) or not 0 < len(value) <= 255 or key in value:
        return None
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") for c in value):
        return None
    return value


def _optional_key_id(value: object) -> str | None:
    try:
        return validate_key_id(value) if value is not None else None
    except ValueError:
        return None
