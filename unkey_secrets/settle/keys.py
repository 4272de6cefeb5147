"""The Unkey side of settling: the cut, keys a lost answer made, and undoing a create."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .._errors import (
    AmbiguousOutcomeError,
    CompensationFailedError,
    UnkeyError,
    UnkeyNotFoundError,
)
from ..telemetry.tracing import outcome_of, record

if TYPE_CHECKING:
    from ..unkey import KeyInfo, UnkeyClient

__all__ = [
    "MARKER_META_KEY",
    "compensated",
    "compensation_failed",
    "cut_target",
    "find_marked",
    "lost_answer_settled",
    "undo_create",
]

logger = logging.getLogger("unkey_secrets.flows")

#: The ``meta`` member naming the create or rotation a key belongs to while it is in flight.
MARKER_META_KEY = "unkey_secrets_op"


def compensated(
    key_id: str | None, actions: Sequence[str], *, original_key_id: str | None = None
) -> None:
    """Report a compensation that ran: Unkey's side of a failed write undone (``actions``).

    The one place every write path reports it: a warning on ``unkey_secrets.flows`` and the
    audit event ``compensation.run``. ``key_id`` is the key undone, ``original_key_id`` the
    original put back after a reroll.
    """
    logger.warning("compensated key_id=%s actions=%s", key_id, actions)
    record(
        "compensation.run",
        "succeeded",
        key_id=key_id,
        original_key_id=original_key_id,
        actions=list(actions),
    )


def compensation_failed(
    key_id: str | None,
    actions: Sequence[str],
    error: BaseException,
    *,
    original_key_id: str | None = None,
) -> None:
    """Report a compensation that could not finish (``actions``: what it did before ``error``).

    The audit event ``compensation.run`` with outcome ``failed`` (or ``unknown`` when the
    error is a lost answer); the caller raises :class:`~unkey_secrets.CompensationFailedError`.
    """
    record(
        "compensation.run",
        outcome_of(error),
        error=error,
        key_id=key_id,
        original_key_id=original_key_id,
        actions=list(actions),
    )


def cut_target(now_ms: int, previous_expires: int | None, grace_period: dt.timedelta) -> int:
    """When a displaced key ends: ``min(previous_expires, now + grace_period)`` in Unix ms.

    ``previous_expires`` is the key's own expiry before any rotation held it (None: never);
    a cut never makes a key live longer than it would have.
    """
    cut = now_ms + int(grace_period.total_seconds() * 1000)
    return cut if previous_expires is None else min(cut, previous_expires)


def find_marked(
    unkey: UnkeyClient,
    api_id: str,
    marker: str,
    external_id: str | None,
    exclude: Iterable[str] = (),
) -> list[KeyInfo]:
    """Every key of ``api_id`` whose ``meta`` carries ``marker``, but ``exclude``.

    Pages ``apis.listKeys`` (by ``external_id`` when the keys have one) with
    ``revalidateKeysCache``, so a key made moments ago is seen. Only called after an answer
    was lost or a run died: the happy paths never list keys.
    """
    skip = set(exclude)
    return [
        info
        for info in unkey.list_keys(api_id, external_id=external_id, revalidate_keys_cache=True)
        if (info.meta or {}).get(MARKER_META_KEY) == marker and info.key_id not in skip
    ]


def lost_answer_settled(
    operation: str,
    found: Iterable[str],
    extra_actions: tuple[str, ...] = (),
    original_key_id: str | None = None,
) -> AmbiguousOutcomeError:
    """The error for a create or reroll whose answer was lost, once what it made is deleted."""
    found = list(found)
    if found:
        actions = tuple(f"deleted key {k}, made by the unanswered request" for k in found)
    else:
        actions = ("Unkey had not acted",)
    actions += extra_actions
    if found or extra_actions:
        compensated(found[0] if found else None, actions, original_key_id=original_key_id)
    return AmbiguousOutcomeError(
        f"{operation} got no clear answer; " + "; ".join(actions) + ". Nothing was stored; "
        "it is safe to try again",
        key_id=found[0] if found else None,
        original_key_id=original_key_id,
        actions=actions,
    )


def undo_create(unkey: UnkeyClient, key_id: str, cause: BaseException) -> tuple[str, ...]:
    """Delete a key Unkey made that could not be stored; returns what was done.

    A key already gone is fine. Raises :class:`~unkey_secrets.CompensationFailedError`
    (naming the key to revoke) when the delete fails.
    """
    try:
        unkey.delete_key(key_id)
    except UnkeyNotFoundError:
        pass  # gone already: what undoing wants
    except UnkeyError as exc:
        compensation_failed(key_id, (), exc)
        raise CompensationFailedError(
            f"storing key {key_id} failed ({type(cause).__name__}) and deleting it failed "
            f"({type(exc).__name__}: {exc}). Revoke key {key_id}",
            key_id=key_id,
            actions=(),
        ) from exc
    actions = (f"deleted key {key_id} in Unkey",)
    compensated(key_id, actions)
    return actions
