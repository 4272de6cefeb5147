"""``reconcile``: what Unkey and the store disagree on, reported; ``--apply`` fixes what it may.

The deciding and the deleting are the library's (:func:`unkey_secrets.reconcile`);
this command parses, calls it and prints one record per finding as it comes, then a summary.

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
* ``unnamed``: a key the store holds, valid in Unkey, stored for an alias that does not name
  it, still carrying this store's provision marker and replaced by no key: a provision killed
  between its store write and its alias move (a fast-mode key keeps its marker). Keys younger
  than ``--min-age`` are left alone. ``--apply`` disables it in Unkey (no alias names it, so it
  must not stay valid); the stored key is not deleted.
* ``dead-alias``: an alias naming a key that is not valid in Unkey (or, given with
  ``--alias``, an alias that does not exist). Left as it is: rotate or ``provision --replace``.
* ``unconfirmed-alias``: an alias whose current version its metadata does not vouch for
  (written by another tool, or a move that died half-way); ``unowned-alias``: one unkey-secrets
  did not create. Reported; the other aliases are still checked.

Aliases checked: those given, and every alias a stored key of the API was stored for.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ... import _reconcile as _library
from ..._reconcile import ReconcileFinding, ReconcileReport
from ..options import (
    EXIT_FINDINGS,
    add_api_id,
    aliases_from,
    duration,
    exit_codes,
    format_duration,
)
from ..output import Output, Record
from ._common import add_alias_options, now_ms, open_store, open_unkey

__all__ = ["DEFAULT_MIN_AGE", "OUR_MARKERS", "add_parser", "marker_store", "run"]

#: The marker prefixes our own flows write (the library's, kept here for old imports).
OUR_MARKERS = _library.OUR_MARKERS
#: ``--min-age``'s default, in seconds.
DEFAULT_MIN_AGE = int(_library.DEFAULT_MIN_AGE.total_seconds())
#: The store kind a marker of ours names (the library's, kept here for old imports).
marker_store = _library.marker_store

#: The members each finding's record carries besides ``finding`` and ``action`` (as before
#: the logic moved into the library: ``dead-alias`` always names ``key_id`` and ``status``).
_MEMBERS: dict[str, tuple[str, ...]] = {
    "orphan": ("key_id", "status", "marker", "age_seconds"),
    "stale": ("key_id", "status", "location"),
    "unnamed": ("key_id", "alias", "status", "location", "age_seconds"),
    "dead-alias": ("alias", "key_id", "status"),
    "unconfirmed-alias": ("alias", "location"),
    "unowned-alias": ("alias", "location"),
    "unchecked-alias": ("alias",),
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``reconcile`` command's parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "reconcile",
        help="find orphaned keys in Unkey, stale store entries and aliases naming dead keys",
        epilog=exit_codes("3 findings are left (reported, or not fixed by --apply)"),
        allow_abbrev=False,
    )
    add_api_id(parser)
    add_alias_options(parser, "to check besides those the stored keys name")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="report the findings, change nothing (the default without --apply)",
    )
    mode.add_argument(
        "--apply",
        action="store_true",
        help="delete orphaned keys in Unkey and disable unnamed ones (stale store entries "
        "cannot be pruned: reported)",
    )
    parser.add_argument(
        "--min-age",
        type=duration,
        default=DEFAULT_MIN_AGE,
        metavar="DURATION",
        help="an orphan or unnamed key must be at least this old (default "
        f"{format_duration(DEFAULT_MIN_AGE)}): a younger key may be one a running provision "
        "or rotation is storing",
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

    def show(finding: ReconcileFinding) -> None:
        out.result(_record(finding, api_id))

    with open_unkey() as unkey:
        report = _library.reconcile(
            unkey,
            store,
            api_id,
            aliases=given,
            apply=args.apply,
            include_unlabelled=getattr(args, "include_unlabelled", False),
            min_age=dt.timedelta(seconds=args.min_age),
            now_ms=now,
            on_finding=show,
        )
    out.result(_summary(report))
    return EXIT_FINDINGS if report.findings_left else 0


def _record(finding: ReconcileFinding, api_id: str) -> Record:
    record: Record = {"finding": finding.kind}
    for name in _MEMBERS[finding.kind]:
        record[name] = getattr(finding, name)
    record["action"] = finding.action
    if finding.belongs_to is not None:
        record["belongs_to"] = finding.belongs_to
    record["command"] = "reconcile"
    record["api_id"] = api_id
    record["ok"] = finding.ok
    return record


def _summary(report: ReconcileReport) -> Record:
    return {
        "command": "reconcile",
        "ok": report.findings_left == 0,
        "summary": True,
        "api_id": report.api_id,
        "store": report.store,
        "applied": report.applied,
        "findings_left": report.findings_left,
        "fixed": report.fixed,
        "young_skipped": report.young_skipped,
        "other_store_skipped": report.other_store_skipped,
        "aliases_checked": report.aliases_checked,
    }
