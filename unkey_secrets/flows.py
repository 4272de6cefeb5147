"""The three jobs, each one call: provision (create -> store), rotate (reroll -> store), capture.

Every flow keeps the no-valid-orphan promise: a key Unkey issues through us ends up stored where
the caller asked, or it is deleted in Unkey (after a reroll, the original key's expiry is put
back), or it was created disabled and never enabled. When Unkey may have acted without answering,
the flow looks for the key by a marker it put in the key's ``meta`` and settles the outcome before
it raises. Errors name key_ids and what was undone, never a plaintext.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from ._errors import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
    FlowError,
    InvalidInputError,
    StoreError,
    StoreUnavailableError,
    UnkeyAmbiguousError,
    UnkeyError,
    UnkeyServerError,
)
from ._models import IssuedKey, StoredLocation
from ._redact import check_http_debug, guarded
from ._secret import Secret
from ._validate import validate_api_id, validate_key_id
from .stores.base import SecretStore
from .unkey import KeyInfo, UnkeyClient
from .unkey.backoff import Backoff

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "MARKER_META_KEY",
    "MINIMUM_GRACE_PERIOD",
    "PREVIOUS_EXPIRES_META_KEY",
    "ROTATION_HOLD",
    "ProvisionResult",
    "RetryPolicy",
    "RotationResult",
    "capture",
    "provision",
    "rotate",
]

logger = logging.getLogger("unkey_secrets.flows")

#: The ``meta`` member that tags a create or reroll so a lost answer can be found again.
MARKER_META_KEY = "unkey_secrets_op"
#: How long a rotated-out key stays valid by default: well past any reader's cache (Powertools
#: caches 5 minutes, the Secrets Manager caching client 1 hour).
DEFAULT_GRACE_PERIOD = dt.timedelta(hours=24)
#: Shorter grace periods strand readers that cache; they need ``allow_short_grace=True``.
MINIMUM_GRACE_PERIOD = dt.timedelta(minutes=5)
#: How long the original stays valid while a rotation is under way: the reroll sets this, and
#: only once the new key is stored is the original cut to its grace period. A rotation killed
#: in between (Ctrl-C, a CI timeout) therefore strands no one for a month, and the next
#: :func:`rotate` of the same key finishes cleaning up after it.
ROTATION_HOLD = dt.timedelta(days=30)
#: The ``meta`` member that keeps the original's pre-rotation expiry (ms or null) while a
#: rotation runs; the rotation Lambda uses the same member.
PREVIOUS_EXPIRES_META_KEY = "unkey_secrets_previous_expires"

_T = TypeVar("_T")
_KEY_SHAPE = re.compile(r"[A-Za-z0-9_]{16,512}")
#: Our ``meta`` members; a caller's meta may not use this prefix.
_RESERVED_META_PREFIX = "unkey_secrets_"
#: Unkey's largest accepted timestamp (ms), for expiries and grace periods.
_MAX_TIMESTAMP_MS = 4_102_444_800_000


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
                self.sleep(backoff.delay(retry))
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


@dataclass(frozen=True)
class RotationResult:
    """What :func:`rotate` did: no plaintext, safe to print.

    ``original_key_id`` keeps working until ``original_expires`` (Unix ms): ``grace_period``
    from the end of the rotation, or its own earlier expiry.
    """

    key_id: str
    original_key_id: str
    api_id: str
    location: StoredLocation
    current: StoredLocation | None
    request_id: str | None
    grace_period: dt.timedelta
    original_expires: int


@guarded
def provision(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    *,
    alias: str | None = None,
    mode: Literal["safe", "fast"] = "safe",
    retry: RetryPolicy | None = None,
    **create_options: Any,
) -> ProvisionResult:
    """Create a key in Unkey and store it; optionally point the stable ``alias`` at it.

    ``mode="safe"`` (the default) creates the key disabled, stores it, then enables it: a
    failure at any point leaves at most a disabled key. It costs one more Unkey call than
    ``mode="fast"``, which creates the key enabled and deletes it if the store write fails.
    ``create_options`` are :meth:`UnkeyClient.create_key`'s options (prefix, name, meta,
    external_id, expires, credits, ratelimits, roles, permissions, ...).
    """
    retry = retry or RetryPolicy()
    if mode not in ("safe", "fast"):
        raise InvalidInputError("mode", "expected 'safe' or 'fast'")
    if "enabled" in create_options and mode == "safe":
        raise InvalidInputError("enabled", "safe mode creates the key disabled, then enables it")
    _preflight(store, api_id, alias)
    user_meta = dict(create_options.pop("meta", None) or {})
    reserved = sorted(k for k in user_meta if str(k).startswith(_RESERVED_META_PREFIX))
    if reserved:
        raise InvalidInputError("meta", f"members starting {_RESERVED_META_PREFIX!r} are ours")
    expires = create_options.get("expires")
    if isinstance(expires, int) and not isinstance(expires, bool) and expires <= _now_ms():
        raise InvalidInputError(
            "expires", "is in the past (it is Unix time in milliseconds, not seconds)"
        )
    marker = _new_marker()
    external_id = create_options.get("external_id")

    if mode == "safe":
        create_options["enabled"] = False
    try:
        issued = unkey.create_key(
            api_id, meta={**user_meta, MARKER_META_KEY: marker}, **create_options
        )
    except (UnkeyAmbiguousError, UnkeyServerError) as exc:
        # A 5xx may come from a proxy after Unkey acted: settle it like a lost answer.
        raise _settle_lost_create(unkey, api_id, marker, external_id) from exc

    location = _put_or_compensate(unkey, store, issued, retry, None)
    if mode == "safe":
        try:
            unkey.update_key(issued.key_id, enabled=True, meta=user_meta or None)
        except UnkeyError as exc:
            state = _enabled_state(unkey, issued.key_id)
            raise FlowError(
                f"key {issued.key_id} is stored at {location.location} but enabling it failed "
                f"({type(exc).__name__}); it is {state}"
                + (f" and alias {alias} was not moved to it" if alias is not None else ""),
                key_id=issued.key_id,
                actions=(f"stored at {location.location}", state),
            ) from exc
    # The alias moves last, so readers are never pointed at a disabled key.
    current = _move_alias(store, issued, alias, retry, location, "")
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
    )


@guarded
def rotate(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    key_id: str,
    *,
    alias: str | None = None,
    grace_period: dt.timedelta = DEFAULT_GRACE_PERIOD,
    allow_short_grace: bool = False,
    retry: RetryPolicy | None = None,
) -> RotationResult:
    """Reroll ``key_id`` and store the new key; the original stays valid for ``grace_period``.

    With ``alias``, the stable name readers use is moved to the new key. The original is held
    valid (:data:`ROTATION_HOLD`) until the new key is stored, then cut to ``grace_period``
    (never later than its own expiry). If the store write fails, the new key is deleted and the
    original's expiry put back, so a failed rotation never strands a service. ``key_id`` must
    be a key of ``api_id`` (checked with ``apis.listKeys``). Rotations of one key must not run
    concurrently; the rotation Lambda is the tool for scheduled rotation.
    """
    retry = retry or RetryPolicy()
    validate_key_id(key_id)
    _preflight(store, api_id, alias)
    if grace_period < dt.timedelta(0):
        raise InvalidInputError("grace_period", "may not be negative")
    if _now_ms() + grace_period.total_seconds() * 1000 > _MAX_TIMESTAMP_MS:
        raise InvalidInputError("grace_period", "reaches past the latest expiry Unkey accepts")
    if grace_period < MINIMUM_GRACE_PERIOD and not allow_short_grace:
        raise InvalidInputError(
            "grace_period",
            f"{grace_period} is shorter than {MINIMUM_GRACE_PERIOD}, which readers' caches "
            "may outlive; pass allow_short_grace=True to revoke sooner",
        )
    original = unkey.get_key(key_id)
    user_meta = {
        k: v
        for k, v in (original.meta or {}).items()
        if k not in (MARKER_META_KEY, PREVIOUS_EXPIRES_META_KEY)
    }
    previous_expires = original.expires
    unfinished = _unfinished_rotation(original.meta or {}, key_id)
    if unfinished is not None:
        # An earlier rotation of this key died before finishing: its expiry is the hold, the
        # real one is in meta, and a key it made may be lying around.
        previous_expires = unfinished[1]
    if previous_expires is not None and previous_expires <= _now_ms():
        raise InvalidInputError("key_id", f"{key_id} has already expired; create a new key")
    stored_leftovers = _require_key_of_api(
        unkey, store, api_id, original, unfinished[0] if unfinished else None
    )

    marker = _new_marker()
    meta = {**user_meta, MARKER_META_KEY: marker, PREVIOUS_EXPIRES_META_KEY: previous_expires}
    if unfinished is None:
        unkey.update_key(key_id, meta=meta)
    else:
        # The reroll copies the original's expiry to the new key: take the hold off first.
        unkey.update_key(key_id, meta=meta, expires=previous_expires)
    restore = _Restore(key_id, previous_expires, user_meta)
    try:
        issued = unkey.reroll_key(key_id, expiration_ms=_hold_ms(previous_expires), api_id=api_id)
    except (UnkeyAmbiguousError, UnkeyServerError) as exc:
        raise _settle_lost_reroll(
            unkey, store, api_id, restore, original.external_id, marker
        ) from exc

    location = _put_or_compensate(unkey, store, issued, retry, restore)
    on_hold = f"; key {key_id} stays valid on its rotation hold until rotate() runs again"
    current = _move_alias(store, issued, alias, retry, location, on_hold)
    final_expires = _final_expiry(previous_expires, grace_period)
    step = f"tidying key {issued.key_id}'s meta"
    try:
        # The new key copied the marker with the meta: give it the user's meta back, then cut
        # the original (and keys a killed run stored) to the grace period, which also marks
        # the rotation finished.
        unkey.update_key(issued.key_id, meta=user_meta or None)
        for old_id in (*stored_leftovers, key_id):
            step = f"setting key {old_id}'s expiry"
            unkey.update_key(old_id, expires=final_expires, meta=user_meta or None)
    except UnkeyError as exc:
        raise FlowError(
            f"key {issued.key_id} is stored at {location.location} and current, but {step} "
            f"failed ({type(exc).__name__}){on_hold}",
            key_id=issued.key_id,
            original_key_id=key_id,
            actions=(f"stored at {location.location}", f"{step} failed"),
        ) from exc
    logger.info(
        "rotated key_id=%s new_key_id=%s api_id=%s location=%s grace_period=%s",
        key_id,
        issued.key_id,
        api_id,
        location.location,
        grace_period,
    )
    return RotationResult(
        key_id=issued.key_id,
        original_key_id=key_id,
        api_id=api_id,
        location=location,
        current=current,
        request_id=issued.request_id,
        grace_period=grace_period,
        original_expires=final_expires,
    )


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
    Drop your own reference to the response afterwards: the SDK's objects print the plaintext
    in their repr.
    """
    retry = retry or RetryPolicy()
    issued = _issued_from_response(response, api_id, key_id, key, rerolled_from)
    _preflight(store, api_id, alias)
    if unkey is not None and rerolled_from is None:
        location = _put_or_compensate(unkey, store, issued, retry, None)
    else:
        try:
            location = retry.run(lambda: store.put(issued))
        except Exception as exc:  # noqa: BLE001 (whatever failed, Unkey's side is settled)
            if rerolled_from is not None:
                # Deleting the new key now could strand the service: the original may already
                # be counting down its grace period, and its earlier expiry is not known here.
                advice = f"it was kept because key {rerolled_from} may be expiring"
            else:
                advice = "it was left as it is in Unkey: revoke it"
            raise FlowError(
                f"key {issued.key_id} could not be stored ({_error_name(exc)}); {advice}, "
                "or capture it again",
                key_id=issued.key_id,
                original_key_id=rerolled_from,
                actions=("stored nothing",),
            ) from _safe_cause(exc)
    _move_alias(store, issued, alias, retry, location, "")
    return location


