"""Enumerate schedules: every interleaving up to a bound on preemptions, times every fault.

A schedule is a list of choices (which actor goes at each step) and at most one fault. The
search is the classic preemption-bounded one: run a schedule, then for every step past its
forced prefix try each other actor that was waiting there, as long as the preemptions stay
within the bound. Every schedule is run exactly once. Beyond the bound, seeded random
schedules sample deeper interleavings.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from unkey_secrets import RotationConflictError
from unkey_secrets._concurrent import RUNNER
from unkey_secrets.rotation.core import DEFAULT_LEASE
from unkey_secrets.rotation.record import PROCESSES

from .judge import Outcome, judge
from .scenarios import Scenario, rerun
from .scheduler import Fault, Hung, Pick, Scheduler, actor_of, form
from .world import STORE_READ_FAULTS, STORE_WRITE_FAULTS, STORE_WRITES, UNKEY_FAULTS, World


@dataclass
class Run:
    """One schedule's run: its choices, its fault, and what the judge found."""

    scenario: str
    prefix: list[Pick]
    fault: Fault | None
    trace: list[Pick] = field(default_factory=list)
    labels: list[tuple[str, ...]] = field(default_factory=list)
    #: At each step, every pick that was possible and what it would have cost.
    options: list[tuple[tuple[Pick, int], ...]] = field(default_factory=list)
    preempted: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fault_fired: bool = False

    def replay(self) -> str:
        """How to run this schedule again (paste into ``python -m tests.simulation``)."""
        fault = f" --fault {self.fault}" if self.fault else ""
        return f"--scenario '{self.scenario}' --schedule {','.join(map(form, self.trace))}{fault}"

    def actors(self) -> list[int]:
        """The actor each step let through."""
        return [actor_of(p) for p in self.trace]


def run_one(scenario: Scenario, prefix: list[Pick], fault: Fault | None) -> Run:
    """Run ``scenario`` under one schedule, recover, and judge the end state."""
    world = World(prefix, fault)
    token = PROCESSES.set(PROCESSES.get())
    runner = RUNNER.set(RUNNER.get())
    run = Run(scenario.name, prefix, fault)
    try:
        world.as_process()
        ctx = scenario.setup(world, world.client())
        for actor in scenario.actors:
            world.actor(
                actor.name, lambda client, a=actor: a.call(world, ctx, client), host=actor.host
            )
        outcomes = schedule(world, run)
        if run.problems:
            return run
        outcomes += _recover(world, scenario, ctx, outcomes)
        run.problems = judge(world, scenario.expect(world, ctx), outcomes)
        return run
    finally:
        world.close()
        PROCESSES.reset(token)
        RUNNER.reset(runner)


def schedule(world: World, run: Run) -> list[Outcome]:
    """Run ``world``'s actors under ``run``'s schedule; record it in ``run``; their outcomes."""
    try:
        world.scheduler.run()
    except Hung as exc:
        run.problems.append(f"hung: {exc}")
    sched: Scheduler = world.scheduler
    run.trace = [d.picked for d in sched.trace]
    run.labels = [tuple(a.labels) for a in sched.actors]
    run.options = [d.options for d in sched.trace]
    run.preempted = [d.cost for d in sched.trace]
    run.fault_fired = sched.fault_fired
    return [Outcome(a.name, a.result, a.error, a.killed) for a in sched.actors]


def _recover(world: World, scenario: Scenario, ctx: dict, outcomes: list[Outcome]) -> list[Outcome]:
    """Run again every call that was killed or failed, as the README says to."""
    later: list[Outcome] = []
    pending = [
        (actor, outcome)
        for actor, outcome in zip(scenario.actors, outcomes, strict=True)
        if rerun(outcome.error, outcome.killed, compensated=actor.rerun_compensated)
    ]
    for _round in range(3):
        if not pending:
            break
        left = []
        for actor, _outcome in pending:
            world.as_process(actor.host)
            client = world.client()
            try:
                result = (actor.rerun_call or actor.call)(world, ctx, client)
            except RotationConflictError as exc:
                later.append(Outcome(actor.name, error=exc, recovery=True))
                left.append((actor, _outcome))
                continue
            except Exception as exc:  # noqa: BLE001 (judged)
                later.append(Outcome(actor.name, error=exc, recovery=True))
                if rerun(exc, False, compensated=actor.rerun_compensated):
                    left.append((actor, _outcome))
                continue
            later.append(Outcome(actor.name, result, recovery=True))
        pending = left
        # Another host's claim is honoured until its lease ends: the documented wait.
        world.clock.sleep(DEFAULT_LEASE.total_seconds() + 1)
    for actor, _outcome in pending:
        # The documented recovery must finish the job: running the call again ends it.
        error = next(o.error for o in reversed(later) if o.actor == actor.name)
        later.append(Outcome(actor.name, error=NeverFinished(actor.name, error), recovery=True))
    if scenario.after is not None:
        world.as_process()
        scenario.after(world, world.client())
    # Only the last answer of each re-run counts as its report.
    last: dict[str, Outcome] = {}
    for outcome in later:
        last[outcome.actor] = outcome
    return list(last.values())


