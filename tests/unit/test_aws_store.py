"""The Secrets Manager store without a server: botocore Stubber, validation, lazy imports."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import ANY, Stubber
from hypothesis import given
from hypothesis import strategies as st

from tests.unit._aws_client import make_client
from unkey_secrets import ConfigurationError, InvalidInputError, Secret
from unkey_secrets._models import IssuedKey
from unkey_secrets.stores.aws import (
    MAX_VALUE_BYTES,
    VERSION_NAMESPACE,
    SecretsManagerStore,
    validate_secret_name,
    version_id_for,
)
from unkey_secrets.stores.aws.settings import AwsSettings
from unkey_secrets.testing.contract import canary_key

ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:unkey/x-AbCdEf"
AWS_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    client = make_client()
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def test_version_id_is_a_documented_uuid5() -> None:
    assert str(VERSION_NAMESPACE) == "579ee899-1078-5449-b0a4-cfa83c96ca44"
    assert version_id_for("key_3fG9aK1pQ") == "8ae58225-7c51-532f-873a-f0879775d8a9"
    assert version_id_for("key_3fG9aK1pQ") == str(uuid.uuid5(VERSION_NAMESPACE, "key_3fG9aK1pQ"))
    assert 32 <= len(version_id_for("key_3fG9aK1pQ")) <= 64
    assert version_id_for("key_a") != version_id_for("key_b")
    with pytest.raises(InvalidInputError):
        version_id_for("../x")


@pytest.mark.parametrize(
    "name", ["unkey/api_1/key_1", "a", "a" * 512, "x/+=.@_-/y", "svc-prod1", "unkey/by-name/x"]
)
def test_valid_secret_names(name: str) -> None:
    assert validate_secret_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "a" * 513, "a b", "a#b", "unkey/ü", "svc-prod12", "unkey/key-AbCdEf"]
)
def test_invalid_secret_names(name: str) -> None:
    with pytest.raises(InvalidInputError):
        validate_secret_name(name)


_CLIENT = make_client()
_STORES = st.sampled_from(
    [
        SecretsManagerStore(_CLIENT, key_template=key, alias_template=alias)
        for key, alias in [
            ("unkey/{api_id}/{key_id}", "unkey/{api_id}/by-name/{alias}"),
            ("{key_id}", "{alias}"),
            ("prod/unkey-{api_id}/{key_id}", "prod/{api_id}-{alias}"),
            ("a.b@c+d=e/{key_id}", "a.b@c+d=e/current/{alias}"),
        ]
    ]
)
_TEXT = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"[A-Za-z0-9_]{1,260}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.\-/ ]{1,140}", fullmatch=True),
)


@given(store=_STORES, api_id=_TEXT, key_id=_TEXT, name=_TEXT)
def test_every_accepted_name_is_an_aws_name_inside_the_prefix(
    store: SecretsManagerStore, api_id: str, key_id: str, name: str
) -> None:
    for template, render in (
        (store.key_template, lambda: store.key_location(api_id=api_id, key_id=key_id)),
        (store.alias_template, lambda: store.alias_location(api_id=api_id, alias=name)),
    ):
        try:
            rendered = validate_secret_name(render())
        except InvalidInputError:
            continue
        assert AWS_NAME.fullmatch(rendered)
        assert rendered.startswith(template.prefix)
        assert not {".", ".."} & set(rendered.split("/"))
        assert "" not in rendered.split("/")


def test_an_oversize_value_makes_no_call(stubbed: tuple[Any, Stubber]) -> None:
    client, _ = stubbed  # nothing queued: any call would raise UnStubbedResponseError
    store = SecretsManagerStore(client)
    key = IssuedKey(key_id="key_big", api_id="api_big", secret=Secret("k" * MAX_VALUE_BYTES))
    with pytest.raises(InvalidInputError) as raised:
        store.put(key)
    assert raised.value.field == "key"
    assert "k" * 32 not in str(raised.value)
    with pytest.raises(InvalidInputError):
        store.set_current(key, alias="svc")


def test_a_name_with_an_arn_like_suffix_makes_no_call(stubbed: tuple[Any, Stubber]) -> None:
    client, _ = stubbed
    store = SecretsManagerStore(client)
    with pytest.raises(InvalidInputError):
        store.set_current(canary_key(), alias="svc-prod12")


def test_create_passes_kms_key_replicas_description_and_tags(
    stubbed: tuple[Any, Stubber],
) -> None:
    client, stubber = stubbed
    store = SecretsManagerStore(
        client,
        kms_key_id="alias/unkey",
        tags={"team": "payments"},
        replica_regions=["eu-west-1", "us-west-2"],
        description="Unkey API key",
    )
    key = canary_key()
    name = f"unkey/{key.api_id}/{key.key_id}"
    token = version_id_for(key.key_id)
    # No DescribeSecret first: CreateSecret alone, for a new key.
    stubber.add_response(
        "create_secret",
        {"ARN": ARN, "Name": name, "VersionId": token},
        {
            "Name": name,
            "ClientRequestToken": token,
            "SecretString": ANY,
            "KmsKeyId": "alias/unkey",
            "Description": "Unkey API key",
            "AddReplicaRegions": [{"Region": "eu-west-1"}, {"Region": "us-west-2"}],
            "Tags": [
                {"Key": "managed-by", "Value": "unkey-secrets"},
                {"Key": "unkey-kind", "Value": "key"},
                {"Key": "unkey-key-id", "Value": key.key_id},
                {"Key": "unkey-api-id", "Value": key.api_id},
                {"Key": "team", "Value": "payments"},
            ],
        },
    )
    stored = store.put(key)
    assert stored.location == ARN
    assert stored.version == token
    assert stored.created


def test_the_writer_never_reads_a_value(stubbed: tuple[Any, Stubber]) -> None:
    client, stubber = stubbed
    store = SecretsManagerStore(client)
    key = canary_key()
    token = version_id_for(key.key_id)
    # The name exists and is ours: resolved from DescribeSecret alone, no GetSecretValue queued.
    stubber.add_client_error("create_secret", "ResourceExistsException", http_status_code=400)
    stubber.add_response(
        "describe_secret",
        {
            "ARN": ARN,
            "Name": "x",
            "Tags": [
                {"Key": "managed-by", "Value": "unkey-secrets"},
                {"Key": "unkey-key-id", "Value": key.key_id},
            ],
            "VersionIdsToStages": {token: ["AWSCURRENT"]},
        },
    )
    assert not store.put(key).created


def test_importing_the_store_imports_no_boto3() -> None:
    code = (
        "import sys, unkey_secrets.stores.aws, unkey_secrets.stores.aws.settings;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_boto3_construction_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("boto3", "botocore", "botocore.config", "botocore.exceptions"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigurationError, match=r"pip install 'unkey-secrets\[aws\]'"):
        SecretsManagerStore(region="us-east-1")


def _isolate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AWS_") or name.startswith("UNKEY_SECRETS_AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


def test_default_client_uses_standard_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolate_env(monkeypatch)
    store = SecretsManagerStore(region="eu-central-1", endpoint_url="https://sm.example.test")
    assert store.client.meta.region_name == "eu-central-1"
    assert store.client.meta.endpoint_url == "https://sm.example.test"
    assert store.client.meta.config.retries["mode"] == "standard"


def test_no_region_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolate_env(monkeypatch)
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        SecretsManagerStore()


def test_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolate_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_KEY_TEMPLATE", "keys/{api_id}/{key_id}")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_TAGS", '{"team": "core"}')
    monkeypatch.setenv("UNKEY_SECRETS_AWS_REPLICA_REGIONS", "eu-west-1, eu-west-2")
    store = SecretsManagerStore.from_settings()
    assert store.client.meta.region_name == "ap-southeast-2"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:4566"
    assert store.key_location(api_id="api_1", key_id="key_1") == "keys/api_1/key_1"
    assert store.tags == {"team": "core"}
    assert store.replica_regions == ("eu-west-1", "eu-west-2")
    assert repr(store) == (
        "SecretsManagerStore(key_template='keys/{api_id}/{key_id}', "
        "alias_template='unkey/{api_id}/by-name/{alias}', region='ap-southeast-2')"
    )


def test_explicit_options_win_over_settings() -> None:
    settings = AwsSettings(key_template="keys/{key_id}", description="from settings")
    store = SecretsManagerStore(make_client(), settings=settings, description="explicit")
    assert store.description == "explicit"
    assert store.key_template.template == "keys/{key_id}"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("endpoint_url", "http://sm.example.test"),
        ("endpoint_url", "ftp://127.0.0.1"),
        ("tags", {"aws:owner": "x"}),
        ("tags", {"managed-by": "someone"}),
        ("tags", {"bad#key": "x"}),
        ("tags", {f"t{i}": "x" for i in range(47)}),
        ("replica_regions", ["not a region"]),
        ("replica_regions", "eu-west-1"),
        ("kms_key_id", ""),
        ("description", "d" * 2049),
        ("key_template", "{api_id}/{key_id}-suffix"),
        ("alias_template", "names/{alias} x"),
    ],
)
def test_bad_options_are_refused(option: str, value: Any) -> None:
    with pytest.raises(InvalidInputError):
        SecretsManagerStore(make_client(), **{option: value})


# -- the endpoint and region, wherever boto3 takes them from --------------------------------

# Documentation addresses, as strings only: the check refuses before any request is made.
INSECURE = ["http://203.0.113.5:8080", "http://sm.example.test"]


@pytest.mark.parametrize("variable", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"])
@pytest.mark.parametrize("url", INSECURE)
def test_a_plain_http_endpoint_from_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, url: str
) -> None:
    _isolate_env(monkeypatch)
    monkeypatch.setenv(variable, url)
    with pytest.raises(ConfigurationError, match=variable) as raised:
        SecretsManagerStore(region="us-east-1")
    assert url not in str(raised.value)


def test_a_plain_http_endpoint_from_the_config_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _isolate_env(monkeypatch)
    config = tmp_path / "config"
    config.write_text("[default]\nendpoint_url = http://203.0.113.5:8080\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    with pytest.raises(ConfigurationError, match="config file"):
        SecretsManagerStore(region="us-east-1")


@pytest.mark.parametrize("url", INSECURE)
def test_a_plain_http_client_passed_in_is_refused(url: str) -> None:
    import boto3

    plain = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    ).client("secretsmanager", endpoint_url=url)
    with pytest.raises(ConfigurationError, match="https://"):
        SecretsManagerStore(plain)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:4566", "http://localhost:4566", "https://sm.example.test"]
)
def test_loopback_and_https_endpoints_from_the_environment_are_accepted(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    _isolate_env(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
    assert SecretsManagerStore(region="us-east-1").client.meta.endpoint_url == url


def test_aws_region_alone_is_enough_and_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolate_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert SecretsManagerStore().client.meta.region_name == "eu-west-3"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert SecretsManagerStore().client.meta.region_name == "eu-west-3"
    monkeypatch.delenv("AWS_REGION")
    assert SecretsManagerStore().client.meta.region_name == "us-west-2"


@pytest.mark.parametrize("url", INSECURE)
def test_from_settings_names_a_bad_endpoint_without_quoting_it(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    _isolate_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    with pytest.raises(ConfigurationError, match="AWS_ENDPOINT_URL") as raised:
        SecretsManagerStore.from_settings()
    assert url not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


@pytest.mark.parametrize("tags", ["{not json", '{"team": 1}', "[1]"])
def test_from_settings_names_bad_tags_without_quoting_them(
    monkeypatch: pytest.MonkeyPatch, tags: str
) -> None:
    _isolate_env(monkeypatch)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_TAGS", tags)
    with pytest.raises(ConfigurationError, match="UNKEY_SECRETS_AWS_TAGS") as raised:
        SecretsManagerStore.from_settings()
    assert tags not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
