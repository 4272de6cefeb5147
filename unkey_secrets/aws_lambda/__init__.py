"""The AWS Secrets Manager rotation function for a secret that holds an Unkey key.

Point the secret's rotation at ``unkey_secrets.aws_lambda.handler``. Each call runs one step of
Secrets Manager's protocol (createSecret, setSecret, testSecret, finishSecret), logs one JSON
line about it and writes its metrics to standard output in CloudWatch's embedded metric format
(:mod:`unkey_secrets.aws_lambda.metrics`); the steps and their crash-consistency are described
in :mod:`unkey_secrets.aws_lambda.rotator`.

Configuration (environment variables):

``UNKEY_ROOT_KEY_SECRET_ID``
    ARN or name of the Secrets Manager secret holding the Unkey root key (the plain string, or
    JSON ``{"root_key": "..."}``). Read at first use and kept for the container's life; read
    again, once per step, when Unkey refuses it (401 or 403), and the step runs once more with
    what was read (see :class:`~unkey_secrets.aws_lambda.rotator.Rotator`).
``UNKEY_ALLOW_ROOT_KEY_ENV``
    ``true`` to accept ``UNKEY_ROOT_KEY`` as plaintext when no secret id is set (tests only).
``UNKEY_BASE_URL``, ``UNKEY_TIMEOUT``
    Where Unkey is (default ``https://api.unkey.com``) and the per-request timeout (seconds).
``UNKEY_GRACE_PERIOD_SECONDS``
    How long the rotated-out key stays valid after finishSecret (default 86400, at least 300).
``UNKEY_ROTATION_HOLD_SECONDS``
    The original's expiry while a rotation is in flight, should it die mid-way (default 30 days).
``UNKEY_API_ID``
    The API this function rotates keys of, and creates the first key in when the secret has no
    value yet (or tag the secret ``unkey-api-id``).
``UNKEY_VERIFY_PERMISSIONS``
    A permission query testSecret requires the new key to pass (``"a.read AND b.write"``).
``UNKEY_KEY_PREFIX``, ``UNKEY_KEY_NAME``, ``UNKEY_EXTERNAL_ID``
    The first key's prefix, name and externalId (bootstrap only; rerolls copy the original's).
``UNKEY_METRICS``
    ``false`` to write no metrics (default ``true``: each step writes one document of
    CloudWatch's embedded metric format to standard output).
``UNKEY_AUDIT``
    ``false`` to emit no audit events (default ``true``: each change is a record of the
    logger ``unkey_secrets.audit``, enabled at INFO unless ``AWS_LAMBDA_LOG_LEVEL`` is set or
    something already set that logger's level; see ``docs/audit.md``).
``UNKEY_SECRETS_AWS_TIMEOUT``
    The seconds one Secrets Manager request may take, connect to the last byte of the answer
    (default 30).
``AWS_ENDPOINT_URL``, ``AWS_ENDPOINT_URL_SECRETS_MANAGER``, ``AWS_REGION``
    Honoured as boto3 does (``AWS_REGION`` is passed to it explicitly, since botocore reads
    ``AWS_DEFAULT_REGION`` only). The endpoint must be https://, or http:// to a loopback host.

Importing this module loads neither boto3 (imported at first use) nor hvac, pydantic-settings
or any CLI library, so the cold start stays small.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigurationError, UnkeySecretsError
from .._errors import RotationStepError as RotationStepError
from .._redact import guarded, hold
from .._secret import Secret
from ..stores.aws.errors import call, check_client_endpoint
from ..telemetry.audit import AUDIT_LOGGER
from ..unkey import UnkeyClient
from .config import RotationConfig, RuntimeConfig
from .rotator import Rotator

__all__ = [
    "RotationConfig",
    "Rotator",
    "RuntimeConfig",
    "build_rotator",
    "handler",
]

logger = logging.getLogger("unkey_secrets.aws_lambda")

# botocore logs whole request and response bodies at DEBUG (SecretString included) under these.
_BODY_LOGGERS = ("botocore.endpoint", "botocore.parsers")


@guarded
def handler(event: Mapping[str, Any], context: object = None) -> dict[str, str | None]:
    """Run one rotation step; returns the step, its outcome and key_ids (never a key).

    An error leaving it carries no botocore exception and no frame locals (they are cleared),
    so a traceback rendered with its locals shows no value from inside the step.
    """
    return _RUNTIME.rotator().handle(event)


@guarded(fresh=True)
def build_rotator(config: RuntimeConfig, secrets_manager: Any = None) -> Rotator:
    """Make the clients from ``config``: boto3's ``secretsmanager`` and an :class:`UnkeyClient`.

    ``secrets_manager`` replaces the boto3 client (tests, or a client with custom settings).
    Either way, a client whose endpoint is plain http to anything but a loopback host (from
    ``AWS_ENDPOINT_URL``, say) is refused with :class:`~unkey_secrets.ConfigurationError`
    before any request, and the client is held to the transport policy
    (:func:`unkey_secrets.transport.botocore.apply_policy`): each request, the root key's read
    included, ends within ``config.store_timeout`` seconds (a client passed in: its own
    ``connect_timeout + read_timeout``), whole answer included; an answer has a byte budget;
    plain http never goes through a proxy. ``AWS_REGION``, which botocore ignores, wins over
    ``AWS_DEFAULT_REGION``.
    """
    from ..transport.botocore import apply_policy

    _keep_bodies_out_of_logs()
    deadline: float | None = None
    if secrets_manager is None:
        import boto3
        from botocore.config import Config

        deadline = config.store_timeout
        secrets_manager = boto3.client(
            "secretsmanager",
            region_name=os.environ.get("AWS_REGION") or None,
            config=Config(connect_timeout=deadline, read_timeout=deadline),
        )
    check_client_endpoint(secrets_manager)
    apply_policy(secrets_manager, deadline=deadline)
    root_key = _root_key(secrets_manager, config)
    unkey = UnkeyClient(root_key, base_url=config.base_url, timeout=config.timeout)
    reload = None
    if config.root_key_secret_id is not None:
        # UNKEY_ROOT_KEY (tests only) cannot change under a running process: nothing to reload.
        reload = _RootKeyReader(secrets_manager, config, config.root_key_secret_id, root_key)
    metrics = _write_line if config.metrics else None
    return Rotator(secrets_manager, unkey, config.rotation, reload_unkey=reload, metrics=metrics)


def _write_line(line: str) -> None:
    # sys.stdout looked up at each write: Lambda's runtime (or a test) may have replaced it.
    # One write of the whole line, flushed, so no other output lands inside the document.
    stream = sys.stdout
    stream.write(line + "\n")
    stream.flush()


class _RootKeyReader:
    """Reads the root key's secret again for a :class:`Rotator` that Unkey refused.

    Returns an :class:`UnkeyClient` for a new value, None for the value it already holds.
    Raises what reading the secret raises (:class:`~unkey_secrets.ConfigurationError`) and
    :class:`~unkey_secrets.InvalidInputError` for a value that is no root key. The Rotator
    calls it under its lock, one call at a time.
    """

    def __init__(
        self, secrets_manager: Any, config: RuntimeConfig, secret_id: str, root_key: Secret
    ) -> None:
        self._secrets_manager = secrets_manager
        self._config = config
        self._secret_id = secret_id
        self._root_key = root_key

    def __repr__(self) -> str:
        # getattr: a half-built reader (its __init__ failed) is rendered by error reporters.
        return f"_RootKeyReader(secret_id={getattr(self, '_secret_id', None)!r})"

    def __call__(self) -> UnkeyClient | None:
        root_key = _root_key_from_secret(self._secrets_manager, self._secret_id)
        if root_key == self._root_key:  # Secret compares in constant time
            return None
        config = self._config
        client = UnkeyClient(root_key, base_url=config.base_url, timeout=config.timeout)
        self._root_key = root_key
        return client


class _Runtime:
    """The container's rotator, built at first use and reused by warm invocations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rotator: Rotator | None = None
        #: What this runtime did to the loggers' levels (undone by :meth:`reset`).
        self._level_set = False
        self._audit_level_set = False
        self._audit_silenced = False

    def rotator(self) -> Rotator:
        with self._lock:
            if self._rotator is None:
                # Lambda's application log level (its logging configuration) sets
                # AWS_LAMBDA_LOG_LEVEL and the root logger's level: when it is unset, the root
                # logger is at WARNING, and our INFO records (the step's line, the audit events)
                # would reach no log group. Loggers an application configured are left alone.
                chosen = bool(os.environ.get("AWS_LAMBDA_LOG_LEVEL"))
                if logger.level == logging.NOTSET and not chosen:
                    logger.setLevel(logging.INFO)
                    self._level_set = True
                config = RuntimeConfig.from_environ(os.environ)
                self._audit(config.audit, chosen)
                self._rotator = build_rotator(config)
            return self._rotator

    def _audit(self, wanted: bool, chosen: bool) -> None:
        """Turn the audit events off (``UNKEY_AUDIT=false``), or on at INFO as its own logger."""
        audit_logger = logging.getLogger(AUDIT_LOGGER)
        if not wanted:
            audit_logger.disabled = self._audit_silenced = True
        elif audit_logger.level == logging.NOTSET and not chosen:
            audit_logger.setLevel(logging.INFO)
            self._audit_level_set = True

    def reset(self) -> None:
        """Forget the clients (closing Unkey's), so the next call reads the environment again.

        The loggers' levels :meth:`rotator` set are unset, and the audit events it turned off
        are on again: the next call decides anew.
        """
        with self._lock:
            if self._rotator is not None:
                self._rotator.close()
            self._rotator = None
            if self._level_set:
                logger.setLevel(logging.NOTSET)
                self._level_set = False
            audit_logger = logging.getLogger(AUDIT_LOGGER)
            if self._audit_silenced:
                audit_logger.disabled = self._audit_silenced = False
            if self._audit_level_set:
                audit_logger.setLevel(logging.NOTSET)
                self._audit_level_set = False


