"""``verify``: check that each stored key still verifies in Unkey, as its stored key_id.

Each key is read from the store (``get_current`` for an alias, ``get`` for a key_id: a
reader's permission) and sent to keys.verifyKey with a credit cost of 0, so no credits are
spent (rate limits a key applies on its own are still charged, and Unkey records the use).
The plaintext is confined while it is held: nothing printed or logged can carry it.

Each record gives the key's expiry as Unkey answered it (``expires`` in Unix ms,
``expires_at`` in RFC 3339, the time left). With ``--expiring-within DURATION``, a valid key
that ends within it is a problem too (``expiring: true``), unless it was replaced (the rule:
:mod:`._expiry`; the key an alias names is always current): exit 3, and the problem says how
to replace it before it ends.

An alias whose current version was deleted or destroyed (Vault: ``bao kv delete``,
``delete_version_after``, ``bao kv destroy``) has no key to read: its record has no
``key_id`` and says ``version_gone`` (``"deleted"`` or ``"destroyed"``; None for every other
record), and the problem names the version and the command that stores a new one.
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
from ..options import EXIT_FINDINGS, add_api_id, aliases_from, exit_codes
from ..output import Output
from ._common import add_alias_options, now_ms, open_store, open_unkey
from ._expiry import (
    AliasNames,
    add_expiring_option,
    decide,
    expiry_fields,
    in_window,
    replace_advice,
)

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``verify`` command's parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="check that stored keys still verify in Unkey, as their key_id (never prints one)",
        description="Check that stored keys still verify in Unkey, as their key_id (never "
        "prints one).",
        epilog=exit_codes("3 a key does not verify, or ends within --expiring-within"),
        allow_abbrev=False,
    )
    add_api_id(parser)
    add_alias_options(parser, "whose current key to verify")
    parser.add_argument(
        "--key-id",
        action="append",
        dest="key_ids",
        metavar="KEY",
        help="a stored key to verify, by its keyId (repeatable)",
    )
    add_expiring_option(
        parser,
        "also a problem: a key that ends within DURATION from now (seconds, or 7d, 24h...), "
        "unless a rotation replaced it (an old key whose alias names another key, or whose meta "
        "names the key it was rotated to)",
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
    problems = expiring = 0
    within: int | None = args.expiring_within
    names = AliasNames(store, api_id)
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
                "version_gone": None,
                **expiry_fields(None, 0),
                "expiring": None,
            }
            try:
                if kind == "alias":
                    stored = store.get_current(api_id=api_id, alias=name)
                else:
                    stored = store.get(api_id=api_id, key_id=name)
            except SecretNotFoundError:
                record["problem"] = "not stored"
            except DeletedVersionError as exc:
                # That alias's problem (its message names the fix), not the run's end. No key
                # was read: what happened to the alias's current version is said instead.
                record["problem"] = str(exc)
                record["version_gone"] = "destroyed" if exc.destroyed else "deleted"
            except StoredValueError as exc:
                record["problem"] = f"stored value unusable: {exc}"
            else:
                with confined(stored.secret):
                    record["key_id"] = stored.key_id
                    stored_for = stored.alias
                    verdict = unkey.verify_key(stored.secret, credits_cost=0)
                    del stored
                now = now_ms()
                record.update(
                    verified_key_id=verdict.key_id,
                    valid=verdict.valid,
                    code=verdict.code,
                    **expiry_fields(verdict.expires, now),
                )
                if not verdict.valid:
                    record["problem"] = f"does not verify ({verdict.code})"
                elif verdict.key_id != record["key_id"]:
                    record["problem"] = f"verifies as key {verdict.key_id}, not the stored key_id"
                elif within is not None:
                    record["expiring"] = False
                    if in_window(verdict.expires, now, within) and (
                        # The key an alias names now is current, whatever its meta says.
                        kind == "alias"
                        or decide(
                            record["key_id"], alias=stored_for, meta=verdict.meta, names=names
                        ).report
                    ):
                        record["expiring"] = True
                        expiring += 1
                        record["problem"] = _expiring_problem(
                            record, name if kind == "alias" else stored_for
                        )
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
            "expiring": expiring if within is not None else None,
            "expiring_within_seconds": within,
        }
    )
    return EXIT_FINDINGS if problems else 0


def _expiring_problem(record: dict[str, Any], alias: str | None) -> str:
    """The problem text of a key that ends within the window: when, and what to run."""
    advice = replace_advice(record["api_id"], alias)
    return (
        f"expires at {record['expires_at']} ({record['expires']} Unix ms), in "
        f"{record['expires_in']}; {advice}"
    )
