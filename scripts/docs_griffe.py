"""A griffe extension for the API reference: the docstrings' reST markup as Markdown.

The package's docstrings are written for reading in an editor and in ``help()``: Sphinx roles
(``:class:`~unkey_secrets.flows.ProvisionResult```), double-backtick literals and ``::`` before
an indented example. mkdocstrings renders docstrings as Markdown, where those would show as
typed; this turns each into its Markdown reading (a role into inline code of the name it shows,
``::`` into ``:`` before the indented block, which Markdown already takes as code). The source
is not changed. Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings...extensions``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

__all__ = ["RestToMarkdown", "to_markdown"]

#: ``:role:`target``` and ``:role:`shown <target>```, ``~`` keeping the last name only.
_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`<]*?)(?:\s*<([^>`]+)>)?`")
#: A reST literal (two backticks each side), which may run over a line break of its paragraph
#: (not over a blank line).
_LITERAL = re.compile(r"(?<!`)``(?!`)((?:[^\n]|\n(?![ \t]*\n))+?)(?<!`)``(?!`)")
#: A line ending in ``::`` (reST's "an indented literal block follows").
_LITERAL_BLOCK = re.compile(r"(?m)^(.*?)(\s*)::$")


def _role(match: re.Match[str]) -> str:
    tilde, shown, target = match.groups()
    name = (shown or target or "").strip()
    if tilde:
        name = name.rsplit(".", 1)[-1]
    return f"`{name}`"


def _literal_block(match: re.Match[str]) -> str:
    text = match.group(1)
    return f"{text}:" if text.strip() else ""


def to_markdown(text: str) -> str:
    """``text`` (a docstring) with its reST roles, literals and ``::`` as Markdown."""
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)
    return _LITERAL_BLOCK.sub(_literal_block, text)


class RestToMarkdown(griffe.Extension):
    """Rewrites each object's docstring, as loaded, with :func:`to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Called by griffe for every object it loads (module, class, function, attribute)."""
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
