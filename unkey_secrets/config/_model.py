"""What a settings field declares (:class:`UnkeyKey`) and what it is filled with."""

from __future__ import annotations

import datetime as dt
import hmac
import re
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

from pydantic import SecretStr

from .._errors import InvalidInputError
from .._models import StoredKey
from .._validate import validate_alias, validate_api_id, validate_key_id

__all__ = ["KeyInfo", "StoreName", "UnkeyKey", "UnkeySecretStr", "arn_region", "key_info"]

#: The stores a field can name: the entry-point names of the built-in backends.
StoreName = Literal["vault", "aws"]

_MASK = "**********"
# arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME
_SECRET_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:secretsmanager:([a-z]{2}(?:-[a-z]+)+-\d{1,2}):")
_NO_PICKLE = "an UnkeySecretStr cannot be pickled: the plaintext must stay in memory"


@dataclass(frozen=True)
class UnkeyKey:
    """Where a settings field's key lives: put it in the field's ``Annotated[...]``.

    ``api_id`` is the Unkey API, and exactly one of ``alias`` (the stable, reader-facing name a
    rotation moves: the documented way) or ``key_id`` (one fixed key, which a rotation does
    not follow). ``store`` (``"vault"`` or ``"aws"``) says which source fills the field; None
    lets every unkey-secrets source in the settings class fill it, so name it when a class
    uses both. Validated when built: :class:`~unkey_secrets.InvalidInputError` for a bad id
    or alias, or for none or both of ``alias`` and ``key_id``::

        billing_key: Annotated[SecretStr, UnkeyKey(api_id="api_123", alias="billing")]
    """

    api_id: str
    alias: str | None = None
    key_id: str | None = None
    store: StoreName | None = None

    def __post_init__(self) -> None:
        validate_api_id(self.api_id)
        if (self.alias is None) == (self.key_id is None):
            raise InvalidInputError("UnkeyKey", "give exactly one of alias= or key_id=")
        if self.alias is not None:
            validate_alias(self.alias)
        if self.key_id is not None:
            validate_key_id(self.key_id)
        if self.store not in (None, "vault", "aws"):
            raise InvalidInputError("store", "expected 'vault', 'aws' or None")

    def describe(self) -> str:
        """``alias 'billing' of api_123`` or ``key key_abc of api_123`` (no I/O, no secret)."""
        if self.alias is not None:
            return f"alias {self.alias!r} of {self.api_id}"
        return f"key {self.key_id} of {self.api_id}"


@dataclass(frozen=True)
class KeyInfo:
    """What is known about a key read from a store, without its plaintext: safe to log.

    ``store`` is the backend (``"vault"``, ``"aws"``), ``location`` the Vault path
    (``mount/path``) or Secrets Manager ARN read, ``version`` the KV version or Secrets Manager
    VersionId read (None for KV v1), ``alias`` the alias the value was stored for. ``expires``
    is Unix milliseconds (None: never), ``issued_at`` ISO 8601 as stored, ``rerolled_from``
    the key this one replaced in a rotation, and ``fetched_at`` Unix seconds (``time.time()``)
    when this process read it. ``region`` is the AWS region that served the key (the region
    of the Secrets Manager ARN read: with several read regions, the one a failover reached);
    None for any other store.
    """

    key_id: str
    api_id: str
    store: str
    location: str
    version: str | None
    alias: str | None
    expires: int | None
    issued_at: str | None
    rerolled_from: str | None
    name: str | None
    external_id: str | None
    prefix: str | None
    fetched_at: float
    region: str | None = None

    @classmethod
    def from_stored(cls, stored: StoredKey, *, store: str, fetched_at: float) -> KeyInfo:
        """The metadata of ``stored`` (its plaintext is not copied)."""
        return cls(
            key_id=stored.key_id,
            api_id=stored.api_id,
            store=store,
            location=stored.location,
            version=stored.version,
            alias=stored.alias,
            expires=stored.expires,
            issued_at=stored.issued_at,
            rerolled_from=stored.rerolled_from,
            name=stored.name,
            external_id=stored.external_id,
            prefix=stored.prefix,
            fetched_at=fetched_at,
            region=arn_region(stored.location) if store == "aws" else None,
        )

    @property
    def expires_at(self) -> dt.datetime | None:
        """``expires`` as an aware UTC datetime (None: never expires)."""
        if self.expires is None:
            return None
        return dt.datetime.fromtimestamp(self.expires / 1000, tz=dt.timezone.utc)

    def expired(self, now: float) -> bool:
        """Whether the key's own expiry is at or before ``now`` (Unix seconds)."""
        return self.expires is not None and self.expires <= now * 1000


class UnkeySecretStr(SecretStr):
    """A :class:`pydantic.SecretStr` that also says which key it is (:attr:`info`).

    What a source puts in a field typed ``SecretStr``; type the field ``UnkeySecretStr`` to
    reach ``settings.billing_key.info.key_id`` with a type checker's help (or call
    :func:`key_info` on a ``SecretStr`` field). ``repr``/``str`` print a mask and the key_id,
    ``==`` runs in constant time, the hash does not depend on the plaintext, and pickling is
    refused (``copy`` returns the same object). The plaintext: ``get_secret_value()``.

    ``info`` is None when the value did not come from an unkey-secrets source: pydantic builds
    ``UnkeySecretStr(value)`` for a field typed ``UnkeySecretStr`` that ``init_settings``, the
    environment or ``model_validate_json`` filled.
    """

    def __init__(self, secret_value: str, info: KeyInfo | None = None) -> None:
        super().__init__(secret_value)
        self._info = info

    @property
    def info(self) -> KeyInfo | None:
        """The key's metadata: key_id, version, expiry... (no plaintext); None if not read."""
        return self._info

    def __repr__(self) -> str:
        # getattr with a default: safe on a half-built object (rendered with frame locals).
        info = getattr(self, "_info", None)
        if info is None:
            return f"UnkeySecretStr('{_MASK}')"
        return f"UnkeySecretStr('{_MASK}', key_id={info.key_id!r}, version={info.version!r})"

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, SecretStr):
            return NotImplemented
        return hmac.compare_digest(
            self.get_secret_value().encode(), other.get_secret_value().encode()
        )

    def __hash__(self) -> int:
        # SecretStr hashes the plaintext, which is an oracle for it; every value shares one.
        return hash(UnkeySecretStr)

    def __reduce__(self) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __getstate__(self) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __copy__(self) -> UnkeySecretStr:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> UnkeySecretStr:
        return self


def arn_region(location: str) -> str | None:
    """The region of a Secrets Manager ARN (``arn:aws:secretsmanager:eu-west-1:...``), else None."""
    match = _SECRET_ARN.match(location) if isinstance(location, str) else None
    return match.group(1) if match else None


def key_info(value: object) -> KeyInfo | None:
    """The :class:`KeyInfo` of a settings field a source filled; None for any other value.

    ``key_info(settings.billing_key).key_id`` works on a field typed plain ``SecretStr``. An
    :class:`UnkeySecretStr` another source filled (``init_settings``...) has none: None.
    """
    return value.info if isinstance(value, UnkeySecretStr) else None
