"""Settings of the Unkey client, read from the environment (``UNKEY_*``; no store imports)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["UnkeySettings"]


class UnkeySettings(BaseSettings):
    """How to reach Unkey: ``UNKEY_BASE_URL``, ``UNKEY_ROOT_KEY``, ``UNKEY_TIMEOUT``, ...

    ``base_url`` is the API's root URL; ``timeout`` is the deadline of one call, in seconds
    (> 0); ``max_retries`` is how often an idempotent call is retried (0-10). ``root_key`` is a
    :class:`~pydantic.SecretStr`, so it never shows in a repr; it is optional here and required
    by :meth:`unkey_secrets.unkey.UnkeyClient.from_settings`. Also importable from
    :mod:`unkey_secrets.settings` and :mod:`unkey_secrets.unkey`.
    """

    model_config = SettingsConfigDict(env_prefix="UNKEY_", extra="ignore")

    base_url: str = "https://api.unkey.com"
    root_key: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
