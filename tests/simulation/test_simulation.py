"""The write paths under every schedule up to the test bound; the issue's inputs as schedules.

``make test`` explores every scenario's interleavings up to two preemptions without a fault,
and a kill or fault at every call of every actor with the serial schedules around it;
``make simulate`` goes deeper (``python -m tests.simulation``). A failure names the schedule
to replay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from unkey_secrets.rotation import core
from unkey_secrets.rotation.record import RotationRecord
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.memory import _Entry

from .explore import Run, explore, run_one
from .scenarios import SCENARIOS
from .scheduler import Fault

#: The bounds ``make test`` runs at (``make simulate`` raises them).
BOUND = 2
FAULT_BOUND = 0


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    # Thousands of schedules log their warnings; the judge reads the end state instead.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def _report(runs: list[Run]) -> str:
    bad = [r for r in runs if r.problems]
    if not bad:
        return ""
    first = bad[0]
    return (
        f"{len(bad)} of {len(runs)} schedules broke a promise; first: {first.problems}\n"
        f"replay: python -m tests.simulation {first.replay()}"
    )


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_schedule_within_the_bound_keeps_every_promise(name: str) -> None:
    runs = list(explore(SCENARIOS[name], BOUND, faults=True, fault_bound=FAULT_BOUND))
    assert len(runs) > 1
    assert not _report(runs), _report(runs)


# -- calls issued together ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("unkey:keys.getKey", "store:write_rotation"),  # the original read, the claim
        ("unkey:keys.updateKey", "store:write_rotation"),  # the cut, the record marked done
    ],
)
def test_calls_issued_together_run_in_both_orders_with_a_kill_between_and_a_fault_in_either(
    first: str, second: str
) -> None:
    runs = list(explore(SCENARIOS["rotate-alias"], 0, faults=True, fault_bound=0))
    # The n-th occurrence of each label: the cut is the second updateKey, done the second write.
    n = 1 if first == "unkey:keys.getKey" else 2

    def order(run: Run) -> tuple[str, str] | None:
        labels = list(run.labels[0])
        seen: dict[str, int] = {}
        where = {}
        for index, label in enumerate(labels):
            seen[label] = seen.get(label, 0) + 1
            if label in (first, second) and seen[label] == n:
                where[label] = index
        if len(where) < 2:
            return None
        return (first, second) if where[first] < where[second] else (second, first)

    orders = {order(r) for r in runs if r.fault is None}
    assert orders == {(first, second), (second, first)}
    killed_between = {
        order(r)
        for r in runs
        if r.fault is not None
        and r.fault.kind == "kill"
        and r.fault.label in (first, second)
        and r.labels[0][-1] == r.fault.label
        and order(r) is not None
    }
    assert killed_between == {(first, second), (second, first)}, "a kill after either one"
    faulted = {
        (r.fault.label, order(r))
        for r in runs
        if r.fault is not None and r.fault.kind != "kill" and r.fault_fired
    }
    for label in (first, second):
        assert (label, (first, second)) in faulted
        assert (label, (second, first)) in faulted
    assert not _report(runs), _report(runs)


# -- the inputs, each one schedule ------------------------------------------------------
# Points of a rotation by alias, in the default order (calls issued together are strands of
# the actor; the default runs them in the order written): 1 check_writable, 2 alias_state,
# 3 getKey, 4 write_rotation (claim), 5 updateKey (mark), 6 rerollKey, 7 put, 8 set_current,
# 9 updateKey (cut), 10 write_rotation (done), 11 updateKey (strip).


def _assert_kept(run: Run) -> None:
    assert run.fault is None or run.fault_fired, "the schedule never reached its fault"
    assert run.problems == [], run.replay()


def test_a_takeover_rereads_the_key_it_decides_from() -> None:
    # A reads the alias and getKey, pauses; B claims, marks, rerolls, stores and is killed
    # before moving the alias; A takes the dead claim over. The new key must not inherit the
    # hold (it would expire in 30 days while its stored value says never).
    prefix = [0, 0, 0, *[1] * 8]
    run = run_one(SCENARIOS["rotate-alias x2"], prefix, Fault(1, 8, "kill"))
    _assert_kept(run)


def test_a_rotation_killed_after_its_alias_move_is_finished_by_a_replace() -> None:
    # A moves the alias to N and is killed before cutting K; provision(replace=True) then
    # replaces N. K must end (not stay on its 30-day hold) and no record stays claimed.
    prefix = [*[0] * 9, *[1] * 13]
    run = run_one(SCENARIOS["rotate-alias x provision-replace"], prefix, Fault(0, 9, "kill"))
    _assert_kept(run)


def test_a_replace_racing_a_rotation_that_dies_leaves_no_live_unnamed_key() -> None:
    # The replace reads the alias; the rotation claims K, rerolls, stores N and is killed;
    # the replace then moves the alias and cuts K: N must not stay stored, marked and valid.
    prefix = [1, 1, *[0] * 8, *[1] * 13]
    run = run_one(SCENARIOS["rotate-alias x provision-replace"], prefix, Fault(0, 8, "kill"))
    _assert_kept(run)


def test_a_rotation_that_read_the_key_before_a_replace_cut_it_does_not_undo_the_cut() -> None:
    # The rotation reads K; the replace runs to its end (K cut); the rotation goes on.
    prefix = [0, 0, 0, *[1] * 12]
    run = run_one(SCENARIOS["rotate-alias x provision-replace"], prefix, None)
    _assert_kept(run)


def test_a_needless_claim_that_cannot_be_released_is_not_reported_as_success() -> None:
    # The replace runs to its end but for its strip; the rotation reads the replace's key
    # (still marked) while claiming it, then finishes the replace instead. Releasing its own
    # claim meets a store outage: it must not end "resumed" with its claim left for good.
    prefix = [*[1] * 10, *[0] * 11, 1]
    fault = Fault(0, 2, "store_outage", label="store:write_rotation")
    run = run_one(SCENARIOS["rotate-alias x provision-replace"], prefix, fault)
    _assert_kept(run)


def test_a_replace_that_lost_its_alias_leaves_no_marks_on_the_key_it_disabled() -> None:
    # The replace reads the alias (K) and waits; the rotation moves it to N and dies before
    # its record's done; the replace's move then loses (the alias names N): the key it made is
    # disabled, and its marks must go with that attempt.
    prefix = [1, 1, *[0] * 11, *[1] * 10]
    fault = Fault(0, 2, "kill", label="store:write_rotation")
    run = run_one(SCENARIOS["rotate-alias x provision-replace"], prefix, fault)
    _assert_kept(run)


@pytest.mark.parametrize("kind", ["store_down", "store_outage", "store_lost"])
def test_the_last_record_write_is_retried_or_finished_by_the_rerun(kind: str) -> None:
    run = run_one(SCENARIOS["rotate-alias x2 hosts"], [], Fault(0, 10, kind))
    _assert_kept(run)


@pytest.mark.parametrize("kind", ["store_down", "store_outage"])
def test_a_landed_alias_move_whose_answer_was_lost_is_read_back_not_cut(kind: str) -> None:
    # The move lands, its answer is lost; then the store is down (a blip, or an outage longer
    # than the retries). Nothing may cut the new key: the alias may name it.
    run = run_one(SCENARIOS["rotate-alias"], [], Fault(0, 8, "store_lost"))
    _assert_kept(run)
    run = run_one(SCENARIOS["rotate-alias"], [], Fault(0, 9 if kind == "store_down" else 8, kind))
    _assert_kept(run)


# -- the simulator catches planted bugs ---------------------------------------------------------


def test_a_planted_missing_final_cut_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(core.UnkeySide, "cut", lambda self, *a, **k: None)
    runs = list(explore(SCENARIOS["rotate-alias"], 0, faults=False, fault_bound=0))
    assert any("stays valid" in p for r in runs for p in r.problems)


def test_a_planted_missing_claim_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    # Claims that never conflict: every write of a rotation record lands, whatever revision
    # it names, so two runs can both think they own the rotation.
    def unchecked(self: InMemoryStore, record: RotationRecord, path: str) -> None:
        self._entries[path] = _Entry(
            kind="rotation",
            value=json.dumps(record.fields()),
            revision=record.revision,
            api_id=record.api_id,
            key_id=record.from_key_id,
        )

    monkeypatch.setattr(InMemoryStore, "_write_rotation", unchecked)
    runs = list(explore(SCENARIOS["rotate-alias x2"], 1, faults=True, fault_bound=0))
    assert any(r.problems for r in runs)
