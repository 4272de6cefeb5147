"""The library's rotation (:func:`unkey_secrets.rotate`) killed at every call, for both stores.

A run is killed before or after each Unkey request and each store call of a clean rotation (a
``BaseException`` from the HTTP and store hooks; every later call fails too, so nothing can
compensate), its rotation record names a process that has exited, and the same call is run
again. :func:`assert_converged` checks the promise: the alias names exactly one new key, rerolled
from the original and valid, the original is cut to the grace period, no other key of the API
outlives it, no key keeps our marks, and the record says ``done``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from unkey_secrets import (
    CompensatedError,
    FlowError,
    InvalidInputError,
    RetryPolicy,
    RotationConflictError,
    SecretStore,
    UnkeyClient,
    capture,
    provision,
    rotate,
)
from unkey_secrets._concurrent import RUNNER, Outcome, _run_into, threads
from unkey_secrets.flows import ProvisionResult
from unkey_secrets.rotation.core import ROTATED_TO_META_KEY
from unkey_secrets.rotation.protocol import RotationResult
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer, EmulatorTransport

from ._library_harness import BotoTap, Killed, Tracer, VaultTap, dead_owner, dead_pid

GRACE = dt.timedelta(hours=1)
GRACE_MS = 3_600_000
FAST = RetryPolicy(attempts=2, sleep=lambda _: None)
K1_OPTIONS: dict[str, Any] = {"name": "svc-key", "external_id": "tenant_1", "prefix": "sk"}
RESERVED = "unkey_secrets_"

# The Unkey calls of a clean rotation by alias (constant in the API's size).
CLEAN_UNKEY = [
    "unkey.keys.getKey",  # the original
    "unkey.keys.updateKey",  # mark it
    "unkey.keys.rerollKey",
    "unkey.keys.updateKey",  # tidy-up: cut the original
    "unkey.keys.updateKey",  # tidy-up: strip the new key's marks
]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Rig:
    """One store kind against the session's emulator; traced runs get fresh clients."""

    kind: str
    server: EmulatorServer
    emulator: Emulator
    unkey: UnkeyClient  # untraced: set-up and inspection
    store: SecretStore  # untraced
    new_store: Callable[[bool], tuple[SecretStore, BotoTap | VaultTap]]

    @contextlib.contextmanager
    def traced(
        self, tracer: Tracer, *, own_client: bool = False
    ) -> Iterator[tuple[UnkeyClient, SecretStore]]:
        store, tap = self.new_store(own_client)
        tap.tracer = tracer
        http = tracer.httpx_client()
        unkey = UnkeyClient(
            self.server.root_key, base_url=self.server.url, http_client=http, sleep=lambda _: None
        )
        try:
            yield unkey, store
        finally:
            tap.tracer = None
            http.close()

    def run(
        self,
        tracer: Tracer,
        call: Callable[[UnkeyClient, SecretStore], Any],
        *,
        own_client: bool = False,
    ) -> Any:
        """Run ``call`` traced; ``own_client`` for runs at once (a tap traces one run)."""
        with self.traced(tracer, own_client=own_client) as (unkey, store):
            return call(unkey, store)

    def provision(self, api_id: str, alias: str | None = "svc", **options: Any) -> ProvisionResult:
        merged = {**K1_OPTIONS, **options}
        return provision(self.unkey, self.store, api_id, alias=alias, retry=FAST, **merged)

    def snapshot(self, api_id: str) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in dataclasses.asdict(key).items() if k != "last_used_at"}
            for key in self.emulator.keys(api_id)
        ]


