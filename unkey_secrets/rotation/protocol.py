"""The library's rotation: one key, its aliases, its durable record; safe to re-run, crash, race.

A rotation of key ``K`` (named directly or through an alias that names it) runs as follows,
each store write optimistic (it names what it expects and fails if someone got there first):

1. **Claim** the rotation record of ``K`` (:mod:`unkey_secrets.rotation.record`). A second run
   finds it claimed and fails with :class:`~unkey_secrets.RotationConflictError` before it
   calls Unkey; a run that finds it ``done`` answers with the finished rotation instead of
   rerolling ``K`` again.
2. **Mark** ``K`` in Unkey (the record's token and its pre-rotation expiry in ``meta``) and
   **reroll** it, holding it valid (:data:`~unkey_secrets.rotation.core.ROTATION_HOLD`, never
   past its own expiry) while the rotation is in flight.
3. **Store** the new key at its own location, then **move every alias** that names ``K`` to it
   (each move checks the alias still names ``K``).
4. **Cut** ``K`` to ``min(its own expiry, now + grace_period)``, mark the record ``done``, and
   give the new key its own ``meta`` back.

A failure before the new key is stored deletes it and puts ``K`` back (unless the store may
hold it: then nothing is undone); a failure after it leaves ``K`` on its hold and the record
saying what is left. A run killed anywhere leaves the record claimed by a process that no
longer exists: running the same command again takes it over (at once on the same host, after
``lease`` elsewhere), deletes what the dead attempt made and did not store, adopts a new key
an alias already names, and finishes.

:class:`Rotation` resolves what to rotate and claims the record (or reads the one that is
there); from then on the rotation is a small state machine: an
:class:`~unkey_secrets.rotation.attempt.Attempt` holds what the attempt knows, its
:meth:`~unkey_secrets.rotation.attempt.Attempt.next_step` reads the record's state
(``claimed``, ``stored``, ``released``, ``done``) and those findings and names the next step
(take over, read, resume, mark, sweep, reroll, store, move the aliases, cut, mark done,
strip), and :meth:`Rotation._drive` runs the steps until none is left, then reports.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._concurrent import first_failure, together
from .._errors import (
    FlowError,
    InvalidInputError,
    RotationConflictError,
    StoreConflictError,
    UnkeyNotFoundError,
)
from .._models import AliasState, IssuedKey, StoredLocation
from ..settle import describe_error
from .attempt import Attempt, rotated_to
from .core import DEFAULT_LEASE, LIBRARY_TOKEN_PREFIX, ROTATION_HOLD, Clock, marker_of
from .record import LIVE_ATTEMPTS, Owner, RotationRecord

if TYPE_CHECKING:
    from ..stores.base import SecretStore
    from ..unkey import KeyInfo, UnkeyClient

__all__ = [
    "Rotation",
    "RotationResult",
    "alias_names",
    "refuse_lambda_managed",
]

logger = logging.getLogger("unkey_secrets.flows")


@dataclass(frozen=True)
class RotationResult:
    """What :func:`~unkey_secrets.rotate` did: no plaintext, safe to print.

    ``key_id`` is the new key, ``original_key_id`` the rotated-out one, valid until
    ``original_expires`` (Unix ms). ``aliases`` lists where each alias that named the original
    now points. ``outcome`` is ``"rotated"``, ``"resumed"`` (an earlier attempt was finished)
    or ``"already-done"`` (nothing was changed: the rotation had finished before).
    ``location`` is the new key's own location; ``current`` the first alias's, if any.
    """

    key_id: str
    original_key_id: str
    api_id: str
    location: StoredLocation
    current: StoredLocation | None
    request_id: str | None
    grace_period: dt.timedelta
    original_expires: int | None
    aliases: tuple[StoredLocation, ...] = ()
    outcome: str = "rotated"


class Rotation:
    """One run of the library's rotation protocol for one key of one API.

    ``retry`` runs a store write with retries (:class:`~unkey_secrets.RetryPolicy.run`).
    """

    #: The run now at work (set by :meth:`run` and :meth:`finish`): the record's owner.
    owner: Owner

    def __init__(
        self,
        unkey: UnkeyClient,
        store: SecretStore,
        api_id: str,
        *,
        grace_period: dt.timedelta,
        retry: Callable[[Callable[[], Any]], Any],
        takeover: bool = False,
        lease: dt.timedelta = DEFAULT_LEASE,
        hold: dt.timedelta = ROTATION_HOLD,
        clock: Clock = time.time,
    ) -> None:
        self.unkey = unkey
        self.store = store
        self.api_id = api_id
        self.grace_period = grace_period
        self.retry = retry
        self.takeover = takeover
        self.lease = lease
        self.hold = hold
        self.clock = clock

    def now_ms(self) -> int:
        """The clock's time in Unix ms."""
        return int(self.clock() * 1000)

    # -- entry ---------------------------------------------------------------------------------

    def run(self, key_id: str | None, alias: str | None) -> RotationResult:
        """Rotate ``key_id``, or the key ``alias`` names; see the module docstring."""
        self.owner = Owner.me(self.now_ms())
        LIVE_ATTEMPTS.add(self.owner.attempt)
        try:
            return self._run(key_id, alias)
        finally:
            # From now on a claim this attempt left behind reads as dead, even in this process.
            LIVE_ATTEMPTS.discard(self.owner.attempt)

    def finish(self, record: RotationRecord) -> RotationResult:
        """Finish the unfinished rotation ``record`` describes (its run died), as a re-run would.

        Raises :class:`~unkey_secrets.RotationConflictError` if its run is still alive.
        """
        self.owner = Owner.me(self.now_ms())
        LIVE_ATTEMPTS.add(self.owner.attempt)
        try:
            return self._drive(Attempt(self, record, outcome="resumed"))
        finally:
            LIVE_ATTEMPTS.discard(self.owner.attempt)

    def _run(self, key_id: str | None, alias: str | None) -> RotationResult:
        """Resolve the key to rotate, claim its record (or read the one there) and drive it."""
        states: dict[str, AliasState] = {}
        if alias is not None:
            state = self.retry(lambda: self.store.alias_state(api_id=self.api_id, alias=alias))
            if state is None:
                raise InvalidInputError(
                    "alias", f"{alias} names no key of API {self.api_id}; provision one first"
                )
            if key_id is not None and key_id != state.key_id:
                return self._rotated_out(key_id, alias, state)
            key_id = state.key_id
            states[alias] = state
            predecessor = state.rerolled_from
        else:
            assert key_id is not None
            entry = self.store.key_entry(api_id=self.api_id, key_id=key_id)
            predecessor = entry.rerolled_from if entry is not None else None
            if entry is None:
                self._require_key_of_api(key_id)
            elif entry.alias is not None:
                state = self.store.alias_state(api_id=self.api_id, alias=entry.alias)
                if state is not None and state.key_id == key_id:
                    states[entry.alias] = state
        refuse_lambda_managed(states.values())
        record = RotationRecord(
            # rot_<store>_<hex>: like provision's marker, it names the store kind.
            rotation=f"{LIBRARY_TOKEN_PREFIX}{self.store.name}_{secrets.token_hex(12)}",
            api_id=self.api_id,
            from_key_id=key_id,
            state="claimed",
            aliases=tuple(sorted(states)),
            owner=self.owner,
            grace_period_ms=_ms(self.grace_period),
        )
        # The original is read and the record claimed at once: neither needs the other's
        # answer. They are settled in the order the sequential code made them: the read
        # decides first, and a claim it makes needless is released.
        original: str = key_id
        got, claimed = together(lambda: self.unkey.get_key(original), lambda: self._claim(record))
        interrupted = first_failure([got, claimed])
        if interrupted is not None and not isinstance(interrupted, Exception):
            raise interrupted
        ours: RotationRecord | None = None
        if claimed.ok:
            claim: RotationRecord = claimed.get()
            ours = claim if claim.owner == self.owner else None
        if got.error is not None:
            if ours is not None:
                self._write_quietly(ours.next(state="released", owner=None))
            raise got.error
        info: KeyInfo = got.get()
        marker = marker_of(info)
        if predecessor is not None and marker is not None:
            # The key may still carry the marks of the rotation that made it, which strips
            # them last: then that rotation did not finish; finish it rather than start another.
            # (Marks of a rotation of this key itself are settled through its own record.)
            earlier = self.store.read_rotation(api_id=self.api_id, key_id=predecessor)
            if (
                earlier is not None
                and earlier.rotation == marker
                and earlier.key_id in (None, key_id)
            ):
                unreleased = self._release_needless(ours)
                result = self._drive(Attempt(self, earlier, outcome="resumed"))
                if unreleased is not None and self._release_needless(ours) is not None:
                    # Nothing else would end this run's claim: the earlier rotation is
                    # finished and reported as such, so no re-run would come to release it.
                    raise FlowError(
                        f"the unfinished rotation of key {earlier.from_key_id} was finished "
                        f"(key {result.key_id} is current), but this run's claim on the record "
                        f"of key {key_id} could not be released ({describe_error(unreleased)}); "
                        "run the rotation again to clear it",
                        key_id=result.key_id,
                        original_key_id=earlier.from_key_id,
                        actions=("earlier rotation finished", "claim not released"),
                    ) from None
                return result
        if rotated_to(info) is not None:
            if ours is not None:
                # No record was there: this store never rotated the key (see _rotated_out).
                self._write_quietly(ours.next(state="released", owner=None))
                raise InvalidInputError(
                    "key_id", f"{key_id} was rotated out already and this store has no record"
                )
            if claimed.ok:
                return self._drive(Attempt(self, claimed.get()))
            return self._rotated_out(key_id, alias or "", None)
        return self._drive(Attempt(self, claimed.get(), info=info, states=states))

    def _release_needless(self, claim: RotationRecord | None) -> Exception | None:
        """Release ``claim``, made at once with the original's read that made it needless.

        Returns the error if the release failed (written with retries), else None.
        """
        if claim is None:
            return None
        try:
            self._write(claim.next(state="released", owner=None))
        except Exception as exc:  # noqa: BLE001 (the caller decides; named safely)
            return exc
        return None

    def _claim(self, record: RotationRecord) -> RotationRecord:
        """Write ``record`` (the claim, retried); the record in force if one was there."""
        try:
            self.retry(lambda: self.store.write_rotation(record))
        except StoreConflictError:
            existing = self.store.read_rotation(api_id=self.api_id, key_id=record.from_key_id)
            if existing is None:
                raise
            # Ours (its answer lost and retried: carried on as this attempt), or another's.
            return existing
        return record

    def _rotated_out(self, key_id: str, alias: str, state: AliasState | None) -> RotationResult:
        """``key_id`` is not what ``alias`` names (or its meta says it was rotated out)."""
        record = self.store.read_rotation(api_id=self.api_id, key_id=key_id)
        if record is None:
            named = f"alias {alias} names key {state.key_id}, not {key_id}" if state else ""
            raise InvalidInputError(
                "key_id", named or f"{key_id} was rotated out already and this store has no record"
            )
        return self._drive(Attempt(self, record))

    # -- the state machine -----------------------------------------------------------------------

    def _drive(self, attempt: Attempt) -> RotationResult:
        """Take the steps the attempt's record and findings call for, one at a time; report.

        Each step raises when it fails (having settled what it made); see
        :mod:`unkey_secrets.rotation.attempt` for the states and their steps.
        """
        while (step := attempt.next_step()) is not None:
            step()
        return self._report(attempt)

    def _report(self, attempt: Attempt) -> RotationResult:
        """The result of a finished attempt: one that did the tidy-up, or found it done."""
        record = attempt.record
        if attempt.final is None:
            return self._finished(record, attempt.outcome)
        assert record.key_id is not None
        new_id, issued = record.key_id, attempt.issued
        logger.info(
            "rotated key_id=%s key_id=%s api_id=%s aliases=%s outcome=%s",
            record.from_key_id,
            new_id,
            self.api_id,
            ",".join(record.aliases) or "-",
            attempt.outcome,
        )
        location = attempt.location
        if location is None:
            location = self.store.describe_location(api_id=self.api_id, key_id=new_id)
        moved = tuple(attempt.moved)
        if not moved and record.aliases:
            moved = self._finished(record, attempt.outcome).aliases
        return RotationResult(
            key_id=new_id,
            original_key_id=record.from_key_id,
            api_id=self.api_id,
            location=location,
            current=moved[0] if moved else None,
            request_id=issued.request_id if issued else None,
            grace_period=self.grace_period,
            original_expires=attempt.final,
            aliases=moved,
            outcome=attempt.outcome,
        )

    def _finished(self, record: RotationRecord, outcome: str) -> RotationResult:
        """The result a ``done`` record describes (no I/O: locations are computed)."""
        assert record.key_id is not None
        location = self.store.describe_location(api_id=self.api_id, key_id=record.key_id)
        aliases = tuple(
            self.store.describe_location(api_id=self.api_id, key_id=record.key_id, alias=a)
            for a in record.aliases
        )
        return RotationResult(
            key_id=record.key_id,
            original_key_id=record.from_key_id,
            api_id=self.api_id,
            location=location,
            current=aliases[0] if aliases else None,
            request_id=None,
            grace_period=dt.timedelta(milliseconds=record.grace_period_ms or 0),
            original_expires=record.original_expires,
            aliases=aliases,
            outcome=outcome,
        )

    # -- helpers ---------------------------------------------------------------------------------

    def _require_key_of_api(self, key_id: str) -> None:
        """A key this store does not hold: check it belongs to the API (pages listKeys)."""
        try:
            info = self.unkey.get_key(key_id)
        except UnkeyNotFoundError:
            info = None
        if info is None:
            # Raised outside the except block: Unkey's 404 text adds nothing to this.
            raise InvalidInputError(
                "key_id", f"{key_id} is not a key in Unkey (getKey: not found); nothing was changed"
            )
        listed = self.unkey.list_keys(
            self.api_id, external_id=info.external_id, revalidate_keys_cache=True
        )
        if not any(k.key_id == key_id for k in listed):
            raise InvalidInputError("key_id", f"{key_id} is not a key of API {self.api_id}")

    def _write(self, record: RotationRecord) -> None:
        """Write ``record`` with retries; a retry that finds it written already is success."""
        try:
            self.retry(lambda: self.store.write_rotation(record))
        except StoreConflictError:
            # The write may have landed with its answer lost: then the stored record is ours.
            stored = self.retry(
                lambda: self.store.read_rotation(api_id=self.api_id, key_id=record.from_key_id)
            )
            if stored is None or stored.revision != record.revision or stored != record:
                raise

    def _write_quietly(self, record: RotationRecord) -> None:
        """Write ``record`` (see :meth:`_write`); a failure is logged, the next run settles it."""
        try:
            self._write(record)
        except Exception as exc:  # noqa: BLE001 (the record only speeds up the next run)
            logger.warning(
                "could not update the rotation record of key_id=%s (%s); the next run settles it",
                record.from_key_id,
                describe_error(exc),
            )


def refuse_lambda_managed(states: Iterable[AliasState]) -> None:
    """Refuse an alias whose secret Secrets Manager rotates itself (``RotationEnabled``).

    The rotation Lambda keeps its state in the secret's version stages, the library its record
    in the store, and Unkey has no conditional update, so the two cannot share a claim on one
    key: the secret the Lambda rotates is the Lambda's alone. Raised before Unkey is called.
    """
    for state in states:
        if state.rotation_enabled:
            raise RotationConflictError(
                f"alias {state.alias}'s secret is rotated by Secrets Manager (RotationEnabled, "
                "the rotation Lambda): rotate it there (aws secretsmanager rotate-secret), or "
                "turn its rotation off to rotate it here; nothing was changed",
                key_id=None,
                original_key_id=state.key_id,
            )


def alias_names(store: SecretStore, alias: str, issued: IssuedKey) -> bool:
    """Whether ``alias`` names ``issued`` now: a move whose answer was lost may have landed.

    Best effort: False when the store cannot say (a writer may not read the alias).
    """
    try:
        state = store.alias_state(api_id=issued.api_id, alias=alias)
    except Exception:  # noqa: BLE001 (unsure: treat as not moved)
        return False
    return state is not None and state.key_id == issued.key_id


def _ms(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)
