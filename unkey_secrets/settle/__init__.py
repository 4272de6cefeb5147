"""Settling a write whatever happens: one place for what every write path does when it fails.

provision, capture, rotate, bulk and the rotation Lambda all use these, so they settle the
same way:

* :func:`describe_error` names an error without its text unless it is one of ours (which
  never carries a credential), and :func:`safe_cause` chains only ours;
* :func:`cut_target` is the one rule for how long a displaced key stays valid;
* :func:`find_marked` finds the keys a create or reroll whose answer was lost made (they
  carry its marker in ``meta``), and :func:`lost_answer_settled` says what was done about them;
* :func:`undo_create` deletes a key Unkey made that could not be stored, and
  :func:`store_or_undo` stores a new key or undoes Unkey's side, asking the store first
  whether a failed write landed;
* :func:`~.keys.compensated` and :func:`~.keys.compensation_failed` report what undoing did
  (a warning, and the audit event ``compensation.run``), wherever it ran.
"""

from __future__ import annotations

from .errors import describe_error, safe_cause
from .keys import cut_target, find_marked, lost_answer_settled, undo_create
from .store import store_or_undo

__all__ = [
    "cut_target",
    "describe_error",
    "find_marked",
    "lost_answer_settled",
    "safe_cause",
    "store_or_undo",
    "undo_create",
]