@pytest.fixture(params=["vault", "aws"])
def rig(
    request: pytest.FixtureRequest,
    unkey_emulator_server: EmulatorServer,
    unkey_emulator: Emulator,
    unkey_client: UnkeyClient,
) -> Rig:
    kind = request.param
    if kind == "vault":
        bao = request.getfixturevalue("openbao_server")

        def new_store(own_client: bool = False) -> tuple[SecretStore, BotoTap | VaultTap]:
            client = bao.client()
            tap = VaultTap(client)
            # A warm store: its once-per-object live preflight is left out of the counts
            # (tests/functional/test_vault_store.py pins what it costs).
            return VaultStore(client, preflight=False), tap

        setup: SecretStore = VaultStore(bao.client())
    else:
        moto = request.getfixturevalue("moto_server")
        shared = moto.client("secretsmanager")
        taps: list[BotoTap] = []

        def new_store(own_client: bool = False) -> tuple[SecretStore, BotoTap | VaultTap]:
            if own_client:
                client = moto.client("secretsmanager")
                return SecretsManagerStore(client, preflight=False), BotoTap(client)
            # One botocore client per test (building one is slow), a fresh store per run.
            if not taps:
                taps.append(BotoTap(shared))
            # A warm store, as for Vault (test_aws_store.py pins the preflight's one call).
            return SecretsManagerStore(shared, preflight=False), taps[0]

        setup = SecretsManagerStore(moto.client("secretsmanager"))
    return Rig(kind, unkey_emulator_server, unkey_emulator, unkey_client, setup, new_store)


@pytest.fixture(scope="module")
def gone_pid() -> int:
    return dead_pid()


def by_alias(api_id: str, alias: str = "svc", key_id: str | None = None) -> Any:
    def call(unkey: UnkeyClient, store: SecretStore) -> RotationResult:
        return rotate(unkey, store, api_id, key_id, alias=alias, grace_period=GRACE, retry=FAST)

    return call


def by_key(api_id: str, key_id: str) -> Any:
    def call(unkey: UnkeyClient, store: SecretStore) -> RotationResult:
        return rotate(unkey, store, api_id, key_id, grace_period=GRACE, retry=FAST)

    return call


def assert_converged(
    rig: Rig,
    api_id: str,
    k1: ProvisionResult,
    alias: str = "svc",
    *,
    k1_expires: int | None = None,
    settled: set[str] = frozenset(),  # type: ignore[assignment]
) -> str:
    """The end state of a finished rotation of ``k1``; returns the new key_id.

    ``settled`` are keys an earlier, finished rotation cut: still live, within their grace.
    """
    state = rig.store.alias_state(api_id=api_id, alias=alias)
    assert state is not None
    stored = rig.store.get_current(api_id=api_id, alias=alias)
    new_id = stored.key_id
    assert state.key_id == new_id
    assert new_id != k1.key_id
    assert stored.rerolled_from == k1.key_id
    assert (stored.name, stored.external_id, stored.prefix) == (
        K1_OPTIONS["name"],
        K1_OPTIONS["external_id"],
        K1_OPTIONS["prefix"],
    )
    verdict = rig.unkey.verify_key(stored.secret)
    assert verdict.valid, verdict.code
    keys = {k.key_id: k for k in rig.emulator.keys(api_id)}
    t = now_ms()
    new = keys[new_id]
    assert not new.deleted
    assert new.enabled
    assert new.expires == k1_expires, "the new key keeps the original's own expiry (no hold)"
    original = keys[k1.key_id]
    assert not original.deleted
    assert original.expires is not None
    assert t < original.expires <= t + GRACE_MS, (original.expires - t) / 1000
    for key in keys.values():
        if key.key_id in (new_id, k1.key_id):
            continue
        assert key.deleted or (key.expires is not None and key.expires <= t + GRACE_MS), (
            f"stray key {key.key_id} outlives the grace period: {key}"
        )
    live = {k.key_id for k in keys.values() if not k.deleted and (k.expires or t + 1) > t}
    assert live <= {new_id, k1.key_id} | set(settled) | {
        k.key_id for k in keys.values() if k.rerolled_from is not None and k.key_id != new_id
    }
    record = rig.store.read_rotation(api_id=api_id, key_id=k1.key_id)
    assert record is not None
    assert record.state == "done", record
    assert record.key_id == new_id
    return new_id


def assert_no_marks(rig: Rig, api_id: str) -> None:
    """No key keeps a rotation's marks (checked last in every test).

    A rotated-out key keeps one member for good, ``unkey_secrets_rotated_to``: it must name a
    live key of the API, and the key carrying it must have been cut (it has an expiry).
    """
    live = {key.key_id for key in rig.emulator.keys(api_id) if not key.deleted}
    marked = {}
    for key in rig.emulator.keys(api_id):
        if key.deleted:
            continue
        ours = sorted(m for m in key.meta or {} if m.startswith(RESERVED))
        if ours == [ROTATED_TO_META_KEY]:
            assert key.expires is not None, f"{key.key_id} says it was rotated but never ends"
            assert (key.meta or {})[ROTATED_TO_META_KEY] in live
        elif ours:
            marked[key.key_id] = ours
    assert not marked, f"keys keep our meta members: {marked}"


