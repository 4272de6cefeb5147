"""A reader's Secrets Manager store over several regions: the first that answers serves the key.

:class:`RegionFailoverStore` holds one :class:`~unkey_secrets.stores.aws.SecretsManagerStore`
per region, in the order given (the primary first, then its replicas: the store's
``replica_regions`` and the rotated-key Terraform module make them). Each read goes to the
first region; it moves on to the next when that region

* is **throttled** (ThrottlingException, TooManyRequestsException, an HTTP 429),
* is **out** (no connection, no answer within the deadline, a 5xx): both raise
  :class:`~unkey_secrets.StoreUnavailableError` in that region, or
* has **no replica** of the secret (ResourceNotFoundException:
  :class:`~unkey_secrets.SecretNotFoundError` in that region).

Any other failure is raised from the region that gave it, without trying the next: an access
denial (:class:`~unkey_secrets.StoreAccessError`: a policy, KMS key policy or credential
error is the same in every region, and must be seen and fixed, not hidden behind a replica),
a value that is not a key (:class:`~unkey_secrets.StoredValueError`), a secret scheduled for
deletion. A key no region has raises :class:`~unkey_secrets.SecretNotFoundError`; when no
region served it and at least one was throttled or out, the key may well exist there:
:class:`~unkey_secrets.StoreUnavailableError` (a :class:`~unkey_secrets.config.KeyReader` then
serves its cached key within ``max_stale``). Both name every region tried and why.

The region that served a key is the region of its ARN: ``StoredKey.location``, and
:attr:`unkey_secrets.config.KeyInfo.region` for a reader. The store reads only (``get``,
``get_current``, ``get_many``, ``read_rotation``); every write, and the writer's metadata
checks, raise :class:`~unkey_secrets.ConfigurationError`: keys are written in the primary
region, by a :class:`~unkey_secrets.stores.aws.SecretsManagerStore`, and Secrets Manager
copies them to the replicas.

A reader built on it::

    store = RegionFailoverStore.for_regions(["eu-west-1", "eu-central-1"])
    reader = KeyReader(store)  # read_timeout: the regions' timeouts summed
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from ..._config import load_settings
from ..._errors import (
    ConfigurationError,
    InvalidInputError,
    SecretNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from ..._models import AliasState, IssuedKey, KeyEntry, KeyRef, StoredKey, StoredLocation
from ..._redact import guarded
from ...transport.policy import deadline
from ..base import SecretStore, _Unchecked
from .errors import STORE
from .settings import AwsSettings, check_region

if TYPE_CHECKING:
    from ...rotation.record import RotationRecord
    from .store import SecretsManagerStore

__all__ = ["FAILOVER_ERRORS", "RegionFailoverStore", "reader_store"]

_log = logging.getLogger("unkey_secrets.stores.aws")
_T = TypeVar("_T")

#: The errors in one region after which the next region is read.
FAILOVER_ERRORS: tuple[type[StoreError], ...] = (StoreUnavailableError, SecretNotFoundError)
_READ_ONLY = (
    "RegionFailoverStore reads only: write with a SecretsManagerStore in the primary region "
    "(Secrets Manager copies each write to the replica regions)"
)


def _region_of(store: SecretsManagerStore) -> str:
    region = getattr(getattr(store.client, "meta", None), "region_name", None)
    if not isinstance(region, str):
        raise InvalidInputError("stores", "each store's client must name its region")
    return region


def _region_share(store: SecretsManagerStore) -> AbstractContextManager[object]:
    """A deadline of the region's own timeout (its client's ``read_timeout``) for its reads.

    :attr:`RegionFailoverStore.read_timeout` sums the regions' timeouts so that a region that
    never answers leaves the next its whole timeout: this keeps each region to its share, in a
    batch of many calls (waves of them, a request retried) as in a single read.
    """
    config = getattr(getattr(store.client, "meta", None), "config", None)
    timeout = getattr(config, "read_timeout", None)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        return nullcontext()
    if not math.isfinite(timeout) or timeout <= 0:
        return nullcontext()
    return deadline(float(timeout))


class _Attempts:
    """The failures of one read, region by region, and the error they add up to."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, StoreError]] = []

    def error(self, path: str) -> StoreError:
        regions = ", ".join(region for region, _ in self.failures)
        if all(isinstance(exc, SecretNotFoundError) for _, exc in self.failures):
            return SecretNotFoundError(
                f"no secret at {path} in any region read ({regions})", store=STORE, location=path
            )
        reasons = "; ".join(f"{region}: {exc}" for region, exc in self.failures)
        return StoreUnavailableError(
            f"no region served {path} ({reasons})", store=STORE, location=path
        )


