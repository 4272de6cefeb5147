"""The rotation Lambda against moto server and the Unkey emulator: protocol, crash matrix, races.

Every test ends with :func:`assert_converged` (or its bootstrap twin), which checks the promise:
exactly one new key stored and AWSCURRENT, no stray AWSPENDING, the original still valid with an
expiry no later than now + grace period, and no valid key of the API that no version holds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from unkey_secrets import IssuedKey, RotationStepError, UnkeyClient, UnkeySecretsError
from unkey_secrets._payload import key_fields, parse_key_json
from unkey_secrets.aws_lambda import RotationConfig, Rotator
from unkey_secrets.rotation.core import MARKER_META_KEY, PREVIOUS_EXPIRES_META_KEY
from unkey_secrets.testing.emulator import Emulator, EmulatorServer
from unkey_secrets.testing.moto import MotoServer

from ._rotation_harness import (
    STEPS,
    Killed,
    SecretsManagerSim,
    Tracer,
    short_circuit,
)

GRACE_MS = 86_400_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000

# The calls of one clean rotation, in order: the crash matrix kills the process at each of them.
CLEAN_ROTATION = [
    # createSecret
    "aws.DescribeSecret",
    "aws.GetSecretValue",  # the token's version: no value yet
    "aws.GetSecretValue",  # AWSCURRENT
    "unkey.keys.getKey",  # the original
    "unkey.keys.updateKey",  # marker + pre-rotation expiry into meta
    "unkey.keys.rerollKey",
    "unkey.keys.updateKey",  # the original's own expiry back
    "unkey.keys.updateKey",  # the new key's: its original's expiry, marks, and "alone"
    "aws.PutSecretValue",
    # No sweep (apis.listKeys, which grows with the API): no earlier attempt had marked the
    # original, so none made a key.
    # setSecret
    "aws.DescribeSecret",
    "aws.GetSecretValue",
    # testSecret
    "aws.DescribeSecret",
    "aws.GetSecretValue",
    "aws.GetSecretValue",  # AWSCURRENT: when its key was issued, for CurrentKeyAgeSeconds
    "unkey.keys.verifyKey",
    # finishSecret
    "aws.DescribeSecret",
    "aws.GetSecretValue",
    "aws.GetSecretValue",  # AWSCURRENT's version: still the key this rotation rerolled?
    "aws.UpdateSecretVersionStage",  # AWSCURRENT to the token
    "aws.UpdateSecretVersionStage",  # AWSPENDING off the token
    "aws.GetSecretValue",
    "unkey.keys.getKey",  # the new key: still marked? made by a createSecret alone? (no sweep)
    "unkey.keys.getKey",  # the original
    "unkey.keys.updateKey",  # the original's expiry: now + grace at most
    "unkey.keys.updateKey",  # the marker off the new key
]


@dataclass
class World:
    sim: SecretsManagerSim
    api_id: str
    original: IssuedKey
    emulator: Emulator
    unkey: UnkeyClient
    tracer: Tracer
    rotator: Rotator

    def run(
        self, token: str, steps: tuple[str, ...] = STEPS, rotator: Rotator | None = None
    ) -> None:
        for step in steps:
            (rotator or self.rotator).handle(self.sim.event(token, step))


@pytest.fixture
def tracer() -> Tracer:
    return Tracer()


@pytest.fixture
def sm(moto_server: MotoServer, tracer: Tracer) -> Any:
    client = moto_server.client("secretsmanager")
    tracer.watch_boto(client)
    return client


def make_unkey(server: EmulatorServer, tracer: Tracer | None = None) -> UnkeyClient:
    http = tracer.httpx_client() if tracer is not None else None
    return UnkeyClient(server.root_key, base_url=server.url, http_client=http, sleep=lambda _: None)


@pytest.fixture
def unkey(unkey_emulator_server: EmulatorServer, tracer: Tracer) -> Iterator[UnkeyClient]:
    client = make_unkey(unkey_emulator_server, tracer)
    yield client
    client._wire.http.close()


def new_secret(
    sm: Any, moto: MotoServer, value: str | None, tags: dict[str, str] | None = None
) -> SecretsManagerSim:
    options: dict[str, Any] = {"Name": f"unkey/rotation/{uuid.uuid4().hex}"}
    if value is not None:
        options["SecretString"] = value
    if tags:
        options["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return SecretsManagerSim(moto, sm, sm.create_secret(**options)["ARN"])


@pytest.fixture
def world(
    sm: Any,
    moto_server: MotoServer,
    unkey: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    tracer: Tracer,
) -> World:
    original = unkey.create_key(unkey_api_id, meta={"team": "billing"}, external_id="tenant_1")
    sim = new_secret(sm, moto_server, json.dumps(key_fields(original)))
    tracer.calls.clear()
    return World(sim, unkey_api_id, original, unkey_emulator, unkey, tracer, Rotator(sm, unkey))


def current_key(world: World) -> Any:
    return parse_key_json(world.sim.value(VersionStage="AWSCURRENT"), store="aws", location="")


def now_ms() -> int:
    return int(time.time() * 1000)


def stored_key_ids(world: World) -> set[str]:
    """Key_ids held by the secret's labelled versions (unlabelled ones are deprecated)."""
    values = world.sim.all_values()
    return {
        parse_key_json(values[v], store="aws", location=world.sim.arn).key_id
        for v in world.sim.stages()
        if v in values
    }


