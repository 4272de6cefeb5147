"""Reconcile: what Unkey and a store disagree on, found and (with ``apply``) fixed where we may.

Public as :func:`unkey_secrets.reconcile`, :class:`unkey_secrets.ReconcileReport` and
:class:`unkey_secrets.ReconcileFinding` (a private module: a public ``unkey_secrets.reconcile``
module would be shadowed by the function of the same name). :func:`reconcile` reads every key
of an API in Unkey and what the store holds of each, then decides. Its findings:

* ``orphan``: a key whose ``meta`` carries our in-flight marker (``unkey_secrets_op``:
  ``op_<store>_...`` from provision, ``rot_<store>_...`` from a library rotation) that the
  store does not hold: left by an answer that was lost or a run that was killed. Keys younger
  than ``min_age`` are skipped (a run may be storing them now); keys marked by the rotation
  Lambda are its own to settle. With ``apply``, an orphan is deleted in Unkey only if its
  marker names this store's kind: one whose marker names another store is that store's (a
  fast-mode key keeps its marker) and is left alone; a marker of the older form that names no
  store (``op_<hex>``, ``rot_<hex>``) is deleted only with ``include_unlabelled``.
* ``stale``: a key the store holds that Unkey deleted, or that expired or is disabled there.
  Stores have no delete (and the writer policies grant none): reported with its location.
* ``unnamed``: a key the store holds, valid in Unkey, stored for an alias that does not name
  it (nor does any other alias checked), still carrying this store's provision marker
  (``op_<store>_...``) and replaced by no key (no stored entry's ``rerolled_from`` names it,
  its meta has no ``unkey_secrets_rotated_to``): a provision killed (or failed) between its
  store write and its alias move left it valid and named by nothing. Keys younger than
  ``min_age`` are skipped (a run may be moving the alias now); one whose alias could not be
  read is not decided. With ``apply`` it is disabled in Unkey (never deleted: the store holds
  it); the alias is read again afterwards and, should a run have pointed it at the key
  meanwhile, the key is enabled again and the finding says so (a failed re-read leaves the
  finding open: check the alias).
* ``dead-alias``: an alias naming a key that is not valid in Unkey (or, when asked for by
  name, an alias that does not exist).
* ``unconfirmed-alias`` (its current version is not vouched for by its metadata),
  ``unowned-alias`` (not created by unkey-secrets), ``unchecked-alias`` (the store refused the
  read): reported; the other aliases are still checked.

Aliases checked: those asked for, and every alias a stored key of the API was stored for. No
finding holds a key's plaintext: only ids, locations, states and our markers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal

from ._errors import (
    ConfigurationError,
    NotOwnedError,
    StoreAccessError,
    StoreConflictError,
    StoreError,
    UnkeyError,
    UnkeyNotFoundError,
)
from ._validate import validate_alias, validate_api_id
from .rotation.core import LIBRARY_TOKEN_PREFIX, MARKER_META_KEY, ROTATED_TO_META_KEY

if TYPE_CHECKING:
    from ._models import AliasState
    from .stores.base import SecretStore
    from .unkey import KeyInfo, UnkeyClient

__all__ = [
    "DEFAULT_MIN_AGE",
    "OUR_MARKERS",
    "FindingKind",
    "KeyStatus",
    "ReconcileFinding",
    "ReconcileReport",
    "key_status",
    "lookup_status",
    "marker_store",
    "reconcile",
]

#: A key's state in Unkey, as reconcile (and the CLI's list and verify) report it.
KeyStatus = Literal["valid", "expired", "disabled", "deleted"]
#: What a :class:`ReconcileFinding` is about (see the module's docstring).
FindingKind = Literal[
    "orphan",
    "stale",
    "unnamed",
    "dead-alias",
    "unconfirmed-alias",
    "unowned-alias",
    "unchecked-alias",
]

#: The marker prefixes our own flows write (provision's ``op_``, the library rotation's ``rot_``).
OUR_MARKERS = ("op_", LIBRARY_TOKEN_PREFIX)
#: How old an orphan (or unnamed key) must be before it is reported: a younger one may be a
#: running flow's.
DEFAULT_MIN_AGE = dt.timedelta(hours=1)

#: ``op_<store>_<24 hex>`` / ``rot_<store>_<24 hex>``; the older form has no ``<store>_``.
_MARKER = re.compile(r"(?:op|rot)_(?:(?P<store>.+)_)?[0-9a-f]{24}")


def marker_store(marker: str) -> str | None:
    """The store kind a marker of ours names; None for the older form (or one not parsed)."""
    found = _MARKER.fullmatch(marker)
    return found["store"] if found else None


def key_status(info: KeyInfo | None, now: int) -> KeyStatus:
    """A key's state from what Unkey said of it (None: Unkey does not have it); ``now`` in ms."""
    if info is None:
        return "deleted"
    if not info.enabled:
        return "disabled"
    if info.expires is not None and info.expires <= now:
        return "expired"
    return "valid"


