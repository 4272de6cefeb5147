"""Request and response schemas of the Unkey emulator, and the small validator that checks them.

The schemas are written in a JSON Schema subset (type, properties, required,
additionalProperties, min/maxLength, pattern, minimum/maximum, enum, items, maxItems,
maxProperties, and ``maxDepth``: how many objects and arrays may nest, the value itself
included) from the facts of Unkey's v2 API. :func:`validate` never quotes a value in a
problem it reports: a request body may hold a plaintext key.

Where Unkey documents no bound but the emulator needs one to answer every later call as
documented, the bound is the emulator's own and a write past it gets Unkey's 400: ``meta``
nests at most :data:`MAX_META_DEPTH` levels, and a key's rate limits stay within the bounds
Unkey's answers document (:data:`MAX_RATELIMIT_LIMIT`, :data:`MAX_RATELIMIT_DURATION_MS`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..._validate import nests_deeper_than

__all__ = [
    "BAD_REQUEST_ENVELOPE",
    "BOOLEAN",
    "ERROR_ENVELOPE",
    "EXTERNAL_ID_PATTERN",
    "ID_PATTERN",
    "MAX_INT64",
    "MAX_META_DEPTH",
    "MAX_RATELIMIT_DURATION_MS",
    "MAX_RATELIMIT_LIMIT",
    "MAX_TIMESTAMP_MS",
    "PERMISSION_PATTERN",
    "REQUESTS",
    "RESPONSES",
    "Problem",
    "Schema",
    "array",
    "free_object",
    "integer",
    "obj",
    "string",
    "validate",
]

Schema = Mapping[str, Any]
Problem = dict[str, str]

MAX_TIMESTAMP_MS = 4_102_444_800_000
MAX_INT64 = 2**63 - 1
#: How deep ``meta`` may nest, the meta object itself included. Unkey documents no bound; the
#: emulator's is far past any real meta and far below the depth at which serving it again
#: (copying it, encoding it) would fail.
MAX_META_DEPTH = 32
#: The bounds of a rate limit in Unkey's answers: requests per window, and the window in ms.
MAX_RATELIMIT_LIMIT = 1_000_000
MAX_RATELIMIT_DURATION_MS = 2_592_000_000
ID_PATTERN = r"^[a-zA-Z0-9_]+$"
EXTERNAL_ID_PATTERN = r"^[a-zA-Z0-9_.-]+$"
PERMISSION_PATTERN = r"^[a-zA-Z0-9_:\-\.\*]+$"


def _typed(kind: str, nullable: bool, **rules: Any) -> dict[str, Any]:
    schema = {"type": [kind, "null"] if nullable else kind}
    schema.update({name: value for name, value in rules.items() if value is not None})
    return schema


def string(
    min_length: int | None = None,
    max_length: int | None = None,
    pattern: str | None = None,
    *,
    nullable: bool = False,
) -> dict[str, Any]:
    """A string schema."""
    return _typed("string", nullable, minLength=min_length, maxLength=max_length, pattern=pattern)


def integer(
    minimum: int | None = None, maximum: int | None = None, *, nullable: bool = False
) -> dict[str, Any]:
    """An integer schema (a JSON number with a fraction or a boolean is not an integer)."""
    return _typed("integer", nullable, minimum=minimum, maximum=maximum)


BOOLEAN: Schema = {"type": "boolean"}


def array(items: Schema, max_items: int | None = None) -> dict[str, Any]:
    """An array schema."""
    return _typed("array", False, items=items, maxItems=max_items)


def obj(
    properties: Mapping[str, Schema],
    required: Sequence[str] = (),
    *,
    closed: bool = True,
    max_properties: int | None = None,
    nullable: bool = False,
) -> dict[str, Any]:
    """An object schema; ``closed`` objects refuse members they do not name."""
    return _typed(
        "object",
        nullable,
        properties=dict(properties),
        required=list(required),
        additionalProperties=not closed,
        maxProperties=max_properties,
    )


def free_object(
    max_properties: int | None = None,
    *,
    nullable: bool = False,
    max_depth: int | None = None,
) -> dict[str, Any]:
    """An object whose members are not described (meta); ``max_depth`` bounds its nesting."""
    return _typed("object", nullable, maxProperties=max_properties, maxDepth=max_depth)


# -- the validator ------------------------------------------------------------------------------

_KIND_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "an object",
    "array": "an array",
    "null": "null",
}


def _kind_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _problem(location: str, message: str, fix: str | None = None) -> Problem:
    problem = {"location": location, "message": message}
    if fix is not None:
        problem["fix"] = fix
    return problem


def validate(schema: Schema, value: object, location: str = "body") -> list[Problem]:
    """Return every way ``value`` breaks ``schema``; empty when it conforms."""
    problems: list[Problem] = []
    _check(schema, value, location, problems)
    return problems


def _check(schema: Schema, value: object, location: str, out: list[Problem]) -> None:
    kinds = schema.get("type")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if _kind_of(value) not in allowed:
            expected = " or ".join(_KIND_NAMES[kind] for kind in allowed)
            out.append(_problem(location, f"must be {expected}", f"Send {expected}."))
            return
    depth = schema.get("maxDepth")
    if depth is not None and nests_deeper_than(value, depth):
        out.append(
            _problem(
                location,
                f"must not nest objects and arrays more than {depth} levels deep",
                "Flatten the structure.",
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(str(choice) for choice in schema["enum"])
        out.append(_problem(location, f"must be one of: {choices}"))
    if isinstance(value, str):
        _check_string(schema, value, location, out)
    elif isinstance(value, int) and not isinstance(value, bool):
        _check_integer(schema, value, location, out)
    elif isinstance(value, list):
        _check_array(schema, value, location, out)
    elif isinstance(value, dict):
        _check_object(schema, value, location, out)


def _check_string(schema: Schema, value: str, location: str, out: list[Problem]) -> None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is not None and len(value) < low:
        out.append(_problem(location, f"must be at least {low} characters long"))
    if high is not None and len(value) > high:
        out.append(_problem(location, f"must be at most {high} characters long"))
    pattern = schema.get("pattern")
    if pattern is not None and not _compiled(pattern).search(value):
        out.append(_problem(location, f"must match the pattern {pattern}"))


def _check_integer(schema: Schema, value: int, location: str, out: list[Problem]) -> None:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and value < low:
        out.append(_problem(location, f"must be >= {low}"))
    if high is not None and value > high:
        out.append(_problem(location, f"must be <= {high}"))


def _check_array(schema: Schema, value: list[Any], location: str, out: list[Problem]) -> None:
    high = schema.get("maxItems")
    if high is not None and len(value) > high:
        out.append(_problem(location, f"must have at most {high} items"))
    items = schema.get("items")
    if items is not None:
        for index, item in enumerate(value):
            _check(items, item, f"{location}[{index}]", out)


def _check_object(schema: Schema, value: dict[str, Any], location: str, out: list[Problem]) -> None:
    high = schema.get("maxProperties")
    if high is not None and len(value) > high:
        out.append(_problem(location, f"must have at most {high} properties"))
    properties: Mapping[str, Schema] = schema.get("properties", {})
    for name in schema.get("required", ()):
        if name not in value:
            out.append(_problem(f"{location}.{name}", "is required", f"Add {name}."))
    for name, member in value.items():
        if name in properties:
            _check(properties[name], member, f"{location}.{name}", out)
        elif schema.get("additionalProperties", True) is False:
            out.append(
                _problem(
                    f"{location}.{name}",
                    "is not a known property",
                    "Remove it; this object does not accept unknown properties.",
                )
            )


# -- requests -----------------------------------------------------------------------------------

_KEY_ID = string(3, 255, ID_PATTERN)
_API_ID_CREATE = string(3, 255, ID_PATTERN)
_API_ID_READ = string(8, 255, ID_PATTERN)
_EXTERNAL_ID = string(1, 255, EXTERNAL_ID_PATTERN)
_NAME = string(1, 255)
_META = free_object(100, max_depth=MAX_META_DEPTH)
_ROLES = array(string(1, 128), 100)
_PERMISSIONS = array(string(1, 128, PERMISSION_PATTERN), 1000)
_TIMESTAMP = integer(0, MAX_TIMESTAMP_MS)
_REFILL_FIELDS = {
    "interval": {"type": "string", "enum": ["daily", "monthly"]},
    "amount": integer(1, MAX_INT64),
    "refillDay": integer(1, 31),
}
_CREDITS_CREATE = obj(
    {"remaining": integer(0, MAX_INT64), "refill": obj(_REFILL_FIELDS, ["interval", "amount"])},
    ["remaining"],
)
_CREDITS_UPDATE = obj(
    {
        "remaining": integer(0, MAX_INT64, nullable=True),
        "refill": obj(_REFILL_FIELDS, ["interval", "amount"], nullable=True),
    },
    nullable=True,
)
# Unkey leaves the rate limit objects open. Its request schema bounds limit and duration by
# int64 only; a key's limits are held to what its answers document, or they could not be
# answered.
_RATELIMITS = array(
    obj(
        {
            "name": string(3, 128),
            "limit": integer(1, MAX_RATELIMIT_LIMIT),
            "duration": integer(1000, MAX_RATELIMIT_DURATION_MS),
            "autoApply": BOOLEAN,
        },
        ["name", "limit", "duration", "autoApply"],
        closed=False,
    ),
    50,
)

REQUESTS: dict[str, Schema] = {
    "apis.createApi": obj({"name": string(3, 256)}, ["name"]),
    "apis.getApi": obj({"apiId": _API_ID_READ}, ["apiId"]),
    "apis.listKeys": obj(
        {
            "apiId": string(1),
            "limit": integer(1, 100),
            "cursor": {"type": "string"},
            "externalId": string(1),
            "decrypt": BOOLEAN,
            "revalidateKeysCache": BOOLEAN,
        },
        ["apiId"],
    ),
    "keys.createKey": obj(
        {
            "apiId": _API_ID_CREATE,
            "prefix": string(1, 16, ID_PATTERN),
            "name": _NAME,
            "byteLength": integer(16, 255),
            "externalId": _EXTERNAL_ID,
            "meta": _META,
            "roles": _ROLES,
            "permissions": _PERMISSIONS,
            "expires": _TIMESTAMP,
            "credits": _CREDITS_CREATE,
            "ratelimits": _RATELIMITS,
            "enabled": BOOLEAN,
            "recoverable": BOOLEAN,
        },
        ["apiId"],
    ),
    # The reroll body is the one keys request Unkey does not close.
    "keys.rerollKey": obj(
        {"keyId": _KEY_ID, "expiration": _TIMESTAMP}, ["keyId", "expiration"], closed=False
    ),
    "keys.verifyKey": obj(
        {
            "key": string(1, 512),
            "tags": array(string(1, 512), 20),
            "permissions": string(1, 1000),
            "credits": obj({"cost": integer(0, 10**12)}, ["cost"]),
            "ratelimits": array(
                obj(
                    {
                        "name": string(3, 255),
                        "cost": integer(0),
                        # 0 (or absent): the key's own limit; see Store._rate_limit.
                        "limit": integer(0, MAX_RATELIMIT_LIMIT),
                        "duration": integer(0, MAX_RATELIMIT_DURATION_MS),
                    },
                    ["name"],
                    closed=False,
                )
            ),
            "migrationId": string(max_length=256),
        },
        ["key"],
    ),
    "keys.getKey": obj({"keyId": _KEY_ID, "decrypt": BOOLEAN}, ["keyId"]),
    "keys.updateKey": obj(
        {
            "keyId": _KEY_ID,
            "name": string(1, 255, nullable=True),
            "externalId": string(1, 255, EXTERNAL_ID_PATTERN, nullable=True),
            "meta": free_object(100, nullable=True, max_depth=MAX_META_DEPTH),
            "expires": integer(0, MAX_TIMESTAMP_MS, nullable=True),
            "credits": _CREDITS_UPDATE,
            "ratelimits": _RATELIMITS,
            "enabled": BOOLEAN,
            "roles": _ROLES,
            "permissions": _PERMISSIONS,
        },
        ["keyId"],
    ),
    "keys.deleteKey": obj({"keyId": _KEY_ID, "permanent": BOOLEAN}, ["keyId"]),
}

# -- responses ----------------------------------------------------------------------------------

_META_ENVELOPE = obj({"requestId": string(1)}, ["requestId"])
_RATELIMIT_ID = string(8, 255, r"^rl_[a-zA-Z0-9_]+$")
_RATELIMIT_OUT = obj(
    {
        "id": _RATELIMIT_ID,
        "name": string(1, 128),
        "limit": integer(1, MAX_RATELIMIT_LIMIT),
        "duration": integer(1000, MAX_RATELIMIT_DURATION_MS),
        "autoApply": BOOLEAN,
    },
    ["id", "name", "limit", "duration", "autoApply"],
)
_IDENTITY = obj(
    {
        "id": {"type": "string"},
        "externalId": {"type": "string"},
        "meta": free_object(),
        "ratelimits": array(_RATELIMIT_OUT),
    },
    ["id", "externalId"],
    closed=False,
)
_CREDITS_OUT = obj(
    {
        "remaining": integer(0, MAX_INT64, nullable=True),
        "refill": obj(_REFILL_FIELDS, ["interval", "amount"]),
    },
    ["remaining"],
)
_STRINGS = array({"type": "string"})
_KEY_DATA = obj(
    {
        "keyId": string(8, 255, ID_PATTERN),
        "start": string(1, 50),
        "enabled": BOOLEAN,
        "name": string(max_length=255),
        "meta": free_object(100),
        "createdAt": integer(0),
        "updatedAt": integer(0),
        "lastUsedAt": integer(0),
        "expires": integer(0),
        "permissions": _STRINGS,
        "roles": _STRINGS,
        "credits": _CREDITS_OUT,
        "identity": _IDENTITY,
        "plaintext": {"type": "string"},
        "ratelimits": array(_RATELIMIT_OUT, 50),
    },
    ["keyId", "start", "createdAt", "enabled"],
)
_ISSUED = obj({"keyId": string(8, 255, ID_PATTERN), "key": string(1)}, ["keyId", "key"])
_VERIFY_CODES = [
    "VALID",
    "NOT_FOUND",
    "FORBIDDEN",
    "INSUFFICIENT_PERMISSIONS",
    "USAGE_EXCEEDED",
    "RATE_LIMITED",
    "DISABLED",
    "EXPIRED",
]
_VERIFY_DATA = obj(
    {
        "valid": BOOLEAN,
        "code": {"type": "string", "enum": _VERIFY_CODES},
        "keyId": {"type": "string"},
        "name": {"type": "string"},
        "meta": free_object(),
        "expires": integer(),
        "credits": integer(),
        "enabled": BOOLEAN,
        "permissions": _STRINGS,
        "roles": _STRINGS,
        "identity": _IDENTITY,
        "ratelimits": array(
            obj(
                {
                    "exceeded": BOOLEAN,
                    "id": _RATELIMIT_ID,
                    "name": string(1, 128),
                    "limit": integer(1, MAX_RATELIMIT_LIMIT),
                    "duration": integer(1000, MAX_RATELIMIT_DURATION_MS),
                    "reset": integer(1000, MAX_RATELIMIT_DURATION_MS),
                    "remaining": integer(0, MAX_RATELIMIT_LIMIT),
                    "autoApply": BOOLEAN,
                },
                ["id", "exceeded", "name", "limit", "duration", "reset", "remaining", "autoApply"],
            )
        ),
    },
    ["valid", "code"],
)
_EMPTY = obj({})


def _envelope(data: Schema, **extra: Schema) -> dict[str, Any]:
    return obj({"meta": _META_ENVELOPE, "data": data, **extra}, ["meta", "data", *extra])


RESPONSES: dict[str, Schema] = {
    "apis.createApi": _envelope(obj({"apiId": string(8, 255, ID_PATTERN)}, ["apiId"])),
    "apis.getApi": _envelope(
        obj({"id": string(8, 255, ID_PATTERN), "name": string(3, 256)}, ["id", "name"])
    ),
    "apis.listKeys": _envelope(
        array(_KEY_DATA, 100),
        pagination=obj({"cursor": string(1, 1024), "hasMore": BOOLEAN}, ["hasMore"]),
    ),
    "keys.createKey": _envelope(_ISSUED),
    "keys.rerollKey": _envelope(_ISSUED),
    "keys.verifyKey": _envelope(_VERIFY_DATA),
    "keys.getKey": _envelope(_KEY_DATA),
    "keys.updateKey": _envelope(_EMPTY),
    "keys.deleteKey": _envelope(_EMPTY),
}

_ERROR_FIELDS: dict[str, Schema] = {
    "title": {"type": "string"},
    "detail": {"type": "string"},
    "status": integer(400, 599),
    "type": string(1, pattern=r"^https://unkey\.com/docs/errors/"),
}
_ERROR_REQUIRED = ["title", "detail", "status", "type"]

ERROR_ENVELOPE: Schema = obj(
    {"meta": _META_ENVELOPE, "error": obj(_ERROR_FIELDS, _ERROR_REQUIRED)}, ["meta", "error"]
)
BAD_REQUEST_ENVELOPE: Schema = obj(
    {
        "meta": _META_ENVELOPE,
        "error": obj(
            {
                **_ERROR_FIELDS,
                "errors": array(
                    obj(
                        {
                            "location": {"type": "string"},
                            "message": {"type": "string"},
                            "fix": {"type": "string"},
                        },
                        ["location", "message"],
                    )
                ),
            },
            [*_ERROR_REQUIRED, "errors"],
        ),
    },
    ["meta", "error"],
)
