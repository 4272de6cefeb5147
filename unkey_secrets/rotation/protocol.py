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
4. **Cut** ``K`` to ``min(its own expiry, now + grace_period)``, give both keys their own
   ``meta`` back, and mark the record ``done``.

A failure before the new key is stored deletes it and puts ``K`` back; a failure after it
leaves ``K`` on its hold and the record saying what is left. A run killed anywhere leaves the
record claimed by a process that no longer exists: running the same command again takes it
over (at once on the same host, after ``lease`` elsewhere), deletes what the dead attempt
made and did not store, adopts a new key an alias already names, and finishes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from .._errors import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
    FlowError,
    InvalidInputError,
    RotationConflictError,
    StoreConflictError,
    StoreError,
    UnkeyAmbiguousError,
    UnkeyError,
    UnkeyResponseError,
    UnkeyServerError,
)
from .._models import AliasState, IssuedKey, StoredLocation
from ..settle import describe_error, lost_answer_settled, safe_cause
from ..unkey import KeyInfo, UnkeyClient
from .core import (
    LIBRARY_TOKEN_PREFIX,
    PREVIOUS_EXPIRES_META_KEY,
    ROTATED_TO_META_KEY,
    ROTATION_HOLD,
    Clock,
    Original,
    UnkeySide,
    marker_of,
    saved_expiry,
)
from .record import LIVE_ATTEMPTS, PROCESSES, Owner, RotationRecord

if TYPE_CHECKING:
    from ..stores.base import SecretStore

__all__ = ["DEFAULT_LEASE", "Rotation", "RotationResult", "alias_names"]

logger = logging.getLogger("unkey_secrets.flows")

#: How long a claim by a run on another host is honoured before a new run may take it over.
DEFAULT_LEASE = dt.timedelta(minutes=15)

