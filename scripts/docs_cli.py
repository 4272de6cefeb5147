"""Write the option tables of ``docs/reference/cli.md`` from the real ``unkey-secrets`` parser.

Usage: ``python scripts/docs_cli.py`` (rewrites the tables in place) or ``--check`` (exit 1
if a table differs from the parser; ``tests/docs/test_cli_reference.py`` does the same).

Each table sits between ``<!-- BEGIN generated options: NAME -->`` and
``<!-- END generated options -->``, ``NAME`` being a command or ``global``; the prose around
them is written by hand. Every command of the parser must have its table.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "cli.md"

_TABLE = re.compile(
    r"(<!-- BEGIN generated options: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(<!-- END generated options -->)",
    re.DOTALL,
)


def _parser() -> argparse.ArgumentParser:
    sys.path.insert(0, str(ROOT))
    from unkey_secrets.cli.app import build_parser

    return build_parser(complete=True)


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Each command's parser, by name, in the parser's order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _value(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.choices:
        return " \\| ".join(f"`{c}`" for c in action.choices)
    metavar = action.metavar if isinstance(action.metavar, str) else None
    return f"`{metavar or action.dest.upper()}`"


def _notes(action: argparse.Action, exclusive: dict[str, list[str]]) -> str:
    notes = []
    if action.required:
        notes.append("required")
    if isinstance(action, argparse._AppendAction):
        notes.append("repeatable")
    if isinstance(action, argparse._CountAction):
        notes.append("repeatable (`-vv`)")
    for option in action.option_strings:
        others = exclusive.get(option)
        if others:
            notes.append("not with " + ", ".join(f"`{o}`" for o in others))
    return "; ".join(notes)


def table(parser: argparse.ArgumentParser, skip: set[str]) -> str:
    """The Markdown table of ``parser``'s options and arguments, but those in ``skip``."""
    exclusive: dict[str, list[str]] = {}
    for group in parser._mutually_exclusive_groups:
        options = [o for a in group._group_actions for o in a.option_strings[-1:]]
        for action in group._group_actions:
            exclusive[action.option_strings[-1]] = [
                o for o in options if o != action.option_strings[-1]
            ]
    rows = ["| option | value | | what it does |", "|---|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if set(action.option_strings) & skip:
            continue
        names = ", ".join(f"`{o}`" for o in action.option_strings) or f"`{action.metavar}`"
        help_text = (action.help or "").replace("%(prog)s", "unkey-secrets")
        if help_text == argparse.SUPPRESS:
            continue
        rows.append(
            f"| {names} | {_value(action)} | {_notes(action, exclusive)} | {_cell(help_text)} |"
        )
    return "\n".join(rows) + "\n"


def expected_tables() -> dict[str, str]:
    """What each generated table should hold: ``global`` and one per command."""
    parser = _parser()
    global_options = {o for a in parser._actions for o in a.option_strings} - {"--version"}
    tables = {"global": table(parser, {"-h", "--help"})}
    for name, command in commands(parser).items():
        tables[name] = table(command, global_options | {"-h", "--help"})
    return tables


def render(text: str, tables: dict[str, str]) -> str:
    """``text`` with each generated table replaced by its expected content."""

    def replace(match: re.Match[str]) -> str:
        body = tables.get(match.group("name"))
        if body is None:
            return match.group(0)
        return f"{match.group(1)}{body}{match.group(4)}"

    return _TABLE.sub(replace, text)


def tables_in(text: str) -> list[str]:
    """The names of the generated tables ``text`` has, in order."""
    return [m.group("name") for m in _TABLE.finditer(text)]


def main(argv: list[str]) -> int:
    """Rewrite the page, or with ``--check`` say whether it is up to date."""
    text = PAGE.read_text(encoding="utf-8")
    tables = expected_tables()
    missing = [name for name in tables if name not in tables_in(text)]
    new = render(text, tables)
    if "--check" in argv:
        if missing or new != text:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/docs_cli.py")
            for name in missing:
                print(f"  no table for {name}")
            return 1
        return 0
    PAGE.write_text(new, encoding="utf-8")
    for name in missing:
        print(f"add a section for {name!r} with its table markers", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
