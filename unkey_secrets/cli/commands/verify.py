"""``verify``: check that each stored key still verifies in Unkey, as its stored key_id.

Each key is read from the store (``get_current`` for an alias, ``get`` for a key_id: a
reader's permission) and sent to keys.verifyKey with a credit cost of 0, so no credits are
spent (rate limits a key applies on its own are still charged, and Unkey records the use).
The plaintext is confined while it is held: nothing printed or logged can carry it.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..._errors import (
    DeletedVersionError,
    InvalidInputError,
    SecretNotFoundError,
    StoredValueError,
)
from ..._redact import confined
from ..._validate import validate_key_id
from ...rotation.core import confirm_key_id
from ..options import EXIT_FINDINGS, aliases_from
from ..output import Output
from ._common import add_alias_options, open_store, open_unkey

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``verify`` command's parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check that stored keys still verify in Unkey, as their key_id (never prints one)",
        allow_abbrev=False,
    )
    parser.add_argument("--api-id", required=True, help="the Unkey API (keyspace)")
    add_alias_options(parser, "whose current key to verify")
    parser.add_argument(
        "--key-id",
        action="append",
        dest="key_ids",
        metavar="KEY",
        help="a stored key to verify, by its keyId (repeatable)",
    )
    return parser


def run(args: argparse.Namespace, out: Output) -> int:
    """One record per key, then a summary; exit 3 if any key does not verify."""
    api_id: str = args.api_id
    aliases = aliases_from(args.aliases, args.aliases_file)
    key_ids = list(dict.fromkeys(validate_key_id(k, "--key-id") for k in args.key_ids or ()))
    if not aliases and not key_ids:
        raise InvalidInputError("--alias", "name at least one alias or --key-id to verify")
    store = open_store(args)
    targets = [("alias", name) for name in aliases] + [("key_id", k) for k in key_ids]
    problems = 0
    with open_unkey() as unkey:
        for key_id in key_ids:
            # An id the shape cannot tell from a key is Unkey's to confirm before the store
            # is asked for it (the read would put it in a request path).
            confirm_key_id(unkey, key_id, "--key-id")
        for kind, name in targets:
            record: dict[str, Any] = {
                "command": "verify",
                "api_id": api_id,
                "alias": name if kind == "alias" else None,
                "key_id": name if kind == "key_id" else None,
                "verified_key_id": None,
                "valid": False,
                "code": None,
                "problem": None,
            }
            try:
                if kind == "alias":
                    stored = store.get_current(api_id=api_id, alias=name)
                else:
                    stored = store.get(api_id=api_id, key_id=name)
            except SecretNotFoundError:
                record["problem"] = "not stored"
            except DeletedVersionError as exc:
                # That alias's problem (its message names the fix), not the run's end.
                record["problem"] = str(exc)
            except StoredValueError as exc:
                record["problem"] = f"stored value unusable: {exc}"
            else:
                with confined(stored.secret):
                    record["key_id"] = stored.key_id
                    verdict = unkey.verify_key(stored.secret, credits_cost=0)
                    del stored
                record.update(
                    verified_key_id=verdict.key_id, valid=verdict.valid, code=verdict.code
                )
                if not verdict.valid:
                    record["problem"] = f"does not verify ({verdict.code})"
                elif verdict.key_id != record["key_id"]:
                    record["problem"] = f"verifies as key {verdict.key_id}, not the stored key_id"
            record["ok"] = record["problem"] is None
            problems += not record["ok"]
            out.result(record)
    out.result(
        {
            "command": "verify",
            "ok": problems == 0,
            "summary": True,
            "api_id": api_id,
            "store": store.name,
            "checked": len(targets),
            "problems": problems,
        }
    )
    return EXIT_FINDINGS if problems else 0