def live_keys(world: World) -> set[str]:
    """Keys of the API that would verify right now."""
    t = now_ms()
    return {
        k.key_id
        for k in world.emulator.keys(world.api_id)
        if not k.deleted and k.enabled and (k.expires is None or k.expires > t)
    }


def assert_converged(world: World, token: str) -> str:
    stages = world.sim.stages()
    assert world.sim.holder("AWSCURRENT") == token
    assert world.sim.holder("AWSPENDING") is None, stages
    current = parse_key_json(world.sim.value(VersionStage="AWSCURRENT"), store="aws", location="")
    new_id = current.key_id
    assert new_id != world.original.key_id
    assert current.rerolled_from == world.original.key_id
    assert stored_key_ids(world) == {world.original.key_id, new_id}, "exactly one new key"
    assert world.unkey.verify_key(current.secret).valid
    new = world.emulator.key(new_id)
    assert new.meta == {"team": "billing"}, "the rotation's marks are gone from the new key"
    assert new.expires is None, "the new key did not inherit a hold"
    original = world.emulator.key(world.original.key_id)
    assert not original.deleted
    assert original.expires is not None
    assert now_ms() < original.expires <= now_ms() + GRACE_MS + MINUTE_MS
    assert world.unkey.verify_key(world.original.secret).valid, "the original is in its grace"
    assert live_keys(world) <= stored_key_ids(world), "no valid key that no version holds"
    return new_id


# -- the protocol -----------------------------------------------------------------------------


def test_a_clean_rotation_makes_exactly_the_expected_calls(world: World) -> None:
    token = world.sim.start()
    world.run(token)
    assert world.tracer.calls == CLEAN_ROTATION
    assert_converged(world, token)
    assert world.sim.holder("AWSPREVIOUS") is not None


def test_each_step_returns_key_ids_and_outcomes(world: World) -> None:
    token = world.sim.start()
    results = [world.rotator.handle(world.sim.event(token, step)) for step in STEPS]
    assert [r["outcome"] for r in results] == ["rerolled", "nothing-to-do", "valid", "finished"]
    new_id = assert_converged(world, token)
    assert {r["key_id"] for r in results} == {new_id}
    assert {r["original_key_id"] for r in results} == {world.original.key_id}


def test_every_step_repeated_is_a_no_op_after_the_first(world: World) -> None:
    token = world.sim.start()
    for step in STEPS:
        world.rotator.handle(world.sim.event(token, step))
        world.rotator.handle(world.sim.event(token, step))
    assert_converged(world, token)
    world.tracer.calls.clear()
    world.run(token)
    assert "unkey.keys.updateKey" not in world.tracer.calls, "a finished rotation changes nothing"
    assert "unkey.keys.rerollKey" not in world.tracer.calls
    assert_converged(world, token)


