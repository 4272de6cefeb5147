"""The Unkey side of a rotation, shared by :func:`~unkey_secrets.rotate` and the rotation Lambda.

Mark the original, reroll it under a hold, find keys a lost attempt made, restore the
original on failure, cut it to the grace period and strip the marks.

A rotation is named by a token (the Lambda's ClientRequestToken, or the library's ``rot_...``
id from the rotation record). Marking writes the token and the original's pre-rotation expiry
into the original's ``meta``; rerollKey copies ``meta``, so every key any attempt of the
rotation made carries the token, stored or not, and can be found with ``apis.listKeys``. The
hold keeps the original valid while the rotation is in flight (never past its own expiry), so
a run killed anywhere strands no reader; the last step replaces it with the grace period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import InvalidInputError, UnkeyNotFoundError
from .._models import IssuedKey
from .._validate import needs_unkey_confirmation
from ..settle import keys as _settle
from ..settle.keys import cut_target, find_marked
from ..telemetry.audit import purpose
from ..unkey import KeyInfo

if TYPE_CHECKING:
    from ..unkey import UnkeyClient

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_LEASE",
    "LIBRARY_TOKEN_PREFIX",
    "MARKER_META_KEY",
    "MAX_TIMESTAMP_MS",
    "MINIMUM_GRACE_PERIOD",
    "PENDING_META_KEY",
    "PREVIOUS_EXPIRES_META_KEY",
    "ROTATED_TO_META_KEY",
    "ROTATION_HOLD",
    "Clock",
    "Original",
    "UnkeySide",
    "check_grace_period",
    "confirm_key_id",
    "marker_of",
    "saved_expiry",
    "user_meta",
]

#: The ``meta`` member keeping the original's pre-rotation expiry (ms or null) while it rotates.
PREVIOUS_EXPIRES_META_KEY = "unkey_secrets_previous_expires"
#: The ``meta`` member a rotated-out key keeps: the key that replaced it. It tells a re-run
#: (even one that finds no record) that this key was rotated already.
ROTATED_TO_META_KEY = "unkey_secrets_rotated_to"
#: The ``meta`` member a safe-mode provision creates its key with (``"enable"``) and removes
#: when it enables it: a disabled key carrying it is one a run left half done, never one an
#: operator disabled.
PENDING_META_KEY = "unkey_secrets_pending"
#: How long a rotated-out key stays valid by default: well past any reader's cache (Powertools
#: caches 5 minutes, the Secrets Manager caching client 1 hour).
DEFAULT_GRACE_PERIOD = dt.timedelta(hours=24)
#: Shorter grace periods strand readers that cache; they need ``allow_short_grace=True``.
MINIMUM_GRACE_PERIOD = dt.timedelta(minutes=5)
#: The original's expiry while a rotation is in flight (capped by its own expiry).
ROTATION_HOLD = dt.timedelta(days=30)
#: How long a claim by a run on another host is honoured before a new run may take it over
#: (:mod:`.protocol`; here so that :func:`unkey_secrets.flows.rotate`'s default does not load
#: the rotation's modules with the flows).
DEFAULT_LEASE = dt.timedelta(minutes=15)
#: How the library's rotation tokens start (``rot_`` and 24 hex digits); the Lambda's are
#: Secrets Manager's ClientRequestTokens.
LIBRARY_TOKEN_PREFIX = "rot_"  # noqa: S105 (a prefix of ids, not a credential)
#: Unkey's largest accepted timestamp (ms), for expiries and grace periods.
MAX_TIMESTAMP_MS = 4_102_444_800_000

#: The ``meta`` member naming the rotation (or create) a key belongs to while it is in flight
#: (defined with the settling that finds such keys).
MARKER_META_KEY = _settle.MARKER_META_KEY

_OURS = frozenset(
    {MARKER_META_KEY, PENDING_META_KEY, PREVIOUS_EXPIRES_META_KEY, ROTATED_TO_META_KEY}
)

#: Returns the time as Unix seconds; tests pass their own.
Clock = Callable[[], float]


def confirm_key_id(unkey: UnkeyClient, key_id: str, field: str = "key_id") -> None:
    """Have Unkey confirm a caller's ``key_id`` before any store path is built from it.

    Only an id that may be a key asks (one keys.getKey): one holding a key's random run, as
    an older keyId does and as a key whose prefix is ``key`` does
    (:func:`~unkey_secrets._validate.needs_unkey_confirmation`); any other returns at once.
    Raises :class:`~unkey_secrets.InvalidInputError` naming ``field`` when Unkey has no such
    key, without the value; Unkey's other errors (:class:`~unkey_secrets.UnkeyError`) pass
    through. Nothing is changed either way.
    """
    if not needs_unkey_confirmation(key_id):
        return
    try:
        unkey.get_key(key_id)
    except UnkeyNotFoundError:
        pass
    else:
        return
    # Raised outside the except block: Unkey's 404 adds nothing, and the value is not shown.
    raise InvalidInputError(
        field,
        "Unkey has no key with this id (getKey: not found); the value is not shown, as it has "
        "a key's shape (a key whose prefix is key?); nothing was changed",
    )


def marker_of(info: KeyInfo) -> str | None:
    """The rotation token in a key's ``meta``, if it carries one."""
    value = (info.meta or {}).get(MARKER_META_KEY)
    return value if isinstance(value, str) else None