class RegionFailoverStore(SecretStore):
    """Reads from the first of several regions that serves the key (see the module).

    ``stores`` are :class:`~unkey_secrets.stores.aws.SecretsManagerStore` objects, one per
    region, in the order to read them; each names its region by its client
    (``client.meta.region_name``), and all have the same templates. Build it from settings
    with :meth:`for_regions`. Raises :class:`~unkey_secrets.InvalidInputError` for no store,
    a region named twice or templates that differ.
    """

    name = STORE

    @guarded
    def __init__(self, stores: Sequence[SecretsManagerStore]) -> None:
        from .store import SecretsManagerStore

        chosen = list(stores)
        if not chosen or not all(isinstance(s, SecretsManagerStore) for s in chosen):
            raise InvalidInputError("stores", "expected one or more SecretsManagerStore objects")
        regions = [_region_of(s) for s in chosen]
        if len(set(regions)) != len(regions):
            raise InvalidInputError("stores", "a region is named twice")
        first = chosen[0]
        templates = [
            (s.key_template.template, s.alias_template.template, s.rotation_template.template)
            for s in chosen
        ]
        if len(set(templates)) != 1:
            raise InvalidInputError("stores", "every region's store must use the same templates")
        super().__init__(
            key_template=first.key_template.template,
            alias_template=first.alias_template.template,
            rotation_template=first.rotation_template.template,
        )
        #: The regions, in the order they are read.
        self.regions: tuple[str, ...] = tuple(regions)
        #: The store of each region, in the same order.
        self.stores: tuple[SecretsManagerStore, ...] = tuple(chosen)
        #: The role every region's client assumes, if one does (the reader's errors name it).
        self.role_arn: str | None = next((s.role_arn for s in chosen if s.role_arn), None)

    @classmethod
    @guarded
    def for_regions(
        cls,
        regions: Sequence[str] | None = None,
        *,
        settings: AwsSettings | None = None,
        **overrides: Any,
    ) -> RegionFailoverStore:
        """One store per region of ``regions``, sharing the settings and their credentials.

        ``regions`` default to ``settings.read_regions`` (``UNKEY_SECRETS_AWS_READ_REGIONS``),
        else ``settings.region`` alone. ``settings`` default to
        :func:`~unkey_secrets.settings.load_settings` with ``overrides`` (AwsSettings fields:
        ``endpoint_url``, ``profile``, ``role_arn``, ``timeout``...). One credential source
        serves every region: the chain or profile, or the role assumed once (through STS in
        the first region) and renewed for all. Each region's client sends each request once
        (botocore's retries off, unless configured) and waits ``settings.timeout`` seconds at
        most per request. With ``endpoint_url`` set, every region's requests go to that
        endpoint (moto, LocalStack); to give each region an endpoint of its own, build its
        store and pass the stores to the constructor.

        Raises :class:`~unkey_secrets.ConfigurationError` for no region, a bad setting or
        ``overrides`` with ``settings``, and what the store's constructor raises.
        """
        from .store import SecretsManagerStore, _role

        if settings is None:
            settings = load_settings(AwsSettings, **overrides)
        elif overrides:
            raise ConfigurationError("pass settings or overrides, not both")
        chosen = _check_regions(regions) if regions is not None else None
        chosen = chosen or settings.read_regions or ((settings.region,) if settings.region else ())
        if not chosen:
            raise ConfigurationError(
                "no region to read: set UNKEY_SECRETS_AWS_READ_REGIONS (or AWS_REGION), or "
                "pass regions=[...]"
            )
        from .client import AwsSession

        role = _role(
            settings.role_arn,
            settings.external_id,
            settings.role_session_name,
            settings.duration_seconds,
        )
        session = AwsSession(
            profile=settings.profile,
            role=role,
            region=chosen[0],
            sts_endpoint_url=settings.sts_endpoint_url,
            timeout=settings.timeout,
        )
        stores = [
            SecretsManagerStore(
                session.client(
                    region,
                    endpoint_url=settings.endpoint_url,
                    max_connections=settings.max_connections,
                ),
                key_template=settings.key_template,
                alias_template=settings.alias_template,
                rotation_template=settings.rotation_template,
                timeout=settings.timeout,
            )
            for region in chosen
        ]
        built = cls(stores)
        if role is not None:
            built.role_arn = role.role_arn
        return built

    @property
    def read_timeout(self) -> float | None:
        """Seconds a read may take when every region is tried: the regions' timeouts summed.

        :class:`~unkey_secrets.config.KeyReader` takes it as its default ``read_timeout``, so
        a region that never answers still leaves the next its whole timeout. None when a
        client does not say its ``read_timeout``.
        """
        total = 0.0
        for store in self.stores:
            config = getattr(getattr(store.client, "meta", None), "config", None)
            timeout = getattr(config, "read_timeout", None)
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                return None
            total += float(timeout)
        return total

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        return f"{type(self).__name__}(regions={getattr(self, 'regions', None)!r})"

    # -- reads ----------------------------------------------------------------------------------

    def _first(self, path: str, read: Callable[[SecretsManagerStore], _T]) -> _T:
        """``read`` in each region in turn until one serves ``path`` (see the module)."""
        attempts = _Attempts()
        for region, store in zip(self.regions, self.stores, strict=True):
            try:
                with _region_share(store):
                    result = read(store)
            except FAILOVER_ERRORS as exc:
                attempts.failures.append((region, exc))
                _log.warning("region %s did not serve %s: %s", region, path, exc)
                continue
            if attempts.failures:
                tried = ", ".join(r for r, _ in attempts.failures)
                _log.warning("%s served from %s, after %s", path, region, tried)
            return result
        raise attempts.error(path)

    def _check_location(self, location: str) -> None:
        """Refuse a rendered location that is not a Secrets Manager name (no I/O)."""
        self.stores[0]._check_location(location)

    def _get(self, path: str) -> StoredKey:
        return self._first(path, lambda store: store._get(path))

    def _get_current(self, path: str) -> StoredKey:
        return self._first(path, lambda store: store._get_current(path))

    def _read_rotation(self, path: str) -> RotationRecord | None:
        def read(store: SecretsManagerStore) -> RotationRecord:
            record = store._read_rotation(path)
            if record is None:
                # A region without the record is a missing replica too: the next is read.
                raise SecretNotFoundError(f"no secret at {path}", store=STORE, location=path)
            return record

        try:
            return self._first(path, read)
        except SecretNotFoundError:
            return None

    def _get_many(self, refs: list[KeyRef], concurrency: int) -> list[StoredKey | StoreError]:
        """Each region reads what the regions before it did not serve, as it reads many."""
        results: list[StoredKey | StoreError | None] = [None] * len(refs)
        attempts = [_Attempts() for _ in refs]
        pending = list(range(len(refs)))
        for region, store in zip(self.regions, self.stores, strict=True):
            if not pending:
                break
            with _region_share(store):
                answers = store._get_many([refs[i] for i in pending], concurrency)
            still: list[int] = []
            for index, answer in zip(pending, answers, strict=True):
                if isinstance(answer, FAILOVER_ERRORS):
                    attempts[index].failures.append((region, answer))
                    still.append(index)
                else:
                    results[index] = answer
            if still and len(still) != len(pending):
                _log.warning(
                    "region %s did not serve %d of %d keys", region, len(still), len(pending)
                )
            pending = still
        for index in pending:
            results[index] = attempts[index].error(self._path_of(refs[index]))
        return [r for r in results if r is not None]

    def _path_of(self, ref: KeyRef) -> str:
        if ref.alias is not None:
            return self.alias_location(api_id=ref.api_id, alias=ref.alias)
        assert ref.key_id is not None
        return self.key_location(api_id=ref.api_id, key_id=ref.key_id)

    # -- writes and the writer's checks: refused ------------------------------------------------

    def _check_writable(self) -> None:
        raise ConfigurationError(_READ_ONLY)

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        raise ConfigurationError(_READ_ONLY)

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | _Unchecked | None
    ) -> StoredLocation:
        raise ConfigurationError(_READ_ONLY)

    def _write_rotation(self, record: RotationRecord, path: str) -> None:
        raise ConfigurationError(_READ_ONLY)

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        raise ConfigurationError(_READ_ONLY)

    def _alias_state(self, path: str, api_id: str, alias: str) -> AliasState | None:
        raise ConfigurationError(_READ_ONLY)

    def _alias_exists(self, path: str, api_id: str, alias: str) -> bool:
        raise ConfigurationError(_READ_ONLY)


