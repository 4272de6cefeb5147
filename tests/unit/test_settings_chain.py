"""One precedence chain: explicit argument > environment > default, errors translated once.

``load_settings`` builds every component's settings; the stores' ``from_settings``, the Unkey
client's and the CLI's settings flags all go through it, and the CLI never writes
``os.environ``.
"""

from __future__ import annotations

import os
import pickle
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_settings import BaseSettings

from unkey_secrets import ConfigurationError, UnkeyClient
from unkey_secrets.cli import app as cli
from unkey_secrets.settings import AwsSettings, UnkeySettings, VaultSettings, load_settings
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore

#: Looks like a credential (a Vault token), so a leak of it is unmistakable.
CANARY = "hvs.CAN4RYzq7xK2mP9wQ3vL8tR5"

_PREFIXES = ("UNKEY_", "VAULT_", "AWS_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name)
    # No ~/.vault-token, no AWS config files of the machine's user.
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "aws-config").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setattr(cli, "disable_core_dumps", lambda: True)


# -- the precedence chain --------------------------------------------------------------------

#: (settings class, field, its environment variable, a value, another value, the default)
_CHAIN: list[tuple[type[BaseSettings], str, str, Any, Any, Any]] = [
    (
        UnkeySettings,
        "base_url",
        "UNKEY_BASE_URL",
        "https://env.test",
        "https://arg.test",
        "https://api.unkey.com",
    ),
    (UnkeySettings, "timeout", "UNKEY_TIMEOUT", "7.5", 2.5, 10.0),
    (VaultSettings, "addr", "VAULT_ADDR", "https://env.test", "https://arg.test", None),
    (VaultSettings, "namespace", "VAULT_NAMESPACE", "env-ns", "arg-ns", None),
    (VaultSettings, "mount", "UNKEY_SECRETS_VAULT_MOUNT", "envkv", "argkv", "secret"),
    (AwsSettings, "region", "AWS_REGION", "eu-west-1", "us-east-2", None),
    (AwsSettings, "region", "AWS_DEFAULT_REGION", "eu-west-1", "us-east-2", None),
    (AwsSettings, "endpoint_url", "AWS_ENDPOINT_URL", "https://env.test", "https://arg.test", None),
    (AwsSettings, "profile", "AWS_PROFILE", "env-profile", "arg-profile", None),
]


@pytest.mark.parametrize(("cls", "field", "variable", "env", "arg", "default"), _CHAIN)
def test_argument_beats_environment_beats_default(
    monkeypatch: pytest.MonkeyPatch,
    cls: type[BaseSettings],
    field: str,
    variable: str,
    env: Any,
    arg: Any,
    default: Any,
) -> None:
    assert getattr(load_settings(cls), field) == default
    monkeypatch.setenv(variable, env)
    loaded = getattr(load_settings(cls), field)
    assert loaded == (float(env) if isinstance(arg, float) else env)
    assert getattr(load_settings(cls, **{field: arg}), field) == arg


def test_an_override_of_none_is_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "https://env.test")
    assert load_settings(VaultSettings, addr=None).addr == "https://env.test"


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="VaultSettings has no setting adress"):
        load_settings(VaultSettings, adress="https://vault.test")