def _new_marker() -> str:
    return "op_" + secrets.token_hex(12)


@dataclass(frozen=True)
class _Restore:
    """How to put a rerolled original back: its pre-rotation expiry and meta."""

    key_id: str
    expires: int | None
    meta: dict[str, Any]


def _preflight(store: SecretStore, api_id: str, alias: str | None) -> None:
    """Everything that can be checked before Unkey is asked for a key."""
    validate_api_id(api_id)
    store.check_writable(api_id=api_id, alias=alias)
    # A debug-printing http.client would refuse the store write after Unkey acted; refuse now.
    check_http_debug()


def _hold_ms(previous_expires: int | None) -> int:
    hold = int(ROTATION_HOLD.total_seconds() * 1000)
    if previous_expires is None:
        return hold
    # Never let the hold outlive the key's own expiry.
    return max(0, min(hold, previous_expires - _now_ms()))


def _final_expiry(previous_expires: int | None, grace_period: dt.timedelta) -> int:
    cut = _now_ms() + int(grace_period.total_seconds() * 1000)
    return cut if previous_expires is None else min(cut, previous_expires)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _enabled_state(unkey: UnkeyClient, key_id: str) -> str:
    """Say whether the key ended up enabled, after an enable call whose answer was lost."""
    try:
        enabled = unkey.get_key(key_id).enabled
    except UnkeyError:
        return "in an unknown state (enabled or disabled): check it"
    return "enabled" if enabled else "disabled until it is enabled"


