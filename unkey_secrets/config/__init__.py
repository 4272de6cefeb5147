"""The reader side: an app's settings load their Unkey key from Vault or Secrets Manager.

Mark a field with where its key lives, and add the store's source to the settings::

    from typing import Annotated
    from pydantic import SecretStr
    from pydantic_settings import BaseSettings
    from unkey_secrets.config import UnkeyKey, UnkeyVaultSource

    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, UnkeyKey(api_id="api_123", alias="billing")]

        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, env_settings,
                                       dotenv_settings, file_secret_settings):
            return (init_settings, env_settings, UnkeyVaultSource(settings_cls))

The field holds an :class:`UnkeySecretStr` (a ``SecretStr`` whose ``.info`` is the key's
:class:`KeyInfo`: key_id, version, expiry, never the plaintext). Long-running apps read
through a :class:`KeyReader`: a :class:`CachedKey` per alias, re-read every ``max_age``
seconds or on :meth:`CachedKey.refresh`, with ``on_change`` callbacks; asyncio apps through an
:class:`AsyncKeyReader` (``await key.get()``), which never blocks the event loop.

Nothing here imports hvac or boto3; a source imports its SDK when it builds its store.
"""

from __future__ import annotations

from ._model import KeyInfo, StoreName, UnkeyKey, UnkeySecretStr, key_info
from ._source import UnkeyKeySource
from .aio import MAX_READ_THREADS, AsyncCachedKey, AsyncChangeCallback, AsyncKeyReader
from .aws import UnkeySecretsManagerSource
from .errors import (
    KeyAccessDeniedError,
    KeyExpiredError,
    KeyNotFoundError,
    KeyRevokedError,
    KeyShapeError,
    KeyStoreUnavailableError,
    KeyVersionDeletedError,
    ReaderError,
)
from .reader import (
    DEFAULT_EXPIRY_WARNING,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_STALE,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REFRESH_WINDOW,
    CachedKey,
    ChangeCallback,
    KeyExpiringWarning,
    KeyReader,
    MaxAgeWarning,
    field_ref,
)
from .vault import UnkeyVaultSource

__all__ = [
    "DEFAULT_EXPIRY_WARNING",
    "DEFAULT_MAX_AGE",
    "DEFAULT_MAX_STALE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REFRESH_WINDOW",
    "MAX_READ_THREADS",
    "AsyncCachedKey",
    "AsyncChangeCallback",
    "AsyncKeyReader",
    "CachedKey",
    "ChangeCallback",
    "KeyAccessDeniedError",
    "KeyExpiredError",
    "KeyExpiringWarning",
    "KeyInfo",
    "KeyNotFoundError",
    "KeyReader",
    "KeyRevokedError",
    "KeyShapeError",
    "KeyStoreUnavailableError",
    "KeyVersionDeletedError",
    "MaxAgeWarning",
    "ReaderError",
    "StoreName",
    "UnkeyKey",
    "UnkeyKeySource",
    "UnkeySecretStr",
    "UnkeySecretsManagerSource",
    "UnkeyVaultSource",
    "field_ref",
    "key_info",
]
