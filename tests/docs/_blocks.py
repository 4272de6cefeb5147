"""The fenced code blocks of the documentation, with the check each one asks for.

Read by ``tests/docs/test_code_blocks.py``; the convention is written down for authors in
``docs/contributing-docs.md``. A block's check is named by an HTML comment on the line just
before its fence (blank lines between are allowed, nothing else)::

    <!-- check: stack -->
    ```python
    ...
    ```

``MODE`` is one of :data:`PYTHON_MODES` for a ``python`` block (``run`` when no comment is
given), ``skip`` or ``fragment`` for any other language, followed by words: ``continues``
(the block goes on from the previous ``python`` block of the same file, in its namespace) and,
for ``skip`` and ``fragment``, the reason, which must be given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: ``run``: executed as it is, offline. ``stack``: executed against the local stack (the
#: Unkey emulator, OpenBao, moto server) through the standard environment variables, with
#: ``api_123`` standing for a fresh API of the emulator. ``types``: type-checked with mypy
#: (strict), not run. ``skip``: compiled, not run (a reason is required). ``fragment``: not
#: even compiled, a piece of a larger program (a reason is required).
PYTHON_MODES = ("run", "stack", "types", "skip", "fragment")
#: What a block of another checked language may ask for instead of its default check.
OTHER_MODES = ("check", "skip", "fragment")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*check:\s*(?P<body>.*?)\s*-->\s*$")


class MarkerError(ValueError):
    """A ``<!-- check: ... -->`` comment that does not say what to do, or why."""


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its text and its check."""

    path: Path
    line: int  # 1-based line of the opening fence
    language: str
    info: str
    source: str
    mode: str
    continues: bool = False
    reason: str = ""
    previous: Block | None = field(default=None, repr=False, compare=False)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    def program(self) -> str:
        """The source to check: with the blocks it continues from, when it ``continues``."""
        if self.continues and self.previous is not None:
            return self.previous.program() + "\n" + self.source
        return self.source


def documents() -> list[Path]:
    """Every Markdown file whose blocks are checked: README.md and docs/**/*.md."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _marker(lines: list[str], fence_index: int) -> str | None:
    index = fence_index - 1
    while index >= 0 and not lines[index].strip():
        index -= 1
    if index < 0:
        return None
    match = _MARKER.match(lines[index])
    return match.group("body") if match else None


def _parse_marker(body: str | None, language: str, where: str) -> tuple[str, bool, str]:
    if body is None:
        return ("run" if language == "python" else "check"), False, ""
    words = body.split(None, 1)
    mode = words[0] if words else ""
    rest = words[1] if len(words) > 1 else ""
    allowed = PYTHON_MODES if language == "python" else OTHER_MODES
    if mode not in allowed:
        raise MarkerError(f"{where}: check {mode!r} is not one of {', '.join(allowed)}")
    continues = False
    if rest.split(None, 1)[:1] == ["continues"]:
        continues = True
        rest = rest[len("continues") :].strip()
    if continues and language != "python":
        raise MarkerError(f"{where}: only a python block can continue another")
    reason = rest.strip(" -:()")
    if mode in ("skip", "fragment") and not reason:
        raise MarkerError(f"{where}: a {mode!r} block must say why (<!-- check: {mode} REASON -->)")
    return mode, continues, reason


_SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<file>[^"]+)"\s*$')


def _included(body: list[str], path: Path) -> list[str]:
    """``body`` with each snippet line (``--8<-- "file"``) replaced by that file's lines.

    The site includes the file there (pymdownx.snippets, paths from the repository's top), so
    the block is checked as a reader sees it.
    """
    lines: list[str] = []
    for line in body:
        match = _SNIPPET.match(line)
        if match is None:
            lines.append(line)
            continue
        included = ROOT / match.group("file")
        if not included.is_file():
            raise MarkerError(f"{path.relative_to(ROOT)}: {match.group('file')} does not exist")
        lines += included.read_text(encoding="utf-8").splitlines()
    return lines


@cache
def blocks_of(path: Path) -> tuple[Block, ...]:
    """The fenced blocks of ``path`` (indented fences, in lists, included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    previous_python: Block | None = None
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, info = match.group("indent"), match.group("fence"), match.group("info")
        start = index
        body: list[str] = []
        index += 1
        while index < len(lines):
            closing = lines[index].strip()
            if closing.startswith(fence[0] * len(fence)) and not closing.strip(fence[0]):
                break
            line = lines[index]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            index += 1
        index += 1
        body = _included(body, path)
        words = info.strip().strip("{}").split()
        language = words[0].lstrip(".").lower() if words else ""
        where = f"{path.relative_to(ROOT)}:{start + 1}"
        mode, continues, reason = _parse_marker(_marker(lines, start), language, where)
        block = Block(
            path=path,
            line=start + 1,
            language=language,
            info=info.strip(),
            source="\n".join(body) + "\n",
            mode=mode,
            continues=continues,
            reason=reason,
            previous=previous_python if continues else None,
        )
        if continues and previous_python is None:
            raise MarkerError(f"{where}: 'continues', but no python block comes before it")
        found.append(block)
        if language == "python":
            previous_python = block
    return tuple(found)


def all_blocks(*languages: str) -> list[Block]:
    """Every block of :func:`documents` in one of ``languages``."""
    return [b for path in documents() for b in blocks_of(path) if b.language in languages]
