"""Run every ``bench_*.py`` module of this package, in name order, by calling its ``main()``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    status = 0
    for module in sorted(m.name for m in pkgutil.iter_modules([str(here)])):
        if not module.startswith("bench_"):
            continue
        print(f"== {module}", flush=True)
        status |= int(importlib.import_module(f"{__package__}.{module}").main() or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
