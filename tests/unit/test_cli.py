"""The command line without servers: parsing, stdin handling, output and exit codes.

``main`` runs in-process with its two seams (``unkey_from_env``, ``store_from_env``) replaced by
a scripted Unkey (httpx.MockTransport) and an in-memory store.
"""

from __future__ import annotations

import io
import json
import sys
from typing import Any

import httpx
import pytest

from unkey_secrets import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
    ConfigurationError,
    FlowError,
    InvalidInputError,
    IssuedKey,
    NotOwnedError,
    Secret,
    SecretNotFoundError,
    SecretStore,
    StoreAccessError,
    StoredKey,
    StoredLocation,
    StoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    UnkeyAuthError,
    UnkeyError,
    UnkeyTransportError,
)
from unkey_secrets._models import AliasState, KeyEntry
from unkey_secrets.cli import app as cli

from ._unkey_fake import PLAINTEXT, FakeUnkey, issued, make_client, ok

API = "api_cli123"
KEY = "key_cli456"
#: A mistaken value with nothing but letters and digits, which looks like an option's name.
ALNUM = "Zq7CanaryOnlyAlnum42"


class MemoryStore(SecretStore):
    """Keeps keys in a dict; ``fail`` makes every write raise it."""

    name = "memory"

    def __init__(self, fail: Exception | None = None) -> None:
        super().__init__()
        self.keys: dict[str, str] = {}
        self.entries: dict[str, KeyEntry] = {}
        self.aliases: dict[str, AliasState] = {}
        self.fail = fail

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        if self.fail is not None:
            raise self.fail
        self.keys[path] = key.secret.reveal()
        self.entries[path] = KeyEntry(key.api_id, key.key_id, key.alias, key.rerolled_from)
        return StoredLocation("memory", path, key.key_id, "1")

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: object
    ) -> StoredLocation:
        if self.fail is not None:
            raise self.fail
        self.keys[path] = key.secret.reveal()
        revision = int(self.aliases[path].revision) + 1 if path in self.aliases else 1
        self.aliases[path] = AliasState(
            alias, key.api_id, key.key_id, str(revision), key.rerolled_from
        )
        return StoredLocation("memory", path, key.key_id, "2", alias=alias)

    def _get(self, path: str) -> StoredKey:
        raise SecretNotFoundError("not kept", store="memory", location=path)

    def _get_current(self, path: str) -> StoredKey:
        raise SecretNotFoundError("not kept", store="memory", location=path)

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        entry = self.entries.get(path)
        return entry if entry is not None and entry.key_id == key_id else None

    def _alias_state(self, path: str, api_id: str, alias: str) -> AliasState | None:
        return self.aliases.get(path)


@pytest.fixture(autouse=True)
def core_limit_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """main() would set this test process's hard core limit to 0 for good: record the call."""
    calls: list[str] = []
    monkeypatch.setattr(cli, "disable_core_dumps", lambda: calls.append("disabled") or True)
    return calls


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> MemoryStore:
    memory = MemoryStore()
    monkeypatch.setattr(cli, "store_from_env", lambda name: memory)
    return memory


def script_unkey(monkeypatch: pytest.MonkeyPatch, *replies: Any) -> FakeUnkey:
    fake = FakeUnkey(*replies)
    monkeypatch.setattr(cli, "unkey_from_env", lambda: make_client(fake))
    return fake


def set_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes, *, tty: bool = False) -> None:
    stream = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
    monkeypatch.setattr(stream, "isatty", lambda: tty)
    monkeypatch.setattr("sys.stdin", stream)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- parsing ---------------------------------------------------------------------------------


def test_provision_options_are_parsed() -> None:
    args = cli.build_parser().parse_args(
        [
            *("--json", "-vv", "--store", "aws", "provision", "--api-id", API, "--alias", "svc"),
            *("--mode", "fast", "--name", "n", "--prefix", "p", "--external-id", "tenant_1"),
            *("--meta", '{"a": 1}', "--expires", "1700000000000"),
            *("--permission", "x.read", "--permission", "x.write", "--role", "admin"),
        ]
    )
    assert args.json is True
    assert args.verbose == 2
    assert args.store == "aws"
    assert args.command == "provision"
    assert (args.api_id, args.alias, args.mode) == (API, "svc", "fast")
    assert (args.name, args.prefix, args.external_id) == ("n", "p", "tenant_1")
    assert args.meta == {"a": 1}
    assert args.expires == 1700000000000
    assert args.permissions == ["x.read", "x.write"]
    assert args.roles == ["admin"]


