"""What a store object remembers of the keys it wrote, bounded: the most recent entries only.

A store object remembers a few facts per key it wrote (the Vault store: the paths it stored and
those whose ownership mark is not written yet; the Secrets Manager store: the names it tried to
create), each to skip a round trip or to recognise its own earlier write when a call is retried.
Those retries come soon after the first attempt, so the last :data:`RECENT_KEYS` entries are
kept and older ones forgotten: a store object used for millions of keys (a bulk run, a
long-lived service) stays the same size. Forgetting is always safe: each store treats a key it
has no memory of as one written by someone else, and asks the backend.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["RECENT_KEYS", "Recent", "RecentSet"]

#: Entries a store object keeps per kind of fact: several times the most threads the command
#: line runs a store on (bulk's ``--concurrency`` is at most 256), so a retry finds its entry.
RECENT_KEYS = 1024

_K = TypeVar("_K")
_V = TypeVar("_V")


class Recent(Generic[_K, _V]):
    """A mapping that keeps its ``size`` most recently written entries (thread-safe).

    Writing an entry (:meth:`set`, :meth:`add`) makes it the most recent; reading does not.
    """

    def __init__(self, size: int = RECENT_KEYS) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self.size = size
        self._entries: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def set(self, key: _K, value: _V) -> None:
        """Remember ``key`` with ``value``, forgetting the oldest entry beyond :attr:`size`."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def get(self, key: _K, default: _V | None = None) -> _V | None:
        """The value remembered for ``key``, or ``default``."""
        with self._lock:
            return self._entries.get(key, default)

    def pop(self, key: _K, default: _V | None = None) -> _V | None:
        """Forget ``key``; return its value, or ``default``."""
        with self._lock:
            return self._entries.pop(key, default)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        entries = getattr(self, "_entries", None)
        held = len(entries) if entries is not None else "?"
        return f"{type(self).__name__}({held} of {getattr(self, 'size', '?')})"


class RecentSet(Recent[_K, None]):
    """A set that keeps its ``size`` most recently added members (thread-safe)."""

    def add(self, key: _K) -> None:
        """Remember ``key``, forgetting the oldest member beyond :attr:`size`."""
        self.set(key, None)