def test_two_rotations_in_a_row(world: World) -> None:
    first = world.sim.start()
    world.run(first)
    first_new = assert_converged(world, first)
    second = world.sim.start()
    world.run(second)
    current = parse_key_json(world.sim.value(VersionStage="AWSCURRENT"), store="aws", location="")
    assert current.rerolled_from == first_new
    assert world.emulator.key(first_new).expires is not None
    # The first original is still in its grace period, held by a now unlabelled version.
    held = {
        parse_key_json(v, store="aws", location="").key_id for v in world.sim.all_values().values()
    }
    assert live_keys(world) <= held
    assert len(held) == 3


def test_the_original_keeps_an_earlier_expiry(world: World) -> None:
    soon = now_ms() + 3_600_000
    world.unkey.update_key(world.original.key_id, expires=soon)
    token = world.sim.start()
    world.run(token)
    assert world.emulator.key(world.original.key_id).expires == soon
    new_id = parse_key_json(
        world.sim.value(VersionStage="AWSCURRENT"), store="aws", location=""
    ).key_id
    assert world.emulator.key(new_id).expires == soon, "Unkey copies the expiry to the new key"


# -- the gates --------------------------------------------------------------------------------


def test_gate_rotation_disabled(world: World) -> None:
    from ._rotation_harness import backend_secret

    token = world.sim.start()
    backend_secret(world.sim.moto, world.sim.arn).rotation_enabled = False
    with pytest.raises(RotationStepError, match="rotation enabled"):
        world.rotator.handle(world.sim.event(token, "createSecret"))
    assert "unkey.keys.rerollKey" not in world.tracer.calls


def test_gate_unknown_token(world: World) -> None:
    world.sim.start()
    with pytest.raises(RotationStepError, match="has no version"):
        world.rotator.handle(world.sim.event(str(uuid.uuid4()), "createSecret"))


def test_gate_token_already_current_is_a_no_op(world: World) -> None:
    world.sim.start()
    current = world.sim.holder("AWSCURRENT")
    assert current is not None
    for step in STEPS:
        result = world.rotator.handle(world.sim.event(current, step))
        assert result["outcome"] == "already-current"
    assert not any(c.startswith("unkey.keys.") and "get" not in c for c in world.tracer.calls)
    assert world.sim.holder("AWSCURRENT") == current


def test_gate_token_not_pending(world: World) -> None:
    first = world.sim.start()
    world.run(first, ("createSecret",))
    second = world.sim.start()  # AWSPENDING moves on: the first token's version keeps no label
    # DescribeSecret lists labelled versions only: the first token's version is not there.
    with pytest.raises(RotationStepError, match="has no version"):
        world.rotator.handle(world.sim.event(first, "finishSecret"))
    world.run(second)
    assert_converged(world, second)


def test_bad_events_are_refused_without_echo(world: World) -> None:
    from unkey_secrets import InvalidInputError

    for event in (
        {},
        {"SecretId": world.sim.arn, "ClientRequestToken": "short", "Step": "createSecret"},
        {"SecretId": world.sim.arn, "ClientRequestToken": str(uuid.uuid4()), "Step": "dropTable"},
    ):
        with pytest.raises(InvalidInputError) as raised:
            world.rotator.handle(event)
        assert "dropTable" not in str(raised.value)


# -- testSecret -------------------------------------------------------------------------------


@pytest.mark.parametrize("breakage", ["disabled", "deleted"])
def test_test_secret_fails_on_a_dead_pending_key(world: World, breakage: str) -> None:
    token = world.sim.start()
    world.run(token, ("createSecret", "setSecret"))
    pending = parse_key_json(world.sim.value(VersionId=token), store="aws", location="")
    if breakage == "disabled":
        world.unkey.update_key(pending.key_id, enabled=False)
    else:
        world.unkey.delete_key(pending.key_id)
    with pytest.raises(RotationStepError, match=r"answered (DISABLED|NOT_FOUND)"):
        world.rotator.handle(world.sim.event(token, "testSecret"))
    assert world.sim.holder("AWSCURRENT") != token, "finishSecret never ran"
    assert world.unkey.verify_key(world.original.secret).valid, "the original is untouched"
    assert world.emulator.key(world.original.key_id).expires is None


