"""Expiry ahead of time: which keys end soon without a rotation (list, verify and doctor).

A key is **expiring** when it is valid in Unkey (enabled, its ``expires`` not passed) and its
``expires`` falls within the window: ``now < expires <= now + within``. Not every such key is
a problem: a rotation (``rotate``, ``provision --replace``, the rotation Lambda) keeps the old
key valid for its grace period by setting its ``expires``, and that key is expected to end.
So an expiring key is **reported** unless it was replaced, decided from the data at hand:

1. A key stored for an alias (its store entry names one, or ``list --alias`` found it as that
   alias's key): the alias is read (``alias_state``: metadata where the store has it, once per
   alias per run). If it names the key, the key is current: reported, whatever its meta says
   (a rotation that died before it moved the alias, or an alias pointed back). If it names
   another key, or no longer exists, the key was replaced: not reported.
2. A key with no alias, or whose alias could not be read (the store refused the read, or the
   alias is not vouched for): reported unless its Unkey ``meta`` carries
   ``unkey_secrets_rotated_to`` (:data:`~unkey_secrets.rotation.core.ROTATED_TO_META_KEY`),
   which ``rotate`` and ``provision --replace`` set on the key they cut.

Nothing here reads a stored value: only Unkey's view of a key and the store's metadata.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..._errors import StoreError
from ...rotation.core import ROTATED_TO_META_KEY
from ..options import duration, format_duration
from ._common import iso

if TYPE_CHECKING:
    from ...stores import SecretStore

__all__ = [
    "DEFAULT_EXPIRING_WITHIN",
    "AliasNames",
    "Expiring",
    "add_expiring_option",
    "decide",
    "expiry_fields",
    "in_window",
    "replace_advice",
]

#: ``doctor``'s default window (seconds): 7 days.
DEFAULT_EXPIRING_WITHIN = 7 * 86400


def add_expiring_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--expiring-within DURATION`` (seconds, or 7d, 24h, 90m...), parsed to whole seconds."""
    parser.add_argument(
        "--expiring-within", type=duration, metavar="DURATION", default=None, help=help_text
    )


def in_window(expires: int | None, now_ms: int, within_seconds: int) -> bool:
    """Whether ``expires`` (Unix ms; None: never) is after ``now_ms`` and within the window."""
    return expires is not None and now_ms < expires <= now_ms + within_seconds * 1000


def expiry_fields(expires: int | None, now_ms: int) -> dict[str, Any]:
    """A record's expiry members, all None for a key that never expires.

    ``expires`` (Unix ms), ``expires_at`` (RFC 3339, UTC), ``expires_in_seconds`` (whole
    seconds left, 0 once passed) and ``expires_in`` (the same as ``3d4h``).
    """
    if expires is None:
        return {"expires": None, "expires_at": None, "expires_in_seconds": None, "expires_in": None}
    left = max(0, expires - now_ms) // 1000
    return {
        "expires": expires,
        "expires_at": iso(expires),
        "expires_in_seconds": left,
        "expires_in": format_duration(left),
    }


class AliasNames:
    """Which key each alias of one API names, each alias read at most once.

    :meth:`get` answers the key_id, None when the alias does not exist, or :data:`UNREAD`
    when the store could not say (refused, unreachable, an alias not vouched for).
    """

    UNREAD = "?"

    def __init__(self, store: SecretStore, api_id: str) -> None:
        self._store = store
        self._api_id = api_id
        self._names: dict[str, str | None] = {}

    def get(self, alias: str) -> str | None:
        """The key_id ``alias`` names, None (no such alias) or :data:`UNREAD`."""
        if alias not in self._names:
            try:
                state = self._store.alias_state(api_id=self._api_id, alias=alias)
            except StoreError:
                # Undecided, not fatal: the key falls back to its Unkey meta (rule 2).
                self._names[alias] = self.UNREAD
            else:
                self._names[alias] = None if state is None else state.key_id
        return self._names[alias]


@dataclasses.dataclass(frozen=True)
class Expiring:
    """The verdict on one expiring key: whether to ``report`` it, and why.

    ``alias_names_it``: True when the alias read names it, False when it names another key (or
    none), None when there is no alias or it could not be read.
    """

    report: bool
    alias_names_it: bool | None
    #: Why a key is not reported (the key that replaced it, as far as known).
    replaced_by: str | None = None


def decide(
    key_id: str, *, alias: str | None, meta: Mapping[str, Any] | None, names: AliasNames
) -> Expiring:
    """Whether the expiring key ``key_id`` (stored for ``alias``, Unkey ``meta``) is reported."""
    if alias is not None:
        named = names.get(alias)
        if named == key_id:
            return Expiring(report=True, alias_names_it=True)
        if named != AliasNames.UNREAD:
            return Expiring(report=False, alias_names_it=False, replaced_by=named)
    rotated_to = (meta or {}).get(ROTATED_TO_META_KEY)
    if isinstance(rotated_to, str):
        return Expiring(report=False, alias_names_it=None, replaced_by=rotated_to)
    return Expiring(report=True, alias_names_it=None)


def replace_advice(api_id: str, alias: str | None) -> str:
    """What to run for a key that ends soon: a new key behind the alias, not a rotation.

    A rotation (rerollKey) gives the new key the old one's expiry, so only a new key helps.
    """
    if alias is None:
        return (
            "provision a new key before then and move its readers to it (a rotation keeps a "
            "key's expiry)"
        )
    return (
        f"replace it before then (unkey-secrets provision --api-id {api_id} --alias {alias} "
        "--replace: a new key, with no expiry unless --expires; a rotation keeps a key's expiry)"
    )
