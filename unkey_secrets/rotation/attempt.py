"""One attempt at a rotation: what it knows, and the step that knowledge calls for next.

An :class:`Attempt` starts from a rotation record (claimed by this run, or left by another)
and gathers what it finds as it goes: the original as read and once marked, the alias states,
keys an earlier attempt left, the issued key, its location, the aliases moved, the cut.
:meth:`Attempt.next_step` reads the record's state and those findings and names the one step
to take next (None: finished); :class:`~unkey_secrets.rotation.protocol.Rotation` runs the
steps in a loop. The states, and the step each calls for::

    record     what the attempt found                      next step
    ---------  ------------------------------------------  -------------------------------
    done       it found the record done                    clear_marks, then finished
    done       it marked the record done itself            strip, then finished
    any other  the record is not this run's                take_over (a live owner refuses)
    ours       the original not read yet                   read_original
    ours       stored: only the tidy-up was left           resume_stored
    ours       the original's meta names its successor     resume_cut (a dead run cut it)
    ours       the original not marked yet                 mark
    ours       resumed, earlier attempts not swept yet     sweep (adopts, deletes, or gives up)
    ours       nothing issued yet                          reroll
    ours       issued, not stored                          store
    ours       stored, aliases not moved                   move_aliases
    ours       the new key known, the old keys not cut     cut
    ours       cut                                         mark_done (the record is done)

Each step takes only what the attempt holds and records what it learned; a step that fails
settles what it made (deletes an unstored key, puts the original back, releases the record)
and raises the error the caller sees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from .._concurrent import first_failure, together
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
from ..settle import describe_error, lost_answer_settled, safe_cause, store_or_undo
from ..settle.keys import compensated, compensation_failed
from ..unkey import KeyInfo
from .core import (
    PREVIOUS_EXPIRES_META_KEY,
    ROTATED_TO_META_KEY,
    Original,
    UnkeySide,
    marker_of,
    saved_expiry,
)
from .record import PROCESSES, Owner, RotationRecord

if TYPE_CHECKING:
    from ..stores.base import SecretStore
    from .protocol import Rotation

__all__ = ["Attempt", "Step", "rotated_to"]

logger = logging.getLogger("unkey_secrets.flows")

#: One step of an attempt: it reads and updates the attempt, and raises when it fails.
Step = Callable[[], None]


def rotated_to(info: KeyInfo) -> str | None:
    """The key ``info``'s meta says replaced it (a finished cut), or None.

    Only an unmarked key counts: a key still carrying a rotation's marks is in flight.
    """
    value = (info.meta or {}).get(ROTATED_TO_META_KEY)
    return value if isinstance(value, str) and marker_of(info) is None else None


@dataclass(eq=False)
class Attempt:
    """What one attempt at the rotation ``record`` describes knows so far.

    ``rotation`` gives the clients and settings; ``record`` is the latest revision this
    attempt wrote or read. ``info`` is the original as read (None: read it), ``states`` the
    alias states that still name it (alias -> state). ``outcome`` is what to report when the
    record turns out done already; an attempt that does the work reports ``"resumed"`` or
    ``"rotated"``. The rest is filled in by the steps: see the module docstring.
    """

    rotation: Rotation
    record: RotationRecord
    info: KeyInfo | None = None
    states: dict[str, AliasState] = field(default_factory=dict)
    outcome: str = "already-done"
    #: An earlier attempt of this rotation may have left keys (taken over, or marked already).
    resumed: bool = False
    #: The original once marked: its pre-rotation expiry (Unix ms, None: never).
    original: Original | None = None
    #: Whether the keys earlier attempts left have been settled.
    swept: bool = False
    #: Stored keys earlier attempts made: they end with the original.
    leftovers: list[str] = field(default_factory=list)
    issued: IssuedKey | None = None
    location: StoredLocation | None = None
    moved: list[StoredLocation] = field(default_factory=list)
    #: The key the rotation ends on: the one issued, or one an earlier attempt made.
    new_key: KeyInfo | None = None
    #: The old keys' final expiry (Unix ms) once cut.
    final: int | None = None
    #: Whether the new key's marks are gone (the last step).
    stripped: bool = False
    side: UnkeySide = field(init=False)

    def __post_init__(self) -> None:
        rot = self.rotation
        self.side = UnkeySide(rot.unkey, rot.api_id, self.record.rotation, clock=rot.clock)

    # -- the dispatch ----------------------------------------------------------------------------

    def next_step(self) -> Step | None:
        """The step the record's state and this attempt's findings call for; None: finished."""
        record = self.record
        if record.state == "done":
            if self.stripped:
                return None
            return self.strip if self.final is not None else self.clear_marks
        if record.owner != self.rotation.owner:
            return self.take_over
        if self.info is None:
            return self.read_original
        if self.original is None:
            if record.state == "stored" and record.key_id is not None:
                return self.resume_stored
            if rotated_to(self.info) is not None:
                return self.resume_cut
            return self.mark
        if self.new_key is None:
            if self.resumed and not self.swept:
                return self.sweep
            if self.issued is None:
                return self.reroll
            if self.location is None:
                return self.store
            return self.move_aliases
        if self.final is None:
            return self.cut
        return self.mark_done

    # -- taking a record on --------------------------------------------------------------------

    def take_over(self) -> None:
        """Claim a record another run left (claimed, stored or released) for this run.

        Raises :class:`~unkey_secrets.RotationConflictError` if its owner is alive and its
        lease not over (unless ``takeover``), or if another run claims it first.
        """
        rot, record = self.rotation, self.record
        owner = record.owner
        if record.state == "claimed" and owner is not None and not rot.takeover:
            self._refuse_live(owner)
        state = "stored" if record.state == "stored" else "claimed"
        mine = record.next(owner=rot.owner, state=state)
        try:
            rot.store.write_rotation(mine)
        except StoreConflictError:
            raise RotationConflictError(
                f"another run took over the rotation of key {record.from_key_id} meanwhile",
                key_id=record.key_id,
                original_key_id=record.from_key_id,
            ) from None
        self.record = mine
        self.resumed = True
        # Whatever was read before the claim may be stale (the dead run may have marked the
        # key, put it on its hold, moved an alias), so read it all again.
        self.states = self._alias_states()
        self.info = None

    def _refuse_live(self, owner: Owner) -> None:
        """Raise RotationConflictError if ``owner`` may still be at work (alive, in its lease)."""
        rot, record = self.rotation, self.record
        lease_ms = int(rot.lease.total_seconds() * 1000)
        age_ms = rot.now_ms() - owner.since
        if not owner.is_alive() or age_ms >= lease_ms:
            return
        if owner.host == PROCESSES.get().current()[0]:
            wait = "that process is still running on this host"
        else:
            left = lease_ms // 1000 - age_ms // 1000
            wait = (
                f"if that run died, run again in {left} s, or take the rotation over "
                "(takeover=True, --takeover) once you are sure"
            )
        raise RotationConflictError(
            f"key {record.from_key_id} is being rotated by another run (attempt "
            f"{owner.attempt} on {owner.host}, pid {owner.pid}, for {age_ms // 1000} s); " + wait,
            key_id=record.key_id,
            original_key_id=record.from_key_id,
        )

    def _alias_states(self) -> dict[str, AliasState]:
        """The record's aliases still on the original, or on a key an earlier attempt made."""
        rot, key_id = self.rotation, self.record.from_key_id
        states = {}
        for alias in self.record.aliases:
            state = rot.store.alias_state(api_id=rot.api_id, alias=alias)
            if state is not None and key_id in (state.key_id, state.rerolled_from):
                states[alias] = state
        return states

    def read_original(self) -> None:
        """Read the original key from Unkey (one getKey)."""
        self.info = self.rotation.unkey.get_key(self.record.from_key_id)

    # -- what an earlier attempt left ------------------------------------------------------------

    def resume_stored(self) -> None:
        """The record says the new key is stored and the aliases moved: only the tidy-up is left."""
        assert self.info is not None
        assert self.record.key_id is not None
        self.original = Original(self.info, self.record.previous_expires, True)
        self.new_key = self.rotation.unkey.get_key(self.record.key_id)
        self.resumed = True

    def resume_cut(self) -> None:
        """A dead attempt cut the original already: only the tidy-up's end is left.

        The meta is Unkey's to change, so it is trusted only if this store holds the key it
        names as the original's successor; otherwise the record is released and
        :class:`~unkey_secrets.InvalidInputError` raised, nothing changed.
        """
        rot, info = self.rotation, self.info
        assert info is not None
        successor = rotated_to(info)
        assert successor is not None
        entry = rot.store.key_entry(api_id=rot.api_id, key_id=successor)
        if entry is None or entry.rerolled_from != self.record.from_key_id:
            self.release()
            raise InvalidInputError(
                "key_id",
                f"{info.key_id}'s meta says it was rotated to {successor}, but this store "
                f"holds no such successor of it in API {rot.api_id}; nothing was changed",
            )
        # Its expiry now is the cut: never put it later than that.
        self.original = Original(info, info.expires, True)
        self.new_key = rot.unkey.get_key(successor)
        self.resumed = True

    # -- the rotation proper ---------------------------------------------------------------------

    def mark(self) -> None:
        """Refuse a key that cannot be rotated, then mark it with the token (one updateKey)."""
        assert self.info is not None
        self._refuse_foreign_or_expired(self.info)
        self.original = self.side.mark(self.info)
        self.resumed = self.resumed or self.original.resumed

    def _refuse_foreign_or_expired(self, info: KeyInfo) -> None:
        """Release the record and raise if ``info`` is disabled, another's, or expired."""
        meta = info.meta or {}
        marker = marker_of(info)
        if not info.enabled:
            # rerollKey copies the original's settings: the new key would be disabled too. A
            # safe-mode provision cut short leaves exactly this (its marker on a disabled key).
            self.release()
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
            if marker != self.record.rotation:
                self.release()
                raise RotationConflictError(
                    f"key {info.key_id} is marked by another rotation ({marker}: the rotation "
                    "Lambda, or a run that kept no record here); let it finish, or remove the "
                    "unkey_secrets_ members from the key's meta if it was abandoned",
                    key_id=None,
                    original_key_id=info.key_id,
                )
            previous = saved_expiry(meta[PREVIOUS_EXPIRES_META_KEY], info.key_id)
        if previous is not None and previous <= self.rotation.now_ms():
            self.release()
            raise InvalidInputError(
                "key_id", f"{info.key_id} has already expired; create a new key"
            )

    def sweep(self) -> None:
        """After a lost attempt: adopt the new key an alias already names, else clear up.

        Keys the attempt made that no store holds are deleted; stored ones are cut to the grace
        period with the original (an alias cannot be moved to them: their value is not ours
        to read). When every alias the rotation was to move names another key now, the
        rotation is given up (:meth:`_abandon`).
        """
        rot, record, original = self.rotation, self.record, self.original
        assert original is not None
        found = self.side.marked_keys(original.info.external_id, exclude={record.from_key_id})
        adopted: KeyInfo | None = None
        for alias in record.aliases:
            state = self.states.get(alias) or rot.store.alias_state(api_id=rot.api_id, alias=alias)
            if state is not None and state.rerolled_from == record.from_key_id:
                # Moved already: that key is the rotation's result, marked or not.
                adopted = next((k for k in found if k.key_id == state.key_id), None) or (
                    rot.unkey.get_key(state.key_id)
                )
        stored = []
        for info in sorted(found, key=lambda k: k.created_at, reverse=True):
            if adopted is not None and info.key_id == adopted.key_id:
                continue
            if rot.store.contains(api_id=rot.api_id, key_id=info.key_id):
                if adopted is None and not record.aliases:
                    # No alias to move: the newest stored key is the rotation's result.
                    adopted = info
                else:
                    stored.append(info.key_id)
            else:
                self.side.delete(info.key_id)
                logger.warning("deleted key_id=%s left unstored by an earlier attempt", info.key_id)
        self.leftovers, self.swept, self.new_key = stored, True, adopted
        if adopted is None and record.aliases and not self.states:
            # Every alias the rotation was to move names another key now (someone replaced
            # it meanwhile): rerolling would make a key no alias names. Give it up.
            self._abandon()

    def _abandon(self) -> NoReturn:
        """The aliases name other keys now (replaced meanwhile): give the rotation up.

        No alias names the original or what earlier attempts stored any more, so each ends
        within the grace period, as the rotation meant the original to, and loses our marks.
        Raises :class:`~unkey_secrets.RotationConflictError`.
        """
        record, original = self.record, self.original
        assert original is not None
        final = self.side.cut_target(original.previous_expires, self.rotation.grace_period)
        cut = [*self.leftovers, record.from_key_id]
        for key_id in cut:
            self.side.cut(key_id, final, original.info.meta)
        self.release()
        raise RotationConflictError(
            f"alias {', '.join(record.aliases)} names another key now, so the rotation of key "
            f"{record.from_key_id} was given up; cut key {', '.join(cut)} to the grace period",
            key_id=None,
            original_key_id=record.from_key_id,
            actions=tuple(f"cut key {k} to the grace period" for k in cut),
        )

    def reroll(self) -> None:
        """RerollKey with the original on its hold; settle a lost or unusable answer.

        Raises the :class:`~unkey_secrets.FlowError` family, with the original put back and
        what Unkey made deleted (or named, if that failed).
        """
        original, aliases = self.original, self.record.aliases
        assert original is not None
        self.record = dataclasses.replace(self.record, previous_expires=original.previous_expires)
        try:
            issued = self.side.reroll(original, self.rotation.hold)
        except (UnkeyAmbiguousError, UnkeyServerError) as exc:
            raise self._settle_lost_reroll() from exc
        except UnkeyResponseError as exc:
            if exc.key_id is None:
                raise self._settle_lost_reroll() from exc
            # Unkey made a key whose answer we cannot use: it is deleted, the original put back.
            actions = self._undo_reroll(exc.key_id, exc)
            raise CompensatedError(
                f"rerollKey answered with an unusable key for {exc.key_id}; " + "; ".join(actions),
                key_id=exc.key_id,
                original_key_id=self.record.from_key_id,
                actions=actions,
            ) from exc
        self.issued = dataclasses.replace(issued, alias=aliases[0] if aliases else None)

    def _settle_lost_reroll(self) -> FlowError:
        """RerollKey got no answer: delete what it made (we never saw the key), put K back."""
        rot, original = self.rotation, self.original
        assert original is not None
        key_id = self.record.from_key_id
        try:
            found = [
                info.key_id
                for info in self.side.marked_keys(original.info.external_id, exclude={key_id})
                if not rot.store.contains(api_id=rot.api_id, key_id=info.key_id)
            ]
            for new_id in found:
                self.side.delete(new_id)
            self.side.restore(original)
        except (UnkeyError, StoreError) as exc:
            return CompensationFailedError(
                f"rerollKey of {key_id} got no answer and settling it failed "
                f"({type(exc).__name__}); run the rotation again to finish clearing up",
                key_id=None,
                original_key_id=key_id,
                actions=(),
            )
        self.release()
        return lost_answer_settled(
            "rerollKey", found, (f"restored key {key_id}'s expiry",), original_key_id=key_id
        )

    def _undo_reroll(self, key_id: str, cause: BaseException) -> tuple[str, ...]:
        """Delete the new key ``key_id``, put the original back, release; returns what was done.

        Raises :class:`~unkey_secrets.CompensationFailedError` (naming what was undone) when
        Unkey fails meanwhile.
        """
        original = self.original
        assert original is not None
        actions: list[str] = []
        try:
            self.side.delete(key_id)
            actions.append(f"deleted key {key_id} in Unkey")
            self.side.restore(original)
            expires = original.previous_expires
            actions.append(
                f"restored key {self.record.from_key_id}'s expiry to "
                + ("never" if expires is None else str(expires))
            )
        except UnkeyError as exc:
            compensation_failed(key_id, actions, exc, original_key_id=self.record.from_key_id)
            undone = "; ".join(actions) or "nothing was undone"
            raise CompensationFailedError(
                f"storing key {key_id} failed ({type(cause).__name__}) and undoing it failed "
                f"({type(exc).__name__}: {exc}); {undone}. Run the rotation again to finish "
                f"clearing up, or revoke key {key_id}",
                key_id=key_id,
                original_key_id=self.record.from_key_id,
                actions=tuple(actions),
            ) from exc
        self.release()
        compensated(key_id, actions, original_key_id=self.record.from_key_id)
        return tuple(actions)

    def store(self) -> None:
        """Store the new key at its own location (the put retried), or undo the reroll.

        A failed put is settled by :func:`~unkey_secrets.settle.store_or_undo`: the store is
        asked whether it holds the key (then it did land and the rotation goes on); if it
        does not, or cannot say, the key is deleted and the original put back
        (:class:`~unkey_secrets.CompensatedError`): no alias names the new key yet.
        """
        rot, issued = self.rotation, self.issued
        assert issued is not None
        # What each alias's move can do before the key is stored is done at the same time
        # (SecretStore.prepare_move: nothing a reader sees). The put is settled as before; a
        # prepare that failed leaves its move to do it all.
        moves = [(a, s) for a in self.record.aliases if (s := self.states.get(a)) is not None]
        put, *prepared = together(
            lambda: rot.retry(lambda: rot.store.put(issued)),
            *(_preparer(rot.store, issued, alias, state) for alias, state in moves),
        )
        interrupted = first_failure(prepared)
        if interrupted is not None and not isinstance(interrupted, Exception):
            if put.error is not None:
                # Interrupted while the put failed: undone as an interrupted put is.
                with contextlib.suppress(CompensationFailedError):
                    self._undo_reroll(issued.key_id, interrupted)
            raise interrupted
        self.location = store_or_undo(
            put.get,
            lambda cause: self._undo_reroll(issued.key_id, cause),
            key_id=issued.key_id,
            stored=lambda: self._stored_location(issued.key_id),
            original_key_id=self.record.from_key_id,
        )

    def _stored_location(self, key_id: str) -> StoredLocation | None:
        """Where the store holds ``key_id`` (asked from metadata, retried), or None."""
        rot = self.rotation
        if rot.retry(lambda: rot.store.contains(api_id=rot.api_id, key_id=key_id)):
            return rot.store.describe_location(api_id=rot.api_id, key_id=key_id)
        return None

    def move_aliases(self) -> None:
        """Move every alias that still names the original to the stored new key.

        Each move names the state it expects; an alias that names another key now is left
        where it is. Raises the :class:`~unkey_secrets.FlowError` family when a move fails.
        """
        original, issued = self.original, self.issued
        assert original is not None
        assert issued is not None
        for alias in self.record.aliases:
            expected = self.states.get(alias)
            if expected is None:
                logger.warning(
                    "alias %s no longer names key_id=%s; left where it is",
                    alias,
                    self.record.from_key_id,
                )
                continue
            self._move(alias, issued, expected)
        self.new_key = dataclasses.replace(original.info, key_id=issued.key_id)

    def _move(self, alias: str, issued: IssuedKey, expected: AliasState) -> None:
        """Move ``alias`` from ``expected`` to ``issued`` (retried); settle a failure."""
        rot = self.rotation
        try:
            self.moved.append(rot.retry(_mover(rot.store, issued, alias, expected)))
        except BaseException as exc:
            # The write may have landed with only its answer lost (a retry then saw the new
            # revision and called it a conflict): read the alias back, never guess.
            try:
                now = rot.retry(lambda: rot.store.alias_state(api_id=rot.api_id, alias=alias))
            except Exception:  # unknown: nothing may be cut
                if not isinstance(exc, Exception):
                    raise
                raise self._alias_unknown(alias, exc) from safe_cause(exc)
            if now is not None and now.key_id == issued.key_id:
                location = rot.store.describe_location(api_id=rot.api_id, key_id=issued.key_id)
                self.moved.append(dataclasses.replace(location, alias=alias))
                if not isinstance(exc, Exception):
                    raise
                return
            error = self._alias_failed(alias, exc, now)
            if not isinstance(exc, Exception):
                raise  # interrupted: undone as far as possible, the interruption goes on
            raise error from safe_cause(exc)

    def _alias_failed(self, alias: str, cause: BaseException, now: AliasState | None) -> FlowError:
        """An alias could not be moved to the stored new key: undo what can be undone.

        No alias names the new key yet: nothing can (moving one needs its value, which only
        this run holds), so it is cut to the grace period and the original put back. If an
        alias names it already, it stays, and the record says what is left. ``now`` is the
        alias as read back after the failure.
        """
        record, original, issued = self.record, self.original, self.issued
        assert original is not None
        assert issued is not None
        grace_period = self.rotation.grace_period
        where = f"key {issued.key_id} is stored"
        if self.moved:
            self.release(key_id=issued.key_id)
            return FlowError(
                f"{where} and named by alias {self.moved[0].alias}, but moving alias {alias} to "
                f"it failed ({describe_error(cause)}); point {alias} with set_current, then run "
                "the rotation again to finish it",
                key_id=issued.key_id,
                original_key_id=record.from_key_id,
                actions=(f"alias {self.moved[0].alias} moved", f"alias {alias} not moved"),
            )
        final = self.side.cut_target(None, grace_period)
        kept = False
        try:
            self.side.cut(issued.key_id, final, original.info.meta)
            # Read back after the failure: does the alias still name the original?
            kept = now is not None and now.key_id == record.from_key_id
            if kept:
                self.side.restore(original)
            else:
                # Someone else moved the alias away from the original: it ends as planned.
                cut = self.side.cut_target(original.previous_expires, grace_period)
                self.side.cut(record.from_key_id, cut, original.info.meta)
        except (UnkeyError, StoreError) as exc:
            self.release(key_id=issued.key_id)
            compensation_failed(
                issued.key_id, ("alias not moved",), exc, original_key_id=record.from_key_id
            )
            return CompensationFailedError(
                f"{where}, but moving alias {alias} to it failed ({describe_error(cause)}) and "
                f"undoing the rotation failed ({type(exc).__name__}); run the rotation again "
                "to clear it up",
                key_id=issued.key_id,
                original_key_id=record.from_key_id,
                actions=(f"alias {alias} not moved",),
            )
        self.release()
        actions = (
            f"alias {alias} not moved",
            f"cut key {issued.key_id} to the grace period",
            f"restored key {record.from_key_id}'s expiry"
            if kept
            else f"cut key {record.from_key_id} to the grace period: alias {alias} names another",
        )
        compensated(issued.key_id, actions, original_key_id=record.from_key_id)
        return CompensatedError(
            f"{where}, but moving alias {alias} to it failed ({describe_error(cause)}); "
            + "; ".join(actions[1:])
            + ". Nothing changed for readers; run the rotation again",
            key_id=issued.key_id,
            original_key_id=record.from_key_id,
            actions=actions,
        )

    def _alias_unknown(self, alias: str, cause: BaseException) -> FlowError:
        """Moving ``alias`` failed and reading it back failed too: nothing may be cut.

        The alias may name the new key already; cutting it could strand every reader. Both
        keys stay valid (the original on its hold), the record is released naming the new
        key, and the next run reads the alias and finishes or undoes the rotation.
        """
        issued = self.issued
        assert issued is not None
        self.release(key_id=issued.key_id)
        return AmbiguousOutcomeError(
            f"key {issued.key_id} is stored, but moving alias {alias} to it failed "
            f"({describe_error(cause)}) and the alias could not be read back; whether it names "
            f"the new key is unknown, so nothing was cut (key {self.record.from_key_id} stays "
            "valid on its rotation hold). Run the rotation again to finish it",
            key_id=issued.key_id,
            original_key_id=self.record.from_key_id,
            actions=("stored", f"alias {alias} unknown", "nothing cut"),
        )

    # -- the tidy-up -------------------------------------------------------------------------------

    def cut(self) -> None:
        """Cut the original (and stored leftovers) to ``min(own expiry, now + grace period)``.

        Each keeps the new key's id in its meta. On failure the record is left ``stored``
        (best effort) and :class:`~unkey_secrets.FlowError` says to run again. With no
        leftovers (every run but a resumed one), the record is marked ``done`` at the same
        time (:meth:`cut_and_mark_done`).
        """
        original, new_key = self.original, self.new_key
        assert original is not None
        assert new_key is not None
        new_id = new_key.key_id
        self.record = record = dataclasses.replace(self.record, key_id=new_id)
        final = self.side.cut_target(original.previous_expires, self.rotation.grace_period)
        if not self.leftovers:
            self.cut_and_mark_done(final)
            return
        try:
            for old_id in (*self.leftovers, record.from_key_id):
                self.side.cut(old_id, final, original.info.meta, rotated_to=new_id)
        except UnkeyError as exc:
            raise self._cut_failed(record, exc) from exc
        self.final = final
        self.outcome = "resumed" if self.resumed else "rotated"

    def cut_and_mark_done(self, final: int) -> None:
        """Cut the original and write the record ``done``, at once; settle either failure.

        Neither needs the other's answer. Settled as the sequential code (cut, then done)
        settles: a failed cut leaves the record ``stored`` (written over a ``done`` that
        landed) and raises what :meth:`cut` raises; a failed record write, what
        :meth:`mark_done` raises. The new key keeps its marks until :meth:`strip`, after both:
        a run killed between the two leaves a ``done`` record whose new key is still marked,
        which the next run finishes (:meth:`clear_marks` cuts the original again).
        """
        original, record = self.original, self.record
        assert original is not None
        assert record.key_id is not None
        new_id = record.key_id
        done = self._done(final)
        cut, marked = together(
            lambda: self.side.cut(record.from_key_id, final, original.info.meta, rotated_to=new_id),
            lambda: self.rotation._write(done),
        )
        interrupted = first_failure([cut, marked])
        if interrupted is not None and not isinstance(interrupted, Exception):
            raise interrupted
        if cut.error is not None:
            if not isinstance(cut.error, UnkeyError):
                raise cut.error
            raise self._cut_failed(done if marked.ok else record, cut.error) from cut.error
        self.final = final
        self.outcome = "resumed" if self.resumed else "rotated"
        if marked.error is not None:
            raise self._done_failed(marked.error) from safe_cause(marked.error)
        self.record = done

    def _cut_failed(self, record: RotationRecord, exc: UnkeyError) -> FlowError:
        """The old keys' cut failed: the record is left ``stored`` (best effort); the error."""
        original = self.original
        assert original is not None
        assert record.key_id is not None
        self.rotation._write_quietly(
            record.next(
                state="stored",
                owner=None,
                previous_expires=original.previous_expires,
                original_expires=None,
                finished=None,
            )
        )
        return FlowError(
            f"key {record.key_id} is stored and current, but setting the old keys' expiry failed "
            f"({type(exc).__name__}); key {record.from_key_id} stays valid on its rotation "
            "hold. Run the rotation again to finish it",
            key_id=record.key_id,
            original_key_id=record.from_key_id,
            actions=("stored", "expiry of the old keys not set"),
        )

    def _done(self, final: int | None) -> RotationRecord:
        """The record's ``done`` revision, the old keys ending at ``final``."""
        original, record = self.original, self.record
        assert original is not None
        return record.next(
            state="done",
            owner=None,
            previous_expires=original.previous_expires,
            original_expires=final,
            finished=self.rotation.now_ms(),
        )

    def mark_done(self) -> None:
        """Write the record ``done`` (retried); failing that, FlowError says to run again."""
        assert self.record.key_id is not None
        done = self._done(self.final)
        try:
            self.rotation._write(done)
        except Exception as exc:  # noqa: BLE001 (named safely below; never chained if foreign)
            raise self._done_failed(exc) from safe_cause(exc)
        self.record = done

    def _done_failed(self, exc: BaseException) -> FlowError:
        """Marking the record done failed: the error that says to run again."""
        record, final = self.record, self.final
        # The rotation is finished for readers, but the record still says claimed: its
        # marks stay on the new key, so the next run (by alias or key_id) finds and ends it.
        return FlowError(
            f"key {record.key_id} is stored and current and key {record.from_key_id} ends "
            f"at {final}, but marking the rotation record done failed "
            f"({describe_error(exc)}); run the rotation again to finish it (it changes "
            "nothing else)",
            key_id=record.key_id,
            original_key_id=record.from_key_id,
            actions=("stored", "aliases moved", "old keys cut", "record not marked done"),
        )

    def strip(self) -> None:
        """Clear the new key's marks (one updateKey); failing that, say it is not finished.

        Last: a new key without our marks tells the next rotation this one finished. The
        marks tell every other rotation (the Lambda's included) that this one is still in
        flight, so a rotation that leaves them is reported as unfinished
        (:class:`~unkey_secrets.FlowError`): the re-run clears them and changes nothing else.
        """
        original, key_id = self.original, self.record.key_id
        assert original is not None
        assert key_id is not None
        try:
            self.side.strip(key_id, original.info.meta)
        except UnkeyError as exc:
            raise FlowError(
                f"rotated to key {key_id} (stored, named by its aliases, the old key cut), but "
                f"clearing its rotation marks failed ({type(exc).__name__}); run the rotation "
                "again to clear them (it changes nothing else)",
                key_id=key_id,
                original_key_id=None,
                actions=("stored", "aliases moved", "old keys cut", "marks not cleared"),
            ) from exc
        self.stripped = True

    def clear_marks(self) -> None:
        """A record found done whose new key still carries its marks: finish the tidy-up.

        The run that marked it done made the original's cut at the same time and may have
        died before the cut landed: the original is cut again, to the same end (the record's
        ``original_expires``), then the new key's marks go.
        """
        record = self.record
        key_id = record.key_id
        if key_id is not None:
            info = self.rotation.unkey.get_key(key_id)
            if marker_of(info) == record.rotation:
                if record.original_expires is not None:
                    self.side.cut(
                        record.from_key_id, record.original_expires, info.meta, rotated_to=key_id
                    )
                self.side.strip(key_id, info.meta)
        self.stripped = True

    # -- the record --------------------------------------------------------------------------------

    def release(self, *, key_id: str | None = None) -> None:
        """Give the rotation up so the next run may start at once (best effort).

        ``key_id`` names a new key that may be stored, for the next run to settle.
        """
        self.rotation._write_quietly(self.record.next(state="released", owner=None, key_id=key_id))


def _mover(
    store: SecretStore, issued: IssuedKey, alias: str, expected: AliasState
) -> Callable[[], StoredLocation]:
    return lambda: store.set_current(issued, alias=alias, expected=expected)


def _preparer(
    store: SecretStore, issued: IssuedKey, alias: str, expected: AliasState
) -> Callable[[], None]:
    return lambda: store.prepare_move(issued, alias=alias, expected=expected)
