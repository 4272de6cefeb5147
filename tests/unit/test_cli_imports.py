"""A command imports what it needs: ``--help`` loads no store SDK, HTTP client or pydantic.

Each case runs the command in a fresh interpreter and lists the heavy packages in
``sys.modules`` afterwards: a module-level import added anywhere on the way (the package's
``__init__``, the command line's modules, a command module built into the parser) shows here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: What a command that talks to nothing has no use for.
HEAVY = ("hvac", "requests", "boto3", "botocore", "httpx", "pydantic", "pydantic_settings")

_PROBE = f"""
import contextlib, io, json, sys
from unkey_secrets.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))
print(json.dumps({{"code": code, "heavy": heavy}}))
"""


def _imported(*argv: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("--version",),
        ("provision", "--help"),
        ("rotate-due", "--help"),
        ("no-such-command",),
    ],
)
def test_help_imports_no_sdk_http_client_or_pydantic(argv: tuple[str, ...]) -> None:
    result = _imported(*argv)
    assert result["code"] in (0, 2), result  # 2: the unknown command's usage error
    assert result["heavy"] == [], result


def test_the_package_alone_imports_no_http_client_or_pydantic() -> None:
    code = (
        "import json, sys, unkey_secrets; "
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_the_lazy_names_are_the_modules_own() -> None:
    import unkey_secrets
    from unkey_secrets import flows, stores
    from unkey_secrets.unkey import client

    assert unkey_secrets.provision is flows.provision
    assert unkey_secrets.load_store is stores.load_store
    assert unkey_secrets.UnkeyClient is client.UnkeyClient
    assert "provision" in dir(unkey_secrets)
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = unkey_secrets.no_such_name  # type: ignore[attr-defined]


def test_a_built_in_store_is_found_without_scanning_every_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from unkey_secrets import stores

    def scan() -> object:
        raise AssertionError("scanned every installed distribution's entry points")

    monkeypatch.setattr(stores, "_entry_points", scan)
    assert stores.load_store("vault").name == "vault"
    assert stores.load_store("aws").name == "aws"


def test_an_unkey_client_of_a_plain_http_url_loads_no_ca_bundle() -> None:
    from unkey_secrets import UnkeyClient

    def context(client: UnkeyClient) -> object:
        return client._wire.http._transport._pool._ssl_context  # type: ignore[attr-defined]

    with UnkeyClient("unkey_root", base_url="http://127.0.0.1:8787") as local:
        assert context(local) is None
    with UnkeyClient("unkey_root", base_url="https://api.unkey.test") as remote:
        assert context(remote) is not None


def test_a_command_builds_and_imports_its_own_parser_only() -> None:
    code = (
        "import contextlib, io, json, sys\n"
        "from unkey_secrets.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['--json', 'stores'])\n"
        "print(json.dumps([code, sorted(m for m in sys.modules"
        " if m.startswith('unkey_secrets.cli.commands.'))]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == [0, []]


def test_a_usage_error_still_knows_every_commands_options(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from unkey_secrets.cli import app, main

    monkeypatch.setattr(app, "disable_core_dumps", lambda: True)

    # --all is list's option: named, not masked as a value, though provision runs.
    assert main(["provision", "--api-id", "api_1", "--all"]) == 2
    assert "(options: --all)" in capsys.readouterr().err
