"""issue 14, kind 7: the bulk command, holding its file's lock, finishes half-done lines at once."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from unkey_secrets import UnkeyClient
from unkey_secrets.cli import app
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

from .test_bulk_cli import main


def test_a_rerun_of_the_file_finishes_what_a_killed_run_left_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = Emulator()
    store = InMemoryStore()
    monkeypatch.setattr(app, "store_from_env", lambda name: store)
    monkeypatch.setattr(
        app,
        "unkey_from_env",
        lambda: UnkeyClient(
            emulator.root_key,
            base_url="http://127.0.0.1",
            transport=EmulatorTransport(emulator),
            sleep=lambda _: None,
        ),
    )
    api_id = emulator.create_api("bulk")
    path = tmp_path / "keys.jsonl"
    path.write_text(json.dumps({"api": api_id, "alias": "billing"}) + "\n")
    # The first run stores the key, and never gets to enable it.
    emulator.faults.fail_next("keys.updateKey", times=10, status=500)
    assert main(["--json", "--store", "m", "bulk", str(path)], io.StringIO(), io.StringIO()) == 1
    (first,) = emulator.keys(api_id)
    assert not first.enabled
    emulator.faults.clear()
    out = io.StringIO()
    assert main(["--json", "--store", "m", "bulk", str(path)], out, io.StringIO()) == 0
    record, summary = map(json.loads, out.getvalue().splitlines())
    assert (record["status"], record["key_id"]) == ("completed", first.key_id)
    # One word per concept: a line taken through (done or failed) is processed; completed is
    # the status of a line whose earlier run's key this run finished, in JSON and in text.
    assert "finished" not in summary
    assert (summary["processed"], summary["completed"], summary["exists"]) == (1, 1, 0)
    out = io.StringIO()
    assert main(["--store", "m", "bulk", str(path)], out, io.StringIO()) == 0
    assert out.getvalue() == (
        "bulk: 1 of 1 lines processed: 0 created, 1 exists already, 0 completed (an earlier "
        "run's key), 0 failed\n"
    )
    assert store.get_current(api_id=api_id, alias="billing").key_id == first.key_id
    assert [k.key_id for k in emulator.keys(api_id) if k.enabled and not k.deleted] == [
        first.key_id
    ]
