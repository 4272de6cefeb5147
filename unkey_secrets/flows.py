"""The three jobs, each one call: provision (create -> store), rotate (reroll -> store), capture.

Every flow keeps the no-valid-orphan promise: a key Unkey issues through us ends up stored where
the caller asked, or it is deleted in Unkey (after a reroll, the original key's expiry is put
back), or it was created disabled and never enabled. When Unkey may have acted without answering,
the flow looks for the key by a marker it put in the key's ``meta`` and settles the outcome before
it raises. Errors name key_ids and what was undone, never a plaintext.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ._errors import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
    ConfigurationError,
    FlowError,
    InvalidInputError,
    RotationConflictError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
    UnkeyAmbiguousError,
    UnkeyError,
    UnkeyResponseError,
    UnkeyServerError,
)
from ._models import AliasState, IssuedKey, StoredLocation
from ._redact import check_http_debug, guarded
from ._secret import Secret
from ._validate import validate_api_id, validate_key_id, validate_key_plaintext
from .rotation.core import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_LEASE,
    MARKER_META_KEY,
    PENDING_META_KEY,
    check_grace_period,
    confirm_key_id,
    marker_of,
)
from .rotation.core import user_meta as user_meta_of
from .settle import (
    describe_error,
    find_marked,
    lost_answer_settled,
    safe_cause,
    store_or_undo,
    undo_create,
)
from .settle.keys import compensated, compensation_failed
from .stores.base import UNCHECKED, SecretStore, _Unchecked
from .telemetry.tracing import flow, span_event
from .unkey import UnkeyClient
from .unkey.backoff import Backoff

if TYPE_CHECKING:
    # The rotation's own modules load with its first use (a replace, a rotation, a move whose
    # answer was lost): a provision that needs none of them does not pay for them.
    from .rotation.protocol import RotationResult

__all__ = [
    "ProvisionResult",
    "RetryPolicy",
    "capture",
    "finish_half_done",
    "provision",
    "rotate",
]

logger = logging.getLogger("unkey_secrets.flows")

_T = TypeVar("_T")
#: Our ``meta`` members; a caller's meta may not use this prefix.
_RESERVED_META_PREFIX = "unkey_secrets_"


@dataclass(frozen=True)
class RetryPolicy:
    """How a store write that failed transiently is retried (exponential backoff, full jitter)."""

    attempts: int = 4
    backoff: float = 0.2
    max_backoff: float = 5.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise InvalidInputError("attempts", "must be at least 1")
        if self.backoff < 0 or self.max_backoff < 0:
            raise InvalidInputError("backoff", "may not be negative")

    def run(self, operation: Callable[[], _T]) -> _T:
        """Run ``operation``, retrying it on :class:`StoreUnavailableError` only."""
        backoff = Backoff(max_retries=self.attempts - 1, base=self.backoff, cap=self.max_backoff)
        for retry in range(self.attempts - 1):
            try:
                return operation()
            except StoreUnavailableError:
                delay = backoff.delay(retry)
                # On the flow's span: the store call that failed is a span of its own.
                span_event("unkey_secrets.store_retry", attempt=retry + 2, delay_s=delay)
                self.sleep(delay)
        return operation()


@dataclass(frozen=True)
class ProvisionResult:
    """What :func:`provision` did: no plaintext, safe to print."""

    key_id: str
    api_id: str
    location: StoredLocation
    current: StoredLocation | None
    request_id: str | None
    mode: Literal["safe", "fast"]
    #: The key the alias named before (``replace=True``), cut to the grace period, and when
    #: it now expires (Unix ms).
    replaced_key_id: str | None = None
    replaced_expires: int | None = None


@guarded
def provision(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    *,
    alias: str | None = None,
    replace: bool = False,
    grace_period: dt.timedelta = DEFAULT_GRACE_PERIOD,
    allow_short_grace: bool = False,
    mode: Literal["safe", "fast"] = "safe",
    retry: RetryPolicy | None = None,
    clock: Callable[[], float] = time.time,
    **create_options: Any,
) -> ProvisionResult:
    """Create a key in Unkey and store it; optionally point the stable ``alias`` at it.

    ``mode="safe"`` (the default) creates the key disabled, stores it, then enables it: a
    failure at any point leaves at most a disabled key. It costs one more Unkey call than
    ``mode="fast"``, which creates the key enabled and deletes it if the store write fails.
    ``create_options`` are :meth:`UnkeyClient.create_key`'s options (prefix, name, meta,
    external_id, expires, credits, ratelimits, roles, permissions, ...).

    An ``alias`` that already names a key is refused with
    :class:`~unkey_secrets.RotationConflictError` before Unkey is called, unless
    ``replace=True``: then the alias moves to the new key and the key it named is cut to
    ``grace_period``, as a rotation would cut it. Running the same call again after the alias
    was taken by this very call is refused too: use :func:`rotate` to replace a key.

    A replace takes part in the replaced key's rotation record
    (:mod:`unkey_secrets.rotation.displace`): a live rotation of that key refuses it before
    Unkey is called, a dead one is finished, and a replace killed anywhere is finished by the
    same call run again (or by rotating the alias). ``clock`` returns Unix seconds.
    """
    with flow("provision", api_id=api_id, alias=alias, mode=mode, replace=replace) as scope:
        retry = retry or RetryPolicy()
        if mode not in ("safe", "fast"):
            raise InvalidInputError("mode", "expected 'safe' or 'fast'")
        if "enabled" in create_options and mode == "safe":
            raise InvalidInputError(
                "enabled", "safe mode creates the key disabled, then enables it"
            )
        if replace and alias is None:
            raise InvalidInputError("replace", "replaces the key an alias names: pass alias too")
        check_grace_period(grace_period, allow_short_grace=allow_short_grace, now_ms=_now_ms())
        _preflight(store, api_id, alias)
        taken = None
        if alias is not None and replace:
            taken = retry.run(lambda: store.alias_state(api_id=api_id, alias=alias))
        elif alias is not None and store.alias_exists(api_id=api_id, alias=alias):
            adopted = finish_half_done(unkey, store, api_id, alias, retry, mode)
            if adopted is not None:
                scope.set(key_id=adopted.key_id, finished_half_done=True)
                return adopted
            raise RotationConflictError(
                f"alias {alias} names a key already; rotate that key, or replace it (replace=True; "
                "--replace on the command line): the alias then moves to the new key and the old "
                "one is cut to the grace period",
                key_id=None,
            )
        user_meta = dict(create_options.pop("meta", None) or {})
        reserved = sorted(k for k in user_meta if str(k).startswith(_RESERVED_META_PREFIX))
        if reserved:
            raise InvalidInputError("meta", f"members starting {_RESERVED_META_PREFIX!r} are ours")
        expires = create_options.get("expires")
        if isinstance(expires, int) and not isinstance(expires, bool) and expires <= _now_ms():
            raise InvalidInputError(
                "expires", "is in the past (it is Unix time in milliseconds, not seconds)"
            )
        marker = _new_marker(store)
        displacement = None
        if taken is not None and alias is not None:
            from .rotation.displace import Displacement
            from .rotation.protocol import Rotation

            rotation = Rotation(
                unkey, store, api_id, grace_period=grace_period, retry=retry.run, clock=clock
            )
            displacement = Displacement(rotation, alias, taken, marker)
            displacement.claim()
            marker = displacement.token
        try:
            issued, location = _create_and_store(
                unkey, store, api_id, alias, taken, marker, user_meta, mode, retry, create_options
            )
            expected = taken if replace else None
            current = _move_alias(store, issued, alias, retry, location, expected, unkey, user_meta)
            if mode == "safe" and taken is None and alias is not None:
                # A new alias names the key before it is enabled: no reader used it before, and a
                # run killed in between leaves the alias on a disabled key carrying our marker,
                # which the same call run again finds and finishes (finish_half_done).
                _enable(unkey, issued, location, alias, user_meta)
        except BaseException:
            if displacement is not None:
                # Whatever is left (a key stored but not named) carries the record's token: the
                # next run of this replace, or a rotation of the alias, takes the claim and ends it.
                displacement.release()
            raise
        replaced_expires = None
        if displacement is not None and taken is not None:
            try:
                replaced_expires = displacement.finish(issued.key_id)
            except UnkeyError as exc:
                raise FlowError(
                    f"key {issued.key_id} is stored and the alias names it, but cutting the "
                    f"replaced key {taken.key_id} to the grace period failed "
                    f"({type(exc).__name__}); run the same call again to finish",
                    key_id=issued.key_id,
                    original_key_id=taken.key_id,
                    actions=("stored", "alias moved", f"key {taken.key_id} not cut"),
                ) from exc
        scope.set(key_id=issued.key_id, replaced_key_id=taken.key_id if taken else None)
        logger.info(
            "provisioned key_id=%s api_id=%s location=%s version=%s mode=%s",
            issued.key_id,
            api_id,
            location.location,
            location.version,
            mode,
        )
        return ProvisionResult(
            key_id=issued.key_id,
            api_id=api_id,
            location=location,
            current=current,
            request_id=issued.request_id,
            mode=mode,
            replaced_key_id=taken.key_id if taken is not None else None,
            replaced_expires=replaced_expires,
        )


def _create_and_store(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    alias: str | None,
    taken: AliasState | None,
    marker: str,
    user_meta: dict[str, Any],
    mode: str,
    retry: RetryPolicy,
    create_options: dict[str, Any],
) -> tuple[IssuedKey, StoredLocation]:
    """Create the key (marked), store it, enable it (safe mode); undo on failure."""
    external_id = create_options.get("external_id")
    if mode == "safe":
        create_options["enabled"] = False
    try:
        ours = {MARKER_META_KEY: marker}
        if mode == "safe":
            ours[PENDING_META_KEY] = "enable"
        issued = unkey.create_key(api_id, meta={**user_meta, **ours}, **create_options)
    except (UnkeyAmbiguousError, UnkeyServerError) as exc:
        # A 5xx may come from a proxy after Unkey acted: settle it like a lost answer.
        raise _settle_lost_create(unkey, api_id, marker, external_id) from exc
    except UnkeyResponseError as exc:
        if exc.key_id is None:
            raise
        # Unkey made a key whose plaintext is not a key's shape: it can never be stored.
        actions = undo_create(unkey, exc.key_id, exc)
        raise CompensatedError(
            f"createKey answered key {exc.key_id} with a value that is not an Unkey key; "
            + "; ".join(actions),
            key_id=exc.key_id,
            actions=actions,
        ) from exc

    if alias is not None:
        # A replace records the key it replaced; its marks stay until the replace is done.
        replaced = taken.key_id if taken is not None else None
        issued = dataclasses.replace(issued, alias=alias, rerolled_from=replaced)
    location = _put_or_compensate(unkey, store, issued, retry)
    if mode == "safe" and taken is not None:
        # Replacing: the alias moves last, so its readers are never pointed at a disabled
        # key; the marks stay until the replace is done.
        _enable(unkey, issued, location, alias, None, keep_meta=True)
    elif mode == "safe" and alias is None:
        _enable(unkey, issued, location, alias, user_meta)
    return issued, location


def _enable(
    unkey: UnkeyClient,
    issued: IssuedKey,
    location: StoredLocation,
    alias: str | None,
    user_meta: dict[str, Any] | None,
    *,
    keep_meta: bool = False,
) -> None:
    """Enable a safe-mode key (and give it its own meta back, unless ``keep_meta``)."""
    try:
        if keep_meta:
            unkey.update_key(issued.key_id, enabled=True)
        else:
            unkey.update_key(issued.key_id, enabled=True, meta=user_meta or None)
    except UnkeyError as exc:
        state = _enabled_state(unkey, issued.key_id)
        raise FlowError(
            f"key {issued.key_id} is stored at {location.location} but enabling it failed "
            f"({type(exc).__name__}); it is {state}" + _enable_advice(alias, keep_meta),
            key_id=issued.key_id,
            actions=(f"stored at {location.location}", state),
        ) from exc


def _enable_advice(alias: str | None, replacing: bool) -> str:
    if alias is None:
        return ""
    if replacing:
        return f" and alias {alias} was not moved to it; run the same call again to finish"
    return f"; alias {alias} names it: run the same call again to finish"


def finish_half_done(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    alias: str,
    retry: RetryPolicy,
    mode: str,
) -> ProvisionResult | None:
    """Finish a safe-mode run of this call that died between its alias move and its enable.

    The alias is taken; if the key it names is disabled and still carries a provision marker
    (``op_``) and the pending mark safe mode creates keys with, it is enabled and its marks
    removed, which is all that run had left to do.
    Anything else (a working key, a store this writer may not read) gives None: the caller
    refuses as before.
    """
    try:
        state = retry.run(lambda: store.alias_state(api_id=api_id, alias=alias))
    except StoreError:
        return None
    if state is None:
        return None
    info = unkey.get_key(state.key_id)
    marker = marker_of(info)
    pending = (info.meta or {}).get(PENDING_META_KEY) == "enable"
    if info.enabled or not pending or marker is None or not marker.startswith("op_"):
        # A key an operator disabled (it carries no pending mark) is never enabled here.
        return None
    location = store.describe_location(api_id=api_id, key_id=info.key_id)
    unkey.update_key(info.key_id, enabled=True, meta=user_meta_of(info.meta) or None)
    logger.info("finished key_id=%s api_id=%s: enabled for alias %s", info.key_id, api_id, alias)
    current = store.describe_location(api_id=api_id, key_id=info.key_id, alias=alias)
    return ProvisionResult(
        key_id=info.key_id,
        api_id=api_id,
        location=location,
        current=current,
        request_id=None,
        mode="safe" if mode == "safe" else "fast",
    )


@guarded
def rotate(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    key_id: str | None = None,
    *,
    alias: str | None = None,
    grace_period: dt.timedelta = DEFAULT_GRACE_PERIOD,
    allow_short_grace: bool = False,
    retry: RetryPolicy | None = None,
    takeover: bool = False,
    lease: dt.timedelta = DEFAULT_LEASE,
    clock: Callable[[], float] = time.time,
) -> RotationResult:
    """Reroll the key ``alias`` names (or ``key_id``), store the new one, move its aliases.

    Rotating by ``alias`` is the documented way: it rotates whatever key the alias names now.
    Every alias that names the key is moved (the one given, and the one the key was stored
    for). The original stays valid on a hold until the new key is stored and the aliases name
    it, then for ``grace_period`` (never past its own expiry).

    The rotation keeps a record in the store (:mod:`unkey_secrets.rotation.record`), so:

    * running the same call again after it finished changes nothing and returns the finished
      rotation (``outcome="already-done"``); a ``key_id`` already rotated out is never rerolled
      a second time;
    * a run that failed or was killed anywhere is finished by running the same call again
      (``outcome="resumed"``): a killed run's claim is taken over at once on the same host, and
      after ``lease`` from another (``takeover=True`` takes it over now);
    * a second run while one is under way fails with
      :class:`~unkey_secrets.RotationConflictError` before calling Unkey.

    ``key_id`` and ``api_id`` are checked before any request: a value with a key's shape is
    refused (:func:`~unkey_secrets._validate.validate_key_id`). A ``key_id`` holding a key's
    random run (an older keyId, ``key_`` and 22 characters) is confirmed by Unkey with one
    getKey before the store is asked anything about it, since a key whose prefix is ``key``
    has the same shape.

    Unkey calls are constant in the API's size (getKey, updateKey, rerollKey, two updateKeys);
    listing the API's keys happens only to clear up after a lost attempt. ``clock`` returns
    Unix seconds (tests set it). Errors: :class:`~unkey_secrets.InvalidInputError` (nothing
    changed; it names the field, and never shows a value with a key's shape),
    :class:`~unkey_secrets.RotationConflictError`, and the :class:`FlowError` family, each
    naming the key_ids and what was done.
    """
    with flow("rotate", api_id=api_id, alias=alias, original_key_id=key_id) as scope:
        if key_id is None and alias is None:
            raise InvalidInputError("key_id", "name the key to rotate: pass alias (or key_id)")
        if key_id is not None:
            validate_key_id(key_id)
        validate_api_id(api_id)
        check_grace_period(grace_period, allow_short_grace=allow_short_grace, now_ms=_now_ms())
        if key_id is not None:
            # An id the shape cannot tell from a key (key_ and a long random run) is confirmed
            # by Unkey before the store is asked anything about it.
            confirm_key_id(unkey, key_id)
        _preflight(store, api_id, alias)
        policy = retry or RetryPolicy()
        from .rotation.protocol import Rotation

        rotation = Rotation(
            unkey,
            store,
            api_id,
            grace_period=grace_period,
            retry=policy.run,
            takeover=takeover,
            lease=lease,
            clock=clock,
        )
        result = rotation.run(key_id, alias)
        scope.set(
            key_id=result.key_id,
            original_key_id=result.original_key_id,
            rotation_outcome=result.outcome,
        )
        return result


@guarded
def capture(
    store: SecretStore,
    response: object = None,
    *,
    api_id: str,
    key_id: str | None = None,
    key: Secret | str | None = None,
    alias: str | None = None,
    rerolled_from: str | None = None,
    unkey: UnkeyClient | None = None,
    retry: RetryPolicy | None = None,
) -> StoredLocation:
    """Store a key the caller already holds, and return where it went.

    ``response`` is what the official ``unkey.py`` SDK returned from ``create_key`` or
    ``reroll_key`` (or its ``.data``), or a plain dict in Unkey's JSON shape; alternatively pass
    ``key_id`` and ``key``. With an ``unkey`` client, a created key that cannot be stored is
    deleted in Unkey; without one, or for a rerolled key (``rerolled_from``: deleting it could
    strand the service while the original expires), the error names the key_id to act on.
    "Cannot be stored" covers the up-front check too (ids, templates, the store's live
    preflight), which is retried under ``retry`` like the write: the key is already in Unkey,
    so a failed check is settled as a failed write is. A failed alias move, after the key was
    stored, deletes nothing and says the alias is not confirmed. ``alias`` is moved whatever it
    names now (``provision`` refuses an alias that names a key): the key it named stays valid
    and stored, and ending it is the caller's (the CLI reference's ``capture`` says how to find
    it).
    Drop your own reference to the response afterwards: the SDK's objects print the plaintext
    in their repr.
    """
    with flow("capture", api_id=api_id, alias=alias, rerolled_from=rerolled_from) as scope:
        retry = retry or RetryPolicy()
        issued = _issued_from_response(response, api_id, key_id, key, rerolled_from)
        scope.set(key_id=issued.key_id)
        # The plaintext lives on in ``issued`` (a masked Secret) only: the raw argument and the
        # SDK's response (whose repr prints it) leave this frame, so a log record made below with
        # the live stack attached (Sentry's attach_stacktrace) finds neither.
        del response, key
        # From here on the caller has handed us a key that exists in Unkey: whatever fails before
        # it is stored (the up-front check included) settles it as a failed write does.
        location = _store_captured(store, issued, alias, retry, unkey)
        if alias is not None:
            issued = dataclasses.replace(issued, alias=alias)
        # The key is stored now: a failed alias move deletes nothing (its write may have landed,
        # and an alias naming a deleted key would strand its readers); the error says so.
        _move_alias(store, issued, alias, retry, location, UNCHECKED)
        return location


def _store_captured(
    store: SecretStore,
    issued: IssuedKey,
    alias: str | None,
    retry: RetryPolicy,
    unkey: UnkeyClient | None,
) -> StoredLocation:
    """Check the target, then store a captured key; on any failure settle it and raise.

    The up-front check runs under ``retry`` like the write itself (a dropped answer is not the
    end of it), and its failure is the write's failure: the key is never left unstored and
    unnamed. Settled means: with ``unkey`` (and not a rerolled key) deleted in Unkey, else
    named in the error with what to do. Errors name the key_id, never the key.
    """
    try:
        if alias is not None:
            issued = dataclasses.replace(issued, alias=alias)
        retry.run(lambda: _check_target(store, issued.api_id, alias))
        # A debug-printing http.client would print the write: refuse it, as a failed write.
        check_http_debug()
        return retry.run(lambda: store.put(issued))
    except Exception as exc:  # noqa: BLE001 (whatever failed, Unkey's side is settled)
        failure = _unwrap_preflight(exc)
        if unkey is not None and issued.rerolled_from is None:
            actions = undo_create(unkey, issued.key_id, failure)
            raise CompensatedError(
                f"storing key {issued.key_id} failed ({describe_error(failure)}); "
                + "; ".join(actions),
                key_id=issued.key_id,
                actions=actions,
            ) from safe_cause(failure)
        if issued.rerolled_from is not None:
            # Deleting the new key now could strand the service: the original may already
            # be counting down its grace period, and its earlier expiry is not known here.
            advice = f"it was kept because key {issued.rerolled_from} may be expiring"
        else:
            advice = "it was left as it is in Unkey: revoke it"
        raise FlowError(
            f"key {issued.key_id} could not be stored ({describe_error(failure)}); "
            f"{advice}, or capture it again",
            key_id=issued.key_id,
            original_key_id=issued.rerolled_from,
            actions=("stored nothing",),
        ) from safe_cause(failure)
    except BaseException as exc:
        # Interrupted (Ctrl-C, SystemExit): undo what we can, then let the interruption go on.
        if unkey is not None and issued.rerolled_from is None:
            try:
                undo_create(unkey, issued.key_id, exc)
            except CompensationFailedError:
                logger.error("interrupted capturing key_id=%s; deleting it failed", issued.key_id)
        else:
            logger.error("interrupted capturing key_id=%s; it may be unstored", issued.key_id)
        raise


class _PreflightUnsure(StoreUnavailableError):
    """A live preflight failed with a ConfigurationError; retried, as it may be transient.

    The stores report an unreachable store in their preflight as a ConfigurationError, which
    cannot be told apart from a lasting misconfiguration here. Retrying a lasting one costs a
    few round trips; not retrying a transient one would leave a captured key unstored.
    """

    def __init__(self, cause: ConfigurationError, store: str) -> None:
        super().__init__(str(cause), store=store)
        self.cause = cause


def _check_target(store: SecretStore, api_id: str, alias: str | None) -> None:
    """The up-front check of :func:`capture`: ids, templates, then the store's live preflight."""
    validate_api_id(api_id)
    try:
        store.check_writable(api_id=api_id, alias=alias)
    except ConfigurationError as exc:
        failure = _PreflightUnsure(exc, store.name)
    else:
        return
    # Raised outside the except block: nothing is chained.
    raise failure


