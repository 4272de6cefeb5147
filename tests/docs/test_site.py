"""The documentation site builds with ``mkdocs build --strict``, offline.

Strict turns every warning into a failure: a link to a page, an anchor or a repository file
that does not exist (``validation`` in ``mkdocs.yml``, and ``scripts/docs_hooks.py`` for files
outside ``docs/``), an API reference that names nothing, a docs page left out of ``nav``.
"""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docs._blocks import ROOT

pytest.importorskip("mkdocs", reason="the docs extra (mkdocs, mkdocs-material, mkdocstrings)")


def test_site_builds_strict(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    warnings = [line for line in done.stderr.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert done.returncode == 0, "\n".join(warnings) or done.stderr[-5000:]
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "reference" / "api" / "library" / "index.html").is_file()


#: The public modules: each class and function their ``__all__`` exports has an API page entry.
PUBLIC_MODULES = (
    "unkey_secrets",
    "unkey_secrets.bulk",
    "unkey_secrets.config",
    "unkey_secrets.stores",
    "unkey_secrets.stores.vault",
    "unkey_secrets.stores.aws",
    "unkey_secrets.aws_lambda",
    "unkey_secrets.testing",
)


def _documented() -> set[int]:
    """The objects the API pages' ``::: path`` lines show (a module's members too, unless
    ``members: false``)."""
    import importlib

    shown: set[int] = set()
    for page in (ROOT / "docs" / "reference" / "api").glob("*.md"):
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"(?m)^::: ([\w.]+)\n((?:    .*\n)*)", text):
            path, options = match.group(1), match.group(2)
            parts = path.split(".")
            for cut in range(len(parts), 0, -1):
                try:
                    obj: object = importlib.import_module(".".join(parts[:cut]))
                except ImportError:
                    continue
                break
            for name in parts[cut:]:
                obj = getattr(obj, name)
            shown.add(id(obj))
            if inspect.ismodule(obj) and "members: false" not in options:
                shown.update(id(v) for k, v in vars(obj).items() if not k.startswith("_"))
    return shown


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_modules_are_in_the_api_reference(module: str) -> None:
    import importlib

    mod = importlib.import_module(module)
    shown = _documented()
    missing = [
        name
        for name in mod.__all__
        if (inspect.isclass(getattr(mod, name)) or inspect.isfunction(getattr(mod, name)))
        and id(getattr(mod, name)) not in shown
    ]
    assert missing == [], f"{module} exports what no docs/reference/api page shows"


def test_every_page_is_in_the_nav() -> None:
    """Each Markdown file under docs/ is named in mkdocs.yml's nav (strict says so too)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use !!python/name tags (Material's emoji); none is needed to read the nav.
    _Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *_: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        return []

    in_nav = set(pages(config["nav"]))
    docs = ROOT / "docs"
    on_disk = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    assert sorted(on_disk - in_nav) == [], "pages missing from mkdocs.yml's nav"
    assert sorted(in_nav - on_disk) == [], "nav entries with no page"


def test_readme_links_resolve() -> None:
    """README.md is not part of the site; its relative links must still name real paths."""
    from scripts.docs_hooks import _is_relative, _targets

    readme = ROOT / "README.md"
    broken = [
        target
        for target in _targets(readme.read_text(encoding="utf-8"))
        if _is_relative(target) and not (ROOT / target.split("#", 1)[0]).exists()
    ]
    assert not broken, f"README.md links to paths that do not exist: {broken}"