def user_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """A key's ``meta`` without our members."""
    return {k: v for k, v in (meta or {}).items() if k not in _OURS}


@dataclass(frozen=True)
class Original:
    """The key being rotated, once marked.

    ``previous_expires`` is its pre-rotation expiry (Unix ms, None: never); ``resumed`` is True
    when an earlier attempt of the same rotation had marked it already, so keys that attempt
    made may be lying around.
    """

    info: KeyInfo
    previous_expires: int | None
    resumed: bool


class UnkeySide:
    """The Unkey calls of one rotation, named by ``token``, of keys of ``api_id``."""

    def __init__(
        self, unkey: UnkeyClient, api_id: str, token: str, *, clock: Clock = time.time
    ) -> None:
        self.unkey = unkey
        self.api_id = api_id
        self.token = token
        self.clock = clock

    def now_ms(self) -> int:
        """The clock's time in Unix milliseconds."""
        return int(self.clock() * 1000)

    def mark(self, info: KeyInfo, *, override: tuple[int | None] | None = None) -> Original:
        """Write the token and the pre-rotation expiry into ``info``'s meta (one updateKey).

        If the key already carries this token, the expiry saved then is trusted and the hold
        is taken off (the reroll copies the original's expiry to the new key). ``override``
        holds the pre-rotation expiry to use instead of the key's own (an abandoned rotation's).
        """
        meta = info.meta or {}
        if marker_of(info) == self.token and PREVIOUS_EXPIRES_META_KEY in meta:
            previous = saved_expiry(meta[PREVIOUS_EXPIRES_META_KEY], info.key_id)
            if info.expires != previous:
                self.unkey.update_key(info.key_id, expires=previous)
            return Original(dataclasses.replace(info, expires=previous), previous, True)
        previous = info.expires if override is None else override[0]
        marked = {
            **user_meta(meta),
            MARKER_META_KEY: self.token,
            PREVIOUS_EXPIRES_META_KEY: previous,
        }
        # The expiry is written only when the read shows it changed: the read may be stale
        # (the Lambda, which keeps no record here, may have cut the key since), and writing a
        # stale expiry back would undo that cut. Unkey has no conditional update.
        if info.expires != previous:
            self.unkey.update_key(info.key_id, meta=marked, expires=previous)
        else:
            self.unkey.update_key(info.key_id, meta=marked)
        return Original(dataclasses.replace(info, meta=marked, expires=previous), previous, False)

    def reroll(self, original: Original, hold: dt.timedelta = ROTATION_HOLD) -> IssuedKey:
        """RerollKey with the original held for ``hold`` (never past its own expiry).

        The result carries what the stored value documents: the original's name,
        external_id, prefix and expiry, and ``rerolled_from``.
        """
        info, previous = original.info, original.previous_expires
        hold_ms = int(hold.total_seconds() * 1000)
        if previous is not None:
            hold_ms = max(0, min(hold_ms, previous - self.now_ms()))
        issued = self.unkey.reroll_key(info.key_id, expiration_ms=hold_ms, api_id=self.api_id)
        return dataclasses.replace(
            issued,
            name=info.name,
            external_id=info.external_id,
            prefix=info.start.split("_", 1)[0] if "_" in info.start else None,
            expires=previous,
        )

    def marked_keys(self, external_id: str | None, exclude: set[str]) -> list[KeyInfo]:
        """Every key of the API carrying this token, but ``exclude`` (pages apis.listKeys).

        Only called when an attempt may have been lost; the happy path never lists keys.
        """
        return find_marked(self.unkey, self.api_id, self.token, external_id, exclude)

    def delete(self, key_id: str) -> None:
        """deleteKey; a key that is already gone is fine."""
        with contextlib.suppress(UnkeyNotFoundError):
            self.unkey.delete_key(key_id)

    def restore(self, original: Original) -> None:
        """Put the original back as it was before the rotation: its expiry and its meta."""
        rest = user_meta(original.info.meta)
        with purpose("key.restored"):
            self.unkey.update_key(
                original.info.key_id, expires=original.previous_expires, meta=rest or None
            )

    def cut_target(self, previous_expires: int | None, grace_period: dt.timedelta) -> int:
        """``min(previous_expires, now + grace_period)`` in Unix ms."""
        return cut_target(self.now_ms(), previous_expires, grace_period)

    def cut(
        self,
        key_id: str,
        expires: int,
        meta: Mapping[str, Any] | None,
        *,
        rotated_to: str | None = None,
    ) -> None:
        """Set the original's final expiry and give it its own meta back (one updateKey).

        ``rotated_to`` names the key that replaced it, kept in its meta for good.
        """
        rest = user_meta(meta)
        if rotated_to is not None:
            rest[ROTATED_TO_META_KEY] = rotated_to
        with purpose("key.cut"):
            self.unkey.update_key(key_id, expires=expires, meta=rest or None)

    def strip(self, key_id: str, meta: Mapping[str, Any] | None) -> None:
        """Give the new key its own meta back (it copied our marks with the reroll).

        Its expiry is left alone: a later rotation or replace may have cut it meanwhile, and
        no update after the key is published may undo that (Unkey has no conditional update).
        The reroll gave it the original's expiry as it was then.
        """
        self.unkey.update_key(key_id, meta=user_meta(meta) or None)


