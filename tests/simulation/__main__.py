"""``make simulate``: every write path at a deeper bound, plus seeded random schedules.

    python -m tests.simulation [--bound N] [--fault-bound N] [--random N] [--seed S]
                               [--scenario NAME ...]
    python -m tests.simulation --scenario NAME --schedule 0,0,1,... [--fault kill@1:8]
    python -m tests.simulation --list
    python -m tests.simulation --mutations

The first form prints one bar per scenario and kind of schedule (interleavings, faults,
random) with its count of schedules and of violations, and exits 1 if any was found; with
``--scenario`` it explores only those. The second replays one schedule (as a failure prints
it) and shows every call and what the judge found. A fault is ``KIND@ACTOR:CALL``: the
``CALL``-th call (1-based) that actor ``ACTOR`` (0-based) makes, or ``KIND@ACTOR:LABEL#N``:
the ``N``-th call of that actor labelled ``LABEL`` (``store:put``, ``unkey:keys.rerollKey``),
whichever order its calls made at once come in. A step of a schedule is an actor, or
``ACTOR/STRAND`` for one of the calls an actor makes at once. The fourth takes each call of a
rotation away in turn (:mod:`tests.simulation.mutations`) and prints the first violation the
simulator finds without it; it exits 1 if one goes unnoticed.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator

from .explore import Run, explore, random_runs, run_one
from .lambda_scenarios import LAMBDA_SCENARIOS, explore_lambda, run_lambda_one
from .scenarios import SCENARIOS
from .scheduler import Fault, actor_of, parse_pick

_WIDTH = 40


_KINDS = (
    "kill",
    "unkey_503",
    "unkey_dropped",
    "unkey_429",
    "store_down",
    "store_outage",
    "store_lost",
)


def _fault(text: str | None) -> Fault | None:
    if not text:
        return None
    try:
        fault = Fault.parse(text)
    except ValueError:
        fault = None
    if fault is None or fault.kind not in _KINDS:
        raise SystemExit(
            f"--fault {text!r}: expected KIND@ACTOR:CALL or KIND@ACTOR:LABEL#N, KIND one of "
            f"{', '.join(_KINDS)}, ACTOR from 0, CALL and N from 1 (e.g. kill@1:8, "
            "kill@0:store:put#1)"
        )
    return fault


def _names() -> list[str]:
    return sorted(SCENARIOS) + sorted(LAMBDA_SCENARIOS)


def _bar(label: str, runs: list[Run], seconds: float) -> bool:
    bad = [r for r in runs if r.problems]
    filled = _WIDTH if not runs else max(1, round(_WIDTH * (len(runs) - len(bad)) / len(runs)))
    bar = "#" * filled + "x" * (_WIDTH - filled if bad else 0)
    print(
        f"{label:<60} {bar:<{_WIDTH}} {len(runs):>6} schedules {len(bad):>4} violations "
        f"({seconds:.1f} s)"
    )
    for run in bad[:3]:
        print(f"    {run.problems[0]}\n      replay: python -m tests.simulation {run.replay()}")
    return not bad


def _timed(produce: Callable[[], Iterator[Run]]) -> tuple[list[Run], float]:
    started = time.perf_counter()
    runs = list(produce())
    return runs, time.perf_counter() - started


def _explore_all(
    bound: int, fault_bound: int, random_count: int, seed: int, only: list[str]
) -> bool:
    ok = True
    total = 0
    for name, scenario in sorted(SCENARIOS.items()):
        if only and name not in only:
            continue
        runs, took = _timed(lambda s=scenario: explore(s, bound, faults=False, fault_bound=0))
        ok &= _bar(f"{name}: interleavings <= {bound}", runs, took)
        total += len(runs)
        runs, took = _timed(
            lambda s=scenario: (
                r for r in explore(s, 0, faults=True, fault_bound=fault_bound) if r.fault
            )
        )
        ok &= _bar(f"{name}: faults x interleavings <= {fault_bound}", runs, took)
        total += len(runs)
        if random_count:
            runs, took = _timed(lambda s=scenario: random_runs(s, random_count, seed))
            ok &= _bar(f"{name}: random ({seed})", runs, took)
            total += len(runs)
    for name, lam in sorted(LAMBDA_SCENARIOS.items()):
        if only and name not in only:
            continue
        runs, took = _timed(lambda s=lam: explore_lambda(s, bound, faults=False, fault_bound=0))
        ok &= _bar(f"{name}: interleavings <= {bound}", runs, took)
        total += len(runs)
        runs, took = _timed(
            lambda s=lam: (
                r for r in explore_lambda(s, 0, faults=True, fault_bound=fault_bound) if r.fault
            )
        )
        ok &= _bar(f"{name}: faults x interleavings <= {fault_bound}", runs, took)
        total += len(runs)
    print(f"{total} schedules; " + ("no violation" if ok else "VIOLATIONS FOUND"))
    return ok


def _replay(name: str, schedule: str, fault: Fault | None) -> bool:
    logging.disable(logging.NOTSET)
    logging.basicConfig(level=logging.INFO, format="    log %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # each call is shown as a step below
    try:
        prefix = [parse_pick(x) for x in schedule.split(",") if x]
    except ValueError:
        raise SystemExit(
            f"--schedule {schedule!r}: expected actor numbers or actor/strand, e.g. 0,0/2,1"
        ) from None
    if name in LAMBDA_SCENARIOS:
        run = run_lambda_one(LAMBDA_SCENARIOS[name], prefix, fault)
    else:
        run = run_one(SCENARIOS[name], prefix, fault)
    if fault is not None and not run.fault_fired:
        print(f"the fault {fault} never fired: actor {fault.actor} made fewer calls")
        return False
    if run.problems and run.problems[0].startswith("hung: schedule names actor"):
        print(f"not a schedule of this scenario: {run.problems[0].removeprefix('hung: ')}")
        return False
    seen = [0] * len(run.labels)
    for step, pick in enumerate(run.trace):
        picked = actor_of(pick)
        labels = run.labels[picked]
        label = labels[seen[picked]] if seen[picked] < len(labels) else "?"
        seen[picked] += 1
        hit = fault is not None and fault.actor == picked
        if hit and fault is not None:
            if fault.label is None:
                hit = fault.at == seen[picked]
            else:
                hit = label == fault.label and labels[: seen[picked]].count(label) == fault.at
        strand = "" if isinstance(pick, int) else f" (strand {pick[1]})"
        print(
            f"  step {step:>3}: actor {picked}{strand} {label}"
            + (f"   <- {fault.kind}" if hit and fault is not None else "")
        )
    print("  (then the documented recovery: re-runs, and the judge)")
    print("problems:", run.problems or "none")
    return not run.problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.simulation",
        description="Explore the write paths' schedules, or replay one.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--bound", type=int, default=3, help="preemptions without a fault")
    parser.add_argument("--fault-bound", type=int, default=1, help="preemptions around each fault")
    parser.add_argument("--random", type=int, default=200, help="random schedules a scenario")
    parser.add_argument("--seed", type=int, default=14, help="the random schedules' seed")
    parser.add_argument(
        "--scenario", action="append", default=[], help="only this scenario (repeatable)"
    )
    parser.add_argument(
        "--schedule", help="replay this schedule (actor, or actor/strand, per step: 0,0/2,1,...)"
    )
    parser.add_argument(
        "--fault", help="with --schedule: KIND@ACTOR:CALL or KIND@ACTOR:LABEL#N, e.g. kill@1:8"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios")
    parser.add_argument(
        "--mutations",
        action="store_true",
        help="take each call of a rotation away in turn: the simulator must catch each",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)
    if args.list:
        print("\n".join(_names()))
        return 0
    if args.mutations:
        from .mutations import main as mutations

        return 0 if mutations() else 1
    unknown = [n for n in args.scenario if n not in _names()]
    if unknown:
        parser.error(f"no scenario {unknown[0]!r}; --list shows them")
    if args.schedule is not None:
        if len(args.scenario) != 1:
            parser.error("--schedule replays one scenario: name it with --scenario")
        ok = _replay(args.scenario[0], args.schedule, _fault(args.fault))
        return 0 if ok else 1
    ok = _explore_all(args.bound, args.fault_bound, args.random, args.seed, args.scenario)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
