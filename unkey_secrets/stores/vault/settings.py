"""Settings of the Vault store, read from the environment (no hvac import)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..._validate import require_tls_unless_loopback
from ..base import DEFAULT_ALIAS_TEMPLATE, DEFAULT_KEY_TEMPLATE, DEFAULT_ROTATION_TEMPLATE

__all__ = ["AuthMethod", "VaultSettings", "check_mount", "check_vault_addr"]

#: How the app authenticates: ``token`` (``VAULT_TOKEN`` or ``~/.vault-token``), a login
#: (``approle``, ``kubernetes``, ``jwt``, ``aws``, ``cert``: the TLS client certificate), or
#: ``agent``: no token at all, a Vault Agent or Proxy in front of Vault adds its auto-auth token.
AuthMethod = Literal["token", "approle", "kubernetes", "jwt", "aws", "cert", "agent"]

# A mount is one or more path segments of safe characters; never "." or "..".
_MOUNT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*(/[A-Za-z0-9_\-][A-Za-z0-9_.\-]*)*")


def check_vault_addr(url: str, what: str = "VAULT_ADDR") -> str:
    """Return ``url`` if it is https, or plain http to a loopback host (a local dev server).

    ``what`` names the setting in the error (``VAULT_ADDR``, ``VAULT_AGENT_ADDR``).
    """
    return require_tls_unless_loopback(url, what)


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

    Standard Vault variables: ``VAULT_ADDR``, ``VAULT_AGENT_ADDR``, ``VAULT_TOKEN``,
    ``VAULT_NAMESPACE``, ``VAULT_CACERT``, ``VAULT_CAPATH``, ``VAULT_CLIENT_CERT`` and
    ``VAULT_CLIENT_KEY`` (each also accepted with our prefix, e.g.
    ``UNKEY_SECRETS_VAULT_ADDR``; the standard name wins). ``VAULT_SKIP_VERIFY`` is
    deliberately **not** honoured: TLS certificates are always verified (point
    ``VAULT_CACERT`` at a private CA instead), and plain ``http://`` is accepted for loopback
    hosts only.

    ``VAULT_AGENT_ADDR``, as in the vault CLI, wins over ``VAULT_ADDR`` for where requests go
    (:attr:`address`): a local Vault Agent or Proxy that forwards them to Vault. With it set and
    neither ``VAULT_TOKEN`` nor an auth method given, the method is ``agent``: the app sends no
    token (``~/.vault-token`` is not read either) and the agent's or proxy's auto-auth token is
    added to each request (``api_proxy { use_auto_auth_token = true }``). ``VAULT_CLIENT_CERT``
    and ``VAULT_CLIENT_KEY`` (PEM files, the key unencrypted, set together) are presented on
    every TLS connection, to Vault or to the agent, and are what the ``cert`` method logs in
    with.

    Our own, prefixed ``UNKEY_SECRETS_VAULT_``: ``MOUNT``, ``KV_VERSION``, ``KEY_TEMPLATE``,
    ``ALIAS_TEMPLATE``, ``TIMEOUT``, ``MAX_CONNECTIONS`` (HTTP connections per host: the
    threads sharing the store), ``AUTH_METHOD`` (token, approle, kubernetes, jwt, aws, cert,
    agent), ``ROLE`` (the cert method's role name: optional, Vault then tries every role),
    ``ROLE_ID``, ``SECRET_ID``, ``JWT``, ``JWT_PATH``, ``AUTH_MOUNT`` and ``AWS_SERVER_ID``.
    The credentials, ``token``, ``role_id`` (with ``bind_secret_id`` off it logs in alone),
    ``secret_id`` and ``jwt``, are :class:`~pydantic.SecretStr`, so no repr shows them: read
    them with ``get_secret_value()``.
    """

    model_config = SettingsConfigDict(
        env_prefix="UNKEY_SECRETS_VAULT_", extra="ignore", populate_by_name=True
    )

    addr: str | None = Field(default=None, validation_alias=_vault("VAULT_ADDR"))
    agent_addr: str | None = Field(default=None, validation_alias=_vault("VAULT_AGENT_ADDR"))
    token: SecretStr | None = Field(default=None, validation_alias=_vault("VAULT_TOKEN"))
    namespace: str | None = Field(default=None, validation_alias=_vault("VAULT_NAMESPACE"))
    cacert: str | None = Field(default=None, validation_alias=_vault("VAULT_CACERT"))
    capath: str | None = Field(default=None, validation_alias=_vault("VAULT_CAPATH"))
    client_cert: str | None = Field(default=None, validation_alias=_vault("VAULT_CLIENT_CERT"))
    #: The private key's file (not shown in the repr: a key given as its contents would be).
    client_key: str | None = Field(
        default=None, validation_alias=_vault("VAULT_CLIENT_KEY"), repr=False
    )

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

    @property
    def address(self) -> str | None:
        """Where requests go: ``VAULT_AGENT_ADDR`` when set, else ``VAULT_ADDR`` (or None)."""
        return self.agent_addr or self.addr

    @field_validator("addr")
    @classmethod
    def _addr_is_safe(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_vault_addr(value)

    @field_validator("agent_addr")
    @classmethod
    def _agent_addr_is_safe(cls, value: str | None) -> str | None:
        return None if value is None or value == "" else check_vault_addr(value, "VAULT_AGENT_ADDR")

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

    @field_validator(
        "namespace", "cacert", "capath", "client_cert", "client_key", "role", "jwt_path"
    )
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("role_id")
    @classmethod
    def _empty_secret_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @model_validator(mode="after")
    def _settle(self) -> VaultSettings:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError(
                "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together: set both (the certificate "
                "and its private key, PEM files) or neither"
            )
        token = self.token.get_secret_value() if self.token is not None else ""
        if self.agent_addr and not token and "auth_method" not in self.model_fields_set:
            # As an app behind a Vault Agent or Proxy runs: no token of its own, the agent's
            # auto-auth token is added to each request it forwards.
            self.auth_method = "agent"
        if self.auth_method == "cert" and self.client_cert is None:
            raise ValueError(
                "the cert auth method logs in with the TLS client certificate: set "
                "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY"
            )
        return self
