# PYTHON_ARGCOMPLETE_OK
"""The ``unkey-secrets`` command line (see :mod:`unkey_secrets.cli.app`)."""

from __future__ import annotations

from .app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, build_parser, main, run

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "run",
]
