"""Checks and wire forms for the Unkey client's options, all done before any request is sent.

Every failure is an :class:`InvalidInputError` naming the option; values are described (type,
length), never echoed, since a caller may pass a key where an option was expected.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .._errors import InvalidInputError
from .._validate import _describe, find_unsafe_char, nests_deeper_than
from .models import Credits, Ratelimit

__all__ = [
    "MAX_META_DEPTH",
    "MAX_TIMESTAMP_MS",
    "check_bool",
    "check_byte_length",
    "check_credits",
    "check_int",
    "check_meta",
    "check_permission_query",
    "check_permissions",
    "check_prefix",
    "check_ratelimits",
    "check_roles",
    "check_tags",
    "check_text",
    "check_timestamp",
    "check_verify_ratelimits",
]

#: Unkey's upper bound for ``expires`` and ``expiration``: 2100-01-01T00:00:00Z in ms.
MAX_TIMESTAMP_MS = 4_102_444_800_000
#: How deep ``meta`` may nest, the meta object itself included: a meta far deeper could not be
#: read back whole (decoding it, copying it recurses), so it is refused before it is sent; the
#: emulator refuses the same.
MAX_META_DEPTH = 32

_PREFIX = re.compile(r"[A-Za-z0-9_]{1,16}")
_PERMISSION = re.compile(r"[A-Za-z0-9_:\-.*]{1,128}")
_REFILL_INTERVALS = ("daily", "monthly")


def _invalid(field: str, rule: str, value: object) -> InvalidInputError:
    return InvalidInputError(field, f"expected {rule}, got {_describe(value)}")


def check_text(value: object, field: str, low: int, high: int) -> str:
    """Return ``value`` if it is a string of ``low``-``high`` characters, all of them safe.

    The one rule for free text sent to Unkey (names, roles, tags, rate limit names, meta
    keys): control, bidi and zero-width characters are refused
    (:func:`~unkey_secrets._validate.find_unsafe_char`), since they make a name print as
    something it is not in Unkey's dashboard and in logs. The error names the character's
    code point and position, never the value.
    """
    if not isinstance(value, str) or not low <= len(value) <= high:
        raise _invalid(field, f"a string of {low}-{high} characters", value)
    return _check_safe(value, field)


def _check_safe(value: str, field: str) -> str:
    index = find_unsafe_char(value)
    if index is not None:
        raise InvalidInputError(
            field,
            "may not contain control, bidi or zero-width characters; "
            f"found U+{ord(value[index]):04X} at position {index}",
        )
    return value


def check_int(value: object, field: str, low: int, high: int | None = None) -> int:
    """Return ``value`` if it is an int (not a bool) in ``low``..``high``."""
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        kind = f"an integer {bound}"
        raise InvalidInputError(field, f"expected {kind}, got {_describe_number(value)}")
    return value


def _describe_number(value: object) -> str:
    # Numbers are not secret-shaped; out-of-range ints are worth showing.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _describe(value)


def check_bool(value: object, field: str) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise _invalid(field, "a bool", value)
    return value


def check_prefix(value: object) -> str:
    """Return ``value`` if it is a valid key prefix (1-16 of ``[A-Za-z0-9_]``)."""
    if not isinstance(value, str) or not _PREFIX.fullmatch(value):
        raise _invalid("prefix", "1-16 characters of [A-Za-z0-9_]", value)
    return value


def check_byte_length(value: object) -> int:
    """Return ``value`` if it is a key length in bytes Unkey accepts (16-255)."""
    return check_int(value, "byte_length", 16, 255)


def check_timestamp(value: object, field: str) -> int:
    """Return ``value`` as Unix milliseconds in 0..2100-01-01; accepts an aware datetime."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInputError(field, "a datetime must be timezone-aware")
        value = math.floor(value.timestamp() * 1000)
    return check_int(value, field, 0, MAX_TIMESTAMP_MS)


def check_meta(value: object) -> dict[str, Any]:
    """Return a JSON-clean copy of ``value``: a mapping of <= 100 string-keyed members.

    Objects and arrays nest at most :data:`MAX_META_DEPTH` levels, the mapping included.
    """
    if not isinstance(value, Mapping):
        raise _invalid("meta", "a mapping", value)
    if len(value) > 100:
        raise InvalidInputError("meta", f"has {len(value)} members; Unkey allows at most 100")
    if not all(isinstance(key, str) for key in value):
        raise InvalidInputError("meta", "keys must be strings")
    for key in value:
        _check_safe(key, "meta")
    if nests_deeper_than(value, MAX_META_DEPTH):
        raise InvalidInputError(
            "meta", f"nests objects and arrays more than {MAX_META_DEPTH} levels deep"
        )
    try:
        encoded = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        encoded = None
    # Raised outside the except block so the encoder's error (which may name a value) is not
    # kept as the context.
    if encoded is None:
        raise InvalidInputError(
            "meta", "must be JSON-serialisable (no NaN, no custom objects, no deep nesting)"
        )
    clean: dict[str, Any] = json.loads(encoded)
    return clean


