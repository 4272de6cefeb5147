"""The reader side's errors: each names what to do, and derives from the store error it refines.

::

    StoreError
    ├── SecretNotFoundError
    │   └── KeyNotFoundError          nothing under the alias / key_id (or a wrong mount, region...)
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

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import (
    DeletedVersionError,
    SecretNotFoundError,
    StoreAccessError,
    StoredValueError,
    StoreError,
    StoreUnavailableError,
)
from .._models import StoredKey
from ..stores.base import DEFAULT_ALIAS_TEMPLATE, DEFAULT_KEY_TEMPLATE
from ._model import UnkeyKey

if TYPE_CHECKING:
    from ..stores.base import SecretStore

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
    "key_not_found",
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
    """Nothing is stored under the alias or key_id (or the reader looks in the wrong place).

    The message says where the store read (Vault's mount and namespace; Secrets Manager's
    regions and the role assumed; the template) and, for an alias, the provision command that
    writes it there; for a marker without ``store=`` in a settings class with sources of both
    stores, that the marker should name the store its key lives in.
    """


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


def _policy_hint(store_name: str, location: str | None, store: SecretStore | None) -> str:
    if store_name == "vault":
        path = _vault_data_path(location)
        if _through_agent(store):
            # The app holds no token: the agent's auto-auth token is the one refused.
            return (
                f"the agent's auto-auth token needs read on {path}: give its auto-auth role "
                f"the reader policy ({VAULT_READER_POLICY})"
            )
        return (
            f"the reader's Vault policy needs read on {path} "
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


# -- what a hint says of the store read ------------------------------------------------------


def _through_agent(store: SecretStore | None) -> bool:
    """Whether ``store`` (a Vault store) sends its requests through a Vault Agent or Proxy."""
    return bool(getattr(getattr(store, "auto_auth", None), "through_agent", False))


def _vault_address_setting(store: SecretStore | None) -> str:
    """The setting that says where the Vault store's requests go: the agent's, or Vault's."""
    settings = getattr(getattr(store, "auto_auth", None), "settings", None)
    return "VAULT_AGENT_ADDR" if getattr(settings, "agent_addr", None) else "VAULT_ADDR"


def _template(store: SecretStore | None, kind: str) -> str | None:
    template = getattr(getattr(store, f"{kind}_template", None), "template", None)
    return template if isinstance(template, str) else None


def _aws_regions(store: SecretStore | None) -> tuple[str, ...]:
    """The regions a Secrets Manager store reads, in order (a failover store's, or its client's)."""
    regions = getattr(store, "regions", None)
    if isinstance(regions, tuple) and all(isinstance(r, str) for r in regions):
        return regions
    region = getattr(getattr(getattr(store, "client", None), "meta", None), "region_name", None)
    return (region,) if isinstance(region, str) else ()


class _Where:
    """Where a store reads (to check) and the global options that make a writer write there."""

    def __init__(self, store_name: str, store: SecretStore | None, kind: str) -> None:
        self.checks: list[str] = []
        self.options: list[str] = []
        self.environment: list[str] = []
        template = _template(store, kind)
        default = DEFAULT_ALIAS_TEMPLATE if kind == "alias" else DEFAULT_KEY_TEMPLATE
        prefix = {"vault": "UNKEY_SECRETS_VAULT_", "aws": "UNKEY_SECRETS_AWS_"}.get(store_name)
        if store_name == "vault":
            self._vault(store)
        elif store_name == "aws":
            self._aws(store)
        variable = f"{prefix}{kind.upper()}_TEMPLATE" if prefix else None
        shown = ", ".join(part for part in (template, variable) if part)
        self.checks.append(f"the {kind} template ({shown})" if shown else f"the {kind} template")
        if template is not None and template != default and variable is not None:
            # The writer renders the same location only with the same template.
            self.environment.append(f"{variable}={shlex.quote(template)}")

    def _vault(self, store: SecretStore | None) -> None:
        mount = getattr(store, "mount", None)
        if isinstance(mount, str):
            self.checks.append(f"the mount ({mount}, UNKEY_SECRETS_VAULT_MOUNT)")
            self.options.append(f"--mount {shlex.quote(mount)}")
        else:
            self.checks.append("the mount (UNKEY_SECRETS_VAULT_MOUNT)")
        adapter = getattr(getattr(store, "client", None), "adapter", None)
        namespace = getattr(adapter, "namespace", None)
        if isinstance(namespace, str) and namespace:
            self.checks.append(f"the namespace ({namespace}, VAULT_NAMESPACE)")
            self.options.append(f"--vault-namespace {shlex.quote(namespace)}")

    def _aws(self, store: SecretStore | None) -> None:
        regions = _aws_regions(store)
        if len(regions) > 1:
            self.checks.append(
                f"the regions read ({', '.join(regions)}, UNKEY_SECRETS_AWS_READ_REGIONS; the "
                "key is written in the first and replicated to the others)"
            )
        elif regions:
            self.checks.append(f"the region read ({regions[0]}, AWS_REGION)")
        else:
            self.checks.append("the region read (AWS_REGION)")
        if regions:
            self.options.append(f"--region {shlex.quote(regions[0])}")
        role = getattr(store, "role_arn", None)
        if isinstance(role, str):
            self.checks.append(
                f"the role assumed ({role}, UNKEY_SECRETS_AWS_ROLE_ARN: its account is the one "
                "read)"
            )
        else:
            self.checks.append("the account of the AWS credentials in use")

    def command(self, store_name: str, ref: UnkeyKey) -> str:
        """``unkey-secrets --store ... provision ...``: writes ``ref``'s alias where it is read."""
        words = [*self.environment, "unkey-secrets", "--store", store_name, *self.options]
        words += ["provision", "--api-id", ref.api_id, "--alias", str(ref.alias)]
        return " ".join(words)

    def check(self) -> str:
        *first, last = self.checks
        return f"{', '.join(first)} and {last}" if first else last