def test_test_secret_checks_required_permissions(world: World, sm: Any, unkey: UnkeyClient) -> None:
    rotator = Rotator(sm, unkey, RotationConfig(verify_permissions="billing.write"))
    token = world.sim.start()
    world.run(token, ("createSecret", "setSecret"), rotator)
    with pytest.raises(RotationStepError, match="INSUFFICIENT_PERMISSIONS"):
        rotator.handle(world.sim.event(token, "testSecret"))


# -- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_creates_the_first_key_disabled_until_set_secret(
    sm: Any,
    moto_server: MotoServer,
    unkey: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    sim = new_secret(sm, moto_server, None, tags={"unkey-api-id": unkey_api_id})
    rotator = Rotator(sm, unkey, RotationConfig(prefix="live", external_id="tenant_9"))
    token = sim.start()
    rotator.handle(sim.event(token, "createSecret"))
    pending = parse_key_json(sim.value(VersionId=token), store="aws", location="")
    assert not unkey_emulator.key(pending.key_id).enabled
    for step in STEPS[1:]:
        rotator.handle(sim.event(token, step))
    assert sim.holder("AWSCURRENT") == token
    assert sim.holder("AWSPENDING") is None
    current = parse_key_json(sim.value(), store="aws", location="")
    assert current.key_id == pending.key_id
    assert current.secret.reveal().startswith("live_")
    assert unkey.verify_key(current.secret).valid
    record = unkey_emulator.key(current.key_id)
    assert record.meta in (None, {}), "no marker left behind"
    live = {k.key_id for k in unkey_emulator.keys(unkey_api_id) if not k.deleted}
    assert live == {current.key_id}


def test_bootstrap_needs_an_api_id(sm: Any, moto_server: MotoServer, unkey: UnkeyClient) -> None:
    from unkey_secrets import ConfigurationError

    sim = new_secret(sm, moto_server, None)
    token = sim.start()
    with pytest.raises(ConfigurationError, match="UNKEY_API_ID"):
        Rotator(sm, unkey).handle(sim.event(token, "createSecret"))


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("call", ["unkey.keys.createKey", "aws.PutSecretValue"])
def test_bootstrap_survives_a_kill(
    sm: Any,
    moto_server: MotoServer,
    unkey: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    tracer: Tracer,
    call: str,
    when: str,
) -> None:
    sim = new_secret(sm, moto_server, None)
    rotator = Rotator(sm, unkey, RotationConfig(api_id=unkey_api_id))
    token = sim.start()

    def die() -> None:
        raise Killed(call)

    tracer.on_call[(call, when)] = die
    with pytest.raises(Killed):
        rotator.handle(sim.event(token, "createSecret"))
    for step in STEPS:
        rotator.handle(sim.event(token, step))
    current = parse_key_json(sim.value(), store="aws", location="")
    live = {k.key_id for k in unkey_emulator.keys(unkey_api_id) if not k.deleted and k.enabled}
    assert live == {current.key_id}
    assert sim.holder("AWSPENDING") is None


# -- the crash matrix -------------------------------------------------------------------------


@pytest.mark.parametrize("retry", ["same-step", "whole-rotation"])
@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(
    "index", range(len(CLEAN_ROTATION)), ids=lambda i: f"{i:02d}-{CLEAN_ROTATION[i]}"
)
def test_a_kill_at_any_call_converges(world: World, index: int, when: str, retry: str) -> None:
    token = world.sim.start()
    world.tracer.kill_at = (index, when)
    killed_at = None
    for position, step in enumerate(STEPS):
        try:
            world.rotator.handle(world.sim.event(token, step))
        except Killed:
            killed_at = position
            break
    assert killed_at is not None, "the kill fired"
    # Secrets Manager retries: the failed invocation, then the rest; or the whole rotation.
    world.run(token, STEPS[killed_at:] if retry == "same-step" else STEPS)
    assert_converged(world, token)


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("index", [4, 5, 6, 7], ids=["marker", "reroll", "restore", "put"])
def test_a_kill_then_a_new_rotation_cleans_up_the_abandoned_one(
    world: World, index: int, when: str
) -> None:
    abandoned = world.sim.start()
    world.tracer.kill_at = (index, when)
    with pytest.raises(Killed):
        world.rotator.handle(world.sim.event(abandoned, "createSecret"))
    token = world.sim.start()  # the operator starts over; the first version loses AWSPENDING
    world.run(token)
    new_id = assert_converged(world, token)
    held = {new_id, world.original.key_id}
    leftovers = live_keys(world) - held
    assert not leftovers, "keys of the abandoned rotation were deleted"