def _check_regions(regions: Sequence[str]) -> tuple[str, ...]:
    if isinstance(regions, str):
        raise InvalidInputError("regions", "expected a sequence of region names")
    for region in regions:
        try:
            check_region(region)
        except ValueError:
            raise InvalidInputError("regions", f"{region!r} is not a region name") from None
    if len(set(regions)) != len(regions):
        raise InvalidInputError("regions", "a region is named twice")
    return tuple(regions)


@guarded
def reader_store(
    settings: AwsSettings | None = None,
    *,
    client: Any = None,
    regions: Sequence[str] | None = None,
) -> SecretStore:
    """The store a Secrets Manager reader reads: one region, or several with failover.

    With ``client`` (a boto3 ``secretsmanager`` client), a
    :class:`~unkey_secrets.stores.aws.SecretsManagerStore` over it (``regions`` then raise
    :class:`~unkey_secrets.ConfigurationError`: a client has one region). Otherwise, with
    ``regions`` or ``settings.read_regions`` (``UNKEY_SECRETS_AWS_READ_REGIONS``), a
    :class:`RegionFailoverStore` over them; else a ``SecretsManagerStore`` of
    ``settings.region``. ``settings`` default to the environment.
    """
    from .store import SecretsManagerStore

    if client is not None:
        if regions:
            raise ConfigurationError("regions= reads through clients built here; pass no client")
        return SecretsManagerStore(client, settings=settings)
    if settings is None:
        settings = load_settings(AwsSettings)
    if regions or settings.read_regions:
        return RegionFailoverStore.for_regions(regions, settings=settings)
    return SecretsManagerStore(settings=settings)