def key_not_found(
    ref: UnkeyKey,
    *,
    store_name: str,
    store: SecretStore | None = None,
    location: str | None = None,
    field: str | None = None,
    others: Sequence[str] = (),
    owner: str | None = None,
) -> KeyNotFoundError:
    """The :class:`KeyNotFoundError` for ``ref``, read from ``store`` (named ``store_name``).

    Its hint is the store's: where it read (Vault's mount and namespace, Secrets Manager's
    regions and the role assumed, the template) and a provision command that writes there.
    ``others``: the other stores whose unkey-secrets sources the settings class ``owner``
    uses; with a marker that names no store, the hint says to give it ``store=``.
    """
    subject = _subject(ref, field)
    where = _Where(store_name, store, "alias" if ref.alias is not None else "key")
    create = f"create it ({where.command(store_name, ref)})" if ref.alias is not None else None
    choices = sorted(set(others) - {store_name})
    if ref.store is None and choices:
        named = " or ".join(f'store="{other}"' for other in choices)
        todo = (
            f"its UnkeyKey names no store, and {owner or 'the settings class'} has sources of "
            f"{' and '.join([store_name, *choices])}: the {store_name} source read it. If the "
            f"key lives in {' or '.join(choices)}, give its UnkeyKey {named}; if it belongs in "
            f'{store_name}, give it store="{store_name}" and '
            f"{create or f'check the key_id and {where.check()} the reader uses'}"
        )
    elif create is not None:
        todo = f"{create}, or check {where.check()} the reader uses"
    else:
        todo = f"check the key_id, {where.check()} the reader uses"
    return KeyNotFoundError(
        f"{subject}: nothing stored at {location or 'its location'}; {todo}",
        store=store_name,
        location=location,
        api_id=ref.api_id,
        alias=ref.alias,
        key_id=ref.key_id,
        field=field,
    )


def _unavailable_hint(exc: StoreError, store: SecretStore | None) -> str:
    if exc.store != "vault":
        return "the store is unreachable, throttling or failing; retry later"
    reason = getattr(exc, "reason", None)
    if reason == "unreachable":
        setting = _vault_address_setting(store)
        agent = setting == "VAULT_AGENT_ADDR" or _through_agent(store)
        what = "the Vault Agent or Proxy" if agent else "Vault"
        return (
            f"no connection could be made to {setting}: check that address, and that {what} "
            "runs and listens there; retry when it is back"
        )
    if reason == "sealed":
        return "Vault answered 503: it is sealed (unseal it) or has no active node; retry later"
    return (
        "Vault (or an agent or proxy in between) is sealed or has no active node (503), is "
        "throttling (429) or failing (5xx); retry when it is back"
    )


def translate_read_error(
    exc: StoreError,
    ref: UnkeyKey,
    *,
    field: str | None = None,
    store: SecretStore | None = None,
) -> StoreError:
    """The reader-side error to raise for ``exc``, a store's error reading ``ref``.

    ``store`` is the store read (its mount, regions or role make the hints precise). Errors of
    other kinds (a TLS failure, an unknown KV route) are returned as they are: their message
    already says what is wrong. The result never quotes ``exc``'s cause.
    """
    if isinstance(exc, ReaderError):
        return exc
    store_name, location = exc.store, exc.location
    subject = _subject(ref, field)
    ids: dict[str, Any] = {
        "api_id": ref.api_id,
        "alias": ref.alias,
        "key_id": ref.key_id,
        "field": field,
    }
    if isinstance(exc, SecretNotFoundError):
        return key_not_found(
            ref, store_name=store_name, store=store, location=location, field=field
        )
    if isinstance(exc, DeletedVersionError):
        return KeyVersionDeletedError(
            f"{subject}: {exc}",
            store=store_name,
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
            f"{subject}: {exc}; {_policy_hint(store_name, location, store)}",
            store=store_name,
            location=location,
            **ids,
        )
    if isinstance(exc, StoredValueError):
        return KeyShapeError(
            f"{subject}: {exc} (expected the JSON of format unkey-secrets/key/v1 with a 'key' "
            "member, as unkey-secrets writes it)",
            store=store_name,
            location=location,
            **ids,
        )
    if isinstance(exc, StoreUnavailableError):
        error = KeyStoreUnavailableError(
            f"{subject}: {exc}; {_unavailable_hint(exc, store)}",
            store=store_name,
            location=location,
            **ids,
        )
        error.reason = exc.reason
        return error
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