class NeverFinished(Exception):
    """A call run again as the README says still failed after every round of re-runs."""

    def __init__(self, actor: str, last: BaseException | None) -> None:
        super().__init__(
            f"{actor}: still failing after the documented re-runs "
            f"({type(last).__name__ if last is not None else 'no answer'})"
        )


def faults_for(labels: tuple[str, ...]) -> Iterator[tuple[int, str, str | None]]:
    """Every (point, fault, label) an actor's points allow: a kill anywhere, the rest by kind.

    A point is named by its label and which occurrence of it it is, so a fault hits the same
    call whichever order the actor's strands reach their points in.
    """
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        kind, _, operation = label.partition(":")
        if kind == "unkey":
            kinds: tuple[str, ...] = UNKEY_FAULTS
        elif operation in STORE_WRITES:
            kinds = STORE_WRITE_FAULTS
        else:
            kinds = STORE_READ_FAULTS
        for fault in kinds:
            yield seen[label], fault, label
    yield len(labels) + 1, "kill", None  # after its last call, before it reports


#: Runs one schedule: (prefix, fault) -> the judged run.
Runner = Callable[[list[Pick], Fault | None], Run]
#: Every (point, fault kind, label) an actor's recorded call labels allow.
FaultsFor = Callable[[tuple[str, ...]], Iterator[tuple[int, str, str | None]]]


def explore(scenario: Scenario, bound: int, *, faults: bool, fault_bound: int) -> Iterator[Run]:
    """Every schedule of ``scenario`` within the bounds (see the module docstring)."""
    return search(
        lambda prefix, fault: run_one(scenario, prefix, fault),
        faults_for,
        bound,
        faults=faults,
        fault_bound=fault_bound,
    )


def search(
    runner: Runner, fault_kinds: FaultsFor, bound: int, *, faults: bool, fault_bound: int
) -> Iterator[Run]:
    """The search itself, for any kind of scenario: interleavings, then every fault."""
    base = runner([], None)
    yield from _interleavings(runner, base, None, bound)
    if not faults:
        return
    seen: set[Fault] = set()
    for index, labels in enumerate(base.labels):
        for at, kind, label in fault_kinds(labels):
            fault = Fault(index, at, kind, label)
            if fault in seen:
                continue
            seen.add(fault)
            first = runner([], fault)
            yield from _interleavings(runner, first, fault, fault_bound)


def _interleavings(runner: Runner, first: Run, fault: Fault | None, bound: int) -> Iterator[Run]:
    stack = [first]
    while stack:
        run = stack.pop()
        yield run
        used = sum(run.preempted[: len(run.prefix)])
        for step in range(len(run.prefix), len(run.trace)):
            for other, cost in run.options[step]:
                if other == run.trace[step]:
                    continue
                if used + cost > bound:
                    continue
                stack.append(runner([*run.trace[:step], other], fault))
            used += run.preempted[step]


def random_runs(scenario: Scenario, count: int, seed: int) -> Iterator[Run]:
    """Seeded random schedules (any number of preemptions), a random fault in half of them."""
    rng = random.Random(seed)
    base = run_one(scenario, [], None)
    options = [
        Fault(i, at, k, label)
        for i, labels in enumerate(base.labels)
        for at, k, label in faults_for(labels)
    ]
    for _ in range(count):
        prefix = [rng.randrange(len(scenario.actors)) for _ in range(60)]
        fault = rng.choice(options) if options and rng.random() < 0.5 else None
        yield run_one(scenario, _fit(prefix), fault)


def _fit(prefix: list[int]) -> list[Pick]:
    # A random choice list is read leniently: see Scheduler's "random" mode.
    return [-1 - p for p in prefix]
