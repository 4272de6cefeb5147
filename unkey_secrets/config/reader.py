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

With ``refresh_ahead=True``, a background thread (one per reader) reads each key again before
its ``max_age`` runs out, at a random point of ``refresh_window`` (75% to 90% of ``max_age`` by
default), so that after a key's first read no :meth:`CachedKey.get` waits on the store.
:meth:`KeyReader.warm` reads many keys in one :meth:`~unkey_secrets.SecretStore.get_many`
call (one ``BatchGetSecretValue`` in Secrets Manager, concurrent reads in Vault).
"""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import math
import os
import random
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from .._errors import (
    ConfigurationError,
    InvalidInputError,
    StoreAccessError,
    StoreError,
    UnkeySecretsError,
)
from .._models import KeyRef, StoredKey
from .._redact import _clear_frames, guarded
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
    "DEFAULT_REFRESH_WINDOW",
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
#: The default ``refresh_window``: with refresh-ahead, each key is read again at a random point
#: between 75% and 90% of ``max_age`` after its last read (fractions of ``max_age``).
DEFAULT_REFRESH_WINDOW = (0.75, 0.9)
#: After a failed automatic refresh served the cached key, the next try waits this long
#: (doubling up to ``max_age``).
_FIRST_BACKOFF = 1.0
#: The name of a reader's refresh-ahead thread.
_THREAD = "unkey-secrets-key-refresh"
#: How a batch of reads treats each key: as :meth:`KeyReader.warm`, as :meth:`CachedKey.get`
#: (the settings sources), or as the refresh-ahead thread.
_Mode = Literal["warm", "get", "background"]

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


def _check_window(value: object) -> tuple[float, float]:
    """``value`` as ``(low, high)``: two fractions of max_age, ``0 < low <= high <= 1``."""
    problem = InvalidInputError(
        "refresh_window", "expected two fractions of max_age (low, high), 0 < low <= high <= 1"
    )
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise problem
    low, high = value
    for item in (low, high):
        if not isinstance(item, (int, float)) or isinstance(item, bool):
            raise problem
    if not 0 < low <= high <= 1:  # NaN fails every comparison
        raise problem
    return float(low), float(high)


def _must_raise(exc: BaseException) -> bool:
    """Whether ``exc`` is an error a get() raises rather than serve the cached key instead."""
    return not isinstance(exc, UnkeySecretsError) or isinstance(exc, KeyRevokedError)


def _bare(exc: UnkeySecretsError) -> UnkeySecretsError:
    """``exc`` with no traceback (nor frame locals down its chain): it is returned, not raised."""
    _clear_frames(exc)
    exc.__traceback__ = None
    return exc


def _client_timeout(store: SecretStore) -> float | None:
    """The seconds a read of ``store`` may take, if it says, else None.

    Its own ``read_timeout`` (a :class:`~unkey_secrets.stores.aws.failover.RegionFailoverStore`
    adds up its regions'), else its botocore client's ``read_timeout``.
    """
    timeout = getattr(store, "read_timeout", None)
    if timeout is None:
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
        #: Set (under the key's lock) when the refresh-ahead thread wanted this read: it was
        #: due while another caller's read was in flight. Its end then schedules the next one.
        self.background = False


class _Note(NamedTuple):
    """What the first caller handling a failed read logs (see CachedKey._log_fallback)."""

    too_stale: bool
    key_id: str
    backoff: float
    left: float


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

    With the reader's ``refresh_ahead``, the reader's thread reads the key again before
    ``max_age`` runs out, and :meth:`get` never waits for that read: it returns the cached key
    while a background read is due or running, up to ``max_stale`` seconds past ``max_age``.
    It reads (and waits) only for the first read, when nothing servable is cached (past
    ``max_age + max_stale``, or expired), or after a background read met an error get() must
    raise (a revoked or expired key): the next get() then reads, as without refresh-ahead. A
    failed background read backs off as get() does (1 s, 2 s, 4 s... at most ``max_age``) and
    logs once; :meth:`refresh` joins a background read in flight.

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
        #: With refresh-ahead: a background read met an error get() must raise (a revoked or
        #: expired key), so get() reads itself until a read succeeds.
        self._blocked = False
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

    def get(self, *, field: str | None = None) -> StoredKey:
        """The current key (``.secret`` is masked in every repr), read if older than max_age.

        ``field`` names the settings field being filled, for error messages. Returns within
        ``read_timeout`` seconds (as the store's transport keeps the read's deadline). Serves the
        cached key while the store fails or a read outlives ``read_timeout``, for at most
        ``max_stale`` seconds past ``max_age``; never a key whose own expiry has passed
        (:class:`~.KeyExpiredError`). Past ``max_stale``, raises the read's error
        (:class:`~.KeyStoreUnavailableError` for a read still running after ``read_timeout``).
        """
        # The hit first, outside the guarded entry point: it is memory alone (no I/O, no log
        # record, no error), and the guards would cost it many times over.
        stored = self._hit()
        return self._get(field) if stored is None else stored

    @guarded
    def _get(self, field: str | None) -> StoredKey:
        return self._obtain(force=False, field=field)

    def _hit(self) -> StoredKey | None:
        """The cached key while fresh and not expired (a ``hit``), else None: no I/O."""
        with self._lock:
            stored = self._stored
            if (
                stored is not None
                and self._reader.clock() < self._fresh_until
                and not self._expired_locked()
            ):
                self._lookup("hit")
                return stored
        return None

    @guarded
    def refresh(self) -> StoredKey:
        """Read the store now (or join the read already in flight) and return the key.

        For an app that just got a 401 with the cached key. Raises on failure, joined read's
        included, and :class:`~.KeyStoreUnavailableError` when the read it joined is still
        running ``read_timeout`` seconds after it started: it never falls back to the cached key.
        """
        return self._obtain(force=True, field=None)

    def secret(self) -> Secret:
        """The current key's plaintext holder (:meth:`Secret.reveal` gives the text)."""
        stored = self._hit()  # as get(): the hit outside the guarded entry point
        return (self._get(None) if stored is None else stored).secret

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

        Called in the thread that made the read (the refresh-ahead thread for a background
        read), after the cache was updated, never under a lock; an exception it raises is
        logged (its class only) and swallowed. Returns a function that unsubscribes
        ``callback``.
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
        served: tuple[StoredKey, bool] | None = None
        with self._lock:
            if (
                not force
                and self._stored is not None
                and clock() < self._fresh_until
                and not self._expired_locked()
            ):
                self._lookup("hit")
                return self._stored
            if not force and reader._ahead:
                served = self._servable_locked()
            if served is None:
                current = self._flight
                leader = current is None
                flight = _Flight(reader.read_timeout) if current is None else current
                self._flight = flight
        if served is not None:
            return self._serve_ahead(*served)
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
            fallback = self._settle_failure(flight, exc, force=force)
            if fallback is None:
                raise
            self._lookup("stale")
            return fallback
        self._lookup("miss")
        self._announce(stored, *self._settle_success(flight, stored))
        return stored

    def _servable_locked(self) -> tuple[StoredKey, bool] | None:
        """With refresh-ahead: the cached key get() serves without waiting (lock held).

        With it, whether it is within ``max_age`` of its read. None when get() must read.
        """
        stored = self._stored
        if stored is None or self._blocked or self._expired_locked():
            return None
        now = self._reader.clock()
        if now >= self._stale_until:
            return None
        return stored, now < self._stale_until - self._reader.max_stale

    def _serve_ahead(self, stored: StoredKey, within_max_age: bool) -> StoredKey:
        """Hand out the cached key past its fresh time; make sure a background read is coming."""
        self._lookup("hit" if within_max_age else "stale")
        self._reader._kick(self.ref)
        return stored

    def _begin(self, mode: _Mode) -> StoredKey | tuple[_Flight, bool] | None:
        """A batch's first step for this key: the cached key, a flight to lead or join, or None.

        The key itself when the batch need not read it (fresh; or, for ``get``, servable with
        refresh-ahead), else ``(flight, leader)``: a new flight this caller leads, or the one in
        flight to join. None: the refresh-ahead thread found a read in flight, and marked it so
        that its end schedules the next one.
        """
        reader = self._reader
        served: tuple[StoredKey, bool] | None = None
        with self._lock:
            if (
                mode != "background"
                and self._stored is not None
                and reader.clock() < self._fresh_until
                and not self._expired_locked()
            ):
                if mode == "get":
                    self._lookup("hit")
                return self._stored
            if mode == "get" and reader._ahead:
                served = self._servable_locked()
            if served is None:
                flight = self._flight
                if flight is None:
                    flight = self._flight = _Flight(reader.read_timeout)
                    flight.background = mode == "background"
                    return flight, True
                if mode == "background":
                    flight.background = True
                    return None
                return flight, False
        return self._serve_ahead(*served)

    def _settle_success(
        self, flight: _Flight, stored: StoredKey
    ) -> tuple[KeyInfo | None, KeyInfo, list[ChangeCallback]]:
        """End ``flight`` (this thread led it) with ``stored``: cache it, wake its waiters.

        Returns what :meth:`_announce` needs, to be called once every flight of a batch ended.
        """
        old, new, due = self._accept(stored)
        with self._lock:
            self._flight = None
            flight.result = stored
            callbacks = list(self._callbacks)
        flight.done.set()
        if due is not None:
            self._reader._schedule(self.ref, due)
        return old, new, callbacks

    def _announce(
        self,
        stored: StoredKey,
        old: KeyInfo | None,
        new: KeyInfo,
        callbacks: list[ChangeCallback],
    ) -> None:
        """After a read: log a changed key, call ``on_change``, check grace period and expiry."""
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

    def _settle_failure(
        self, flight: _Flight, exc: BaseException, *, force: bool
    ) -> StoredKey | None:
        """End ``flight`` (this thread led it) with ``exc``; the key a get() serves instead.

        A get() (``force`` False) and a read the refresh-ahead thread wanted
        (``flight.background``) fall back as :meth:`_fallback` says, advancing the back-off once
        per failed read. With refresh-ahead, the next background read is then due when the
        back-off ends; after an error get() must raise (a revoked or expired key) none is: the
        next get() reads itself. Returns None for ``force`` (a refresh() never falls back).
        """
        reader = self._reader
        flight.error = exc
        _metrics.reader_refresh_failed(
            reader.store.name, self.ref.api_id, self.ref.alias, type(exc).__name__
        )
        note: _Note | None = None
        fallback: StoredKey | None = None
        due: float | None = None
        blocked = False
        with self._lock:
            # Read under the lock that ends the flight: the refresh-ahead thread either marked
            # it before (seen here), or finds no flight after and reads itself.
            background = flight.background
            if not force or background:
                # Decided before the flight ends, so a caller arriving next sees the back-off.
                fallback, note = self._fallback_locked(exc, flight)
            self._flight = None
            if reader._ahead and (background or not force):
                if fallback is not None:
                    due = self._fresh_until
                elif background and self._stored is not None and _must_raise(exc):
                    self._blocked = blocked = True
        flight.done.set()
        if note is not None:
            self._log_fallback(exc, note)
        if blocked:
            _log.warning(
                "refreshing %s in the background failed (%s); the next get() reads the store "
                "itself",
                self.ref.describe(),
                type(exc).__name__,
            )
        if due is not None:
            reader._schedule(self.ref, due)
        return None if force else fallback

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
        self.reads += 1
        try:
            stored = self._reader._read_store(self.ref)
        except StoreError as exc:
            failure = translate_read_error(exc, self.ref, field=field, store=self._reader.store)
        else:
            self._check(stored, field)
            return stored
        # Raised outside the handler: nothing the store's error chained comes along.
        raise failure

    def _check(self, stored: StoredKey, field: str | None) -> None:
        """What every read checks of the key it got: the one asked for, not expired, verified."""
        reader = self._reader
        check_matches(stored, self.ref, store=reader.store.name, field=field)
        self._check_expiry(stored, field)
        if reader.verify:
            self._verify(stored, field)

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

    def _accept(self, stored: StoredKey) -> tuple[KeyInfo | None, KeyInfo, float | None]:
        """Cache ``stored``; the infos of the key it replaces (None at first) and its own.

        Third, with refresh-ahead, when the next background read is due (``clock`` seconds).
        """
        reader = self._reader
        info = KeyInfo.from_stored(stored, store=reader.store.name, fetched_at=time.time())
        with self._lock:
            old = self._info
            self._stored, self._info = stored, info
            now = reader.clock()
            self._fresh_until = now + reader.max_age
            self._stale_until = self._fresh_until + reader.max_stale
            self._backoff = 0.0
            self._blocked = False
        refresher = reader._refresher
        due = refresher.due_after(now, reader.max_age) if reader._ahead and refresher else None
        return old, info, due

    def _fallback(self, exc: BaseException, flight: _Flight) -> StoredKey | None:
        """The cached key a get() may serve after ``flight``'s read failed, or None to raise.

        See :meth:`_fallback_locked`; logs (once per failed read) after the lock is released.
        """
        with self._lock:
            fallback, note = self._fallback_locked(exc, flight)
        if note is not None:
            self._log_fallback(exc, note)
        return fallback

    def _fallback_locked(
        self, exc: BaseException, flight: _Flight
    ) -> tuple[StoredKey | None, _Note | None]:
        """The cached key a get() may serve after ``flight``'s read failed (lock held).

        Only for a store or value error (not a revoked or expired key), only while the cached
        key has not expired, and only until ``max_stale`` seconds past its ``max_age``. The
        first caller to handle ``flight``'s failure advances the back-off, and gets what to
        log (:meth:`_log_fallback`) as the second member.
        """
        if _must_raise(exc):
            return None, None
        stored, info = self._stored, self._info
        if stored is None or info is None or self._expired_locked():
            return None, None
        now = self._reader.clock()
        too_stale = now >= self._stale_until
        first = not flight.handled
        flight.handled = True
        if first and not too_stale:
            self._backoff = min(max(self._backoff * 2, _FIRST_BACKOFF), max(self.max_age, 1.0))
            self._fresh_until = min(now + self._backoff, self._stale_until)
        note = _Note(too_stale, info.key_id, self._backoff, self._stale_until - now)
        return (None if too_stale else stored), (note if first else None)

    def _log_fallback(self, exc: BaseException, note: _Note) -> None:
        if note.too_stale:
            _log.error(
                "re-reading %s failed (%s); not serving the cached key %s: it is stale by "
                "more than max_stale (%g s past max_age)",
                self.ref.describe(),
                type(exc).__name__,
                note.key_id,
                self.max_stale,
            )
            return
        _log.warning(
            "re-reading %s failed (%s: %s); serving the cached key %s, next try in %.0f s "
            "(for at most %.0f s more)",
            self.ref.describe(),
            type(exc).__name__,
            exc,
            note.key_id,
            note.backoff,
            note.left,
        )

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
        alias = self.ref.alias if self.ref.alias is not None else stored.alias
        command = (
            f"unkey-secrets provision --store {self._reader.store.name} --api-id {stored.api_id}"
        )
        if alias is not None:
            advice = (
                f"replace it before then ({command} --alias {alias} --replace: a new key, with "
                "no expiry unless --expires; a rotation keeps a key's expiry)"
            )
        else:
            advice = (
                f"provision a new key before then ({command}) and move this reader to it (a "
                "rotation keeps a key's expiry)"
            )
        message = (
            f"the key {stored.key_id} read for {self.ref.describe()} expires at "
            f"{ends.isoformat(timespec='seconds').replace('+00:00', 'Z')} ({stored.expires} Unix "
            f"ms), in {_duration_text(left)}; {advice}, or this reader fails with "
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
    ``refresh_ahead=True`` reads each key again in the background before its ``max_age`` runs
    out, at a random point between ``refresh_window[0]`` and ``refresh_window[1]`` times
    ``max_age`` after its last read (fractions, ``0 < low <= high <= 1``; default 0.75 and 0.9,
    so a fleet does not read in step), so that after its first read no :meth:`CachedKey.get`
    waits on the store (see :class:`CachedKey`). One daemon thread per reader does it, started
    at the first read; :meth:`close` (or leaving ``with KeyReader(...) as reader:``) stops and
    joins it, as does the reader being garbage-collected. A forked child starts its own at its
    first get() due for a refresh. Background reads run ``on_change`` callbacks, warnings and
    metrics as any read does, in that thread. ``refresh_thread=False`` starts no thread: then
    :meth:`run_refreshes` runs the reads due by ``clock`` (for tests that step ``clock``).
    ``clock`` (monotonic seconds) and ``wall_clock`` (Unix seconds, compared with a key's
    ``expires``) are for tests. Raises :class:`~unkey_secrets.InvalidInputError` for a bad
    number of seconds or window and :class:`~unkey_secrets.ConfigurationError` for ``verify``
    without ``unkey`` or ``refresh_ahead`` with ``max_age=0``.
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
        refresh_ahead: bool = False,
        refresh_window: tuple[float, float] = DEFAULT_REFRESH_WINDOW,
        refresh_thread: bool = True,
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
        window = _check_window(refresh_window)
        if refresh_ahead and self.max_age == 0:
            raise ConfigurationError(
                "refresh_ahead needs max_age > 0: with max_age=0 every get() reads the store"
            )
        self.clock = clock
        self.wall_clock = wall_clock
        self.refresh_ahead = bool(refresh_ahead)
        self.refresh_window = window
        self._lock = threading.Lock()
        self._keys: dict[UnkeyKey, CachedKey] = {}
        self._relogin_lock = threading.Lock()
        #: Whether background reads are scheduled now (False again once closed).
        self._ahead = self.refresh_ahead
        self._refresher: _Refresher | None = None
        if self.refresh_ahead:
            self._refresher = _Refresher(self, window, threaded=bool(refresh_thread))
            # The thread holds the reader weakly: a reader dropped unclosed stops it too.
            weakref.finalize(self, self._refresher.close, False)
        _READERS.add(self)

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        keys = getattr(self, "_keys", None)
        return (
            f"KeyReader(store={getattr(self, 'store', None)!r}, "
            f"max_age={_seconds_text(getattr(self, 'max_age', None))}, "
            f"max_stale={_seconds_text(getattr(self, 'max_stale', None))}, "
            f"read_timeout={_seconds_text(getattr(self, 'read_timeout', None))}, "
            f"verify={getattr(self, 'verify', None)}, "
            f"refresh_ahead={getattr(self, 'refresh_ahead', None)}, "
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
        regions: Sequence[str] | None = None,
        **options: Any,
    ) -> KeyReader:
        """A reader of Secrets Manager (``AWS_REGION``, ``AWS_ENDPOINT_URL``, the credential chain).

        ``client`` is a boto3 ``secretsmanager`` client to use instead of building one.
        ``regions`` (or ``UNKEY_SECRETS_AWS_READ_REGIONS``) are read in order, failing over to
        the next on throttling, an outage or a missing replica
        (:class:`~unkey_secrets.stores.aws.failover.RegionFailoverStore`; ``KeyInfo.region``
        says which served the key); with ``client``, :class:`~unkey_secrets.ConfigurationError`.
        ``options`` are :class:`KeyReader`'s (``read_timeout`` defaults to the client's botocore
        ``read_timeout``, in seconds, or with several regions, the sum of theirs, so every
        region gets its turn within one read).
        """
        from ..stores.aws.failover import reader_store

        return cls(reader_store(settings, client=client, regions=regions), **options)

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

    @guarded
    def warm(
        self, refs: Iterable[UnkeyKey | CachedKey]
    ) -> dict[UnkeyKey, KeyInfo | UnkeySecretsError]:
        """Read every key of ``refs`` that is not fresh, all in one batch, and cache them.

        ``refs`` are :class:`UnkeyKey` markers (their ``store`` member is not checked) or this
        reader's :class:`CachedKey` objects. The keys read at the start of the call less than
        ``max_age`` seconds ago are not read again; the others are read in one
        :meth:`~unkey_secrets.SecretStore.get_many` call (a single key: one plain read), under
        one transport deadline of ``read_timeout`` seconds, and each is checked as
        :meth:`CachedKey.get` checks a read (the key asked for, its expiry, ``verify``), then
        cached, with ``on_change``, the grace period and expiry warnings and the metrics of a
        read. A store's refusal logs in again once (``relogin``) and reads the refused keys
        again. A key already being read by another caller is not read twice: its read is
        awaited (at most ``read_timeout`` seconds from its start).

        Returns, for each item of ``refs`` (a :class:`CachedKey` by its ``ref``), the
        :class:`KeyInfo` of its key, or the error its read gave (as :meth:`CachedKey.refresh`
        raises it: :class:`~.KeyNotFoundError`, :class:`~.KeyAccessDeniedError`,
        :class:`~.KeyShapeError`, :class:`~.KeyExpiredError`, :class:`~.KeyStoreUnavailableError`,
        an :class:`~unkey_secrets.UnkeyError` of ``verify``...). A failing key fails no other
        and is not cached: the next :meth:`CachedKey.get` reads it (or serves the key cached
        before, as it would after any failed read). Raises
        :class:`~unkey_secrets.InvalidInputError` for an item that is neither (or a
        :class:`CachedKey` of another reader), before any read.
        """
        pairs: list[tuple[UnkeyKey, CachedKey]] = []
        for item in refs:
            if isinstance(item, CachedKey):
                if item._reader is not self:
                    raise InvalidInputError("refs", "expected this reader's CachedKey objects")
                pairs.append((item.ref, item))
            elif isinstance(item, UnkeyKey):
                pairs.append((item, self._cached(item)))
            else:
                raise InvalidInputError("refs", "expected UnkeyKey or CachedKey items")
        outcomes = self._read_many([(cached, None) for _, cached in pairs], "warm")
        result: dict[UnkeyKey, KeyInfo | UnkeySecretsError] = {}
        for ref, cached in pairs:
            outcome = outcomes[cached]
            if isinstance(outcome, StoredKey):
                result[ref] = cached._info_for(outcome)
            elif isinstance(outcome, UnkeySecretsError):
                result[ref] = _bare(outcome)
            else:
                raise outcome  # not a read's error (a bug, an interrupt): as get() raises it
        return result

    @guarded
    def run_refreshes(self) -> int:
        """Run now, in this thread, the background reads due by ``clock``; how many keys.

        With ``refresh_ahead``; for ``refresh_thread=False`` (a test stepping ``clock``), or to
        catch up at once. Returns 0 without refresh-ahead or once closed.
        """
        refresher = self._refresher
        if refresher is None or not self._ahead:
            return 0
        refs = refresher.take_due()
        if refs:
            self._refresh(refs)
        return len(refs)

    @guarded
    def close(self) -> None:
        """Stop the refresh-ahead thread and wait for it to end (idempotent).

        A background read in progress is awaited, for at most ``read_timeout`` seconds. The
        reader still answers afterwards, reading in the caller as without ``refresh_ahead``.
        The store is not closed (it may be shared). Called from the refresh thread itself (an
        ``on_change`` callback), it stops the thread without waiting for it.
        """
        self._ahead = False
        if self._refresher is not None:
            self._refresher.close(True)

    def __enter__(self) -> KeyReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- refresh-ahead and batches -------------------------------------------------------------

    def _schedule(self, ref: UnkeyKey, due: float) -> None:
        refresher = self._refresher
        if refresher is not None and self._ahead:
            refresher.schedule(ref, due)

    def _kick(self, ref: UnkeyKey) -> None:
        """A get() served ``ref`` past its fresh time: have a background read due, and a thread."""
        refresher = self._refresher
        if refresher is not None and self._ahead:
            refresher.kick(ref)

    def _refresh(self, refs: Sequence[UnkeyKey]) -> None:
        """The refresh-ahead reads of ``refs`` (due now), in one batch."""
        with self._lock:
            keys = [self._keys[ref] for ref in refs if ref in self._keys]
        if keys:
            self._read_many([(cached, None) for cached in keys], "background")

    def _read_many(
        self, items: Sequence[tuple[CachedKey, str | None]], mode: _Mode
    ) -> dict[CachedKey, StoredKey | BaseException]:
        """Read the keys of ``items`` that ``mode`` needs read, in one batch; each one's outcome.

        Each item is a key and the settings field it fills (for errors); its outcome is its
        key or its error.

        ``warm``: fresh keys are taken from the cache, a failure is the outcome (as refresh()).
        ``get``: each key as :meth:`CachedKey.get` gives it (the cache, a fallback, an error).
        ``background``: every key is read; a failure backs off. Every read goes through the
        key's single-flight: a read already in flight is joined, not repeated (the background
        marks it instead: its end schedules the next). Every flight led here ends here, an
        interrupt included.
        """
        outcomes: dict[CachedKey, StoredKey | BaseException] = {}
        leaders: list[tuple[CachedKey, str | None, _Flight]] = []
        joined: list[tuple[CachedKey, str | None, _Flight]] = []
        seen: set[int] = set()
        for cached, field in items:
            if id(cached) in seen:
                continue
            seen.add(id(cached))
            begun = cached._begin(mode)
            if isinstance(begun, StoredKey):
                outcomes[cached] = begun
            elif begun is not None:
                flight, leader = begun
                (leaders if leader else joined).append((cached, field, flight))
        force = mode == "warm"
        if leaders:
            try:
                answers = self._fetch(leaders)
            except BaseException as exc:
                for cached, _, flight in leaders:
                    cached._settle_failure(flight, exc, force=force)
                raise
            announcements = []
            for (cached, _, flight), answer in zip(leaders, answers, strict=True):
                if isinstance(answer, StoredKey):
                    if mode == "get":
                        cached._lookup("miss")
                    announce = cached._settle_success(flight, answer)
                    announcements.append((cached, answer, announce))
                    outcomes[cached] = answer
                    continue
                fallback = cached._settle_failure(flight, answer, force=force)
                if fallback is not None and mode == "get":
                    cached._lookup("stale")
                    outcomes[cached] = fallback
                else:
                    outcomes[cached] = answer
            # Once every flight has ended: no waiter waits on another key's callbacks.
            for cached, answer, (old, new, callbacks) in announcements:
                cached._announce(answer, old, new, callbacks)
        for cached, field, flight in joined:
            try:
                outcomes[cached] = cached._join(flight, force=force, field=field)
            except Exception as exc:  # noqa: BLE001 (each key's outcome, as the leaders')
                outcomes[cached] = exc
        return outcomes

    def _fetch(
        self, leaders: Sequence[tuple[CachedKey, str | None, _Flight]]
    ) -> list[StoredKey | Exception]:
        """Read (and check) the keys of ``leaders``: one plain read, or one get_many."""
        if len(leaders) == 1:
            # One key: the plain read (GetSecretValue, and the reader policy's permissions).
            cached, field, flight = leaders[0]
            ref = cached.ref
            try:
                with (
                    flow("reader.read", api_id=ref.api_id, alias=ref.alias, store=self.store.name),
                    deadline(flight.bound),
                ):
                    return [cached._read(field)]
            except Exception as exc:  # noqa: BLE001 (the key's outcome)
                return [exc]
        outcomes: list[StoredKey | Exception] = []
        with (
            flow("reader.warm", store=self.store.name, keys=len(leaders)),
            deadline(self.read_timeout),
        ):
            refs = [
                KeyRef(api_id=c.ref.api_id, alias=c.ref.alias, key_id=c.ref.key_id)
                for c, _, _ in leaders
            ]
            answers: list[StoredKey | StoreError]
            try:
                answers = self._read_store_many(refs)
            except StoreError as exc:  # the whole call failed: every key's error
                answers = [exc] * len(refs)
            for (cached, field, _), answer in zip(leaders, answers, strict=True):
                cached.reads += 1
                if isinstance(answer, StoreError):
                    outcomes.append(
                        translate_read_error(answer, cached.ref, field=field, store=self.store)
                    )
                    continue
                try:
                    cached._check(answer, field)
                except Exception as exc:  # noqa: BLE001 (the key's outcome)
                    outcomes.append(exc)
                else:
                    outcomes.append(answer)
        return outcomes

    def _read_store_many(self, refs: list[KeyRef]) -> list[StoredKey | StoreError]:
        """One get_many; after a refusal, log in again once (if we can) and read those again."""
        answers = self.store.get_many(refs)
        refused = [i for i, answer in enumerate(answers) if isinstance(answer, StoreAccessError)]
        if refused and self.relogin is not None:
            with self._relogin_lock:
                _log.info("%s refused a read; logging in again", self.store.name)
                self.relogin()
            again = self.store.get_many([refs[i] for i in refused])
            for index, answer in zip(refused, again, strict=True):
                answers[index] = answer
        return answers

    def _after_fork_in_child(self) -> None:
        """In a forked child: locks anew, no read in flight (their threads are gone)."""
        self._lock = threading.Lock()
        self._relogin_lock = threading.Lock()
        refresher = self._refresher
        pending = refresher.after_fork_in_child() if refresher is not None else {}
        for ref, cached in self._keys.items():
            cached._lock = threading.Lock()
            cached._flight = None
            due = pending.get(ref)
            if due is not None and self._ahead:
                # The child has no refresh thread: its first get() past this key's due time
                # starts one (see CachedKey._serve_ahead), as the thread would have read then.
                cached._fresh_until = min(cached._fresh_until, due)

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


class _Refresher:
    """A reader's refresh-ahead schedule: a heap of due times, and the thread that runs it.

    At most one pending entry per key (``_pending``: its entry's sequence number and due time);
    an entry superseded by a later schedule stays in the heap until popped, then is skipped.
    Holds the reader weakly: the thread never keeps it alive.
    """

    def __init__(self, reader: KeyReader, window: tuple[float, float], *, threaded: bool) -> None:
        self._reader = weakref.ref(reader)
        self._clock = reader.clock
        self._window = window
        self._threaded = threaded
        self._join_timeout = reader.read_timeout
        self._random = random.Random()  # noqa: S311 (jitter, not a secret)
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, UnkeyKey]] = []
        self._pending: dict[UnkeyKey, tuple[int, float]] = {}
        self._seq = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def due_after(self, now: float, max_age: float) -> float:
        """When the next background read is due after a read at ``now``: jittered per key."""
        low, high = self._window
        return now + max_age * self._random.uniform(low, high)

    def schedule(self, ref: UnkeyKey, due: float) -> None:
        """Make ``ref``'s next background read due at ``due`` (replacing any pending one)."""
        with self._cond:
            if self._closed:
                return
            self._push_locked(ref, due)
            self._start_locked()

    def kick(self, ref: UnkeyKey) -> None:
        """Have a background read of ``ref`` due now unless one is pending; a live thread."""
        now = self._clock()
        with self._cond:
            if self._closed:
                return
            if ref not in self._pending:
                self._push_locked(ref, now)
            self._cond.notify_all()
            self._start_locked()

    def take_due(self) -> list[UnkeyKey]:
        """Pop the keys whose background read is due by the clock."""
        with self._cond:
            self._cond.notify_all()  # see close()
            return self._take_due_locked(self._clock())

    def wake(self) -> None:
        """Have the thread look at the clock again (a test stepped it)."""
        with self._cond:
            self._cond.notify_all()

    def close(self, join: bool) -> None:
        """Stop: nothing more is scheduled; the thread ends (awaited with ``join``).

        Without ``join`` (the reader's finalizer, which the collector may run in any thread,
        this lock's holder included) the lock is not waited for: every holder notifies the
        thread before it lets go (or is the thread itself), and the thread looks at
        ``_closed`` whenever it wakes.
        """
        self._closed = True
        if self._cond.acquire(blocking=join):
            try:
                self._heap.clear()
                self._pending.clear()
                self._cond.notify_all()
            finally:
                self._cond.release()
        thread = self._thread
        if join and thread is not None and thread is not threading.current_thread():
            thread.join(self._join_timeout)

    def after_fork_in_child(self) -> dict[UnkeyKey, float]:
        """Forget the parent's thread and lock; the pending due times, by key."""
        self._cond = threading.Condition(threading.Lock())
        self._thread = None
        return {ref: due for ref, (_, due) in self._pending.items()}

    def _push_locked(self, ref: UnkeyKey, due: float) -> None:
        self._seq += 1
        self._pending[ref] = (self._seq, due)
        heapq.heappush(self._heap, (due, self._seq, ref))
        self._cond.notify_all()

    def _take_due_locked(self, now: float) -> list[UnkeyKey]:
        refs: list[UnkeyKey] = []
        while self._heap and self._heap[0][0] <= now:
            _, seq, ref = heapq.heappop(self._heap)
            entry = self._pending.get(ref)
            if entry is not None and entry[0] == seq:
                del self._pending[ref]
                refs.append(ref)
        return refs

    def _start_locked(self) -> None:
        if not self._threaded:
            return
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        self._thread = threading.Thread(target=_run, args=(self,), name=_THREAD, daemon=True)
        self._thread.start()

    def wait_due(self) -> list[UnkeyKey] | None:
        """For the thread: the keys due, once some are; None when it is to end."""
        with self._cond:
            while True:
                if (
                    self._closed
                    or self._thread is not threading.current_thread()
                    or self._reader() is None
                ):
                    return None
                now = self._clock()
                refs = self._take_due_locked(now)
                if refs:
                    return refs
                if self._heap:
                    self._cond.wait(min(self._heap[0][0] - now, threading.TIMEOUT_MAX))
                else:
                    self._cond.wait()


def _run(refresher: _Refresher) -> None:
    """The refresh-ahead thread: read the keys as they fall due, until the reader is gone."""
    while True:
        refs = refresher.wait_due()
        if refs is None:
            return
        reader = refresher._reader()
        if reader is None:
            return
        try:
            reader._refresh(refs)
        except Exception as exc:  # noqa: BLE001 (never end the thread with a traceback)
            # Only the class: an exception may hold a request.
            _log.warning("background refresh failed (%s)", type(exc).__name__)
        del reader  # not held while waiting: the reader may be collected meanwhile


#: Every live reader, for the fork handler.
_READERS: weakref.WeakSet[KeyReader] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The parent's threads do not exist in the child: a lock one held stays held, and a read
    # one led never ends. Start afresh; refresh-ahead restarts lazily.
    for reader in list(_READERS):
        reader._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
