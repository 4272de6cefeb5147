"""Counting what a block of code reads from ``os.environ``, in the thread that runs it.

Every read of ``os.environ`` goes through its class's ``__getitem__`` (``get``, ``in``,
``items()``) or ``__iter__`` (a scan, as urllib's ``getproxies_environment`` makes): both are
counted, by variable name, for the calling thread only (an in-process server's own reads are
not the client's).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

#: What urllib, requests, httpx and botocore read to route and verify a request.
PROXY_AND_CA_VARIABLES = frozenset(
    {
        *(f"{scheme}_proxy" for scheme in ("http", "https", "all", "no")),
        *(f"{scheme}_PROXY" for scheme in ("HTTP", "HTTPS", "ALL", "NO")),
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "AWS_CA_BUNDLE",
        "NETRC",
    }
)

#: The name counted for a scan of the whole environment.
SCAN = "<every variable>"


class Reads:
    """The reads counted so far: ``names`` by variable (a scan as :data:`SCAN`)."""

    def __init__(self) -> None:
        self.names: Counter[str] = Counter()

    @property
    def total(self) -> int:
        return sum(self.names.values())

    def of(self, names: frozenset[str] | set[str]) -> Counter[str]:
        """The reads of ``names`` (and the scans, which read them all)."""
        return Counter({n: c for n, c in self.names.items() if n in names or n == SCAN})


@contextmanager
def counting_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    """Count this thread's reads of ``os.environ`` while the block runs."""
    reads = Reads()
    me = threading.get_ident()
    environ_type: Any = type(os.environ)
    getitem, iterate = environ_type.__getitem__, environ_type.__iter__

    def counted_getitem(self: Any, key: str) -> Any:
        if threading.get_ident() == me:
            reads.names[key] += 1
        return getitem(self, key)

    def counted_iter(self: Any) -> Any:
        if threading.get_ident() == me:
            reads.names[SCAN] += 1
        return iterate(self)

    with monkeypatch.context() as patch:
        patch.setattr(environ_type, "__getitem__", counted_getitem)
        patch.setattr(environ_type, "__iter__", counted_iter)
        yield reads
