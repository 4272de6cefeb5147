"""The reader side's errors: each names what to do, and derives from the store error it refines.

::

    StoreError
    ├── SecretNotFoundError
    │   └── KeyNotFoundError          nothing under the alias / key_id (or a wrong mount/template)
    ├── DeletedVersionError
    │   └── KeyVersionDeletedError    the alias's current version was deleted; names the fix
    ├── StoreAccessError
    │   └── KeyAccessDeniedError      the reader's policy lacks read; names the policy to grant
    ├── StoredValueError
    │   ├── KeyShapeError             the value is not an unkey-secrets key (or another key's)
    │   └── KeyRevokedError           Unkey says the stored key is not valid (``verify=True``)
    │       └── KeyExpiredError       the stored key's own expiry has passed
    └── StoreUnavailableError
        └── KeyStoreUnavailableError  Vault sealed or unreachable, Secrets Manager throttling

Each carries ``store``, ``location`` (as every :class:`~unkey_secrets.StoreError`), ``api_id``,
``alias``, ``key_id`` (as far as known) and ``field`` (the settings field being filled, or
None). None quotes a value or a credential. A caller catching the store's classes catches
these too.
"""

from __future__ import annotations

from .._errors import (
    DeletedVersionError,
    SecretNotFoundError,
    StoreAccessError,
    StoredValueError,
    StoreError,
    StoreUnavailableError,
)
from .._models import StoredKey
from ._model import UnkeyKey

__all__ = [
    "AWS_READER_POLICY",
    "VAULT_READER_POLICY",
    "KeyAccessDeniedError",
    "KeyExpiredError",
    "KeyNotFoundError",
    "KeyRevokedError",
    "KeyShapeError",
    "KeyStoreUnavailableError",
    "KeyVersionDeletedError",
    "ReaderError",
    "check_matches",
    "translate_read_error",
]

#: The shipped least-privilege reader policies, as the hints name them.
VAULT_READER_POLICY = "policies/vault-reader.hcl"
AWS_READER_POLICY = "policies/aws-reader.json"


