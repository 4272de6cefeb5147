"""The plugin's own configuration, read from the environment (pydantic-settings).

``UnkeySettings`` lives here; each store's settings live beside the store and are re-exported
here, so one import reaches them all (none of them imports hvac or boto3).
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .stores.aws.settings import AwsSettings
from .stores.vault.settings import VaultSettings

__all__ = ["AwsSettings", "UnkeySettings", "VaultSettings"]


class UnkeySettings(BaseSettings):
    """How to reach Unkey: ``UNKEY_BASE_URL``, ``UNKEY_ROOT_KEY``, ``UNKEY_TIMEOUT``, ...

    ``root_key`` is a :class:`~pydantic.SecretStr`, so it never shows in a repr; it is optional
    here and required by :meth:`unkey_secrets.unkey.UnkeyClient.from_settings`.
    """

    model_config = SettingsConfigDict(env_prefix="UNKEY_", extra="ignore")

    base_url: str = "https://api.unkey.com"
    root_key: SecretStr | None = None
    timeout: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=3, ge=0, le=10)
