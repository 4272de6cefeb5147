"""``list``: the keys a store holds for an API, with their state in Unkey; never a value.

Unkey is listed (apis.listKeys, page by page as it is read, so memory stays flat) and each key
is looked up in the store by its metadata (``key_entry``: Vault custom_metadata, Secrets
Manager tags), which a writer may read; no stored value is read. A store keeps no list of its
own keys, so a key the store holds but Unkey deleted shows up only through an alias that names
it (``--alias``).

``--expiring-within DURATION`` lists only the keys that end within it and were not replaced
(the rule: :mod:`._expiry`), each with its time left, and exits 3 when it lists any: a
scheduled ``unkey-secrets list --api-id API --expiring-within 7d`` fails before a key does.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..._errors import InvalidInputError
from ..options import EXIT_FINDINGS, add_api_id, aliases_from, exit_codes
from ..output import Output, Record
from ._common import add_alias_options, iso, now_ms, open_store, open_unkey, status_of, unkey_status
from ._expiry import AliasNames, add_expiring_option, decide, expiry_fields, in_window

__all__ = ["STATUSES", "add_parser", "run"]

STATUSES = ("valid", "expired", "disabled", "deleted")


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``list`` command's parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "list",
        help="list the keys a store holds for an API and their state in Unkey (never a key)",
        description="List the keys a store holds for an API and their state in Unkey (never "
        "a key).",
        epilog=exit_codes("3 --expiring-within listed keys that end within it"),
        allow_abbrev=False,
    )
    add_api_id(parser)
    parser.add_argument(
        "--all",
        action="store_true",
        help="also list the API's keys the store does not hold (stored: false)",
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=STATUSES,
        help="only keys in this state in Unkey (repeatable)",
    )
    add_alias_options(
        parser, "the keys were stored for; its current key is listed even if Unkey deleted it"
    )
    parser.add_argument("--external-id", help="only keys of this identity (filtered by Unkey)")
    parser.add_argument(
        "--limit", type=_positive, metavar="N", help="print at most N keys, then where to go on"
    )
    parser.add_argument(
        "--after",
        metavar="KEY",
        help="start after this key_id (the summary's next_after of a --limit run)",
    )
    add_expiring_option(
        parser,
        "only valid keys whose expiry falls within DURATION from now (seconds, or 7d, 24h...), "
        "leaving out an old key a rotation replaced (its alias names another key, or its meta "
        "names the key it was rotated to); exit 3 when any is listed",
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def run(args: argparse.Namespace, out: Output) -> int:
    """List, one record per key, then a summary record.

    With ``--expiring-within``, only the keys that end within it; exit 3 when there is one.
    """
    api_id: str = args.api_id
    aliases = set(aliases_from(args.aliases, args.aliases_file))
    statuses = set(args.status or ())
    store = open_store(args)
    now = now_ms()
    count, last, truncated = 0, None, False
    skipping = args.after is not None
    listed: set[str] = set()
    within: int | None = args.expiring_within
    names = AliasNames(store, api_id)

    def emit(record: Record, meta: Any = None) -> bool:
        nonlocal count, last, truncated
        if statuses and record["status"] not in statuses:
            return True
        if within is not None:
            if record["status"] != "valid" or not in_window(record["expires"], now, within):
                return True
            verdict = decide(record["key_id"], alias=record["alias"], meta=meta, names=names)
            if not verdict.report:
                return True
            record.update(
                ok=False,
                expiring=True,
                alias_names_it=verdict.alias_names_it,
                **expiry_fields(record["expires"], now),
            )
        if args.limit is not None and count >= args.limit:
            truncated = True
            return False
        out.result(record)
        count += 1
        last = record["key_id"]
        return True

    with open_unkey() as unkey:
        for info in unkey.list_keys(
            api_id, external_id=args.external_id, revalidate_keys_cache=True
        ):
            if aliases:
                listed.add(info.key_id)
            if skipping:
                skipping = info.key_id != args.after
                continue
            entry = store.key_entry(api_id=api_id, key_id=info.key_id)
            if entry is None and not args.all:
                continue
            if aliases and (entry is None or entry.alias not in aliases):
                continue
            record = {
                "command": "list",
                "ok": True,
                "api_id": api_id,
                "key_id": info.key_id,
                "stored": entry is not None,
                "alias": entry.alias if entry is not None else None,
                "rerolled_from": entry.rerolled_from if entry is not None else None,
                "location": store.describe_location(api_id=api_id, key_id=info.key_id).location
                if entry is not None
                else None,
                "status": status_of(info, now),
                "enabled": info.enabled,
                "created": iso(info.created_at),
                "created_ms": info.created_at,
                "expires": info.expires,
                "expires_at": iso(info.expires),
                "name": info.name,
                "external_id": info.external_id,
            }
            if not emit(record, info.meta):
                break
        if skipping:
            raise InvalidInputError("--after", "names no key of this API's listing")
        if aliases and not truncated and args.external_id is None:
            # The key an alias names, which Unkey no longer lists: deleted in Unkey.
            for alias in sorted(aliases):
                state = store.alias_state(api_id=api_id, alias=alias)
                if state is None or state.key_id in listed:
                    continue
                status, found = unkey_status(unkey, state.key_id, now)
                record = {
                    "command": "list",
                    "ok": True,
                    "api_id": api_id,
                    "key_id": state.key_id,
                    "stored": True,
                    "alias": alias,
                    "rerolled_from": state.rerolled_from,
                    "location": store.describe_location(
                        api_id=api_id, key_id=state.key_id
                    ).location,
                    "status": status,
                    "enabled": found.enabled if found else None,
                    "created": iso(found.created_at) if found else None,
                    "created_ms": found.created_at if found else None,
                    "expires": found.expires if found else None,
                    "expires_at": iso(found.expires) if found else None,
                    "name": found.name if found else None,
                    "external_id": found.external_id if found else None,
                }
                if not emit(record, found.meta if found else None):
                    break
    out.result(
        {
            "command": "list",
            "ok": within is None or count == 0,
            "summary": True,
            "api_id": api_id,
            "store": store.name,
            "count": count,
            "truncated": truncated,
            "next_after": last if truncated else None,
            "expiring_within_seconds": within,
        }
    )
    return EXIT_FINDINGS if within is not None and count else 0
