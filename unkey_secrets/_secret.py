"""The plaintext holder: a key that never shows itself unless asked by name."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

__all__ = ["Secret"]

_MASK = "**********"
_NO_PICKLE = "a Secret cannot be pickled: the plaintext must stay in memory"


class Secret:
    """An immutable holder for one plaintext key.

    ``repr``, ``str``, ``format`` and f-strings print a fixed mask; pickling (``__reduce__``, and
    the ``__getstate__``/``__getnewargs__`` hooks serialisers call directly), ``copy`` into a
    new object and JSON encoding are refused or keep the mask; equality runs in constant time.
    The only way to the plaintext is :meth:`reveal`, so every place that uses it can be found
    by searching for that one name.
    """

    __slots__ = ("_plaintext",)
    _plaintext: str

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"Secret holds a str, not {type(value).__name__}")
        object.__setattr__(self, "_plaintext", value)

    def reveal(self) -> str:
        """Return the plaintext. Call it only where a store's request body is built."""
        return self._plaintext

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return format(_MASK, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._plaintext.encode(), other.reveal().encode())

    def __hash__(self) -> int:
        # A hash of the plaintext would be an oracle for it; all secrets share one bucket.
        return hash(Secret)

    def __bool__(self) -> bool:
        return bool(self._plaintext)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    # Python 3.11 gives every object a __getstate__ returning its slots, plaintext included;
    # serialisers that call it (or the other pickle hooks) directly are refused the same way.
    def __getstate__(self) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __setstate__(self, state: Any) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __getnewargs__(self) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __getnewargs_ex__(self) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
