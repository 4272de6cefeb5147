"""One shape for every command: the same concept is spelt, checked and documented one way.

``main`` runs in-process; the app's two seams (``store_from_env``, ``unkey_from_env``) are the
Unkey emulator (in-process transport) and an :class:`InMemoryStore`, or, where a command must
refuse its input before it opens anything, seams that fail the test when called.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets import UnkeyClient, flows
from unkey_secrets.bulk import BulkInputError, check_file, read_lines
from unkey_secrets.cli import app
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

API = "api_shape123"
#: A value no error may echo (it is what a key pasted in the wrong place looks like).
PASTED = "Zq7CanaryOnlyAlnum42xx"


@pytest.fixture(autouse=True)
def _no_core_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() would set this test process's core limit to 0 for good."""
    monkeypatch.setattr(app, "disable_core_dumps", lambda: True)


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


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Seams that note each store or Unkey client a command opens, and refuse to open it."""
    calls: list[str] = []

    def no_store(name: str | None, overrides: Any = None) -> Any:
        calls.append("store")
        raise AssertionError("a store was opened")

    def no_unkey() -> Any:
        calls.append("unkey")
        raise AssertionError("an Unkey client was opened")

    monkeypatch.setattr(app, "store_from_env", no_store)
    monkeypatch.setattr(app, "unkey_from_env", no_unkey)
    return calls


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = app.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


# -- bulk takes --api-id, as every other command does ------------------------------------------


def test_bulk_takes_api_id_for_the_lines_without_an_api_field(
    tmp_path: Path,
    emulator: Emulator,
    store: InMemoryStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    default = emulator.create_api("default")
    other = emulator.create_api("other")
    path = tmp_path / "keys.csv"
    path.write_text(f"api,alias\n,a1\n{other},a2\n,a3\n")
    # As the issue typed it: the global option before the command, --api-id after the file.
    code, out, err = run(
        capsys, "--json", "--store", "memory", "bulk", str(path), "--api-id", default
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    by_alias = {r["alias"]: r["api_id"] for r in records if not r.get("summary")}
    # A line's own api wins over the default.
    assert by_alias == {"a1": default, "a2": other, "a3": default}
    for alias, api_id in by_alias.items():
        assert store.get_current(api_id=api_id, alias=alias).key_id


def test_bulk_with_no_api_column_at_all(
    tmp_path: Path,
    emulator: Emulator,
    store: InMemoryStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_id = emulator.create_api("no-column")
    path = tmp_path / "keys.jsonl"
    path.write_text('{"alias": "j1"}\n{"externalId": "tenant_2"}\n')
    code, _, err = run(capsys, "bulk", "--api-id", api_id, str(path), "--store", "memory")
    assert code == 0, err
    assert {k.external_id for k in emulator.keys(api_id) if not k.deleted} == {None, "tenant_2"}


def test_bulk_without_api_anywhere_names_both_ways_and_sends_nothing(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("alias\na1\n")
    code, _, err = run(capsys, "--store", "memory", "bulk", str(path))
    assert code == 2
    assert "api: is required: name the API on the line, or give a default (--api-id)" in err
    assert opened == []


def test_bulk_refuses_a_bad_api_id_before_reading_the_file(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("alias\na1\n")
    code, _, err = run(capsys, "--store", "memory", "bulk", str(path), "--api-id", PASTED + "!")
    assert code == 2
    assert err.startswith("error: invalid --api-id: ")
    assert PASTED not in err
    assert opened == []


def test_the_librarys_default_api(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text('{"alias": "a"}\n{"api": "api_own1", "alias": "b"}\n')
    assert [line.api_id for line in read_lines(path, api_id="api_def1")] == [
        "api_def1",
        "api_own1",
    ]
    assert check_file(path, api_id="api_def1") == (2, [])
    count, errors = check_file(path)
    assert count == 1
    assert [(e.field, e.problem.split(":")[0]) for e in errors] == [("line 1: api", "is required")]
    with pytest.raises(BulkInputError, match="line 1: api"):
        list(read_lines(path))
    with pytest.raises(ValueError, match="invalid api_id"):
        check_file(path, api_id="no spaces allowed")


def test_bulk_dry_run_checks_the_file_and_sends_nothing(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.csv"
    path.write_text(f"api,alias\n{API},a1\n,a2\n")
    code, out, _ = run(capsys, "--json", "bulk", str(path), "--api-id", API, "--dry-run")
    assert code == 0
    assert json.loads(out) == {
        "command": "bulk",
        "ok": True,
        "summary": True,
        "dry_run": True,
        "lines": 2,
    }
    code, out, _ = run(capsys, "bulk", str(path), "--dry-run")
    assert code == 2  # the second line names no API and none was given
    assert opened == []


# -- bad input is refused before anything is opened, naming the flag ---------------------------


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["provision", "--api-id", PASTED + "!", "--alias", "svc"], "--api-id"),
        (["provision", "--api-id", API, "--alias", PASTED + "/x"], "--alias"),
        (["provision", "--api-id", API, "--external-id", PASTED + " x"], "--external-id"),
        (["provision", "--api-id", API, "--prefix", PASTED + "!"], "--prefix"),
        (["provision", "--api-id", API, "--name", ""], "--name"),
        (["provision", "--api-id", API, "--permission", ""], "--permission"),
        (["provision", "--api-id", API, "--replace"], "--replace"),
        (["rotate", "--api-id", PASTED + "!", "--alias", "svc"], "--api-id"),
        (["rotate", "--api-id", API, "--alias", PASTED + "/x"], "--alias"),
        (["capture", "--api-id", PASTED + "!", "--key-id", "key_abc123"], "--api-id"),
        (["capture", "--api-id", API, "--key-id", "key_abc", "--alias", ".."], "--alias"),
        (["show", "--api-id", PASTED + "!", "--alias", "svc"], "--api-id"),
        (["show", "--api-id", API, "--alias", PASTED + "/x"], "--alias"),
        (["list", "--api-id", PASTED + "!"], "--api-id"),
        (["list", "--api-id", API, "--after", PASTED + "-x"], "--after"),
        (["list", "--api-id", API, "--external-id", PASTED + " x"], "--external-id"),
        (["verify", "--api-id", PASTED + "!", "--alias", "svc"], "--api-id"),
        (["reconcile", "--api-id", PASTED + "!"], "--api-id"),
        (["reconcile", "--api-id", API, "--alias", PASTED + "/x"], "--alias"),
        (["doctor", "--api-id", PASTED + "!"], "--api-id"),
        (["doctor", "--api-id", API, "--alias", PASTED + "/x"], "--alias"),
        (
            ["rotate-due", "--api-id", PASTED + "!", "--older-than", "1d", "--alias", "a"],
            "--api-id",
        ),
        (["rotate-due", "--api-id", API, "--older-than", "1d", "--alias", PASTED + "/"], "--alias"),
        (["rotate-due", "--api-id", API, "--older-than", "1d"], "--alias"),
    ],
)
def test_bad_input_is_refused_before_a_store_or_unkey_is_opened(
    argv: list[str], flag: str, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--store", "vault", *argv)
    assert (code, opened) == (2, [])
    assert err.startswith(f"error: invalid {flag}: "), err
    assert PASTED not in out + err


@pytest.mark.parametrize(
    "argv",
    [
        ["reconcile", "--api-id", API, "--min-age", "99999999999999999"],
        ["reconcile", "--api-id", API, "--min-age", "999999999999w"],
        ["rotate-due", "--api-id", API, "--alias", "a", "--older-than", "99999999999999999"],
        ["list", "--api-id", API, "--expiring-within", "9" * 5000],
        ["verify", "--api-id", API, "--alias", "a", "--expiring-within", "3651d"],
        ["rotate", "--api-id", API, "--alias", "a", "--grace-period", "3651d"],
    ],
)
def test_every_duration_has_the_same_ceiling(
    argv: list[str], opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "--store", "vault", *argv)
    assert (code, opened) == (2, [])
    assert "may be at most 3650d (10 years)" in err
    assert "Traceback" not in err


# -- provision --replace takes the grace period rotate takes ------------------------------------


def test_provision_replace_takes_a_grace_period(
    monkeypatch: pytest.MonkeyPatch, store: InMemoryStore, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: dict[str, Any] = {}

    def fake(unkey: Any, target: Any, api_id: str, **options: Any) -> Any:
        seen.update(options)
        raise RuntimeError("stop here")

    monkeypatch.setattr(flows, "provision", fake)
    argv = ["--store", "memory", "provision", "--api-id", API, "--alias", "svc", "--replace"]
    code, _, _ = run(capsys, *argv, "--grace-period", "2h")
    assert code == 1  # the fake's stop
    assert seen["grace_period"].total_seconds() == 7200
    assert seen["allow_short_grace"] is False


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--grace-period", "2h"], "--grace-period"),
        (["--allow-short-grace"], "--allow-short-grace"),
        (["--replace", "--grace-period", "1m"], "--grace-period"),
    ],
)
def test_provision_grace_period_is_checked_before_anything_is_opened(
    extra: list[str], flag: str, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--store", "vault", "provision", "--api-id", API, "--alias", "svc", *extra]
    code, _, err = run(capsys, *argv)
    assert (code, opened) == (2, [])
    assert err.startswith(f"error: invalid {flag}: ")


# -- reconcile takes --dry-run, as rotate-due and bulk do ---------------------------------------


def test_reconcile_dry_run_is_its_default_and_refused_with_apply(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = app.build_parser(["reconcile"])
    args = parser.parse_args(["reconcile", "--api-id", API, "--dry-run"])
    assert (args.dry_run, args.apply) == (True, False)
    code, _, err = run(capsys, "reconcile", "--api-id", API, "--dry-run", "--apply")
    assert code == 2
    assert "not allowed with argument" in err


# -- help and spellings ---------------------------------------------------------------------------


def test_an_option_has_one_metavar_in_every_command() -> None:
    shapes: dict[str, set[str | None]] = {}
    for command in subcommands(app.build_parser()).values():
        for action in command._actions:
            for option in action.option_strings:
                metavar = action.metavar if isinstance(action.metavar, str) else None
                shapes.setdefault(option, set()).add(metavar)
    mixed = {option: shape for option, shape in shapes.items() if len(shape) > 1}
    assert mixed == {}
    assert shapes["--api-id"] == {"API"}
    assert shapes["--key-id"] == {"KEY"}


def test_every_command_takes_api_id() -> None:
    for name, command in subcommands(app.build_parser()).items():
        options = {o for action in command._actions for o in action.option_strings}
        if name != "stores":
            assert "--api-id" in options, name


OWN_CODES = {
    "list": "3 ",
    "verify": "3 ",
    "reconcile": "3 ",
    "doctor": "3 ",
    "rotate-due": "4 ",
    "bulk": "4 ",
}


@pytest.mark.parametrize("command", list(subcommands(app.build_parser())))
def test_every_commands_help_states_its_exit_codes(command: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert app.main([command, "--help"]) == 0
    text = " ".join(out.getvalue().split())
    _, _, codes = text.partition("Exit codes: ")
    assert codes.startswith("0 "), command
    assert "130 interrupted" in codes
    if command in OWN_CODES:
        assert f"; {OWN_CODES[command]}" in codes


@pytest.mark.parametrize("command", list(subcommands(app.build_parser())))
def test_the_global_options_go_after_every_command(command: str) -> None:
    argv = {
        "bulk": ["keys.csv"],
        "stores": [],
        "capture": ["--api-id", API, "--key-id", "key_abc123"],
        "show": ["--api-id", API, "--alias", "svc"],
        "rotate-due": ["--api-id", API, "--older-than", "30d"],
    }.get(command, ["--api-id", API])
    args = app.build_parser([command]).parse_args(
        [command, *argv, "--json", "--store", "vault", "-v"]
    )
    assert (args.json, args.store, args.verbose) == (True, "vault", 1)
