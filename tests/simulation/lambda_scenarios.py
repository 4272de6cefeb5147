"""The rotation Lambda under simulation: its four steps as actors over a gated Secrets Manager.

Every Secrets Manager call the Lambda (or the library's :class:`SecretsManagerStore`) makes is
a scheduling point (``sm:<Operation>``) and acts out the scheduler's fault as
:class:`~tests.simulation.world.GatedStore` does: ``store_down`` (fails before acting),
``store_outage`` (this call and the actor's next four fail before acting), ``store_lost`` (a
write lands, then its answer is lost) and ``kill``. Unkey requests are points as in every world.

Every scenario starts from one key ``K`` stored in a secret with rotation enabled and a rotation
started (AWSPENDING on an empty version named by the token). Recovery is what Secrets Manager
does: a failed or killed step is invoked again with the same token, then the remaining steps;
if that cannot finish, a fresh rotation (a new token) runs all four. A library call that failed
is run again as the README says (:func:`tests.simulation.scenarios.rerun`). The judge
(:func:`judge_lambda`) then checks the secret and Unkey.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema

from tests import _emf as emf
from unkey_secrets import (
    RotationConflictError,
    RotationResult,
    UnkeyClient,
    provision,
    rotate,
)
from unkey_secrets._concurrent import RUNNER
from unkey_secrets._payload import key_fields
from unkey_secrets.aws_lambda import RotationConfig, Rotator
from unkey_secrets.rotation.core import DEFAULT_LEASE
from unkey_secrets.rotation.record import PROCESSES
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.emulator.model import sha256

from .explore import Run, schedule, search
from .judge import Outcome, reporter, stays_valid
from .scenarios import rerun
from .scheduler import Fault, Pick
from .world import GRACE, UNKEY_FAULTS, World

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
#: The Lambda's configuration in every scenario: the simulator's grace period, default hold.
CONFIG = RotationConfig(grace_period=GRACE)
ALIAS = "svc"

SM_WRITES = frozenset(
    {
        "CreateSecret",
        "PutSecretValue",
        "UpdateSecretVersionStage",
        "TagResource",
        "UntagResource",
        "DeleteSecret",
        "RestoreSecret",
        "RotateSecret",
    }
)
SM_READ_FAULTS = ("kill", "store_down", "store_outage")
SM_WRITE_FAULTS = (*SM_READ_FAULTS, "store_lost")


class GatedSecretsManager(InMemorySecretsManager):
    """The Secrets Manager double, each API call a scheduling point acting out its fault."""

    def __init__(self, world: World) -> None:
        super().__init__(clock=world.clock, seed=7)
        self.world = world
        self.outage: dict[int, int] = {}

    def _call(self, operation: str, params: Any) -> dict[str, Any]:
        scheduler = self.world.scheduler
        fault = scheduler.point("sm:" + operation)
        actor = scheduler.current()
        index = actor.index if actor is not None else -1
        if fault == "store_outage":
            self.outage[index] = 5
        if self.outage.get(index, 0) > 0:
            self.outage[index] -= 1
            raise self._client_error(operation, "ServiceUnavailable", "simulated outage")
        if fault == "store_down" or (fault == "store_lost" and operation not in SM_WRITES):
            raise self._client_error(operation, "ServiceUnavailable", "simulated blip")
        answer = super()._call(operation, params)
        if fault == "store_lost":
            raise self._client_error(operation, "ServiceUnavailable", "answer lost")
        return answer


class LambdaWorld(World):
    """A world whose store is Secrets Manager: the gated double, and the library's store on it."""

    def __init__(self, prefix: list[Pick], fault: Fault | None) -> None:
        super().__init__(prefix, fault)
        self.sm = GatedSecretsManager(self)
        self.sm_store = SecretsManagerStore(self.sm, preflight=False)
        #: Every metrics document the Lambda's steps wrote (the judge checks each).
        self.metrics: list[str] = []

    def rotator(self, client: UnkeyClient) -> Rotator:
        """The Lambda's handler over this world's Secrets Manager and ``client``."""
        return Rotator(self.sm, client, CONFIG, clock=self.clock, metrics=self.metrics.append)

    def stages(self, arn: str) -> dict[str, list[str]]:
        """VersionIdsToStages of ``arn``, read without a scheduling point."""
        return self.sm.versions(arn, include_deprecated=False)

    def value(self, arn: str, version: str) -> dict[str, Any] | None:
        """The JSON stored in ``version`` of ``arn``; None when it holds no value."""
        try:
            answer = self.sm.get_secret_value(SecretId=arn, VersionId=version)
        except Exception:  # noqa: BLE001 (an empty version answers ResourceNotFound)
            return None
        text = answer.get("SecretString")
        return json.loads(text) if isinstance(text, str) else None