def assert_third_run_changes_nothing(
    rig: Rig, api_id: str, call: Callable[..., RotationResult], new_id: str
) -> None:
    before = rig.snapshot(api_id)
    result = rig.run(Tracer(), call)
    assert result.outcome == "already-done", result
    assert result.key_id == new_id
    assert rig.snapshot(api_id) == before


# -- the crash matrix ------------------------------------------------------------------------


def clean_calls(rig: Rig) -> list[str]:
    api_id = rig.emulator.create_api("clean")
    rig.provision(api_id)
    tracer = Tracer()
    result = rig.run(tracer, by_alias(api_id))
    assert result.outcome == "rotated"
    return tracer.calls


def caller_first(calls: Sequence[Callable[[], Any]]) -> list[Outcome[Any]]:
    """A runner making a group's calls one after another, in the order given (the caller's first).

    On threads, each other call of a group starts before the caller's own (40 runs of 40 here:
    the thread started runs until it blocks on its request), so the matrix run that way never
    kills between a caller's call that landed and the others. This runner gives that order.
    """
    outcomes: list[Outcome[Any]] = []
    for call in calls:
        outcome: Outcome[Any] = Outcome()
        _run_into(call, outcome)
        outcomes.append(outcome)
    return outcomes


@pytest.mark.parametrize("order", ["threads", "caller first"])
@pytest.mark.parametrize("form", ["alias", "key_id+alias", "alias, second rotation"])
def test_a_rotation_killed_at_any_call_is_finished_by_the_same_call(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, gone_pid: int, form: str, order: str
) -> None:
    token = RUNNER.set(caller_first if order == "caller first" else threads)
    try:
        _killed_at_any_call(rig, monkeypatch, gone_pid, form)
    finally:
        RUNNER.reset(token)


def _killed_at_any_call(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, gone_pid: int, form: str
) -> None:
    calls = clean_calls(rig)
    failures: list[str] = []
    for index, label in enumerate(calls):
        for phase in ("before", "after"):
            api_id = rig.emulator.create_api("matrix")
            k1 = rig.provision(api_id)
            settled: set[str] = set()
            if form.endswith("second rotation"):
                # The key being rotated came from a rotation itself (it has a predecessor).
                earlier = rig.run(Tracer(), by_alias(api_id))
                settled.add(k1.key_id)
                k1 = dataclasses.replace(k1, key_id=earlier.key_id)
            by_key_id = form == "key_id+alias"
            call = by_alias(api_id, key_id=k1.key_id) if by_key_id else by_alias(api_id)
            where = f"{phase} call {index} ({label})"
            try:
                with dead_owner(monkeypatch, gone_pid), pytest.raises(Killed):
                    rig.run(Tracer(kill_at=(index, phase)), call)
                rerun = rig.run(Tracer(), call)
                if rerun.original_key_id != k1.key_id:
                    # By alias alone, a run that finds the rotation finished rotates the key
                    # the alias names now: allowed only if the killed run had really finished.
                    assert not by_key_id
                    record = rig.store.read_rotation(api_id=api_id, key_id=k1.key_id)
                    assert record is not None
                    assert record.state == "done", (
                        f"the re-run rotated {rerun.original_key_id} ({rerun.outcome}) instead "
                        f"of finishing the rotation of {k1.key_id}"
                    )
                    assert_one_key_without_end(rig, api_id, rerun.key_id)
                    assert_no_marks(rig, api_id)
                    continue
                new_id = assert_converged(rig, api_id, k1, settled=settled)
                assert rerun.key_id == new_id
                assert_third_run_changes_nothing(
                    rig, api_id, by_alias(api_id, key_id=k1.key_id), new_id
                )
                assert_no_marks(rig, api_id)
            except (AssertionError, Exception) as exc:  # noqa: BLE001 (collected, then failed)
                failures.append(f"{where}: {type(exc).__name__}: {exc}".splitlines()[0][:400])
    assert not failures, f"{len(failures)} kill points do not converge:\n" + "\n".join(failures)


