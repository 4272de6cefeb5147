"""``rotate-due``: rotate every alias whose current key is older than ``--older-than``.

The Vault counterpart of a Secrets Manager rotation schedule: run it from a scheduler the
platform already operates (a Kubernetes CronJob: ``examples/kubernetes/``). Each alias is
rotated with :func:`~unkey_secrets.rotate` (resumable, so a run killed mid-way is finished by
the next one). A key's age comes from its ``createdAt`` in Unkey (keys.getKey; the default) or
from the stored value's ``issued_at`` (``--age-from store``, a reader's permission).

Aliases: ``--alias`` (repeatable), ``--aliases-file``, or ``--all-aliases``: every alias a key
of the API the store holds was stored for (apis.listKeys, then the store's metadata). One
alias failing does not stop the others; the exit code is 4 if any failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ..._errors import InvalidInputError, UnkeyNotFoundError, UnkeySecretsError
from ..options import (
    EXIT_PARTIAL,
    add_api_id,
    add_grace_options,
    aliases_from,
    duration,
    exit_codes,
    grace_options,
)
from ..output import Output, error_message
from ._common import add_alias_options, iso, now_ms, open_store, open_unkey

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``rotate-due`` command's parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "rotate-due",
        help="rotate every alias whose current key is older than --older-than "
        "(scheduled rotation, e.g. from a Kubernetes CronJob)",
        epilog=exit_codes("4 some aliases failed or are missing, the others were done"),
        allow_abbrev=False,
    )
    add_api_id(parser)
    parser.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="DURATION",
        help="rotate a key at least this old: seconds, or 30d, 24h, 90m...",
    )
    add_alias_options(parser, "to consider")
    parser.add_argument(
        "--all-aliases",
        action="store_true",
        help="consider every alias a stored key of the API was stored for",
    )
    parser.add_argument(
        "--age-from",
        choices=("unkey", "store"),
        default="unkey",
        help="unkey (default): the key's createdAt (keys.getKey); store: the stored value's "
        "issued_at (reads the alias: a reader's permission)",
    )
    add_grace_options(parser, "each old key")
    parser.add_argument(
        "--takeover",
        action="store_true",
        help="take over rotations whose run died on another host before their lease ends",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what is due, rotate nothing")
    return parser


def run(args: argparse.Namespace, out: Output) -> int:
    """One record per alias, then a summary; exit 4 if any alias failed."""
    from ... import flows  # the Unkey client's HTTP stack: loaded by this command only

    api_id: str = args.api_id
    # Checked for every alias at once, before the store is opened or Unkey asked anything.
    options: dict[str, Any] = {**grace_options(args), "takeover": args.takeover}
    aliases = aliases_from(args.aliases, args.aliases_file)
    if not aliases and not args.all_aliases:
        raise InvalidInputError(
            "--alias", "name the aliases to consider (--alias, --aliases-file or --all-aliases)"
        )
    store = open_store(args)
    counts = {"rotated": 0, "not-due": 0, "due": 0, "failed": 0, "missing": 0}
    with open_unkey() as unkey:
        if args.all_aliases:
            aliases = list(dict.fromkeys([*aliases, *_stored_aliases(unkey, store, api_id)]))
        for alias in aliases:
            record: dict[str, Any] = {
                "command": "rotate-due",
                "api_id": api_id,
                "alias": alias,
                "key_id": None,
                "created": None,
                "age_seconds": None,
                "outcome": None,
                "new_key_id": None,
                "error": None,
            }
            try:
                created = _created_ms(unkey, store, api_id, alias, args.age_from, record)
                if created is None:
                    record["outcome"] = "missing"
                else:
                    age = max(0, now_ms() - created) // 1000
                    record.update(created=iso(created), age_seconds=age)
                    if age < args.older_than:
                        record["outcome"] = "not-due"
                    elif args.dry_run:
                        record["outcome"] = "due"
                    else:
                        result = flows.rotate(unkey, store, api_id, alias=alias, **options)
                        record.update(
                            outcome="rotated",
                            key_id=result.original_key_id,
                            new_key_id=result.key_id,
                            original_expires_at=iso(result.original_expires),
                        )
            except UnkeySecretsError as exc:
                record.update(outcome="failed", error=error_message(exc))
            except Exception as exc:  # noqa: BLE001 (named by class only; the others go on)
                record.update(outcome="failed", error=error_message(exc))
            counts[record["outcome"]] += 1
            record["ok"] = record["outcome"] not in ("failed", "missing")
            out.result(record)
    failed = counts["failed"] + counts["missing"]
    out.result(
        {
            "command": "rotate-due",
            "ok": failed == 0,
            "summary": True,
            "api_id": api_id,
            "store": store.name,
            "older_than_seconds": args.older_than,
            "dry_run": bool(args.dry_run),
            "considered": len(aliases),
            **{name.replace("-", "_"): n for name, n in counts.items()},
        }
    )
    return EXIT_PARTIAL if failed else 0


def _created_ms(
    unkey: Any, store: Any, api_id: str, alias: str, age_from: str, record: dict[str, Any]
) -> int | None:
    """When the alias's current key was created (Unix ms); None if the alias names nothing."""
    if age_from == "store":
        from ..._errors import SecretNotFoundError

        try:
            stored = store.get_current(api_id=api_id, alias=alias)
        except SecretNotFoundError:
            record["error"] = "no such alias in the store"
            return None
        record["key_id"] = stored.key_id
        issued_at = stored.issued_at
        del stored
        if issued_at is None:
            raise InvalidInputError("issued_at", "the stored value has none: use --age-from unkey")
        try:
            moment = dt.datetime.fromisoformat(issued_at)
        except ValueError:
            raise InvalidInputError("issued_at", "the stored value's is not ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return int(moment.timestamp() * 1000)
    state = store.alias_state(api_id=api_id, alias=alias)
    if state is None:
        record["error"] = "no such alias in the store"
        return None
    record["key_id"] = state.key_id
    try:
        info = unkey.get_key(state.key_id)
    except UnkeyNotFoundError:
        record["error"] = f"the alias names key {state.key_id}, which Unkey does not have"
        return None
    created: int = info.created_at
    return created


def _stored_aliases(unkey: Any, store: Any, api_id: str) -> list[str]:
    """Every alias a key of ``api_id`` the store holds was stored for (metadata only)."""
    found: dict[str, None] = {}
    for info in unkey.list_keys(api_id, revalidate_keys_cache=True):
        entry = store.key_entry(api_id=api_id, key_id=info.key_id)
        if entry is not None and entry.alias is not None:
            found.setdefault(entry.alias, None)
    return list(found)
