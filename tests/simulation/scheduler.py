"""A deterministic scheduler: actors are threads, one runs at a time, every call is a choice.

Each actor runs in a thread of its own and stops at every *point* (every Unkey request and
every store call) until the scheduler lets it go on. The scheduler lets exactly one actor run
between two points, so a run is decided entirely by the sequence of choices it made: the
*schedule*. Replaying a schedule's choices gives the same run.

A kill has SIGKILL semantics: the actor stops at its point and never runs another line until
the world is thrown away (then its thread is unwound with :class:`Reaped`, on a world nobody
looks at any more). A fault (Unkey 503, a dropped connection, a store outage...) is handed to
the point's caller, which acts it out.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: How long the scheduler waits for the running actor to reach its next point (wall seconds)
#: before calling the run hung.
HANG_SECONDS = 20.0


class Reaped(BaseException):
    """Unwinds a killed actor's thread once its world has been judged and thrown away."""


class Hung(Exception):
    """An actor did not reach its next point in time, or a run took too many steps."""


@dataclass(frozen=True)
class Fault:
    """What happens at the ``at``-th point (1-based) that actor ``actor`` reaches."""

    actor: int
    at: int
    kind: str

    def __str__(self) -> str:
        return f"{self.kind}@{self.actor}:{self.at}"


@dataclass
class Decision:
    """One choice: who could run (``waiting``), who did, and the point it was let through."""

    waiting: tuple[int, ...]
    picked: int
    label: str
    preemption: bool


@dataclass
class ActorState:
    index: int
    name: str
    body: Callable[[], Any]
    thread: threading.Thread | None = None
    waiting: str | None = None
    points: int = 0
    finished: bool = False
    killed: bool = False
    result: Any = None
    error: BaseException | None = None
    labels: list[str] = field(default_factory=list)
    #: Called when the actor is killed (its process is dead from then on).
    on_kill: Callable[[], None] = lambda: None


class Scheduler:
    """Runs actors one point at a time, following ``prefix`` then a default policy.

    The default policy keeps the last actor running while it can, else picks the lowest
    index waiting: runs without a prefix are the serial ones. ``advance`` is called once per
    step (the simulated clock's tick).
    """

    def __init__(
        self,
        prefix: list[int],
        fault: Fault | None,
        *,
        advance: Callable[[], None],
        max_steps: int = 400,
    ) -> None:
        self.prefix = prefix
        self.fault = fault
        self.fault_fired = False
        self.advance = advance
        self.max_steps = max_steps
        self.actors: list[ActorState] = []
        self.trace: list[Decision] = []
        self._cv = threading.Condition()
        self._turn: int | None = None
        self._closed = False
        self._local = threading.local()
        #: The actor whose turn it is (or who is starting up); None outside the run.
        self._active: ActorState | None = None

    # -- called from actor threads ---------------------------------------------------------

    def current(self) -> ActorState | None:
        """The actor this thread is (None outside the actors: set-up, recovery, judging).

        A thread an actor started (bulk's workers) is that actor: only the actor whose turn
        it is runs at all, so an unregistered thread that reaches a point works for it.
        """
        actor: ActorState | None = getattr(self._local, "actor", None)
        return actor if actor is not None else self._active

    def point(self, label: str) -> str | None:
        """Stop here until scheduled; return the fault to act out here, if any.

        Outside an actor (set-up, recovery) it returns None at once. A kill never returns.
        """
        actor = self.current()
        if actor is None:
            return None
        with self._cv:
            if self._closed:
                raise Reaped
            actor.points += 1
            actor.labels.append(label)
            actor.waiting = label
            self._cv.notify_all()
            while self._turn != actor.index and not self._closed:
                self._cv.wait()
            if self._closed:
                raise Reaped
            # The turn is used up: the next point waits for the scheduler again.
            self._turn = None
            actor.waiting = None
            fault = self.fault
            if fault is not None and fault.actor == actor.index and fault.at == actor.points:
                self.fault_fired = True
                if fault.kind == "kill":
                    actor.killed = True
                    actor.on_kill()
                    self._turn = None
                    self._cv.notify_all()
                    while not self._closed:
                        self._cv.wait()
                    raise Reaped
                return fault.kind
            return None

    # -- called from the test's thread -----------------------------------------------------

    def add(
        self,
        name: str,
        body: Callable[[], Any],
        setup: Callable[[], None],
        on_kill: Callable[[], None],
    ) -> None:
        """Add an actor; ``setup`` runs first in its thread (its process identity)."""
        actor = ActorState(len(self.actors), name, body, on_kill=on_kill)

        def main() -> None:
            self._local.actor = actor
            setup()
            try:
                actor.result = body()
            except Reaped:
                return
            except BaseException as exc:  # noqa: BLE001 (judged: only the documented tree may escape)
                actor.error = exc
            with self._cv:
                actor.finished = True
                self._turn = None
                self._cv.notify_all()

        actor.thread = threading.Thread(target=main, name=f"sim-{name}", daemon=True)
        self.actors.append(actor)

    def run(self) -> None:
        """Run every actor to its end (or its kill), choosing who goes at each point."""
        for actor in self.actors:
            assert actor.thread is not None
            self._active = actor
            actor.thread.start()
            # Started one by one: each runs alone up to its first point.
            self._settle(actor, -1)
        previous: int | None = None
        while True:
            with self._cv:
                waiting = tuple(a.index for a in self.actors if a.waiting is not None)
            if not waiting:
                self._active = None
                return
            step = len(self.trace)
            if step >= self.max_steps:
                raise Hung(f"more than {self.max_steps} steps")
            if step < len(self.prefix):
                picked = self.prefix[step]
                if picked < 0:
                    # A random schedule: -1 - n picks the n-th waiting actor, round the list.
                    picked = waiting[(-1 - picked) % len(waiting)]
                if picked not in waiting:
                    raise Hung(f"schedule names actor {picked} at step {step}, not waiting")
            elif previous is not None and previous in waiting:
                picked = previous
            else:
                picked = waiting[0]
            preemption = previous is not None and previous in waiting and picked != previous
            actor = self.actors[picked]
            label = actor.waiting or ""
            self.trace.append(Decision(waiting, picked, label, preemption))
            self.advance()
            at = actor.points
            with self._cv:
                self._turn = picked
                self._active = actor
                self._cv.notify_all()
            self._settle(actor, at)
            previous = picked

    def _settle(self, actor: ActorState, at: int) -> None:
        """Wait until ``actor`` is past point ``at``: at a later point, finished or killed."""
        with self._cv:
            ok = self._cv.wait_for(
                lambda: (
                    actor.finished
                    or actor.killed
                    or (actor.waiting is not None and actor.points > at)
                ),
                timeout=HANG_SECONDS,
            )
            if not ok:
                raise Hung(f"actor {actor.name} did not reach its next point")
            self._turn = None

    def close(self) -> None:
        """Unwind every thread still blocked (killed actors) and wait for them."""
        self._active = None
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        for actor in self.actors:
            if actor.thread is not None and actor.thread.is_alive():
                actor.thread.join(timeout=5)

    def preemptions(self) -> int:
        """How many times a run was switched away from an actor that could go on."""
        return sum(d.preemption for d in self.trace)
