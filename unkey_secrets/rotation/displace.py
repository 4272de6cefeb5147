"""Replacing the key an alias names (``provision(replace=True)``) as one rotation of that key.

Whatever moves an alias off a key takes part in that key's rotation record, so a replace and
a rotation of the same key can never both act, and whatever displaces an alias settles every
unfinished rotation of the keys it displaces:

1. **Claim** the displaced key ``X``'s record with the provision's marker as its token (a
   live rotation of ``X`` refuses the replace before Unkey is called; a dead one is taken
   over, and the keys it made are swept at the end).
2. **Settle the maker** of ``X``: when ``X`` was made by a rotation or replace of ``Y`` that
   died before it finished (its record still claimed), that one is finished first (``Y``
   cut, ``X``'s marks stripped), so no earlier key stays on a rotation's hold. One still
   alive refuses the replace, as a live rotation of ``X`` does.
3. The caller creates, stores and enables the new key ``P`` (``rerolled_from=X``, marked with
   the token until the end) and moves the alias.
4. **Finish**: cut ``X`` to ``min(its own expiry, now + grace period)``, sweep what a dead
   claim made (every key carrying its token: a taken-over claim keeps the dead run's token),
   mark the record ``done`` (``key_id=P``), then strip ``P``'s marks.

A run killed anywhere is finished by the same call run again, or by a rotation of the alias.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from .._errors import RotationConflictError, StoreConflictError, UnkeyError
from .._models import AliasState
from .core import PREVIOUS_EXPIRES_META_KEY, UnkeySide, marker_of, saved_expiry
from .protocol import Rotation, _ms, refuse_lambda_managed
from .record import LIVE_ATTEMPTS, Owner, RotationRecord

if TYPE_CHECKING:
    from ..unkey import KeyInfo

__all__ = ["Displacement"]

logger = logging.getLogger("unkey_secrets.flows")


class Displacement:
    """One ``replace`` of the key ``taken`` names, on ``rotation``'s clients and settings.

    ``token`` is the provision's marker (``op_<store>_<hex>``): it names the record's rotation
    and marks the new key until the replace is done. Taking a dead run's claim over adopts
    that run's token instead: create the new key with :attr:`token` after :meth:`claim`.
    """

    def __init__(self, rotation: Rotation, alias: str, taken: AliasState, token: str) -> None:
        self.rotation = rotation
        self.alias = alias
        self.taken = taken
        self.token = token
        self.record: RotationRecord | None = None
        #: Whether a dead run's claim was taken over (its keys are swept at the end).
        self.took_over = False
        #: The done record of the rotation that made the displaced key, if one did.
        self.maker: RotationRecord | None = None
        self.owner = Owner.me(rotation.now_ms())

    # -- 1 and 2 -----------------------------------------------------------------------------

    def claim(self) -> None:
        """Claim the displaced key's record and settle its maker; nothing is sent on refusal.

        Raises :class:`~unkey_secrets.RotationConflictError` when a live run rotates or
        replaces that key now.
        """
        refuse_lambda_managed([self.taken])
        LIVE_ATTEMPTS.add(self.owner.attempt)
        try:
            self.record = self._claim()
        except BaseException:
            # Refused before anything was claimed: this attempt is over.
            LIVE_ATTEMPTS.discard(self.owner.attempt)
            raise
        try:
            self._settle_maker()
        except BaseException:
            self.release()
            raise

    def _claim(self) -> RotationRecord:
        """Write our claim on the displaced key's record (or take a dead one over)."""
        rot = self.rotation
        key_id = self.taken.key_id
        record = RotationRecord(
            rotation=self.token,
            api_id=rot.api_id,
            from_key_id=key_id,
            state="claimed",
            aliases=(self.alias,),
            owner=self.owner,
            grace_period_ms=_ms(rot.grace_period),
        )
        try:
            rot.retry(lambda: rot.store.write_rotation(record))
        except StoreConflictError:
            existing = rot.retry(lambda: rot.store.read_rotation(api_id=rot.api_id, key_id=key_id))
            if existing is None:
                raise
            if existing.owner == self.owner:
                pass  # our own claim, its answer lost and retried
            elif existing.state == "done":
                # Rotated out since the alias was read: what it names now is another key.
                raise RotationConflictError(
                    f"key {key_id}, which alias {self.alias} named, was rotated to "
                    f"{existing.key_id} meanwhile; nothing was changed: run the replace again",
                    key_id=existing.key_id,
                    original_key_id=key_id,
                ) from None
            else:
                self._refuse_live(existing)
                # Taken over under the dead run's token: every key it made carries that token,
                # and so will the new key, so one sweep (or a later run) finds them all.
                self.token = existing.rotation
                self.took_over = True
                record = existing.next(owner=self.owner, state="claimed", aliases=(self.alias,))
                try:
                    rot.retry(lambda: rot.store.write_rotation(record))
                except StoreConflictError:
                    raise RotationConflictError(
                        f"another run took over key {key_id} meanwhile",
                        key_id=None,
                        original_key_id=key_id,
                    ) from None
        return record

    def _refuse_live(self, existing: RotationRecord) -> None:
        rot, owner = self.rotation, existing.owner
        if existing.state not in ("claimed", "stored") or owner is None or rot.takeover:
            return
        age_ms = rot.now_ms() - owner.since
        if owner.is_alive() and age_ms < _ms(rot.lease):
            raise RotationConflictError(
                f"key {existing.from_key_id}, which alias {self.alias} names, has an unfinished "
                f"rotation (or replace) by a live run (attempt {owner.attempt} on {owner.host}, "
                f"pid {owner.pid}); let it finish, then replace",
                key_id=None,
                original_key_id=existing.from_key_id,
            )

    def _settle_maker(self) -> None:
        """Finish the dead rotation (or replace) that made the displaced key, if any."""
        rot = self.rotation
        maker = self.taken.rerolled_from
        if maker is None:
            return
        earlier = rot.retry(lambda: rot.store.read_rotation(api_id=rot.api_id, key_id=maker))
        if earlier is None:
            return
        if earlier.state == "done":
            self.maker = earlier  # its cut is checked once the displaced key is read
            return
        # A live one refuses the replace (RotationConflictError): it still has to cut its
        # original, and it could die before it does, with no alias left to lead a re-run to it.
        rot.finish(earlier)

    # -- 4 -----------------------------------------------------------------------------------

    def finish(self, new_key_id: str) -> int:
        """Cut the displaced key, sweep a dead claim's keys, mark the record done; strip last.

        Returns the displaced key's new expiry (Unix ms). Raises :class:`UnkeyError` if the
        cut fails (the record then stays claimed by this run, which the caller reports).
        """
        try:
            return self._finish(new_key_id)
        finally:
            LIVE_ATTEMPTS.discard(self.owner.attempt)

    def _finish(self, new_key_id: str) -> int:
        rot, record = self.rotation, self.record
        assert record is not None
        old = self.taken.key_id
        info = rot.unkey.get_key(old)
        maker = self.maker
        if (
            maker is not None
            and maker.original_expires is not None
            and marker_of(info) == maker.rotation
        ):
            # The rotation that made the displaced key marked its record done while its cut
            # of that key's original was in flight, and has not stripped the displaced key's
            # marks: that run may have died before the cut landed. Cut it again, to the same end.
            UnkeySide(rot.unkey, rot.api_id, maker.rotation, clock=rot.clock).cut(
                maker.from_key_id, maker.original_expires, info.meta, rotated_to=old
            )
        previous = self._previous_expires(info, record)
        side = UnkeySide(rot.unkey, rot.api_id, self.token, clock=rot.clock)
        final = side.cut_target(previous, rot.grace_period)
        if self.took_over:
            # What the dead run made: stored keys end with the displaced one, others go.
            for leftover in side.marked_keys(info.external_id, exclude={old, new_key_id}):
                if rot.store.contains(api_id=rot.api_id, key_id=leftover.key_id):
                    side.cut(leftover.key_id, final, leftover.meta, rotated_to=new_key_id)
                else:
                    side.delete(leftover.key_id)
        if record.state != "done":
            side.cut(old, final, info.meta, rotated_to=new_key_id)
            done = record.next(
                state="done",
                owner=None,
                key_id=new_key_id,
                previous_expires=previous,
                original_expires=final,
                finished=rot.now_ms(),
            )
            rot._write(done)
        with contextlib.suppress(UnkeyError):
            # Last: without the token, the new key tells every later run that this finished.
            new_info = rot.unkey.get_key(new_key_id)
            if marker_of(new_info) == self.token:
                side.strip(new_key_id, new_info.meta)
        return final

    def release(self) -> None:
        """Give the claim up (the replace failed before the alias moved); best effort."""
        if self.record is not None and self.record.state != "done":
            rot = self.rotation
            with contextlib.suppress(Exception):
                rot.retry(
                    lambda: rot.store.write_rotation(
                        self.record.next(state="released", owner=None)  # type: ignore[union-attr]
                    )
                )
        LIVE_ATTEMPTS.discard(self.owner.attempt)

    @staticmethod
    def _previous_expires(info: KeyInfo, record: RotationRecord) -> int | None:
        """The displaced key's own expiry: saved in its meta while a rotation held it."""
        meta = info.meta or {}
        if marker_of(info) is not None and PREVIOUS_EXPIRES_META_KEY in meta:
            return saved_expiry(meta[PREVIOUS_EXPIRES_META_KEY], info.key_id)
        if record.state == "done" and record.original_expires is not None:
            return min(x for x in (info.expires, record.original_expires) if x is not None)
        return info.expires
