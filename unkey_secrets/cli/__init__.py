# PYTHON_ARGCOMPLETE_OK
"""The ``unkey-secrets`` command line (see :mod:`unkey_secrets.cli.app`).

:func:`run` is the console script's entry; the other names are :mod:`.app`'s, loaded on first
use (PEP 562), so the process entry can set the collector up before the command line's
modules load.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from .app import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, build_parser, main

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "run",
]

_FROM_APP = frozenset(__all__) - {"run"}


def run() -> NoReturn:
    """The ``unkey-secrets`` process: :func:`unkey_secrets.cli.app.run`.

    The command line's own modules load with the collector off: what they build lives as long
    as the process (see :func:`unkey_secrets.cli.app.run`, which keeps it off from there).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        from .app import run as run_app
    finally:
        if enabled:
            gc.enable()
    run_app()


def __getattr__(name: str) -> Any:
    if name in _FROM_APP:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
