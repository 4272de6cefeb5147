"""The operations commands (list, verify, reconcile, doctor, rotate-due) and the CLI conventions.

``main`` runs in-process against the Unkey emulator (in-process transport, its clock under the
test's control) and an :class:`InMemoryStore`, through the app's two seams.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import types
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets import (
    ConfigurationError,
    DeletedVersionError,
    InvalidInputError,
    StoreConflictError,
    UnkeyClient,
    provision,
)
from unkey_secrets.cli import app as cli
from unkey_secrets.cli import options
from unkey_secrets.cli.output import Output
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator
from unkey_secrets.testing.emulator.transport import EmulatorTransport

DAY = 86400
MARKER = "unkey_secrets_op"


class Clock:
    """The emulator's clock: real time shifted by ``offset`` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


class World:
    """The emulator, one API, the store, and a client for the test's own calls."""

    def __init__(self, emulator: Emulator, clock: Clock, store: InMemoryStore) -> None:
        self.emulator = emulator
        self.clock = clock
        self.store = store
        self.api = emulator.create_api("ops")
        self.root_key = emulator.root_key

    def client(self, root_key: str | None = None) -> UnkeyClient:
        return UnkeyClient(
            root_key or self.root_key,
            base_url="http://127.0.0.1",
            transport=EmulatorTransport(self.emulator),
            sleep=lambda _: None,
        )

    def provision(self, alias: str, *, days_ago: float = 0) -> str:
        self.clock.offset = -days_ago * DAY
        try:
            with self.client() as unkey:
                return provision(unkey, self.store, self.api, alias=alias, mode="fast").key_id
        finally:
            self.clock.offset = 0

    def orphan(self, *, marker: str = "op_memory_" + "0" * 24, days_ago: float = 1) -> str:
        """A key a lost answer left: our marker, never stored."""
        self.clock.offset = -days_ago * DAY
        try:
            with self.client() as unkey:
                return unkey.create_key(self.api, meta={MARKER: marker}).key_id
        finally:
            self.clock.offset = 0

    def delete(self, key_id: str) -> None:
        with self.client() as unkey:
            unkey.delete_key(key_id)

    def expire(self, key_id: str) -> None:
        """Give the key an expiry a minute ago (set while the emulator's clock is behind)."""
        self.clock.offset = -DAY
        try:
            with self.client() as unkey:
                unkey.update_key(key_id, expires=int(time.time() * 1000) - 60_000)
        finally:
            self.clock.offset = 0


@pytest.fixture(autouse=True)
def no_core_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "disable_core_dumps", lambda: True)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    clock = Clock()
    emulator = Emulator(clock=clock)
    store = InMemoryStore()
    state = World(emulator, clock, store)
    monkeypatch.setattr(cli, "unkey_from_env", state.client)
    monkeypatch.setattr(cli, "store_from_env", lambda name: store)
    return state


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def records(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


def split(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    *items, summary = records(out)
    assert summary["summary"] is True
    return items, summary


def plaintexts(world: World) -> list[str]:
    found = []
    for location in world.store.locations():
        try:
            if "/by-name/" in location:
                continue
            api, key_id = location.split("/")[1:3]
            found.append(world.store.get(api_id=api, key_id=key_id).secret.reveal())
        except Exception:  # noqa: BLE001, S112 (rotation records and the like)
            continue
    return found


# -- conventions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("3600", 3600),
        ("30m", 1800),
        ("24h", 86400),
        ("90d", 90 * DAY),
        ("2w", 14 * DAY),
        ("1h30m", 5400),
        ("0", 0),
        ("1d12h", 36 * 3600),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert options.duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "-5", "1.5h", "5y", "1 h", "24H", "d24"])
def test_bad_durations_name_the_forms_not_the_value(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="30m, 24h, 90d") as caught:
        options.duration(text)
    if len(text) > 2:
        assert text not in str(caught.value)


def test_format_duration() -> None:
    assert [options.format_duration(s) for s in (0, 59, 3600, 90061)] == ["0s", "59s", "1h", "1d1h"]


def test_grace_period_takes_a_duration() -> None:
    args = cli.build_parser().parse_args(
        ["rotate", "--api-id", "api_1", "--alias", "a", "--grace-period", "2d"]
    )
    assert args.grace_period == 2 * DAY


