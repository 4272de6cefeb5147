"""Run every ``bench_*.py`` module of this package, in name order, by calling its ``main()``.

Each benchmark prints its figures with its goal beside them; at the end, every line that
names a goal is printed again under ``== goals``, so one run shows each goal and its verdict.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pkgutil
import sys
from pathlib import Path
from typing import TextIO


class _Tee(io.TextIOBase):
    """Passes writes through to ``target`` and keeps each finished line naming a goal."""

    def __init__(self, target: TextIO, module: str, keep: list[str]) -> None:
        self._target = target
        self._module = module
        self._keep = keep
        self._partial = ""

    def write(self, text: str) -> int:
        self._target.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        self._keep.extend(f"{self._module}: {line.strip()}" for line in lines if "goal" in line)
        return len(text)

    def flush(self) -> None:
        self._target.flush()


def main() -> int:
    here = Path(__file__).parent
    status = 0
    goals: list[str] = []
    for module in sorted(m.name for m in pkgutil.iter_modules([str(here)])):
        if not module.startswith("bench_"):
            continue
        print(f"== {module}", flush=True)
        with contextlib.redirect_stdout(_Tee(sys.stdout, module, goals)):
            status |= int(importlib.import_module(f"{__package__}.{module}").main() or 0)
    print("== goals (each line as its benchmark printed it)", flush=True)
    for line in goals:
        print(f"  {line}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
