"""Settings of the AWS Secrets Manager store, read from the environment (no boto3 import)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..._validate import require_tls_unless_loopback
from ..base import DEFAULT_ALIAS_TEMPLATE, DEFAULT_KEY_TEMPLATE, DEFAULT_ROTATION_TEMPLATE

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "AwsSettings", "check_endpoint_url", "check_region"]

#: The seconds one Secrets Manager request may take (connect, send, the whole answer) when the
#: store builds its client and nothing else is set.
DEFAULT_TIMEOUT_SECONDS = 30.0

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
#: What botocore accepts as a region name (anything else it refuses building a client, with
#: an error that names no setting): checked with the settings, so the error names the setting.
_REGION_NAME = re.compile(r"(?![0-9]+$)(?!-)[a-zA-Z0-9-]{1,63}(?<!-)")


def check_region(name: str) -> str:
    """Return ``name`` if it is shaped like an AWS region (``eu-west-1``), else raise ValueError."""
    if not isinstance(name, str) or not _REGION.fullmatch(name):
        raise ValueError("expected region names such as eu-west-1")
    return name


def _region_list(value: Any, what: str) -> Any:
    """A comma list or a JSON list of regions, as a tuple (other values pass through)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(f"{what}: not a JSON list") from None
    return tuple(part.strip() for part in text.split(",") if part.strip())


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

    A role to assume with the chain's credentials (see :mod:`unkey_secrets.stores.aws.client`):
    ``UNKEY_SECRETS_AWS_ROLE_ARN``, ``_EXTERNAL_ID`` (the ExternalId the role's trust policy
    asks for), ``_ROLE_SESSION_NAME`` and ``_DURATION_SECONDS`` (900-43200), the AWS config
    files' names for a profile's role; the STS endpoint comes from ``AWS_ENDPOINT_URL_STS``
    (botocore's name; else botocore's own choice). ``AWS_ROLE_ARN`` is not read: botocore
    reads it, with ``AWS_WEB_IDENTITY_TOKEN_FILE``, for the chain's own web identity role.

    ``UNKEY_SECRETS_AWS_READ_REGIONS`` (a comma list or a JSON list) names the regions a
    reader tries in turn (:class:`~unkey_secrets.stores.aws.failover.RegionFailoverStore`);
    empty, a reader reads ``region`` alone.
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
    #: The IAM role assumed with the chain's credentials (None: the chain's own are used).
    role_arn: str | None = Field(default=None, repr=False)
    #: The ExternalId the role's trust policy asks for (``sts:ExternalId``).
    external_id: str | None = Field(default=None, repr=False)
    #: The role session's name in CloudTrail (None: ``unkey-secrets``).
    role_session_name: str | None = Field(default=None, repr=False)
    #: The role session's length in seconds, 900-43200 (None: STS's default, 3600).
    duration_seconds: int | None = Field(default=None, ge=900, le=43_200, repr=False)
    #: The STS endpoint the role is assumed through (None: botocore's choice).
    sts_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_STS"), repr=False
    )
    #: The regions a reader reads, in order, failing over from each to the next.
    read_regions: Annotated[tuple[str, ...], NoDecode] = Field(default=(), repr=False)

    @field_validator("endpoint_url", "sts_endpoint_url")
    @classmethod
    def _endpoint_is_safe(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_endpoint_url(value)

    @field_validator("role_arn", "external_id", "role_session_name", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("role_arn")
    @classmethod
    def _role_arn_shape(cls, value: str | None) -> str | None:
        from .client import check_role_arn

        return None if value is None else check_role_arn(value)

    @field_validator("external_id")
    @classmethod
    def _external_id_shape(cls, value: str | None) -> str | None:
        from .client import check_external_id

        return None if value is None else check_external_id(value)

    @field_validator("role_session_name")
    @classmethod
    def _session_name_shape(cls, value: str | None) -> str | None:
        from .client import check_session_name

        return None if value is None else check_session_name(value)

    @field_validator("read_regions", mode="before")
    @classmethod
    def _split_read_regions(cls, value: Any) -> Any:
        return _region_list(value, "read regions")

    @field_validator("read_regions")
    @classmethod
    def _read_regions_shape(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for region in value:
            check_region(region)
        if len(set(value)) != len(value):
            raise ValueError("a region is named twice")
        return value

    @field_validator("profile")
    @classmethod
    def _empty_profile_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("region")
    @classmethod
    def _region_is_a_name(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not _REGION_NAME.fullmatch(value):
            raise ValueError("expected a region name such as eu-west-1")
        return value

    @field_validator("replica_regions", mode="before")
    @classmethod
    def _split_regions(cls, value: Any) -> Any:
        return _region_list(value, "replica regions")
