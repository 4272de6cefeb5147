"""A deterministic scheduler: actors are threads, one runs at a time, every call is a choice.

Each actor runs in a thread of its own and stops at every *point* (every Unkey request and
every store call) until the scheduler lets it go on. The scheduler lets exactly one thread run
between two points, so a run is decided entirely by the sequence of choices it made: the
*schedule*. Replaying a schedule's choices gives the same run.

**Calls issued together.** A flow that issues calls at once
(:func:`unkey_secrets._concurrent.together`) runs each of them here as a *strand* of its actor:
a thread of its own, started alone up to its first point, while the caller waits for the
group to end. The strands of an actor are scheduled like actors: at each step the scheduler
lets one waiting strand go, so every order of a group's calls is a schedule, a kill at a
strand's point is a kill between the calls (the process dies: none of its strands runs
again), and a fault at one call leaves the others to land or fail on their own.

A choice names an actor (``1``: its *default* strand, the one that ran last if it is waiting,
else its oldest waiting one) or a strand (``(1, 3)``, printed ``1/3``: actor 1's fourth
strand, counting its main thread as 0). Choosing among one actor's strands is free while no
other actor is waiting; otherwise picking a strand other than the default costs one
preemption, as switching actors does.

A kill has SIGKILL semantics: the actor stops at its point and never runs another line until
the world is thrown away (then its threads are unwound with :class:`Reaped`, on a world nobody
looks at any more). A fault (Unkey 503, a dropped connection, a store outage...) is handed to
the point's caller, which acts it out.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from unkey_secrets._concurrent import Outcome

#: How long the scheduler waits for the running actor to reach its next point (wall seconds)
#: before calling the run hung.
HANG_SECONDS = 20.0

#: One choice of a schedule: an actor (its default strand), or (actor, strand).
Pick = int | tuple[int, int]


class Reaped(BaseException):
    """Unwinds a killed actor's thread once its world has been judged and thrown away."""


class Hung(Exception):
    """An actor did not reach its next point in time, or a run took too many steps."""


@dataclass(frozen=True)
class Fault:
    """What happens at one point of actor ``actor``.

    Without a ``label``, at the ``at``-th point (1-based) the actor reaches; with one, at the
    ``at``-th point carrying that label (which call it is does not depend on the order in
    which the actor's strands reach their points).
    """

    actor: int
    at: int
    kind: str
    label: str | None = None

    def __str__(self) -> str:
        if self.label is None:
            return f"{self.kind}@{self.actor}:{self.at}"
        return f"{self.kind}@{self.actor}:{self.label}#{self.at}"

    @classmethod
    def parse(cls, text: str) -> Fault:
        """``KIND@ACTOR:CALL`` or ``KIND@ACTOR:LABEL#N`` (as :meth:`__str__` prints it)."""
        kind, _, where = text.partition("@")
        actor, _, at = where.partition(":")
        label: str | None = None
        if "#" in at:
            label, _, at = at.rpartition("#")
        if not kind or not actor.isdigit() or not at.isdigit() or int(at) < 1:
            raise ValueError(text)
        return cls(int(actor), int(at), kind, label)


def form(pick: Pick) -> str:
    """A pick as a schedule prints it: ``1`` or ``1/3``."""
    return str(pick) if isinstance(pick, int) else f"{pick[0]}/{pick[1]}"


def parse_pick(text: str) -> Pick:
    """The inverse of :func:`form`."""
    actor, _, strand = text.partition("/")
    return (int(actor), int(strand)) if strand else int(actor)


def actor_of(pick: Pick) -> int:
    """The actor a pick names."""
    return pick if isinstance(pick, int) else pick[0]


@dataclass
class Decision:
    """One choice: who could run (``options``, each with its cost), who did, and the point."""

    options: tuple[tuple[Pick, int], ...]
    picked: Pick
    label: str
    cost: int

    @property
    def waiting(self) -> tuple[Pick, ...]:
        return tuple(p for p, _ in self.options)

    @property
    def preemption(self) -> int:
        return self.cost


@dataclass(eq=False)
class Strand:
    """One thread of an actor: its main thread (``sid`` 0), or a call of a group it issued."""

    actor: ActorState
    sid: int
    #: running (between points), waiting (at a point), blocked (waiting for its group), done.
    state: str = "running"
    waiting: str | None = None
    #: Strands of the group this strand issued that have not ended yet.
    children_left: int = 0
    parent: Strand | None = None