@pytest.mark.parametrize(
    "argv",
    [
        ["provision", "--api-id", "api_1", "--store", "vault", "--json", "-v"],
        ["--store", "vault", "provision", "--json", "--api-id", "api_1", "-v"],
        ["--json", "-v", "--store", "vault", "provision", "--api-id", "api_1"],
    ],
)
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (args.store, args.json, args.verbose, args.api_id) == ("vault", True, 1, "api_1")


def test_a_global_option_after_the_command_wins_over_one_before() -> None:
    args = cli.build_parser().parse_args(["--store", "aws", "stores", "--store", "vault"])
    assert args.store == "vault"
    args = cli.build_parser().parse_args(["--store", "aws", "stores"])
    assert args.store == "aws"


def test_json_after_the_command_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "stores", "--json")
    assert code == 0
    assert json.loads(out)["stores"] == ["aws", "vault"]
    # ...and a usage error with --json after the command is a JSON error object too.
    code, out, err = run(capsys, "show", "--json")
    assert code == 2
    assert json.loads(out)["command"] == "show"
    assert "required: --api-id" in err


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("rotte", "rotate"),
        ("provison", "provision"),
        ("lsit", "list"),
        ("doctr", "doctor"),
        ("rotate_due", "rotate-due"),
        ("reconcil", "reconcile"),
    ],
)
def test_a_mistyped_command_names_the_closest(
    capsys: pytest.CaptureFixture[str], typed: str, meant: str
) -> None:
    code, out, err = run(capsys, "--json", "--store", "vault", typed, "--api-id", "api_1")
    assert code == 2
    last = err.splitlines()[-1]
    assert last.endswith(f"did you mean {meant!r}?")
    assert f"'{typed}'" not in err  # the typed word is not echoed
    assert json.loads(out)["message"].endswith(f"did you mean {meant!r}?")


def test_a_far_off_command_gets_no_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "Zq7CanaryOnlyAlnum42")
    assert code == 2
    assert "did you mean" not in err
    assert "Zq7Canary" not in err


_FLAGS = [
    ("--vault-addr", "vault", "addr", "VAULT_ADDR", "http://127.0.0.1:8200"),
    ("--vault-namespace", "vault", "namespace", "VAULT_NAMESPACE", "team-a"),
    ("--mount", "vault", "mount", "UNKEY_SECRETS_VAULT_MOUNT", "kv"),
    ("--region", "aws", "region", "AWS_REGION", "eu-west-1"),
    ("--profile", "aws", "profile", "AWS_PROFILE", "deploy"),
    ("--endpoint-url", "aws", "endpoint_url", "AWS_ENDPOINT_URL", "http://127.0.0.1:5000"),
]


@pytest.mark.parametrize(("flag", "store", "field", "variable", "value"), _FLAGS)
@pytest.mark.parametrize("after", [False, True])
def test_settings_flags_override_the_environment_for_the_command_only(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: str,
    store: str,
    field: str,
    variable: str,
    value: str,
    after: bool,
) -> None:
    # The flag reaches the store's settings as an override; the environment is not changed.
    from pydantic_settings import BaseSettings

    from unkey_secrets.settings import AwsSettings, VaultSettings, load_settings

    monkeypatch.setenv(variable, "from-the-environment")
    seen: dict[str, object] = {}
    classes: dict[str, type[BaseSettings]] = {"vault": VaultSettings, "aws": AwsSettings}
    settings_class = classes[store]

    class Recording:
        @classmethod
        def from_settings(cls, **overrides: str) -> InMemoryStore:
            seen["overrides"] = overrides
            seen["environ"] = os.environ.get(variable)
            seen["value"] = getattr(load_settings(settings_class, **overrides), field)
            raise ConfigurationError("stop here")

    monkeypatch.setattr(cli, "load_store", lambda name: Recording)
    before = dict(os.environ)
    argv = ["show", "--api-id", "api_1", "--alias", "a"]
    argv = [*argv, flag, value] if after else [flag, value, *argv]
    code, _, err = run(capsys, "--store", store, *argv)
    assert (code, err) == (2, "error: stop here\n")
    assert seen["overrides"] == {field: value}
    assert seen["environ"] == "from-the-environment"
    assert seen["value"] == value
    assert dict(os.environ) == before