def test_defaults() -> None:
    args = cli.build_parser().parse_args(["rotate", "--api-id", API, "--key-id", KEY])
    assert (args.json, args.verbose, args.store) == (False, 0, None)
    assert args.grace_period is None
    assert args.allow_short_grace is False
    args = cli.build_parser().parse_args(["provision", "--api-id", API])
    assert args.mode == "safe"
    assert args.permissions is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "required: COMMAND"),
        (["provision"], "required: --api-id"),
        (["rotate", "--api-id", API], "one of the arguments --alias --key-id is required"),
        (["provision", "--api-id", API, "--mode", "slow"], "invalid choice: '<value>'"),
        (["provision", "--api-id", API, "--meta", "[1]"], "--meta: must be a JSON object"),
        (["provision", "--api-id", API, "--meta", "{"], "--meta: not valid JSON"),
        (["provision", "--api-id", API, "--expires", "soon"], "--expires: must be a whole"),
        (
            ["rotate", "--api-id", API, "--key-id", KEY, "--grace-period", "-5"],
            "--grace-period: must be whole seconds or a duration such as 30m",
        ),
        (
            ["rotate", "--api-id", API, "--key-id", KEY, "--grace-period", "9" * 20],
            "--grace-period: may be at most 3650d (10 years)",
        ),
        (
            [
                "capture",
                "--api-id",
                API,
                "--key-id",
                KEY,
                "--rerolled-from",
                "k",
                "--delete-if-unstored",
            ],
            "not allowed with argument --rerolled-from",
        ),
        (["stores", "--api-id", API], "2 unrecognized argument(s) (options: --api-id)"),
        # A name that is not one of ours may be a value (--jsonKEY): it is counted, not shown.
        (["stores", "--api", API], "2 unrecognized argument(s); values are not echoed"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], expected: str, as_json: bool
) -> None:
    code, out, err = run(capsys, *(["--json"] if as_json else []), *argv)
    assert code == cli.EXIT_USAGE == 2
    assert expected in err
    assert err.startswith("usage: unkey-secrets")
    if not as_json:
        assert out == ""
        return
    (line,) = out.splitlines()
    record = json.loads(line)
    assert record["ok"] is False
    assert record["exit_code"] == 2
    assert record["error"] == "UsageError"
    assert record["command"] == (argv[0] if argv else None)
    assert expected in record["message"]
    assert f"error: {record['message']}\n" in err


@pytest.mark.parametrize(
    ("argv", "as_json"),
    [
        (["stores", "--json", "--nope"], True),  # a global option after the command
        (["--store", "--json", "stores"], False),  # --store's value, however it looks
        (["--store", "x", "--json", "-vv", "stores", "--nope"], True),
        (["-vv", "--json", "rotate", "--api-id", API], True),
    ],
)
def test_only_a_global_json_option_prints_a_usage_error_object(
    capsys: pytest.CaptureFixture[str], argv: list[str], as_json: bool
) -> None:
    code, out, _ = run(capsys, *argv)
    assert code == 2
    assert bool(out) is as_json
    if as_json:
        assert json.loads(out)["exit_code"] == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["capture", "--api-id", API, "--key-id", KEY, PLAINTEXT],
        ["capture", "--api-id", API, "--key-id", KEY, f"--key={PLAINTEXT}"],
        ["provision", "--api-id", API, "--mode", PLAINTEXT],
        ["provision", "--api-id", API, f"--mode={PLAINTEXT}"],
        ["provision", "--api-id", API, "--expires", PLAINTEXT],
        ["provision", "--api-id", API, "--meta", PLAINTEXT],
        [PLAINTEXT],
        # Glued to a short flag: argparse reads the value letter by letter as more flags.
        ["-v" + PLAINTEXT, "stores"],
        ["-vv" + PLAINTEXT, "stores"],
        ["-v=" + PLAINTEXT, "stores"],
        ["--json", "-v" + PLAINTEXT, "stores"],
        ["capture", "-h" + PLAINTEXT],
        ["capture", "--api-id", API, "--key-id", KEY, "-h" + PLAINTEXT],
        ["capture", "--api-id", API, "--key-id", KEY, "-hv" + PLAINTEXT],
        # Glued to a long flag, and values made only of letters and digits.
        ["--json" + PLAINTEXT, "stores"],
        ["--json" + ALNUM, "stores"],
        ["stores", "--json" + ALNUM],
        ["--" + ALNUM, "stores"],
        ["-" + ALNUM, "stores"],
        ["capture", "--api-id", API, "--key-id", KEY, ALNUM],
        [ALNUM],
        ["provision", "--api-id", API, "--mode", ALNUM],
        ["provision", "--api-id", API, "--mode", "it's" + PLAINTEXT + '"'],
        ["--store", "vault", "--json", "--verbose=" + PLAINTEXT, "stores"],
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_a_key_on_the_command_line_is_never_echoed(
    capsys: pytest.CaptureFixture[str], argv: list[str], as_json: bool
) -> None:
    code, out, err = run(capsys, *(["--json"] if as_json else []), *argv)
    assert code == 2
    assert "error: " in err
    for value in (PLAINTEXT, ALNUM):
        for tail in (value, value[1:], value[2:], value[3:]):
            assert tail not in out + err
    if as_json:
        assert json.loads(out)["exit_code"] == 2


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "argument -v/--verbose: ignored explicit argument 'x'",
            "argument -v/--verbose: ignored a value glued to it",
        ),
        (
            "argument --mode: invalid choice: 'x' (choose from 'safe', 'fast')",
            "argument --mode: invalid choice: '<value>' (choose from 'safe', 'fast')",
        ),
        ("argument --n: invalid int value: 'x'", "argument --n: invalid int value"),
        ("ambiguous option: -x could match -xa, -xb", "ambiguous option"),
        ("something new: 'x' and \"y\" and 'safe'", "something new: '<value>' and '<value>'"),
    ],
)
def test_usage_message_names_options_and_choices_only(message: str, expected: str) -> None:
    shown = cli.usage_message(message, ["x", "y"], cli.build_parser())
    assert shown.startswith(expected)
    assert "'x'" not in shown
    assert "-x " not in shown