# -- set-up ---------------------------------------------------------------------------------------


def plain_secret(world: LambdaWorld, client: UnkeyClient) -> dict[str, Any]:
    """K in a secret of its own, as tests/unit/test_rotation_over_secretsmanager_double does."""
    original = client.create_key(world.api_id, meta={"team": "billing"})
    value = json.dumps(key_fields(original))
    arn = str(world.sm.create_secret(Name="unkey/sim/plain", SecretString=value)["ARN"])
    return _started(world, arn, original.key_id, None)


def alias_secret(world: LambdaWorld, client: UnkeyClient) -> dict[str, Any]:
    """K provisioned by the library, the Lambda's secret being the store's alias secret of K."""
    first = provision(client, world.sm_store, world.api_id, alias=ALIAS, retry=world.retry)
    name = world.sm_store.alias_location(api_id=world.api_id, alias=ALIAS)
    arn = str(world.sm.describe_secret(SecretId=name)["ARN"])
    return _started(world, arn, first.key_id, None)


def _started(world: LambdaWorld, arn: str, key_id: str, expires: int | None) -> dict[str, Any]:
    token = world.sm.start_rotation(arn)
    return {"arn": arn, "K": key_id, "expires": expires, "token": token, "tokens": [token]}


# -- actors ---------------------------------------------------------------------------------------

Body = Callable[[LambdaWorld, dict[str, Any], UnkeyClient], Any]


@dataclass(frozen=True)
class LambdaActor:
    """An actor: ``steps`` of the Lambda with the set-up's token, or a library ``call``."""

    name: str
    steps: tuple[str, ...] = ()
    call: Body | None = None
    host: str = "h1"

    def run(self, world: LambdaWorld, ctx: dict[str, Any], client: UnkeyClient) -> Any:
        """Invoke each step in turn (noting the one in flight), or the library call."""
        if self.call is not None:
            return self.call(world, ctx, client)
        rotator = world.rotator(client)
        results = []
        for step in self.steps:
            ctx[self.name] = step
            results.append(rotator.handle(_event(ctx["arn"], ctx["token"], step)))
        ctx[self.name] = None
        return results


def _event(arn: str, token: str, step: str) -> dict[str, str]:
    return {"SecretId": arn, "ClientRequestToken": token, "Step": step}


def library_rotate(world: LambdaWorld, ctx: dict[str, Any], client: UnkeyClient) -> Any:
    """The library's rotation of the alias the Lambda's secret is."""
    return rotate(
        client,
        world.sm_store,
        world.api_id,
        alias=ALIAS,
        clock=world.clock,
        retry=world.retry,
        grace_period=GRACE,
    )


@dataclass(frozen=True)
class LambdaScenario:
    """A Lambda scenario: its actors and how its secret and K are set up."""

    name: str
    actors: tuple[LambdaActor, ...]
    setup: Callable[[LambdaWorld, UnkeyClient], dict[str, Any]] = plain_secret


LAMBDA_SCENARIOS: dict[str, LambdaScenario] = {
    s.name: s
    for s in (
        LambdaScenario("lambda-rotate", (LambdaActor("L", STEPS),)),
        LambdaScenario("lambda-rotate alias", (LambdaActor("L", STEPS),), setup=alias_secret),
        LambdaScenario(
            "lambda-create x2 same token",
            (LambdaActor("A", ("createSecret",)), LambdaActor("B", STEPS)),
        ),
        LambdaScenario(
            "lambda x library-rotate",
            (LambdaActor("L", STEPS), LambdaActor("R", call=library_rotate)),
            setup=alias_secret,
        ),
    )
}


# -- one run --------------------------------------------------------------------------------------


@dataclass
class Played:
    """One schedule played out, before recovery: the world, the set-up's context, the run."""

    world: LambdaWorld
    ctx: dict[str, Any]
    run: Run
    outcomes: list[Outcome]


@contextlib.contextmanager
def play(scenario: LambdaScenario, prefix: list[Pick], fault: Fault | None) -> Iterator[Played]:
    """Set ``scenario`` up and run its actors under one schedule; the world is open inside."""
    world = LambdaWorld(prefix, fault)
    token = PROCESSES.set(PROCESSES.get())
    runner = RUNNER.set(RUNNER.get())
    run = Run(scenario.name, prefix, fault)
    try:
        world.as_process()
        ctx = scenario.setup(world, world.client())
        for actor in scenario.actors:
            world.actor(
                actor.name, lambda client, a=actor: a.run(world, ctx, client), host=actor.host
            )
        outcomes = schedule(world, run)
        yield Played(world, ctx, run, outcomes)
    finally:
        world.close()
        PROCESSES.reset(token)
        RUNNER.reset(runner)