@dataclass(eq=False)
class ActorState:
    index: int
    name: str
    body: Callable[[], Any]
    thread: threading.Thread | None = None
    strands: list[Strand] = field(default_factory=list)
    #: Points let through so far (every strand's), and their labels in that order.
    points: int = 0
    labels: list[str] = field(default_factory=list)
    finished: bool = False
    killed: bool = False
    result: Any = None
    error: BaseException | None = None
    #: Called when the actor is killed (its process is dead from then on).
    on_kill: Callable[[], None] = lambda: None

    @property
    def waiting(self) -> str | None:
        """The label its main strand waits at (None: not at a point)."""
        return self.strands[0].waiting if self.strands else None

    def quiet(self) -> bool:
        """No thread of this actor is running: each waits at a point, for its group, or ended."""
        return all(s.state != "running" for s in self.strands)


class Scheduler:
    """Runs actors one point at a time, following ``prefix`` then a default policy.

    The default policy keeps the last strand running while it can, else another strand of
    the same actor, else picks the lowest actor waiting: runs without a prefix are the serial
    ones. ``advance`` is called once per step (the simulated clock's tick).
    """

    def __init__(
        self,
        prefix: Sequence[Pick],
        fault: Fault | None,
        *,
        advance: Callable[[], None],
        max_steps: int = 400,
    ) -> None:
        self.prefix = list(prefix)
        self.fault = fault
        self.fault_fired = False
        self.advance = advance
        self.max_steps = max_steps
        self.actors: list[ActorState] = []
        self.trace: list[Decision] = []
        self._cv = threading.Condition()
        self._turn: Strand | None = None
        self._closed = False
        self._local = threading.local()
        #: The actor whose turn it is (or who is starting up); None outside the run.
        self._active: ActorState | None = None

    # -- called from actor threads ---------------------------------------------------------

    def _strand(self) -> Strand | None:
        """The strand this thread is (None outside the actors: set-up, recovery, judging).

        A thread an actor started itself (bulk's workers) works for that actor's main strand:
        only the actor whose turn it is runs at all.
        """
        strand: Strand | None = getattr(self._local, "strand", None)
        if strand is not None:
            return strand
        active = self._active
        return active.strands[0] if active is not None else None

    def current(self) -> ActorState | None:
        """The actor this thread works for (None outside the actors)."""
        strand = self._strand()
        return strand.actor if strand is not None else None

    def point(self, label: str) -> str | None:
        """Stop here until scheduled; return the fault to act out here, if any.

        Outside an actor (set-up, recovery) it returns None at once. A kill never returns.
        """
        strand = self._strand()
        if strand is None:
            return None
        actor = strand.actor
        with self._cv:
            if self._closed:
                raise Reaped
            strand.waiting = label
            strand.state = "waiting"
            self._cv.notify_all()
            while self._turn is not strand and not self._closed:
                self._cv.wait()
            if self._closed:
                raise Reaped
            # The turn is used up: the next point waits for the scheduler again.
            self._turn = None
            strand.waiting = None
            actor.points += 1
            actor.labels.append(label)
            fault = self.fault
            if fault is None or fault.actor != actor.index or not self._hits(fault, actor, label):
                return None
            self.fault_fired = True
            if fault.kind == "kill":
                actor.killed = True
                actor.on_kill()
                self._cv.notify_all()
                while not self._closed:
                    self._cv.wait()
                raise Reaped
            return fault.kind

    @staticmethod
    def _hits(fault: Fault, actor: ActorState, label: str) -> bool:
        if fault.label is None:
            return fault.at == actor.points
        return fault.label == label and actor.labels.count(label) == fault.at

    def run_group(self, calls: Sequence[Callable[[], Any]]) -> list[Outcome[Any]]:
        """Run a group of calls as strands of the calling actor (the simulator's runner).

        Outside an actor (set-up, recovery) the calls run one after the other, in order.
        """
        from unkey_secrets._concurrent import _run_into

        outcomes: list[Outcome[Any]] = [Outcome() for _ in calls]
        parent = self._strand()
        if parent is None:
            for call, outcome in zip(calls, outcomes, strict=True):
                _run_into(call, outcome)
            return outcomes
        actor = parent.actor
        with self._cv:
            parent.children_left = len(calls)
        for call, outcome in zip(calls, outcomes, strict=True):
            with self._cv:
                if self._closed:
                    raise Reaped
                strand = Strand(actor, len(actor.strands), parent=parent)
                actor.strands.append(strand)
            context = contextvars.copy_context()
            thread = threading.Thread(
                target=context.run,
                args=(self._strand_main, strand, call, outcome),
                name=f"sim-{actor.name}/{strand.sid}",
                daemon=True,
            )
            thread.start()
            # Each strand runs alone up to its first point (or its end) before the next starts.
            with self._cv:
                ok = self._cv.wait_for(
                    lambda s=strand: s.state != "running" or self._closed, timeout=HANG_SECONDS
                )
                if self._closed:
                    raise Reaped
                if not ok:
                    raise Hung(f"strand {actor.name}/{strand.sid} did not reach its first point")
        with self._cv:
            if parent.children_left > 0:
                parent.state = "blocked"
                self._cv.notify_all()
            while parent.children_left > 0 and not self._closed:
                self._cv.wait()
            if self._closed:
                raise Reaped
        return outcomes

    def _strand_main(self, strand: Strand, call: Callable[[], Any], outcome: Outcome[Any]) -> None:
        from unkey_secrets._concurrent import _run_into

        self._local.strand = strand
        _run_into(call, outcome)
        if isinstance(outcome.error, Reaped):
            return
        parent = strand.parent
        assert parent is not None
        with self._cv:
            strand.state = "done"
            parent.children_left -= 1
            if parent.children_left == 0 and parent.state == "blocked":
                # The caller goes on in this same turn, as the sequential code would.
                parent.state = "running"
            self._cv.notify_all()

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
        main_strand = Strand(actor, 0)
        actor.strands.append(main_strand)

        def main() -> None:
            self._local.strand = main_strand
            setup()
            try:
                actor.result = body()
            except Reaped:
                return
            except BaseException as exc:  # noqa: BLE001 (judged: only the documented tree may escape)
                actor.error = exc
            with self._cv:
                actor.finished = True
                main_strand.state = "done"
                self._turn = None
                self._cv.notify_all()

        actor.thread = threading.Thread(target=main, name=f"sim-{name}", daemon=True)
        self.actors.append(actor)

    def _waiting(self) -> list[Strand]:
        return [
            s
            for a in self.actors
            if not a.killed and not a.finished
            for s in a.strands
            if s.state == "waiting"
        ]

    @staticmethod
    def _default(actor: int, waiting: list[Strand], previous: Strand | None) -> Strand | None:
        """The strand a bare actor number picks: the last one run if waiting, else the oldest."""
        if previous is not None and previous.actor.index == actor and previous in waiting:
            return previous
        return next((s for s in waiting if s.actor.index == actor), None)

    def _options(
        self, waiting: list[Strand], previous: Strand | None
    ) -> list[tuple[Pick, int, Strand]]:
        """Each waiting strand as a schedule names it, with what picking it costs."""
        actors = {s.actor.index for s in waiting}
        options = []
        for strand in waiting:
            index = strand.actor.index
            default = self._default(index, waiting, previous)
            pick: Pick = index if strand is default else (index, strand.sid)
            cost = 0
            if (
                previous is not None
                and previous.actor.index in actors
                and index != (previous.actor.index)
            ):
                cost += 1
            if len(actors) > 1 and strand is not default:
                cost += 1
            options.append((pick, cost, strand))
        return options

    def run(self) -> None:
        """Run every actor to its end (or its kill), choosing who goes at each point."""
        for actor in self.actors:
            assert actor.thread is not None
            self._active = actor
            actor.thread.start()
            # Started one by one: each runs alone up to its first point.
            self._settle(actor)
        previous: Strand | None = None
        while True:
            with self._cv:
                waiting = self._waiting()
            if not waiting:
                self._active = None
                return
            step = len(self.trace)
            if step >= self.max_steps:
                raise Hung(f"more than {self.max_steps} steps")
            options = self._options(waiting, previous)
            chosen: tuple[Pick, int, Strand] | None = None
            if step < len(self.prefix):
                wanted = self.prefix[step]
                if isinstance(wanted, int) and wanted < 0:
                    # A random schedule: -1 - n picks the n-th waiting strand, round the list.
                    chosen = options[(-1 - wanted) % len(options)]
                else:
                    actor = actor_of(wanted)
                    for option in options:
                        strand = option[2]
                        if strand.actor.index != actor:
                            continue
                        if isinstance(wanted, int):
                            if strand is self._default(actor, waiting, previous):
                                chosen = option
                        elif strand.sid == wanted[1]:
                            chosen = option
                    if chosen is None:
                        raise Hung(f"schedule names {form(wanted)} at step {step}, not waiting")
            else:
                chosen = next((o for o in options if o[2] is previous), None)
                if chosen is None and previous is not None:
                    same = [o for o in options if o[2].actor is previous.actor]
                    chosen = same[0] if same else None
                if chosen is None:
                    chosen = options[0]
            pick, cost, strand = chosen
            actor = strand.actor
            label = strand.waiting or ""
            self.trace.append(Decision(tuple((p, c) for p, c, _ in options), pick, label, cost))
            self.advance()
            with self._cv:
                strand.state = "running"
                self._turn = strand
                self._active = actor
                self._cv.notify_all()
            self._settle(actor)
            previous = strand

    def _settle(self, actor: ActorState) -> None:
        """Wait until no thread of ``actor`` runs: each at a point, waiting, ended, or killed."""
        with self._cv:
            ok = self._cv.wait_for(
                lambda: actor.finished or actor.killed or actor.quiet(), timeout=HANG_SECONDS
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
        """The preemptions a run spent (switching away from a strand that could go on)."""
        return sum(d.cost for d in self.trace)
