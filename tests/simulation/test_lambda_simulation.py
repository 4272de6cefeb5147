"""The rotation Lambda under the simulator: every schedule within the bounds ends well.

The exhaustive test runs each of :data:`LAMBDA_SCENARIOS` at one preemption, then every fault
at every point (no preemption with a fault); the direct tests pin the issue's two instances.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from .lambda_scenarios import (
    LAMBDA_SCENARIOS,
    Played,
    explore_lambda,
    judge_lambda,
    play,
)


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    # Thousands of runs each log their steps; the judge reads the end state, not the logs.
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", sorted(LAMBDA_SCENARIOS))
def test_every_schedule_within_the_bounds_ends_well(name: str) -> None:
    runs = failed = 0
    first = ""
    for run in explore_lambda(LAMBDA_SCENARIOS[name], 1, faults=True, fault_bound=0):
        runs += 1
        if run.problems:
            failed += 1
            first = first or f"{'; '.join(run.problems)}\n  replay: {run.replay()}"
    assert runs > 0
    assert failed == 0, f"{failed} of {runs} schedules broke a promise; first:\n  {first}"


def _order(played: Played) -> list[tuple[int, str]]:
    """The points in the order they were let through: (actor, label)."""
    seen = [0] * len(played.run.labels)
    order = []
    for picked in played.run.actors():
        order.append((picked, played.run.labels[picked][seen[picked]]))
        seen[picked] += 1
    return order


def test_same_token_create_twice_the_new_key_keeps_the_originals_expiry() -> None:
    """Two createSecret of one token both read K before either marks it; B's reroll copies A's hold.

    A and B each read K, A marks and rerolls (K is now on A's 30-day hold), B marks and rerolls
    (its new key copies that hold), then B stores first and finishes; A loses the race.
    """
    scenario = LAMBDA_SCENARIOS["lambda-create x2 same token"]
    schedule = [0] * 4 + [1] * 4 + [0] * 2 + [1] * 2
    with play(scenario, schedule, None) as played:
        order = _order(played)
        reads = [i for i, (a, label) in enumerate(order) if label == "unkey:keys.getKey"][:2]
        marks = [i for i, (a, label) in enumerate(order) if label == "unkey:keys.updateKey"]
        rerolls = [a for a, label in order if label == "unkey:keys.rerollKey"]
        assert max(reads) < min(marks), "both read the original before either marked it"
        assert rerolls == [0, 1], "A rerolled, then B rerolled while the original was on hold"
        world, ctx = played.world, played.ctx
        a, b = played.outcomes
        assert a.error is None
        assert b.error is None
        assert a.result[0]["outcome"] == "lost-race"
        assert [r["outcome"] for r in b.result] == [
            "rerolled",
            "nothing-to-do",
            "valid",
            "finished",
        ]
        current = world.value(ctx["arn"], ctx["token"])
        assert current is not None
        assert current["expires"] is None
        assert world.emulator.key(current["key_id"]).expires is None, "not the 720 h hold"
        assert judge_lambda(world, ctx, played.outcomes) == []


def test_a_library_rotation_of_a_secret_the_lambda_rotates_is_refused_in_every_schedule() -> None:
    # The Lambda keeps its state in the secret's version stages, the library in its record,
    # and Unkey has no conditional update: they cannot share a claim on one key, so a secret
    # with RotationEnabled is the Lambda's alone. Whatever the interleaving, the library is
    # refused before it calls Unkey and the Lambda's rotation ends well.
    runs = list(
        explore_lambda(LAMBDA_SCENARIOS["lambda x library-rotate"], 2, faults=False, fault_bound=0)
    )
    assert len(runs) > 1
    for run in runs:
        assert run.problems == [], run.replay()
        library = run.labels[1]
        assert not any(label.startswith("unkey:") for label in library), run.replay()
