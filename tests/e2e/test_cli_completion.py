"""Shell completion of the installed ``unkey-secrets`` script, driven as the shells drive it.

argcomplete's shell functions run the script with ``_ARGCOMPLETE=1``, ``COMP_LINE`` and
``COMP_POINT`` set, stdout and stderr sent to ``/dev/null``, and read the completions from file
descriptor 8 (or from ``_ARGCOMPLETE_STDOUT_FILENAME``, its tempfile mode). The tests do the
same with the console script itself, then source what ``register-python-argcomplete`` prints
into bash, zsh and fish and complete through the shell's own function (zsh and fish: where
they are installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.functional._cli_harness import base_env, cli_script

BIN = Path(sys.executable).parent
REGISTER = str(BIN / "register-python-argcomplete")


def completion_env(line: str, **extra: str) -> dict[str, str]:
    return base_env(
        COMP_LINE=line,
        COMP_POINT=str(len(line)),
        _ARGCOMPLETE="1",
        _ARGCOMPLETE_IFS="\n",
        **extra,
    )


def complete(line: str, tmp_path: Path, **extra: str) -> list[str]:
    """The completions of ``line`` (the cursor at its end), through the tempfile convention."""
    out = tmp_path / "completions"
    out.unlink(missing_ok=True)
    done = subprocess.run(
        [cli_script()],
        env=completion_env(line, _ARGCOMPLETE_STDOUT_FILENAME=str(out), **extra),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # The command itself never ran: nothing on stdout.
    assert done.stdout == ""
    return out.read_text().split("\n") if out.read_text() else []


def test_commands_complete_after_a_global_option(tmp_path: Path) -> None:
    assert complete("unkey-secrets --store vault ro", tmp_path) == ["rotate", "rotate-due"]
    assert "rotate-due" in complete("unkey-secrets ", tmp_path)
    assert "bulk" in complete("unkey-secrets ", tmp_path)


def test_options_complete_for_each_command(tmp_path: Path) -> None:
    assert complete("unkey-secrets rotate --gr", tmp_path) == ["--grace-period "]
    assert complete("unkey-secrets --json verify --expiring", tmp_path) == ["--expiring-within "]
    # bulk's options: its module is loaded once the line names it.
    assert complete("unkey-secrets --store vault bulk keys.csv --api", tmp_path) == ["--api-id "]
    assert "--dry-run" in complete("unkey-secrets bulk keys.csv --", tmp_path)
    # The global options after the command, too.
    assert complete("unkey-secrets list --api-id api_1 --sto", tmp_path) == ["--store "]


def test_values_complete_from_choices_and_the_installed_stores(tmp_path: Path) -> None:
    assert {"vault", "aws"} <= set(complete("unkey-secrets --store ", tmp_path))
    assert complete("unkey-secrets provision --mode ", tmp_path) == ["safe", "fast"]
    assert complete("unkey-secrets list --status di", tmp_path) == ["disabled "]


def test_the_file_descriptor_8_convention() -> None:
    """As bash's function runs it: completions on fd 8, stdout and stderr to /dev/null."""
    done = subprocess.run(
        ["sh", "-c", 'exec "$0" 8>&1 9>&2 1>/dev/null 2>&1 </dev/null', cli_script()],
        env=completion_env("unkey-secrets --store vault ro"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert done.stdout.split("\n") == ["rotate", "rotate-due"]


def test_without_argcomplete_the_script_completes_nothing_and_says_why(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    (missing / "argcomplete").mkdir(parents=True)
    (missing / "argcomplete" / "__init__.py").write_text("raise ImportError('not installed')\n")
    out = tmp_path / "completions"
    done = subprocess.run(
        [cli_script()],
        env=completion_env(
            "unkey-secrets ro",
            PYTHONPATH=str(missing),
            _ARGCOMPLETE_STDOUT_FILENAME=str(out),
        ),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "pip install 'unkey-secrets[completion]'" in done.stderr
    assert not out.exists()


def test_a_normal_start_never_imports_argcomplete() -> None:
    probe = (
        "import contextlib, io, sys\n"
        "from unkey_secrets.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(sys.argv[1:])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'argcomplete'))\n"
    )
    for argv in (["--help"], ["stores"], ["bulk", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", probe, *argv],
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.strip() == "[]", argv


def test_global_completion_finds_the_marker() -> None:
    """activate-global-python-argcomplete completes scripts whose module carries the marker."""
    done = subprocess.run(
        [sys.executable, "-m", "argcomplete._check_console_script", cli_script()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# -- through each shell's own completion function ------------------------------------------------


def register(*shell: str) -> str:
    done = subprocess.run(
        [REGISTER, *shell, "unkey-secrets"], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def shell_env() -> dict[str, str]:
    # The shells find the script by name, as a user's PATH would.
    return base_env(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def test_bash(tmp_path: Path) -> None:
    script = tmp_path / "complete.bash"
    script.write_text(
        register()
        + "\n"
        + "COMP_LINE='unkey-secrets --store vault ro'; COMP_POINT=${#COMP_LINE}\n"
        + "COMP_WORDS=(unkey-secrets --store vault ro); COMP_CWORD=3; COMP_TYPE=9\n"
        + "_python_argcomplete unkey-secrets ro vault\n"
        + "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
        + "complete -p unkey-secrets\n"
    )
    done = subprocess.run(
        ["bash", str(script)],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[:2] == ["rotate", "rotate-due"], done.stdout + done.stderr
    assert lines[2].endswith("-F _python_argcomplete unkey-secrets")


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh(tmp_path: Path) -> None:
    """The same registration code under zsh: compdef and _describe as zsh's completion has them.

    Outside a completion widget, zsh's ``compdef`` and ``_describe`` are stood in for: the stand-
    ins note what the function registers and the completions it hands to ``_describe``.
    """
    script = tmp_path / "complete.zsh"
    script.write_text(
        'compdef() { print -r -- "compdef $*" }\n'
        + "_describe() { print -rl -- ${(P)2} }\n"
        + register()
        + "\n"
        + "BUFFER='unkey-secrets --store vault ro'; CURSOR=${#BUFFER}\n"
        + "words=(unkey-secrets --store vault ro)\n"
        + "_python_argcomplete\n"
    )
    done = subprocess.run(
        ["zsh", "-f", str(script)],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = done.stdout.splitlines()
    assert lines[0] == "compdef _python_argcomplete unkey-secrets", done.stdout + done.stderr
    # zsh's completions carry each one's help after a colon, as _describe shows them.
    assert [line.split(":", 1)[0] for line in lines[1:]] == ["rotate", "rotate-due"]
    assert lines[1].startswith("rotate:reroll a key")


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
def test_fish(tmp_path: Path) -> None:
    script = tmp_path / "complete.fish"
    script.write_text(
        register("--shell", "fish")
        + "\n"
        + "complete -C 'unkey-secrets --store vault ro'\n"
        + "complete -C 'unkey-secrets rotate --gr'\n"
    )
    done = subprocess.run(
        ["fish", "--no-config", str(script)],
        env=shell_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = [line.split("\t", 1)[0] for line in done.stdout.splitlines()]
    assert names == ["rotate", "rotate-due", "--grace-period"], done.stdout + done.stderr