def _unwrap_preflight(exc: Exception) -> Exception:
    return exc.cause if isinstance(exc, _PreflightUnsure) else exc


def _new_marker(store: SecretStore) -> str:
    """A create's marker, ``op_<store>_<24 hex>``.

    The store kind says where a key carrying it belongs, so a reconcile run against another
    store never takes it for an orphan.
    """
    return f"op_{store.name}_{secrets.token_hex(12)}"


def _preflight(store: SecretStore, api_id: str, alias: str | None) -> None:
    """Everything that can be checked before Unkey is asked for a key."""
    validate_api_id(api_id)
    store.check_writable(api_id=api_id, alias=alias)
    # A debug-printing http.client would refuse the store write after Unkey acted; refuse now.
    check_http_debug()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _enabled_state(unkey: UnkeyClient, key_id: str) -> str:
    """Say whether the key ended up enabled, after an enable call whose answer was lost."""
    try:
        enabled = unkey.get_key(key_id).enabled
    except UnkeyError:
        return "in an unknown state (enabled or disabled): check it"
    return "enabled" if enabled else "disabled until it is enabled"


def _put_or_compensate(
    unkey: UnkeyClient, store: SecretStore, issued: IssuedKey, retry: RetryPolicy
) -> StoredLocation:
    """Store a created key; if that fails, delete it in Unkey, unless the store holds it."""
    return store_or_undo(
        lambda: retry.run(lambda: store.put(issued)),
        lambda cause: undo_create(unkey, issued.key_id, cause),
        key_id=issued.key_id,
        stored=lambda: _stored_location(store, issued.api_id, issued.key_id, retry),
    )


