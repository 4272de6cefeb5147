"""An error reporter that walks the live stack when a log record is made finds no plaintext.

Sentry's logging integration with ``attach_stacktrace`` (and similar reporters) serialises the
local variables of every frame on the stack at the moment a record is emitted, not only of an
exception's traceback. A flow that logs while it still runs must hold no plaintext in a local.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from unkey_secrets import capture
from unkey_secrets.testing import InMemoryStore

PLAINTEXT = "sk_" + "Z" * 8 + "live" + "Q" * 12


class StackWalker(logging.Handler):
    """Collects every frame local that holds the plaintext when a record is emitted."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.found: list[str] = []
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        frame = sys._getframe()
        while frame is not None:
            for name, value in frame.f_locals.items():
                if _holds(value):
                    self.found.append(f"{frame.f_code.co_name}:{name}")
            frame = frame.f_back


def _holds(value: Any) -> bool:
    if isinstance(value, str):
        return PLAINTEXT in value
    if isinstance(value, (tuple, list)):
        return any(_holds(v) for v in value)
    if isinstance(value, dict):
        return any(_holds(v) for v in value.values())
    return False


@pytest.fixture
def walker() -> Iterator[StackWalker]:
    handler = StackWalker()
    logger = logging.getLogger("unkey_secrets")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_an_interrupted_capture_logs_with_no_plaintext_on_the_stack(walker: StackWalker) -> None:
    store = InMemoryStore()
    store.fail_next("put", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        capture(store, api_id="api_live1", key_id="key_live1", key=PLAINTEXT, alias="svc")
    assert walker.records >= 1, "capture logs the interruption"
    # This test's own frame holds the plaintext as a constant argument; ours must not.
    ours = [where for where in walker.found if not where.startswith("test_")]
    assert ours == []