_T = TypeVar("_T")


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
            return self._continue(record, outcome="resumed")
        finally:
            LIVE_ATTEMPTS.discard(self.owner.attempt)

    def _run(self, key_id: str | None, alias: str | None) -> RotationResult:
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
        info = self.unkey.get_key(key_id)
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
                return self._continue(earlier, outcome="resumed")
        rotated_to = _rotated_to(info)
        if rotated_to is not None:
            return self._rotated_out(key_id, alias or "", None)
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
        try:
            self.retry(lambda: self.store.write_rotation(record))
        except StoreConflictError:
            existing = self.store.read_rotation(api_id=self.api_id, key_id=key_id)
            if existing is None:
                raise
            return self._continue(existing, info=info, states=states)
        return self._attempt(record, info, states, resumed=False)

    # -- what an existing record asks for ------------------------------------------------------

    def _continue(
        self,
        record: RotationRecord,
        *,
        info: KeyInfo | None = None,
        states: dict[str, AliasState] | None = None,
        outcome: str = "already-done",
    ) -> RotationResult:
        if record.state == "done":
            self._finish_marks(record)
            return self._finished(record, outcome)
        owner = record.owner
        if record.state == "claimed" and owner == self.owner:
            # Our own claim, whose answer was lost and retried: carry on as this attempt.
            return self._attempt(
                record, info or self.unkey.get_key(record.from_key_id), states or {}, resumed=False
            )
        if record.state == "claimed" and owner is not None and not self.takeover:
            age_ms = self.now_ms() - owner.since
            if owner.is_alive() and age_ms < _ms(self.lease):
                if owner.host == PROCESSES.get().current()[0]:
                    wait = "that process is still running on this host"
                else:
                    left = _ms(self.lease) // 1000 - age_ms // 1000
                    wait = (
                        f"if that run died, run again in {left} s, or take the rotation over "
                        "(takeover=True, --takeover) once you are sure"
                    )
                raise RotationConflictError(
                    f"key {record.from_key_id} is being rotated by another run (attempt "
                    f"{owner.attempt} on {owner.host}, pid {owner.pid}, for {age_ms // 1000} s); "
                    + wait,
                    key_id=record.key_id,
                    original_key_id=record.from_key_id,
                )
        state = "stored" if record.state == "stored" else "claimed"
        mine = record.next(owner=self.owner, state=state)
        try:
            self.store.write_rotation(mine)
        except StoreConflictError:
            raise RotationConflictError(
                f"another run took over the rotation of key {record.from_key_id} meanwhile",
                key_id=record.key_id,
                original_key_id=record.from_key_id,
            ) from None
        # Taken over: whatever was read before the claim may be stale (the dead run may have
        # marked the key, put it on its hold, moved an alias), so read it all again.
        states = self._alias_states(mine.aliases, mine.from_key_id)
        info = self.unkey.get_key(mine.from_key_id)
        return self._attempt(mine, info, states, resumed=True)

    def _rotated_out(self, key_id: str, alias: str, state: AliasState | None) -> RotationResult:
        """``key_id`` is not what ``alias`` names (or its meta says it was rotated out)."""
        record = self.store.read_rotation(api_id=self.api_id, key_id=key_id)
        if record is None:
            named = f"alias {alias} names key {state.key_id}, not {key_id}" if state else ""
            raise InvalidInputError(
                "key_id", named or f"{key_id} was rotated out already and this store has no record"
            )
        return self._continue(record)

    def _finished(self, record: RotationRecord, outcome: str) -> RotationResult:
        assert record.key_id is not None
        location = self.store.describe_location(api_id=self.api_id, key_id=record.key_id)
        aliases = tuple(
            dataclasses.replace(
                location,
                location=self.store.alias_location(api_id=self.api_id, alias=a),
                alias=a,
            )
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

    # -- one attempt -----------------------------------------------------------------------------

    def _attempt(
        self,
        record: RotationRecord,
        info: KeyInfo,
        states: dict[str, AliasState],
        *,
        resumed: bool,
    ) -> RotationResult:
        side = UnkeySide(self.unkey, self.api_id, record.rotation, clock=self.clock)
        if record.state == "stored" and record.key_id is not None:
            # The aliases moved; only the tidy-up was left.
            original = Original(info, record.previous_expires, True)
            new_info = self.unkey.get_key(record.key_id)
            return self._tidy(record, side, original, new_info, (), None, (), "resumed")
        rotated_to = _rotated_to(info)
        if rotated_to is not None:
            # A dead attempt cut the original already: only the tidy-up's end is left. The
            # meta is Unkey's to change: trust it only if this store holds that key as the
            # original's successor.
            entry = self.store.key_entry(api_id=self.api_id, key_id=rotated_to)
            if entry is None or entry.rerolled_from != record.from_key_id:
                self._release(record)
                raise InvalidInputError(
                    "key_id",
                    f"{info.key_id}'s meta says it was rotated to {rotated_to}, but this store "
                    f"holds no such successor of it in API {self.api_id}; nothing was changed",
                )
            # Its expiry now is the cut: never put it later than that.
            original = Original(info, info.expires, True)
            new_info = self.unkey.get_key(rotated_to)
            return self._tidy(record, side, original, new_info, (), None, (), "resumed")
        self._refuse_foreign_or_expired(info, record)
        original = side.mark(info)
        leftovers: list[str] = []
        if original.resumed or resumed:
            adopted, leftovers = self._settle_leftovers(record, side, original, states)
            if adopted is not None:
                return self._tidy(record, side, original, adopted, leftovers, None, (), "resumed")
            if record.aliases and not states:
                # Every alias the rotation was to move names another key now (someone replaced
                # it meanwhile): rerolling would make a key no alias names. Give it up.
                self._abandon(record, side, original, leftovers)
        record = dataclasses.replace(record, previous_expires=original.previous_expires)
        try:
            issued = side.reroll(original, self.hold)
        except (UnkeyAmbiguousError, UnkeyServerError) as exc:
            raise self._settle_lost_reroll(record, side, original) from exc
        except UnkeyResponseError as exc:
            if exc.key_id is None:
                raise self._settle_lost_reroll(record, side, original) from exc
            # Unkey made a key whose answer we cannot use: it is deleted, the original put back.
            actions = self._compensate(record, side, original, exc.key_id, exc)
            raise CompensatedError(
                f"rerollKey answered with an unusable key for {exc.key_id}; " + "; ".join(actions),
                key_id=exc.key_id,
                original_key_id=record.from_key_id,
                actions=actions,
            ) from exc
        issued = dataclasses.replace(issued, alias=record.aliases[0] if record.aliases else None)
        location = self._store(record, side, original, issued)
        moved = self._move_aliases(record, side, original, issued, states)
        new_info = dataclasses.replace(original.info, key_id=issued.key_id)
        return self._tidy(
            record,
            side,
            original,
            new_info,
            leftovers,
            issued,
            moved,
            "resumed" if resumed or original.resumed else "rotated",
            location=location,
        )

    def _refuse_foreign_or_expired(self, info: KeyInfo, record: RotationRecord) -> None:
        meta = info.meta or {}
        marker = marker_of(info)
        if not info.enabled:
            # rerollKey copies the original's settings: the new key would be disabled too. A
            # safe-mode provision cut short leaves exactly this (its marker on a disabled key).
            self._release(record)
            half_done = marker is not None and marker.startswith("op_")
            raise InvalidInputError(
                "key_id",
                f"{info.key_id} is disabled in Unkey, so its successor would be too; "
                + (
                    "a provision of it was cut short: run that provision again to finish it, "
                    "then rotate"
                    if half_done
                    else "enable it first, or provision a new key"
                ),
            )
        previous = info.expires
        if marker is not None and PREVIOUS_EXPIRES_META_KEY in meta:
            if marker != record.rotation:
                self._release(record)
                raise RotationConflictError(
                    f"key {info.key_id} is marked by another rotation ({marker}: the rotation "
                    "Lambda, or a run that kept no record here); let it finish, or remove the "
                    "unkey_secrets_ members from the key's meta if it was abandoned",
                    key_id=None,
                    original_key_id=info.key_id,
                )
            previous = saved_expiry(meta[PREVIOUS_EXPIRES_META_KEY], info.key_id)
        if previous is not None and previous <= self.now_ms():
            self._release(record)
            raise InvalidInputError(
                "key_id", f"{info.key_id} has already expired; create a new key"
            )

    def _settle_leftovers(
        self,
        record: RotationRecord,
        side: UnkeySide,
        original: Original,
        states: dict[str, AliasState],
    ) -> tuple[KeyInfo | None, list[str]]:
        """After a lost attempt: adopt the new key an alias already names, else clear up.

        Keys the attempt made that no store holds are deleted; stored ones are cut to the grace
        period with the original (an alias cannot be moved to them: their value is not ours
        to read).
        """
        found = side.marked_keys(original.info.external_id, exclude={record.from_key_id})
        adopted: KeyInfo | None = None
        for alias in record.aliases:
            state = states.get(alias) or self.store.alias_state(api_id=self.api_id, alias=alias)
            if state is not None and state.rerolled_from == record.from_key_id:
                # Moved already: that key is the rotation's result, marked or not.
                adopted = next((k for k in found if k.key_id == state.key_id), None) or (
                    self.unkey.get_key(state.key_id)
                )
        stored = []
        for info in sorted(found, key=lambda k: k.created_at, reverse=True):
            if adopted is not None and info.key_id == adopted.key_id:
                continue
            if self.store.contains(api_id=self.api_id, key_id=info.key_id):
                if adopted is None and not record.aliases:
                    # No alias to move: the newest stored key is the rotation's result.
                    adopted = info
                else:
                    stored.append(info.key_id)
            else:
                side.delete(info.key_id)
                logger.warning("deleted key_id=%s left unstored by an earlier attempt", info.key_id)
        return adopted, stored

    def _store(
        self, record: RotationRecord, side: UnkeySide, original: Original, issued: IssuedKey
    ) -> StoredLocation:
        try:
            location: StoredLocation = self.retry(lambda: self.store.put(issued))
        except Exception as exc:  # noqa: BLE001 (whatever failed, Unkey's side is settled)
            actions = self._compensate(record, side, original, issued.key_id, exc)
            raise CompensatedError(
                f"storing key {issued.key_id} failed ({describe_error(exc)}); "
                + "; ".join(actions),
                key_id=issued.key_id,
                original_key_id=record.from_key_id,
                actions=actions,
            ) from safe_cause(exc)
        except BaseException as exc:
            # Interrupted (Ctrl-C, SystemExit): undo what we can, then let the interruption go on.
            try:
                self._compensate(record, side, original, issued.key_id, exc)
            except CompensationFailedError:
                logger.error(
                    "interrupted while storing key_id=%s; undoing it failed", issued.key_id
                )
            raise
        return location

    def _compensate(
        self,
        record: RotationRecord,
        side: UnkeySide,
        original: Original,
        key_id: str,
        cause: BaseException,
    ) -> tuple[str, ...]:
        actions: list[str] = []
        try:
            side.delete(key_id)
            actions.append(f"deleted key {key_id} in Unkey")
            side.restore(original)
            expires = original.previous_expires
            actions.append(
                f"restored key {record.from_key_id}'s expiry to "
                + ("never" if expires is None else str(expires))
            )
        except UnkeyError as exc:
            undone = "; ".join(actions) or "nothing was undone"
            raise CompensationFailedError(
                f"storing key {key_id} failed ({type(cause).__name__}) and undoing it failed "
                f"({type(exc).__name__}: {exc}); {undone}. Run the rotation again to finish "
                f"clearing up, or revoke key {key_id}",
                key_id=key_id,
                original_key_id=record.from_key_id,
                actions=tuple(actions),
            ) from exc
        self._release(record)
        logger.warning("compensated key_id=%s actions=%s", key_id, actions)
        return tuple(actions)

    def _settle_lost_reroll(
        self, record: RotationRecord, side: UnkeySide, original: Original
    ) -> FlowError:
        """RerollKey got no answer: delete what it made (we never saw the key), put K back."""
        key_id = record.from_key_id
        try:
            found = [
                info.key_id
                for info in side.marked_keys(original.info.external_id, exclude={key_id})
                if not self.store.contains(api_id=self.api_id, key_id=info.key_id)
            ]
            for new_id in found:
                side.delete(new_id)
            side.restore(original)
        except (UnkeyError, StoreError) as exc:
            return CompensationFailedError(
                f"rerollKey of {key_id} got no answer and settling it failed "
                f"({type(exc).__name__}); run the rotation again to finish clearing up",
                key_id=None,
                original_key_id=key_id,
                actions=(),
            )
        self._release(record)
        return lost_answer_settled(
            "rerollKey", found, (f"restored key {key_id}'s expiry",), original_key_id=key_id
        )

    def _move_aliases(
        self,
        record: RotationRecord,
        side: UnkeySide,
        original: Original,
        issued: IssuedKey,
        states: dict[str, AliasState],
    ) -> tuple[StoredLocation, ...]:
        moved = []
        for alias in record.aliases:
            expected = states.get(alias)
            if expected is None:
                logger.warning(
                    "alias %s no longer names key_id=%s; left where it is",
                    alias,
                    record.from_key_id,
                )
                continue
            try:
                moved.append(self.retry(_mover(self.store, issued, alias, expected)))
            except BaseException as exc:
                # The write may have landed with only its answer lost (a retry then saw the new
                # revision and called it a conflict): read the alias back, never guess.
                try:
                    now = self.retry(
                        lambda a=alias: self.store.alias_state(api_id=self.api_id, alias=a)  # type: ignore[misc]
                    )
                except Exception:  # unknown: nothing may be cut
                    if not isinstance(exc, Exception):
                        raise
                    raise self._alias_unknown(record, issued, alias, exc) from safe_cause(exc)
                if now is not None and now.key_id == issued.key_id:
                    location = self.store.describe_location(
                        api_id=self.api_id, key_id=issued.key_id
                    )
                    moved.append(dataclasses.replace(location, alias=alias))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                error = self._alias_failed(record, side, original, issued, moved, alias, exc, now)
                if not isinstance(exc, Exception):
                    raise  # interrupted: undone as far as possible, the interruption goes on
                raise error from safe_cause(exc)
        return tuple(moved)

    def _alias_failed(
        self,
        record: RotationRecord,
        side: UnkeySide,
        original: Original,
        issued: IssuedKey,
        moved: list[StoredLocation],
        alias: str,
        cause: BaseException,
        now: AliasState | None,
    ) -> FlowError:
        """An alias could not be moved to the stored new key: undo what can be undone.

        No alias names the new key yet: nothing can (moving one needs its value, which only
        this run holds), so it is cut to the grace period and the original put back. If an
        alias names it already, it stays, and the record says what is left.
        """
        where = f"key {issued.key_id} is stored"
        if moved:
            self._release(record, key_id=issued.key_id)
            return FlowError(
                f"{where} and named by alias {moved[0].alias}, but moving alias {alias} to it "
                f"failed ({describe_error(cause)}); point {alias} with set_current, then run the "
                "rotation again to finish it",
                key_id=issued.key_id,
                original_key_id=record.from_key_id,
                actions=(f"alias {moved[0].alias} moved", f"alias {alias} not moved"),
            )
        final = side.cut_target(None, self.grace_period)
        kept = False
        try:
            side.cut(issued.key_id, final, original.info.meta)
            # Read back after the failure: does the alias still name the original?
            kept = now is not None and now.key_id == record.from_key_id
            if kept:
                side.restore(original)
            else:
                # Someone else moved the alias away from the original: it ends as planned.
                cut = side.cut_target(original.previous_expires, self.grace_period)
                side.cut(record.from_key_id, cut, original.info.meta)
        except (UnkeyError, StoreError) as exc:
            self._release(record, key_id=issued.key_id)
            return CompensationFailedError(
                f"{where}, but moving alias {alias} to it failed ({describe_error(cause)}) and "
                f"undoing the rotation failed ({type(exc).__name__}); run the rotation again "
                "to clear it up",
                key_id=issued.key_id,
                original_key_id=record.from_key_id,
                actions=(f"alias {alias} not moved",),
            )
        self._release(record)
        actions = (
            f"alias {alias} not moved",
            f"cut key {issued.key_id} to the grace period",
            f"restored key {record.from_key_id}'s expiry"
            if kept
            else f"cut key {record.from_key_id} to the grace period: alias {alias} names another",
        )
        return CompensatedError(
            f"{where}, but moving alias {alias} to it failed ({describe_error(cause)}); "
            + "; ".join(actions[1:])
            + ". Nothing changed for readers; run the rotation again",
            key_id=issued.key_id,
            original_key_id=record.from_key_id,
            actions=actions,
        )

    def _alias_unknown(
        self, record: RotationRecord, issued: IssuedKey, alias: str, cause: BaseException
    ) -> FlowError:
        """Moving ``alias`` failed and reading it back failed too: nothing may be cut.

        The alias may name the new key already; cutting it could strand every reader. Both
        keys stay valid (the original on its hold), the record is released naming the new
        key, and the next run reads the alias and finishes or undoes the rotation.
        """
        self._release(record, key_id=issued.key_id)
        return AmbiguousOutcomeError(
            f"key {issued.key_id} is stored, but moving alias {alias} to it failed "
            f"({describe_error(cause)}) and the alias could not be read back; whether it names "
            f"the new key is unknown, so nothing was cut (key {record.from_key_id} stays valid "
            "on its rotation hold). Run the rotation again to finish it",
            key_id=issued.key_id,
            original_key_id=record.from_key_id,
            actions=("stored", f"alias {alias} unknown", "nothing cut"),
        )

    def _abandon(
        self,
        record: RotationRecord,
        side: UnkeySide,
        original: Original,
        leftovers: list[str],
    ) -> NoReturn:
        """The aliases name other keys now (replaced meanwhile): give the rotation up.

        No alias names the original or what earlier attempts stored any more, so each ends
        within the grace period, as the rotation meant the original to, and loses our marks.
        """
        final = side.cut_target(original.previous_expires, self.grace_period)
        cut = [*leftovers, record.from_key_id]
        for key_id in cut:
            side.cut(key_id, final, original.info.meta)
        self._release(record)
        raise RotationConflictError(
            f"alias {', '.join(record.aliases)} names another key now, so the rotation of key "
            f"{record.from_key_id} was given up; cut key {', '.join(cut)} to the grace period",
            key_id=None,
            original_key_id=record.from_key_id,
            actions=tuple(f"cut key {k} to the grace period" for k in cut),
        )

    def _tidy(
        self,
        record: RotationRecord,
        side: UnkeySide,
        original: Original,
        new_info: KeyInfo,
        leftovers: list[str] | tuple[str, ...],
        issued: IssuedKey | None,
        moved: tuple[StoredLocation, ...],
        outcome: str,
        *,
        location: StoredLocation | None = None,
    ) -> RotationResult:
        """Cut the original (and stored leftovers) to the grace period; strip our marks."""
        new_id = new_info.key_id
        record = dataclasses.replace(record, key_id=new_id)
        final = side.cut_target(original.previous_expires, self.grace_period)
        try:
            for old_id in (*leftovers, record.from_key_id):
                side.cut(old_id, final, original.info.meta, rotated_to=new_id)
        except UnkeyError as exc:
            self._write_quietly(
                record.next(state="stored", owner=None, previous_expires=original.previous_expires)
            )
            raise FlowError(
                f"key {new_id} is stored and current, but setting the old keys' expiry failed "
                f"({type(exc).__name__}); key {record.from_key_id} stays valid on its rotation "
                "hold. Run the rotation again to finish it",
                key_id=new_id,
                original_key_id=record.from_key_id,
                actions=("stored", "expiry of the old keys not set"),
            ) from exc
        done = record.next(
            state="done",
            owner=None,
            previous_expires=original.previous_expires,
            original_expires=final,
            finished=self.now_ms(),
        )
        try:
            self._write(done)
        except Exception as exc:  # noqa: BLE001 (named safely below; never chained if foreign)
            # The rotation is finished for readers, but the record still says claimed: its
            # marks stay on the new key, so the next run (by alias or key_id) finds and ends it.
            raise FlowError(
                f"key {new_id} is stored and current and key {record.from_key_id} ends at "
                f"{final}, but marking the rotation record done failed ({describe_error(exc)}); "
                "run the rotation again to finish it (it changes nothing else)",
                key_id=new_id,
                original_key_id=record.from_key_id,
                actions=("stored", "aliases moved", "old keys cut", "record not marked done"),
            ) from safe_cause(exc)
        # Last: a new key without our marks tells the next rotation this one finished. If it
        # fails, the record is done, the run reports it, and the next run (by alias or key_id)
        # strips them.
        self._strip(side, new_id, original.info.meta)
        logger.info(
            "rotated key_id=%s key_id=%s api_id=%s aliases=%s outcome=%s",
            record.from_key_id,
            new_id,
            self.api_id,
            ",".join(record.aliases) or "-",
            outcome,
        )
        if location is None:
            location = self.store.describe_location(api_id=self.api_id, key_id=new_id)
        if not moved and record.aliases:
            moved = self._finished(done, outcome).aliases
        return RotationResult(
            key_id=new_id,
            original_key_id=record.from_key_id,
            api_id=self.api_id,
            location=location,
            current=moved[0] if moved else None,
            request_id=issued.request_id if issued else None,
            grace_period=self.grace_period,
            original_expires=final,
            aliases=moved,
            outcome=outcome,
        )

    # -- helpers ---------------------------------------------------------------------------------

    def _alias_states(self, aliases: tuple[str, ...], key_id: str) -> dict[str, AliasState]:
        states = {}
        for alias in aliases:
            state = self.store.alias_state(api_id=self.api_id, alias=alias)
            # An alias still on the original, or on a key an earlier attempt made from it.
            if state is not None and key_id in (state.key_id, state.rerolled_from):
                states[alias] = state
        return states

    def _require_key_of_api(self, key_id: str) -> None:
        """A key this store does not hold: check it belongs to the API (pages listKeys)."""
        info = self.unkey.get_key(key_id)
        listed = self.unkey.list_keys(
            self.api_id, external_id=info.external_id, revalidate_keys_cache=True
        )
        if not any(k.key_id == key_id for k in listed):
            raise InvalidInputError("key_id", f"{key_id} is not a key of API {self.api_id}")

    def _strip(self, side: UnkeySide, key_id: str, meta: dict[str, Any] | None) -> None:
        """Clear the new key's marks; failing that, say the rotation is not finished.

        The marks tell every other rotation (the Lambda's included) that this one is still in
        flight, so a rotation that leaves them is reported as unfinished: the re-run clears
        them and changes nothing else.
        """
        try:
            side.strip(key_id, meta)
        except UnkeyError as exc:
            raise FlowError(
                f"rotated to key {key_id} (stored, named by its aliases, the old key cut), but "
                f"clearing its rotation marks failed ({type(exc).__name__}); run the rotation "
                "again to clear them (it changes nothing else)",
                key_id=key_id,
                original_key_id=None,
                actions=("stored", "aliases moved", "old keys cut", "marks not cleared"),
            ) from exc

    def _finish_marks(self, record: RotationRecord) -> None:
        """A done rotation whose new key still carries its marks: strip them now."""
        if record.key_id is None:
            return
        info = self.unkey.get_key(record.key_id)
        if marker_of(info) == record.rotation:
            side = UnkeySide(self.unkey, self.api_id, record.rotation, clock=self.clock)
            side.strip(record.key_id, info.meta)

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

    def _release(self, record: RotationRecord, *, key_id: str | None = None) -> None:
        """Give the rotation up so the next run may start at once (best effort)."""
        self._write_quietly(record.next(state="released", owner=None, key_id=key_id))

    def _write_quietly(self, record: RotationRecord) -> None:
        try:
            self._write(record)
        except Exception as exc:  # noqa: BLE001 (the record only speeds up the next run)
            logger.warning(
                "could not update the rotation record of key_id=%s (%s); the next run settles it",
                record.from_key_id,
                describe_error(exc),
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


def _rotated_to(info: KeyInfo) -> str | None:
    value = (info.meta or {}).get(ROTATED_TO_META_KEY)
    return value if isinstance(value, str) and marker_of(info) is None else None


def _mover(
    store: SecretStore, issued: IssuedKey, alias: str, expected: AliasState
) -> Callable[[], StoredLocation]:
    return lambda: store.set_current(issued, alias=alias, expected=expected)


def _ms(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)