def _stored_location(
    store: SecretStore, api_id: str, key_id: str, retry: RetryPolicy
) -> StoredLocation | None:
    """Where ``store`` holds ``key_id`` (asked from metadata, retried), or None."""
    if retry.run(lambda: store.contains(api_id=api_id, key_id=key_id)):
        return store.describe_location(api_id=api_id, key_id=key_id)
    return None


def _move_alias(
    store: SecretStore,
    issued: IssuedKey,
    alias: str | None,
    retry: RetryPolicy,
    location: StoredLocation,
    expected: AliasState | _Unchecked | None,
    unkey: UnkeyClient | None = None,
    user_meta: Mapping[str, Any] | None = None,
) -> StoredLocation | None:
    """Point ``alias`` at the stored key.

    A failure that may have landed deletes nothing. A conditional move that lost to another
    writer (the alias names another key for sure) disables the new key when ``unkey`` is given:
    no alias will ever name it, so it must not stay valid. The same update gives it
    ``user_meta`` back: this attempt is over, and its marks must not outlive it.
    """
    if alias is None:
        return None
    try:
        return retry.run(lambda: store.set_current(issued, alias=alias, expected=expected))
    except Exception as exc:  # noqa: BLE001 (whatever failed, Unkey's side is settled)
        actions: tuple[str, ...] = (f"stored at {location.location}",)
        lost = isinstance(exc, StoreConflictError) and not isinstance(expected, _Unchecked)
        from .rotation.protocol import alias_names

        if lost and alias_names(store, alias, issued):
            # The conflict was with our own write (its answer lost, then retried): it landed.
            return store.describe_location(api_id=issued.api_id, key_id=issued.key_id)
        if lost and unkey is not None:
            try:
                unkey.update_key(issued.key_id, enabled=False, meta=dict(user_meta or {}) or None)
                actions += (f"alias {alias} names another key", f"disabled key {issued.key_id}")
                compensated(issued.key_id, actions)
            except UnkeyError as failure:
                compensation_failed(issued.key_id, actions, failure)
                actions += (f"alias {alias} names another key", "disabling it failed: revoke it")
            raise FlowError(
                f"key {issued.key_id} is stored at {location.location}, but alias {alias} was "
                f"taken by another writer meanwhile ({describe_error(exc)}); "
                + "; ".join(actions[1:]),
                key_id=issued.key_id,
                actions=actions,
            ) from safe_cause(exc)
        raise FlowError(
            f"key {issued.key_id} is stored at {location.location}, but moving alias {alias} "
            f"to it failed ({describe_error(exc)}) and is not confirmed: run the same call "
            "again (reconcile reports a key left stored that no alias names)",
            key_id=issued.key_id,
            actions=(*actions, f"alias {alias} not confirmed"),
        ) from safe_cause(exc)


