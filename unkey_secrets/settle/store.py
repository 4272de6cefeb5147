"""Store or undo: a key Unkey made is stored, or Unkey's side is undone; never guessed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .._errors import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
)
from .._models import StoredLocation
from .errors import describe_error, safe_cause

__all__ = ["store_or_undo"]

logger = logging.getLogger("unkey_secrets.flows")


def store_or_undo(
    put: Callable[[], StoredLocation],
    undo: Callable[[BaseException], tuple[str, ...]],
    *,
    key_id: str,
    stored: Callable[[], StoredLocation | None],
    original_key_id: str | None = None,
) -> StoredLocation:
    """Run ``put`` (already retried by the caller); if it fails, settle what Unkey made.

    A failed write may have landed with its answer lost, so the store is asked first
    (``stored``: the location if it holds ``key_id``, None if it does not; it may raise):

    * it holds the key: the write landed; its location is returned, nothing is undone;
    * it does not: ``undo`` (delete the new key, put an original back) runs and
      :class:`~unkey_secrets.CompensatedError` says what it did;
    * it cannot say: nothing is undone (deleting a key a store may hold would strand its
      readers) and :class:`~unkey_secrets.AmbiguousOutcomeError` names the key to check.

    An interruption (Ctrl-C, SystemExit) undoes what it can and goes on. ``undo`` raises
    :class:`~unkey_secrets.CompensationFailedError` when it cannot finish.
    """
    try:
        return put()
    except Exception as exc:  # noqa: BLE001 (whatever failed, Unkey's side is settled)
        failure = exc
    except BaseException as exc:
        try:
            undo(exc)
        except CompensationFailedError:
            logger.error("interrupted while storing key_id=%s; undoing it failed", key_id)
        raise
    # Settled outside the except block: the failure is chained only if it is ours.
    try:
        location = stored()
    except Exception as exc:  # noqa: BLE001 (unknown: nothing may be undone)
        raise AmbiguousOutcomeError(
            f"storing key {key_id} failed ({describe_error(failure)}) and the store could not "
            f"say whether it holds it ({describe_error(exc)}); nothing was undone: run the "
            "same call again, or check the store and revoke the key if it is not there",
            key_id=key_id,
            original_key_id=original_key_id,
            actions=("store unknown", "nothing undone"),
        ) from safe_cause(failure)
    if location is not None:
        logger.warning("key_id=%s: the write's answer was lost, but the store holds it", key_id)
        return location
    actions = undo(failure)
    raise CompensatedError(
        f"storing key {key_id} failed ({describe_error(failure)}); " + "; ".join(actions),
        key_id=key_id,
        original_key_id=original_key_id,
        actions=actions,
    ) from safe_cause(failure)