@pytest.mark.parametrize("variable", ["REGION", "ENDPOINT_URL", "PROFILE"])
def test_aws_settings_read_the_standard_names_only(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # A bare REGION or ENDPOINT_URL belongs to some other tool: it must not redirect writes.
    monkeypatch.setenv(variable, "https://elsewhere.test")
    settings = load_settings(AwsSettings)
    assert (settings.region, settings.endpoint_url, settings.profile) == (None, None, None)


# -- invalid values: one error, the same from the environment and from an argument -----------

#: (settings class, field, its environment variable, an invalid value holding the canary)
_INVALID: list[tuple[type[BaseSettings], str, str, str]] = [
    (UnkeySettings, "timeout", "UNKEY_TIMEOUT", CANARY),
    (UnkeySettings, "max_retries", "UNKEY_MAX_RETRIES", CANARY),
    (VaultSettings, "addr", "VAULT_ADDR", f"http://{CANARY}@10.0.0.1:8200"),
    (VaultSettings, "kv_version", "UNKEY_SECRETS_VAULT_KV_VERSION", CANARY),
    (VaultSettings, "auth_method", "UNKEY_SECRETS_VAULT_AUTH_METHOD", CANARY),
    (VaultSettings, "mount", "UNKEY_SECRETS_VAULT_MOUNT", f"../{CANARY}"),
    (AwsSettings, "endpoint_url", "AWS_ENDPOINT_URL", f"http://{CANARY}@10.0.0.1"),
    (AwsSettings, "max_connections", "UNKEY_SECRETS_AWS_MAX_CONNECTIONS", CANARY),
]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        yield current
        current = current.__cause__ or current.__context__


def assert_no_canary(exc: BaseException, canary: str = CANARY) -> None:
    """Nowhere: message, args, repr, the cause/context chain, the rendered traceback, locals."""
    for error in _chain(exc):
        for text in (str(error), repr(error), repr(error.args)):
            assert canary not in text
    rendered = "".join(traceback.format_exception(exc))
    assert canary not in rendered
    # Our own object, round-tripped in-process: nothing untrusted is unpickled.
    assert canary not in repr(pickle.loads(pickle.dumps(exc)).args)  # noqa: S301
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_globals.get("__name__", "").startswith("unkey_secrets"):
            assert canary not in repr(frame.f_locals), frame.f_code.co_name
        tb = tb.tb_next


def _error(cls: type[BaseSettings], **overrides: Any) -> ConfigurationError:
    with pytest.raises(ConfigurationError) as raised:
        load_settings(cls, **overrides)
    return raised.value


@pytest.mark.parametrize(("cls", "field", "variable", "value"), _INVALID)
def test_an_invalid_value_is_one_error_naming_the_field_never_the_value(
    monkeypatch: pytest.MonkeyPatch, cls: type[BaseSettings], field: str, variable: str, value: str
) -> None:
    from_argument = _error(cls, **{field: value})
    monkeypatch.setenv(variable, value)
    from_environment = _error(cls)
    assert str(from_argument) == str(from_environment)
    message = str(from_environment)
    assert message.startswith(f"invalid {cls.__name__}: {field} (")
    assert variable in message
    for raised in (from_argument, from_environment):
        assert raised.__cause__ is None
        assert raised.__context__ is None
        assert_no_canary(raised)


def test_an_environment_value_that_is_not_json_is_named_not_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_AWS_TAGS", f"{{{CANARY}")
    raised = _error(AwsSettings)
    assert str(raised) == "invalid AwsSettings: tags (UNKEY_SECRETS_AWS_TAGS): not valid JSON"
    assert raised.__cause__ is None
    assert raised.__context__ is None
    assert_no_canary(raised)


def test_a_dict_key_of_the_input_is_not_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic's loc of a dict field includes the input's own keys.
    raised = _error(AwsSettings, tags={CANARY: 1})
    assert "tags (UNKEY_SECRETS_AWS_TAGS)" in str(raised)
    assert_no_canary(raised)


# -- every from_settings goes through it -----------------------------------------------------


def test_the_unkey_client_takes_settings_as_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNKEY_ROOT_KEY", "unkey_root_" + "x" * 20)
    monkeypatch.setenv("UNKEY_BASE_URL", "https://env.test")
    monkeypatch.setenv("UNKEY_TIMEOUT", CANARY)
    # The environment's invalid timeout is overridden, so it is never validated.
    with UnkeyClient.from_settings(base_url="https://arg.test", timeout=3) as client:
        assert "arg.test" in repr(client)
    with pytest.raises(ConfigurationError) as raised:
        UnkeyClient.from_settings()
    assert str(raised.value).startswith("invalid UnkeySettings: timeout (UNKEY_TIMEOUT): ")
    assert_no_canary(raised.value)


def test_the_vault_store_takes_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "https://env.test")
    monkeypatch.setenv("VAULT_TOKEN", "hvs.env")
    store = VaultStore.from_settings(addr="https://arg.test:8200", mount="argkv")
    assert (store.client.url, store.mount) == ("https://arg.test:8200", "argkv")
    store = VaultStore.from_settings()
    assert (store.client.url, store.mount) == ("https://env.test", "secret")
    with pytest.raises(ConfigurationError, match="not both"):
        VaultStore.from_settings(VaultSettings(addr="https://a.test"), mount="kv")


def test_the_vault_store_names_a_bad_override_without_its_value() -> None:
    with pytest.raises(ConfigurationError) as raised:
        VaultStore.from_settings(addr=f"http://{CANARY}@10.0.0.1", token="t")
    assert "addr (VAULT_ADDR)" in str(raised.value)
    assert_no_canary(raised.value)


def test_the_aws_store_takes_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://env.test")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    store = SecretsManagerStore.from_settings(
        region="us-east-2", endpoint_url="http://127.0.0.1:5000"
    )
    assert store.client.meta.region_name == "us-east-2"
    assert store.client.meta.endpoint_url == "http://127.0.0.1:5000"
    store = SecretsManagerStore.from_settings()
    assert store.client.meta.region_name == "eu-west-1"
    assert store.client.meta.endpoint_url == "https://env.test"


def test_the_aws_profile_override_wins_over_aws_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_PROFILE", "from-env")
    with pytest.raises(ConfigurationError, match="AWS profile 'from-arg'"):
        SecretsManagerStore.from_settings(profile="from-arg")
    with pytest.raises(ConfigurationError, match="AWS profile 'from-env'"):
        SecretsManagerStore.from_settings()


# -- the CLI hands its flags over as overrides -----------------------------------------------


class _Stop(Exception):
    pass


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[VaultSettings]:
    """The settings the real VaultStore.from_settings built, through the real store_from_env."""
    seen: list[VaultSettings] = []

    class Spy(VaultStore):
        def __init__(self, *args: Any, settings: VaultSettings | None = None, **kw: Any) -> None:
            assert settings is not None
            seen.append(settings)
            raise ConfigurationError("stop here")

    monkeypatch.setattr(cli, "load_store", lambda name: Spy)
    return seen


def _main(*argv: str) -> int:
    return cli.main(["--store", "vault", "show", "--api-id", "api_1", "--alias", "a", *argv])


def test_a_cli_flag_wins_over_the_environment_which_wins_over_the_default(
    monkeypatch: pytest.MonkeyPatch, built: list[VaultSettings]
) -> None:
    assert _main() == 2
    assert (built[-1].addr, built[-1].mount) == (None, "secret")
    monkeypatch.setenv("VAULT_ADDR", "https://env.test")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_MOUNT", "envkv")
    assert _main() == 2
    assert (built[-1].addr, built[-1].mount) == ("https://env.test", "envkv")
    before = dict(os.environ)
    assert _main("--vault-addr", "https://flag.test", "--mount", "flagkv") == 2
    assert (built[-1].addr, built[-1].mount) == ("https://flag.test", "flagkv")
    assert dict(os.environ) == before


def test_a_cli_run_leaves_os_environ_identical(
    monkeypatch: pytest.MonkeyPatch, built: list[VaultSettings]
) -> None:
    before = dict(os.environ)
    flags = ["--vault-addr", "https://flag.test", "--vault-namespace", "ns", "--mount", "kv"]
    flags += ["--region", "eu-west-1", "--profile", "p", "--endpoint-url", "https://e.test"]
    assert _main(*flags) == 2
    assert dict(os.environ) == before


def test_an_invalid_flag_and_an_invalid_variable_each_name_where_the_value_came_from(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    built: list[VaultSettings],
) -> None:
    bad = f"http://{CANARY}@10.0.0.1:8200"
    assert _main("--vault-addr", bad) == 2
    from_flag = capsys.readouterr()
    monkeypatch.setenv("VAULT_ADDR", bad)
    assert _main() == 2
    from_env = capsys.readouterr()
    # The same problem, named by the flag or by the variable that gave the value.
    assert from_flag.err.startswith("error: invalid VaultSettings: --vault-addr: ")
    assert "VAULT_ADDR" not in from_flag.err
    assert from_env.err.startswith("error: invalid VaultSettings: addr (VAULT_ADDR): ")
    assert from_flag.err.replace("--vault-addr", "VAULT_ADDR") == from_env.err.replace(
        "addr (VAULT_ADDR)", "VAULT_ADDR"
    )
    assert CANARY not in from_flag.out + from_flag.err
    assert CANARY not in from_env.out + from_env.err
    assert built == []