def _settle_lost_create(
    unkey: UnkeyClient, api_id: str, marker: str, external_id: str | None
) -> AmbiguousOutcomeError:
    """A createKey got no answer: find what it made, delete it (we never saw its plaintext)."""
    try:
        found = [info.key_id for info in find_marked(unkey, api_id, marker, external_id)]
        for key_id in found:
            unkey.delete_key(key_id)
    except UnkeyError as exc:
        raise CompensationFailedError(
            f"createKey got no answer and searching for its key failed ({type(exc).__name__}); "
            f"look for keys of API {api_id} whose meta has {MARKER_META_KEY}={marker} and "
            "delete them",
            key_id=None,
            actions=(),
        ) from exc
    return lost_answer_settled("createKey", found, ())


def _issued_from_response(
    response: object,
    api_id: str,
    key_id: str | None,
    key: Secret | str | None,
    rerolled_from: str | None,
) -> IssuedKey:
    """Pull key_id, key and requestId out of whatever shape the caller holds."""
    request_id: str | None = None
    if response is not None:
        if key_id is not None or key is not None:
            raise InvalidInputError("response", "pass either a response or key_id and key")
        data: object = response
        meta = _member(response, "meta")
        if meta is not None:
            request_id = _optional_str(_member(meta, "request_id", "requestId"))
        inner = _member(response, "data")
        if inner is not None:
            data = inner
        key_id = _optional_str(_member(data, "key_id", "keyId"))
        raw_key = _member(data, "key")
        if key_id is None or raw_key is None:
            raise InvalidInputError(
                "response", f"a {type(response).__name__} without data.key_id and data.key"
            )
        key = raw_key if isinstance(raw_key, (str, Secret)) else None
        if key is None:
            raise InvalidInputError("response", f"key is a {type(raw_key).__name__}, not a str")
    if key_id is None or key is None:
        raise InvalidInputError("key", "capture needs a response, or key_id and key")
    secret = key if isinstance(key, Secret) else Secret(key)
    validate_key_plaintext(secret, key_id)
    return IssuedKey(
        key_id=validate_key_id(key_id),
        secret=secret,
        api_id=api_id,
        request_id=request_id,
        rerolled_from=rerolled_from,
    )


def _member(obj: object, *names: str) -> object:
    for name in names:
        if isinstance(obj, Mapping):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return None


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
