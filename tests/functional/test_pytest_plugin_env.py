"""The shipped ``*_env`` fixtures: a failing test's report (``pytest -l``, JUnit XML) shows no
credential they set, while the test reads every value as it was set."""

from __future__ import annotations

import os
import pprint

import pytest
from _pytest._io.saferepr import saferepr

from unkey_secrets.testing.pytest_plugin import EnvValues


def _renderings(values: dict[str, str]) -> str:
    # What pytest -l (saferepr), an assertion's diff (pprint) and a print show.
    return "\n".join([saferepr(values), pprint.pformat(values), repr(values), str(values)])


def _shows(values: dict[str, str], name: str) -> bool:
    return f"{name!r}: {values[name]!r}" in _renderings(values)


def test_vault_env_hides_the_token(vault_env: dict[str, str]) -> None:
    token = os.environ["VAULT_TOKEN"]
    assert len(token) >= 16
    assert vault_env["VAULT_TOKEN"] == token
    assert token not in _renderings(vault_env)
    assert _shows(vault_env, "VAULT_ADDR")


def test_unkey_env_hides_the_root_key(unkey_env: dict[str, str]) -> None:
    assert unkey_env["UNKEY_ROOT_KEY"] == os.environ["UNKEY_ROOT_KEY"]
    assert not _shows(unkey_env, "UNKEY_ROOT_KEY")
    assert _shows(unkey_env, "UNKEY_BASE_URL")


def test_aws_env_hides_the_secret_key(aws_env: dict[str, str]) -> None:
    assert aws_env["AWS_SECRET_ACCESS_KEY"] == os.environ["AWS_SECRET_ACCESS_KEY"]
    assert not _shows(aws_env, "AWS_SECRET_ACCESS_KEY")
    assert _shows(aws_env, "AWS_ENDPOINT_URL")


@pytest.mark.parametrize(
    "name", ["UNKEY_ROOT_KEY", "VAULT_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
)
def test_env_values_mask_every_credential_variable(name: str) -> None:
    values = EnvValues({name: "s.canaryCANARYcanary0123", "PLAIN": "shown-value"})
    assert "canaryCANARY" not in _renderings(values)
    assert _shows(values, "PLAIN")
    assert values == {name: "s.canaryCANARYcanary0123", "PLAIN": "shown-value"}


def test_aws_env_is_enough_for_a_plain_boto3_client(aws_env: dict[str, str]) -> None:
    # boto3's own region variable is AWS_DEFAULT_REGION (botocore reads AWS_REGION only on
    # Lambda and newer releases): a client made with no argument must find moto's region.
    import boto3

    client = boto3.client("secretsmanager")
    assert client.meta.region_name == aws_env["AWS_DEFAULT_REGION"] == aws_env["AWS_REGION"]
    client.create_secret(Name="plain-boto3", SecretString="x")
    assert client.describe_secret(SecretId="plain-boto3")["Name"] == "plain-boto3"
    client.delete_secret(SecretId="plain-boto3", ForceDeleteWithoutRecovery=True)