def test_by_alias_alone_a_finished_rotation_is_followed_by_a_new_one(rig: Rig) -> None:
    """By alias, rotate() rotates what the alias names now; by key_id, a re-run is a no-op."""
    api_id = rig.emulator.create_api("again")
    k1 = rig.provision(api_id)
    first = rig.run(Tracer(), by_alias(api_id))
    k2 = assert_converged(rig, api_id, k1)
    assert first.key_id == k2
    second = rig.run(Tracer(), by_alias(api_id))
    assert (second.outcome, second.original_key_id) == ("rotated", k2)
    assert_one_key_without_end(rig, api_id, second.key_id)
    assert_third_run_changes_nothing(rig, api_id, by_alias(api_id, key_id=k2), second.key_id)
    assert_no_marks(rig, api_id)


def assert_one_key_without_end(rig: Rig, api_id: str, current: str) -> None:
    """The alias names ``current``, the only live key with no end; all others end in grace."""
    assert rig.store.get_current(api_id=api_id, alias="svc").key_id == current
    limit = now_ms() + int(GRACE.total_seconds() * 1000) + 60_000
    for key in rig.emulator.keys(api_id):
        if key.deleted:
            continue
        if key.key_id == current:
            assert key.expires is None
            assert key.enabled
        else:
            assert key.expires is not None, key.key_id
            assert key.expires <= limit, key.key_id


# -- the cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("with_alias", [True, False], ids=["key_id+alias", "key_id"])
def test_rerun(rig: Rig, with_alias: bool) -> None:
    api_id = rig.emulator.create_api("rerun")
    k1 = rig.provision(api_id)
    call = by_alias(api_id, key_id=k1.key_id) if with_alias else by_key(api_id, k1.key_id)
    first = rig.run(Tracer(), call)
    assert first.outcome == "rotated"
    k2 = assert_converged(rig, api_id, k1)
    assert first.key_id == k2
    again = rig.run(Tracer(), call)
    assert again.outcome == "already-done"
    assert again.key_id == k2
    keys = rig.emulator.keys(api_id)
    assert {k.key_id for k in keys} == {k1.key_id, k2}, "no third key"
    assert rig.emulator.key(k2).expires is None
    assert rig.unkey.verify_key(rig.store.get_current(api_id=api_id, alias="svc").secret).valid
    assert_converged(rig, api_id, k1)
    assert_no_marks(rig, api_id)


def test_forgotten_alias_is_moved_by_a_rotation_by_key_id(rig: Rig) -> None:
    api_id = rig.emulator.create_api("trap")
    k = rig.provision(api_id, alias="trap")
    result = rig.run(Tracer(), by_key(api_id, k.key_id))
    assert result.outcome == "rotated"
    assert [a.alias for a in result.aliases] == ["trap"]
    new_id = assert_converged(rig, api_id, k, alias="trap")
    assert result.key_id == new_id
    assert_no_marks(rig, api_id)


def test_provisioning_a_taken_alias_is_refused_before_unkey_or_replaces_it(rig: Rig) -> None:
    api_id = rig.emulator.create_api("billing")
    first = rig.provision(api_id, alias="billing")
    before = rig.emulator.keys(api_id)
    with pytest.raises(RotationConflictError):
        rig.provision(api_id, alias="billing")
    assert rig.emulator.keys(api_id) == before, "no key was created in Unkey"
    started = now_ms()
    second = provision(
        rig.unkey,
        rig.store,
        api_id,
        alias="billing",
        replace=True,
        grace_period=GRACE,
        retry=FAST,
        **K1_OPTIONS,
    )
    assert second.replaced_key_id == first.key_id
    assert rig.store.get_current(api_id=api_id, alias="billing").key_id == second.key_id
    expires = rig.emulator.key(first.key_id).expires
    assert expires is not None
    assert started + GRACE_MS <= expires <= now_ms() + GRACE_MS
    assert second.replaced_expires == expires
    assert rig.emulator.key(second.key_id).expires is None