def saved_expiry(value: object, key_id: str) -> int | None:
    """The pre-rotation expiry saved in a key's meta: Unix ms or None."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    raise InvalidInputError(
        "key_id",
        f"{key_id}'s meta member {PREVIOUS_EXPIRES_META_KEY} is not a timestamp in ms; set it "
        "to the key's real expiry (or null) and rotate again",
    )


def check_grace_period(
    grace_period: dt.timedelta, *, allow_short_grace: bool, now_ms: int
) -> dt.timedelta:
    """Refuse a negative grace period, one past Unkey's latest expiry, or one too short."""
    if not isinstance(grace_period, dt.timedelta):
        raise InvalidInputError("grace_period", "expected a datetime.timedelta")
    if grace_period < dt.timedelta(0):
        raise InvalidInputError("grace_period", "may not be negative")
    if now_ms + grace_period.total_seconds() * 1000 > MAX_TIMESTAMP_MS:
        raise InvalidInputError("grace_period", "reaches past the latest expiry Unkey accepts")
    if grace_period < MINIMUM_GRACE_PERIOD and not allow_short_grace:
        raise InvalidInputError(
            "grace_period",
            f"{grace_period} is shorter than {MINIMUM_GRACE_PERIOD}, which readers' caches "
            "may outlive; pass allow_short_grace=True to revoke sooner",
        )
    return grace_period
