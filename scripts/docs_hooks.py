"""MkDocs hooks of the documentation site (``mkdocs.yml``: ``hooks``).

The pages link to the repository's own files outside ``docs/`` (``../policies/vault-reader.hcl``,
``../examples/kubernetes/``, ``../terraform/modules/rotation-alerts``), which read well on a
forge and in an editor. MkDocs knows only ``docs/``: it would report each such link as not
found. These hooks keep the links and the site self-contained, with nothing fetched:

* a link to a file of the repository outside ``docs/`` is served as that file, copied into
  the site under ``_repo/`` (a Markdown file as ``<name>.md.txt``, plain text);
* a link to a directory is served as a page listing the directory's files (those Git tracks,
  dotfiles included), each copied likewise; a copy or listing the build did not write is a
  warning;
* a link to a path that does not exist, or that leaves the repository, is a warning, which
  ``mkdocs build --strict`` (``make test``) turns into a failure.

Links inside fenced code blocks are left alone.

A page may also include a Markdown file of the repository, whole, with
``<!-- include: terraform/modules/rotated-key/README.md -->`` on a line of its own (a path from
the repository's top): its headings are moved one level down and its relative links made
relative to the page, so a module's own README is shown, not copied. A missing file is a
warning too.
"""

from __future__ import annotations

import html
import logging
import posixpath
import re
import subprocess
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files, InclusionLevel

log = logging.getLogger("mkdocs.plugins.unkey_secrets")

#: Where the copies of the repository's files go in the site.
PREFIX = "_repo"

_INLINE = re.compile(r"(\]\()(<?)([^)\s>]+)(>?)((?:\s+\"[^\"]*\")?\))")
_DEFINITION = re.compile(r"(?m)^(\s{0,3}\[[^\]]+\]:\s*)(\S+)")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_IGNORED_PARTS = {".git", "__pycache__", ".terraform", ".venv", "node_modules"}

_INCLUDE = re.compile(r"(?m)^<!-- include: (?P<path>[^ ]+) -->[ \t]*$")
_HEADING = re.compile(r"^(#{1,5}) ")

# The targets found by on_files, by the page that links to them (src_uri -> {target: new}).
_rewrites: dict[str, dict[str, str]] = {}
# Every copy and listing on_files added (site-relative); on_post_build checks each was written.
_added: set[str] = set()


def _repo_root(config: Any) -> Path:
    return Path(config["config_file_path"]).resolve().parent


def _docs_dir(config: Any) -> Path:
    return Path(config["docs_dir"]).resolve()


def _outside_fences(markdown: str) -> list[tuple[bool, str]]:
    """``markdown`` cut into (is_code, text) runs at its fenced code blocks."""
    runs: list[tuple[bool, str]] = []
    fence: str | None = None
    current: list[str] = []
    for line in markdown.splitlines(keepends=True):
        match = _FENCE.match(line)
        if fence is None and match:
            runs.append((False, "".join(current)))
            current, fence = [line], match.group(1)
            continue
        current.append(line)
        closing = match is not None and line.strip() == match.group(1)
        if fence is not None and closing and line.strip().startswith(fence[0] * len(fence)):
            runs.append((True, "".join(current)))
            current, fence = [], None
    runs.append((fence is not None, "".join(current)))
    return runs


def _targets(markdown: str) -> list[str]:
    found: list[str] = []
    for is_code, text in _outside_fences(markdown):
        if not is_code:
            found += [m.group(3) for m in _INLINE.finditer(text)]
            found += [m.group(2) for m in _DEFINITION.finditer(text)]
    return found


def _is_relative(target: str) -> bool:
    path = target.split("#", 1)[0]
    return bool(path) and not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path) and path[0] != "/"


