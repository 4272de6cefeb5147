"""Settings of the AWS Secrets Manager store, read from the environment (no boto3 import)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..._validate import require_tls_unless_loopback
from ..base import DEFAULT_ALIAS_TEMPLATE, DEFAULT_KEY_TEMPLATE, DEFAULT_ROTATION_TEMPLATE

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "AwsSettings", "check_endpoint_url"]

#: The seconds one Secrets Manager request may take (connect, send, the whole answer) when the
#: store builds its client and nothing else is set.
DEFAULT_TIMEOUT_SECONDS = 30.0


def check_endpoint_url(url: str) -> str:
    """Return ``url`` if it is https, or plain http to a loopback host (moto, LocalStack)."""
    return require_tls_unless_loopback(url, "endpoint URL")


class AwsSettings(BaseSettings):
    """Where and how the Secrets Manager store writes.

    Read from ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``), ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``
    (a profile of the AWS config files) and ``UNKEY_SECRETS_AWS_KEY_TEMPLATE``,
    ``_ALIAS_TEMPLATE``, ``_KMS_KEY_ID``, ``_TAGS`` (a JSON object), ``_REPLICA_REGIONS`` (a
    comma list or a JSON list), ``_DESCRIPTION``, ``_MAX_CONNECTIONS`` and ``_TIMEOUT`` (the
    seconds one request of the store's client may take, connect to the last byte of the
    answer). It holds no secret value; credentials come from the standard AWS chain, never
    from here.
    """

    model_config = SettingsConfigDict(
        env_prefix="UNKEY_SECRETS_AWS_", extra="ignore", populate_by_name=True
    )

    # The standard AWS names only: a bare field name in an alias would also be read from the
    # environment (case-insensitively), so an unrelated REGION or ENDPOINT_URL would redirect
    # the writes. The field names still work as arguments (populate_by_name).
    region: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL")
    )
    #: The AWS config files' profile the store's client uses (None: botocore's default chain).
    profile: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_PROFILE"), repr=False
    )
    key_template: str = DEFAULT_KEY_TEMPLATE
    alias_template: str = DEFAULT_ALIAS_TEMPLATE
    rotation_template: str = DEFAULT_ROTATION_TEMPLATE
    kms_key_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    replica_regions: Annotated[tuple[str, ...], NoDecode] = ()
    description: str | None = None
    #: HTTP connections kept by the client the store builds: the threads sharing the store.
    max_connections: int | None = Field(default=None, gt=0, repr=False)
    #: Seconds one request of the client the store builds may take, the whole answer included.
    timeout: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, repr=False)

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_is_safe(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_endpoint_url(value)

    @field_validator("profile")
    @classmethod
    def _empty_profile_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("replica_regions", mode="before")
    @classmethod
    def _split_regions(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                raise ValueError("replica regions: not a JSON list") from None
        return tuple(part.strip() for part in text.split(",") if part.strip())
