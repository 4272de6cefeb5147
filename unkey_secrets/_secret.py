"""The plaintext holder: a key that never shows itself unless asked by name."""

from __future__ import annotations

import hmac
import weakref
from typing import Any, NoReturn

__all__ = ["Secret"]

_MASK = "**********"
_NO_PICKLE = "a Secret cannot be pickled: the plaintext must stay in memory"

# The plaintexts, by the id of the Secret holding each, with the weak reference that removes the
# entry when that Secret is collected. Kept out of the object itself: a serialiser or debugger
# that walks an object's slots, __dict__ or attributes (jsonpickle, a reporter rendering locals
# deeply) finds nothing but the mask there. No lock: each step is one dict operation, and the
# callback below may run from the garbage collector in the middle of any of them.
_plaintexts: dict[int, tuple[weakref.ref[Secret], str]] = {}


def _forget(ident: int, ref: weakref.ref[Secret]) -> None:
    entry = _plaintexts.get(ident)
    # Remove only the entry this reference made, never one a newer Secret made under the id.
    if entry is not None and entry[0] is ref:
        _plaintexts.pop(ident, None)


class Secret:
    """An immutable holder for one plaintext key.

    ``repr``, ``str``, ``format`` and f-strings print a fixed mask; pickling (``__reduce__``, and
    the ``__getstate__``/``__getnewargs__`` hooks serialisers call directly), ``copy`` into a
    new object and JSON encoding are refused or keep the mask; equality runs in constant time.
    The plaintext is held outside the object (it has no ``__dict__`` and its only slot is the
    weak-reference one), so walking its attributes finds no value. The only way to it is
    :meth:`reveal`, so every place that uses it can be found by searching for that one name.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, value: str) -> None:
        if isinstance(value, Secret):
            value = value.reveal()
        if not isinstance(value, str):
            raise TypeError(f"Secret holds a str, not {type(value).__name__}")
        ident = id(self)
        ref = weakref.ref(self, lambda dead: _forget(ident, dead))
        held = _plaintexts.get(ident)
        if held is not None and held[0]() is self:
            raise AttributeError("Secret is immutable")
        _plaintexts[ident] = (ref, value)

    def reveal(self) -> str:
        """Return the plaintext. Call it only where a store's request body is built.

        Raises :class:`ValueError` for an object made without ``__init__`` (it holds none).
        """
        entry = _plaintexts.get(id(self))
        if entry is None or entry[0]() is not self:
            raise ValueError("this Secret was never given a plaintext")
        return entry[1]

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return format(_MASK, format_spec)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        # A hash of the plaintext would be an oracle for it; all secrets share one bucket.
        return hash(Secret)

    def __bool__(self) -> bool:
        return bool(self.reveal())

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __reduce__(self) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError(_NO_PICKLE)

    # Python 3.11 gives every object a __getstate__ returning its slots; serialisers that call
    # it (or the other pickle hooks) directly are refused the same way.
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