@pytest.mark.parametrize("typed", ["rotate-du", "otate-due", "recon", "provisio"])
def test_a_mistyped_command_leaves_the_choices_whole(
    capsys: pytest.CaptureFixture[str], typed: str
) -> None:
    code, _, err = run(capsys, typed)
    assert code == 2
    assert "invalid choice: '<value>' (choose from 'provision', 'rotate'," in err
    for command in ("rotate-due", "reconcile", "provision"):
        assert f"'{command}'" in err
    assert "<value>e" not in err
    assert err.count("<value>") == 1
    assert f"'{typed}'" not in err


def test_a_typed_value_is_masked_as_a_whole_word_only() -> None:
    parser = cli.build_parser()
    shown = cli.usage_message(
        "bad: rotate-du, xrotate-du and rotate-du; 'rotate-due'", ["rotate-du"], parser
    )
    assert shown == "bad: <value>, xrotate-du and <value>; 'rotate-due'"


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "provision" in out
    assert "Exit codes" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("unkey-secrets ")


def test_main_disables_core_dumps_first(
    capsys: pytest.CaptureFixture[str], core_limit_calls: list[str]
) -> None:
    assert run(capsys, "stores")[0] == 0
    assert core_limit_calls == ["disabled"]
    # Even a command line that does not parse runs in a process without core dumps.
    assert run(capsys, "--no-such-option")[0] == 2
    assert core_limit_calls == ["disabled", "disabled"]


# -- exit codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInputError("key_id", "bad"), 2),
        (ConfigurationError("no root key"), 2),
        (StoreNotFoundError("nope", ["aws", "vault"]), 2),
        (FlowError("f", key_id=None), 1),
        (CompensatedError("c", key_id=KEY), 1),
        (AmbiguousOutcomeError("a", key_id=None), 1),
        (CompensationFailedError("c", key_id=KEY), 1),
        (StoreError("s", store="vault"), 1),
        (StoreUnavailableError("s", store="vault"), 1),
        (NotOwnedError("s", store="aws"), 1),
        (UnkeyError("u", operation="keys.createKey"), 1),
        (UnkeyTransportError("u", operation="keys.createKey"), 1),
        (
            UnkeyAuthError(
                operation="keys.createKey",
                status=401,
                error_type="t",
                title="Unauthorized",
                detail="d",
                request_id="req_1",
            ),
            1,
        ),
        (RuntimeError("x"), 1),
    ],
)
def test_exit_code_for(error: Exception, code: int) -> None:
    assert cli.exit_code_for(error) == code