def _included(root: Path, page_dir: Path, relative: str, where: str) -> str:
    """The file ``relative`` (from ``root``) as part of a page in ``page_dir``."""
    source = (root / relative).resolve()
    if not source.is_file() or root not in source.parents:
        log.warning("%s: the included file %s is not in the repository", where, relative)
        return ""

    def relink(match: re.Match[str]) -> str:
        target = match.group(3)
        if not _is_relative(target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        moved = posixpath.relpath(
            posixpath.normpath((source.parent / path).as_posix()), page_dir.as_posix()
        )
        new = f"{moved}#{anchor}" if anchor else moved
        return f"{match.group(1)}{match.group(2)}{new}{match.group(4)}{match.group(5)}"

    runs = _outside_fences(source.read_text(encoding="utf-8"))
    text = "".join(
        code
        if is_code
        else "".join(
            _HEADING.sub(r"#\1 ", line) for line in _INLINE.sub(relink, code).splitlines(True)
        )
        for is_code, code in runs
    )
    return text if text.endswith("\n") else text + "\n"


def _expand(markdown: str, root: Path, page_dir: Path, where: str) -> str:
    """``markdown`` with each ``<!-- include: path -->`` line replaced by that file."""
    return _INCLUDE.sub(lambda m: _included(root, page_dir, m.group("path"), where), markdown)


def _tracked(root: Path, directory: Path) -> list[Path]:
    """The files Git tracks under ``directory`` (every file, outside a Git checkout)."""
    try:
        listed = subprocess.run(  # noqa: S603 - a fixed command, a path of this repository
            ["git", "ls-files", "-z", "--", str(directory.relative_to(root))],  # noqa: S607
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        paths = [root / name for name in listed.split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        paths = [p for p in directory.rglob("*") if p.is_file()]
    return sorted(
        p
        for p in paths
        if p.is_file() and not _IGNORED_PARTS.intersection(p.relative_to(root).parts)
    )


def _copy_uri(relative: str) -> str:
    uri = f"{PREFIX}/{relative}"
    return f"{uri}.txt" if uri.endswith(".md") else uri


def _listing(root: Path, directory: Path, files: list[Path]) -> str:
    relative = directory.relative_to(root).as_posix()
    items = "\n".join(
        f'<li><a href="{html.escape(p.relative_to(directory).as_posix())}'
        f'{".txt" if p.suffix == ".md" else ""}">'
        f"{html.escape(p.relative_to(directory).as_posix())}</a></li>"
        for p in files
    )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(relative)}/'
        f"</title></head><body><h1>{html.escape(relative)}/</h1>"
        f"<p>Files of the repository under <code>{html.escape(relative)}/</code>:</p>"
        f"<ul>\n{items}\n</ul></body></html>\n"
    )


def on_files(files: Files, config: Any) -> Files:
    """Find the links that leave ``docs/`` and add the copies they will point at."""
    root, docs = _repo_root(config), _docs_dir(config)
    _rewrites.clear()
    _added.clear()

    def add(uri: str, **source: Any) -> None:
        if uri not in _added:
            _added.add(uri)
            # Included whatever exclude_docs says (a tracked dotfile, such as a module's
            # .gitignore, is served like any file its directory listing names).
            files.append(File.generated(config, uri, inclusion=InclusionLevel.INCLUDED, **source))

    for page in [f for f in files if f.is_documentation_page()]:
        if page.abs_src_path is None:
            continue
        here = Path(page.abs_src_path).parent
        markdown = _expand(
            Path(page.abs_src_path).read_text(encoding="utf-8"), root, here, page.src_uri
        )
        for target in _targets(markdown):
            if not _is_relative(target):
                continue
            path = target.split("#", 1)[0]
            resolved = Path(posixpath.normpath((here / path).as_posix()))
            if resolved == docs or docs in resolved.parents:
                continue  # MkDocs checks these itself
            if root not in resolved.parents:
                log.warning("%s: the link %r leaves the repository", page.src_uri, target)
                continue
            if not resolved.exists():
                log.warning(
                    "%s: the link %r names %s, which is not in the repository",
                    page.src_uri,
                    target,
                    resolved.relative_to(root).as_posix(),
                )
                continue
            relative = resolved.relative_to(root).as_posix()
            if resolved.is_dir():
                listed = _tracked(root, resolved)
                for p in listed:
                    add(_copy_uri(p.relative_to(root).as_posix()), abs_src_path=str(p))
                uri = f"{PREFIX}/{relative}/index.html"
                add(uri, content=_listing(root, resolved, listed))
            else:
                uri = _copy_uri(relative)
                add(uri, abs_src_path=str(resolved))
            new = posixpath.relpath(uri, posixpath.dirname(page.src_uri) or ".")
            _rewrites.setdefault(page.src_uri, {})[target] = new
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Include the files asked for, and point each link that leaves ``docs/`` at its copy."""
    if page.file.abs_src_path is not None:
        here = Path(page.file.abs_src_path).parent
        markdown = _expand(markdown, _repo_root(config), here, page.file.src_uri)
    rewrites = _rewrites.get(page.file.src_uri)
    if not rewrites:
        return markdown

    def inline(match: re.Match[str]) -> str:
        new = rewrites.get(match.group(3))
        if new is None:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}{new}{match.group(4)}{match.group(5)}"

    def definition(match: re.Match[str]) -> str:
        new = rewrites.get(match.group(2))
        return match.group(0) if new is None else f"{match.group(1)}{new}"

    runs = _outside_fences(markdown)
    return "".join(
        text if is_code else _DEFINITION.sub(definition, _INLINE.sub(inline, text))
        for is_code, text in runs
    )


def on_post_build(config: Any) -> None:
    """Warn of each copy or listing a page or listing links that the build did not write.

    MkDocs leaves out some files it is given (``exclude_docs``: dotfiles, ``templates/``); a
    link to one would be broken in the site, so ``--strict`` fails on it.
    """
    site = Path(config["site_dir"])
    for uri in sorted(_added):
        if not (site / uri).is_file():
            log.warning("the site links %s, which the build did not write", uri)