def test_a_settings_flag_for_another_store_is_not_passed(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, str]] = []

    class Recording:
        @classmethod
        def from_settings(cls, **overrides: str) -> InMemoryStore:
            seen.append(overrides)
            return InMemoryStore()

    monkeypatch.setattr(cli, "load_store", lambda name: Recording)
    run(capsys, "--store", "memory", "show", "--api-id", "api_1", "--alias", "a", "--mount", "kv")
    assert seen == [{}]


def test_a_settings_flag_unset_before_is_unset_after(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULT_NAMESPACE", raising=False)
    monkeypatch.setattr(cli, "store_from_env", lambda name: InMemoryStore())
    run(capsys, "show", "--api-id", "api_1", "--alias", "a", "--vault-namespace", "ns")
    assert "VAULT_NAMESPACE" not in os.environ


def test_help_lists_the_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in ("list", "verify", "reconcile", "doctor", "rotate-due", "--vault-addr"):
        assert name in out
    assert "3 a check found problems" in " ".join(out.split())


# -- the bulk slot ---------------------------------------------------------------------------


@pytest.fixture
def fake_bulk(monkeypatch: pytest.MonkeyPatch) -> list[argparse.Namespace]:
    ran: list[argparse.Namespace] = []

    def add_parser(subparsers: Any) -> None:
        parser = subparsers.add_parser("bulk", help="bulk", allow_abbrev=False)
        parser.add_argument("file")
        parser.add_argument("--fail", action="store_true")

    def run_bulk(args: argparse.Namespace, out: Output) -> None:
        ran.append(args)
        out.result({"command": "bulk", "ok": True, "file": args.file})
        if args.fail:
            raise options.PartialFailure("2 of 3 lines failed")

    module = types.SimpleNamespace(add_parser=add_parser, run=run_bulk)
    monkeypatch.setattr(cli, "_has_bulk", lambda: True)
    monkeypatch.setattr(cli, "_bulk_module", lambda: module)
    return ran


def test_bulk_is_wired_through_its_module(
    capsys: pytest.CaptureFixture[str], fake_bulk: list[argparse.Namespace]
) -> None:
    code, out, _ = run(capsys, "bulk", "keys.csv", "--store", "aws", "--json")
    assert code == 0
    assert json.loads(out) == {"command": "bulk", "ok": True, "file": "keys.csv"}
    assert fake_bulk[0].store == "aws"
    assert "bulk" in cli.command_names()
    code, out, err = run(capsys, "bulk", "keys.csv", "--fail")
    assert code == options.EXIT_PARTIAL == 4
    assert err == "error: 2 of 3 lines failed\n"
    code, _, err = run(capsys, "blk", "x")
    assert err.endswith("did you mean 'bulk'?\n")


def test_bulks_module_is_not_imported_for_another_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "_has_bulk", lambda: True)

    def refuse() -> Any:
        raise AssertionError("imported")

    monkeypatch.setattr(cli, "_bulk_module", refuse)
    parser = cli.build_parser(["stores"])
    assert parser.parse_args(["stores"]).command == "stores"


# -- list ------------------------------------------------------------------------------------


