"""The simulator's throughput: schedules explored per second at ``make test``'s bounds.

For each of a few scenarios (one actor; two rotations at once; a rotation against a replace),
every schedule ``tests/simulation/test_simulation.py`` explores (interleavings up to its
``BOUND``, a fault at every call with ``FAULT_BOUND``) is run and judged once; printed are
the schedule count, the wall time, schedules per second and the wall time per scheduling
step (one Unkey or store call, with its share of set-up, recovery and judging), which is what
bounds how deep ``make simulate`` can go in a given time.
"""

from __future__ import annotations

import logging
import time

from tests.simulation.explore import explore
from tests.simulation.scenarios import SCENARIOS
from tests.simulation.test_simulation import BOUND, FAULT_BOUND

NAMES = ("rotate-alias", "rotate-alias x2", "rotate-alias x provision-replace")


def main() -> int:
    logging.disable(logging.CRITICAL)
    print(f"simulator at make test's bounds (interleavings <= {BOUND}, faults x {FAULT_BOUND})")
    status = 0
    for name in NAMES:
        started = time.perf_counter()
        runs = list(explore(SCENARIOS[name], BOUND, faults=True, fault_bound=FAULT_BOUND))
        took = time.perf_counter() - started
        calls = sum(len(r.trace) for r in runs)
        bad = sum(1 for r in runs if r.problems)
        status |= bad > 0
        print(
            f"  {name:<36} {len(runs):>5} schedules {took:6.2f} s "
            f"{len(runs) / took:7.1f} schedules/s {1e6 * took / max(calls, 1):7.1f} us/step "
            f"{bad} violations"
        )
    logging.disable(logging.NOTSET)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