def _unfinished_rotation(meta: Mapping[str, Any], key_id: str) -> tuple[str, int | None] | None:
    """The marker and pre-rotation expiry an unfinished rotation left in a key's meta, if any.

    Only a rotation writes the previous expiry, so a create's marker (which fast mode leaves in
    place) is not taken for one.
    """
    marker = meta.get(MARKER_META_KEY)
    if not isinstance(marker, str) or PREVIOUS_EXPIRES_META_KEY not in meta:
        return None
    previous = meta[PREVIOUS_EXPIRES_META_KEY]
    if previous is not None and (not isinstance(previous, int) or isinstance(previous, bool)):
        raise InvalidInputError(
            "key_id",
            f"{key_id}'s meta member {PREVIOUS_EXPIRES_META_KEY} is not a timestamp in ms; "
            "set it to the key's real expiry (or null) and rotate again",
        )
    return marker, previous


def _require_key_of_api(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    original: KeyInfo,
    unfinished_marker: str | None,
) -> list[str]:
    """Check the key belongs to ``api_id``; settle the keys of an unfinished rotation.

    getKey does not say which API a key belongs to, and a wrong api_id would store the new key
    under another API's path and search for lost keys in the wrong place. Keys the unfinished
    rotation made (its marker, created after the original) are deleted if no store holds them;
    the stored ones are returned, to be cut to the grace period with the original.
    """
    found = False
    leftovers = []
    listed = unkey.list_keys(api_id, external_id=original.external_id, revalidate_keys_cache=True)
    for info in listed:
        if info.key_id == original.key_id:
            found = True
        elif (
            unfinished_marker is not None
            and (info.meta or {}).get(MARKER_META_KEY) == unfinished_marker
            and info.created_at > original.created_at
        ):
            leftovers.append(info.key_id)
    if not found:
        raise InvalidInputError("key_id", f"{original.key_id} is not a key of API {api_id}")
    stored = []
    for leftover in leftovers:
        if store.contains(api_id=api_id, key_id=leftover):
            stored.append(leftover)
        else:
            unkey.delete_key(leftover)
            logger.warning("deleted key_id=%s left unstored by an unfinished rotation", leftover)
    return stored


