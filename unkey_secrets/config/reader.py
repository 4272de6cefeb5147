"""A cached, thread-safe reader of the current key, for long-running apps.

:class:`KeyReader` holds one store (and optionally an Unkey client to verify with) and hands
out one :class:`CachedKey` per alias or key_id. A cached key is read again when it is older
than ``max_age`` seconds (as Powertools' parameters and ``aws-secretsmanager-caching`` do),
or at once with :meth:`CachedKey.refresh` (for an app that just got a 401). However many
threads ask, one read per alias is in flight at a time; the others wait for its answer.

A rotation keeps the old key valid for its grace period, so an app whose ``max_age`` is
shorter than the grace period never uses a key that has ended. The reader checks this: when
it reads a key that replaced another, it reads that rotation's record (if its policy lets it)
and warns with :class:`MaxAgeWarning` when ``max_age`` is longer than the recorded grace
period.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError, InvalidInputError, StoreError, UnkeySecretsError
from .._models import StoredKey
from .._redact import guarded
from .._secret import Secret
from ._model import KeyInfo, UnkeyKey, UnkeySecretStr
from .errors import KeyRevokedError, check_matches, translate_read_error

if TYPE_CHECKING:
    import hvac
    from pydantic_settings import BaseSettings

    from ..stores.aws.settings import AwsSettings
    from ..stores.base import SecretStore
    from ..stores.vault.settings import VaultSettings
    from ..unkey import UnkeyClient

__all__ = [
    "DEFAULT_MAX_AGE",
    "CachedKey",
    "ChangeCallback",
    "KeyReader",
    "MaxAgeWarning",
    "field_ref",
]

_log = logging.getLogger("unkey_secrets.config")

#: The default ``max_age``: 5 minutes, well inside the default 24 h grace period.
DEFAULT_MAX_AGE = 300.0
#: Verification codes that mean the key itself can no longer be used.
_DEAD_CODES = frozenset({"NOT_FOUND", "DISABLED", "EXPIRED"})
#: After a failed automatic refresh served the cached key, the next try waits this long
#: (doubling up to ``max_age``).
_FIRST_BACKOFF = 1.0

#: ``callback(old, new)``: the key behind a :class:`CachedKey` changed.
ChangeCallback = Callable[[KeyInfo, KeyInfo], None]


class MaxAgeWarning(UserWarning):
    """``max_age`` is longer than the grace period the last rotation recorded."""


def field_ref(settings_cls: type[BaseSettings], field_name: str) -> UnkeyKey:
    """The :class:`UnkeyKey` marker of ``settings_cls``'s field ``field_name``.

    Raises :class:`~unkey_secrets.ConfigurationError` when the field has no marker.
    """
    field = settings_cls.model_fields.get(field_name)
    if field is not None:
        for item in field.metadata:
            if isinstance(item, UnkeyKey):
                return item
    raise ConfigurationError(
        f"{settings_cls.__name__}.{field_name} has no UnkeyKey(...) marker in its Annotated type"
    )


def _check_max_age(max_age: float) -> float:
    if (
        not isinstance(max_age, (int, float))
        or isinstance(max_age, bool)
        or not math.isfinite(max_age)
        or max_age < 0
    ):
        raise InvalidInputError("max_age", "expected a finite number of seconds, 0 or more")
    return float(max_age)


class _Flight:
    """One read in progress; the threads that asked meanwhile wait for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: StoredKey | None = None
        self.error: BaseException | None = None


