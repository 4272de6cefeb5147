"""The API reference's reST-to-Markdown conversion (``scripts/docs_griffe.py``)."""

from __future__ import annotations

from scripts.docs_griffe import to_markdown


def test_a_literal_may_run_over_a_line_break() -> None:
    # reST ends an inline literal at its closing backticks, on whichever line of the paragraph.
    text = "ARNs (``arn:aws:<region>:\nsecret:<name>``); ``clock`` returns seconds"
    assert to_markdown(text) == "ARNs (`arn:aws:<region>:\nsecret:<name>`); `clock` returns seconds"


def test_a_literal_never_runs_over_a_blank_line() -> None:
    text = "an unclosed `` here\n\nand ``x`` there"
    assert to_markdown(text) == "an unclosed `` here\n\nand `x` there"
