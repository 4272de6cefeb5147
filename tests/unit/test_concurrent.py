"""Calls issued together (unkey_secrets._concurrent): context kept, nothing left running."""

from __future__ import annotations

import contextvars
import signal
import sys
import threading
import time
from typing import Any

import pytest

from unkey_secrets._concurrent import RUNNER, Outcome, first_failure, threads, together
from unkey_secrets.telemetry.audit import purpose
from unkey_secrets.transport.policy import current_deadline, deadline

_SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


def test_each_call_keeps_the_callers_context_deadline_and_audit_purpose() -> None:
    from unkey_secrets.telemetry import audit

    def look() -> tuple[str, object, object, str]:
        return (
            _SEEN.get(),
            current_deadline(),
            audit._PURPOSE.get(),
            threading.current_thread().name,
        )

    token = _SEEN.set("caller")
    try:
        with deadline(30) as limit, purpose("key.cut"):
            first, second = together(look, look)
    finally:
        _SEEN.reset(token)
    assert first.get()[:3] == ("caller", limit, "key.cut")
    assert second.get()[:3] == ("caller", limit, "key.cut")
    assert first.get()[3] != second.get()[3], "the second call ran on a thread of its own"


def test_a_call_setting_a_context_variable_does_not_change_the_callers() -> None:
    def change() -> None:
        _SEEN.set("changed")

    together(lambda: None, change)
    assert _SEEN.get() == "unset"


def test_the_calls_run_at_the_same_time() -> None:
    barrier = threading.Barrier(3, timeout=5)
    outcomes = together(barrier.wait, barrier.wait, barrier.wait)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]


def test_outcomes_come_back_in_order_with_their_errors() -> None:
    def boom() -> None:
        raise ValueError("second")

    first, second, third = together(lambda: 1, boom, lambda: 3)
    assert (first.value, third.value) == (1, 3)
    assert isinstance(second.error, ValueError)
    with pytest.raises(ValueError, match="second"):
        second.get()


def test_first_failure_is_an_interruption_first_then_the_first_error_in_order() -> None:
    a, b = ValueError("a"), KeyError("b")
    interrupt = KeyboardInterrupt()
    assert first_failure([Outcome(1), Outcome(error=a), Outcome(error=b)]) is a
    assert first_failure([Outcome(error=a), Outcome(error=interrupt)]) is interrupt
    assert first_failure([Outcome(1), Outcome(2)]) is None


def test_no_thread_outlives_the_group_when_the_callers_own_call_is_interrupted() -> None:
    finished = threading.Event()

    def slow() -> None:
        time.sleep(0.2)
        finished.set()

    def interrupted() -> None:
        raise KeyboardInterrupt

    before = threading.active_count()
    outcomes = threads([interrupted, slow])
    assert finished.is_set(), "the group returned only once the other call ended"
    assert threading.active_count() == before
    assert isinstance(first_failure(outcomes), KeyboardInterrupt), "the caller raises it first"


def test_an_interruption_while_waiting_is_raised_after_the_others_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished = threading.Event()
    waits = []
    real_wait = threading.Event.wait

    def wait(self: threading.Event, timeout: float | None = None) -> bool:
        if sys._getframe(1).f_code.co_name != "_join":
            return real_wait(self, timeout)  # Thread.start's own wait
        waits.append(self)
        if len(waits) == 1:
            raise KeyboardInterrupt  # Ctrl-C while waiting for the group
        return real_wait(self, timeout)

    def slow() -> None:
        time.sleep(0.1)
        finished.set()

    monkeypatch.setattr(threading.Event, "wait", wait)
    with pytest.raises(KeyboardInterrupt):
        threads([lambda: None, slow])
    assert finished.is_set()
    assert len(waits) == 2, "the wait was made again after the interruption"


def test_a_second_interruption_while_waiting_stops_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    finished = threading.Event()
    real_wait = threading.Event.wait
    interrupts = []

    def wait(self: threading.Event, timeout: float | None = None) -> bool:
        if sys._getframe(1).f_code.co_name != "_join":
            return real_wait(self, timeout)
        interrupts.append(KeyboardInterrupt(len(interrupts) + 1))
        raise interrupts[-1]  # Ctrl-C, and Ctrl-C again

    def stalled() -> None:
        real_wait(release, 10)
        finished.set()

    monkeypatch.setattr(threading.Event, "wait", wait)
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            threads([lambda: None, stalled])
        assert raised.value is interrupts[1], "the second interruption is the one raised"
        assert not finished.is_set(), "the wait stopped while the stalled call was in flight"
    finally:
        release.set()


def test_an_interruption_of_the_callers_own_call_makes_the_next_one_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    real_wait = threading.Event.wait

    def wait(self: threading.Event, timeout: float | None = None) -> bool:
        if sys._getframe(1).f_code.co_name != "_join":
            return real_wait(self, timeout)
        raise KeyboardInterrupt("while waiting")

    def own_call() -> None:
        raise KeyboardInterrupt("in the caller's own request")

    monkeypatch.setattr(threading.Event, "wait", wait)
    try:
        with pytest.raises(KeyboardInterrupt, match="while waiting"):
            threads([own_call, lambda: real_wait(release, 10)])
    finally:
        release.set()


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signals reach the main thread",
)
def test_a_real_ctrl_c_while_waiting_is_raised_after_the_others_end() -> None:
    # A SIGINT delivered while this thread is blocked in Thread.join: on CPython 3.11 the
    # interrupted join marks the thread it waited for as stopped (bpo-45274's fix releases the
    # lock the running thread holds), so joining it again returns at once.
    release, finished = threading.Event(), threading.Event()

    def slow() -> None:
        release.wait(10)
        time.sleep(0.05)
        finished.set()

    def ctrl_c_meanwhile() -> None:
        time.sleep(0.3)  # the caller is waiting for slow by now
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        time.sleep(0.3)
        release.set()

    def own_call() -> None:
        threading.Thread(target=ctrl_c_meanwhile, daemon=True).start()

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            threads([own_call, slow])
        assert finished.is_set(), "raised before the other call of the group ended"
    finally:
        release.set()
        signal.signal(signal.SIGINT, previous)


def test_a_thread_that_cannot_start_has_its_call_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    here = threading.current_thread().name
    outcomes = threads([lambda: 1, lambda: threading.current_thread().name])
    assert [o.value for o in outcomes] == [1, here]


def test_an_errors_finished_frames_have_no_locals() -> None:
    def leaky() -> None:
        plaintext = "sk_" + "x" * 24  # noqa: F841 (a local a renderer would show)
        raise ValueError("failed")

    _, outcome = together(lambda: None, leaky)
    assert outcome.error is not None
    tb = outcome.error.__traceback__
    frames: list[Any] = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    assert frames
    assert all("plaintext" not in f.f_locals for f in frames)


def test_the_runner_is_the_context_variables_choice() -> None:
    calls: list[int] = []

    def in_order(group: Any) -> list[Outcome[Any]]:
        calls.append(len(group))
        return [Outcome(call()) for call in group]

    token = RUNNER.set(in_order)
    try:
        assert [o.value for o in together(lambda: 1, lambda: 2)] == [1, 2]
    finally:
        RUNNER.reset(token)
    assert calls == [2]
