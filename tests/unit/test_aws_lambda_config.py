"""The rotation Lambda's configuration and root key loading (no servers: botocore Stubber)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from unkey_secrets import ConfigurationError, InvalidInputError
from unkey_secrets.aws_lambda import RotationConfig, RuntimeConfig, build_rotator

ROOT = "unkey_root_Secret123"


def test_defaults() -> None:
    config = RuntimeConfig.from_environ({})
    assert config.root_key_secret_id is None
    assert not config.allow_root_key_env
    assert config.base_url == "https://api.unkey.com"
    assert config.rotation.grace_period == dt.timedelta(days=1)
    assert config.rotation.hold == dt.timedelta(days=30)
    assert config.rotation.api_id is None


def test_everything_from_the_environment() -> None:
    config = RuntimeConfig.from_environ(
        {
            "UNKEY_ROOT_KEY_SECRET_ID": "arn:aws:secretsmanager:eu-west-1:1:secret:root",
            "UNKEY_ALLOW_ROOT_KEY_ENV": "TRUE",
            "UNKEY_BASE_URL": "http://127.0.0.1:9",
            "UNKEY_TIMEOUT": "3",
            "UNKEY_GRACE_PERIOD_SECONDS": "3600",
            "UNKEY_ROTATION_HOLD_SECONDS": "7200",
            "UNKEY_API_ID": "api_123",
            "UNKEY_VERIFY_PERMISSIONS": "a.read AND b.write",
            "UNKEY_KEY_PREFIX": "live",
            "UNKEY_KEY_NAME": "billing",
            "UNKEY_EXTERNAL_ID": "tenant_1",
        }
    )
    assert config.allow_root_key_env
    assert config.timeout == 3.0
    rotation = config.rotation
    assert rotation.grace_period == dt.timedelta(hours=1)
    assert rotation.hold == dt.timedelta(hours=2)
    assert (rotation.api_id, rotation.prefix, rotation.external_id) == (
        "api_123",
        "live",
        "tenant_1",
    )
    assert rotation.verify_permissions == "a.read AND b.write"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("UNKEY_GRACE_PERIOD_SECONDS", "soon", "UNKEY_GRACE_PERIOD_SECONDS"),
        ("UNKEY_GRACE_PERIOD_SECONDS", "60", "at least 300 seconds"),
        ("UNKEY_ROTATION_HOLD_SECONDS", "-5", "UNKEY_ROTATION_HOLD_SECONDS"),
        ("UNKEY_API_ID", "api with spaces", "UNKEY_API_ID"),
        ("UNKEY_KEY_PREFIX", "way_too_long_a_prefix", "UNKEY_KEY_PREFIX"),
        ("UNKEY_ALLOW_ROOT_KEY_ENV", "maybe", "UNKEY_ALLOW_ROOT_KEY_ENV"),
        ("UNKEY_TIMEOUT", "0", "UNKEY_TIMEOUT"),
    ],
)
def test_bad_values_name_the_variable_not_the_value(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        RuntimeConfig.from_environ({name: value})
    assert value not in str(raised.value) or value.isdigit()


def test_the_hold_never_undercuts_the_grace_period() -> None:
    with pytest.raises(InvalidInputError, match="hold"):
        RotationConfig(grace_period=dt.timedelta(days=2), hold=dt.timedelta(days=1))
    config = RuntimeConfig.from_environ({"UNKEY_GRACE_PERIOD_SECONDS": str(40 * 86_400)})
    assert config.rotation.hold == config.rotation.grace_period


def _client() -> Any:
    return boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.mark.parametrize("stored", [ROOT, f'{{"root_key": "{ROOT}"}}', f"  {ROOT}\n"])
def test_the_root_key_comes_from_its_secret(stored: str) -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("get_secret_value", {"SecretString": stored}, {"SecretId": "unkey/root"})
        rotator = build_rotator(
            RuntimeConfig.from_environ({"UNKEY_ROOT_KEY_SECRET_ID": "unkey/root"}), client
        )
        stub.assert_no_pending_responses()
    assert rotator.unkey._wire.root_key.reveal() == ROOT
    assert ROOT not in repr(rotator.unkey)


def test_a_root_key_secret_that_is_broken_json_is_not_quoted() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_response("get_secret_value", {"SecretString": '{"root_key": "' + ROOT})
        with pytest.raises(ConfigurationError, match="neither a root key nor JSON") as raised:
            build_rotator(RuntimeConfig.from_environ({"UNKEY_ROOT_KEY_SECRET_ID": "r"}), client)
    assert ROOT not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_an_unreadable_root_key_secret_is_a_configuration_error() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", "AccessDeniedException", http_status_code=400)
        with pytest.raises(ConfigurationError, match="AccessDeniedException"):
            build_rotator(RuntimeConfig.from_environ({"UNKEY_ROOT_KEY_SECRET_ID": "r"}), client)


def test_the_root_key_is_never_taken_from_the_environment_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNKEY_ROOT_KEY", ROOT)
    with pytest.raises(ConfigurationError, match="UNKEY_ROOT_KEY_SECRET_ID"):
        build_rotator(RuntimeConfig.from_environ({}), _client())
    allowed = build_rotator(
        RuntimeConfig.from_environ({"UNKEY_ALLOW_ROOT_KEY_ENV": "true"}), _client()
    )
    assert allowed.unkey._wire.root_key.reveal() == ROOT


def test_botocore_body_logging_is_held_at_info(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    for name in ("botocore.endpoint", "botocore.parsers"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    monkeypatch.setenv("UNKEY_ROOT_KEY", ROOT)
    build_rotator(RuntimeConfig.from_environ({"UNKEY_ALLOW_ROOT_KEY_ENV": "1"}), _client())
    for name in ("botocore.endpoint", "botocore.parsers"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG)