def _put_or_compensate(
    unkey: UnkeyClient,
    store: SecretStore,
    issued: IssuedKey,
    retry: RetryPolicy,
    restore: _Restore | None,
) -> StoredLocation:
    """Store ``issued``; on any failure undo the Unkey side and raise."""
    try:
        return retry.run(lambda: store.put(issued))
    except Exception as exc:  # noqa: BLE001 (whatever failed, Unkey's side is settled)
        actions = _compensate(unkey, issued.key_id, restore, exc)
        raise CompensatedError(
            f"storing key {issued.key_id} failed ({_error_name(exc)}); " + "; ".join(actions),
            key_id=issued.key_id,
            original_key_id=restore.key_id if restore else None,
            actions=actions,
        ) from _safe_cause(exc)
    except BaseException as exc:
        # Interrupted (Ctrl-C, SystemExit): undo what we can, then let the interruption go on.
        try:
            _compensate(unkey, issued.key_id, restore, exc)
        except CompensationFailedError:
            logger.error("interrupted while storing key_id=%s; undoing it failed", issued.key_id)
        raise


def _move_alias(
    store: SecretStore,
    issued: IssuedKey,
    alias: str | None,
    retry: RetryPolicy,
    location: StoredLocation,
    consequence: str,
) -> StoredLocation | None:
    """Point ``alias`` at the stored key. A failure deletes nothing: the write may have landed."""
    if alias is None:
        return None
    try:
        return retry.run(lambda: store.set_current(issued, name=alias))
    except Exception as exc:  # noqa: BLE001 (whatever failed, Unkey's side is settled)
        raise FlowError(
            f"key {issued.key_id} is stored at {location.location}, but moving alias {alias} "
            f"to it failed ({_error_name(exc)}): run the flow's set_current again{consequence}",
            key_id=issued.key_id,
            actions=(f"stored at {location.location}", f"alias {alias} not confirmed"),
        ) from _safe_cause(exc)


def _error_name(exc: BaseException) -> str:
    # Our store errors never carry a plaintext; anything else is named by its class only.
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, StoreError) else type(exc).__name__


def _safe_cause(exc: BaseException) -> BaseException | None:
    # A foreign exception (a plugin store, an SDK) may echo its input: do not chain it.
    return exc if isinstance(exc, StoreError) else None


