"""The CLI's role flags: each sets one AwsSettings field for the run, over its variable."""

from __future__ import annotations

import os

import pytest

from unkey_secrets import ConfigurationError
from unkey_secrets.cli import app as cli
from unkey_secrets.stores.aws import SecretsManagerStore

ROLE = "arn:aws:iam::111122223333:role/unkey-writer"

FLAGS = [
    ("--role-arn", "role_arn", "UNKEY_SECRETS_AWS_ROLE_ARN", ROLE),
    ("--role-external-id", "external_id", "UNKEY_SECRETS_AWS_EXTERNAL_ID", "ext-0042"),
    ("--role-session-name", "role_session_name", "UNKEY_SECRETS_AWS_ROLE_SESSION_NAME", "ci"),
    ("--duration-seconds", "duration_seconds", "UNKEY_SECRETS_AWS_DURATION_SECONDS", "1800"),
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "UNKEY_SECRETS_AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


@pytest.mark.parametrize(("flag", "field", "variable", "value"), FLAGS)
def test_a_role_flag_overrides_its_variable_for_the_run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    field: str,
    variable: str,
    value: str,
) -> None:
    from unkey_secrets.settings import AwsSettings, load_settings

    seen: dict[str, object] = {}

    class Recording:
        @classmethod
        def from_settings(cls, **overrides: str) -> SecretsManagerStore:
            seen["overrides"] = overrides
            settings = load_settings(AwsSettings, **{"role_arn": ROLE, **overrides})
            seen["value"] = getattr(settings, field)
            raise ConfigurationError("stop here")

    monkeypatch.setattr(cli, "load_store", lambda name: Recording)
    monkeypatch.setenv(variable, "9999" if field == "duration_seconds" else "from-environment")
    before = dict(os.environ)
    code = cli.main(["--store", "aws", flag, value, "show", "--api-id", "api_1", "--alias", "a"])
    assert (code, capsys.readouterr().err) == (2, "error: stop here\n")
    assert seen["overrides"] == {field: value}
    assert str(seen["value"]) == value
    assert dict(os.environ) == before


def test_the_role_flags_reach_the_store_and_provision_keeps_its_external_id(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[SecretsManagerStore] = []

    class Keeping:
        @classmethod
        def from_settings(cls, **overrides: str) -> SecretsManagerStore:
            store = SecretsManagerStore.from_settings(**overrides)
            built.append(store)
            raise ConfigurationError("stop here")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example")
    monkeypatch.setattr(cli, "load_store", lambda name: Keeping)
    argv = ["--store", "aws", "--region", "eu-west-1", "--endpoint-url", "https://sm.test"]
    argv += ["--role-arn", ROLE, "--role-external-id", "ext-0042"]
    argv += ["provision", "--api-id", "api_1", "--external-id", "tenant_7"]
    assert cli.main(argv) == 2
    assert "stop here" in capsys.readouterr().err
    (store,) = built
    # The role is held by the client's credentials; nothing was asked of STS yet.
    assert store.client.meta.region_name == "eu-west-1"
    credentials = store.client._get_credentials()
    assert credentials.method == "unkey-secrets-assume-role"


@pytest.mark.parametrize(
    ("flag", "value", "variable"),
    [
        ("--duration-seconds", "60", "UNKEY_SECRETS_AWS_DURATION_SECONDS"),
        ("--role-arn", "arn:aws:iam::1:role/canary", "UNKEY_SECRETS_AWS_ROLE_ARN"),
        ("--role-session-name", "has space canary", "UNKEY_SECRETS_AWS_ROLE_SESSION_NAME"),
    ],
)
def test_a_bad_role_flag_is_a_usage_error_without_its_value(
    capsys: pytest.CaptureFixture[str], flag: str, value: str, variable: str
) -> None:
    argv = ["--store", "aws", "--region", "eu-west-1", flag, value]
    code = cli.main([*argv, "show", "--api-id", "api_1", "--alias", "a"])
    err = capsys.readouterr().err
    assert code == 2
    # Named by the flag that gave the value, not by the variable it overrides.
    assert flag in err
    assert variable not in err
    assert "canary" not in err
