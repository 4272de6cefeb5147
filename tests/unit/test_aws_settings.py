"""AwsSettings: environment names, parsing, endpoint rule and a pinned repr."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from unkey_secrets.stores.aws.settings import AwsSettings, check_endpoint_url


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "UNKEY_SECRETS_AWS_")):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = AwsSettings()
    assert settings.region is None
    assert settings.endpoint_url is None
    assert settings.key_template == "unkey/{api_id}/{key_id}"
    assert settings.alias_template == "unkey/{api_id}/by-name/{alias}"
    assert settings.tags == {}
    assert settings.replica_regions == ()


def test_reads_the_standard_and_prefixed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://secretsmanager.eu-west-1.amazonaws.com")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_KEY_TEMPLATE", "k/{key_id}")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_ALIAS_TEMPLATE", "n/{alias}")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_KMS_KEY_ID", "alias/unkey")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_TAGS", '{"team": "core", "env": "prod"}')
    monkeypatch.setenv("UNKEY_SECRETS_AWS_REPLICA_REGIONS", '["us-east-2", "us-west-2"]')
    monkeypatch.setenv("UNKEY_SECRETS_AWS_DESCRIPTION", "Unkey key")
    settings = AwsSettings()
    assert settings.region == "eu-west-1"
    assert settings.endpoint_url == "https://secretsmanager.eu-west-1.amazonaws.com"
    assert settings.key_template == "k/{key_id}"
    assert settings.alias_template == "n/{alias}"
    assert settings.kms_key_id == "alias/unkey"
    assert settings.tags == {"team": "core", "env": "prod"}
    assert settings.replica_regions == ("us-east-2", "us-west-2")
    assert settings.description == "Unkey key"


def test_aws_region_wins_over_the_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert AwsSettings().region == "us-east-2"


def test_replica_regions_as_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_AWS_REPLICA_REGIONS", " eu-west-1,eu-west-2 ,")
    assert AwsSettings().replica_regions == ("eu-west-1", "eu-west-2")


def test_fields_by_name() -> None:
    settings = AwsSettings(region="ap-south-1", endpoint_url="http://localhost:5000")
    assert settings.region == "ap-south-1"
    assert settings.endpoint_url == "http://localhost:5000"


@pytest.mark.parametrize(
    "url",
    ["http://sm.example.com", "http://10.0.0.1:4566", "ftp://127.0.0.1", "https://", "127.0.0.1"],
)
def test_plain_http_only_to_loopback(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    with pytest.raises(ValidationError):
        AwsSettings()
    with pytest.raises(ValueError, match="loopback"):
        check_endpoint_url(url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:4566", "http://[::1]:5000", "http://localhost", "https://x.test"]
)
def test_allowed_endpoints(url: str) -> None:
    assert check_endpoint_url(url) == url


def test_repr_is_pinned() -> None:
    settings = AwsSettings(region="eu-west-1", tags={"team": "core"})
    assert repr(settings) == (
        "AwsSettings(region='eu-west-1', endpoint_url=None, "
        "key_template='unkey/{api_id}/{key_id}', alias_template='unkey/{api_id}/by-name/{alias}', "
        "rotation_template='unkey/rotated-from/{api_id}/{key_id}', "
        "kms_key_id=None, tags={'team': 'core'}, replica_regions=(), description=None)"
    )
