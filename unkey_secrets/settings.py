"""The plugin's own configuration, read from the environment (pydantic-settings).

Each component's settings live beside it (``UnkeySettings`` in :mod:`unkey_secrets.unkey.settings`,
each store's in its own ``settings`` module) and are re-exported here, so one import reaches
them all (none of them imports hvac or boto3). :func:`load_settings` builds any of them with
one precedence chain: explicit argument > environment > default.
"""

from __future__ import annotations

from ._config import load_settings
from .stores.aws.settings import AwsSettings
from .stores.vault.settings import VaultSettings
from .unkey.settings import UnkeySettings

__all__ = ["AwsSettings", "UnkeySettings", "VaultSettings", "load_settings"]