def lookup_status(unkey: UnkeyClient, key_id: str, now: int) -> tuple[KeyStatus, KeyInfo | None]:
    """Ask Unkey for one key (keys.getKey; ``now`` in Unix ms); a 404 is a deleted key.

    Raises what :meth:`~unkey_secrets.UnkeyClient.get_key` raises for anything but a 404.
    """
    try:
        info = unkey.get_key(key_id)
    except UnkeyNotFoundError:
        return "deleted", None
    return key_status(info, now), info


@dataclasses.dataclass(frozen=True)
class ReconcileFinding:
    """One thing Unkey and the store disagree on, and what was done about it.

    ``action`` says it in words (``"deleted in Unkey"``, ``"reported: ..."``). ``resolved``:
    fixed by this run. ``belongs_to``: an orphan whose marker names another store, left alone
    (nothing to do here, so it is :attr:`ok` without being fixed). ``age_seconds``: an
    orphan's or unnamed key's age in whole seconds. The other members are set where the kind
    has them.
    """

    kind: FindingKind
    action: str
    key_id: str | None = None
    alias: str | None = None
    status: KeyStatus | None = None
    location: str | None = None
    marker: str | None = None
    age_seconds: int | None = None
    belongs_to: str | None = None
    resolved: bool = False

    @property
    def ok(self) -> bool:
        """Nothing is left to do about it here: fixed, or another store's to settle."""
        return self.resolved or self.belongs_to is not None


@dataclasses.dataclass(frozen=True)
class ReconcileReport:
    """What :func:`reconcile` found and did; holds ids, locations and states, never a key.

    ``findings`` are in the order they were decided. ``young_skipped`` counts orphans and
    unnamed keys younger than ``min_age``, ``other_store_skipped`` orphans another store's
    marker names,
    ``aliases_checked`` the aliases looked at.
    """

    api_id: str
    store: str
    applied: bool
    findings: tuple[ReconcileFinding, ...]
    young_skipped: int
    other_store_skipped: int
    aliases_checked: int

    @property
    def findings_left(self) -> int:
        """Findings not fixed and ours to fix: the run found problems if this is not 0."""
        return sum(not finding.ok for finding in self.findings)

    @property
    def fixed(self) -> int:
        """Findings this run fixed (orphans deleted, unnamed keys disabled in Unkey)."""
        return sum(finding.resolved for finding in self.findings)


