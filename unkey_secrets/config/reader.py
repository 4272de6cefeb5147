"""A cached, thread-safe reader of the current key, for long-running apps.

:class:`KeyReader` holds one store (and optionally an Unkey client to verify with) and hands
out one :class:`CachedKey` per alias or key_id. A cached key is read again when it is older
than ``max_age`` seconds (as Powertools' parameters and ``aws-secretsmanager-caching`` do),
or at once with :meth:`CachedKey.refresh` (for an app that just got a 401). However many
threads ask, one read per alias is in flight at a time; the others wait for its answer, for at
most ``read_timeout`` seconds (the bound of one read, which the read itself runs under as its
transport deadline). While the store fails (or a read outlives that bound), the cached key is
served for at most ``max_stale`` seconds past ``max_age``; a key whose own expiry has passed
is never handed out.

A rotation keeps the old key valid for its grace period, so an app whose ``max_age`` is
shorter than the grace period never uses a key that has ended. The reader checks this: when
it reads a key that replaced another, it reads that rotation's record (if its policy lets it)
and warns with :class:`MaxAgeWarning` when ``max_age`` is longer than the recorded grace
period.

A key that ends without a rotation breaks its readers at its ``expires``. The reader warns
ahead of time: when a key it reads ends within ``expiry_warning`` seconds (7 days by default),
it issues a :class:`KeyExpiringWarning` and logs a warning on the ``unkey_secrets.config``
logger, once per key_id (never the key itself).
"""

from __future__ import annotations

import datetime as dt
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
from ..telemetry import metrics as _metrics
from ..telemetry.tracing import flow
from ..transport.policy import deadline
from ._model import KeyInfo, UnkeyKey, UnkeySecretStr
from .errors import (
    KeyExpiredError,
    KeyRevokedError,
    KeyStoreUnavailableError,
    check_matches,
    translate_read_error,
)

if TYPE_CHECKING:
    import hvac
    from pydantic_settings import BaseSettings

    from ..stores.aws.settings import AwsSettings
    from ..stores.base import SecretStore
    from ..stores.vault.settings import VaultSettings
    from ..unkey import UnkeyClient

__all__ = [
    "DEFAULT_EXPIRY_WARNING",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_STALE",
    "DEFAULT_READ_TIMEOUT",
    "CachedKey",
    "ChangeCallback",
    "KeyExpiringWarning",
    "KeyReader",
    "MaxAgeWarning",
    "field_ref",
]

_log = logging.getLogger("unkey_secrets.config")

#: The default ``max_age``: 5 minutes, well inside the default 24 h grace period.
DEFAULT_MAX_AGE = 300.0
#: The default ``max_stale``: while the store fails, the cached key is served at most 10
#: minutes past ``max_age`` (then the store's error is raised), well inside a 24 h grace period.
DEFAULT_MAX_STALE = 600.0
#: The default ``read_timeout`` (seconds) of a store that shows no timeout of its own: the
#: default timeout of hvac and of ``VaultSettings``.
DEFAULT_READ_TIMEOUT = 30.0
#: The default ``expiry_warning``: warn when the key read ends within 7 days (in seconds).
DEFAULT_EXPIRY_WARNING = 7 * 86400.0
#: Verification codes that mean the key itself can no longer be used.
_DEAD_CODES = frozenset({"NOT_FOUND", "DISABLED", "EXPIRED"})
#: After a failed automatic refresh served the cached key, the next try waits this long
#: (doubling up to ``max_age``).
_FIRST_BACKOFF = 1.0

#: ``callback(old, new)``: the key behind a :class:`CachedKey` changed.
ChangeCallback = Callable[[KeyInfo, KeyInfo], None]


class MaxAgeWarning(UserWarning):
    """``max_age`` is longer than the grace period the last rotation recorded."""


class KeyExpiringWarning(UserWarning):
    """The key a reader serves ends (its ``expires``) within the reader's ``expiry_warning``."""


