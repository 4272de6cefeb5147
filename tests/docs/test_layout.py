"""``docs/reference/layout.md`` draws the tree as it is: each path it names exists, and every
folder of the repository (hidden ones aside), module of the package's top level and package
folder is named.

The tree is the page's ``text`` block: an entry is a line whose path starts at column 0 (from
the repository's top) or 2 (inside the last column-0 folder); the lines indented further go
on describing the entry above them.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.docs._blocks import ROOT, blocks_of

PAGE = ROOT / "docs" / "reference" / "layout.md"
_ENTRY = re.compile(r"^( {0,2})(\S+)(?:\s+(.*))?$")


def _tree() -> dict[str, str]:
    """Each entry's path (from the repository's top) and its description, continuation lines in."""
    (block,) = [b for b in blocks_of(PAGE) if b.language == "text"]
    entries: dict[str, str] = {}
    top = last = ""
    for line in block.source.splitlines():
        match = _ENTRY.match(line)
        if match is None:  # a continuation line
            entries[last] += " " + line.strip()
            continue
        indent, name, text = match.groups()
        assert name.endswith("/") or not indent or "." in name, f"not a path: {line!r}"
        last = name if not indent else top + name
        if not indent:
            top = name
        entries[last] = text or ""
    return entries


def _tracked() -> list[str]:
    """The files Git tracks, from the repository's top."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: the tracked files cannot be listed")
    done = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    return done.stdout.splitlines()


def test_every_path_named_exists() -> None:
    missing = [path for path in _tree() if not (ROOT / path).exists()]
    assert not missing, f"layout.md names paths that do not exist: {missing}"


def test_every_folder_and_module_is_named() -> None:
    tree = _tree()
    tracked = set(_tracked())
    # Hidden folders (tooling's own) aside.
    folders = {p.split("/")[0] + "/" for p in tracked if "/" in p and not p.startswith(".")}
    unnamed = sorted(folders - set(tree))
    assert not unnamed, f"top-level folders layout.md does not name: {unnamed}"

    package = ROOT / "unkey_secrets"
    modules = {
        f"unkey_secrets/{p.name}"
        for p in package.glob("*.py")
        if f"unkey_secrets/{p.name}" in tracked
    }
    unnamed = sorted(modules - set(tree))
    assert not unnamed, f"modules of unkey_secrets/ layout.md does not name: {unnamed}"

    # Every package folder: an entry of its own, or named in its parent folder's description.
    for init in sorted(package.rglob("__init__.py")):
        folder = init.parent.relative_to(ROOT).as_posix() + "/"
        if folder == "unkey_secrets/" or folder in tree:
            continue
        parent = init.parent.parent.relative_to(ROOT).as_posix() + "/"
        assert f"{init.parent.name}/" in tree.get(parent, ""), f"layout.md does not name {folder}"

    # The folders of tests/ and docs/, and each script, in their entry's description.
    for top in ("tests/", "docs/", "scripts/"):
        inside = {
            path[len(top) :].split("/")[0] + ("/" if path.count("/") > 1 else "")
            for path in tracked
            if path.startswith(top)
        }
        wanted = {n for n in inside if n.endswith("/") or top == "scripts/"}
        unnamed = sorted(n for n in wanted if n not in tree[top])
        assert not unnamed, f"layout.md's {top} entry does not name {unnamed}"