_RUNTIME = _Runtime()


def _root_key(secrets_manager: Any, config: RuntimeConfig) -> Secret:
    if config.root_key_secret_id is not None:
        return _root_key_from_secret(secrets_manager, config.root_key_secret_id)
    if config.allow_root_key_env:
        value = os.environ.get("UNKEY_ROOT_KEY", "").strip()
        if value:
            hold(value)
            return Secret(value)
        raise ConfigurationError("UNKEY_ALLOW_ROOT_KEY_ENV is true but UNKEY_ROOT_KEY is empty")
    raise ConfigurationError(
        "set UNKEY_ROOT_KEY_SECRET_ID to the secret holding the Unkey root key"
    )


def _root_key_from_secret(secrets_manager: Any, secret_id: str) -> Secret:
    failure: ConfigurationError
    try:
        # A botocore error leaves call() translated and unchained (its request is not kept).
        answer = call(
            secrets_manager.get_secret_value,
            operation="GetSecretValue",
            location=secret_id,
            SecretId=secret_id,
        )
    except UnkeySecretsError as exc:
        failure = ConfigurationError(f"could not read the Unkey root key from {secret_id}: {exc}")
    else:
        return _root_key_from_answer(answer, secret_id)
    raise failure


def _root_key_from_answer(answer: Mapping[str, Any], secret_id: str) -> Secret:
    text = answer.get("SecretString")
    if not isinstance(text, str) or not text.strip():
        raise ConfigurationError(f"secret {secret_id} holds no root key string")
    text = text.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            # The decode error's .doc is the whole value: report the position only.
            raise ConfigurationError(f"secret {secret_id} is neither a root key nor JSON") from None
        text = data.get("root_key") if isinstance(data, dict) else None
        if not isinstance(text, str) or not text:
            raise ConfigurationError(f"secret {secret_id}'s JSON has no string member root_key")
    hold(text)
    return Secret(text)


def _keep_bodies_out_of_logs() -> None:
    for name in _BODY_LOGGERS:
        body_logger = logging.getLogger(name)
        if body_logger.getEffectiveLevel() < logging.INFO:
            body_logger.setLevel(logging.INFO)
