"""Each call of a rotation taken away, one at a time: the simulator must find what it protects.

``python -m tests.simulation --mutations`` plants each :class:`Mutation` (a call of the library's
rotation removed, or made at once with a call it must wait for) and explores the scenarios
named with it; each must end in at least one violation, which is printed with its schedule.
That is the evidence ``docs/performance.md`` cites for each call a rotation keeps: without
it, this promise breaks in this schedule. (Calls made inside a store, below the simulated
store's hooks, are held to their promises by the store contract tests instead.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

from unkey_secrets import UnkeyClient
from unkey_secrets._concurrent import first_failure, together
from unkey_secrets.rotation import attempt, core, protocol
from unkey_secrets.rotation.core import Original, UnkeySide, marker_of, user_meta
from unkey_secrets.rotation.record import RotationRecord
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.memory import _Entry

from .explore import Run, faults_for, run_one, search
from .lambda_scenarios import LAMBDA_SCENARIOS, explore_lambda
from .scenarios import EXPIRING, SCENARIOS


@dataclass(frozen=True)
class Mutation:
    """One call taken away (``plant`` returns the patches), and where its loss must show."""

    call: str
    protects: str
    scenarios: tuple[str, ...]
    plant: Callable[[], contextlib.AbstractContextManager[Any]]
    bound: int = 0
    fault_bound: int = 0
    #: Only faults of these kinds (None: every kind), to keep a deep search short.
    kinds: tuple[str, ...] | None = None


# -- the plants ------------------------------------------------------------------------------------


def _no_get_key() -> contextlib.AbstractContextManager[Any]:
    real = UnkeyClient.get_key

    def unread(self: UnkeyClient, key_id: str, **kwargs: Any) -> Any:
        # What getKey alone tells (the expiry, the meta) is not known.
        return dataclasses.replace(real(self, key_id, **kwargs), expires=None, meta=None)

    return mock.patch.object(UnkeyClient, "get_key", unread)


def _claims_never_conflict() -> contextlib.AbstractContextManager[Any]:
    def unchecked(self: InMemoryStore, record: RotationRecord, path: str) -> None:
        self._entries[path] = _Entry(
            kind="rotation",
            value=json.dumps(record.fields()),
            revision=record.revision,
            api_id=record.api_id,
            key_id=record.from_key_id,
        )

    return mock.patch.object(InMemoryStore, "_write_rotation", unchecked)


def _no_mark() -> contextlib.AbstractContextManager[Any]:
    def mark(self: UnkeySide, info: Any, *, override: Any = None) -> Original:
        # The Original the mark would have made, but the key in Unkey left as it was.
        meta = {
            **user_meta(info.meta),
            core.MARKER_META_KEY: self.token,
            core.PREVIOUS_EXPIRES_META_KEY: info.expires,
        }
        return Original(dataclasses.replace(info, meta=meta), info.expires, False)

    return mock.patch.object(UnkeySide, "mark", mark)


def _no_put() -> contextlib.AbstractContextManager[Any]:
    def store(self: attempt.Attempt) -> None:
        rot, issued = self.rotation, self.issued
        assert issued is not None
        self.location = rot.store.describe_location(api_id=rot.api_id, key_id=issued.key_id)

    return mock.patch.object(attempt.Attempt, "store", store)


def _no_cut() -> contextlib.AbstractContextManager[Any]:
    return mock.patch.object(UnkeySide, "cut", return_value=None)


def _no_done() -> contextlib.AbstractContextManager[Any]:
    real = protocol.Rotation._write

    def write(self: protocol.Rotation, record: RotationRecord) -> None:
        if record.state != "done":
            real(self, record)

    return mock.patch.object(protocol.Rotation, "_write", write)


def _no_strip() -> contextlib.AbstractContextManager[Any]:
    return mock.patch.object(UnkeySide, "strip", return_value=None)


def _no_recut_of_a_done_rotation() -> contextlib.AbstractContextManager[Any]:
    def clear_marks(self: attempt.Attempt) -> None:
        key_id = self.record.key_id
        if key_id is not None:
            info = self.rotation.unkey.get_key(key_id)
            if marker_of(info) == self.record.rotation:
                self.side.strip(key_id, info.meta)
        self.stripped = True

    return mock.patch.object(attempt.Attempt, "clear_marks", clear_marks)


def _no_recut_by_a_replace() -> contextlib.AbstractContextManager[Any]:
    from unkey_secrets.rotation.displace import Displacement

    real = Displacement._settle_maker

    def settle(self: Displacement) -> None:
        real(self)
        self.maker = None

    return mock.patch.object(Displacement, "_settle_maker", settle)


def _strip_with_the_cut() -> contextlib.AbstractContextManager[Any]:
    real = attempt.Attempt.cut_and_mark_done

    def cut_and_mark_done(self: attempt.Attempt, final: int) -> None:
        key_id = self.record.key_id
        assert key_id is not None
        assert self.original is not None
        meta = self.original.info.meta
        outcomes = together(lambda: real(self, final), lambda: self.side.strip(key_id, meta))
        failure = first_failure(outcomes)
        if failure is not None:
            raise failure
        self.stripped = True

    return mock.patch.object(attempt.Attempt, "cut_and_mark_done", cut_and_mark_done)


def _mark_with_the_claim() -> contextlib.AbstractContextManager[Any]:
    real = protocol.Rotation._claim

    def claim(self: protocol.Rotation, record: RotationRecord) -> RotationRecord:
        # The mark made at the same time as the claim: whatever the claim's outcome.
        outcomes = together(
            lambda: real(self, record),
            lambda: UnkeySide(self.unkey, self.api_id, record.rotation, clock=self.clock).mark(
                self.unkey.get_key(record.from_key_id)
            ),
        )
        return outcomes[0].get()

    return mock.patch.object(protocol.Rotation, "_claim", claim)


def _lambda_managed_unseen() -> contextlib.AbstractContextManager[Any]:
    real = SecretsManagerStore._alias_state

    def alias_state(self: SecretsManagerStore, *args: Any) -> Any:
        state = real(self, *args)
        return dataclasses.replace(state, rotation_enabled=False) if state is not None else None

    return mock.patch.object(SecretsManagerStore, "_alias_state", alias_state)


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "keys.getKey of the original",
        "the original's own expiry (a re-run restores it from the saved mark)",
        (EXPIRING,),
        _no_get_key,
    ),
    Mutation(
        "the claim (record revision 1, create-only)",
        "one run at a time",
        ("rotate-alias x2",),
        _claims_never_conflict,
        bound=1,
    ),
    Mutation(
        "keys.updateKey: the mark",
        "keys a lost reroll made can be found",
        ("rotate-alias",),
        _no_mark,
        kinds=("unkey_dropped", "unkey_503", "kill"),
    ),
    Mutation(
        "put: the new key stored",
        "the rotation can finish (a move to an unstored key is refused)",
        ("rotate-alias",),
        _no_put,
    ),
    Mutation("keys.updateKey: the cut", "no valid orphan", ("rotate-alias",), _no_cut),
    Mutation("the record marked done", "no stuck record", ("rotate-alias",), _no_done),
    Mutation(
        "keys.updateKey: the strip", "no key keeps a rotation's marks", ("rotate-alias",), _no_strip
    ),
    Mutation(
        "the re-cut by a run finding a done record whose new key is still marked",
        "no valid orphan (the cut and the done write are made at once)",
        ("rotate-alias",),
        _no_recut_of_a_done_rotation,
        kinds=("kill",),
    ),
    Mutation(
        "the re-cut by a replace of a done rotation's still-marked key",
        "no valid orphan (the cut and the done write are made at once)",
        ("rotate-alias x provision-replace",),
        _no_recut_by_a_replace,
        fault_bound=1,
        kinds=("kill",),
    ),
    Mutation(
        "the strip waiting for the cut and the done write (made with them instead)",
        "a run that died before its cut or record write is found and finished",
        ("rotate-alias",),
        _strip_with_the_cut,
        kinds=("kill",),
    ),
    Mutation(
        "the mark waiting for the claim (made with it instead)",
        "keys a lost attempt made can be found",
        ("rotate-alias x2",),
        _mark_with_the_claim,
        kinds=("kill",),
    ),
    Mutation(
        "DescribeSecret of the alias (its RotationEnabled)",
        "a secret the rotation Lambda rotates is left to it",
        ("lambda x library-rotate",),
        _lambda_managed_unseen,
        bound=2,
    ),
)


def runs_of(mutation: Mutation, name: str) -> Iterator[Run]:
    """The schedules of scenario ``name`` the mutation is explored in."""
    if name in LAMBDA_SCENARIOS:
        yield from explore_lambda(
            LAMBDA_SCENARIOS[name], mutation.bound, faults=False, fault_bound=0
        )
        return
    sc = SCENARIOS[name]
    kinds = mutation.kinds

    def fault_kinds(labels: tuple[str, ...]) -> Iterator[tuple[int, str, str | None]]:
        return (f for f in faults_for(labels) if kinds is None or f[1] in kinds)

    yield from search(
        lambda prefix, fault: run_one(sc, prefix, fault),
        fault_kinds,
        mutation.bound,
        faults=True,
        fault_bound=mutation.fault_bound,
    )


def check(mutation: Mutation) -> tuple[int, list[Run], float]:
    """Explore ``mutation``'s scenarios with it planted: (schedules, violating runs, seconds)."""
    started = time.perf_counter()
    runs: list[Run] = []
    with mutation.plant():
        for name in mutation.scenarios:
            runs.extend(runs_of(mutation, name))
    return len(runs), [r for r in runs if r.problems], time.perf_counter() - started


def main() -> bool:
    """Print each mutation and the first violation it causes; False if one went unnoticed."""
    ok = True
    for mutation in MUTATIONS:
        total, violating, took = check(mutation)
        found = bool(violating)
        ok &= found
        print(
            f"without {mutation.call}: {len(violating)} of {total} schedules break "
            f"'{mutation.protects}' ({took:.1f} s)" + ("" if found else "  <- NOT CAUGHT"),
            flush=True,
        )
        if violating:
            first = violating[0]
            print(f"    {first.problems[0]}\n      schedule: {first.replay()}", flush=True)
    return ok
