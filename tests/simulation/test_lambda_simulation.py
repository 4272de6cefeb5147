"""The rotation Lambda under the simulator: every schedule within the bounds ends well.

The exhaustive test runs each of :data:`LAMBDA_SCENARIOS` at one preemption, then every fault
at every point (no preemption with a fault); the direct tests pin the issue's two instances.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from unkey_secrets import RotationResult, RotationStepError

from .lambda_scenarios import LAMBDA_SCENARIOS, Played, explore_lambda, judge_lambda, play
from .lambda_scenarios import recover_lambda as recover


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
    for picked in played.run.trace:
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


def _lambda_vs_library(schedule: list[int]) -> AbstractContextManager[Played]:
    return play(LAMBDA_SCENARIOS["lambda x library-rotate"], schedule, None)


def test_lambda_and_library_at_once_the_library_wins_and_the_lambda_deletes_only_its_key() -> None:
    """Both read K before either marks it; the library finishes first, then the Lambda goes on."""
    with _lambda_vs_library([0] * 4 + [1] * 13) as played:
        order = _order(played)
        lambda_read = order.index((0, "unkey:keys.getKey"))
        library_mark = order.index((1, "unkey:keys.updateKey"))
        assert lambda_read < library_mark, "the Lambda read K before the library marked it"
        world, ctx = played.world, played.ctx
        lam, lib = played.outcomes
        assert isinstance(lib.result, RotationResult)
        assert isinstance(lam.error, RotationStepError), "the Lambda lost and said so"
        assert lam.error.step == "finishSecret"
        holders = world.stages(ctx["arn"])
        current_version = next(v for v, s in holders.items() if "AWSCURRENT" in s)
        current = world.value(ctx["arn"], current_version)
        assert current is not None
        assert current["key_id"] == lib.result.key_id, "exactly one winner: the library"
        assert "AWSPENDING" not in {s for labels in holders.values() for s in labels}
        keys = {k.key_id: k for k in world.emulator.keys(world.api_id)}
        made = [k for k in keys.values() if k.key_id not in (ctx["K"], lib.result.key_id)]
        assert [k.deleted for k in made] == [True], "the loser deleted its own key, only it"
        assert not keys[lib.result.key_id].deleted
        assert keys[lib.result.key_id].expires is None
        grace_end = world.clock.ms() + 3_600_000
        k_expires = keys[ctx["K"]].expires
        assert k_expires is not None
        assert k_expires <= grace_end
        scenario = LAMBDA_SCENARIOS["lambda x library-rotate"]
        outcomes = played.outcomes + recover(world, scenario, ctx, played.outcomes)
        assert judge_lambda(world, ctx, outcomes) == []


def test_lambda_and_library_at_once_the_lambda_wins_and_the_library_gives_up() -> None:
    """Both read K before either marks it; the Lambda finishes first, then the library goes on."""
    with _lambda_vs_library([1] * 3 + [0]) as played:
        order = _order(played)
        assert order.index((1, "unkey:keys.getKey")) < order.index((0, "unkey:keys.updateKey"))
        world, ctx = played.world, played.ctx
        lam, lib = played.outcomes
        assert lam.error is None
        assert lam.result[-1]["outcome"] == "finished"
        assert lib.result is None, "the library lost the alias move"
        assert lib.error is not None
        holders = world.stages(ctx["arn"])
        assert "AWSCURRENT" in holders[ctx["token"]]
        assert judge_lambda(world, ctx, played.outcomes) == []