@pytest.mark.parametrize("as_json", [False, True])
def test_configuration_error_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, as_json: bool
) -> None:
    def broken(name: str | None) -> SecretStore:
        raise ConfigurationError("invalid Vault settings: addr: must be https")

    monkeypatch.setattr(cli, "store_from_env", broken)
    flags = ["--json"] if as_json else []
    code, out, err = run(capsys, *flags, "--store", "vault", "provision", "--api-id", API)
    assert code == 2
    assert err == "error: invalid Vault settings: addr: must be https\n"
    if as_json:
        record = json.loads(out)
        assert record == {
            "command": "provision",
            "ok": False,
            "exit_code": 2,
            "error": "ConfigurationError",
            "message": "invalid Vault settings: addr: must be https",
        }
    else:
        assert out == ""


def test_a_foreign_error_is_named_by_class_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(name: str | None) -> SecretStore:
        raise RuntimeError(f"plugin failed with body {PLAINTEXT}")

    monkeypatch.setattr(cli, "store_from_env", broken)
    code, out, err = run(capsys, "--json", "--store", "x", "provision", "--api-id", API)
    assert code == 1
    assert err == "error: unexpected RuntimeError\n"
    assert "Traceback" not in err
    assert PLAINTEXT not in out + err
    assert json.loads(out)["error"] == "RuntimeError"


def test_interrupt_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(name: str | None) -> SecretStore:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "store_from_env", interrupted)
    code, _, err = run(capsys, "--store", "vault", "provision", "--api-id", API)
    assert code == cli.EXIT_INTERRUPTED == 130
    assert err == "error: interrupted\n"


def test_no_store_chosen_lists_the_installed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "provision", "--api-id", API)
    assert code == 2
    assert err == "error: choose a store with --store (installed: aws, vault)\n"


def test_unknown_store_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--store", "nope", "provision", "--api-id", API)
    assert code == 2
    assert "no secret store named 'nope'; installed stores: aws, vault" in err


def test_store_without_from_settings_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli, "load_store", lambda name: MemoryStore)
    with pytest.raises(ConfigurationError, match="no from_settings"):
        cli.store_from_env("memory")


# -- commands --------------------------------------------------------------------------------


def test_stores(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "stores") == (0, "aws\nvault\n", "")
    _, out, _ = run(capsys, "--json", "stores")
    assert json.loads(out) == {"command": "stores", "ok": True, "stores": ["aws", "vault"]}


def test_provision_human(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    fake = script_unkey(monkeypatch, issued(KEY), ok({}))
    code, out, err = run(
        capsys, "--store", "memory", "provision", "--api-id", API, "--alias", "svc"
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"provisioned key {KEY} in API {API} (safe mode)",
        f"stored at memory unkey/{API}/{KEY} version 1",
        f"alias svc -> memory unkey/{API}/by-name/svc version 2",
        "request_id req_issue",
    ]
    assert PLAINTEXT not in out
    assert store.keys[f"unkey/{API}/{KEY}"] == PLAINTEXT
    create, enable = fake.bodies
    assert create["enabled"] is False
    assert enable["keyId"] == KEY
    assert enable["enabled"] is True


def test_provision_json_passes_every_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    fake = script_unkey(monkeypatch, issued(KEY))
    code, out, err = run(
        capsys,
        "--json",
        "--store",
        "memory",
        "provision",
        "--api-id",
        API,
        "--mode",
        "fast",
        "--name",
        "deploy",
        "--prefix",
        "live",
        "--external-id",
        "tenant_1",
        "--meta",
        '{"team": "x"}',
        "--expires",
        "4102444800000",
        "--permission",
        "p.read",
        "--role",
        "r1",
    )
    assert (code, err) == (0, "")
    assert PLAINTEXT not in out
    record = json.loads(out)
    assert record == {
        "command": "provision",
        "ok": True,
        "key_id": KEY,
        "api_id": API,
        "mode": "fast",
        "alias": None,
        "request_id": "req_issue",
        "location": {
            "store": "memory",
            "location": f"unkey/{API}/{KEY}",
            "key_id": KEY,
            "version": "1",
            "created": True,
            "alias": None,
        },
        "current": None,
        "replaced_key_id": None,
        "replaced_expires": None,
        "replaced_expires_at": None,
    }
    (body,) = fake.bodies
    assert body["name"] == "deploy"
    assert body["prefix"] == "live"
    assert body["externalId"] == "tenant_1"
    assert body["meta"]["team"] == "x"
    assert body["expires"] == 4102444800000
    assert body["permissions"] == ["p.read"]
    assert body["roles"] == ["r1"]
    assert "enabled" not in body


def test_provision_store_failure_exits_1_and_says_what_was_undone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = MemoryStore(fail=NotOwnedError("not ours", store="memory"))
    monkeypatch.setattr(cli, "store_from_env", lambda name: failing)
    script_unkey(monkeypatch, issued(KEY), ok({}))
    code, out, err = run(capsys, "--json", "--store", "memory", "provision", "--api-id", API)
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"error: storing key {KEY} failed (NotOwnedError: not ours)")
    assert f"deleted key {KEY} in Unkey" in err
    record = json.loads(out)
    assert record["error"] == "CompensatedError"
    assert record["actions"] == [f"deleted key {KEY} in Unkey"]
    assert record["key_id"] == KEY
    assert PLAINTEXT not in out + err