@pytest.mark.parametrize("failing", ["cut", "strip"])
def test_a_failure_between_the_tidy_up_calls_is_finished_by_running_again(
    rig: Rig, failing: str
) -> None:
    api_id = rig.emulator.create_api("tidy")
    k1 = rig.provision(api_id)
    tracer = Tracer()
    # Fail one tidy-up updateKey of a clean run through every retry: the 2nd updateKey cuts the
    # original, the 3rd (last) strips the new key's marks.
    nth = {"cut": 2, "strip": 3}[failing]
    seen: list[int] = []

    def count(label: str) -> Callable[[], None]:
        def action() -> None:
            seen.append(1)
            if len(seen) == nth:
                rig.emulator.faults.fail_next("keys.updateKey", times=10, status=503)
            else:
                tracer.on_call[(label, "before")] = action

        return action

    tracer.on_call[("unkey.keys.updateKey", "before")] = count("unkey.keys.updateKey")
    call = by_alias(api_id)
    try:
        if failing == "cut":
            with pytest.raises(FlowError, match="Run the rotation again") as raised:
                rig.run(tracer, call)
            assert not isinstance(raised.value, RotationConflictError)
        else:
            # Everything readers need is done, but the marks left on the new key tell every
            # other rotation (the Lambda's) this one is in flight: the run says so, and the
            # next run strips them without mistaking them for an unfinished rotation.
            with pytest.raises(FlowError, match="run the rotation again to clear them") as raised:
                rig.run(tracer, call)
            assert raised.value.actions[-1] == "marks not cleared"
    finally:
        rig.emulator.reset_faults()
    record = rig.store.read_rotation(api_id=api_id, key_id=k1.key_id)
    assert record is not None
    assert record.state == ("stored" if failing == "cut" else "done"), record
    rerun = rig.run(Tracer(), call)
    assert rerun.outcome == "resumed"
    new_id = assert_converged(rig, api_id, k1)
    assert rerun.key_id == new_id
    assert_third_run_changes_nothing(rig, api_id, by_alias(api_id, key_id=k1.key_id), new_id)
    assert_no_marks(rig, api_id)