class ReaderError(StoreError):
    """Mixed into every reader-side error: what was being read, for which settings field."""

    def __init__(
        self,
        message: str,
        *,
        store: str,
        location: str | None = None,
        api_id: str | None = None,
        alias: str | None = None,
        key_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.api_id = api_id
        self.alias = alias
        self.key_id = key_id
        self.field = field
        super().__init__(message, store=store, location=location)


class KeyNotFoundError(ReaderError, SecretNotFoundError):
    """Nothing is stored under the alias or key_id (or the mount or template is not the one)."""


class KeyVersionDeletedError(ReaderError, DeletedVersionError):
    """The alias's current version was deleted or destroyed: no key is served from it.

    Something was stored (unlike :class:`KeyNotFoundError`): ``version``, ``deleted_at`` and
    ``destroyed`` say what happened, ``key_id`` names the key the alias's metadata still names,
    and the message the command that stores a new version.
    """

    def __init__(
        self,
        message: str,
        *,
        store: str,
        location: str | None = None,
        api_id: str | None = None,
        alias: str | None = None,
        key_id: str | None = None,
        field: str | None = None,
        version: int = 0,
        deleted_at: str | None = None,
        destroyed: bool = False,
    ) -> None:
        super().__init__(
            message,
            store=store,
            location=location,
            api_id=api_id,
            alias=alias,
            key_id=key_id,
            field=field,
        )
        # Set after the bases (DeletedVersionError's defaults would undo them).
        self.key_id = key_id
        self.version = version
        self.deleted_at = deleted_at
        self.destroyed = destroyed


class KeyAccessDeniedError(ReaderError, StoreAccessError):
    """The store refused the read: the reader's token or role lacks the policy that grants it."""


class KeyShapeError(ReaderError, StoredValueError):
    """The value read is not an unkey-secrets key, or holds another API's or key's value."""


class KeyRevokedError(ReaderError, StoredValueError):
    """Unkey answered that the stored key is not valid (``code``: NOT_FOUND, DISABLED, EXPIRED).

    Raised only when verification was asked for (``verify=True``). Rotate the alias, or point
    it at a valid key; the store still holds a key nobody can use.
    """

    def __init__(
        self,
        message: str,
        *,
        store: str,
        location: str | None = None,
        api_id: str | None = None,
        alias: str | None = None,
        key_id: str | None = None,
        field: str | None = None,
        code: str = "",
    ) -> None:
        self.code = code
        super().__init__(
            message,
            store=store,
            location=location,
            api_id=api_id,
            alias=alias,
            key_id=key_id,
            field=field,
        )


class KeyExpiredError(KeyRevokedError):
    """The key read (or cached) has an ``expires`` that has passed: it is never handed out.

    Raised with or without ``verify``, as :class:`KeyRevokedError` with ``code`` ``EXPIRED``
    (a caller catching that catches this too). Rotate the alias to a key that has not expired.
    """


class KeyStoreUnavailableError(ReaderError, StoreUnavailableError):
    """The store could not answer now (sealed, unreachable, throttling, 5xx): worth retrying."""


def _subject(ref: UnkeyKey, field: str | None) -> str:
    where = ref.describe()
    return f"settings field {field!r} ({where})" if field else where


def _policy_hint(store_name: str, location: str | None) -> str:
    if store_name == "vault":
        return (
            f"the reader's Vault policy needs read on {_vault_data_path(location)} "
            f"(see {VAULT_READER_POLICY}); check also that the token has not expired"
        )
    if store_name == "aws":
        return (
            f"the reader needs secretsmanager:GetSecretValue on {location or 'the alias'} (and "
            f"kms:Decrypt through Secrets Manager for a customer managed key; see "
            f"{AWS_READER_POLICY})"
        )
    return "grant the reader read access to that location"


def _vault_data_path(location: str | None) -> str:
    """``secret/unkey/a/b`` as the KV v2 API path a policy names: ``secret/data/unkey/a/b``."""
    if not location or "/" not in location:
        return location or "the alias's path"
    mount, _, path = location.partition("/")
    return f"{mount}/data/{path}"


def translate_read_error(exc: StoreError, ref: UnkeyKey, *, field: str | None = None) -> StoreError:
    """The reader-side error to raise for ``exc``, a store's error reading ``ref``.

    Errors of other kinds (a TLS failure, an unknown KV route) are returned as they are:
    their message already says what is wrong. The result never quotes ``exc``'s cause.
    """
    if isinstance(exc, ReaderError):
        return exc
    store, location = exc.store, exc.location
    subject = _subject(ref, field)
    ids = {"api_id": ref.api_id, "alias": ref.alias, "key_id": ref.key_id, "field": field}
    if isinstance(exc, SecretNotFoundError):
        if ref.alias is not None:
            todo = (
                f"create it (unkey-secrets --store {store} provision --api-id {ref.api_id} "
                f"--alias {ref.alias}), or check the mount and alias template the reader uses"
            )
        else:
            todo = "check the key_id, the mount and the key template the reader uses"
        return KeyNotFoundError(
            f"{subject}: nothing stored at {location or 'its location'}; {todo}",
            store=store,
            location=location,
            **ids,
        )
    if isinstance(exc, DeletedVersionError):
        return KeyVersionDeletedError(
            f"{subject}: {exc}",
            store=store,
            location=location,
            api_id=ref.api_id,
            alias=ref.alias,
            key_id=ref.key_id or exc.key_id,
            field=field,
            version=exc.version,
            deleted_at=exc.deleted_at,
            destroyed=exc.destroyed,
        )
    if isinstance(exc, StoreAccessError):
        return KeyAccessDeniedError(
            f"{subject}: {exc}; {_policy_hint(store, location)}",
            store=store,
            location=location,
            **ids,
        )
    if isinstance(exc, StoredValueError):
        return KeyShapeError(
            f"{subject}: {exc} (expected the JSON of format unkey-secrets/key/v1 with a 'key' "
            "member, as unkey-secrets writes it)",
            store=store,
            location=location,
            **ids,
        )
    if isinstance(exc, StoreUnavailableError):
        if store == "vault":
            hint = (
                "Vault is sealed (503: unseal it), has no active node, is throttling, or is "
                "unreachable at VAULT_ADDR (or VAULT_AGENT_ADDR, the agent or proxy in between); "
                "retry when it is back"
            )
        else:
            hint = "the store is unreachable, throttling or failing; retry later"
        return KeyStoreUnavailableError(
            f"{subject}: {exc}; {hint}", store=store, location=location, **ids
        )
    return exc


def check_matches(stored: StoredKey, ref: UnkeyKey, *, store: str, field: str | None) -> None:
    """Raise :class:`KeyShapeError` unless ``stored`` is the key ``ref`` asked for.

    An alias must hold a key of ``ref.api_id``; a key_id read must hold that very key_id.
    """
    problem = None
    if stored.api_id != ref.api_id:
        problem = f"it holds a key of {stored.api_id}, not of {ref.api_id}"
    elif ref.key_id is not None and stored.key_id != ref.key_id:
        problem = f"it holds {stored.key_id}, not {ref.key_id}"
    if problem is not None:
        raise KeyShapeError(
            f"{_subject(ref, field)}: the value at {stored.location} is not the key asked for: "
            f"{problem}",
            store=store,
            location=stored.location,
            api_id=ref.api_id,
            alias=ref.alias,
            key_id=stored.key_id,
            field=field,
        )
