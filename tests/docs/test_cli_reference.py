"""``docs/reference/cli.md`` shows the real command line: options, commands, exit codes, JSON.

* The option tables are the parser's own (``scripts/docs_cli.py`` writes them; a change to an
  option without running it fails here), and every command has one.
* The exit-code table lists exactly the CLI's ``EXIT_*`` codes, with their values.
* Each JSON example (a ``json`` block, one object a line) has the members the real command
  prints with ``--json`` for the same kind of line (its ``command``, a ``summary`` line, an
  error): the commands are run against the local stack (the Unkey emulator and OpenBao).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from scripts import docs_cli
from tests.docs._blocks import ROOT, blocks_of
from unkey_secrets import UnkeyClient
from unkey_secrets.cli import app, output

PAGE = ROOT / "docs" / "reference" / "cli.md"


def test_option_tables_are_the_parsers() -> None:
    text = PAGE.read_text(encoding="utf-8")
    tables = docs_cli.expected_tables()
    missing = [name for name in tables if name not in docs_cli.tables_in(text)]
    assert not missing, f"cli.md has no option table for {missing}: see scripts/docs_cli.py"
    assert docs_cli.render(text, tables) == text, (
        "cli.md's option tables differ from the parser: run python scripts/docs_cli.py"
    )


def test_every_command_has_a_section() -> None:
    text = PAGE.read_text(encoding="utf-8")
    headings = set(re.findall(r"(?m)^##+ `([\w-]+)`", text))
    assert sorted(set(app.command_names()) - headings) == []


def test_exit_codes_are_the_clis() -> None:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(code) for code in re.findall(r"(?m)^\| `(\d+)` \|", section)}
    codes = {getattr(app, name) for name in dir(app) if name.startswith("EXIT_")}
    assert documented == codes


def test_the_lost_result_warning_is_shown() -> None:
    """What stderr says when stdout could not take a result (``| head -1``) is on the page."""
    assert output.LOST_RESULT in PAGE.read_text(encoding="utf-8")


# -- JSON output ----------------------------------------------------------------------------


def _kind(record: dict[str, Any]) -> tuple[str, str]:
    if record.get("summary"):
        return str(record.get("command")), "summary"
    if "error" in record and "exit_code" in record:
        return str(record.get("command")), "error"
    if "for_command" in record:
        return str(record.get("command")), "readiness"
    return str(record.get("command")), "result"


def documented_shapes() -> dict[tuple[str, str], set[str]]:
    """The members of each JSON example line of cli.md, by its kind."""
    shapes: dict[tuple[str, str], set[str]] = {}
    for block in blocks_of(PAGE):
        if block.language != "json" or block.mode != "check":
            continue
        for line in block.source.splitlines():
            if line.strip():
                record = json.loads(line)
                shapes.setdefault(_kind(record), set()).update(record)
    return shapes


def _run(*argv: str, stdin: bytes = b"") -> Iterator[dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    keyboard = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    with redirect_stdout(out), redirect_stderr(err), _stdin(keyboard):
        app.main(["--json", "--store", "vault", *argv])
    for line in out.getvalue().splitlines():
        if line.strip():
            yield json.loads(line)


@contextlib.contextmanager
def _stdin(stream: io.TextIOWrapper) -> Iterator[None]:
    """``sys.stdin`` is ``stream`` (capture reads the key from it), then what it was."""
    saved, sys.stdin = sys.stdin, stream
    try:
        yield
    finally:
        sys.stdin = saved


@pytest.mark.functional
def test_json_examples_have_the_real_members(
    unkey_env: dict[str, str], vault_env: dict[str, str], tmp_path: Path
) -> None:
    api = unkey_env["UNKEY_API_ID"]
    aliases = tmp_path / "aliases"
    aliases.write_text("billing\n", encoding="utf-8")
    lines = tmp_path / "tenants.csv"
    lines.write_text("alias,external_id\ntenant-a,tenant_a\ntenant-b,tenant_b\n", "utf-8")
    with UnkeyClient.from_settings() as unkey:
        held = unkey.create_key(api, name="held elsewhere")
    typed = held.secret.reveal().encode()
    real: dict[tuple[str, str], set[str]] = {}
    runs = [
        ("provision", "--api-id", api, "--alias", "billing", "--external-id", "tenant_42"),
        ("rotate", "--api-id", api, "--alias", "billing", "--grace-period", "1h"),
        ("show", "--api-id", api, "--alias", "billing"),
        ("stores",),
        ("list", "--api-id", api),
        ("verify", "--api-id", api, "--alias", "billing"),
        ("reconcile", "--api-id", api),
        ("rotate-due", "--api-id", api, "--older-than", "1d", "--all-aliases", "--dry-run"),
        ("doctor", "--api-id", api),
        ("show", "--api-id", api, "--alias", "nobody"),
        ("bulk", "--api-id", api, str(lines)),
    ]
    for argv in runs:
        for record in _run(*argv):
            real.setdefault(_kind(record), set()).update(record)
    capture = ("capture", "--api-id", api, "--key-id", held.key_id, "--alias", "held")
    for record in _run(*capture, stdin=typed):
        real.setdefault(_kind(record), set()).update(record)
    del typed
    documented = documented_shapes()
    assert documented, "cli.md shows no JSON example"
    problems = []
    for kind, members in sorted(documented.items()):
        if kind not in real:
            continue  # a kind this run does not produce
        if kind[1] == "error":
            # An error's members depend on its class (a flow's, a store's): those shown must
            # be printed.
            if not members <= real[kind]:
                problems.append(f"{kind}: documented, not printed: {sorted(members - real[kind])}")
            continue
        if members != real[kind]:
            problems.append(
                f"{kind}: documented, not printed: {sorted(members - real[kind])}; "
                f"printed, not documented: {sorted(real[kind] - members)}"
            )
    undocumented = sorted(set(real) - set(documented))
    assert not problems, "\n".join(problems)
    assert not undocumented, f"no JSON example in cli.md for {undocumented}"
