"""Every code block of README.md and docs/**/*.md is checked, so a doc that drifts fails.

What each language gets (the marker convention, ``<!-- check: MODE ... -->`` on the line
before a fence, is in ``tests/docs/_blocks.py`` and ``docs/contributing-docs.md``):

* ``python``: ``run`` (the default) executes the block in a fresh interpreter, offline, in an
  empty directory; ``stack`` executes it against this session's Unkey emulator, OpenBao and
  moto server, through the variables their fixtures set (``unkey_env``, ``vault_env``,
  ``aws_env``), ``api_123`` standing for a fresh API; ``types`` type-checks it with mypy;
  ``skip`` compiles it; ``fragment`` is not checked, with the reason given.
* ``console``, ``sh``, ``bash``, ``shell``: each ``unkey-secrets`` command line (after ``$ ``
  when the block shows output, every line otherwise) parses with the real argparse parser;
  each ``make TARGET`` names a target of the Makefile.
* ``hcl``, ``terraform``: parses, with python-hcl2 and, where ``terraform`` is on PATH, with
  ``terraform fmt`` (its layout is not enforced: the docs align comments for reading).
* ``json`` parses (as one document, or as JSON lines); ``yaml`` parses (every document).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docs._blocks import ROOT, Block, all_blocks

SHELLS = ("console", "sh", "bash", "shell")
HCL = ("hcl", "terraform")

#: The seconds one block may run.
RUN_TIMEOUT = 120


def _ids(blocks: list[Block]) -> list[str]:
    return [b.where for b in blocks]


def _python(*modes: str) -> list[Block]:
    return [b for b in all_blocks("python") if b.mode in modes]


def _run(block: Block, tmp_path: Path, env: dict[str, str]) -> None:
    script = tmp_path / "block.py"
    script.write_text(block.program(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.where}: the block exited {done.returncode}\n{done.stdout[-3000:]}"
        f"{done.stderr[-3000:]}"
    )


def _offline_env() -> dict[str, str]:
    """The environment a ``run`` block sees: no store, Unkey or AWS settings of this machine."""
    prefixes = ("UNKEY_", "VAULT_", "AWS_", "BAO_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.parametrize("block", _python("run"), ids=_ids(_python("run")))
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    _run(block, tmp_path, _offline_env())


@pytest.mark.functional
@pytest.mark.parametrize("block", _python("stack"), ids=_ids(_python("stack")))
def test_python_block_runs_against_the_stack(
    block: Block,
    tmp_path: Path,
    unkey_env: dict[str, str],
    vault_env: dict[str, str],
    aws_env: dict[str, str],
) -> None:
    api_id = unkey_env["UNKEY_API_ID"]
    program = re.sub(r"\bapi_123\b", api_id, block.program())
    stand_in = Block(
        path=block.path,
        line=block.line,
        language="python",
        info=block.info,
        source=program,
        mode=block.mode,
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    _run(stand_in, tmp_path, env)


def test_python_blocks_type_check(tmp_path: Path) -> None:
    """Every ``types`` block, checked by mypy in one run (each its own module)."""
    blocks = _python("types")
    if not blocks:
        pytest.skip("no python block asks for a type check")
    modules: dict[str, Block] = {}
    for number, block in enumerate(blocks):
        name = f"doc_block_{number}"
        (tmp_path / f"{name}.py").write_text(block.program(), encoding="utf-8")
        modules[name] = block
    config = tmp_path / "mypy.ini"
    config.write_text(
        "[mypy]\npython_version = 3.10\ncheck_untyped_defs = True\n"
        "warn_unused_ignores = True\nignore_missing_imports = True\n",
        encoding="utf-8",
    )
    from mypy import api

    stdout, stderr, status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(ROOT / ".mypy_cache" / "docs-blocks"),
            "--no-error-summary",
            *(str(tmp_path / f"{name}.py") for name in modules),
        ]
    )
    problems = []
    for line in stdout.splitlines():
        match = re.match(r".*?(doc_block_\d+)\.py:(\d+): (.*)", line)
        if match:
            block = modules[match.group(1)]
            problems.append(f"{block.where} (+{match.group(2)}): {match.group(3)}")
        elif line.strip():
            problems.append(line)
    assert not problems, "\n".join(problems)
    assert status == 0, stdout + stderr


def test_skipped_python_blocks_compile() -> None:
    """A block marked ``skip`` is not run, but it must still be Python (none may be marked)."""
    problems = []
    for block in _python("skip"):
        try:
            compile(block.program(), block.where, "exec")
        except SyntaxError as exc:
            problems.append(f"{block.where}: {exc}")
    assert not problems, "\n".join(problems)


# -- command lines ------------------------------------------------------------------------


def command_lines(block: Block) -> list[str]:
    """The commands a shell block shows: after ``$ `` if it shows output, else every line."""
    lines = block.source.splitlines()
    prompted = any(line.lstrip().startswith("$ ") for line in lines)
    commands: list[str] = []
    current: str | None = None
    for line in lines:
        stripped = line.strip()
        if current is not None:
            current += " " + stripped.rstrip("\\")
        elif prompted and stripped.startswith("$ "):
            current = stripped[2:].rstrip("\\")
        elif not prompted and stripped and not stripped.startswith("#"):
            current = stripped.rstrip("\\")
        else:
            continue
        if not stripped.endswith("\\"):
            commands.append(current)
            current = None
    if current is not None:
        commands.append(current)
    return commands


_OPERATORS = {"|", "||", "&&", ";", "&", ";;"}


def simple_commands(line: str) -> list[list[str]]:
    """``line`` split into its simple commands (at pipes, ``&&``, ``;``), comments dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in _OPERATORS or set(token) <= set("<>&|;"):
            commands.append([])
        else:
            commands[-1].append(token)
    return [c for c in commands if c]


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"(?m)^([A-Za-z][\w.-]*)\s*:(?!=)", text)}


