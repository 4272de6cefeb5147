"""``unkey-secrets bulk`` in-process: the command's parser and run(), with the CLI's two seams."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
from pathlib import Path

import pytest

from unkey_secrets import NotOwnedError, UnkeyClient
from unkey_secrets.cli import app
from unkey_secrets.cli import bulk as bulk_cli
from unkey_secrets.cli.output import Output
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def main(argv: list[str], stdout: io.StringIO, stderr: io.StringIO) -> int:
    """What app.main does for a command: parse, run, map the exception to the exit code."""
    parser = argparse.ArgumentParser(prog="unkey-secrets")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--store")
    bulk_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out = Output(json=args.json, stdout=stdout, stderr=stderr)
    try:
        bulk_cli.run(args, out)
    except Exception as exc:  # noqa: BLE001
        code = app.exit_code_for(exc)
        out.failure("bulk", exc, code)
        return code
    return app.EXIT_OK


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> InMemoryStore:
    memory = InMemoryStore()
    monkeypatch.setattr(app, "store_from_env", lambda name: memory)
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
    return memory


def write(tmp_path: Path, api_id: str, count: int, name: str = "keys.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "".join(json.dumps({"api": api_id, "alias": f"a{i}"}) + "\n" for i in range(count))
    )
    return path


def test_json_output_one_object_per_line_then_a_summary(
    tmp_path: Path, emulator: Emulator, store: InMemoryStore
) -> None:
    api_id = emulator.create_api()
    path = write(tmp_path, api_id, 5)
    out, err = io.StringIO(), Tty()
    assert main(["--json", "--store", "memory", "bulk", str(path)], out, err) == 0
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["status"] for r in records[:-1]] == ["created"] * 5
    assert records[-1]["summary"] is True
    assert records[-1]["ok"] is True
    assert records[-1]["created"] == 5
    assert err.getvalue() == ""  # no progress bar under --json, even on a terminal
    out = io.StringIO()
    assert main(["--json", "bulk", str(path)], out, io.StringIO()) == 0
    assert json.loads(out.getvalue().splitlines()[-1])["exists"] == 5


def test_some_lines_failed_is_exit_4_and_names_them(
    tmp_path: Path, emulator: Emulator, store: InMemoryStore
) -> None:
    api_id = emulator.create_api()
    path = write(tmp_path, api_id, 4)
    store.fail_next("put", NotOwnedError("not ours", store="memory"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["bulk", "--concurrency", "1", str(path)], out, err) == 4
    text = out.getvalue()
    assert "line 1 failed" in text
    assert "3 created" in text
    assert "1 failed (lines 1)" in text
    assert err.getvalue().startswith("error: 1 of 4 lines failed")


def test_a_bad_line_is_exit_2_and_nothing_is_sent(
    tmp_path: Path, emulator: Emulator, store: InMemoryStore
) -> None:
    api_id = emulator.create_api()
    path = tmp_path / "keys.csv"
    path.write_text(f"api,alias\n{api_id},ok\n{api_id},\n{api_id},bad/alias\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["--json", "bulk", str(path)], out, err) == 2
    assert "invalid line 3: alias" in err.getvalue()
    assert "invalid line 4: alias" in err.getvalue()
    assert json.loads(out.getvalue())["exit_code"] == 2
    assert sum(emulator.calls.values()) == 0
    assert store.calls == []


def test_a_missing_file_is_exit_2(tmp_path: Path, store: InMemoryStore) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["bulk", str(tmp_path / "none.csv")], out, err) == 2
    assert "cannot be read" in err.getvalue()


def test_progress_bar_on_a_terminal_only(
    tmp_path: Path, emulator: Emulator, store: InMemoryStore
) -> None:
    api_id = emulator.create_api()
    path = write(tmp_path, api_id, 3)
    err = Tty()
    assert main(["bulk", str(path)], io.StringIO(), err) == 0
    assert "3/3" in err.getvalue() or "\r" in err.getvalue()
    plain = io.StringIO()
    path2 = write(tmp_path, api_id, 6, "more.jsonl")
    assert main(["bulk", str(path2)], io.StringIO(), plain) == 0
    assert plain.getvalue() == ""


@pytest.mark.parametrize("value", ["0", "x", "257"])
def test_concurrency_is_checked(value: str) -> None:
    parser = argparse.ArgumentParser()
    bulk_cli.add_parser(parser.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        parser.parse_args(["bulk", "--concurrency", value, "f.csv"])


def test_every_line_failed_is_exit_1(
    tmp_path: Path, emulator: Emulator, store: InMemoryStore
) -> None:
    api_id = emulator.create_api()
    path = write(tmp_path, api_id, 3)
    store.fail_next("put", NotOwnedError("not ours", store="memory"), times=3)
    out, err = io.StringIO(), io.StringIO()
    assert main(["bulk", "--concurrency", "1", str(path)], out, err) == 1
    assert err.getvalue().startswith("error: all 3 lines failed")


def test_help_states_the_exit_codes_and_the_lock() -> None:
    parser = argparse.ArgumentParser()
    bulk_cli.add_parser(parser.add_subparsers(dest="command"))
    out = io.StringIO()
    with pytest.raises(SystemExit), contextlib.redirect_stdout(out):
        parser.parse_args(["bulk", "--help"])
    text = " ".join(out.getvalue().split())
    assert "4 some lines failed" in text
    assert "1 every line failed" in text
    assert "not safe to run twice at once" in text


def test_a_second_run_of_the_same_file_is_exit_2_and_sends_nothing(
    tmp_path: Path, emulator: Emulator, store: InMemoryStore
) -> None:
    api_id = emulator.create_api()
    path = write(tmp_path, api_id, 3)
    with path.open("rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress
        out, err = io.StringIO(), io.StringIO()
        assert main(["bulk", str(path)], out, err) == 2
    assert f"another bulk run is processing {path}" in err.getvalue()
    assert sum(emulator.calls.values()) == 0
    assert store.calls == []
    assert main(["bulk", str(path)], io.StringIO(), io.StringIO()) == 0  # released


def test_an_oversized_line_is_exit_2_and_nothing_is_sent(
    tmp_path: Path, emulator: Emulator, store: InMemoryStore
) -> None:
    api_id = emulator.create_api()
    path = tmp_path / "big.jsonl"
    path.write_text(
        json.dumps({"api": api_id, "alias": "ok"})
        + "\n"
        + json.dumps({"api": api_id, "alias": "big", "meta": {"x": "y" * 5_000_000}})
        + "\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert main(["bulk", str(path)], out, err) == 2
    assert "invalid line 2: line" in err.getvalue()
    assert sum(emulator.calls.values()) == 0
    assert store.calls == []
