"""A dataclass repr that works on a half-built object (an ``__init__`` that failed midway).

An error reporter renders every local of a failing frame, a half-built ``self`` included; a
repr that raises there loses the whole report.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["field_repr"]


def field_repr(self: Any) -> str:
    """``Name(field=value, ...)`` over the fields shown in a repr; a missing one shows as ``?``."""
    shown = []
    for field in dataclasses.fields(self):
        if field.repr:
            value = getattr(self, field.name, _MISSING)
            shown.append(f"{field.name}={value!r}")
    return f"{type(self).__qualname__}({', '.join(shown)})"


class _Missing:
    def __repr__(self) -> str:
        return "?"


_MISSING = _Missing()
