"""What the operations commands share: the seams, Unkey's view of a key, alias options."""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from ..._reconcile import KeyStatus, key_status, lookup_status
from ..output import iso_time

if TYPE_CHECKING:
    from ...stores import SecretStore
    from ...unkey import UnkeyClient

__all__ = [
    "Status",
    "add_alias_options",
    "iso",
    "now_ms",
    "open_store",
    "open_unkey",
    "status_of",
    "unkey_status",
]

#: A key's state in Unkey, as the commands report it (the library's reconcile decides it).
Status = KeyStatus
#: A key's state from what Unkey said of it (None: Unkey does not have it).
status_of = key_status
#: Ask Unkey for one key (keys.getKey); a 404 is a deleted key.
unkey_status = lookup_status


def open_store(args: argparse.Namespace) -> SecretStore:
    """The store chosen with ``--store``, through the app's seam (tests replace it)."""
    from .. import app

    return app.store_from_env(args.store)


def open_unkey() -> UnkeyClient:
    """The Unkey client, through the app's seam (tests replace it)."""
    from .. import app

    return app.unkey_from_env()


def now_ms() -> int:
    """The time in Unix milliseconds."""
    return int(time.time() * 1000)


def iso(ms: int | None) -> str | None:
    """Unix ms as an ISO 8601 UTC time, to the second (None: none, or beyond year 9999)."""
    return iso_time(ms)


def add_alias_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--alias NAME`` (repeatable) and ``--aliases-file FILE`` (one per line; ``-``: stdin)."""
    parser.add_argument(
        "--alias",
        action="append",
        dest="aliases",
        metavar="NAME",
        help=f"an alias {what} (repeatable)",
    )
    parser.add_argument(
        "--aliases-file",
        metavar="FILE",
        help="a file naming one alias per line (# comments; - reads stdin)",
    )
