"""Settings of the Unkey client, read from the environment (``UNKEY_*``; no store imports)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .._redact import guarded, hold

__all__ = ["UnkeySettings"]


class UnkeySettings(BaseSettings):
    """How to reach Unkey: ``UNKEY_BASE_URL``, ``UNKEY_ROOT_KEY``, ``UNKEY_TIMEOUT``, ...

    ``base_url`` is the API's root URL; ``timeout`` is the deadline of one attempt (connect,
    send and the whole answer), in seconds (finite, > 0); ``max_retries`` is how often an
    idempotent call is retried (0-10). ``root_key`` is a
    :class:`~pydantic.SecretStr`, so it never shows in a repr; it is optional here and required
    by :meth:`unkey_secrets.unkey.UnkeyClient.from_settings`. Also importable from
    :mod:`unkey_secrets.settings` and :mod:`unkey_secrets.unkey`.
    """

    model_config = SettingsConfigDict(env_prefix="UNKEY_", extra="ignore")

    base_url: str = "https://api.unkey.com"
    root_key: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    max_retries: int = Field(default=3, ge=0, le=10)

    @guarded
    def __init__(self, **values: Any) -> None:
        """Read the settings: ``values`` (by field name) win over ``UNKEY_*``, then defaults.

        Raises pydantic's ``ValidationError`` for an invalid value; no frame it passed through
        keeps the values (a root key among them) for a traceback's locals. The root key is
        held (masked in every log record) from here on, as are the credentials the environment
        names (the guarded constructor reads them first).
        """
        super().__init__(**values)
        hold(self.root_key)
