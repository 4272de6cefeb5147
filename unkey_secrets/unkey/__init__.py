"""The Unkey v2 API client over httpx (see :mod:`unkey_secrets.unkey.client`).

:class:`UnkeySettings` (:mod:`unkey_secrets.unkey.settings`) is imported on first use, so
importing the client (the rotation Lambda does) does not load pydantic-settings; so is the
client itself (:class:`UnkeyClient`, :data:`UNSET`), so a module that only reads Unkey's answers
(:class:`KeyInfo`...) does not load httpx.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .models import ApiInfo, Credits, KeyInfo, Ratelimit, VerifyResult

if TYPE_CHECKING:
    from .client import UNSET, UnkeyClient
    from .settings import UnkeySettings

__all__ = [
    "UNSET",
    "ApiInfo",
    "Credits",
    "KeyInfo",
    "Ratelimit",
    "UnkeyClient",
    "UnkeySettings",
    "VerifyResult",
]


def __getattr__(name: str) -> Any:
    # PEP 562: loaded when asked for (neither httpx nor pydantic is a cold-start cost).
    if name == "UnkeySettings":
        from .settings import UnkeySettings

        return UnkeySettings
    if name in ("UNSET", "UnkeyClient"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
