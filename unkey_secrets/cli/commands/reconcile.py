"""``reconcile``: what Unkey and the store disagree on, reported; ``--apply`` fixes what it may.

Findings:

* ``orphan``: a key of the API whose ``meta`` carries our in-flight marker
  (``unkey_secrets_op``, ``op_...`` from provision, ``rot_...`` from a library rotation) that
  the store does not hold: left by an answer that was lost or a run that was killed. Keys
  younger than ``--min-age`` are left alone (a run may be storing them now); keys marked by the
  rotation Lambda are its own to settle. ``--apply`` deletes orphans in Unkey.
* ``stale``: a key the store holds that Unkey deleted, or that expired or is disabled there.
  The stores have no delete, and the writer policies grant none, so ``--apply`` cannot prune
  them: each finding names the location to remove with an administrator's credential.
* ``dead-alias``: an alias naming a key that is not valid in Unkey (or, given with
  ``--alias``, an alias that does not exist). Left as it is: rotate or ``provision --replace``.

Aliases checked: those given, and every alias a stored key of the API was stored for.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..._errors import StoreAccessError, UnkeyError
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

__all__ = ["DEFAULT_MIN_AGE", "OUR_MARKERS", "add_parser", "run"]

#: The marker prefixes our own flows write (provision's ``op_``, the library rotation's ``rot_``).
OUR_MARKERS = ("op_", LIBRARY_TOKEN_PREFIX)
DEFAULT_MIN_AGE = 3600


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

    with open_unkey() as unkey:
        for info in unkey.list_keys(api_id, revalidate_keys_cache=True):
            status = status_of(info, now)
            statuses[info.key_id] = status
            marker = (info.meta or {}).get(MARKER_META_KEY)
            entry = store.key_entry(api_id=api_id, key_id=info.key_id)
            if entry is not None:
                if entry.alias is not None:
                    aliases.setdefault(entry.alias, None)
                if entry.rerolled_from is not None:
                    originals.add(entry.rerolled_from)
                if status != "valid":
                    report(_stale(store, api_id, info.key_id, status, args.apply))
                continue
            if not (isinstance(marker, str) and marker.startswith(OUR_MARKERS)):
                continue  # not made through us, or another tool's rotation in flight
            age = max(0, now - info.created_at) / 1000
            if age < args.min_age:
                young += 1
                continue
            record: Record = {
                "finding": "orphan",
                "key_id": info.key_id,
                "status": status,
                "marker": marker,
                "age_seconds": int(age),
                "action": "reported",
            }
            if args.apply:
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