def test_unkey_error_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    reply = httpx.Response(
        403,
        json={
            "meta": {"requestId": "req_x"},
            "error": {"title": "Forbidden", "detail": "no", "status": 403, "type": "t"},
        },
    )
    script_unkey(monkeypatch, reply)
    code, _, err = run(capsys, "--store", "memory", "provision", "--api-id", API)
    assert code == 1
    assert err.startswith("error: keys.createKey failed with 403 Forbidden")


def test_rotate_short_grace_needs_the_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    fake = script_unkey(monkeypatch)
    code, _, err = run(
        capsys, "--store", "m", "rotate", "--api-id", API, "--key-id", KEY, "--grace-period", "60"
    )
    assert code == 2
    assert "invalid --grace-period: 1m is shorter than 5m" in err
    assert "pass --allow-short-grace" in err
    assert "allow_short_grace" not in err
    assert fake.requests == []


def test_capture_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    monkeypatch.delenv("UNKEY_ROOT_KEY", raising=False)
    set_stdin(monkeypatch, PLAINTEXT.encode() + b"\n")
    code, out, err = run(
        capsys, "--store", "m", "capture", "--api-id", API, "--key-id", KEY, "--alias", "svc"
    )
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"captured key {KEY} of API {API}",
        f"stored at memory unkey/{API}/{KEY} version 1",
        "alias svc now points at it",
    ]
    assert store.keys[f"unkey/{API}/{KEY}"] == PLAINTEXT
    assert store.keys[f"unkey/{API}/by-name/svc"] == PLAINTEXT


def test_capture_deletes_what_it_cannot_store_only_when_asked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNKEY_ROOT_KEY", "unkey_set")
    failing = MemoryStore(fail=StoreUnavailableError("down", store="memory"))
    monkeypatch.setattr(cli, "store_from_env", lambda name: failing)
    fake = script_unkey(monkeypatch, ok({}))
    set_stdin(monkeypatch, PLAINTEXT.encode())
    code, out, err = run(
        capsys, "--json", "--store", "m", "capture", "--api-id", API, "--key-id", KEY,
        "--delete-if-unstored",
    )  # fmt: skip
    assert code == 1
    assert fake.paths == ["/v2/keys.deleteKey"]
    assert json.loads(out)["actions"] == [f"deleted key {KEY} in Unkey"]
    assert PLAINTEXT not in out + err


def test_capture_keeps_the_key_in_unkey_by_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A root key in the environment is not a request to delete: a wrong store setting must not
    # revoke a key that is live somewhere else.
    monkeypatch.setenv("UNKEY_ROOT_KEY", "unkey_set")
    failing = MemoryStore(fail=StoreAccessError("denied", store="memory"))
    monkeypatch.setattr(cli, "store_from_env", lambda name: failing)
    built: list[str] = []
    monkeypatch.setattr(cli, "unkey_from_env", lambda: built.append("built"))
    set_stdin(monkeypatch, PLAINTEXT.encode())
    code, out, err = run(
        capsys, "--json", "--store", "m", "capture", "--api-id", API, "--key-id", KEY
    )
    assert code == 1
    assert built == []
    record = json.loads(out)
    assert record["actions"] == ["stored nothing"]
    assert record["key_id"] == KEY
    assert KEY in err
    assert PLAINTEXT not in out + err


