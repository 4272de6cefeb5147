"""The cached reader for asyncio apps: :class:`AsyncKeyReader` and :class:`AsyncCachedKey`.

An :class:`AsyncKeyReader` wraps a :class:`~unkey_secrets.config.KeyReader`: the same cache,
the same ``max_age``, ``max_stale``, ``read_timeout``, expiry, ``verify`` and back-off, and
the same store objects with their transport policy (a deadline per request, a byte budget per
answer, redaction). What it adds is that no call blocks the event loop::

    reader = AsyncKeyReader.secrets_manager(max_age=60)
    key = reader.key(api_id="api_123", alias="billing")
    headers = {"Authorization": f"Bearer {(await key.secret()).reveal()}"}

A key still fresh is handed out at once, from memory, with no thread hop (the cache's lock is
held for microseconds). A key older than ``max_age`` is read by the sync store on a worker
thread of the reader's own (at most :data:`MAX_READ_THREADS`, so a stuck store never takes
the threads the loop's default executor lends to DNS look-ups and the app). However many
coroutines ask, one read per key is in flight; the others await the same outcome, shielded,
so a cancelled caller never cancels the read, and each waits at most ``read_timeout`` seconds
from the read's start. Sync callers of the wrapped reader join the same reads.

docs/performance.md ("The async reader: worker thread or aiobotocore") gives the figures
behind reading with the sync store on a worker thread rather than with an async SDK client.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import copy
import functools
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .. import _redact
from .._errors import ConfigurationError, UnkeySecretsError
from .._models import StoredKey
from .._redact import _clear_frames, guarded
from .._secret import Secret
from ._model import KeyInfo, UnkeyKey, UnkeySecretStr
from .reader import CachedKey, KeyReader, _Flight, field_ref

if TYPE_CHECKING:
    import hvac
    from pydantic_settings import BaseSettings

    from ..stores.aws.settings import AwsSettings
    from ..stores.base import SecretStore
    from ..stores.vault.settings import VaultSettings

__all__ = ["MAX_READ_THREADS", "AsyncCachedKey", "AsyncChangeCallback", "AsyncKeyReader"]

_log = logging.getLogger("unkey_secrets.config")

#: The most worker threads one :class:`AsyncKeyReader` reads its store on at once (one per key
#: being read; as many as a store's connection pool holds by default).
MAX_READ_THREADS = 10

#: ``callback(old, new)``, a plain function or an ``async def``: the key behind an
#: :class:`AsyncCachedKey` changed.
AsyncChangeCallback = Callable[[KeyInfo, KeyInfo], "Awaitable[None] | None"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _aguarded(
    func: Callable[_P, Coroutine[Any, Any, _R]], /
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """:func:`~unkey_secrets._redact.guarded` for a coroutine function.

    An exception leaving the awaited call has the locals of its finished frames cleared.
    """

    @functools.wraps(func)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        _redact.ensure_installed()
        held: list[Any] = [args, kwargs]
        del args, kwargs
        try:
            return await func(*held.pop(0), **held.pop(0))
        except BaseException as exc:
            _clear_frames(exc)
            raise

    return wrapper


def _own(error: BaseException) -> BaseException:
    """A copy of a read's error for one waiter to raise (no traceback, cause or context).

    The read's error is shared by every coroutine that awaited the read; each raises its own
    copy, so clearing the frames one copy's traceback reaches never touches another caller's
    suspended coroutine.
    """
    try:
        return copy.copy(error)
    except Exception:  # noqa: BLE001 (an exception that cannot be copied is raised as it is)
        return error


class _AsyncFlight:
    """One read on a worker thread; the coroutines of one loop await its outcome.

    ``marker`` carries the read's bound (``expires``, ``bound``) and the flag that says its
    failure was handled (the back-off advanced once), as the sync reader's flights do.
    ``future`` gives the read's own outcome, never a fallback.
    """

    __slots__ = ("future", "marker")

    def __init__(self, future: asyncio.Future[StoredKey], marker: _Flight) -> None:
        self.future = future
        self.marker = marker


class AsyncCachedKey:
    """The current key behind one alias (or key_id), for coroutines: ``await key.get()``.

    Built by :meth:`AsyncKeyReader.key`; it stands for the wrapped reader's
    :class:`~unkey_secrets.config.CachedKey` (:attr:`sync`) and keeps its guarantees: a key
    younger than ``max_age`` is returned from memory, without a thread hop; an older one is
    read on a worker thread, one read per key however many coroutines (and threads) ask, each
    caller waiting at most ``read_timeout`` seconds from the read's start. While the store
    fails, or a read outlives ``read_timeout``, the cached key is served for at most
    ``max_stale`` seconds past ``max_age`` (with the sync reader's back-off); a key whose own
    expiry has passed is never handed out (:class:`~.KeyExpiredError`). Cancelling a caller
    never cancels the read it awaits. Errors are the sync reader's.
    """

    def __init__(self, reader: AsyncKeyReader, cached: CachedKey) -> None:
        self._reader = reader
        #: The wrapped :class:`~unkey_secrets.config.CachedKey` (for sync callers).
        self.sync = cached
        self.ref = cached.ref
        self._flights: dict[asyncio.AbstractEventLoop, _AsyncFlight] = {}

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        sync = getattr(self, "sync", None)
        return f"Async{sync!r}" if sync is not None else "AsyncCachedKey(?)"

    @property
    def max_age(self) -> float:
        """Seconds a read stays fresh (the reader's ``max_age``)."""
        return self.sync.max_age

    @property
    def max_stale(self) -> float:
        """Seconds past ``max_age`` the cached key may be served while the store fails."""
        return self.sync.max_stale

    @property
    def read_timeout(self) -> float:
        """Seconds a read may take, and a caller may wait for one."""
        return self.sync.read_timeout

    @property
    def reads(self) -> int:
        """How many times the store was read for this key (by sync and async callers)."""
        return self.sync.reads

    # -- reading -------------------------------------------------------------------------------

    async def get(self, *, field: str | None = None) -> StoredKey:
        """The current key (``.secret`` masked in every repr), read if older than ``max_age``.

        As :meth:`CachedKey.get <unkey_secrets.config.CachedKey.get>`, without blocking the
        event loop: returns within ``read_timeout`` seconds, serves the cached key while the
        store fails for at most ``max_stale`` seconds past ``max_age``, never an expired key.
        """
        # The hit first, outside the guarded entry point: memory alone (no I/O, no log record,
        # no error), which the guards would cost many times over.
        hit = self._hit()
        return await self._obtain_guarded(False, field) if hit is None else hit

    @_aguarded
    async def refresh(self) -> StoredKey:
        """Read the store now (or await the read in flight) and return the key.

        For an app that just got a 401 with the cached key. Raises on failure, and
        :class:`~.KeyStoreUnavailableError` when the read is still running ``read_timeout``
        seconds after it started: it never falls back to the cached key.
        """
        return await self._obtain(force=True, field=None)

    async def secret(self) -> Secret:
        """The current key's plaintext holder (:meth:`Secret.reveal` gives the text)."""
        hit = self._hit()  # as get()
        return (await self._obtain_guarded(False, None) if hit is None else hit).secret

    @_aguarded
    async def secret_str(self) -> UnkeySecretStr:
        """The current key as an :class:`UnkeySecretStr` (a ``SecretStr`` with ``.info``)."""
        stored = await self._obtain(force=False, field=None)
        return UnkeySecretStr(stored.secret.reveal(), self.sync._info_for(stored))

    @_aguarded
    async def info(self) -> KeyInfo:
        """The current key's metadata (key_id, version, expiry...), read if older than max_age."""
        return self.sync._info_for(await self._obtain(force=False, field=None))

    @guarded
    def on_change(self, callback: AsyncChangeCallback) -> Callable[[], None]:
        """Call ``callback(old, new)`` (two :class:`KeyInfo`) whenever a read finds another key.

        ``callback`` is a plain function or an ``async def``; either runs on the reader's event
        loop (the one it was last used on), after the cache was updated: a plain one called
        there, an ``async`` one run as a task there. An exception either raises is logged (its
        class only) and swallowed. Reads made by sync callers of the wrapped reader call it
        too. Returns a function that unsubscribes ``callback``.
        """
        reader = self._reader

        def bridge(old: KeyInfo, new: KeyInfo) -> None:
            reader._deliver(callback, old, new)

        reader._bind_running_loop()
        unsubscribe = self.sync.on_change(bridge)
        reader._subscribed(unsubscribe)
        return unsubscribe

    # -- the machinery -------------------------------------------------------------------------

    def _hit(self) -> StoredKey | None:
        """The key a get() hands out from memory, or None when it must read. No I/O.

        The cached key while fresh and not expired (a ``hit``); with the reader's
        ``refresh_ahead``, also while it may be served until a background read replaces it
        (that read made due now if it is not yet).
        """
        if self._reader._closed:
            return None
        cached = self.sync
        stored = cached._hit()
        if stored is not None or not cached._reader._ahead:
            return stored
        with cached._lock:
            served = cached._servable_locked()
        return None if served is None else cached._serve_ahead(*served)

    @_aguarded
    async def _obtain_guarded(self, force: bool, field: str | None) -> StoredKey:
        return await self._obtain(force=force, field=field)

    async def _obtain(self, *, force: bool, field: str | None) -> StoredKey:
        reader = self._reader
        reader._check_open()
        if not force:
            hit = self._hit()
            if hit is not None:
                return hit
        loop = asyncio.get_running_loop()
        reader._loop = loop
        flight = self._flights.get(loop)
        leader = flight is None
        if flight is None:
            flight = self._launch(loop, field, fallback=not force)
        cached = self.sync
        error: BaseException | None = None
        future = flight.future
        try:
            # shield: this caller's timeout or cancellation ends its wait, never the read.
            remaining = max(flight.marker.expires - time.monotonic(), 0.0)
            stored = await asyncio.wait_for(asyncio.shield(future), remaining)
        except Exception:  # noqa: BLE001 (the read's own error, raised below or served stale)
            if not future.done() or future.cancelled():
                error = cached._overdue(flight.marker, field)
            else:  # the read ended (perhaps just as the wait did): its own outcome
                error = future.exception()
                if error is None:
                    stored = future.result()
                else:
                    error = _own(error)
        if error is None:
            if not leader:  # the read counted its own caller's lookup
                cached._lookup("miss")
            return stored
        fallback = None if force else cached._fallback(error, flight.marker)
        if fallback is None:
            raise error
        cached._lookup("stale")
        return fallback

    def _launch(
        self, loop: asyncio.AbstractEventLoop, field: str | None, *, fallback: bool
    ) -> _AsyncFlight:
        """Start one read on a worker thread, as this loop's flight for this key."""
        for other in list(self._flights):
            if other.is_closed():
                # A loop closed while its read ran (asyncio.run() returning, a test's loop):
                # its flight never lands, and would keep the loop alive with this key.
                self._flights.pop(other, None)
        marker = _Flight(self.sync.read_timeout)
        context = contextvars.copy_context()  # the caller's tracing and deadline go along
        future: asyncio.Future[StoredKey] = loop.run_in_executor(
            self._reader._executor_for_reads(),
            context.run,
            self._read_in_thread,
            marker,
            field,
            fallback,
        )
        flight = self._flights[loop] = _AsyncFlight(future, marker)
        future.add_done_callback(functools.partial(self._landed, loop, flight))
        return flight

    def _read_in_thread(self, marker: _Flight, field: str | None, fallback: bool) -> StoredKey:
        """The sync reader's read (or its read in flight), on a worker thread.

        Forced: the outcome is the read's own, and each waiter decides for itself whether to
        serve the cached key. For a get(), a failure's back-off is advanced here, before the
        flight ends, so a caller arriving next finds it (as the sync reader does).
        """
        cached = self.sync
        try:
            return cached._obtain(force=True, field=field)
        except BaseException as exc:
            if fallback:
                with cached._lock:
                    # A sync caller whose read this one joined handled the failure already.
                    handled = cached._fresh_until > cached._reader.clock()
                if handled:
                    marker.handled = True
                else:
                    cached._fallback(exc, marker)
            raise

    def _landed(
        self,
        loop: asyncio.AbstractEventLoop,
        flight: _AsyncFlight,
        future: asyncio.Future[StoredKey],
    ) -> None:
        if self._flights.get(loop) is flight:
            del self._flights[loop]
        if not future.cancelled():
            future.exception()  # retrieved: no "never retrieved" report when no one waited


class AsyncKeyReader:
    """Reads current keys from one store for asyncio apps, each cached for ``max_age`` seconds.

    ``AsyncKeyReader(store, **options)`` builds a :class:`~unkey_secrets.config.KeyReader`
    with ``options`` (``max_age``, ``max_stale``, ``read_timeout``, ``verify`` and ``unkey``,
    ``expiry_warning``, ``refresh_ahead`` and ``refresh_window``...) and wraps it;
    ``AsyncKeyReader(key_reader)`` wraps one already built, sharing its cache with sync
    callers. :meth:`vault` and :meth:`secrets_manager` mirror the sync reader's (they log in and
    build an SDK client: call them before serving, or through ``asyncio.to_thread``).
    :attr:`sync` is the wrapped reader.

    With ``refresh_ahead=True``, the wrapped reader's thread reads each key again before its
    ``max_age`` runs out, so after a key's first read ``await key.get()`` never waits for the
    store: it is answered from memory every time. :meth:`warm` reads many keys in one batch.

    Use it as ``async with`` (or call :meth:`aclose`): closing unsubscribes its ``on_change``
    callbacks from the wrapped reader, cancels the callback tasks still running, waits for the
    reads in flight (at most their ``read_timeout``), closes the wrapped reader when it built it
    (stopping its refresh-ahead thread) and lets its worker threads end. A forked child (a
    server's workers, forked after the parent read) starts worker threads of its own.
    """

    @guarded
    def __init__(self, store: SecretStore | KeyReader, **options: Any) -> None:
        if isinstance(store, KeyReader):
            if options:
                raise ConfigurationError(
                    "AsyncKeyReader(key_reader) takes no options: they are the KeyReader's"
                )
            self.sync = store
            self._owns = False
        else:
            self.sync = KeyReader(store, **options)
            self._owns = True
        self._lock = threading.Lock()
        self._keys: dict[UnkeyKey, AsyncCachedKey] = {}
        #: get(api_id=..., alias=..., key_id=...) arguments seen, validated, to their key.
        self._names: dict[tuple[str, str | None, str | None], AsyncCachedKey] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Future[None]] = set()
        self._unsubscribers: list[Callable[[], None]] = []
        self._closed = False
        self._bind_running_loop()
        _READERS.add(self)

    def __repr__(self) -> str:
        return f"Async{getattr(self, 'sync', None)!r}"

    @classmethod
    @guarded
    def vault(
        cls,
        settings: VaultSettings | None = None,
        *,
        client: hvac.Client | None = None,
        **options: Any,
    ) -> AsyncKeyReader:
        """An async reader of Vault: :meth:`KeyReader.vault`'s, wrapped (see there).

        Logs in (talks to Vault) for every auth method but ``token``.
        """
        reader = cls(KeyReader.vault(settings, client=client, **options))
        reader._owns = True
        return reader

    @classmethod
    @guarded
    def secrets_manager(
        cls,
        settings: AwsSettings | None = None,
        *,
        client: Any = None,
        **options: Any,
    ) -> AsyncKeyReader:
        """An async reader of Secrets Manager: :meth:`KeyReader.secrets_manager`'s, wrapped."""
        reader = cls(KeyReader.secrets_manager(settings, client=client, **options))
        reader._owns = True
        return reader

    @property
    def store(self) -> SecretStore:
        """The store read."""
        return self.sync.store

    @property
    def max_age(self) -> float:
        """Seconds a read stays fresh."""
        return self.sync.max_age

    @property
    def max_stale(self) -> float:
        """Seconds past ``max_age`` a cached key may be served while the store fails."""
        return self.sync.max_stale

    @property
    def read_timeout(self) -> float:
        """Seconds a read may take, and a caller may wait for one."""
        return self.sync.read_timeout

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    @guarded
    def key(
        self, *, api_id: str, alias: str | None = None, key_id: str | None = None
    ) -> AsyncCachedKey:
        """The :class:`AsyncCachedKey` for ``alias`` (or ``key_id``) of ``api_id``; one per name."""
        return self._wrap(self.sync._cached(UnkeyKey(api_id=api_id, alias=alias, key_id=key_id)))

    @guarded
    def cached(self, ref: UnkeyKey) -> AsyncCachedKey:
        """The :class:`AsyncCachedKey` for ``ref`` (its ``store`` member is not checked here)."""
        return self._wrap(self.sync._cached(ref))

    @guarded
    def for_field(self, settings_cls: type[BaseSettings], field_name: str) -> AsyncCachedKey:
        """The :class:`AsyncCachedKey` behind a settings field's :class:`UnkeyKey` marker."""
        return self._wrap(self.sync._cached(field_ref(settings_cls, field_name)))

    async def get(
        self, *, api_id: str, alias: str | None = None, key_id: str | None = None
    ) -> StoredKey:
        """``await self.key(...).get()``: the current key, cached for ``max_age``."""
        # A key asked for before, and fresh: answered before the guarded entry point (memory
        # alone), as AsyncCachedKey.get() does. Anything else is validated and read inside it.
        known = self._names.get((api_id, alias, key_id))
        hit = None if known is None else known._hit()
        return await self._get(api_id, alias, key_id) if hit is None else hit

    @_aguarded
    async def _get(self, api_id: str, alias: str | None, key_id: str | None) -> StoredKey:
        cached = self.key(api_id=api_id, alias=alias, key_id=key_id)
        with self._lock:
            self._names[(api_id, alias, key_id)] = cached
        return await cached._obtain(force=False, field=None)

    @_aguarded
    async def warm(
        self, refs: Iterable[UnkeyKey | AsyncCachedKey | CachedKey]
    ) -> dict[UnkeyKey, KeyInfo | UnkeySecretsError]:
        """:meth:`KeyReader.warm <unkey_secrets.config.KeyReader.warm>` on a worker thread.

        Reads every key of ``refs`` that is not fresh in one batch (one ``BatchGetSecretValue``
        in Secrets Manager, concurrent reads in Vault) and caches them; returns each ref's
        :class:`KeyInfo` or the error its read gave. ``refs`` are :class:`UnkeyKey` markers or
        this reader's :class:`AsyncCachedKey` (or the wrapped reader's ``CachedKey``) objects.
        """
        self._check_open()
        items = [item.sync if isinstance(item, AsyncCachedKey) else item for item in refs]
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        return await loop.run_in_executor(
            self._executor_for_reads(), context.run, self.sync.warm, items
        )

    @_aguarded
    async def aclose(self) -> None:
        """Stop: callbacks unsubscribed, callback tasks cancelled, reads in flight awaited.

        Waits for each read in flight at most until its ``read_timeout`` ends (the read runs
        under that deadline). Afterwards the reader raises
        :class:`~unkey_secrets.ConfigurationError`; calling this again does nothing.
        """
        if self._closed:
            return
        self._closed = True
        with self._lock:
            unsubscribers, self._unsubscribers = self._unsubscribers, []
            keys = list(self._keys.values())
            executor, self._executor = self._executor, None
        for unsubscribe in unsubscribers:
            unsubscribe()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        flights = [flight for key in keys for flight in list(key._flights.values())]
        loop = asyncio.get_running_loop()
        pending = [f.future for f in flights if f.future.get_loop() is loop]
        if pending:
            left = max(f.marker.expires for f in flights) - time.monotonic()
            await asyncio.wait(pending, timeout=max(left, 0.0))
        if executor is not None:
            executor.shutdown(wait=False)
        if self._owns:
            # Stops the refresh-ahead thread, waiting for a background read at most its bound;
            # on a thread of its own: the workers may all still be held by reads that hang.
            closer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unkey-secrets-close")
            try:
                await loop.run_in_executor(closer, self.sync.close)
            finally:
                closer.shutdown(wait=False)

    async def __aenter__(self) -> AsyncKeyReader:
        self._check_open()
        self._bind_running_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the machinery -------------------------------------------------------------------------

    def _wrap(self, cached: CachedKey) -> AsyncCachedKey:
        with self._lock:
            wrapped = self._keys.get(cached.ref)
            if wrapped is None:
                wrapped = self._keys[cached.ref] = AsyncCachedKey(self, cached)
            return wrapped

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this AsyncKeyReader is closed (aclose); build another")

    def _bind_running_loop(self) -> None:
        with contextlib.suppress(RuntimeError):  # outside a coroutine: bound at the first read
            self._loop = asyncio.get_running_loop()

    def _executor_for_reads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=MAX_READ_THREADS, thread_name_prefix="unkey-secrets-reader"
                )
            return self._executor

    def _after_fork_in_child(self) -> None:
        """In a forked child: none of the parent's worker threads, reads or callback tasks.

        The parent's executor would take each read for one of its idle threads, which did not
        come along, and the read would never run: the child's first read starts new threads.
        """
        self._lock = threading.Lock()
        self._executor = None
        self._tasks = set()
        self._loop = None
        for key in list(self._keys.values()):
            key._flights = {}

    def _subscribed(self, unsubscribe: Callable[[], None]) -> None:
        with self._lock:
            self._unsubscribers.append(unsubscribe)

    def _deliver(self, callback: AsyncChangeCallback, old: KeyInfo, new: KeyInfo) -> None:
        """Run ``callback(old, new)`` on the reader's loop (called in the thread that read)."""
        loop = self._loop
        if loop is None or self._closed:
            _log.warning("on_change callback not run: the AsyncKeyReader has no running loop")
            return
        try:
            loop.call_soon_threadsafe(self._run_callback, callback, old, new)
        except RuntimeError:  # the loop is closed
            _log.warning("on_change callback not run: the AsyncKeyReader's loop is closed")

    def _run_callback(self, callback: AsyncChangeCallback, old: KeyInfo, new: KeyInfo) -> None:
        """On the loop: call ``callback``; an awaitable it returns is run as a task."""
        try:
            result = callback(old, new)
        except Exception as exc:  # noqa: BLE001 (a callback must not break reads)
            _log.warning("on_change callback failed (%s)", type(exc).__name__)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(_awaited(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def _awaited(result: Awaitable[None]) -> None:
    try:
        await result
    except Exception as exc:  # noqa: BLE001 (a callback must not break reads)
        _log.warning("on_change callback failed (%s)", type(exc).__name__)


#: Every live AsyncKeyReader, for the fork handler.
_READERS: weakref.WeakSet[AsyncKeyReader] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reader in list(_READERS):
        reader._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
