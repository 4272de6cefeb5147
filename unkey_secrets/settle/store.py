"""Store or undo: a key Unkey made is stored, or Unkey's side is undone; never guessed."""

from __future__ import annotations

import logging
from collections.abc import Callable

from .._errors import CompensatedError, CompensationFailedError
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
    * it does not, or cannot say (it is down): ``undo`` (delete the new key, put an original
      back) runs and :class:`~unkey_secrets.CompensatedError` says what it did. No alias
      names a key before it is stored, so undoing strands no reader; if an unreadable store
      did hold it, the error says so and ``reconcile`` reports the entry as stale.

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
    unsure = ""
    try:
        location = stored()
    except Exception as exc:  # noqa: BLE001 (named below; the store is down)
        location = None
        unsure = (
            f" (the store could not say whether the write landed: {describe_error(exc)}; if "
            "it did, reconcile reports the entry as stale)"
        )
    if location is not None:
        logger.warning("key_id=%s: the write's answer was lost, but the store holds it", key_id)
        return location
    actions = undo(failure)
    raise CompensatedError(
        f"storing key {key_id} failed ({describe_error(failure)}); " + "; ".join(actions) + unsure,
        key_id=key_id,
        original_key_id=original_key_id,
        actions=actions,
    ) from safe_cause(failure)
