"""The ``unkey-secrets`` process entry (:func:`unkey_secrets.cli.app.run`): exit code, collector."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from unkey_secrets.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    """run() freezes what it built for the process's exit; put this test process back."""
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def test_run_exits_with_mains_code_the_collector_off_until_the_command_has_a_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[object] = []

    def command(argv: Sequence[str] | None = None) -> int:
        seen.extend([argv, gc.isenabled()])
        app._started()  # what store_from_env and unkey_from_env call once they have built
        seen.extend([gc.isenabled(), gc.get_freeze_count() > 0])
        return 3

    monkeypatch.setattr(app, "main", command)
    gc.unfreeze()
    with pytest.raises(SystemExit) as exited:
        app.run()
    assert exited.value.code == 3
    # main() reads the process's own command line; start-up ran without the collector, and
    # what it built was frozen once the command had its client.
    assert seen == [None, False, True, True]
    assert gc.isenabled()


def test_run_freezes_what_the_command_built_before_the_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A command that never builds a client (--help, stores) runs without the collector; the
    # interpreter's last collection, at exit, walks none of what it built.
    built: list[object] = []

    def command(argv: Sequence[str] | None = None) -> int:
        built.append([{"a": 1}])
        return 0

    monkeypatch.setattr(app, "main", command)
    gc.unfreeze()
    with pytest.raises(SystemExit) as exited:
        app.run()
    assert exited.value.code == 0
    assert gc.get_freeze_count() > 0
    assert gc.isenabled()


def test_the_seams_leave_the_collector_alone_outside_run() -> None:
    # main() called in a process of its own (tests, a wrapper script) changes no collector.
    gc.unfreeze()
    app._started()
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_the_console_script_and_python_m_run_the_process_entry() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'unkey-secrets = "unkey_secrets.cli:run"' in pyproject
    done = subprocess.run(
        [sys.executable, "-m", "unkey_secrets.cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_run_turns_pydantic_plugins_off_unless_the_variable_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A plugin would see the settings' input (credentials included); looking for one reads
    # every installed distribution's entry points.
    seen: list[str | None] = []

    def command(argv: Sequence[str] | None = None) -> int:
        seen.append(os.environ.get("PYDANTIC_DISABLE_PLUGINS"))
        return 0

    monkeypatch.setattr(app, "main", command)
    monkeypatch.delenv("PYDANTIC_DISABLE_PLUGINS", raising=False)
    with pytest.raises(SystemExit):
        app.run()
    monkeypatch.setenv("PYDANTIC_DISABLE_PLUGINS", "logfire")
    with pytest.raises(SystemExit):
        app.run()
    assert seen == ["__all__", "logfire"]


def test_the_provision_path_scans_no_distribution_for_pydantic_plugins() -> None:
    # The settings classes are built in a process run() started: pydantic asks for no
    # entry points (its scan reads every installed distribution's metadata).
    probe = """
import importlib.metadata as metadata, json, os, sys
from unkey_secrets.cli import app
groups = []
real = metadata.entry_points
def entry_points(**selection):
    groups.append(selection.get("group"))
    return real(**selection)
metadata.entry_points = entry_points
def command(argv=None):
    from unkey_secrets.settings import UnkeySettings, load_settings
    from unkey_secrets.stores.vault.settings import VaultSettings
    load_settings(VaultSettings)
    load_settings(UnkeySettings)
    print(json.dumps(groups))
    return 0
app.main = command
app.run()
"""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "pydantic" not in json.loads(done.stdout)


def test_the_console_script_loads_the_command_line_with_the_collector_off() -> None:
    # The entry is found without loading the command line's modules; run() turns the
    # collector off first, and they load under it. The package's other names still work.
    probe = """
import gc, json, sys
collecting = {}
def on_import(event, args):
    if event == "import" and args[0] == "unkey_secrets.cli.app":
        collecting["app"] = gc.isenabled()
sys.addaudithook(on_import)
from unkey_secrets.cli import run
loaded = "unkey_secrets.cli.app" in sys.modules
sys.argv[1:] = ["--version"]
try:
    run()
except SystemExit as exc:
    code = exc.code
from unkey_secrets.cli import EXIT_USAGE, build_parser, main
print(json.dumps({"loaded": loaded, "collecting": collecting, "code": code, "usage": EXIT_USAGE}))
"""
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"loaded": False, "collecting": {"app": False}, "code": 0, "usage": 2}
