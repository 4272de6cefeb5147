"""The Unkey v2 API client over httpx (see :mod:`unkey_secrets.unkey.client`)."""

from __future__ import annotations

from .client import UNSET, UnkeyClient
from .models import ApiInfo, Credits, KeyInfo, Ratelimit, VerifyResult

__all__ = [
    "UNSET",
    "ApiInfo",
    "Credits",
    "KeyInfo",
    "Ratelimit",
    "UnkeyClient",
    "VerifyResult",
]