def test_a_lost_reroll_answer_is_settled_at_once(world: World) -> None:
    token = world.sim.start()
    world.emulator.faults.drop_after_action("keys.rerollKey")
    with pytest.raises(RotationStepError, match=r"rerollKey got no clear answer.*; deleted key"):
        world.rotator.handle(world.sim.event(token, "createSecret"))
    assert live_keys(world) == {world.original.key_id}
    assert world.emulator.key(world.original.key_id).expires is None, "hold undone at once"
    world.run(token)
    assert_converged(world, token)


def die_after_the_reroll(world: World, token: str) -> str:
    """What a createSecret of ``token`` that died after its reroll left: the lost key's id."""
    marks = {"team": "billing", MARKER_META_KEY: token, PREVIOUS_EXPIRES_META_KEY: None}
    world.unkey.update_key(world.original.key_id, meta=marks)
    # The original on the dead attempt's hold: the next attempt takes it off.
    rerolled = world.unkey.reroll_key(
        world.original.key_id, expiration_ms=HOUR_MS, api_id=world.api_id
    )
    return rerolled.key_id


@pytest.mark.parametrize(
    "op", ["keys.getKey", "keys.updateKey", "keys.rerollKey", "apis.listKeys", "keys.verifyKey"]
)
def test_unkey_failing_for_a_while_converges(world: World, op: str) -> None:
    token = world.sim.start()
    if op == "apis.listKeys":
        # Only a rotation after a lost attempt lists the API's keys.
        lost = die_after_the_reroll(world, token)
    world.emulator.faults.fail_next(op, times=20, status=500)
    failures = 0
    for step in STEPS:
        for _attempt in range(3):
            try:
                world.rotator.handle(world.sim.event(token, step))
                break
            except UnkeySecretsError:
                failures += 1
    assert failures
    world.emulator.reset_faults()
    world.run(token)
    assert_converged(world, token)
    if op == "apis.listKeys":
        assert world.emulator.key(lost).deleted


def test_a_rotation_after_a_dead_attempt_deletes_its_key(world: World) -> None:
    token = world.sim.start()
    lost = die_after_the_reroll(world, token)
    world.run(token)
    assert_converged(world, token)
    assert world.emulator.key(lost).deleted
    assert "unkey.apis.listKeys" in world.tracer.calls


def test_a_put_that_fails_deletes_the_new_key(world: World) -> None:
    token = world.sim.start()
    with (
        short_circuit(world.sim.client, "PutSecretValue", "ThrottlingException"),
        pytest.raises(RotationStepError, match=r"PutSecretValue failed.*deleted new key"),
    ):
        world.rotator.handle(world.sim.event(token, "createSecret"))
    assert live_keys(world) == {world.original.key_id}
    assert world.emulator.key(world.original.key_id).expires is None
    world.run(token)
    assert_converged(world, token)


def test_a_put_that_landed_without_an_answer_is_kept(world: World) -> None:
    from botocore.exceptions import ReadTimeoutError

    token = world.sim.start()

    def lose_answer() -> None:
        raise ReadTimeoutError(endpoint_url=world.sim.moto.url)

    world.tracer.on_call[("aws.PutSecretValue", "after")] = lose_answer
    result = world.rotator.handle(world.sim.event(token, "createSecret"))
    assert result["outcome"] == "rerolled"
    world.run(token, STEPS[1:])
    assert_converged(world, token)


# -- overlapping rotations --------------------------------------------------------------------


@pytest.fixture
def rival(
    sm: Any, moto_server: MotoServer, unkey_emulator_server: EmulatorServer
) -> Iterator[Rotator]:
    """A second container: its own clients, no tracing."""
    client = make_unkey(unkey_emulator_server)
    yield Rotator(moto_server.client("secretsmanager"), client)
    client.close()


