"""``reconcile``: what Unkey and the store disagree on, reported; ``--apply`` fixes what it may.

Findings:

* ``orphan``: a key of the API whose ``meta`` carries our in-flight marker
  (``unkey_secrets_op``: ``op_<store>_...`` from provision, ``rot_<store>_...`` from a library
  rotation) that the store does not hold: left by an answer that was lost or a run that was
  killed. Keys younger than ``--min-age`` are left alone (a run may be storing them now); keys
  marked by the rotation Lambda are its own to settle. ``--apply`` deletes an orphan in Unkey
  only if its marker names this store's kind: a key whose marker names another store is that
  store's (a fast-mode key keeps its marker) and is left alone, reported as such; a marker of
  the older form that names no store (``op_<hex>``, ``rot_<hex>``) is reported and deleted only
  with ``--include-unlabelled``. ``--apply`` is refused (exit 2) when Unkey lists keys of the
  API and the store holds none of them: it is most likely the wrong store.
* ``stale``: a key the store holds that Unkey deleted, or that expired or is disabled there.
  The stores have no delete, and the writer policies grant none, so ``--apply`` cannot prune
  them: each finding names the location to remove with an administrator's credential.
* ``dead-alias``: an alias naming a key that is not valid in Unkey (or, given with
  ``--alias``, an alias that does not exist). Left as it is: rotate or ``provision --replace``.
* ``unconfirmed-alias``: an alias whose current version its metadata does not vouch for
  (written by another tool, or a move that died half-way); ``unowned-alias``: one unkey-secrets
  did not create. Reported; the other aliases are still checked.

Aliases checked: those given, and every alias a stored key of the API was stored for.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..._errors import (
    ConfigurationError,
    NotOwnedError,
    StoreAccessError,
    StoreConflictError,
    UnkeyError,
)
from ...rotation.core import LIBRARY_TOKEN_PREFIX, MARKER_META_KEY
from ..options import EXIT_FINDINGS, aliases_from, duration, format_duration
from ..output import Output, Record
from ._common import (
    Status,
    add_alias_options,
    now_ms,
    open_store,
    open_unkey,
    status_of,
    unkey_status,
)

__all__ = ["DEFAULT_MIN_AGE", "OUR_MARKERS", "add_parser", "marker_store", "run"]

#: The marker prefixes our own flows write (provision's ``op_``, the library rotation's ``rot_``).
OUR_MARKERS = ("op_", LIBRARY_TOKEN_PREFIX)
DEFAULT_MIN_AGE = 3600

#: ``op_<store>_<24 hex>`` / ``rot_<store>_<24 hex>``; the older form has no ``<store>_``.
_MARKER = re.compile(r"(?:op|rot)_(?:(?P<store>.+)_)?[0-9a-f]{24}")


def marker_store(marker: str) -> str | None:
    """The store kind a marker of ours names; None for the older form (or one not parsed)."""
    found = _MARKER.fullmatch(marker)
    return found["store"] if found else None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``reconcile`` command's parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "reconcile",
        help="find orphaned keys in Unkey, stale store entries and aliases naming dead keys",
        allow_abbrev=False,
    )
    parser.add_argument("--api-id", required=True, help="the Unkey API (keyspace)")
    add_alias_options(parser, "to check besides those the stored keys name")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="delete orphaned keys in Unkey (stale store entries cannot be pruned: reported)",
    )
    parser.add_argument(
        "--min-age",
        type=duration,
        default=DEFAULT_MIN_AGE,
        metavar="DURATION",
        help=f"an orphan must be at least this old (default {format_duration(DEFAULT_MIN_AGE)})"
        ": a younger key may be one a running provision or rotation is storing",
    )
    parser.add_argument(
        "--include-unlabelled",
        action="store_true",
        help="with --apply, also delete orphans whose marker names no store (the older "
        "op_<hex> / rot_<hex> form): only if this API's keys were all made for this store",
    )
    return parser


def run(args: argparse.Namespace, out: Output) -> int:
    """One record per finding, then a summary; exit 3 if any finding is left."""
    api_id: str = args.api_id
    given = aliases_from(args.aliases, args.aliases_file)
    store = open_store(args)
    now = now_ms()
    left = fixed = young = 0
    statuses: dict[str, Status] = {}
    aliases: dict[str, None] = dict.fromkeys(given)
    originals: set[str] = set()

    def report(record: Record, resolved: bool = False) -> None:
        nonlocal left, fixed
        record.setdefault("command", "reconcile")
        record.setdefault("api_id", api_id)
        record["ok"] = resolved
        out.result(record)
        if resolved:
            fixed += 1
        else:
            left += 1

    include_unlabelled: bool = getattr(args, "include_unlabelled", False)
    other_store = 0
    with open_unkey() as unkey:
        # Read everything first: --apply is refused before any delete if the store looks wrong.
        listed = [
            (info, store.key_entry(api_id=api_id, key_id=info.key_id))
            for info in unkey.list_keys(api_id, revalidate_keys_cache=True)
        ]
        held = sum(entry is not None for _, entry in listed)
        orphans: list[tuple[Any, str, str | None]] = []
        for info, entry in listed:
            status = status_of(info, now)
            statuses[info.key_id] = status
            marker = (info.meta or {}).get(MARKER_META_KEY)
            if entry is not None:
                if entry.alias is not None:
                    aliases.setdefault(entry.alias, None)
                if entry.rerolled_from is not None:
                    originals.add(entry.rerolled_from)
                continue
            if not (isinstance(marker, str) and marker.startswith(OUR_MARKERS)):
                continue  # not made through us, or another tool's rotation in flight
            if max(0, now - info.created_at) / 1000 < args.min_age:
                young += 1
                continue
            orphans.append((info, marker, marker_store(marker)))
        deletable = {
            info.key_id
            for info, _, kind in orphans
            if kind == store.name or (kind is None and include_unlabelled)
        }
        if args.apply and listed and not held:
            raise ConfigurationError(
                f"refusing --apply: the {store.name} store holds none of API {api_id}'s "
                f"{len(listed)} key(s), so it is most likely the wrong store (or the wrong "
                "settings for it), and the keys it would take for orphans may be live keys "
                "another store holds; check --store and its settings, and run without --apply "
                "to see the findings"
            )
        for info, entry in listed:
            if entry is not None and statuses[info.key_id] != "valid":
                report(_stale(store, api_id, info.key_id, statuses[info.key_id], args.apply))
        for info, marker, kind in orphans:
            record: Record = {
                "finding": "orphan",
                "key_id": info.key_id,
                "status": statuses[info.key_id],
                "marker": marker,
                "age_seconds": int(max(0, now - info.created_at) / 1000),
                "action": "reported",
            }
            if kind is not None and kind != store.name:
                # Another store's key (a fast-mode key keeps its marker): never ours to delete.
                other_store += 1
                record["belongs_to"] = kind
                record["ok"] = True
                record["action"] = (
                    f"left alone: belongs to store {kind} (its marker names it); "
                    f"check it with reconcile --store {kind}"
                )
                record.setdefault("command", "reconcile")
                record.setdefault("api_id", api_id)
                out.result(record)
                continue
            if kind is None:
                record["action"] = (
                    "reported: its marker names no store (made before markers named one), so "
                    "it may be another store's live key"
                    + ("" if include_unlabelled else "; --include-unlabelled deletes it")
                )
            if args.apply and info.key_id in deletable:
                try:
                    unkey.delete_key(info.key_id)
                except UnkeyError as exc:
                    record["action"] = f"delete failed ({type(exc).__name__}: {exc})"
                else:
                    record["action"] = "deleted in Unkey"
                    report(record, resolved=True)
                    continue
            report(record)
        # Originals of stored keys that Unkey no longer lists, still held by the store.
        for key_id in sorted(originals - statuses.keys()):
            if store.key_entry(api_id=api_id, key_id=key_id) is not None:
                status, _ = unkey_status(unkey, key_id, now)
                statuses[key_id] = status
                if status != "valid":
                    report(_stale(store, api_id, key_id, status, args.apply))
        for alias in aliases:
            try:
                state = store.alias_state(api_id=api_id, alias=alias)
            except StoreConflictError as exc:
                report(
                    {
                        "finding": "unconfirmed-alias",
                        "alias": alias,
                        "location": exc.location,
                        "action": f"reported: {exc}",
                    }
                )
                continue
            except NotOwnedError as exc:
                report(
                    {
                        "finding": "unowned-alias",
                        "alias": alias,
                        "location": exc.location,
                        "action": f"reported: {exc}",
                    }
                )
                continue
            except StoreAccessError as exc:
                report(
                    {
                        "finding": "unchecked-alias",
                        "alias": alias,
                        "action": f"could not read the alias ({exc}); the rotator or reader "
                        "policy grants that read",
                    }
                )
                continue
            if state is None:
                if alias in given:
                    report(
                        {
                            "finding": "dead-alias",
                            "alias": alias,
                            "key_id": None,
                            "status": None,
                            "action": "reported: no such alias",
                        }
                    )
                continue
            status = statuses.get(state.key_id) or unkey_status(unkey, state.key_id, now)[0]
            if state.key_id not in statuses and status != "valid":
                if store.key_entry(api_id=api_id, key_id=state.key_id) is not None:
                    report(_stale(store, api_id, state.key_id, status, args.apply))
                statuses[state.key_id] = status
            if status != "valid":
                report(
                    {
                        "finding": "dead-alias",
                        "alias": alias,
                        "key_id": state.key_id,
                        "status": status,
                        "action": "reported: point it at a live key (provision --replace "
                        f"--alias {alias})",
                    }
                )
    out.result(
        {
            "command": "reconcile",
            "ok": left == 0,
            "summary": True,
            "api_id": api_id,
            "store": store.name,
            "applied": bool(args.apply),
            "findings_left": left,
            "fixed": fixed,
            "young_skipped": young,
            "other_store_skipped": other_store,
            "aliases_checked": len(aliases),
        }
    )
    return EXIT_FINDINGS if left else 0


def _stale(store: Any, api_id: str, key_id: str, status: Status, apply: bool) -> Record:
    location = store.key_location(api_id=api_id, key_id=key_id)
    action = "reported"
    if apply:
        action = (
            f"not pruned: the {store.name} store has no delete and the writer policy grants "
            f"none; remove {location} with an administrator's credential"
        )
    return {
        "finding": "stale",
        "key_id": key_id,
        "status": status,
        "location": location,
        "action": action,
    }