class CachedKey:
    """The current key behind one alias (or key_id), read at most every ``max_age`` seconds.

    Built by :meth:`KeyReader.key`. Thread-safe: :meth:`get` answers from memory while the
    key is fresh; when it is older than ``max_age`` (seconds), one caller reads the store and
    the others wait for that read (single-flight). If an automatic re-read fails and the
    cached key's own expiry has not passed, the cached key is returned, a warning is logged
    (never the key), and the store is tried again after 1 s, 2 s, 4 s... (at most
    ``max_age``). :meth:`refresh` always reads and raises on failure.

    Errors (:mod:`unkey_secrets.config.errors`): :class:`~.KeyNotFoundError`,
    :class:`~.KeyAccessDeniedError` (naming the reader policy), :class:`~.KeyShapeError`,
    :class:`~.KeyStoreUnavailableError`, and with ``verify``, :class:`~.KeyRevokedError`
    (or an :class:`~unkey_secrets.UnkeyError` if Unkey could not be asked).
    """

    def __init__(self, reader: KeyReader, ref: UnkeyKey) -> None:
        self._reader = reader
        self.ref = ref
        self._lock = threading.Lock()
        self._stored: StoredKey | None = None
        self._info: KeyInfo | None = None
        self._fresh_until = -math.inf
        self._backoff = 0.0
        self._flight: _Flight | None = None
        self._callbacks: list[ChangeCallback] = []
        self._checked_grace: set[str] = set()
        #: How many times the store was read (for tests and metrics).
        self.reads = 0

    def __repr__(self) -> str:
        current = self._info.key_id if self._info is not None else None
        store = self._reader.store.name
        return f"CachedKey({self.ref.describe()}, store={store!r}, key_id={current!r})"

    @property
    def max_age(self) -> float:
        """Seconds a read stays fresh (the reader's ``max_age``)."""
        return self._reader.max_age

    # -- reading -------------------------------------------------------------------------------

    @guarded
    def get(self, *, field: str | None = None) -> StoredKey:
        """The current key (``.secret`` is masked in every repr), read if older than max_age.

        ``field`` names the settings field being filled, for error messages.
        """
        return self._obtain(force=False, field=field)

    @guarded
    def refresh(self) -> StoredKey:
        """Read the store now (or join the read already in flight) and return the key.

        For an app that just got a 401 with the cached key. Raises on failure.
        """
        return self._obtain(force=True, field=None)

    def secret(self) -> Secret:
        """The current key's plaintext holder (:meth:`Secret.reveal` gives the text)."""
        return self.get().secret

    def secret_str(self) -> UnkeySecretStr:
        """The current key as a :class:`UnkeySecretStr` (a ``SecretStr`` with ``.info``)."""
        stored = self.get()
        return UnkeySecretStr(stored.secret.reveal(), self._info_for(stored))

    def info(self) -> KeyInfo:
        """The current key's metadata (key_id, version, expiry...), read if older than max_age."""
        return self._info_for(self.get())

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(old, new)`` (two :class:`KeyInfo`) whenever a read finds another key.

        Called in the thread that made the read, after the cache was updated, never under a
        lock; an exception it raises is logged (its class only) and swallowed. Returns a
        function that unsubscribes ``callback``.
        """
        with self._lock:
            self._callbacks.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return unsubscribe

    # -- the machinery -------------------------------------------------------------------------

    def _info_for(self, stored: StoredKey) -> KeyInfo:
        with self._lock:
            info = self._info
        if info is not None and info.key_id == stored.key_id and info.version == stored.version:
            return info
        return KeyInfo.from_stored(stored, store=self._reader.store.name, fetched_at=time.time())

    def _obtain(self, *, force: bool, field: str | None) -> StoredKey:
        clock = self._reader.clock
        with self._lock:
            if not force and self._stored is not None and clock() < self._fresh_until:
                return self._stored
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.result is not None
            return flight.result
        try:
            stored = self._read(field)
        except BaseException as exc:
            fallback = None if force else self._fallback(exc)
            with self._lock:
                self._flight = None
                if fallback is None:
                    flight.error = exc
                else:
                    flight.result = fallback
            flight.done.set()
            if fallback is None:
                raise
            return fallback
        old, new = self._accept(stored)
        with self._lock:
            self._flight = None
            flight.result = stored
            callbacks = list(self._callbacks)
        flight.done.set()
        if old is not None and old.key_id != new.key_id:
            _log.info(
                "key behind %s changed: %s -> %s", self.ref.describe(), old.key_id, new.key_id
            )
            for callback in callbacks:
                try:
                    callback(old, new)
                except Exception as exc:  # noqa: BLE001 (a callback must not break reads)
                    _log.warning("on_change callback failed (%s)", type(exc).__name__)
        self._check_grace(stored)
        return stored

    def _read(self, field: str | None) -> StoredKey:
        """One read of the store (and of Unkey, with verify), errors translated."""
        reader = self._reader
        self.reads += 1
        try:
            stored = reader._read_store(self.ref)
        except StoreError as exc:
            failure = translate_read_error(exc, self.ref, field=field)
        else:
            check_matches(stored, self.ref, store=reader.store.name, field=field)
            if reader.verify:
                self._verify(stored, field)
            return stored
        # Raised outside the handler: nothing the store's error chained comes along.
        raise failure

    def _verify(self, stored: StoredKey, field: str | None) -> None:
        unkey = self._reader.unkey
        assert unkey is not None
        # credits_cost=0: a check must not use up a key's credits.
        verdict = unkey.verify_key(stored.secret, credits_cost=0)
        if not verdict.valid and verdict.code in _DEAD_CODES:
            subject = (
                f"settings field {field!r} ({self.ref.describe()})"
                if field
                else (self.ref.describe())
            )
            raise KeyRevokedError(
                f"{subject}: the stored key {stored.key_id} at {stored.location} is not valid "
                f"in Unkey ({verdict.code}); rotate the alias or point it at a valid key",
                store=self._reader.store.name,
                location=stored.location,
                api_id=self.ref.api_id,
                alias=self.ref.alias,
                key_id=stored.key_id,
                field=field,
                code=verdict.code,
            )

    def _accept(self, stored: StoredKey) -> tuple[KeyInfo | None, KeyInfo]:
        """Cache ``stored``; return the infos of the key it replaces (None at first) and its own."""
        info = KeyInfo.from_stored(stored, store=self._reader.store.name, fetched_at=time.time())
        with self._lock:
            old = self._info
            self._stored, self._info = stored, info
            self._fresh_until = self._reader.clock() + self._reader.max_age
            self._backoff = 0.0
        return old, info

    def _fallback(self, exc: BaseException) -> StoredKey | None:
        """The cached key to serve after a failed automatic re-read, or None to raise."""
        if not isinstance(exc, UnkeySecretsError) or isinstance(exc, KeyRevokedError):
            return None
        with self._lock:
            stored, info = self._stored, self._info
            if stored is None or info is None or info.expired(time.time()):
                return None
            self._backoff = min(max(self._backoff * 2, _FIRST_BACKOFF), max(self.max_age, 1.0))
            self._fresh_until = self._reader.clock() + self._backoff
            backoff = self._backoff
        _log.warning(
            "re-reading %s failed (%s: %s); serving the cached key %s, next try in %.0f s",
            self.ref.describe(),
            type(exc).__name__,
            exc,
            info.key_id,
            backoff,
        )
        return stored

    def _check_grace(self, stored: StoredKey) -> None:
        """Warn once per key if max_age outlives the grace period of the rotation that made it."""
        original = stored.rerolled_from
        if original is None or stored.key_id in self._checked_grace:
            return
        self._checked_grace.add(stored.key_id)
        try:
            record = self._reader.store.read_rotation(api_id=stored.api_id, key_id=original)
        except UnkeySecretsError:
            return  # A reader may lack read on the records: nothing to check then.
        grace_ms = record.grace_period_ms if record is not None else None
        if grace_ms is None or self.max_age * 1000 <= grace_ms:
            return
        warnings.warn(
            MaxAgeWarning(
                f"max_age of {self.max_age:g} s for {self.ref.describe()} is longer than the "
                f"{grace_ms / 1000:g} s grace period of the rotation that issued "
                f"{stored.key_id}: a reader may keep using {original} after it has ended; "
                "lower max_age (or rotate with a longer grace period)"
            ),
            stacklevel=2,
        )


class KeyReader:
    """Reads current keys from one store, each cached for ``max_age`` seconds.

    ``store`` is any :class:`~unkey_secrets.SecretStore` (or build one with :meth:`vault` or
    :meth:`secrets_manager`). ``max_age`` is in seconds (0: read every time; default 300).
    ``verify=True`` asks Unkey (``unkey``, an :class:`~unkey_secrets.UnkeyClient` whose root
    key may verify keys) about every key read, at no credit cost, and raises
    :class:`~unkey_secrets.config.KeyRevokedError` for a key Unkey has revoked, disabled or
    expired. ``relogin`` is called once, and the read tried again, when the store refuses a
    read (an expired Vault token); :meth:`vault` sets it for every auth method but ``token``.
    ``clock`` (monotonic seconds) is for tests.
    """

    def __init__(
        self,
        store: SecretStore,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        unkey: UnkeyClient | None = None,
        verify: bool = False,
        relogin: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.max_age = _check_max_age(max_age)
        if verify and unkey is None:
            raise ConfigurationError("verify=True needs unkey=UnkeyClient(...) to ask Unkey")
        self.unkey = unkey
        self.verify = verify
        self.relogin = relogin
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[UnkeyKey, CachedKey] = {}
        self._relogin_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"KeyReader(store={self.store!r}, max_age={self.max_age:g}, verify={self.verify}, "
            f"keys={len(self._keys)})"
        )

    @classmethod
    def vault(
        cls,
        settings: VaultSettings | None = None,
        *,
        client: hvac.Client | None = None,
        **options: Any,
    ) -> KeyReader:
        """A reader of Vault, configured as the Vault store is (``VAULT_ADDR``, ``VAULT_TOKEN``...).

        ``settings`` default to the environment (:class:`~unkey_secrets.settings.VaultSettings`:
        token, ``~/.vault-token``, AppRole, Kubernetes, JWT or AWS IAM login, namespaces). With
        ``client``, an hvac client already logged in, no login is made. ``options`` are
        :class:`KeyReader`'s. Logging in talks to Vault for every method but ``token``.
        """
        from ..stores.vault import VaultStore
        from ..stores.vault.auth import build_client, login

        settings = settings if settings is not None else _vault_settings_from_env()
        relogin: Callable[[], None] | None = None
        if client is None:
            client = build_client(settings)
            login(client, settings)
            if settings.auth_method != "token":
                built, chosen = client, settings

                def relogin() -> None:
                    login(built, chosen)

        store = VaultStore(client, settings=settings)
        options.setdefault("relogin", relogin)
        return cls(store, **options)

    @classmethod
    def secrets_manager(
        cls,
        settings: AwsSettings | None = None,
        *,
        client: Any = None,
        **options: Any,
    ) -> KeyReader:
        """A reader of Secrets Manager (``AWS_REGION``, ``AWS_ENDPOINT_URL``, the credential chain).

        ``client`` is a boto3 ``secretsmanager`` client to use instead of building one;
        ``options`` are :class:`KeyReader`'s.
        """
        from ..stores.aws import SecretsManagerStore

        if client is None and settings is None:
            return cls(SecretsManagerStore.from_settings(), **options)
        return cls(SecretsManagerStore(client, settings=settings), **options)

    def key(self, *, api_id: str, alias: str | None = None, key_id: str | None = None) -> CachedKey:
        """The :class:`CachedKey` for ``alias`` (or ``key_id``) of ``api_id``; one per name."""
        return self.cached(UnkeyKey(api_id=api_id, alias=alias, key_id=key_id))

    def cached(self, ref: UnkeyKey) -> CachedKey:
        """The :class:`CachedKey` for ``ref`` (its ``store`` member is not checked here)."""
        ref = UnkeyKey(api_id=ref.api_id, alias=ref.alias, key_id=ref.key_id)
        with self._lock:
            cached = self._keys.get(ref)
            if cached is None:
                cached = self._keys[ref] = CachedKey(self, ref)
            return cached

    def for_field(self, settings_cls: type[BaseSettings], field_name: str) -> CachedKey:
        """The :class:`CachedKey` behind a settings field's :class:`UnkeyKey` marker."""
        return self.cached(field_ref(settings_cls, field_name))

    @guarded
    def get(self, *, api_id: str, alias: str | None = None, key_id: str | None = None) -> StoredKey:
        """``self.key(...).get()``: the current key, cached for ``max_age``."""
        return self.key(api_id=api_id, alias=alias, key_id=key_id).get()

    def _read_store(self, ref: UnkeyKey) -> StoredKey:
        """One read of ``ref``; after a refusal, log in again once (if we can) and retry."""
        from .._errors import StoreAccessError

        for attempt in (1, 2):
            try:
                return self._read_once(ref)
            except StoreAccessError:
                if attempt == 2 or self.relogin is None:
                    raise
            with self._relogin_lock:
                _log.info("%s refused a read; logging in again", self.store.name)
                self.relogin()
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_once(self, ref: UnkeyKey) -> StoredKey:
        if ref.alias is not None:
            return self.store.get_current(api_id=ref.api_id, alias=ref.alias)
        assert ref.key_id is not None
        return self.store.get(api_id=ref.api_id, key_id=ref.key_id)


def _vault_settings_from_env() -> VaultSettings:
    from pydantic import ValidationError

    from ..stores.vault.settings import VaultSettings

    failure: ConfigurationError
    try:
        return VaultSettings()
    except ValidationError as exc:
        # The error's text quotes the offending input; name the settings and the problem only.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        failure = ConfigurationError(f"invalid Vault settings: {problems}")
    raise failure
