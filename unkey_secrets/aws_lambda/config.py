"""The rotation handler's configuration, read from environment variables (stdlib only).

pydantic-settings is deliberately not used here: the rotation Lambda's cold start must stay small.
A bad value raises :class:`~unkey_secrets.ConfigurationError` naming the variable, never its value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from .._errors import ConfigurationError, InvalidInputError
from .._redact import guarded
from .._validate import validate_api_id, validate_external_id
from ..unkey.options import check_permission_query, check_prefix, check_text

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "DEFAULT_HOLD_SECONDS",
    "DEFAULT_STORE_TIMEOUT_SECONDS",
    "MINIMUM_GRACE_SECONDS",
    "RotationConfig",
    "RuntimeConfig",
]

#: How long the rotated-out key stays valid after finishSecret: well past every reader's cache
#: (Powertools caches 5 minutes, the Secrets Manager caching client 1 hour).
DEFAULT_GRACE_SECONDS = 86_400
#: How long rerollKey keeps the original alive if a rotation dies between the reroll and the
#: restore of the original's own expiry (the restore runs a moment later on the happy path).
DEFAULT_HOLD_SECONDS = 30 * 86_400
MINIMUM_GRACE_SECONDS = 300
#: The seconds one Secrets Manager request may take, the whole answer included (the library's
#: ``UNKEY_SECRETS_AWS_TIMEOUT`` default too).
DEFAULT_STORE_TIMEOUT_SECONDS = 30.0

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class RotationConfig:
    """What a rotation does, independent of how the clients are made.

    ``grace_period`` is how long the original key stays valid after finishSecret (capped by its
    own earlier expiry); ``hold`` is the reroll's expiration for the original during the
    rotation. ``api_id`` (or the secret's ``unkey-api-id`` tag) names the API for a bootstrap
    and restricts rotations to that API. ``verify_permissions`` is a permission query that
    testSecret requires. ``prefix``, ``name`` and ``external_id`` shape a bootstrap key.
    """

    grace_period: dt.timedelta = dt.timedelta(seconds=DEFAULT_GRACE_SECONDS)
    hold: dt.timedelta = dt.timedelta(seconds=DEFAULT_HOLD_SECONDS)
    api_id: str | None = None
    verify_permissions: str | None = None
    prefix: str | None = None
    name: str | None = None
    external_id: str | None = None

    def __post_init__(self) -> None:
        if self.grace_period < dt.timedelta(seconds=MINIMUM_GRACE_SECONDS):
            raise InvalidInputError(
                "grace_period", f"must be at least {MINIMUM_GRACE_SECONDS} seconds"
            )
        if self.hold < self.grace_period:
            raise InvalidInputError("hold", "must be at least the grace period")
        if self.api_id is not None:
            validate_api_id(self.api_id)
        if self.verify_permissions is not None:
            check_permission_query(self.verify_permissions)
        if self.prefix is not None:
            check_prefix(self.prefix)
        if self.name is not None:
            check_text(self.name, "name", 1, 255)
        if self.external_id is not None:
            validate_external_id(self.external_id)

    @classmethod
    @guarded(fresh=True)  # ``environ`` holds the root key and AWS credentials too
    def from_environ(cls, environ: Mapping[str, str]) -> RotationConfig:
        """Read the rotation's ``UNKEY_*`` variables (listed in docs/reference/environment.md)."""
        names = {
            "grace_period": "UNKEY_GRACE_PERIOD_SECONDS",
            "hold": "UNKEY_ROTATION_HOLD_SECONDS",
            "api_id": "UNKEY_API_ID",
            "verify_permissions": "UNKEY_VERIFY_PERMISSIONS",
            "prefix": "UNKEY_KEY_PREFIX",
            "name": "UNKEY_KEY_NAME",
            "external_id": "UNKEY_EXTERNAL_ID",
        }
        grace = _seconds(environ, names["grace_period"], DEFAULT_GRACE_SECONDS)
        hold = _seconds(environ, names["hold"], max(DEFAULT_HOLD_SECONDS, grace))
        try:
            return cls(
                grace_period=dt.timedelta(seconds=grace),
                hold=dt.timedelta(seconds=hold),
                api_id=_text(environ, names["api_id"]),
                verify_permissions=_text(environ, names["verify_permissions"]),
                prefix=_text(environ, names["prefix"]),
                name=_text(environ, names["name"]),
                external_id=_text(environ, names["external_id"]),
            )
        except InvalidInputError as exc:
            env = {**names, "permissions": names["verify_permissions"]}.get(exc.field, exc.field)
            raise ConfigurationError(f"{env} is invalid: {exc.problem}") from None


@dataclass(frozen=True)
class RuntimeConfig:
    """How the Lambda reaches Unkey: where the root key lives and the client's options.

    The root key is read from the Secrets Manager secret ``root_key_secret_id`` (ARN or name);
    ``UNKEY_ROOT_KEY`` is only honoured when ``allow_root_key_env`` is set. ``timeout`` is the
    seconds one Unkey request may take, ``store_timeout`` one Secrets Manager request (each
    from connect to the last byte of the answer). ``metrics`` is whether each step writes its
    metrics (:mod:`unkey_secrets.aws_lambda.metrics`) to standard output; ``audit`` whether
    the handler emits audit events (``unkey_secrets.audit``).
    """

    root_key_secret_id: str | None
    allow_root_key_env: bool
    base_url: str
    timeout: float
    rotation: RotationConfig
    store_timeout: float = DEFAULT_STORE_TIMEOUT_SECONDS
    metrics: bool = True
    audit: bool = True

    @classmethod
    @guarded(fresh=True)  # ``environ`` holds the root key and AWS credentials too
    def from_environ(cls, environ: Mapping[str, str]) -> RuntimeConfig:
        """Read the runtime's variables (docs/reference/environment.md lists them).

        ``UNKEY_ROOT_KEY_SECRET_ID``, ``UNKEY_ALLOW_ROOT_KEY_ENV``, ``UNKEY_BASE_URL``,
        ``UNKEY_TIMEOUT``, ``UNKEY_SECRETS_AWS_TIMEOUT``, ``UNKEY_METRICS``, ``UNKEY_AUDIT``
        and the rotation's ``UNKEY_*``.
        """
        allow = environ.get("UNKEY_ALLOW_ROOT_KEY_ENV", "").strip().lower()
        if allow not in _TRUE | _FALSE:
            raise ConfigurationError("UNKEY_ALLOW_ROOT_KEY_ENV must be true or false")
        metrics = _flag(environ, "UNKEY_METRICS")
        audit = _flag(environ, "UNKEY_AUDIT")
        timeout = _seconds(environ, "UNKEY_TIMEOUT", 10, minimum=1)
        store_timeout = _seconds(
            environ, "UNKEY_SECRETS_AWS_TIMEOUT", int(DEFAULT_STORE_TIMEOUT_SECONDS), minimum=1
        )
        return cls(
            root_key_secret_id=_text(environ, "UNKEY_ROOT_KEY_SECRET_ID"),
            allow_root_key_env=allow in _TRUE,
            base_url=_text(environ, "UNKEY_BASE_URL") or "https://api.unkey.com",
            timeout=float(timeout),
            rotation=RotationConfig.from_environ(environ),
            store_timeout=float(store_timeout),
            metrics=metrics,
            audit=audit,
        )


def _flag(environ: Mapping[str, str], name: str) -> bool:
    """A true/false variable that is true when unset or empty."""
    value = environ.get(name, "true").strip().lower() or "true"
    if value not in _TRUE | _FALSE:
        raise ConfigurationError(f"{name} must be true or false")
    return value in _TRUE


def _text(environ: Mapping[str, str], name: str) -> str | None:
    value = environ.get(name, "").strip()
    return value or None


def _seconds(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or int(raw) < minimum:
        raise ConfigurationError(f"{name} must be a whole number of seconds >= {minimum}")
    return int(raw)
