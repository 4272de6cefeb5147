"""Calls issued together: a flow's independent round trips, made at once and settled in order.

:func:`together` runs a group of calls at the same time (the first on the calling thread, each
other one on a thread of its own) and returns once every one of them has ended, whatever
happened: no call of a group outlives it, on any exit path but one. An exception in the
calling thread (``KeyboardInterrupt`` included) is raised only after every other call of the
group has ended, each within its own transport deadline (with retries, that can be minutes
against a stalled server). A second interruption while it waits is raised at once: the calls
still in flight are left to end on their daemon threads, as a kill at that point would leave
them, and a re-run of the rotation finishes what they did (a second Ctrl-C stops the CLI now).

Each call runs in a copy of the caller's context (:func:`contextvars.copy_context`), so it
keeps what the caller's context holds: the transport deadline in force
(:mod:`unkey_secrets.transport.policy`), the current OpenTelemetry span and the flow its audit
events belong to (:mod:`unkey_secrets.telemetry`), the audit purpose, the process table
(:data:`~unkey_secrets.rotation.record.PROCESSES`). The redaction registry
(:func:`~unkey_secrets._redact.confined`) is process-wide, so a plaintext in flight on one
thread is masked in every thread's log records.

Each call's :class:`Outcome` (its value, or the exception it raised, with the locals of its
finished frames cleared as :func:`~unkey_secrets._redact.guarded` clears them) is handed back
in the order the calls were given: the caller settles them as the sequential code would have
(the first failure in that order is the one raised; what the others did is undone or kept as
that code decides). :func:`first_failure` names the failure to raise.

How a group is run is :data:`RUNNER`'s choice (a context variable): threads by default; the
simulator (``tests/simulation``) runs each call as a strand of its actor, so every order of a
group's calls, a kill between them and a fault in any of them is explored.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ._redact import _clear_frames

__all__ = ["RUNNER", "Outcome", "Runner", "first_failure", "threads", "together"]

_T = TypeVar("_T")


@dataclass
class Outcome(Generic[_T]):
    """What one call of a group came to: its ``value``, or the ``error`` it raised."""

    value: _T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """Whether the call returned."""
        return self.error is None

    def get(self) -> _T:
        """The value; the call's exception is raised again if it failed."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


#: Runs a group of calls concurrently and returns one Outcome per call, in order.
Runner = Callable[[Sequence[Callable[[], Any]]], list[Outcome[Any]]]


def _run_into(call: Callable[[], Any], outcome: Outcome[Any]) -> None:
    try:
        outcome.value = call()
    except BaseException as exc:  # noqa: BLE001 (handed back to the caller, who settles it)
        _clear_frames(exc)
        outcome.error = exc


def _run_then_set(call: Callable[[], Any], outcome: Outcome[Any], ended: threading.Event) -> None:
    try:
        _run_into(call, outcome)
    finally:
        ended.set()


def threads(calls: Sequence[Callable[[], Any]]) -> list[Outcome[Any]]:
    """The default runner: the first call on this thread, each other one on a thread of its own.

    Returns when every call has ended. A thread that cannot be started (the process is out of
    threads) has its call run here, after the first. An exception raised in this thread while
    the calls run (``KeyboardInterrupt``) is raised once they have all ended.
    """
    outcomes: list[Outcome[Any]] = [Outcome() for _ in calls]
    started: list[tuple[threading.Thread, threading.Event]] = []
    left: list[int] = []
    try:
        for index in range(1, len(calls)):
            context = contextvars.copy_context()
            ended = threading.Event()
            thread = threading.Thread(
                target=context.run,
                args=(_run_then_set, calls[index], outcomes[index], ended),
                name=f"unkey-secrets-call-{index}",
                daemon=True,
            )
            try:
                thread.start()
            except RuntimeError:
                left.append(index)
                continue
            started.append((thread, ended))
        if calls:
            _run_into(calls[0], outcomes[0])
        for index in left:
            _run_into(calls[index], outcomes[index])
    finally:
        own = outcomes[0].error if outcomes else None
        _join(
            started, interrupted=own if own is not None and not isinstance(own, Exception) else None
        )
    return outcomes


def _join(
    started: list[tuple[threading.Thread, threading.Event]],
    interrupted: BaseException | None = None,
) -> None:
    """Wait for every call in ``started``; an interruption meanwhile is raised afterwards.

    ``interrupted`` is an interruption the caller's own call met already. A further one while
    waiting (a second Ctrl-C) is raised at once, leaving the calls still in flight to their
    daemon threads: whoever presses twice wants the process to stop, and stopping there is no
    worse than a kill, which every write path survives.

    Each call's own event is waited for, not its thread: on CPython 3.11 a ``Thread.join``
    interrupted by a signal (Ctrl-C) marks the thread it waited for as stopped while it still
    runs (bpo-45274), so joining it again returns at once. The thread is joined once its call
    has ended.
    """
    first = interrupted
    interrupted = None
    for thread, ended in started:
        while True:
            try:
                ended.wait()
                break
            except BaseException as exc:
                if first is not None or interrupted is not None:
                    raise  # a second interruption: stop waiting
                interrupted = exc
        try:
            thread.join()
        except BaseException as exc:  # noqa: BLE001 (its call has ended; raised afterwards)
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


#: How :func:`together` runs a group (threads, unless a simulator put its own runner here).
RUNNER: contextvars.ContextVar[Runner] = contextvars.ContextVar(
    "unkey_secrets_runner",
    default=threads,
)


def together(*calls: Callable[[], Any]) -> list[Outcome[Any]]:
    """Run ``calls`` at once and return each one's :class:`Outcome`, in order (see the module)."""
    return RUNNER.get()(calls)


def first_failure(outcomes: Sequence[Outcome[Any]]) -> BaseException | None:
    """The exception to raise for a group: an interruption first, else the first error in order.

    An interruption (a ``BaseException`` that is not an ``Exception``: ``KeyboardInterrupt``, a
    kill) in any call goes on at once, as it would have in the sequential code, before anything
    is settled.
    """
    for outcome in outcomes:
        if outcome.error is not None and not isinstance(outcome.error, Exception):
            return outcome.error
    for outcome in outcomes:
        if outcome.error is not None:
            return outcome.error
    return None
