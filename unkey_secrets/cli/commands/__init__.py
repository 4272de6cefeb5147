"""The operations commands: list, verify, reconcile, doctor and rotate-due.

Each module exposes ``add_parser(subparsers)`` and ``run(args, out) -> int | None`` (the exit
code; None is 0), the interface :mod:`unkey_secrets.cli.app` wires every command module through.
"""

from __future__ import annotations

#: command name -> module under this package, imported when the command runs.
MODULES = {
    "list": "listing",
    "verify": "verify",
    "reconcile": "reconcile",
    "doctor": "doctor",
    "rotate-due": "rotate_due",
}

__all__ = ["MODULES"]
