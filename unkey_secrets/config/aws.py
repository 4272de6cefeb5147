"""The pydantic-settings source for keys kept in AWS Secrets Manager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from .._redact import guarded
from ._source import UnkeyKeySource
from .reader import KeyReader

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from ..stores.aws.settings import AwsSettings

__all__ = ["UnkeySecretsManagerSource"]


class UnkeySecretsManagerSource(UnkeyKeySource):
    """Fills fields marked ``UnkeyKey(...)`` (with ``store`` "aws" or None) from Secrets Manager.

    Use it in ``settings_customise_sources``. Without ``reader``, one is built as the store
    is configured (:meth:`KeyReader.secrets_manager`: ``AWS_REGION``, ``AWS_ENDPOINT_URL``,
    the standard credential chain, the ``UNKEY_SECRETS_AWS_*`` templates), from ``settings``
    or the environment, or over ``client`` (a boto3 ``secretsmanager`` client), with
    ``options`` (``max_age``, ``unkey``, ``verify``).

    The keys a settings class needs are read together (:meth:`KeyReader.warm`): one
    BatchGetSecretValue per 20 aliases, or one GetSecretValue per alias where the batch call
    is refused (``policies/aws-reader.json`` grants both). The alias's value is a JSON
    object with a ``key`` member, so pydantic-settings' own ``AWSSecretsManagerSettingsSource``
    reads it too; this source adds the cache and refresh, the typed errors and the key's
    metadata.

    Building it raises what :meth:`KeyReader.secrets_manager` raises, as a fresh error: no
    cause, no context, and no frame below it keeps a credential.
    """

    store_name: ClassVar[str | None] = "aws"

    @guarded(fresh=True)
    def __init__(
        self,
        settings_cls: type[BaseSettings],
        reader: KeyReader | None = None,
        *,
        settings: AwsSettings | None = None,
        client: Any = None,
        **options: Any,
    ) -> None:
        if reader is None:
            reader = KeyReader.secrets_manager(settings, client=client, **options)
        super().__init__(settings_cls, reader)
