"""Running the real ``unkey-secrets`` console script in a subprocess, configured as users do.

The environment is built from scratch for each run (no AWS_/VAULT_/UNKEY_ variable of the test
process leaks in) and points at the session's loopback servers. :func:`tapped_emulator` serves
the session's emulator state on a second loopback port and notes every key it issues, so a
test knows the plaintexts a subprocess was given without the subprocess telling it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets.testing.emulator import Emulator, EmulatorServer, Response
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

_OWN_PREFIXES = ("AWS_", "VAULT_", "UNKEY_", "BAO_", "BOTO_")


def cli_script() -> str:
    """The installed console script, next to this interpreter."""
    script = Path(sys.executable).with_name("unkey-secrets")
    if not script.exists():
        pytest.fail("the unkey-secrets console script is not installed: pip install -e .")
    return str(script)


def base_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any store or Unkey setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    env.update(extra)
    return env


def vault_env(server: OpenBaoServer | None = None, *, url: str | None = None) -> dict[str, str]:
    """VAULT_ADDR and VAULT_TOKEN for ``server`` (or a dead ``url``)."""
    if server is not None:
        return {"VAULT_ADDR": server.url, "VAULT_TOKEN": server.root_token}
    assert url is not None
    return {"VAULT_ADDR": url, "VAULT_TOKEN": "s.dead"}


def aws_env(server: MotoServer | None = None, *, url: str | None = None) -> dict[str, str]:
    """The standard AWS variables for ``server`` (or a dead ``url``): endpoint, dummy keys."""
    return {
        "AWS_ENDPOINT_URL": server.url if server is not None else str(url),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": server.region if server is not None else "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        # One attempt per write: the CLI's own retry policy still runs.
        "AWS_MAX_ATTEMPTS": "1",
    }


def unkey_env(server: EmulatorServer) -> dict[str, str]:
    """UNKEY_ROOT_KEY and UNKEY_BASE_URL for ``server``."""
    return {"UNKEY_ROOT_KEY": server.root_key, "UNKEY_BASE_URL": server.url}


def run_cli(
    args: list[str], env: Mapping[str, str], *, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    """Run ``unkey-secrets args`` with ``stdin`` piped in; return the code and decoded output."""
    done = subprocess.run(
        [cli_script(), *args],
        input=stdin,
        capture_output=True,
        env=base_env(**env),
        timeout=120,
        check=False,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` parsed as one JSON object."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class _Tapped:
    """The session's emulator, answering through a second server that notes issued keys."""

    def __init__(self, inner: Emulator, found: list[str]) -> None:
        self.inner = inner
        self.found = found

    @property
    def root_key(self) -> str:
        return self.inner.root_key

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        answer = self.inner.handle(path, headers, body)
        if answer is not None and path.endswith(("keys.createKey", "keys.rerollKey")):
            try:
                key = json.loads(answer[2])["data"]["key"]
            except (ValueError, KeyError, TypeError):
                key = None
            if isinstance(key, str) and key not in self.found:
                self.found.append(key)
        return answer


@contextmanager
def tapped_emulator(server: EmulatorServer, found: list[str]) -> Iterator[EmulatorServer]:
    """A second server over ``server``'s emulator state; every key it issues lands in ``found``."""
    tapped = EmulatorServer(_Tapped(server.emulator, found))  # type: ignore[arg-type]
    with tapped:
        yield tapped
