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


def test_an_unreadable_root_key_secret_chains_no_botocore_error() -> None:
    client = _client()
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", "AccessDeniedException", http_status_code=400)
        with pytest.raises(ConfigurationError) as raised:
            build_rotator(RuntimeConfig.from_environ({"UNKEY_ROOT_KEY_SECRET_ID": "r"}), client)
    assert "AccessDeniedException" in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


def _isolate_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("UNKEY_ROOT_KEY", ROOT)


# Documentation addresses, as strings only: the check refuses before any request is made.
@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"])
@pytest.mark.parametrize("url", ["http://203.0.113.5:8080", "http://sm.example.test"])
def test_a_plain_http_endpoint_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    _isolate_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigurationError, match=variable) as raised:
        build_rotator(RuntimeConfig.from_environ({"UNKEY_ALLOW_ROOT_KEY_ENV": "true"}))
    assert url not in str(raised.value)


def test_a_plain_http_client_passed_in_is_refused() -> None:
    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://203.0.113.5:8080",
    )
    with pytest.raises(ConfigurationError, match="https://"):
        build_rotator(RuntimeConfig.from_environ({"UNKEY_ALLOW_ROOT_KEY_ENV": "true"}), client)


@pytest.mark.parametrize("url", ["http://127.0.0.1:4566", "https://sm.example.test"])
def test_loopback_and_https_endpoints_are_accepted(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    _isolate_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    rotator = build_rotator(RuntimeConfig.from_environ({"UNKEY_ALLOW_ROOT_KEY_ENV": "true"}))
    assert rotator.secrets.client.meta.endpoint_url == url


def test_aws_region_is_honoured_and_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolate_aws_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    config = RuntimeConfig.from_environ({"UNKEY_ALLOW_ROOT_KEY_ENV": "true"})
    assert build_rotator(config).secrets.client.meta.region_name == "eu-west-3"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert build_rotator(config).secrets.client.meta.region_name == "eu-west-3"
