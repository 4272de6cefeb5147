"""Settings of the Vault store, read from the environment (no hvac import)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..._validate import require_tls_unless_loopback
from ..base import DEFAULT_ALIAS_TEMPLATE, DEFAULT_KEY_TEMPLATE, DEFAULT_ROTATION_TEMPLATE

__all__ = ["AuthMethod", "VaultSettings", "check_mount", "check_vault_addr"]

AuthMethod = Literal["token", "approle", "kubernetes", "jwt", "aws"]

# A mount is one or more path segments of safe characters; never "." or "..".
_MOUNT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*")


def check_vault_addr(url: str) -> str:
    """Return ``url`` if it is https, or plain http to a loopback host (a local dev server)."""
    return require_tls_unless_loopback(url, "VAULT_ADDR")


def check_mount(mount: str) -> str:
    """Return ``mount`` if it is a safe KV mount path (``secret``, ``team/kv``)."""
    if not isinstance(mount, str) or not _MOUNT.fullmatch(mount) or len(mount) > 128:
        raise ValueError("mount must be path segments of [A-Za-z0-9_.-], not '.' or '..'")
    return mount


def _vault(name: str) -> AliasChoices:
    # The standard Vault variable only: a bare field name is never read from the environment.
    return AliasChoices(name)


class VaultSettings(BaseSettings):
    """How the Vault store reaches and authenticates to Vault.

    Standard Vault variables: ``VAULT_ADDR``, ``VAULT_TOKEN``, ``VAULT_NAMESPACE``,
    ``VAULT_CACERT`` and ``VAULT_CAPATH`` (each also accepted with our prefix, e.g.
    ``UNKEY_SECRETS_VAULT_ADDR``; the standard name wins). ``VAULT_SKIP_VERIFY`` is
    deliberately **not** honoured: TLS certificates are always verified (point
    ``VAULT_CACERT`` at a private CA instead), and plain ``http://`` is accepted for loopback
    hosts only.

    Our own, prefixed ``UNKEY_SECRETS_VAULT_``: ``MOUNT``, ``KV_VERSION``, ``KEY_TEMPLATE``,
    ``ALIAS_TEMPLATE``, ``TIMEOUT``, ``MAX_CONNECTIONS`` (HTTP connections per host: the
    threads sharing the store), ``AUTH_METHOD`` (token, approle, kubernetes, jwt, aws),
    ``ROLE``, ``ROLE_ID``, ``SECRET_ID``, ``JWT``, ``JWT_PATH``, ``AUTH_MOUNT`` and
    ``AWS_SERVER_ID``. The credentials, ``token``, ``role_id`` (with ``bind_secret_id`` off it
    logs in alone), ``secret_id`` and ``jwt``, are :class:`~pydantic.SecretStr`, so no repr
    shows them: read them with ``get_secret_value()``.
    """

    model_config = SettingsConfigDict(
        env_prefix="UNKEY_SECRETS_VAULT_", extra="ignore", populate_by_name=True
    )

    addr: str | None = Field(default=None, validation_alias=_vault("VAULT_ADDR"))
    token: SecretStr | None = Field(default=None, validation_alias=_vault("VAULT_TOKEN"))
    namespace: str | None = Field(default=None, validation_alias=_vault("VAULT_NAMESPACE"))
    cacert: str | None = Field(default=None, validation_alias=_vault("VAULT_CACERT"))
    capath: str | None = Field(default=None, validation_alias=_vault("VAULT_CAPATH"))

    mount: str = "secret"
    kv_version: int = 2
    key_template: str = DEFAULT_KEY_TEMPLATE
    alias_template: str = DEFAULT_ALIAS_TEMPLATE
    rotation_template: str = DEFAULT_ROTATION_TEMPLATE
    timeout: float = Field(default=30.0, gt=0)
    #: HTTP connections kept per host: the number of threads sharing the store.
    max_connections: int | None = Field(default=None, gt=0, repr=False)

    auth_method: AuthMethod = "token"
    role: str | None = None
    role_id: SecretStr | None = None
    secret_id: SecretStr | None = None
    jwt: SecretStr | None = None
    jwt_path: str | None = None
    auth_mount: str | None = None
    aws_server_id: str | None = None

    @field_validator("addr")
    @classmethod
    def _addr_is_safe(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_vault_addr(value)

    @field_validator("kv_version")
    @classmethod
    def _kv_version_is_known(cls, value: int) -> int:
        if value not in (1, 2):
            raise ValueError("kv_version must be 1 or 2")
        return value

    @field_validator("mount")
    @classmethod
    def _mount_is_safe(cls, value: str) -> str:
        return check_mount(value)

    @field_validator("auth_mount")
    @classmethod
    def _auth_mount_is_safe(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_mount(value)

    @field_validator("namespace", "cacert", "capath", "role", "jwt_path")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("role_id")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None