def test_list_shows_stored_keys_with_their_state(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    live = world.provision("svc")
    gone = world.provision("old")
    world.delete(gone)
    expired = world.provision("exp")
    stray = world.orphan()
    world.expire(expired)
    code, out, err = run(capsys, "--json", "--store", "memory", "list", "--api-id", world.api)
    assert code == 0, err
    items, summary = split(out)
    by_id = {item["key_id"]: item for item in items}
    assert set(by_id) == {live, expired}  # Unkey lists no deleted key; the stray is not stored
    assert by_id[live]["status"] == "valid"
    assert by_id[live]["alias"] == "svc"
    assert by_id[live]["location"] == f"unkey/{world.api}/{live}"
    assert by_id[live]["created"].endswith("+00:00")
    assert by_id[expired]["status"] == "expired"
    assert summary["count"] == 2
    # --all: the API's keys the store does not hold too; --alias finds the deleted one.
    code, out, _ = run(
        capsys, "--json", "--store", "memory", "list", "--api-id", world.api, "--all"
    )
    items, _ = split(out)
    assert {item["key_id"]: item["stored"] for item in items}[stray] is False
    code, out, _ = run(
        capsys, "--json", "--store", "memory", "list", "--api-id", world.api, "--alias", "old"
    )
    (item,), _ = split(out)
    assert (item["key_id"], item["status"], item["stored"]) == (gone, "deleted", True)
    for secret in plaintexts(world):
        assert secret not in out


def test_list_filters_by_status_and_pages(capsys: pytest.CaptureFixture[str], world: World) -> None:
    ids = sorted(world.provision(f"a{n}") for n in range(5))
    world.expire(ids[0])
    code, out, _ = run(
        capsys, "--json", "--store", "memory", "list", "--api-id", world.api, "--status", "expired"
    )
    items, _ = split(out)
    assert [item["key_id"] for item in items] == [ids[0]]
    seen: list[str] = []
    after: list[str] = []
    while True:
        code, out, _ = run(capsys, "--json", "list", "--api-id", world.api, "--limit", "2", *after)
        assert code == 0
        items, summary = split(out)
        seen += [item["key_id"] for item in items]
        if not summary["truncated"]:
            break
        after = ["--after", summary["next_after"]]
    assert sorted(seen) == ids
    assert len(seen) == len(set(seen))


def test_list_human_and_a_bad_cursor(capsys: pytest.CaptureFixture[str], world: World) -> None:
    key = world.provision("svc")
    code, out, err = run(capsys, "--store", "memory", "list", "--api-id", world.api)
    assert code == 0
    first, last = out.splitlines()
    assert first.startswith(f"{key}  valid     alias svc  created ")
    assert last == f"1 key(s) of API {world.api} listed from memory"
    code, _, err = run(capsys, "list", "--api-id", world.api, "--after", "key_nothere1")
    assert code == 2
    assert "--after" in err


def test_list_unkey_refusal_exits_1(
    capsys: pytest.CaptureFixture[str], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = world.emulator.add_root_key(["api.*.read_api"])
    monkeypatch.setattr(cli, "unkey_from_env", lambda: world.client(narrow))
    code, out, err = run(capsys, "--json", "list", "--api-id", world.api)
    assert code == 1
    assert json.loads(out)["error"] == "UnkeyAuthError"
    assert "read_key" in err


# -- verify ----------------------------------------------------------------------------------


def test_verify_by_alias_and_key_id(capsys: pytest.CaptureFixture[str], world: World) -> None:
    live = world.provision("svc")
    gone = world.provision("old")
    world.delete(gone)
    code, out, err = run(
        capsys,
        *("--json", "verify", "--api-id", world.api, "--alias", "svc", "--alias", "old"),
        *("--alias", "nope", "--key-id", live),
    )
    assert code == options.EXIT_FINDINGS == 3, err
    items, summary = split(out)
    assert [(i["alias"], i["key_id"], i["ok"]) for i in items] == [
        ("svc", live, True),
        ("old", gone, False),
        ("nope", None, False),
        (None, live, True),
    ]
    assert items[0]["verified_key_id"] == live
    assert items[0]["code"] == "VALID"
    assert items[1]["code"] == "NOT_FOUND"
    assert items[2]["problem"] == "not stored"
    assert (summary["checked"], summary["problems"]) == (4, 2)
    for secret in plaintexts(world):
        assert secret not in out + err
    # It spends nothing: a key with credits keeps them (credits cost 0).
    assert world.emulator.calls["keys.verifyKey"] == 3


def test_verify_all_good_exits_0_in_human_form(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    key = world.provision("svc")
    code, out, err = run(capsys, "verify", "--api-id", world.api, "--alias", "svc")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"ok       alias svc: key {key} verifies (VALID)",
        f"1 checked, 0 problem(s) (API {world.api}, memory)",
    ]


@pytest.mark.parametrize("destroyed", [False, True])
def test_verify_of_an_alias_whose_version_is_gone_says_so_instead_of_a_key(
    capsys: pytest.CaptureFixture[str], world: World, destroyed: bool
) -> None:
    key = world.provision("svc")
    gone = "destroyed" if destroyed else "deleted"
    error = DeletedVersionError(
        f"the current version 2 of unkey/{world.api}/by-name/svc was {gone}; its metadata "
        f"still names {key}",
        store="memory",
        location=f"unkey/{world.api}/by-name/svc",
        version=2,
        destroyed=destroyed,
        key_id=key,
    )
    argv = ("verify", "--api-id", world.api, "--alias", "svc")
    world.store.fail_next("get_current", error)
    code, out, _ = run(capsys, *argv)
    assert code == options.EXIT_FINDINGS
    assert out.splitlines()[0] == f"PROBLEM  alias svc: its current version was {gone}: {error}"
    world.store.fail_next("get_current", error)
    code, out, _ = run(capsys, "--json", *argv)
    (item,), _summary = split(out)
    assert (item["key_id"], item["version_gone"], item["problem"]) == (None, gone, str(error))


def test_verify_needs_a_target(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, _, err = run(capsys, "verify", "--api-id", world.api)
    assert code == 2
    assert "name at least one alias" in err


def test_verify_reads_aliases_from_a_file(
    capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path
) -> None:
    world.provision("svc")
    world.provision("web")
    names = tmp_path / "aliases.txt"
    names.write_text("# ours\nsvc\n\nweb  # the site\nsvc\n")
    code, out, _ = run(
        capsys, "--json", "verify", "--api-id", world.api, "--aliases-file", str(names)
    )
    assert code == 0
    items, _ = split(out)
    assert [item["alias"] for item in items] == ["svc", "web"]
    names.write_text("svc\nnot/an/alias\n")
    code, _, err = run(capsys, "verify", "--api-id", world.api, "--aliases-file", str(names))
    assert code == 2
    assert "--aliases-file line" in err
    code, _, err = run(capsys, "verify", "--api-id", world.api, "--aliases-file", "/nonexistent")
    assert code == 2


@pytest.mark.parametrize(
    "separator", ["\x85", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f"]
)
def test_an_aliases_file_line_with_a_control_or_unicode_separator_is_refused(
    tmp_path: Path, separator: str
) -> None:
    # One line as grep, wc and an editor see it: neither split into two aliases by
    # str.splitlines nor cut to a valid one by str.strip (each is a control character or a
    # Unicode line break, which no alias holds).
    names = tmp_path / "aliases.txt"
    names.write_text(f"svc{separator}web\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="--aliases-file line"):
        options.aliases_from(None, str(names))
    names.write_text(f"svc{separator}\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="--aliases-file line"):
        options.aliases_from(None, str(names))
    names.write_text("svc\r\n web \t# the site\r\n", encoding="utf-8")
    assert options.aliases_from(None, str(names)) == ["svc", "web"]


# -- reconcile -------------------------------------------------------------------------------


def test_reconcile_reports_then_applies(capsys: pytest.CaptureFixture[str], world: World) -> None:
    world.provision("svc")
    gone = world.provision("old")
    world.delete(gone)
    orphan = world.orphan(days_ago=1)
    young = world.orphan(marker="rot_memory_" + "1" * 24, days_ago=0)
    lambdas = world.orphan(marker="9b2f1c3e-4a5d-4e6f-8a7b-0c1d2e3f4a5b", days_ago=1)
    code, out, err = run(
        capsys, "--json", "reconcile", "--api-id", world.api, "--alias", "old", "--alias", "none"
    )
    assert code == 3, err
    items, summary = split(out)
    found = {(i["finding"], i.get("key_id"), i.get("alias")) for i in items}
    assert found == {
        ("orphan", orphan, None),
        ("stale", gone, None),
        ("dead-alias", gone, "old"),
        ("dead-alias", None, "none"),
    }
    assert summary["young_skipped"] == 1
    assert all(i["action"].startswith("reported") for i in items)
    code, out, _ = run(
        capsys, "--json", "reconcile", "--api-id", world.api, "--apply", "--alias", "old"
    )
    assert code == 3  # the stale entry cannot be pruned
    items, summary = split(out)
    (deleted,) = [i for i in items if i["finding"] == "orphan"]
    assert (deleted["key_id"], deleted["action"], deleted["ok"]) == (
        orphan,
        "deleted in Unkey",
        True,
    )
    (stale,) = [i for i in items if i["finding"] == "stale"]
    assert stale["action"].startswith("not pruned: the memory store has no delete")
    assert summary["fixed"] == 1
    state = {k.key_id: k.deleted for k in world.emulator.keys(world.api)}
    assert state[orphan] is True
    assert state[young] is False
    assert state[lambdas] is False


def test_reconcile_clean_exits_0(capsys: pytest.CaptureFixture[str], world: World) -> None:
    world.provision("svc")
    code, out, _ = run(capsys, "reconcile", "--api-id", world.api)
    assert code == 0
    assert out.startswith("0 finding(s) left, 0 fixed, 0 recent key(s) skipped, 1 alias(es)")


def test_reconcile_min_age_takes_a_duration(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    world.orphan(days_ago=1)
    code, out, _ = run(capsys, "--json", "reconcile", "--api-id", world.api, "--min-age", "2d")
    assert code == 0
    assert split(out)[1]["young_skipped"] == 1


def test_reconcile_leaves_another_stores_keys_alone(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    world.provision("svc")
    vault = world.orphan(marker="op_vault_" + "2" * 24)
    vault_rotation = world.orphan(marker="rot_vault_" + "3" * 24)
    ours = world.orphan()
    code, out, err = run(capsys, "--json", "reconcile", "--api-id", world.api, "--apply")
    assert code == 0, err
    items, summary = split(out)
    by_key = {i["key_id"]: i for i in items}
    assert by_key[ours]["action"] == "deleted in Unkey"
    for key_id in (vault, vault_rotation):
        assert by_key[key_id]["belongs_to"] == "vault"
        assert by_key[key_id]["action"].startswith("left alone: belongs to store vault")
    assert (summary["fixed"], summary["findings_left"], summary["other_store_skipped"]) == (1, 0, 2)
    state = {k.key_id: k.deleted for k in world.emulator.keys(world.api)}
    assert (state[ours], state[vault], state[vault_rotation]) == (True, False, False)


def test_reconcile_deletes_unlabelled_markers_only_when_asked(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    world.provision("svc")
    old = world.orphan(marker="op_" + "4" * 24)
    old_rotation = world.orphan(marker="rot_" + "5" * 24)
    code, out, _ = run(capsys, "--json", "reconcile", "--api-id", world.api, "--apply")
    assert code == 3
    items, summary = split(out)
    assert {i["key_id"] for i in items} == {old, old_rotation}
    assert all("--include-unlabelled deletes it" in i["action"] for i in items)
    assert not any(k.deleted for k in world.emulator.keys(world.api))
    code, out, _ = run(
        capsys, "--json", "reconcile", "--api-id", world.api, "--apply", "--include-unlabelled"
    )
    assert code == 0
    items, summary = split(out)
    assert {i["action"] for i in items} == {"deleted in Unkey"}
    assert summary["fixed"] == 2
    state = {k.key_id: k.deleted for k in world.emulator.keys(world.api)}
    assert state[old]
    assert state[old_rotation]


def test_reconcile_refuses_to_apply_against_a_store_holding_none_of_the_keys(
    capsys: pytest.CaptureFixture[str], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.provision("svc")
    lost = world.orphan()
    empty = InMemoryStore()  # the wrong store: same kind, none of the API's keys
    monkeypatch.setattr(cli, "store_from_env", lambda name: empty)
    code, out, err = run(capsys, "--json", "reconcile", "--api-id", world.api, "--apply")
    assert code == 2
    assert "refusing --apply" in err
    assert "most likely the wrong store" in json.loads(out)["message"]
    assert not any(k.deleted for k in world.emulator.keys(world.api))
    code, out, _ = run(capsys, "--json", "reconcile", "--api-id", world.api)
    assert code == 3  # without --apply: reported
    assert lost in {i["key_id"] for i in split(out)[0]}


def test_reconcile_reports_an_unconfirmed_alias_and_goes_on(
    capsys: pytest.CaptureFixture[str], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.provision("good")
    gone = world.provision("bad")
    world.delete(gone)
    world.provision("odd")
    checked = []
    real = world.store.alias_state

    def alias_state(*, api_id: str, alias: str) -> Any:
        checked.append(alias)
        if alias == "odd":
            raise StoreConflictError(
                "alias x holds a version its metadata does not vouch for",
                store="memory",
                location="x",
            )
        return real(api_id=api_id, alias=alias)

    monkeypatch.setattr(world.store, "alias_state", alias_state)
    code, out, err = run(
        capsys, "--json", "reconcile", "--api-id", world.api, "--alias", "odd", "--alias", "bad"
    )
    assert code == 3, err
    items, _ = split(out)
    found = {(i["finding"], i.get("alias")) for i in items}
    assert ("unconfirmed-alias", "odd") in found
    assert ("dead-alias", "bad") in found
    assert set(checked) == {"good", "bad", "odd"}
    code, out, _ = run(capsys, "reconcile", "--api-id", world.api, "--alias", "odd")
    assert code == 3
    assert "unconfirmed-alias: alias odd: reported: alias x holds a version" in out


# -- doctor ----------------------------------------------------------------------------------


def doctor(capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, "--json", "--store", "memory", "doctor", *extra)
    items, summary = split(out)
    checks = {i["check"]: i for i in items if "check" in i}
    commands = {i["for_command"]: i for i in items if "for_command" in i}
    return code, {"checks": checks, "commands": commands, "summary": summary}


def test_doctor_with_every_permission(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, seen = doctor(capsys, "--api-id", world.api)
    assert code == 0
    results = {name: check["result"] for name, check in seen["checks"].items()}
    assert results["unkey.read_api"] == results["unkey.verify_key"] == "ok"
    assert results["unkey.create_key"] == "unchecked"
    assert results["store.write"] == results["store.read"] == "ok"
    assert seen["commands"]["list"]["ready"] == "yes"
    assert seen["commands"]["provision"]["ready"] == "unknown"
    code, seen = doctor(capsys, "--api-id", world.api, "--write-probe")
    assert code == 0
    assert seen["commands"]["provision"]["ready"] == "yes"
    (probe,) = world.emulator.keys(world.api)
    assert probe.deleted
    assert probe.meta is not None
    assert probe.meta[MARKER].startswith("op_memory_")  # provision's form: names the store


def test_doctor_names_what_is_missing_and_what_grants_it(
    capsys: pytest.CaptureFixture[str], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    narrow = world.emulator.add_root_key(["api.*.read_api", "api.*.verify_key"])
    monkeypatch.setattr(cli, "unkey_from_env", lambda: world.client(narrow))
    code, seen = doctor(capsys, "--api-id", world.api, "--write-probe")
    assert code == 3
    checks = seen["checks"]
    assert checks["unkey.read_api"]["result"] == "ok"
    assert checks["unkey.read_key"]["result"] == "failed"
    assert "read_key" in checks["unkey.read_key"]["granted_by"]
    assert checks["unkey.create_key"]["result"] == "failed"
    verify = seen["commands"]["verify"]
    assert verify["ready"] == "yes"
    listing = seen["commands"]["list"]
    assert (listing["ready"], listing["missing"]) == ("no", ["unkey.read_key"])
    assert seen["summary"]["failed"] == 2
    assert world.emulator.keys(world.api) == []


def test_doctor_without_a_root_key_or_a_store(
    capsys: pytest.CaptureFixture[str], world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_root_key() -> UnkeyClient:
        raise ConfigurationError("UNKEY_ROOT_KEY is not set; the Unkey client needs a root key")

    monkeypatch.setattr(cli, "unkey_from_env", no_root_key)
    code, out, _ = run(capsys, "--json", "doctor", "--api-id", world.api)
    assert code == 3
    items, _ = split(out)
    checks = {i["check"]: i for i in items if "check" in i}
    assert checks["unkey.config"]["result"] == "failed"
    assert "UNKEY_ROOT_KEY" in checks["unkey.config"]["granted_by"]
    assert checks["store.config"]["result"] == "unchecked"
    code, out, _ = run(capsys, "doctor", "--api-id", world.api)
    assert "failed    unkey.config: UNKEY_ROOT_KEY is not set" in out


def test_doctor_reports_a_refused_store(capsys: pytest.CaptureFixture[str], world: World) -> None:
    from unkey_secrets import StoreAccessError

    world.store.fail_next("get", StoreAccessError("403 on read", store="memory"))
    code, seen = doctor(capsys, "--api-id", world.api, "--for", "show")
    assert code == 3
    assert seen["checks"]["store.read"]["result"] == "failed"
    assert seen["commands"]["show"]["missing"] == ["store.read"]
    assert seen["commands"]["provision"]["missing"] == []
    # Checked for the writer's commands (the default), a refused read fails nothing.
    world.store.fail_next("get", StoreAccessError("403 on read", store="memory"))
    code, seen = doctor(capsys, "--api-id", world.api)
    assert code == 0
    read = seen["checks"]["store.read"]
    assert (read["result"], read["ok"]) == ("not granted", True)
    assert read["detail"].startswith("not needed here (show and verify need it; ")
    assert (seen["commands"]["show"]["ready"], seen["commands"]["show"]["ok"]) == ("no", True)
    assert seen["summary"]["not_granted"] == 1


# -- rotate-due ------------------------------------------------------------------------------


def test_rotate_due_rotates_only_the_old_keys(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    old = world.provision("old", days_ago=40)
    new = world.provision("new", days_ago=3)
    argv = ["--json", "--store", "memory", "rotate-due", "--api-id", world.api]
    argv += ["--older-than", "30d", "--alias", "old", "--alias", "new", "--grace-period", "1h"]
    code, out, err = run(capsys, *argv, "--dry-run")
    assert code == 0, err
    items, summary = split(out)
    assert [(i["alias"], i["outcome"]) for i in items] == [("old", "due"), ("new", "not-due")]
    assert items[0]["age_seconds"] >= 40 * DAY - 5
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    items, summary = split(out)
    assert [(i["alias"], i["key_id"], i["outcome"]) for i in items] == [
        ("old", old, "rotated"),
        ("new", new, "not-due"),
    ]
    rotated = items[0]["new_key_id"]
    assert world.store.get_current(api_id=world.api, alias="old").key_id == rotated
    assert (summary["rotated"], summary["not_due"], summary["failed"]) == (1, 1, 0)
    # The next run finds nothing due.
    code, out, _ = run(capsys, *argv)
    items, _ = split(out)
    assert [i["outcome"] for i in items] == ["not-due", "not-due"]


def test_rotate_due_goes_on_after_a_failure_and_exits_4(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    world.provision("a", days_ago=40)
    gone = world.provision("b", days_ago=40)
    world.provision("c", days_ago=40)
    world.delete(gone)
    code, out, err = run(
        capsys,
        *("--json", "rotate-due", "--api-id", world.api, "--older-than", "30d"),
        *("--alias", "a", "--alias", "b", "--alias", "missing", "--alias", "c"),
    )
    assert code == options.EXIT_PARTIAL == 4, err
    items, summary = split(out)
    assert [i["outcome"] for i in items] == ["rotated", "missing", "missing", "rotated"]
    assert "Unkey does not have" in items[1]["error"]
    assert (summary["rotated"], summary["missing"]) == (2, 2)


def test_rotate_due_text_names_an_alias_without_a_key_once(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    code, out, err = run(
        capsys,
        *("rotate-due", "--api-id", world.api, "--older-than", "30d", "--alias", "missing"),
    )
    assert code == options.EXIT_PARTIAL, err
    (line,) = [row for row in out.splitlines() if "alias missing" in row]
    assert line.startswith("missing   alias missing: ")
    assert "::" not in line


def test_rotate_due_all_aliases_and_age_from_store(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    world.provision("a", days_ago=40)
    world.provision("b", days_ago=1)
    code, out, _ = run(
        capsys,
        *("--json", "rotate-due", "--api-id", world.api, "--older-than", "30d", "--all-aliases"),
        "--dry-run",
    )
    assert code == 0
    items, _ = split(out)
    assert sorted((i["alias"], i["outcome"]) for i in items) == [("a", "due"), ("b", "not-due")]
    # The stored issued_at is the store's own clock (now), not the emulator's.
    code, out, _ = run(
        capsys,
        *("--json", "rotate-due", "--api-id", world.api, "--older-than", "30d", "--alias", "a"),
        *("--age-from", "store", "--dry-run"),
    )
    items, _ = split(out)
    assert items[0]["outcome"] == "not-due"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["rotate-due", "--api-id", "api_1", "--alias", "a"], "required: --older-than"),
        (["rotate-due", "--api-id", "api_1", "--older-than", "soon", "--alias", "a"], "30m"),
        (["rotate-due", "--api-id", "api_1", "--older-than", "30d"], "name the aliases"),
    ],
)
def test_rotate_due_usage(
    capsys: pytest.CaptureFixture[str], world: World, argv: list[str], expected: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert expected in err
