"""What the Unkey client returns (KeyInfo, VerifyResult, ...) and how answers are read into it.

Readers never quote a value from the answer in an error: a malformed member is named by its
path and expected kind only, because an answer (getKey with decrypt) may hold a plaintext.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import UnkeyResponseError
from .._secret import Secret
from .._validate import holds_datetime_ms
from ._repr import field_repr

__all__ = [
    "ApiInfo",
    "Credits",
    "KeyInfo",
    "Ratelimit",
    "Reader",
    "VerifyResult",
    "read_key_info",
    "read_verify_result",
]


@dataclass(frozen=True, repr=False)
class Credits:
    """A key's usage quota.

    ``remaining`` is the number of uses left (None: unlimited). A refill adds
    ``refill_amount`` every ``refill_interval`` (``"daily"`` or ``"monthly"``); a monthly
    refill happens on ``refill_day`` (1-31).
    """

    remaining: int | None
    refill_interval: str | None = None
    refill_amount: int | None = None
    refill_day: int | None = None

    __repr__ = field_repr


@dataclass(frozen=True, repr=False)
class Ratelimit:
    """A named rate limit: ``limit`` requests per ``duration`` milliseconds.

    ``auto_apply`` makes verification check it without naming it. ``ratelimit_id`` is set on
    limits read back from Unkey.
    """

    name: str
    limit: int
    duration: int
    auto_apply: bool = False
    ratelimit_id: str | None = None

    __repr__ = field_repr


@dataclass(frozen=True, repr=False)
class KeyInfo:
    """A key as Unkey describes it (getKey, listKeys); times are Unix milliseconds.

    ``plaintext`` is only set by ``get_key(decrypt=True)`` for a recoverable key, and is masked
    in every repr. ``external_id`` comes from the key's identity.
    """

    key_id: str
    start: str
    created_at: int
    enabled: bool
    name: str | None = None
    meta: dict[str, Any] | None = None
    expires: int | None = None
    updated_at: int | None = None
    last_used_at: int | None = None
    external_id: str | None = None
    permissions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    credits: Credits | None = None
    ratelimits: tuple[Ratelimit, ...] = ()
    plaintext: Secret | None = None

    __repr__ = field_repr


@dataclass(frozen=True, repr=False)
class VerifyResult:
    """Unkey's verdict on a key; check ``valid`` first, then ``code`` (``"EXPIRED"``...).

    ``credits`` is the number of uses left (None: unlimited or not reported).
    """

    valid: bool
    code: str
    key_id: str | None = None
    name: str | None = None
    meta: dict[str, Any] | None = None
    expires: int | None = None
    enabled: bool | None = None
    permissions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    external_id: str | None = None
    credits: int | None = None

    __repr__ = field_repr


@dataclass(frozen=True, repr=False)
class ApiInfo:
    """An Unkey API (keyspace): its id and name."""

    api_id: str
    name: str

    __repr__ = field_repr


#: What a time member must be (its path is named, never its value).
_TIME = "a Unix time in milliseconds (years 1 to 9999)"


class Reader:
    """Typed access to one JSON object of an answer, failing with the member's path only."""

    def __init__(self, operation: str, value: object, path: str = "data") -> None:
        self.operation = operation
        self.path = path
        if not isinstance(value, dict):
            raise self.error(path, "an object")
        self.value: dict[str, Any] = value

    def error(self, path: str, kind: str) -> UnkeyResponseError:
        """Build the error for a member at ``path`` that is missing or not ``kind``."""
        return UnkeyResponseError(
            f"{self.operation} answered without the documented shape: "
            f"{path} is missing or not {kind}",
            operation=self.operation,
        )

    def _get(self, name: str, kind: type, label: str, required: bool) -> Any:
        value = self.value.get(name)
        if value is None:
            if required:
                raise self.error(f"{self.path}.{name}", label)
            return None
        # bool is an int subclass; an integer member must not accept true/false.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(f"{self.path}.{name}", label)
        return value

    def text(self, name: str) -> str | None:
        """Return the string member ``name``, or None if it is absent."""
        value: str | None = self._get(name, str, "a string", False)
        return value

    def required_text(self, name: str) -> str:
        """Return the string member ``name``, which must be present."""
        value: str = self._get(name, str, "a string", True)
        return value

    def integer(self, name: str) -> int | None:
        """Return the integer member ``name``, or None if it is absent."""
        value: int | None = self._get(name, int, "an integer", False)
        return value

    def required_integer(self, name: str) -> int:
        """Return the integer member ``name``, which must be present."""
        value: int = self._get(name, int, "an integer", True)
        return value

    def time(self, name: str) -> int | None:
        """Return the Unix-milliseconds member ``name``, or None if it is absent.

        A time no datetime holds (past year 9999, before year 1) is a malformed answer.
        """
        value = self.integer(name)
        if value is not None and not holds_datetime_ms(value):
            raise self.error(f"{self.path}.{name}", _TIME)
        return value

    def required_time(self, name: str) -> int:
        """Return the Unix-milliseconds member ``name``, which must be present."""
        value = self.time(name)
        if value is None:
            raise self.error(f"{self.path}.{name}", _TIME)
        return value

    def flag(self, name: str) -> bool | None:
        """Return the boolean member ``name``, or None if it is absent."""
        value: bool | None = self._get(name, bool, "a boolean", False)
        return value

    def required_flag(self, name: str) -> bool:
        """Return the boolean member ``name``, which must be present."""
        value: bool = self._get(name, bool, "a boolean", True)
        return value

    def child(self, name: str) -> Reader | None:
        """Return a reader for the object member ``name``, or None if it is absent."""
        value = self.value.get(name)
        if value is None:
            return None
        return Reader(self.operation, value, f"{self.path}.{name}")

    def mapping(self, name: str) -> dict[str, Any] | None:
        """Return a copy of the object member ``name``, or None if it is absent."""
        value: dict[str, Any] | None = self._get(name, dict, "an object", False)
        return None if value is None else dict(value)

    def strings(self, name: str) -> tuple[str, ...]:
        """Return the array-of-strings member ``name`` (empty if absent)."""
        value: list[Any] = self._get(name, list, "an array of strings", False) or []
        if not all(isinstance(item, str) for item in value):
            raise self.error(f"{self.path}.{name}", "an array of strings")
        return tuple(value)

    def children(self, name: str) -> list[Reader]:
        """Return readers for the array-of-objects member ``name`` (empty if absent)."""
        value: list[Any] = self._get(name, list, "an array of objects", False) or []
        return [
            Reader(self.operation, item, f"{self.path}.{name}[{index}]")
            for index, item in enumerate(value)
        ]


