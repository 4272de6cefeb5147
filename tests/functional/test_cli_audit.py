"""The command line's audit log: ``--audit-log FILE`` / ``UNKEY_SECRETS_AUDIT_LOG``, JSON lines.

The real console script against OpenBao or moto's server and the Unkey emulator; every line
is validated against the shipped schema.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from unkey_secrets.telemetry import audit_schema
from unkey_secrets.testing.emulator import EmulatorServer

from ._cli_harness import json_lines, run_cli

pytestmark = pytest.mark.functional


def events(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for event in lines:
        jsonschema.validate(event, audit_schema())
    return lines


def test_audit_log_flag_writes_every_change_as_a_json_line_to_a_0600_file(
    kind: str,
    env: dict[str, str],
    unkey_emulator_server: EmulatorServer,
    tmp_path: Path,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("cli-audit")
    path = tmp_path / "audit.jsonl"
    done = run_cli(
        [
            *("-v", "--json", "--store", kind, "--audit-log", str(path)),
            *("provision", "--api-id", api_id, "--alias", "svc"),
        ],
        {**env, "UNKEY_SECRETS_ACTOR": "deploy-bot/4242"},
    )
    assert done.returncode == 0, done.stderr
    (result,) = json_lines(done.stdout)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    written = events(path)
    assert [(e["action"], e["outcome"]) for e in written] == [
        ("key.created", "succeeded"),
        ("key.stored", "succeeded"),
        ("alias.moved", "succeeded"),
        ("key.enabled", "succeeded"),
    ]
    assert {e["key_id"] for e in written} == {result["key_id"]}
    assert {e["actor"] for e in written} == {"deploy-bot/4242"}
    assert {e["store"] for e in written[1:3]} == {kind}
    # In the file only: -v shows our INFO lines, but not the events a second time.
    assert "unkey_secrets.audit" not in done.stderr


def test_the_variable_names_the_file_and_runs_append_to_it(
    kind: str,
    env: dict[str, str],
    unkey_emulator_server: EmulatorServer,
    tmp_path: Path,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("cli-audit")
    path = tmp_path / "audit.jsonl"
    audited = {**env, "UNKEY_SECRETS_AUDIT_LOG": str(path)}
    first = run_cli(["--store", kind, "provision", "--api-id", api_id, "--alias", "svc"], audited)
    assert first.returncode == 0, first.stderr
    rotated = run_cli(["--store", kind, "rotate", "--api-id", api_id, "--alias", "svc"], audited)
    assert rotated.returncode == 0, rotated.stderr
    written = events(path)
    assert [e["flow"] for e in written][:4] == ["provision"] * 4
    assert ("key.rotated", "succeeded") in [(e["action"], e["outcome"]) for e in written[4:]]
    assert ("key.cut", "succeeded") in [(e["action"], e["outcome"]) for e in written[4:]]


def test_an_audit_log_that_cannot_be_opened_stops_the_command_before_anything_changes(
    kind: str,
    env: dict[str, str],
    unkey_emulator_server: EmulatorServer,
    tmp_path: Path,
) -> None:
    emulator = unkey_emulator_server.emulator
    api_id = emulator.create_api("cli-audit")
    missing = tmp_path / "no-such-dir" / "audit.jsonl"
    done = run_cli(
        ["--store", kind, "--audit-log", str(missing), "provision", "--api-id", api_id], env
    )
    assert done.returncode == 2
    assert "cannot open the audit log" in done.stderr
    assert emulator.keys(api_id) == []
