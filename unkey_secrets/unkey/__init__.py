"""The Unkey v2 API client over httpx (see :mod:`unkey_secrets.unkey.client`).

:class:`UnkeySettings` (:mod:`unkey_secrets.unkey.settings`) is imported on first use, so
importing the client (the rotation Lambda does) does not load pydantic-settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import UNSET, UnkeyClient
from .models import ApiInfo, Credits, KeyInfo, Ratelimit, VerifyResult

if TYPE_CHECKING:
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
    # PEP 562: the settings class only, loaded when asked for (pydantic is not a cold-start cost).
    if name == "UnkeySettings":
        from .settings import UnkeySettings

        return UnkeySettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