def test_two_rotations_at_once(rig: Rig) -> None:
    api_id = rig.emulator.create_api("race")
    k1 = rig.provision(api_id)
    before = {k.key_id for k in rig.emulator.keys(api_id)}
    barrier = threading.Barrier(2)
    gate = threading.Lock()
    leader: list[int] = []
    claimed = threading.Event()
    follower_done = threading.Event()
    outcomes: dict[int, Any] = {}

    def rotation_record_write(label: str) -> bool:
        return label.endswith("rotation") and (
            "POST data" in label or "CreateSecret" in label or "PutSecretValue" in label
        )

    def worker(n: int) -> None:
        tracer = Tracer()
        original_before, original_after = tracer.before, tracer.after

        def before(label: str) -> None:
            if rotation_record_write(label):
                with gate:
                    first = not leader
                    if first:
                        leader.append(n)
                if not first and leader[0] != n:
                    # The follower writes its claim only after the leader's landed.
                    assert claimed.wait(120)
            original_before(label)

        def after(label: str) -> None:
            original_after(label)
            if rotation_record_write(label) and leader and leader[0] == n and not claimed.is_set():
                claimed.set()
                # Hold the claim until the other run has given up.
                follower_done.wait(120)

        tracer.before, tracer.after = before, after  # type: ignore[method-assign]
        try:
            barrier.wait(120)
            outcomes[n] = rig.run(tracer, by_alias(api_id), own_client=True)
        except BaseException as exc:  # noqa: BLE001 (reported by the test)
            outcomes[n] = exc
        finally:
            if not leader or leader[0] != n:
                follower_done.set()

    threads = [threading.Thread(target=worker, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    results = [o for o in outcomes.values() if isinstance(o, RotationResult)]
    conflicts = [o for o in outcomes.values() if isinstance(o, RotationConflictError)]
    assert len(results) == 1, outcomes
    assert len(conflicts) == 1, outcomes
    new_id = assert_converged(rig, api_id, k1)
    assert results[0].key_id == new_id
    assert {k.key_id for k in rig.emulator.keys(api_id)} - before == {new_id}
    assert_no_marks(rig, api_id)


def test_the_stored_value_carries_the_keys_own_fields_and_expiry(rig: Rig) -> None:
    api_id = rig.emulator.create_api("fields")
    expires = now_ms() + 2 * GRACE_MS
    k1 = rig.provision(api_id, expires=expires)
    assert rig.store.get_current(api_id=api_id, alias="svc").expires == expires
    result = rig.run(Tracer(), by_alias(api_id))
    stored = rig.store.get_current(api_id=api_id, alias="svc")
    own = rig.store.get(api_id=api_id, key_id=result.key_id)
    for value in (stored, own):
        assert value.key_id == result.key_id
        assert value.expires == expires, "the stored value carries the key's real expiry"
        assert value.rerolled_from == k1.key_id
        assert (value.name, value.external_id, value.prefix) == (
            K1_OPTIONS["name"],
            K1_OPTIONS["external_id"],
            K1_OPTIONS["prefix"],
        )
    assert rig.emulator.key(result.key_id).expires == expires
    assert_converged(rig, api_id, k1, k1_expires=expires)
    assert_no_marks(rig, api_id)


def add_raw_keys(emulator: Any, api_id: str, count: int) -> None:
    """Keys made in-process (no socket), so a big API is cheap to set up."""
    state = getattr(emulator, "emulator", emulator)
    with UnkeyClient(
        state.root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(state)
    ) as seeder:
        for n in range(count):
            seeder.create_key(api_id, name=f"bulk-{n}", external_id="tenant_1")


def test_cost_does_not_grow_with_the_apis_size(rig: Rig) -> None:
    counts = {}
    for size in (0, 300):
        api_id = rig.emulator.create_api(f"size-{size}")
        add_raw_keys(rig.emulator, api_id, size)
        rig.provision(api_id)
        assert len(rig.emulator.keys(api_id)) == size + 1
        tracer = Tracer()
        rig.run(tracer, by_alias(api_id))
        assert "unkey.apis.listKeys" not in tracer.calls, tracer.calls
        counts[size] = tracer.unkey_calls()
    assert counts[300] == counts[0] == CLEAN_UNKEY


def test_a_key_marked_by_the_rotation_lambda_is_left_alone(rig: Rig) -> None:
    api_id = rig.emulator.create_api("lambda")
    k = rig.provision(api_id)
    marks = {"unkey_secrets_op": str(uuid.uuid4()), "unkey_secrets_previous_expires": None}
    rig.unkey.update_key(k.key_id, meta=marks)
    before = rig.snapshot(api_id)
    with pytest.raises(RotationConflictError):
        rig.run(Tracer(), by_alias(api_id))
    assert rig.snapshot(api_id) == before, "nothing deleted, rerolled or updated"
    assert rig.store.get_current(api_id=api_id, alias="svc").key_id == k.key_id
    record = rig.store.read_rotation(api_id=api_id, key_id=k.key_id)
    assert record is None or record.state == "released", "the claim is given up"


EXPECTED_STORE_CALLS = {
    # On a warm store: the first check_writable of a store object adds Vault's mount read and
    # capabilities-self, or Secrets Manager's one DescribeSecret (see docs/performance.md).
    # Calls made together (see docs/performance.md) come in either order: compared sorted.
    "vault": [
        "vault.GET metadata alias",  # alias_state
        "vault.POST data rotation",  # claim (cas=0), with getKey
        "vault.POST data key",  # put: the value (cas=0: the path was free)
        "vault.POST metadata key",  # put: our marker, vouching for the version
        "vault.GET metadata alias",  # prepare_move, with the put: still at the version?
        "vault.POST metadata alias",  # prepare_move: say which key the next version holds
        "vault.POST data alias",  # move: the value (cas)
        "vault.POST data rotation",  # done, with the cut
    ],
    "aws": [
        "aws.DescribeSecret alias",  # alias_state: ours, which version is AWSCURRENT
        "aws.GetSecretValue alias",  # alias_state, with the describe: which key it holds
        "aws.CreateSecret rotation",  # claim, with getKey
        "aws.CreateSecret key",  # put (tagged; described only if the name were taken)
        "aws.PutSecretValue alias",  # prepare_move, with the put: our version, staged aside
        "aws.UpdateSecretVersionStage alias",  # move: AWSCURRENT from the expected version
        "aws.PutSecretValue rotation",  # done, with the cut (the next revision's VersionId)
    ],
}


def test_round_trips_of_a_clean_rotation_by_alias(rig: Rig) -> None:
    api_id = rig.emulator.create_api("trips")
    rig.provision(api_id)
    tracer = Tracer()
    rig.run(tracer, by_alias(api_id))
    calls = tracer.store_calls()
    listing = "\n".join(calls)
    assert len(calls) <= 8, f"{len(calls)} store calls:\n{listing}"
    expected = EXPECTED_STORE_CALLS[rig.kind]
    assert sorted(calls) == sorted(expected), f"{len(calls)} store calls:\n{listing}"


def move_call(rig: Rig) -> tuple[str, str, int]:
    """The move's first call (prepare_move), as a key of ``Tracer.on_nth``: Vault re-reads the
    alias (its second read), Secrets Manager adds its version. By label and occurrence, not by
    index: prepare_move runs together with the put, so the two come in either order."""
    if rig.kind == "vault":
        return ("vault.GET metadata alias", "before", 2)
    return ("aws.PutSecretValue alias", "before", 1)


def test_replacing_an_alias_while_its_key_rotates_is_refused(rig: Rig) -> None:
    api_id = rig.emulator.create_api("replaced")
    k1 = rig.provision(api_id)
    tracer = Tracer()
    refused: list[BaseException] = []

    def replace() -> None:
        try:
            provision(rig.unkey, rig.store, api_id, alias="svc", replace=True, retry=FAST)
        except RotationConflictError as exc:
            refused.append(exc)

    tracer.on_nth[move_call(rig)] = replace
    before = len(rig.emulator.keys(api_id))
    result = rig.run(tracer, by_alias(api_id))
    (error,) = refused
    assert "unfinished rotation" in str(error)
    assert len(rig.emulator.keys(api_id)) == before + 1, "the refused replace made no key"
    assert_converged(rig, api_id, k1)
    assert_one_key_without_end(rig, api_id, result.key_id)


def test_a_rotation_whose_alias_is_taken_meanwhile_leaves_no_key_without_end(rig: Rig) -> None:
    """capture(alias=...) moves the alias while a rotation is between store and move."""
    api_id = rig.emulator.create_api("captured")
    k1 = rig.provision(api_id)
    tracer = Tracer()
    captured: list[str] = []

    def capture_onto_alias() -> None:
        issued = rig.unkey.create_key(api_id)
        capture(rig.store, api_id=api_id, key_id=issued.key_id, key=issued.secret, alias="svc")
        captured.append(issued.key_id)

    tracer.on_nth[move_call(rig)] = capture_onto_alias
    with pytest.raises(CompensatedError) as raised:
        rig.run(tracer, by_alias(api_id))
    (k3,) = captured
    assert raised.value.key_id is not None
    assert_one_key_without_end(rig, api_id, k3)
    assert rig.emulator.key(raised.value.key_id).expires is not None
    # Running the rotation of K1 again gives it up: its alias names K3 now.
    record = rig.store.read_rotation(api_id=api_id, key_id=k1.key_id)
    assert record is not None
    assert record.state == "released"
    with pytest.raises(RotationConflictError, match="names another key now"):
        rig.run(Tracer(), by_key(api_id, k1.key_id))
    assert_one_key_without_end(rig, api_id, k3)
    assert_no_marks(rig, api_id)


def test_a_successor_named_in_meta_is_trusted_only_if_the_store_holds_it(rig: Rig) -> None:
    api_id = rig.emulator.create_api("hostile")
    other_api = rig.emulator.create_api("other")
    k1 = rig.provision(api_id)
    foreign = rig.unkey.create_key(other_api, meta={"owner": "other-team"})
    # A refused attempt (a Lambda's marker on the key) leaves the record released...
    lambda_marks = {"unkey_secrets_op": str(uuid.uuid4()), "unkey_secrets_previous_expires": None}
    rig.unkey.update_key(k1.key_id, meta=lambda_marks)
    with pytest.raises(RotationConflictError):
        rig.run(Tracer(), by_key(api_id, k1.key_id))
    # ...then the meta is forged to name a key of another API as the successor.
    rig.unkey.update_key(k1.key_id, meta={"unkey_secrets_rotated_to": foreign.key_id})
    before = rig.snapshot(api_id) + rig.snapshot(other_api)
    with pytest.raises(InvalidInputError, match="holds no such successor"):
        rig.run(Tracer(), by_key(api_id, k1.key_id))
    assert rig.snapshot(api_id) + rig.snapshot(other_api) == before
    assert rig.store.get_current(api_id=api_id, alias="svc").key_id == k1.key_id