def reconcile(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    *,
    aliases: Iterable[str] = (),
    apply: bool = False,
    include_unlabelled: bool = False,
    min_age: dt.timedelta = DEFAULT_MIN_AGE,
    now_ms: int | None = None,
    on_finding: Callable[[ReconcileFinding], None] | None = None,
) -> ReconcileReport:
    """Find what Unkey and ``store`` disagree on for ``api_id``; with ``apply``, fix what we may.

    Lists every key of the API (``apis.listKeys``, cache revalidated) and reads the store's
    entry of each before deciding anything. ``aliases`` are checked besides every alias a
    stored key names (each alias is read once; ``unnamed`` is decided from those reads, so it
    costs no further call). With ``apply``, orphans whose marker names ``store``'s kind (and,
    with ``include_unlabelled``, those whose marker names no store) are deleted in Unkey, and
    unnamed keys are disabled there (updateKey ``enabled=False``, then the alias is read again:
    a key a run pointed it at meanwhile is enabled again); nothing else is changed anywhere.
    ``min_age``: how old an orphan or unnamed key must be to be acted on or reported.
    ``now_ms``: the time in Unix ms (default: the system clock). ``on_finding`` is called with
    each finding as it is decided (the CLI prints them as they come).

    Raises :class:`~unkey_secrets.ConfigurationError`, before any delete, when ``apply`` is
    asked and Unkey lists keys of the API of which ``store`` holds none (most likely the wrong
    store); :class:`~unkey_secrets.UnkeyError` and :class:`~unkey_secrets.StoreError` from
    the reads. A failed delete or disable is reported in its finding's ``action``, not raised.
    """
    # Every caller-given name is checked before the first request.
    validate_api_id(api_id)
    aliases = [validate_alias(alias) for alias in aliases]
    now = int(time.time() * 1000) if now_ms is None else now_ms
    findings: list[ReconcileFinding] = []

    def found(finding: ReconcileFinding) -> None:
        findings.append(finding)
        if on_finding is not None:
            on_finding(finding)

    checked: dict[str, None] = dict.fromkeys(aliases)
    asked = set(checked)
    statuses: dict[str, KeyStatus] = {}
    originals: set[str] = set()
    young = other_store = 0
    # Read everything first: apply is refused before any delete if the store looks wrong.
    listed = [
        (info, store.key_entry(api_id=api_id, key_id=info.key_id))
        for info in unkey.list_keys(api_id, revalidate_keys_cache=True)
    ]
    held = sum(entry is not None for _, entry in listed)
    orphans: list[tuple[KeyInfo, str, str | None]] = []
    # Stored, valid, stored for an alias and still carrying this store's provision marker:
    # unnamed if that alias turns out not to name it (decided once the aliases are read).
    maybe_unnamed: list[tuple[KeyInfo, str, str]] = []
    own_marker = f"op_{store.name}_"
    for info, entry in listed:
        statuses[info.key_id] = key_status(info, now)
        meta = info.meta or {}
        marker = meta.get(MARKER_META_KEY)
        if entry is not None:
            if entry.alias is not None:
                checked.setdefault(entry.alias, None)
                if (
                    statuses[info.key_id] == "valid"
                    and isinstance(marker, str)
                    and marker.startswith(own_marker)
                    and meta.get(ROTATED_TO_META_KEY) is None
                ):
                    maybe_unnamed.append((info, entry.alias, marker))
            if entry.rerolled_from is not None:
                originals.add(entry.rerolled_from)
            continue
        if not (isinstance(marker, str) and marker.startswith(OUR_MARKERS)):
            continue  # not made through us, or another tool's rotation in flight
        if max(0, now - info.created_at) / 1000 < min_age.total_seconds():
            young += 1
            continue
        orphans.append((info, marker, marker_store(marker)))
    if apply and listed and not held:
        raise ConfigurationError(
            f"refusing --apply: the {store.name} store holds none of API {api_id}'s "
            f"{len(listed)} key(s), so it is most likely the wrong store (or the wrong "
            "settings for it), and the keys it would take for orphans may be live keys "
            "another store holds; check --store and its settings, and run without --apply "
            "to see the findings"
        )
    for info, entry in listed:
        if entry is not None and statuses[info.key_id] != "valid":
            found(_stale(store, api_id, info.key_id, statuses[info.key_id], apply))
    for info, marker, kind in orphans:
        if kind is not None and kind != store.name:
            other_store += 1
        found(
            _orphan(
                unkey, store, info, marker, kind, now, apply=apply, unlabelled=include_unlabelled
            )
        )
    # Originals of stored keys that Unkey no longer lists, still held by the store.
    for key_id in sorted(originals - statuses.keys()):
        if store.key_entry(api_id=api_id, key_id=key_id) is not None:
            status, _ = lookup_status(unkey, key_id, now)
            statuses[key_id] = status
            if status != "valid":
                found(_stale(store, api_id, key_id, status, apply))
    # What each alias names (an alias that could not be read is missing: undecided).
    names: dict[str, str | None] = {}
    for alias in checked:
        for finding in _alias_findings(
            unkey, store, api_id, alias, statuses, now, names, asked=alias in asked, apply=apply
        ):
            found(finding)
    named = set(names.values())
    for info, alias, marker in maybe_unnamed:
        if info.key_id in originals or info.key_id in named or alias not in names:
            continue  # replaced by a stored key, named by an alias, or its alias unread
        if max(0, now - info.created_at) / 1000 < min_age.total_seconds():
            young += 1  # a live provision may be between its store write and its alias move
            continue
        found(_unnamed(unkey, store, api_id, info, alias, marker, now, apply=apply))
    return ReconcileReport(
        api_id=api_id,
        store=store.name,
        applied=apply,
        findings=tuple(findings),
        young_skipped=young,
        other_store_skipped=other_store,
        aliases_checked=len(checked),
    )


def _orphan(
    unkey: UnkeyClient,
    store: SecretStore,
    info: KeyInfo,
    marker: str,
    kind: str | None,
    now: int,
    *,
    apply: bool,
    unlabelled: bool,
) -> ReconcileFinding:
    """Decide about one orphan, and delete it in Unkey when ``apply`` allows."""
    finding = ReconcileFinding(
        kind="orphan",
        key_id=info.key_id,
        status=key_status(info, now),
        marker=marker,
        age_seconds=int(max(0, now - info.created_at) / 1000),
        action="reported",
    )
    if kind is not None and kind != store.name:
        # Another store's key (a fast-mode key keeps its marker): never ours to delete.
        return dataclasses.replace(
            finding,
            belongs_to=kind,
            action=f"left alone: belongs to store {kind} (its marker names it); "
            f"check it with reconcile --store {kind}",
        )
    if kind is None:
        finding = dataclasses.replace(
            finding,
            action="reported: its marker names no store (made before markers named one), so "
            "it may be another store's live key"
            + ("" if unlabelled else "; --include-unlabelled deletes it"),
        )
    if apply and (kind == store.name or unlabelled):
        try:
            unkey.delete_key(info.key_id)
        except UnkeyError as exc:
            return dataclasses.replace(
                finding, action=f"delete failed ({type(exc).__name__}: {exc})"
            )
        return dataclasses.replace(finding, action="deleted in Unkey", resolved=True)
    return finding


