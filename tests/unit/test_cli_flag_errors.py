"""A bad value given by a settings flag is named by that flag, not by the field or variable.

And ``--vault-addr`` says, in its help and in a warning, that ``VAULT_AGENT_ADDR`` wins over it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets import ConfigurationError, InvalidInputError
from unkey_secrets.cli import app as cli
from unkey_secrets.cli.options import SETTINGS_FLAGS
from unkey_secrets.stores.vault import VaultStore

ROLE = "arn:aws:iam::111122223333:role/unkey-writer"
#: Looks like a credential (a Vault token), so a leak of it is unmistakable.
CANARY = "hvs.CAN4RYzq7xK2mP9wQ3vL8tR5"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "UNKEY_SECRETS_", "VAULT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setattr(cli, "disable_core_dumps", lambda: True)


def _run(capsys: pytest.CaptureFixture[str], store: str, *flags: str) -> tuple[int, str]:
    code = cli.main(["--store", store, *flags, "show", "--api-id", "api_1", "--alias", "a"])
    return code, capsys.readouterr().err


#: (store, the flags given, the flag whose value is bad, what the message must not say)
CASES: list[tuple[str, list[str], str, list[str]]] = [
    # A role flag without --role-arn: both named as flags.
    ("aws", ["--role-external-id", "ext-0042"], "--role-external-id", ["external_id"]),
    ("aws", ["--role-session-name", "ci"], "--role-session-name", ["role_session_name"]),
    ("aws", ["--role-arn", ROLE, "--duration-seconds", "100"], "--duration-seconds", []),
    ("aws", ["--role-arn", ROLE, "--duration-seconds", "abc"], "--duration-seconds", []),
    ("aws", ["--role-arn", "arn:bad"], "--role-arn", []),
    ("aws", ["--role-arn", ROLE, "--role-external-id", "a b"], "--role-external-id", []),
    ("aws", ["--role-arn", ROLE, "--role-session-name", "a b"], "--role-session-name", []),
    ("aws", ["--endpoint-url", "http://10.1.1.1"], "--endpoint-url", []),
    ("aws", ["--region", "bogus region"], "--region", ["InvalidRegionError"]),
    ("aws", ["--profile", "nope"], "--profile", []),
    ("vault", ["--vault-addr", "http://10.0.0.1:8200"], "--vault-addr", []),
    ("vault", ["--mount", "../x"], "--mount", []),
]


@pytest.mark.parametrize(("store", "flags", "flag", "unsaid"), CASES)
def test_a_bad_flag_value_is_named_by_its_flag(
    capsys: pytest.CaptureFixture[str], store: str, flags: list[str], flag: str, unsaid: list[str]
) -> None:
    code, err = _run(capsys, store, *flags)
    assert code == 2, err
    assert flag in err, err
    setting = SETTINGS_FLAGS[flag]
    # Neither the Python field nor the environment variable: the value came from the flag.
    # (A field that is a plain word, region or mount, may still be said as a word.)
    field = setting.field if "_" in setting.field else None
    for word in [field, setting.variable, *unsaid]:
        if word is not None:
            assert word not in err, err


def test_a_role_flag_without_a_role_names_the_role_flag_to_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, err = _run(capsys, "aws", "--role-external-id", "ext-0042")
    assert code == 2
    assert err == (
        "error: invalid --role-external-id: applies to a role to assume: give --role-arn too\n"
    )


def test_the_same_bad_value_from_the_environment_names_its_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_DURATION_SECONDS", "100")
    code, err = _run(capsys, "aws")
    assert code == 2
    assert "UNKEY_SECRETS_AWS_DURATION_SECONDS" in err
    assert "--duration-seconds" not in err


def test_outside_the_cli_the_settings_are_named_as_python_names_them() -> None:
    from unkey_secrets.stores.aws import SecretsManagerStore

    with pytest.raises(InvalidInputError, match=r"invalid external_id: .* give role_arn too"):
        SecretsManagerStore(region="eu-west-1", external_id="ext-0042")


# -- --vault-addr and VAULT_AGENT_ADDR ------------------------------------------------------


def test_vault_addr_help_says_vault_agent_addr_wins(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    shown = " ".join(SETTINGS_FLAGS["--vault-addr"].help.split())
    assert shown in help_text
    assert "VAULT_AGENT_ADDR" in shown


@pytest.fixture
def vault_built(monkeypatch: pytest.MonkeyPatch) -> list[VaultStore]:
    built: list[VaultStore] = []

    class Building:
        @classmethod
        def from_settings(cls, **overrides: Any) -> VaultStore:
            built.append(VaultStore.from_settings(**overrides))
            raise ConfigurationError("stop here")

    monkeypatch.setattr(cli, "load_store", lambda name: Building)
    return built


@pytest.mark.parametrize("token", [None, CANARY])
def test_vault_addr_given_with_vault_agent_addr_warns_which_address_is_used(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    vault_built: list[VaultStore],
    caplog: pytest.LogCaptureFixture,
    token: str | None,
) -> None:
    monkeypatch.setenv("VAULT_AGENT_ADDR", "https://127.0.0.1:8100")
    if token is not None:
        monkeypatch.setenv("VAULT_TOKEN", token)
    with caplog.at_level(logging.WARNING):
        code, err = _run(capsys, "vault", "--vault-addr", "https://vault.flag.test:8200")
    assert code == 2
    (store,) = vault_built
    assert store.client.url == "https://127.0.0.1:8100"
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert "--vault-addr" in warning
    assert "VAULT_AGENT_ADDR" in warning
    assert "https://127.0.0.1:8100" in warning
    assert CANARY not in err + caplog.text


def test_vault_addr_alone_warns_nothing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    vault_built: list[VaultStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", CANARY)
    with caplog.at_level(logging.WARNING):
        code, err = _run(capsys, "vault", "--vault-addr", "https://vault.flag.test:8200")
    assert code == 2
    assert vault_built[0].client.url == "https://vault.flag.test:8200"
    assert "WARNING" not in err
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