def test_delete_if_unstored_needs_a_root_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    monkeypatch.delenv("UNKEY_ROOT_KEY", raising=False)
    set_stdin(monkeypatch, PLAINTEXT.encode())
    code, out, err = run(
        capsys, "--store", "m", "capture", "--api-id", API, "--key-id", KEY,
        "--delete-if-unstored",
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err.startswith("error: --delete-if-unstored needs UNKEY_ROOT_KEY")
    assert store.keys == {}
    assert sys.stdin.read() == PLAINTEXT  # the key was not even read


def test_capture_rerolled_from(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    monkeypatch.delenv("UNKEY_ROOT_KEY", raising=False)
    set_stdin(monkeypatch, PLAINTEXT.encode())
    code, out, _ = run(
        capsys, "--json", "--store", "m", "capture", "--api-id", API, "--key-id", KEY,
        "--rerolled-from", "key_old123",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out)["rerolled_from"] == "key_old123"


@pytest.mark.parametrize(
    ("data", "tty", "problem"),
    [
        (b"", False, "invalid key: stdin is empty"),
        (b"  \n", False, "invalid key: stdin is empty"),
        (PLAINTEXT.encode(), True, "invalid stdin: is a terminal"),
        (b"x" * 5000, False, "invalid key: stdin holds more than 4096 bytes"),
        (PLAINTEXT.encode() + b"\xff\xfe", False, "invalid key: stdin is not UTF-8 text"),
        (PLAINTEXT.encode() + b"\n" + PLAINTEXT.encode(), False, "invalid key: must be one line"),
        (PLAINTEXT.encode() + b"\x1b[2J", False, "invalid key: must be one line"),
    ],
)
def test_capture_refuses_bad_stdin_without_echoing_it(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: MemoryStore,
    data: bytes,
    tty: bool,
    problem: str,
) -> None:
    set_stdin(monkeypatch, data, tty=tty)
    code, out, err = run(
        capsys, "--json", "--store", "m", "capture", "--api-id", API, "--key-id", KEY
    )
    assert code == 2
    assert err.startswith(f"error: {problem}")
    assert PLAINTEXT not in out + err
    assert "xxxxxxxx" not in out + err
    assert store.keys == {}


def test_capture_prompt_uses_getpass_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    monkeypatch.delenv("UNKEY_ROOT_KEY", raising=False)
    set_stdin(monkeypatch, b"", tty=True)
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return PLAINTEXT

    monkeypatch.setattr(cli.getpass, "getpass", fake_getpass)
    code, _, err = run(
        capsys, "--store", "m", "capture", "--api-id", API, "--key-id", KEY, "--prompt"
    )
    assert (code, err) == (0, "")
    assert prompts == ["Unkey key (not echoed): "]
    assert store.keys[f"unkey/{API}/{KEY}"] == PLAINTEXT


def test_capture_prompt_needs_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    set_stdin(monkeypatch, PLAINTEXT.encode(), tty=False)
    code, _, err = run(
        capsys, "--store", "m", "capture", "--api-id", API, "--key-id", KEY, "--prompt"
    )
    assert code == 2
    assert err.startswith("error: invalid --prompt: needs a terminal")


def test_output_masks_a_plaintext_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    from unkey_secrets._redact import confined
    from unkey_secrets.cli.output import Output

    out, err = io.StringIO(), io.StringIO()
    with confined(Secret(PLAINTEXT)):
        Output(json=True, stdout=out, stderr=err).result({"command": "x", "oops": PLAINTEXT})
    assert PLAINTEXT not in out.getvalue()


def test_capture_prompt_end_of_input_is_no_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, store: MemoryStore
) -> None:
    set_stdin(monkeypatch, b"", tty=True)

    def end_of_input(prompt: str = "") -> str:
        raise EOFError

    monkeypatch.setattr(cli.getpass, "getpass", end_of_input)
    code, out, err = run(
        capsys, "--json", "--store", "m", "capture", "--api-id", API, "--key-id", KEY, "--prompt"
    )
    assert code == 2
    assert err == "error: invalid key: no key given\n"
    assert json.loads(out)["field"] == "key"
    assert store.keys == {}


def test_a_bad_client_setting_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    code, out, err = run(capsys, "--store", "aws", "provision", "--api-id", API)
    assert (code, out) == (2, "")
    assert err.startswith("error: store 'aws' could not be configured from the environment")
    assert "many" not in err


def test_a_plugin_settings_value_error_is_named_not_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Fussy(MemoryStore):
        @classmethod
        def from_settings(cls) -> Fussy:
            raise ValueError(f"bad setting {PLAINTEXT}")

    monkeypatch.setattr(cli, "load_store", lambda name: Fussy)
    with pytest.raises(ConfigurationError) as caught:
        cli.store_from_env("fussy")
    assert "(ValueError)" in str(caught.value)
    assert PLAINTEXT not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# -- a closed or broken stdout -----------------------------------------------------------------


class BrokenPipe(io.StringIO):
    """A stream whose reader went away."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def closed_stream() -> io.StringIO:
    stream = io.StringIO()
    stream.close()
    return stream


@pytest.mark.parametrize("broken", [BrokenPipe, closed_stream, lambda: None])
def test_output_survives_a_broken_stream(broken: Any) -> None:
    from unkey_secrets.cli.output import Output

    err = io.StringIO()
    output = Output(json=True, stdout=broken(), stderr=err)
    assert output.result({"command": "stores", "ok": True, "stores": []}) is False
    assert err.getvalue().startswith("warning: the result could not be written to stdout")
    output.failure("stores", ConfigurationError("x"), 2)  # does not raise either
    # Nothing can be said when stderr is gone as well, and nothing raises.
    Output(json=False, stdout=broken(), stderr=broken()).result(
        {"command": "stores", "ok": True, "stores": ["a"]}
    )


@pytest.mark.parametrize("broken", [BrokenPipe, closed_stream, lambda: None])
@pytest.mark.parametrize("as_json", [True, False])
def test_a_closed_stdout_gets_one_warning_per_run_however_many_results(
    broken: Any, as_json: bool
) -> None:
    # `list --api-id X >&-` with 100 keys gave 101 identical warnings.
    from unkey_secrets.cli.output import LOST_RESULT, Output

    err = io.StringIO()
    output = Output(json=as_json, stdout=broken(), stderr=err)
    record = {"command": "stores", "ok": True, "stores": ["a"]}
    assert not any(output.result(record) for _ in range(101))
    assert err.getvalue().count(LOST_RESULT) == 1


@pytest.mark.parametrize("broken", [BrokenPipe, closed_stream, lambda: None])
def test_a_broken_stdout_after_success_still_exits_0(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    store: MemoryStore,
    broken: Any,
) -> None:
    script_unkey(monkeypatch, issued(KEY), ok({}))
    monkeypatch.setattr("sys.stdout", broken())
    code = cli.main(["--json", "--store", "m", "provision", "--api-id", API])
    _, err = capsys.readouterr()
    assert code == 0
    assert "Traceback" not in err
    assert err.startswith("warning: the result could not be written to stdout")
    assert store.keys[f"unkey/{API}/{KEY}"] == PLAINTEXT


@pytest.mark.parametrize("broken", [BrokenPipe, closed_stream, lambda: None])
def test_a_broken_stdout_keeps_a_failures_exit_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, broken: Any
) -> None:
    monkeypatch.setattr("sys.stdout", broken())
    assert cli.main(["--json", "provision", "--api-id", API]) == 2
    assert cli.main(["--json", "provision"]) == 2
    assert cli.main(["--json", "--help"]) == 0
    _, err = capsys.readouterr()
    assert "Traceback" not in err


# -- show ------------------------------------------------------------------------------------


@pytest.fixture
def shelf(monkeypatch: pytest.MonkeyPatch) -> Any:
    """An InMemoryStore (it keeps values, unlike MemoryStore) holding one rotated pair.

    ``key_old123`` was issued for alias ``svc``, then rerolled to ``key_new123``, which the alias
    names now.
    """
    import datetime as dt

    from unkey_secrets.testing import InMemoryStore

    memory = InMemoryStore()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    old = IssuedKey("key_old123", Secret(PLAINTEXT + "old"), API, alias="svc", issued_at=when)
    new = IssuedKey(
        "key_new123",
        Secret(PLAINTEXT),
        API,
        alias="svc",
        rerolled_from="key_old123",
        expires=1893456000000,
        prefix="prod",
        external_id="tenant_1",
        issued_at=when,
    )
    memory.put(old)
    memory.set_current(old, alias="svc")
    memory.put(new)
    memory.set_current(new, alias="svc")
    monkeypatch.setattr(cli, "store_from_env", lambda name: memory)
    return memory


def test_show_parses_alias_or_key_id() -> None:
    args = cli.build_parser().parse_args(["show", "--api-id", API, "--alias", "svc"])
    assert (args.command, args.api_id, args.alias, args.key_id) == ("show", API, "svc", None)
    args = cli.build_parser().parse_args(["show", "--api-id", API, "--key-id", KEY])
    assert (args.alias, args.key_id) == (None, KEY)


@pytest.mark.parametrize(
    "argv",
    [
        ["show", "--api-id", API],
        ["show", "--api-id", API, "--alias", "svc", "--key-id", KEY],
        ["show", "--alias", "svc"],
    ],
)
def test_show_needs_exactly_one_of_alias_and_key_id(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, err = run(capsys, "--store", "m", *argv)
    assert code == 2
    assert out == ""
    assert err.splitlines()[-1].startswith("error: ")


def test_show_by_alias_prints_metadata_never_the_key(
    capsys: pytest.CaptureFixture[str], shelf: Any
) -> None:
    code, out, err = run(capsys, "--store", "memory", "show", "--api-id", API, "--alias", "svc")
    assert code == 0, err
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"alias svc names key key_new123 of API {API}"
    assert lines[1].startswith(f"stored at memory unkey/{API}/by-name/svc version ")
    assert "created 2026-01-02T03:04:05+00:00" in lines
    assert "expires 2030-01-01T00:00:00+00:00" in lines
    assert "rerolled from key key_old123" in lines
    assert "external_id tenant_1" in lines
    assert PLAINTEXT not in out
    assert "prod_" not in out


def test_show_json_by_key_id(capsys: pytest.CaptureFixture[str], shelf: Any) -> None:
    code, out, _ = run(
        capsys, "--json", "--store", "memory", "show", "--api-id", API, "--key-id", "key_old123"
    )
    assert code == 0
    (line,) = out.splitlines()
    record = json.loads(line)
    assert record == {
        "command": "show",
        "ok": True,
        "key_id": "key_old123",
        "api_id": API,
        "alias": None,
        "store": "memory",
        "location": f"unkey/{API}/key_old123",
        "version": record["version"],
        "issued_at": "2026-01-02T03:04:05+00:00",
        "expires": None,
        "expires_at": None,
        "rerolled_from": None,
        "name": None,
        "external_id": None,
        "prefix": None,
    }
    assert record["version"]
    assert "key" not in record
    assert PLAINTEXT not in out


def test_show_reads_with_the_readers_calls_only(
    capsys: pytest.CaptureFixture[str], shelf: Any
) -> None:
    shelf.calls.clear()
    assert run(capsys, "--store", "memory", "show", "--api-id", API, "--alias", "svc")[0] == 0
    assert shelf.calls == ["get_current"]
    shelf.calls.clear()
    assert (
        run(capsys, "--store", "memory", "show", "--api-id", API, "--key-id", "key_new123")[0] == 0
    )
    assert shelf.calls == ["get"]


@pytest.mark.parametrize("as_json", [False, True])
def test_show_of_a_missing_alias_is_exit_1_with_a_clear_error(
    capsys: pytest.CaptureFixture[str], shelf: Any, as_json: bool
) -> None:
    flags = ["--json"] if as_json else []
    code, out, err = run(
        capsys, *flags, "--store", "memory", "show", "--api-id", API, "--alias", "nope"
    )
    assert code == 1
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: memory holds no alias nope of API {API} (nothing at unkey/{API}/by-name/nope)"
    )
    if as_json:
        record = json.loads(out)
        assert (record["error"], record["exit_code"], record["command"]) == (
            "SecretNotFoundError",
            1,
            "show",
        )
    else:
        assert out == ""


def test_show_of_a_missing_key_id_is_exit_1(capsys: pytest.CaptureFixture[str], shelf: Any) -> None:
    code, _, err = run(capsys, "--store", "memory", "show", "--api-id", API, "--key-id", KEY)
    assert code == 1
    assert f"memory holds no key {KEY} of API {API}" in err


def test_show_of_an_invalid_alias_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], shelf: Any
) -> None:
    code, _, err = run(capsys, "--store", "memory", "show", "--api-id", API, "--alias", "a/b")
    assert code == 2
    assert err.startswith("error: ")


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["list", "--api-id", API, "--expiring-within", "7x"], "list"),
        (["verify", "--api-id", API, "--alias", "a", "--expiring-within", "7x"], "verify"),
        (["rotate", "--api-id", API, "--alias", "a", "--grace-period", "4x"], "rotate"),
        (["rotate-due", "--api-id", API, "--alias", "a", "--older-than", "30x"], "rotate-due"),
        (["--json", "reconcile", "--api-id", API, "--min-age", "1y"], "reconcile"),
        (["rotate", "--api-id", API], "rotate"),  # checked after parsing, still rotate's
        (["list", "--bogus"], "list"),  # refused by the top parser, about list's options
    ],
)
def test_a_bad_option_of_a_command_prints_that_commands_usage(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith(f"usage: unkey-secrets {command} "), err
    assert "COMMAND ..." not in err


def test_a_bad_command_prints_the_global_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "rotat", "--api-id", API)
    assert code == 2
    assert err.startswith("usage: unkey-secrets [-h]")
    code, _, err = run(capsys)
    assert code == 2
    assert err.startswith("usage: unkey-secrets [-h]")