def _unnamed(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    info: KeyInfo,
    alias: str,
    marker: str,
    now: int,
    *,
    apply: bool,
) -> ReconcileFinding:
    """Report one unnamed key, and disable it in Unkey when ``apply`` (never delete it)."""
    finding = ReconcileFinding(
        kind="unnamed",
        key_id=info.key_id,
        alias=alias,
        status=key_status(info, now),
        location=store.describe_location(api_id=api_id, key_id=info.key_id).location,
        marker=marker,
        age_seconds=int(max(0, now - info.created_at) / 1000),
        action=f"reported: stored for alias {alias}, which does not name it; --apply disables "
        "it in Unkey",
    )
    if not apply:
        return finding
    try:
        unkey.update_key(info.key_id, enabled=False)
    except UnkeyError as exc:
        return dataclasses.replace(finding, action=f"disable failed ({type(exc).__name__}: {exc})")
    # A run finishing this key (bulk adopts a key stored for its alias that no alias names) may
    # have pointed the alias at it since it was read: read it again, and undo if so.
    try:
        state: AliasState | None = store.alias_state(api_id=api_id, alias=alias)
    except StoreError as exc:
        return dataclasses.replace(
            finding,
            action=f"disabled in Unkey; reading alias {alias} again failed "
            f"({type(exc).__name__}): check that it does not name the key (if it does, "
            "enable the key again)",
        )
    if state is None or state.key_id != info.key_id:
        return dataclasses.replace(finding, action="disabled in Unkey", resolved=True)
    try:
        unkey.update_key(info.key_id, enabled=True)
    except UnkeyError as exc:
        return dataclasses.replace(
            finding,
            action=f"alias {alias} was pointed at it meanwhile, but enabling it again failed "
            f"({type(exc).__name__}: {exc}): enable it now",
        )
    return dataclasses.replace(
        finding,
        action=f"left enabled: alias {alias} was pointed at it meanwhile (a run finished it)",
        resolved=True,
    )


def _stale(
    store: SecretStore, api_id: str, key_id: str, status: KeyStatus, apply: bool
) -> ReconcileFinding:
    location = store.describe_location(api_id=api_id, key_id=key_id).location
    action = "reported"
    if apply:
        action = (
            f"not pruned: the {store.name} store has no delete and the writer policy grants "
            f"none; remove {location} with an administrator's credential"
        )
    return ReconcileFinding(
        kind="stale", key_id=key_id, status=status, location=location, action=action
    )


def _alias_findings(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    alias: str,
    statuses: dict[str, KeyStatus],
    now: int,
    names: dict[str, str | None],
    *,
    asked: bool,
    apply: bool,
) -> list[ReconcileFinding]:
    """The findings about one alias (``asked``: named by the caller).

    Fills ``statuses``, and ``names`` with the key the alias names (None: no such alias) when
    the alias could be read.
    """
    try:
        state = store.alias_state(api_id=api_id, alias=alias)
    except StoreConflictError as exc:
        return [
            ReconcileFinding(
                kind="unconfirmed-alias",
                alias=alias,
                location=exc.location,
                action=f"reported: {exc}",
            )
        ]
    except NotOwnedError as exc:
        return [
            ReconcileFinding(
                kind="unowned-alias", alias=alias, location=exc.location, action=f"reported: {exc}"
            )
        ]
    except StoreAccessError as exc:
        return [
            ReconcileFinding(
                kind="unchecked-alias",
                alias=alias,
                action=f"could not read the alias ({exc}); the rotator or reader "
                "policy grants that read",
            )
        ]
    names[alias] = None if state is None else state.key_id
    if state is None:
        if asked:
            return [
                ReconcileFinding(kind="dead-alias", alias=alias, action="reported: no such alias")
            ]
        return []
    findings = []
    status = statuses.get(state.key_id) or lookup_status(unkey, state.key_id, now)[0]
    if state.key_id not in statuses and status != "valid":
        if store.key_entry(api_id=api_id, key_id=state.key_id) is not None:
            findings.append(_stale(store, api_id, state.key_id, status, apply))
        statuses[state.key_id] = status
    if status != "valid":
        findings.append(
            ReconcileFinding(
                kind="dead-alias",
                alias=alias,
                key_id=state.key_id,
                status=status,
                action=f"reported: point it at a live key (provision --replace --alias {alias})",
            )
        )
    return findings
