"""Backoff for Unkey's idempotent calls: exponential, full jitter, capped; Retry-After parsing."""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ._repr import field_repr

__all__ = ["Backoff", "parse_retry_after"]

_SYSTEM_RANDOM = random.SystemRandom()


@dataclass(frozen=True, repr=False)
class Backoff:
    """Delays between attempts: ``uniform(0, min(cap, base * 2**retry))`` (full jitter).

    ``max_retries`` is the number of retries after the first attempt, so a call is sent at most
    ``max_retries + 1`` times.
    """

    max_retries: int
    base: float
    cap: float
    random: Callable[[], float] = field(default=_SYSTEM_RANDOM.random, repr=False)

    __repr__ = field_repr

    def delay(self, retry: int) -> float:
        """Return the delay before retry number ``retry`` (0 for the first retry)."""
        # base * 2**retry; retry is bounded by max_retries, which the client limits.
        return self.random() * min(self.cap, math.ldexp(self.base, retry))


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Read a Retry-After header (delta seconds or an HTTP-date) as seconds from now.

    Returns None when the header is absent or unreadable; a date in the past gives 0.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(int(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; parsedate_to_datetime leaves "-0000" naive.
        when = when.replace(tzinfo=dt.timezone.utc)
    seconds = when.timestamp() - now()
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)