def run_lambda_one(scenario: LambdaScenario, prefix: list[Pick], fault: Fault | None) -> Run:
    """Run ``scenario`` under one schedule, recover as Secrets Manager does, and judge it."""
    with play(scenario, prefix, fault) as played:
        run = played.run
        if not run.problems:
            outcomes = played.outcomes
            outcomes += recover_lambda(played.world, scenario, played.ctx, outcomes)
            run.problems = judge_lambda(played.world, played.ctx, outcomes)
        return run


def recover_lambda(
    world: LambdaWorld, scenario: LambdaScenario, ctx: dict[str, Any], outcomes: list[Outcome]
) -> list[Outcome]:
    """Re-invoke what failed or was killed, as Secrets Manager (or the README) says."""
    later: list[Outcome] = []
    pending = [a for a, o in zip(scenario.actors, outcomes, strict=True) if _failed(a, o)]
    for round_ in range(4):
        if not pending:
            break
        left = []
        for actor in pending:
            world.as_process(actor.host)
            client = world.client()
            try:
                if actor.call is not None:
                    result = actor.call(world, ctx, client)
                else:
                    result = _resume(world, ctx, actor, client, fresh=round_ > 0)
            except Exception as exc:  # noqa: BLE001 (judged)
                later.append(Outcome(actor.name, error=exc, recovery=True))
                # Another run's claim is waited out (its lease), as the README says.
                # A secret the Lambda rotates is refused by the library for good: final.
                lambda_owned = "RotationEnabled" in str(exc)
                if not lambda_owned and (
                    actor.call is None
                    or isinstance(exc, RotationConflictError)
                    or rerun(exc, False)
                ):
                    left.append(actor)
                continue
            later.append(Outcome(actor.name, result, recovery=True))
        pending = left
        world.clock.sleep(DEFAULT_LEASE.total_seconds() + 1)
    if pending:
        later.append(Outcome("recovery", error=RuntimeError("a rotation never completed")))
    last: dict[str, Outcome] = {}
    for outcome in later:
        last[outcome.actor] = outcome
    return list(last.values())


def _failed(actor: LambdaActor, outcome: Outcome) -> bool:
    if actor.call is not None:
        return rerun(outcome.error, outcome.killed)
    return outcome.killed or outcome.error is not None


def _resume(
    world: LambdaWorld, ctx: dict[str, Any], actor: LambdaActor, client: UnkeyClient, *, fresh: bool
) -> Any:
    """The step that failed again with the same token and the rest; or a fresh rotation."""
    rotator = world.rotator(client)
    if fresh:
        ctx["token"] = world.sm.start_rotation(ctx["arn"])
        ctx["tokens"].append(ctx["token"])
        steps: tuple[str, ...] = STEPS
    else:
        failed = ctx.get(actor.name) or actor.steps[0]
        steps = STEPS[STEPS.index(failed) :]
    return [rotator.handle(_event(ctx["arn"], ctx["token"], step)) for step in steps]


# -- the judge ------------------------------------------------------------------------------------


def judge_lambda(world: LambdaWorld, ctx: dict[str, Any], outcomes: list[Outcome]) -> list[str]:
    """Every broken promise of the Lambda's end state, one line each (empty: all kept)."""
    problems: list[str] = []
    arn, expires = ctx["arn"], ctx["expires"]
    grace_end = world.clock.ms() + int(GRACE.total_seconds() * 1000)
    keys = {k.key_id: k for k in world.emulator.keys(world.api_id)}
    stages = world.stages(arn)
    holders = {stage: v for v, labels in stages.items() for stage in labels}
    current: str | None = None
    value = world.value(arn, holders["AWSCURRENT"]) if "AWSCURRENT" in holders else None
    if value is None:
        problems.append("AWSCURRENT holds no key")
    else:
        current = value["key_id"]
        key = keys.get(current)  # type: ignore[arg-type]
        if key is None or key.deleted:
            problems.append(f"AWSCURRENT holds {current}, deleted in Unkey")
        elif not key.enabled:
            problems.append(f"AWSCURRENT holds {current}, disabled in Unkey")
        elif key.hash != sha256(value["key"]):
            problems.append(f"AWSCURRENT holds a value that is not key {current}")
        elif key.expires != expires:
            problems.append(
                f"AWSCURRENT holds {current}, which expires at {key.expires} in Unkey, not at "
                f"the original's {expires}"
            )
        if value.get("expires") != expires:
            problems.append(f"AWSCURRENT's value says expires {value.get('expires')}")
    if "AWSPENDING" in holders:
        problems.append(f"AWSPENDING left on version {holders['AWSPENDING']}")
    named = _stored_keys(world)
    for key in keys.values():
        if key.deleted or not key.enabled or key.key_id == current:
            continue
        if key.expires is None or key.expires > grace_end:
            where = "stored" if key.key_id in named else "unstored"
            problems.append(
                f"key {key.key_id} ({where}, not current) stays valid "
                + ("for good" if key.expires is None else f"until {key.expires}")
            )
    for key_id, where in sorted(named.items()):
        key = keys.get(key_id)
        if key is not None and key.deleted:
            problems.append(f"key {key_id} is named by {where} and was deleted")
    for outcome in outcomes:
        problems.extend(_reported(outcome, keys, current, grace_end))
    problems.extend(_metrics_problems(world, arn))
    return problems