def _read_credits(reader: Reader | None) -> Credits | None:
    if reader is None:
        return None
    refill = reader.child("refill")
    return Credits(
        remaining=reader.integer("remaining"),
        refill_interval=refill.required_text("interval") if refill else None,
        refill_amount=refill.required_integer("amount") if refill else None,
        refill_day=refill.integer("refillDay") if refill else None,
    )


def _read_ratelimit(reader: Reader) -> Ratelimit:
    return Ratelimit(
        name=reader.required_text("name"),
        limit=reader.required_integer("limit"),
        duration=reader.required_integer("duration"),
        auto_apply=bool(reader.flag("autoApply")),
        ratelimit_id=reader.text("id"),
    )


def _external_id(reader: Reader) -> str | None:
    identity = reader.child("identity")
    return None if identity is None else identity.text("externalId")


def read_key_info(reader: Reader) -> KeyInfo:
    """Read one KeyResponseData object (getKey's data, one item of listKeys)."""
    plaintext = reader.text("plaintext")
    return KeyInfo(
        key_id=reader.required_text("keyId"),
        start=reader.required_text("start"),
        created_at=reader.required_time("createdAt"),
        enabled=reader.required_flag("enabled"),
        name=reader.text("name"),
        meta=reader.mapping("meta"),
        expires=reader.time("expires"),
        updated_at=reader.time("updatedAt"),
        last_used_at=reader.time("lastUsedAt"),
        external_id=_external_id(reader),
        permissions=reader.strings("permissions"),
        roles=reader.strings("roles"),
        credits=_read_credits(reader.child("credits")),
        ratelimits=tuple(_read_ratelimit(item) for item in reader.children("ratelimits")),
        plaintext=None if plaintext is None else Secret(plaintext),
    )


def read_verify_result(reader: Reader) -> VerifyResult:
    """Read verifyKey's data object."""
    return VerifyResult(
        valid=reader.required_flag("valid"),
        code=reader.required_text("code"),
        key_id=reader.text("keyId"),
        name=reader.text("name"),
        meta=reader.mapping("meta"),
        expires=reader.time("expires"),
        enabled=reader.flag("enabled"),
        permissions=reader.strings("permissions"),
        roles=reader.strings("roles"),
        external_id=_external_id(reader),
        credits=reader.integer("credits"),
    )