@guarded
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


def _check_seconds(name: str, value: float) -> float:
    """``value`` as a float: a finite number of seconds, 0 or more (-0.0 is refused too)."""
    problem = InvalidInputError(name, "expected a finite number of seconds, 0 or more")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise problem
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        raise problem from None
    if not math.isfinite(seconds) or math.copysign(1.0, seconds) < 0:
        raise problem
    return seconds


def _check_bound(name: str, value: float) -> float:
    """``value`` as a float: a finite, positive number of seconds."""
    seconds = _check_seconds(name, value)
    if seconds == 0:
        raise InvalidInputError(name, "expected a finite number of seconds, more than 0")
    return seconds


def _client_timeout(store: SecretStore) -> float | None:
    """The seconds the store's botocore client waits for an answer, if it is one that says."""
    config = getattr(getattr(getattr(store, "client", None), "meta", None), "config", None)
    timeout = getattr(config, "read_timeout", None)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
        return None
    return float(timeout) if math.isfinite(timeout) and timeout > 0 else None


def _duration_text(seconds: float) -> str:
    """``seconds`` (0 or more) for people: ``6d 23h``, ``5h 2m``, ``42s``."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def _seconds_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


class _Flight:
    """One read in progress; the threads that asked meanwhile wait for its outcome.

    ``result`` or ``error`` is what the read itself gave, never a fallback: each waiter
    decides for itself whether it may serve the cached key instead (a :meth:`CachedKey.get`
    may, a :meth:`CachedKey.refresh` never does). ``expires`` (monotonic seconds) is when the
    read's bound ends: no caller waits for it past then, however long the read itself lasts.
    """

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.expires = time.monotonic() + bound
        self.done = threading.Event()
        self.result: StoredKey | None = None
        self.error: BaseException | None = None
        #: Set by the first get() that handled this read's failure, so the back-off is advanced
        #: (and the warning logged) once per failed read, however many threads waited.
        self.handled = False


class CachedKey:
    """The current key behind one alias (or key_id), read at most every ``max_age`` seconds.

    Built by :meth:`KeyReader.key`. Thread-safe: :meth:`get` answers from memory while the
    key is fresh; when it is older than ``max_age`` (seconds), one caller reads the store and
    the others wait for that read (single-flight), each for at most the reader's
    ``read_timeout`` seconds from the read's start (30 s by default). The read runs under a
    transport deadline of ``read_timeout`` seconds (relogin and ``verify`` included), so the
    caller making it is bounded too; a caller arriving while a read is in flight joins it, even
    one already past its bound (it gets its answer at once), so a stuck read never piles up
    more reads or waiting threads. If an automatic re-read fails (the store is unreachable,
    refuses or holds a bad value) or is still running when the bound ends, the cached key is
    returned, a warning is logged (never the key), and the store is tried again after 1 s, 2 s,
    4 s... (at most ``max_age``), for at most ``max_stale`` seconds past ``max_age``; after
    that the store's error is raised (:class:`~.KeyStoreUnavailableError` for a read past its
    bound). :meth:`refresh` always reads (or joins the read in flight) and raises on failure or
    at the end of the bound: it never returns the cached key instead.

    A key whose own ``expires`` has passed is never returned, neither fresh from the store nor
    from the cache: :class:`~.KeyExpiredError` (a :class:`~.KeyRevokedError`).

    Errors (:mod:`unkey_secrets.config.errors`): :class:`~.KeyNotFoundError`,
    :class:`~.KeyAccessDeniedError` (naming the reader policy), :class:`~.KeyShapeError`,
    :class:`~.KeyStoreUnavailableError`, and with ``verify``, :class:`~.KeyRevokedError`
    (or an :class:`~unkey_secrets.UnkeyError` if Unkey could not be asked).
    """

    @guarded
    def __init__(self, reader: KeyReader, ref: UnkeyKey) -> None:
        self._reader = reader
        self.ref = ref
        self._lock = threading.Lock()
        self._stored: StoredKey | None = None
        self._info: KeyInfo | None = None
        self._fresh_until = -math.inf
        self._stale_until = -math.inf
        self._backoff = 0.0
        self._flight: _Flight | None = None
        self._callbacks: list[ChangeCallback] = []
        self._checked_grace: set[str] = set()
        self._warned_expiry: set[str] = set()
        #: How many times the store was read (for tests and metrics).
        self.reads = 0

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        ref = getattr(self, "ref", None)
        subject = ref.describe() if isinstance(ref, UnkeyKey) else "?"
        store = getattr(getattr(getattr(self, "_reader", None), "store", None), "name", None)
        current = getattr(getattr(self, "_info", None), "key_id", None)
        return f"CachedKey({subject}, store={store!r}, key_id={current!r})"

    @property
    @guarded
    def max_age(self) -> float:
        """Seconds a read stays fresh (the reader's ``max_age``)."""
        return self._reader.max_age

    @property
    @guarded
    def max_stale(self) -> float:
        """Seconds past ``max_age`` the cached key may be served while the store fails."""
        return self._reader.max_stale

    @property
    @guarded
    def read_timeout(self) -> float:
        """Seconds a read may take, and a caller may wait for one (the reader's read_timeout)."""
        return self._reader.read_timeout

    # -- reading -------------------------------------------------------------------------------

    @guarded
    def get(self, *, field: str | None = None) -> StoredKey:
        """The current key (``.secret`` is masked in every repr), read if older than max_age.

        ``field`` names the settings field being filled, for error messages. Returns within
        ``read_timeout`` seconds (as the store's transport keeps the read's deadline). Serves the
        cached key while the store fails or a read outlives ``read_timeout``, for at most
        ``max_stale`` seconds past ``max_age``; never a key whose own expiry has passed
        (:class:`~.KeyExpiredError`). Past ``max_stale``, raises the read's error
        (:class:`~.KeyStoreUnavailableError` for a read still running after ``read_timeout``).
        """
        return self._obtain(force=False, field=field)

    @guarded
    def refresh(self) -> StoredKey:
        """Read the store now (or join the read already in flight) and return the key.

        For an app that just got a 401 with the cached key. Raises on failure, joined read's
        included, and :class:`~.KeyStoreUnavailableError` when the read it joined is still
        running ``read_timeout`` seconds after it started: it never falls back to the cached key.
        """
        return self._obtain(force=True, field=None)

    @guarded
    def secret(self) -> Secret:
        """The current key's plaintext holder (:meth:`Secret.reveal` gives the text)."""
        # _obtain, not get(): one guarded layer per call on this hot path.
        return self._obtain(force=False, field=None).secret

    @guarded
    def secret_str(self) -> UnkeySecretStr:
        """The current key as a :class:`UnkeySecretStr` (a ``SecretStr`` with ``.info``)."""
        stored = self._obtain(force=False, field=None)
        return UnkeySecretStr(stored.secret.reveal(), self._info_for(stored))

    @guarded
    def info(self) -> KeyInfo:
        """The current key's metadata (key_id, version, expiry...), read if older than max_age."""
        return self._info_for(self._obtain(force=False, field=None))

    @guarded
    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(old, new)`` (two :class:`KeyInfo`) whenever a read finds another key.

        Called in the thread that made the read, after the cache was updated, never under a
        lock; an exception it raises is logged (its class only) and swallowed. Returns a
        function that unsubscribes ``callback``.
        """
        with self._lock:
            self._callbacks.append(callback)

        @guarded
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
        reader = self._reader
        clock = reader.clock
        with self._lock:
            if (
                not force
                and self._stored is not None
                and clock() < self._fresh_until
                and not self._expired_locked()
            ):
                self._lookup("hit")
                return self._stored
            flight = self._flight
            leader = flight is None
            if flight is None:
                flight = self._flight = _Flight(reader.read_timeout)
        if not leader:
            return self._join(flight, force=force, field=field)
        ref = self.ref
        try:
            # The whole read (relogin and verify included) under one deadline: each request's
            # own deadline is capped by it, so this caller is bounded as its waiters are.
            with (
                flow("reader.read", api_id=ref.api_id, alias=ref.alias, store=reader.store.name),
                deadline(flight.bound),
            ):
                stored = self._read(field)
        except BaseException as exc:
            flight.error = exc
            _metrics.reader_refresh_failed(
                reader.store.name, ref.api_id, ref.alias, type(exc).__name__
            )
            # Decided before the flight ends, so a caller arriving next sees the back-off.
            fallback = None if force else self._fallback(exc, flight)
            with self._lock:
                self._flight = None
            flight.done.set()
            if fallback is None:
                raise
            self._lookup("stale")
            return fallback
        self._lookup("miss")
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
            self._picked_up(stored)
            for callback in callbacks:
                try:
                    callback(old, new)
                except Exception as exc:  # noqa: BLE001 (a callback must not break reads)
                    _log.warning("on_change callback failed (%s)", type(exc).__name__)
        self._check_grace(stored)
        self._check_expiring(stored)
        return stored

    def _join(self, flight: _Flight, *, force: bool, field: str | None) -> StoredKey:
        """Wait for ``flight`` until its bound ends; its key, a fallback, or an error."""
        error: BaseException
        if flight.done.wait(max(flight.expires - time.monotonic(), 0.0)):
            if flight.error is None:
                assert flight.result is not None
                self._lookup("miss")
                return flight.result
            error = flight.error
        else:
            error = self._overdue(flight, field)
        fallback = None if force else self._fallback(error, flight)
        if fallback is None:
            raise error
        self._lookup("stale")
        return fallback

    def _lookup(self, result: str) -> None:
        """Count a key handed out: ``hit``, ``miss`` or ``stale`` (:mod:`..telemetry.metrics`)."""
        _metrics.reader_lookup(self._reader.store.name, self.ref.api_id, self.ref.alias, result)

    def _picked_up(self, stored: StoredKey) -> None:
        """Record how long after its issue this reader first served ``stored`` (a new key)."""
        if not _metrics.enabled() or not stored.issued_at:
            return
        try:
            issued = dt.datetime.fromisoformat(stored.issued_at.replace("Z", "+00:00"))
        except ValueError:
            return  # a writer's text: no figure rather than a wrong one
        if issued.tzinfo is None:
            issued = issued.replace(tzinfo=dt.timezone.utc)
        seconds = self._reader.wall_clock() - issued.timestamp()
        _metrics.reader_rotation_pickup(
            self._reader.store.name, self.ref.api_id, self.ref.alias, seconds
        )

    def _overdue(self, flight: _Flight, field: str | None) -> KeyStoreUnavailableError:
        """The error for a caller whose wait for ``flight`` reached the read's bound."""
        store = self._reader.store.name
        return KeyStoreUnavailableError(
            f"{self._subject(field)}: the read of the {store} store in flight gave no answer "
            f"within read_timeout ({flight.bound:g} s); check that the store is reachable, or "
            "raise read_timeout",
            store=store,
            api_id=self.ref.api_id,
            alias=self.ref.alias,
            key_id=self.ref.key_id,
            field=field,
        )

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
            self._check_expiry(stored, field)
            if reader.verify:
                self._verify(stored, field)
            return stored
        # Raised outside the handler: nothing the store's error chained comes along.
        raise failure

    def _subject(self, field: str | None) -> str:
        return f"settings field {field!r} ({self.ref.describe()})" if field else self.ref.describe()

    def _check_expiry(self, stored: StoredKey, field: str | None) -> None:
        """Raise :class:`KeyExpiredError` if ``stored``'s own expiry has passed."""
        if stored.expires is None or stored.expires > self._reader.wall_clock() * 1000:
            return
        raise KeyExpiredError(
            f"{self._subject(field)}: the stored key {stored.key_id} at {stored.location} "
            f"expired at {stored.expires} (Unix ms); rotate the alias or point it at a key that "
            "has not expired",
            store=self._reader.store.name,
            location=stored.location,
            api_id=self.ref.api_id,
            alias=self.ref.alias,
            key_id=stored.key_id,
            field=field,
            code="EXPIRED",
        )

    def _expired_locked(self) -> bool:
        """Whether the cached key's own expiry has passed (lock held)."""
        info = self._info
        return info is not None and info.expired(self._reader.wall_clock())

    def _verify(self, stored: StoredKey, field: str | None) -> None:
        unkey = self._reader.unkey
        assert unkey is not None
        # credits_cost=0: a check must not use up a key's credits.
        verdict = unkey.verify_key(stored.secret, credits_cost=0)
        if not verdict.valid and verdict.code in _DEAD_CODES:
            raise KeyRevokedError(
                f"{self._subject(field)}: the stored key {stored.key_id} at {stored.location} "
                f"is not valid in Unkey ({verdict.code}); rotate the alias or point it at a "
                "valid key",
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
            self._stale_until = self._fresh_until + self._reader.max_stale
            self._backoff = 0.0
        return old, info

    def _fallback(self, exc: BaseException, flight: _Flight) -> StoredKey | None:
        """The cached key a get() may serve after ``flight``'s read failed, or None to raise.

        Only for a store or value error (not a revoked or expired key), only while the cached
        key has not expired, and only until ``max_stale`` seconds past its ``max_age``. The
        first caller to handle ``flight``'s failure advances the back-off and logs.
        """
        if not isinstance(exc, UnkeySecretsError) or isinstance(exc, KeyRevokedError):
            return None
        with self._lock:
            stored, info = self._stored, self._info
            if stored is None or info is None or self._expired_locked():
                return None
            now = self._reader.clock()
            too_stale = now >= self._stale_until
            first = not flight.handled
            flight.handled = True
            if first and not too_stale:
                self._backoff = min(max(self._backoff * 2, _FIRST_BACKOFF), max(self.max_age, 1.0))
                self._fresh_until = min(now + self._backoff, self._stale_until)
            backoff, left = self._backoff, self._stale_until - now
        if too_stale:
            if first:
                _log.error(
                    "re-reading %s failed (%s); not serving the cached key %s: it is stale by "
                    "more than max_stale (%g s past max_age)",
                    self.ref.describe(),
                    type(exc).__name__,
                    info.key_id,
                    self.max_stale,
                )
            return None
        if first:
            _log.warning(
                "re-reading %s failed (%s: %s); serving the cached key %s, next try in %.0f s "
                "(for at most %.0f s more)",
                self.ref.describe(),
                type(exc).__name__,
                exc,
                info.key_id,
                backoff,
                left,
            )
        return stored

    def _check_expiring(self, stored: StoredKey) -> None:
        """Warn once per key_id if ``stored`` ends within the reader's ``expiry_warning``."""
        threshold = self._reader.expiry_warning
        if stored.expires is None or threshold <= 0:
            return
        left = stored.expires / 1000 - self._reader.wall_clock()
        if left > threshold:
            return
        with self._lock:
            # Once per key_id: a reader re-reads every max_age, and a warning each time is noise.
            if stored.key_id in self._warned_expiry:
                return
            self._warned_expiry.add(stored.key_id)
        ends = dt.datetime.fromtimestamp(stored.expires / 1000, tz=dt.timezone.utc)
        message = (
            f"the key {stored.key_id} read for {self.ref.describe()} expires at "
            f"{ends.isoformat(timespec='seconds').replace('+00:00', 'Z')} ({stored.expires} Unix "
            f"ms), in {_duration_text(left)}; replace it before then (unkey-secrets provision "
            "--alias NAME --replace: a rotation keeps a key's expiry), or this reader fails with "
            "KeyExpiredError from that moment"
        )
        _log.warning("%s", message)
        warnings.warn(KeyExpiringWarning(message), stacklevel=2)

    def _check_grace(self, stored: StoredKey) -> None:
        """Warn once per key if max_age outlives the grace period of the rotation that made it."""
        original = stored.rerolled_from
        if original is None or stored.key_id in self._checked_grace:
            return
        self._checked_grace.add(stored.key_id)
        try:
            record = self._reader.store.read_rotation(api_id=stored.api_id, key_id=original)
            grace_ms = record.grace_period_ms if record is not None else None
            if grace_ms is None or self.max_age * 1000 <= grace_ms:
                return
        except UnkeySecretsError:
            return  # A reader may lack read on the records: nothing to check then.
        except Exception as exc:  # noqa: BLE001 (a best-effort check must not break get())
            # A hostile or damaged record (say JSON nested too deep): name the class only.
            _log.warning(
                "could not check the grace period of the rotation that issued %s (%s)",
                stored.key_id,
                type(exc).__name__,
            )
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
    ``max_stale`` is how many seconds past ``max_age`` a cached key may still be served while
    the store fails (default 600; 0: never serve a stale key); after it, the store's error is
    raised. Keep ``max_age + max_stale`` inside the rotation grace period. Both must be finite
    and 0 or more (``-0.0`` included, refused). A key whose own expiry has passed is never
    served (:class:`~unkey_secrets.config.KeyExpiredError`).
    ``verify=True`` asks Unkey (``unkey``, an :class:`~unkey_secrets.UnkeyClient` whose root
    key may verify keys) about every key read, at no credit cost, and raises
    :class:`~unkey_secrets.config.KeyRevokedError` for a key Unkey has revoked, disabled or
    expired. ``relogin`` is called once, and the read tried again, when the store refuses a
    read (an expired Vault token); :meth:`vault` sets it for every auth method but ``token``.
    ``read_timeout`` (seconds, more than 0) bounds one read: it runs under a transport deadline
    of that many seconds (relogin and ``verify`` included), and the callers waiting for it wait
    no longer than that from its start (see :class:`CachedKey`). By default it is the store's
    own: ``VaultSettings.timeout`` for :meth:`vault`, the botocore client's ``read_timeout``
    for a Secrets Manager store, else :data:`DEFAULT_READ_TIMEOUT` (30 s).
    ``expiry_warning`` (seconds, default 7 days; 0: off): when a key read ends within that
    long, a :class:`KeyExpiringWarning` is issued and a warning logged on the
    ``unkey_secrets.config`` logger, once per key_id, checked at each read of the store (so at
    most ``max_age`` seconds late).
    ``clock`` (monotonic seconds) and ``wall_clock`` (Unix seconds, compared with a key's
    ``expires``) are for tests. Raises :class:`~unkey_secrets.InvalidInputError` for a bad
    number of seconds and :class:`~unkey_secrets.ConfigurationError` for ``verify`` without
    ``unkey``.
    """

    @guarded
    def __init__(
        self,
        store: SecretStore,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        max_stale: float = DEFAULT_MAX_STALE,
        unkey: UnkeyClient | None = None,
        verify: bool = False,
        relogin: Callable[[], None] | None = None,
        read_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        expiry_warning: float = DEFAULT_EXPIRY_WARNING,
    ) -> None:
        self.store = store
        self.max_age = _check_seconds("max_age", max_age)
        self.max_stale = _check_seconds("max_stale", max_stale)
        self.expiry_warning = _check_seconds("expiry_warning", expiry_warning)
        if read_timeout is None:
            read_timeout = _client_timeout(store) or DEFAULT_READ_TIMEOUT
        self.read_timeout = _check_bound("read_timeout", read_timeout)
        if verify and unkey is None:
            raise ConfigurationError("verify=True needs unkey=UnkeyClient(...) to ask Unkey")
        self.unkey = unkey
        self.verify = verify
        self.relogin = relogin
        self.clock = clock
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._keys: dict[UnkeyKey, CachedKey] = {}
        self._relogin_lock = threading.Lock()

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        keys = getattr(self, "_keys", None)
        return (
            f"KeyReader(store={getattr(self, 'store', None)!r}, "
            f"max_age={_seconds_text(getattr(self, 'max_age', None))}, "
            f"max_stale={_seconds_text(getattr(self, 'max_stale', None))}, "
            f"read_timeout={_seconds_text(getattr(self, 'read_timeout', None))}, "
            f"verify={getattr(self, 'verify', None)}, "
            f"keys={len(keys) if isinstance(keys, dict) else None})"
        )

    @classmethod
    @guarded
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
        :class:`KeyReader`'s; ``read_timeout`` defaults to ``settings.timeout`` (seconds).
        Logging in talks to Vault for every method but ``token``. A failed login raises the
        Vault store's error; no frame it leaves keeps the credentials in its locals. Without
        ``client``, the token is kept alive for the reader's life (renewed ahead of its expiry,
        a new login after a refusal: :mod:`unkey_secrets.stores.vault.auto_auth`); a given
        client's token is the caller's to keep valid.
        """
        from ..stores.vault import VaultStore

        if settings is None:
            from .._config import load_settings
            from ..stores.vault.settings import VaultSettings

            settings = load_settings(VaultSettings)
        # A store built from settings keeps its token alive itself (renewed ahead of expiry,
        # a new login after a refusal): see unkey_secrets.stores.vault.auto_auth.
        store = VaultStore(client, settings=settings)
        options.setdefault("read_timeout", settings.timeout)
        return cls(store, **options)

    @classmethod
    @guarded
    def secrets_manager(
        cls,
        settings: AwsSettings | None = None,
        *,
        client: Any = None,
        **options: Any,
    ) -> KeyReader:
        """A reader of Secrets Manager (``AWS_REGION``, ``AWS_ENDPOINT_URL``, the credential chain).

        ``client`` is a boto3 ``secretsmanager`` client to use instead of building one;
        ``options`` are :class:`KeyReader`'s (``read_timeout`` defaults to the client's botocore
        ``read_timeout``, in seconds).
        """
        from ..stores.aws import SecretsManagerStore

        if client is None and settings is None:
            return cls(SecretsManagerStore.from_settings(), **options)
        return cls(SecretsManagerStore(client, settings=settings), **options)

    @guarded
    def key(self, *, api_id: str, alias: str | None = None, key_id: str | None = None) -> CachedKey:
        """The :class:`CachedKey` for ``alias`` (or ``key_id``) of ``api_id``; one per name."""
        return self._cached(UnkeyKey(api_id=api_id, alias=alias, key_id=key_id))

    @guarded
    def cached(self, ref: UnkeyKey) -> CachedKey:
        """The :class:`CachedKey` for ``ref`` (its ``store`` member is not checked here)."""
        return self._cached(ref)

    @guarded
    def for_field(self, settings_cls: type[BaseSettings], field_name: str) -> CachedKey:
        """The :class:`CachedKey` behind a settings field's :class:`UnkeyKey` marker."""
        return self._cached(field_ref(settings_cls, field_name))

    @guarded
    def get(self, *, api_id: str, alias: str | None = None, key_id: str | None = None) -> StoredKey:
        """``self.key(...).get()``: the current key, cached for ``max_age``."""
        # The unguarded insides: one guarded layer per call on this hot path.
        cached = self._cached(UnkeyKey(api_id=api_id, alias=alias, key_id=key_id))
        return cached._obtain(force=False, field=None)

    def _cached(self, ref: UnkeyKey) -> CachedKey:
        ref = UnkeyKey(api_id=ref.api_id, alias=ref.alias, key_id=ref.key_id)
        with self._lock:
            cached = self._keys.get(ref)
            if cached is None:
                cached = self._keys[ref] = CachedKey(self, ref)
            return cached

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
