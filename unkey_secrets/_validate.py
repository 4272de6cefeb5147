"""Input validation done before any I/O: identifiers, names and path templates."""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ._errors import InvalidInputError

__all__ = [
    "PathTemplate",
    "is_loopback_host",
    "require_tls_unless_loopback",
    "validate_alias",
    "validate_api_id",
    "validate_external_id",
    "validate_key_id",
]

# Unkey's own patterns for ids (keyId, apiId: 3-255 of [a-zA-Z0-9_]) and externalId.
_ID = re.compile(r"[A-Za-z0-9_]{3,255}")
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9_.\-]{1,255}")
# An alias (a stable reader-facing name) becomes one path segment, so it is held to a safe
# alphabet and may not be "." or "..".
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
# Literal template text: the characters both Vault paths and Secrets Manager names accept.
_LITERAL = re.compile(r"[A-Za-z0-9_./+=@\-]*")
_FIELDS = frozenset({"api_id", "key_id", "alias"})


def _describe(value: object) -> str:
    # Identifiers are not secret, but a caller may pass a key by mistake: describe, never echo.
    if isinstance(value, str):
        return f"a string of {len(value)} characters"
    return f"a {type(value).__name__}"


def _check(field: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInputError(field, f"expected {rule}, got {_describe(value)}")
    return value


def validate_key_id(value: object, field: str = "key_id") -> str:
    """Return ``value`` if it is a valid Unkey keyId (3-255 of ``[A-Za-z0-9_]``)."""
    return _check(field, value, _ID, "3-255 characters of [A-Za-z0-9_]")


def validate_api_id(value: object, field: str = "api_id") -> str:
    """Return ``value`` if it is a valid Unkey apiId (3-255 of ``[A-Za-z0-9_]``)."""
    return _check(field, value, _ID, "3-255 characters of [A-Za-z0-9_]")


def validate_external_id(value: object, field: str = "external_id") -> str:
    """Return ``value`` if it is a valid Unkey externalId (1-255 of ``[A-Za-z0-9_.-]``)."""
    return _check(field, value, _EXTERNAL_ID, "1-255 characters of [A-Za-z0-9_.-]")


def validate_alias(value: object, field: str = "alias") -> str:
    """Return ``value`` if it can be an alias, a stable reader-facing name (one path segment)."""
    return _check(
        field, value, _NAME, "1-128 characters of [A-Za-z0-9_.-] starting with a letter or digit"
    )


def is_loopback_host(host: str) -> bool:
    """Return True for ``localhost`` and any address in 127.0.0.0/8 or ``::1``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_tls_unless_loopback(url: str, what: str) -> str:
    """Return ``url`` if it is https, or plain http to a loopback host; raise ValueError if not.

    Plain http is for local test servers only: anywhere else the request would carry the
    plaintext key and the credentials unencrypted. ``what`` names the setting in the error.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback_host(host):
        return url
    raise ValueError(f"{what} must be https://, or http:// to a loopback host only")


_VALIDATORS = {
    "api_id": validate_api_id,
    "key_id": validate_key_id,
    "alias": validate_alias,
}
# Template fields that cannot render on every call, with what to use instead.
_REFUSED_FIELDS = {
    "name": "use {alias} for the alias's name",
    "external_id": (
        "a key's location must be computable from its api_id and key_id alone (reads, "
        "ownership checks and rotations know no external_id)"
    ),
}


@dataclass(frozen=True)
class PathTemplate:
    """A location template such as ``unkey/{api_id}/{key_id}``, checked when it is made.

    Fields are ``{api_id}``, ``{key_id}`` and ``{alias}``, with no format spec or conversion
    (``{external_id}`` is refused: every read, ownership check and rotation must find a key
    from its api_id and key_id alone). Literal text is limited to ``[A-Za-z0-9_./+=@-]``;
    there are no empty, ``.`` or ``..`` segments and no leading or trailing slash, so a
    rendered path can never leave :attr:`prefix` (the literal text before the first field).
    ``required`` names the fields that must appear (``key_id`` for a key's own location,
    ``alias`` for an alias).
    """

    template: str
    required: frozenset[str] = frozenset({"key_id"})
    max_length: int = 512

    def __post_init__(self) -> None:
        field = "path_template"
        if not isinstance(self.template, str) or not self.template:
            raise InvalidInputError(field, "must be a non-empty string")
        seen: list[str] = []
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as exc:
            raise InvalidInputError(field, f"{self.template!r} is not a valid template") from exc
        for literal, name, spec, conversion in parsed:
            if not _LITERAL.fullmatch(literal):
                raise InvalidInputError(
                    field, f"{self.template!r} has characters outside [A-Za-z0-9_./+=@-]"
                )
            if name is None:
                continue
            if name in _REFUSED_FIELDS:
                raise InvalidInputError(
                    field, f"{self.template!r} uses {{{name}}}: {_REFUSED_FIELDS[name]}"
                )
            if name not in _FIELDS:
                raise InvalidInputError(
                    field,
                    f"{self.template!r} uses unknown field {{{name}}}; "
                    f"known: {', '.join(sorted(_FIELDS))}",
                )
            if spec or conversion:
                raise InvalidInputError(field, f"{self.template!r}: fields take no format spec")
            seen.append(name)
        missing = self.required - set(seen)
        if missing:
            raise InvalidInputError(
                field, f"{self.template!r} must contain {{{'}, {'.join(sorted(missing))}}}"
            )
        # Segments are checked on a rendering with harmless stand-ins for the fields.
        self._check_segments(self.template.format(**{n: "x" for n in _FIELDS}), field)

    @property
    def fields(self) -> frozenset[str]:
        """The names of the fields the template uses."""
        return frozenset(n for _, n, _, _ in string.Formatter().parse(self.template) if n)

    @property
    def prefix(self) -> str:
        """The literal text before the first field: every rendered path starts with it."""
        return next(iter(string.Formatter().parse(self.template)))[0]

    def render(self, values: Mapping[str, object]) -> str:
        """Fill the template with validated ``values``; raise :class:`InvalidInputError` if not."""
        clean: dict[str, str] = {}
        for name in self.fields:
            if values.get(name) is None:
                raise InvalidInputError(name, f"required by template {self.template!r}")
            clean[name] = _VALIDATORS[name](values[name])
        path = self.template.format(**clean)
        self._check_segments(path, "path")
        if len(path) > self.max_length:
            raise InvalidInputError("path", f"{len(path)} characters, over {self.max_length}")
        return path

    def _check_segments(self, path: str, field: str) -> None:
        if path.startswith("/") or path.endswith("/"):
            raise InvalidInputError(field, f"{path!r} may not start or end with '/'")
        for segment in path.split("/"):
            if segment in ("", ".", ".."):
                raise InvalidInputError(field, f"{path!r} has an empty, '.' or '..' segment")