@pytest.mark.parametrize(
    ("pause", "rival_steps"),
    [
        (("unkey.keys.rerollKey", "after"), ("createSecret",)),
        (("unkey.keys.updateKey", "after"), ("createSecret",)),
        (("aws.PutSecretValue", "before"), ("createSecret",)),
        (("aws.PutSecretValue", "before"), STEPS),
        (("aws.PutSecretValue", "after"), ("createSecret",)),
    ],
    ids=["after-reroll", "after-marker", "before-put", "before-put-rival-finishes", "after-put"],
)
def test_two_invocations_with_the_same_token_overlap(
    world: World, rival: Rotator, pause: tuple[str, str], rival_steps: tuple[str, ...]
) -> None:
    token = world.sim.start()
    world.tracer.on_call[pause] = lambda: world.run(token, rival_steps, rival)
    world.run(token)
    assert_converged(world, token)


def test_two_tokens_overlap(world: World, rival: Rotator) -> None:
    first = world.sim.start()
    second_holder: list[str] = []

    def start_second() -> None:
        second_holder.append(world.sim.start())

    # The second rotation starts while the first is between its reroll and its put.
    world.tracer.on_call[("aws.PutSecretValue", "before")] = start_second
    with contextlib.suppress(RotationStepError):
        # AWS refuses or accepts a value for a version that lost its label; either is fine.
        world.rotator.handle(world.sim.event(first, "createSecret"))
    (second,) = second_holder
    # DescribeSecret lists labelled versions only: the first token's version is not there.
    with pytest.raises(RotationStepError, match="has no version"):
        world.rotator.handle(world.sim.event(first, "setSecret"))
    world.run(second, STEPS, rival)
    assert_converged(world, second)


# -- the Lambda entry point, logs and return values -------------------------------------------


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch,
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
    sm: Any,
) -> Iterator[None]:
    from unkey_secrets import aws_lambda

    root = sm.create_secret(
        Name=f"unkey/root/{uuid.uuid4().hex}",
        SecretString=json.dumps({"root_key": unkey_emulator_server.root_key}),
    )["ARN"]
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": moto_server.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "UNKEY_ROOT_KEY_SECRET_ID": root,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    aws_lambda._RUNTIME.reset()
    yield
    aws_lambda._RUNTIME.reset()