def _compensate(
    unkey: UnkeyClient,
    key_id: str,
    restore: _Restore | None,
    cause: BaseException,
) -> tuple[str, ...]:
    actions: list[str] = []
    try:
        unkey.delete_key(key_id)
        actions.append(f"deleted key {key_id} in Unkey")
        if restore is not None:
            unkey.update_key(restore.key_id, expires=restore.expires, meta=restore.meta or None)
            actions.append(
                f"restored key {restore.key_id}'s expiry to "
                + ("never" if restore.expires is None else str(restore.expires))
            )
    except UnkeyError as exc:
        undone = "; ".join(actions) or "nothing was undone"
        raise CompensationFailedError(
            f"storing key {key_id} failed ({type(cause).__name__}) and undoing it failed "
            f"({type(exc).__name__}: {exc}); {undone}. Revoke key {key_id}"
            + (f" and check key {restore.key_id}'s expiry" if restore else ""),
            key_id=key_id,
            original_key_id=restore.key_id if restore else None,
            actions=tuple(actions),
        ) from exc
    logger.warning("compensated key_id=%s actions=%s", key_id, actions)
    return tuple(actions)


def _find_marked(
    unkey: UnkeyClient, api_id: str, marker: str, external_id: str | None, exclude: str | None
) -> list[str]:
    found = []
    for info in unkey.list_keys(api_id, external_id=external_id, revalidate_keys_cache=True):
        if (info.meta or {}).get(MARKER_META_KEY) == marker and info.key_id != exclude:
            found.append(info.key_id)
    return found


def _settle_lost_create(
    unkey: UnkeyClient, api_id: str, marker: str, external_id: str | None
) -> AmbiguousOutcomeError:
    """A createKey got no answer: find what it made, delete it (we never saw its plaintext)."""
    try:
        found = _find_marked(unkey, api_id, marker, external_id, None)
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
    return _ambiguity_settled("createKey", found, ())


def _settle_lost_reroll(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    restore: _Restore,
    external_id: str | None,
    marker: str,
) -> AmbiguousOutcomeError:
    """A rerollKey got no answer: delete any new key no store holds, put the original back."""
    key_id = restore.key_id
    try:
        found = [
            new_id
            for new_id in _find_marked(unkey, api_id, marker, external_id, key_id)
            # Never delete a stored key: an overlapping rotation may have stored it.
            if not store.contains(api_id=api_id, key_id=new_id)
        ]
        for new_id in found:
            unkey.delete_key(new_id)
        unkey.update_key(key_id, expires=restore.expires, meta=restore.meta or None)
    except (UnkeyError, StoreError) as exc:
        raise CompensationFailedError(
            f"rerollKey of {key_id} got no answer and settling it failed "
            f"({type(exc).__name__}); delete keys of API {api_id} whose meta has "
            f"{MARKER_META_KEY}={marker} and check key {key_id}'s expiry",
            key_id=None,
            original_key_id=key_id,
            actions=(),
        ) from exc
    restored = f"restored key {key_id}'s expiry"
    return _ambiguity_settled("rerollKey", found, (restored,), original_key_id=key_id)


def _ambiguity_settled(
    operation: str,
    found: Iterable[str],
    extra_actions: tuple[str, ...],
    original_key_id: str | None = None,
) -> AmbiguousOutcomeError:
    found = list(found)
    if found:
        actions = tuple(f"deleted key {k}, made by the unanswered request" for k in found)
    else:
        actions = ("Unkey had not acted",)
    actions += extra_actions
    return AmbiguousOutcomeError(
        f"{operation} got no clear answer; " + "; ".join(actions) + ". Nothing was stored; "
        "it is safe to try again",
        key_id=found[0] if found else None,
        original_key_id=original_key_id,
        actions=actions,
    )


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
    _check_key_shape(secret, key_id)
    return IssuedKey(
        key_id=validate_key_id(key_id),
        secret=secret,
        api_id=api_id,
        request_id=request_id,
        rerolled_from=rerolled_from,
    )


def _check_key_shape(secret: Secret, key_id: str) -> None:
    """Refuse what cannot be an Unkey key: a whole response body, an id, a number.

    Unkey keys are base58, optionally behind ``prefix_``, from at least 16 random bytes. The
    store is create-only, so a wrong value written once could not be mended by writing again.
    """
    plaintext = secret.reveal()
    if not _KEY_SHAPE.fullmatch(plaintext):
        raise InvalidInputError(
            "key", f"expected 16-512 characters of [A-Za-z0-9_], got {len(plaintext)} characters"
        )
    if key_id in plaintext:
        raise InvalidInputError("key", "contains the key_id: the key and its id were mixed up")


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