def _check_strings(value: object, field: str, most: int) -> Sequence[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _invalid(field, "a sequence of strings", value)
    if len(value) > most:
        raise InvalidInputError(field, f"has {len(value)} items; Unkey allows at most {most}")
    return value


def check_roles(value: object) -> list[str]:
    """Return ``value`` as a list of <= 100 role names of 1-128 characters."""
    items = _check_strings(value, "roles", 100)
    return [check_text(item, "roles", 1, 128) for item in items]


def check_permissions(value: object) -> list[str]:
    """Return ``value`` as a list of <= 1000 permission slugs (``[A-Za-z0-9_:-.*]``, 1-128)."""
    items = _check_strings(value, "permissions", 1000)
    for item in items:
        if not isinstance(item, str) or not _PERMISSION.fullmatch(item):
            raise _invalid("permissions", "slugs of 1-128 characters of [A-Za-z0-9_:-.*]", item)
    return list(items)


def check_tags(value: object) -> list[str]:
    """Return ``value`` as a list of <= 20 verification tags of 1-512 characters."""
    items = _check_strings(value, "tags", 20)
    return [check_text(item, "tags", 1, 512) for item in items]


def check_permission_query(value: object) -> str:
    """Return ``value`` if it is a permission query for verifyKey (1-1000 characters)."""
    return check_text(value, "permissions", 1, 1000)


def _credits_from_mapping(value: Mapping[str, Any]) -> Credits:
    unknown = set(value) - {"remaining", "refill"}
    if unknown:
        raise InvalidInputError("credits", "unknown members; allowed: remaining, refill")
    refill = value.get("refill")
    if refill is None:
        return Credits(remaining=value.get("remaining"))
    if not isinstance(refill, Mapping):
        raise _invalid("credits.refill", "a mapping", refill)
    unknown = set(refill) - {"interval", "amount", "refillDay"}
    if unknown:
        raise InvalidInputError(
            "credits.refill", "unknown members; allowed: interval, amount, refillDay"
        )
    return Credits(
        remaining=value.get("remaining"),
        refill_interval=refill.get("interval"),
        refill_amount=refill.get("amount"),
        refill_day=refill.get("refillDay"),
    )


def check_credits(value: object, *, allow_unlimited: bool) -> dict[str, Any]:
    """Return the wire form of a :class:`Credits` or a mapping in Unkey's shape.

    ``allow_unlimited`` permits ``remaining=None`` (updateKey); createKey needs a number.
    """
    if isinstance(value, Mapping):
        value = _credits_from_mapping(value)
    if not isinstance(value, Credits):
        raise _invalid("credits", "a Credits or a mapping", value)
    wire: dict[str, Any] = {}
    if value.remaining is None:
        if not allow_unlimited:
            raise InvalidInputError(
                "credits.remaining", "is required here; omit credits for unlimited use"
            )
        wire["remaining"] = None
    else:
        wire["remaining"] = check_int(value.remaining, "credits.remaining", 0)
    refill_set = (value.refill_interval, value.refill_amount, value.refill_day) != (None,) * 3
    if refill_set:
        if value.refill_interval not in _REFILL_INTERVALS:
            raise InvalidInputError("credits.refill_interval", "expected 'daily' or 'monthly'")
        refill: dict[str, Any] = {
            "interval": value.refill_interval,
            "amount": check_int(value.refill_amount, "credits.refill_amount", 1),
        }
        if value.refill_day is not None:
            if value.refill_interval != "monthly":
                raise InvalidInputError("credits.refill_day", "only applies to monthly refills")
            refill["refillDay"] = check_int(value.refill_day, "credits.refill_day", 1, 31)
        wire["refill"] = refill
    return wire


def _ratelimit_from_mapping(value: Mapping[str, Any]) -> Ratelimit:
    unknown = set(value) - {"name", "limit", "duration", "autoApply", "auto_apply"}
    if unknown:
        raise InvalidInputError(
            "ratelimits", "unknown members; allowed: name, limit, duration, autoApply"
        )
    # A missing member becomes a value check_ratelimits refuses, with the member's name.
    return Ratelimit(
        name=value.get("name", ""),
        limit=value.get("limit", 0),
        duration=value.get("duration", 0),
        auto_apply=value.get("autoApply", value.get("auto_apply", False)),
    )


def check_ratelimits(value: object) -> list[dict[str, Any]]:
    """Return the wire form of <= 50 :class:`Ratelimit` (or mappings in Unkey's shape)."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _invalid("ratelimits", "a sequence of Ratelimit", value)
    if len(value) > 50:
        raise InvalidInputError("ratelimits", f"has {len(value)} items; Unkey allows at most 50")
    wire = []
    for item in value:
        limit = _ratelimit_from_mapping(item) if isinstance(item, Mapping) else item
        if not isinstance(limit, Ratelimit):
            raise _invalid("ratelimits", "Ratelimit items or mappings", item)
        wire.append(
            {
                "name": check_text(limit.name, "ratelimits.name", 3, 128),
                "limit": check_int(limit.limit, "ratelimits.limit", 1),
                "duration": check_int(limit.duration, "ratelimits.duration", 1000),
                "autoApply": check_bool(limit.auto_apply, "ratelimits.auto_apply"),
            }
        )
    return wire


def check_verify_ratelimits(value: object) -> list[dict[str, Any]]:
    """Return verifyKey's ``ratelimits``: mappings of name and optional cost, limit, duration."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise _invalid("ratelimits", "a sequence of mappings", value)
    wire = []
    for item in value:
        if not isinstance(item, Mapping):
            raise _invalid("ratelimits", "mappings", item)
        unknown = set(item) - {"name", "cost", "limit", "duration"}
        if unknown:
            raise InvalidInputError(
                "ratelimits", "unknown members; allowed: name, cost, limit, duration"
            )
        entry: dict[str, Any] = {"name": check_text(item.get("name"), "ratelimits.name", 3, 255)}
        for member in ("cost", "limit", "duration"):
            if item.get(member) is not None:
                entry[member] = check_int(item[member], f"ratelimits.{member}", 0)
        wire.append(entry)
    return wire