def test_the_handler_rotates_and_never_logs_or_returns_a_key(
    world: World, lambda_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    from unkey_secrets import aws_lambda

    caplog.set_level(logging.DEBUG)
    token = world.sim.start()
    results = [aws_lambda.handler(world.sim.event(token, step), None) for step in STEPS]
    rotator = aws_lambda._RUNTIME.rotator()
    assert aws_lambda._RUNTIME.rotator() is rotator, "clients are reused by warm invocations"
    new_id = assert_converged(world, token)

    new_key = parse_key_json(world.sim.value(), store="aws", location="").secret.reveal()
    plaintexts = [world.original.secret.reveal(), new_key]
    ours = [
        r
        for r in caplog.records
        if not r.name.startswith(("moto", "werkzeug", "unkey_secrets.testing"))
    ]
    text = "\n".join(r.getMessage() for r in ours) + json.dumps(results)
    for plaintext in plaintexts:
        assert plaintext not in text
    lines = [json.loads(r.getMessage()) for r in ours if r.name == "unkey_secrets.aws_lambda"]
    assert [line["step"] for line in lines] == list(STEPS)
    assert {line["secret"] for line in lines} == {world.sim.arn}
    assert all(line["client_request_token"] == token for line in lines)
    assert lines[0]["original_key_id"] == world.original.key_id
    assert lines[0]["key_id"] == new_id
    assert lines[0]["request_id"]


def test_a_failing_step_logs_one_error_line_without_the_key(
    world: World, lambda_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    from unkey_secrets import aws_lambda

    caplog.set_level(logging.INFO, logger="unkey_secrets.aws_lambda")
    token = world.sim.start()
    aws_lambda.handler(world.sim.event(token, "createSecret"), None)
    pending = parse_key_json(world.sim.value(VersionId=token), store="aws", location="")
    world.unkey.delete_key(pending.key_id)
    with pytest.raises(RotationStepError):
        aws_lambda.handler(world.sim.event(token, "testSecret"), None)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.levelno == logging.ERROR]
    assert line["outcome"] == "error"
    assert "NOT_FOUND" in line["error"]
    assert pending.secret.reveal() not in caplog.text


# -- a dropped connection: nothing the error carries may hold the key --------------------------


class DroppingProxy:
    """A loopback HTTP proxy to moto that drops the connection on every PutSecretValue.

    It reads the whole request, keeps its body (to learn the plaintext that was in flight) and
    closes the socket without a byte of answer; every other request is forwarded to moto.
    """

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading
        from urllib.parse import urlsplit

        parts = urlsplit(upstream)
        target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.dropped: list[bytes] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                import http.client

                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("X-Amz-Target", "").endswith(".PutSecretValue"):
                    proxy.dropped.append(body)
                    self.close_connection = True
                    return
                upstream = http.client.HTTPConnection(*target, timeout=30)
                try:
                    upstream.request("POST", self.path, body=body, headers=dict(self.headers))
                    answer = upstream.getresponse()
                    payload = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in {"content-length", "transfer-encoding", "connection"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet."""

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _failure(call: Any) -> BaseException:
    """Run ``call`` and return what it raised, from a frame that holds nothing of the test's."""
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 (the exception is the result)
        return exc
    raise AssertionError("expected the call to fail")


def _texts_in(exc: BaseException, limit: int = 8) -> Iterator[tuple[str, str]]:
    """Every string reachable from ``exc``: its chain, args and attributes, to ``limit`` deep."""
    seen: set[int] = set()
    pending: list[tuple[object, str, int]] = [(exc, "exc", 0)]
    while pending:
        obj, where, depth = pending.pop()
        if id(obj) in seen or depth > limit:
            continue
        seen.add(id(obj))
        if isinstance(obj, str):
            yield where, obj
            continue
        if isinstance(obj, (bytes, bytearray)):
            yield where, bytes(obj).decode("utf-8", "replace")
            continue
        if isinstance(obj, (type, type(json), type(_failure))) or obj is None:
            continue
        if isinstance(obj, BaseException):
            yield where, repr(obj)
            yield where, str(obj)
            pending.append((obj.args, f"{where}.args", depth + 1))
            for link in ("__cause__", "__context__"):
                # The chain does not count against the depth: each link is walked in full.
                pending.append((getattr(obj, link), f"{where}.{link}", depth))
        if isinstance(obj, dict):
            for key, value in obj.items():
                pending.append((key, f"{where}.keys()", depth + 1))
                pending.append((value, f"{where}[{key!r}]", depth + 1))
        elif isinstance(obj, (list, tuple, set, frozenset)):
            pending.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(obj))
        attributes = getattr(obj, "__dict__", None)
        if isinstance(attributes, dict):
            pending.extend(
                (value, f"{where}.{name}", depth + 1) for name, value in attributes.items()
            )


def test_a_dropped_put_leaves_no_key_in_the_error_chain_or_traceback_locals(
    world: World, lambda_env: None, moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unkey_secrets import aws_lambda

    proxy = DroppingProxy(moto_server.url)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        token = world.sim.start()
        event = world.sim.event(token, "createSecret")
        exc = _failure(lambda: aws_lambda.handler(event, None))
    finally:
        proxy.close()

    assert isinstance(exc, RotationStepError), repr(exc)
    assert "PutSecretValue failed" in str(exc)
    (body,) = proxy.dropped
    value = json.loads(json.loads(body)["SecretString"])
    plaintexts = [value["key"], world.original.secret.reveal()]
    assert value["key_id"] != world.original.key_id
    # The key that was in flight was deleted again; only the original is live.
    assert live_keys(world) == {world.original.key_id}

    leaks = [where for where, text in _texts_in(exc) if any(p in text for p in plaintexts)]
    assert leaks == []
    rendered = "".join(
        traceback.TracebackException(
            type(exc), exc, exc.__traceback__, capture_locals=True
        ).format()
    )
    # A bool, so a failure does not print the key it found.
    found = any(plaintext in rendered for plaintext in plaintexts)
    assert not found, "a plaintext is in the traceback rendered with its locals"
