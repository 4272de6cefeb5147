"""Input validation done before any I/O: identifiers, names and path templates."""

from __future__ import annotations

import ipaddress
import json
import re
import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import _redact
from ._errors import InvalidInputError
from ._secret import Secret

__all__ = [
    "KEY_SHAPE_RULE",
    "MAX_DATETIME_MS",
    "MIN_DATETIME_MS",
    "PathTemplate",
    "find_unsafe_char",
    "holds_datetime_ms",
    "is_loopback_host",
    "needs_unkey_confirmation",
    "require_tls_unless_loopback",
    "untrusted_request_id",
    "untrusted_text",
    "validate_alias",
    "validate_api_id",
    "validate_external_id",
    "validate_key_id",
    "validate_key_plaintext",
]

# Unkey's own patterns for ids (keyId, apiId: 3-255 of [a-zA-Z0-9_]) and externalId.
_ID = re.compile(r"[A-Za-z0-9_]{3,255}")
# The ids Unkey makes are ``<kind>_`` and random letters and digits: 9 of them today
# (``key_3fG9aK1pQ``), 22 in older ids (``key_2cGKbMxRyIzhCxo1Idjz8q``). A key is a run of 16 or
# more random letters and digits behind an optional ``prefix_``, so an id holding such a run
# must have exactly that form; the form still matches a key whose prefix is the kind itself.
_LONG_RUN = re.compile(r"[A-Za-z0-9]{16}")
_UNKEY_FORM = {
    "key": re.compile(r"key_[A-Za-z0-9]+"),
    "api": re.compile(r"api_[A-Za-z0-9]+"),
}
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
    name = type(value).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _check(field: str, value: object, pattern: re.Pattern[str], rule: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidInputError(field, f"expected {rule}, got {_describe(value)}")
    return value


def _check_id(field: str, value: object, kind: str) -> str:
    """Unkey's id pattern, then refuse what is a key or a credential rather than an id."""
    text = _check(field, value, _ID, "3-255 characters of [A-Za-z0-9_]")
    if _LONG_RUN.search(text) and not _UNKEY_FORM[kind].fullmatch(text):
        raise InvalidInputError(
            field,
            f"got {_describe(text)} with a key's shape (a run of 16 or more letters and "
            f"digits); an id with so long a run has Unkey's form {kind}_ and letters and "
            "digits: were the id and the key swapped?",
        )
    # The values being confined or held, as scrub() masks them (the masked shapes need
    # quotes or separators, which an id cannot hold): a membership test is all it takes.
    if any(needle in text for needle in _redact._needles):
        raise InvalidInputError(
            field,
            f"got {_describe(text)} that this process holds as a key or a credential, not an id",
        )
    return text


def validate_key_id(value: object, field: str = "key_id") -> str:
    """Return ``value`` if it can be an Unkey keyId; raise InvalidInputError if not.

    A keyId is 3-255 of ``[A-Za-z0-9_]`` (Unkey's pattern). One holding a run of 16 or more
    letters and digits, the random part of a key, must have Unkey's own form ``key_`` and
    letters and digits (older keyIds do); a value this process holds as a key or a
    credential (:func:`~unkey_secrets._redact.confined`, :func:`~unkey_secrets._redact.hold`)
    is refused whatever its shape. The error names ``field`` and describes the value by its
    length only, so a key passed by mistake is never echoed. An id that passes may still be a
    key whose prefix is ``key``: see :func:`needs_unkey_confirmation`.
    """
    return _check_id(field, value, "key")


def validate_api_id(value: object, field: str = "api_id") -> str:
    """Return ``value`` if it can be an Unkey apiId; raise InvalidInputError if not.

    The rules of :func:`validate_key_id`, with Unkey's form ``api_`` for a long random part.
    """
    return _check_id(field, value, "api")


def needs_unkey_confirmation(key_id: str) -> bool:
    """Whether a valid ``key_id`` must be confirmed by Unkey before a store path holds it.

    True when it holds a key's random run (16 or more letters and digits): an older keyId
    (``key_2cGKbMxRyIzhCxo1Idjz8q``), or a key whose prefix is ``key``, which no shape tells
    apart. The flows that have an Unkey client ask keys.getKey first; today's keyIds
    (``key_`` and 9 characters) never need it.
    """
    return _LONG_RUN.search(key_id) is not None


def validate_external_id(value: object, field: str = "external_id") -> str:
    """Return ``value`` if it is a valid Unkey externalId (1-255 of ``[A-Za-z0-9_.-]``)."""
    return _check(field, value, _EXTERNAL_ID, "1-255 characters of [A-Za-z0-9_.-]")


def validate_alias(value: object, field: str = "alias") -> str:
    """Return ``value`` if it can be an alias, a stable reader-facing name (one path segment)."""
    return _check(
        field, value, _NAME, "1-128 characters of [A-Za-z0-9_.-] starting with a letter or digit"
    )


# -- a key's plaintext ------------------------------------------------------------------------

# Unkey keys are base58 from at least 16 random bytes, optionally behind ``prefix_``.
_KEY_PLAINTEXT = re.compile(r"[A-Za-z0-9_]{16,512}")
#: The one rule for a key's shape, as error messages state it.
KEY_SHAPE_RULE = "16-512 characters of [A-Za-z0-9_]"


def validate_key_plaintext(secret: Secret, key_id: str) -> Secret:
    """Return ``secret`` if it can be the Unkey key ``key_id``; raise InvalidInputError if not.

    The one rule for a key wherever it enters: Unkey's createKey and rerollKey answers, a
    captured key and a stored value read back. It refuses what cannot be an Unkey key (a
    whole response body, a NUL byte, 50 KB of text, an id): the stores are create-only, so a
    wrong value written once could not be mended by writing again. The error gives the
    length only, never the value.
    """
    if not isinstance(secret, Secret):
        raise InvalidInputError("key", f"expected a Secret, got {_describe(secret)}")
    plaintext = secret.reveal()
    if not _KEY_PLAINTEXT.fullmatch(plaintext):
        raise InvalidInputError(
            "key", f"expected {KEY_SHAPE_RULE}, got {len(plaintext)} characters"
        )
    if key_id and key_id in plaintext:
        raise InvalidInputError("key", "contains the key_id: the key and its id were mixed up")
    return secret


# -- free text --------------------------------------------------------------------------------

# Control (C0, C1, DEL), format (bidi overrides and isolates, zero-width characters, the BOM,
# soft hyphen), surrogates and the line and paragraph separators: invisible or reordering
# characters that make a name print as something it is not, or forge lines in a log.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def find_unsafe_char(text: str) -> int | None:
    """Return the index of the first control, bidi or zero-width character in ``text``."""
    for index, char in enumerate(text):
        if unicodedata.category(char) in _UNSAFE_CATEGORIES:
            return index
    return None


# A run of [A-Za-z0-9_] holding 16 or more letters and digits in a row looks like a key (its
# random part, behind any prefix_): the whole run is masked. Matching runs first and testing
# each keeps the work linear in the text's length.
_TOKEN = re.compile(r"[A-Za-z0-9_]+")
_RANDOM_RUN = re.compile(r"[A-Za-z0-9]{16}")
_MASK = "**********"
_TRAILING_TOKEN = re.compile(r"[A-Za-z0-9_]+\Z")
_MAX_UNTRUSTED = 500
_ROOM = 8192


def _mask_token(match: re.Match[str]) -> str:
    return _MASK if _RANDOM_RUN.search(match[0]) else match[0]


def untrusted_text(text: str, hide: Iterable[str] = (), limit: int = _MAX_UNTRUSTED) -> str:
    """Return text a server sent, safe to put into an exception or a log record.

    Masks each of ``hide`` (raw or JSON-escaped), every value being confined
    (:func:`unkey_secrets._redact.confined`) and anything shaped like a key (a run of 16 or
    more letters and digits, with its ``prefix_``); replaces control, bidi and zero-width
    characters with U+FFFD; and cuts the result to ``limit`` characters. Over-masking (a long
    id, a very long word) is the accepted cost.
    """
    from ._redact import scrub

    if not isinstance(text, str):
        return ""
    for value in hide:
        if value:
            for form in {value, json.dumps(value)[1:-1]}:
                text = text.replace(form, _MASK)
    # Cut once before the rest of the work, with room for what starts before ``limit``; a
    # token cut in two at the end is masked, so no part of a key escapes as a short run.
    if len(text) > limit + _ROOM:
        text = _TRAILING_TOKEN.sub(_MASK, text[: limit + _ROOM])
    text = scrub(text)
    text = "".join(
        "\ufffd" if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in text
    )
    text = _TOKEN.sub(_mask_token, text)
    return text[:limit]


_REQUEST_ID = re.compile(r"req_[A-Za-z0-9]{1,64}")


def untrusted_request_id(value: str) -> str:
    """Return Unkey's requestId as sent, if it has a requestId's shape; else mask it.

    A requestId is ``req_`` and letters or digits: shown as is, so an operator can quote it to
    Unkey. Anything else, or a value being confined or held as a credential, goes through
    :func:`untrusted_text`.
    """
    from ._redact import scrub

    if isinstance(value, str) and _REQUEST_ID.fullmatch(value) and scrub(value) == value:
        return value
    return untrusted_text(value)


# -- hosts ------------------------------------------------------------------------------------


#: The Unix milliseconds a :class:`datetime.datetime` holds: from 0001-01-01 to the end of
#: 9999-12-31, UTC.
MIN_DATETIME_MS = -62_135_596_800_000
MAX_DATETIME_MS = 253_402_300_799_999


def holds_datetime_ms(value: int) -> bool:
    """Whether ``value`` (Unix ms) is a time a datetime (and an ISO 8601 year) can hold.

    A time read from an answer (Unkey's ``expires``, ``createdAt``) or a stored value is
    checked with it where it is parsed, so no datetime made of it later raises.
    """
    return MIN_DATETIME_MS <= value <= MAX_DATETIME_MS


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
    plaintext key and the credentials unencrypted. A URL carrying credentials
    (``https://user:pass@host``) is refused too, as :class:`~unkey_secrets.UnkeyClient`
    refuses such a ``base_url``: they would ride along wherever the address is logged or
    shown. ``what`` names the setting in the error, which never quotes the URL.
    """
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{what} may not carry credentials (user:password@ before the host)")
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


def nests_deeper_than(value: object, limit: int) -> bool:
    """Whether ``value`` nests more than ``limit`` mappings and lists.

    Walked level by level, without recursion; a cycle counts as too deep.
    """
    level: list[object] = [value]
    depth = 0
    while True:
        containers = [item for item in level if isinstance(item, (Mapping, list, tuple))]
        if not containers:
            return False
        depth += 1
        if depth > limit:
            return True
        level = [
            child
            for item in containers
            for child in (item.values() if isinstance(item, Mapping) else item)
        ]