def _metrics_problems(world: LambdaWorld, arn: str) -> list[str]:
    """Each step, killed or failed ones too, wrote one valid EMF document about ``arn``."""
    problems = []
    for number, line in enumerate(world.metrics, start=1):
        try:
            document = emf.validate(line, now=world.clock())
        except (AssertionError, jsonschema.ValidationError) as exc:
            problems.append(f"metrics document {number} is not valid EMF: {exc}")
            continue
        if document["SecretId"] != arn:
            problems.append(f"metrics document {number} names {document['SecretId']}")
    if not world.metrics:
        problems.append("no step wrote a metrics document")
    return problems


def _stored_keys(world: LambdaWorld) -> dict[str, str]:
    """Every key a labelled version of any secret holds: key_id -> where."""
    found: dict[str, str] = {}
    for name in world.sm.names():
        for version, labels in world.sm.versions(name, include_deprecated=False).items():
            value = world.value(name, version)
            if value is not None and isinstance(value.get("key_id"), str):
                found.setdefault(value["key_id"], f"{name}@{'/'.join(labels)}")
    return found


def _reported(
    outcome: Outcome, keys: dict[str, Any], current: str | None, grace_end: int
) -> list[str]:
    who, escaped = reporter(outcome)
    if escaped is not None:
        return [escaped]
    result = outcome.result
    problems = []
    if isinstance(result, RotationResult):
        new, old = keys.get(result.key_id), keys.get(result.original_key_id)
        if new is None or new.deleted:
            problems.append(f"{who}: reported {result.outcome} to {result.key_id}, deleted")
        elif result.key_id != current and (new.expires is None or new.expires > grace_end):
            problems.append(
                f"{who}: reported {result.outcome} to {result.key_id}, which is not current "
                "and stays valid"
            )
        if stays_valid(old, grace_end):
            problems.append(
                f"{who}: reported {result.outcome} from {result.original_key_id}, which stays "
                "valid past the grace period"
            )
    return problems


# -- exploration ----------------------------------------------------------------------------------


def lambda_faults_for(labels: tuple[str, ...]) -> Iterator[tuple[int, str, str | None]]:
    """Every (point, fault, label) an actor's points allow: a kill anywhere, the rest by kind."""
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        kind, _, operation = label.partition(":")
        if kind == "unkey":
            kinds: tuple[str, ...] = UNKEY_FAULTS
        elif operation in SM_WRITES:
            kinds = SM_WRITE_FAULTS
        else:
            kinds = SM_READ_FAULTS
        for fault in kinds:
            yield seen[label], fault, label
    yield len(labels) + 1, "kill", None


def explore_lambda(
    scenario: LambdaScenario, bound: int, *, faults: bool, fault_bound: int
) -> Iterator[Run]:
    """Every schedule of ``scenario`` within the bounds, as :func:`explore.explore` does."""
    return search(
        lambda prefix, fault: run_lambda_one(scenario, prefix, fault),
        lambda_faults_for,
        bound,
        faults=faults,
        fault_bound=fault_bound,
    )


@dataclass
class Tally:
    """Problems found by kind (the text before the first key id), with one replay each."""

    runs: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, run: Run) -> None:
        """Count ``run`` and its problems."""
        self.runs += 1
        for problem in run.problems:
            kind = _kind(problem)
            self.kinds[kind] = self.kinds.get(kind, 0) + 1
            self.first.setdefault(kind, f"{problem} :: {run.replay()}")


def _kind(problem: str) -> str:
    import re

    return re.sub(r"key_[A-Za-z0-9]+|\d{6,}|[0-9a-f-]{36}", "*", problem)