def _unkey_secrets_argv(words: list[str]) -> list[str] | None:
    """The arguments of an ``unkey-secrets`` command (``VAR=x`` prefixes skipped), or None."""
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words = words[1:]
    if not words:
        return None
    if Path(words[0]).name == "unkey-secrets":
        return words[1:]
    if Path(words[0]).name.startswith("python") and words[1:3] == ["-m", "unkey_secrets.cli"]:
        return words[3:]
    return None


#: A value written as its placeholder (``--api-id API``, ``--expires MS``, ``<alias>``).
_PLACEHOLDER = re.compile(r"^(?:[A-Z][A-Z0-9_]*|<[^>]+>)$")
#: What stands in for a placeholder: the first one the option's type accepts.
_STAND_INS = ("api_123", "1", "24h")


def _actions(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, argparse.Action]:
    """Every option of ``parser`` and of the command ``argv`` names, by option string."""
    actions = {o: a for a in parser._actions for o in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                if name in argv:
                    actions.update({o: a for a in command._actions for o in a.option_strings})
    return actions


def _fill_placeholders(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """``argv`` with each placeholder value replaced by one its option's type accepts."""
    actions = _actions(parser, argv)
    filled = list(argv)
    for index, word in enumerate(argv):
        if index == 0 or not _PLACEHOLDER.match(word):
            continue
        action = actions.get(argv[index - 1])
        if action is None or action.nargs == 0:
            continue
        convert = action.type if callable(action.type) else str
        for stand_in in (*(action.choices or ()), *_STAND_INS):
            try:
                convert(stand_in)
            except (ValueError, TypeError, argparse.ArgumentTypeError):
                continue
            filled[index] = str(stand_in)
            break
    return filled


def check_command_line(line: str) -> list[str]:
    """What is wrong with ``line``: an ``unkey-secrets`` call the parser refuses, a make target."""
    from unkey_secrets.cli.app import UsageError, build_parser

    problems = []
    for words in simple_commands(line):
        argv = _unkey_secrets_argv(words)
        if argv is not None:
            parser = build_parser(complete=True)
            try:
                parser.parse_args(_fill_placeholders(parser, argv))
            except UsageError as exc:
                problems.append(f"unkey-secrets {shlex.join(argv)}: {exc}")
            except SystemExit as exc:  # --help, --version
                if exc.code not in (0, None):
                    problems.append(f"unkey-secrets {shlex.join(argv)}: exit {exc.code}")
        elif words[0] == "make":
            missing = [t for t in words[1:] if "=" not in t and not t.startswith("-")]
            missing = [t for t in missing if t not in _makefile_targets()]
            if missing:
                problems.append(f"make: no target {', '.join(missing)} in the Makefile")
    return problems


_SHELL_BLOCKS = [b for b in all_blocks(*SHELLS) if b.mode == "check"]


@pytest.mark.parametrize("block", _SHELL_BLOCKS, ids=_ids(_SHELL_BLOCKS))
def test_command_lines_parse(block: Block, capsys: pytest.CaptureFixture[str]) -> None:
    problems = [p for line in command_lines(block) for p in check_command_line(line)]
    capsys.readouterr()  # --help output
    assert not problems, f"{block.where}:\n" + "\n".join(problems)


# -- data and configuration -----------------------------------------------------------------

_HCL_BLOCKS = [b for b in all_blocks(*HCL) if b.mode == "check"]


@pytest.mark.parametrize("block", _HCL_BLOCKS, ids=_ids(_HCL_BLOCKS))
def test_hcl_block_parses(block: Block) -> None:
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 (the dev extra) parses HCL blocks")
    try:
        hcl2.loads(block.source)
    except Exception as exc:  # noqa: BLE001 - lark's errors have no common public base
        pytest.fail(f"{block.where}: not HCL: {type(exc).__name__}: {exc}")
    terraform = shutil.which("terraform")
    if terraform is None:
        return
    # terraform's own parser too (the layout is the doc's: comments aligned for reading).
    done = subprocess.run(
        [terraform, "fmt", "-no-color", "-"],
        input=block.source,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"{block.where}: terraform fmt: {done.stderr}"


_DATA_BLOCKS = [b for b in all_blocks("json", "yaml", "yml") if b.mode == "check"]


@pytest.mark.parametrize("block", _DATA_BLOCKS, ids=_ids(_DATA_BLOCKS))
def test_data_block_parses(block: Block) -> None:
    if block.language == "json":
        try:
            json.loads(block.source)
        except ValueError as exc:
            # JSON lines (one document a line, as the audit log writes them) are JSON too.
            lines = [line for line in block.source.splitlines() if line.strip()]
            try:
                for line in lines if len(lines) > 1 else ():
                    json.loads(line)
            except ValueError:
                pass
            else:
                if len(lines) > 1:
                    return
            pytest.fail(f"{block.where}: not JSON (nor JSON lines): {exc}")
    else:
        try:
            list(yaml.safe_load_all(block.source))
        except yaml.YAMLError as exc:
            pytest.fail(f"{block.where}: not YAML: {exc}")


def test_every_checked_language_has_blocks() -> None:
    """The finder sees the blocks (a broken parser would check nothing and pass)."""
    languages = {b.language for b in all_blocks("python", *SHELLS, *HCL, "json", "yaml")}
    assert {"python", "console", "hcl", "json", "yaml"} <= languages
