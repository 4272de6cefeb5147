"""The rotation Lambda's root key changes under a running container (issue 16, item 2).

The handler reads the Unkey root key from its secret at the first invocation and keeps it. An
operator rotates the root key: a new one into the secret (AWSCURRENT), the old one deleted in
Unkey. At the first 401/403 the handler reads the secret again, once, and runs the step again
with what it read; a root key still refused then fails the step with a clear error. Against
moto server and the Unkey emulator, through ``unkey_secrets.aws_lambda.handler``.
"""

from __future__ import annotations

import collections
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from unkey_secrets import RotationStepError, StoredKey, UnkeyClient
from unkey_secrets._payload import key_fields, parse_key_json
from unkey_secrets.rotation.core import MARKER_META_KEY
from unkey_secrets.testing.emulator import Emulator, EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey

from ._rotation_harness import STEPS, SecretsManagerSim
from .test_aws_lambda import CLEAN_ROTATION, _failure, _texts_in, new_secret

#: What this function's root key needs (docs/guides/scheduled-rotation.md).
PERMISSIONS = (
    "api.*.create_key",
    "api.*.read_key",
    "api.*.update_key",
    "api.*.delete_key",
    "api.*.verify_key",
    "api.*.read_api",
)
OUTCOMES = ["rerolled", "nothing-to-do", "valid", "finished"]


@dataclass
class Container:
    """One Lambda container's world: the rotated secret, the root key's secret, the emulator."""

    sim: SecretsManagerSim
    sm: Any
    root_arn: str
    emulator: Emulator
    unkey: UnkeyClient  # the emulator's own root key: the test's view of Unkey
    api_id: str
    #: The handler's GetSecretValue calls on the root key's secret.
    root_reads: list[str] = field(default_factory=list)
    #: Every root key the test made, to look for in errors and logs.
    root_keys: list[str] = field(default_factory=list)

    def step(self, token: str, step: str) -> dict[str, str | None]:
        from unkey_secrets import aws_lambda

        return aws_lambda.handler(self.sim.event(token, step), None)

    def rotate(self) -> tuple[list[str | None], list[int]]:
        """One rotation through the handler: each step's outcome and its root key reads."""
        token = self.sim.start()
        outcomes, reads = [], []
        for step in STEPS:
            before = len(self.root_reads)
            outcomes.append(self.step(token, step)["outcome"])
            reads.append(len(self.root_reads) - before)
        return outcomes, reads

    def new_root_key(self, permissions: tuple[str, ...] = PERMISSIONS) -> str:
        root_key = self.emulator.add_root_key(permissions)
        self.root_keys.append(root_key)
        return root_key

    def put_root_key(self, root_key: str) -> None:
        """What an operator's PutSecretValue does: the new value becomes AWSCURRENT."""
        self.sm.put_secret_value(SecretId=self.root_arn, SecretString=root_key)

    def current(self) -> StoredKey:
        value = self.sim.value(VersionStage="AWSCURRENT")
        return parse_key_json(value, store="aws", location=self.sim.arn)

    def live_keys(self) -> set[str]:
        """Keys of the API that would verify right now."""
        now = int(time.time() * 1000)
        return {
            k.key_id
            for k in self.emulator.keys(self.api_id)
            if not k.deleted and k.enabled and (k.expires is None or k.expires > now)
        }


@pytest.fixture
def container(
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_emulator: LocalUnkey,
    unkey_api_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Container]:
    import boto3

    from unkey_secrets import aws_lambda

    sm = moto_server.client("secretsmanager")
    first = unkey_emulator.emulator.add_root_key(PERMISSIONS)
    root_arn = sm.create_secret(
        Name=f"unkey/root/{uuid.uuid4().hex}", SecretString=json.dumps({"root_key": first})
    )["ARN"]
    # The handler makes its client from boto3's default session: a session of the test's own,
    # whose event hooks every client made from it inherits, counts the root key's reads.
    session = boto3.Session()
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", session)
    reads: list[str] = []

    def counted(params: dict[str, Any], **_: Any) -> None:
        if params.get("SecretId") == root_arn:
            reads.append(root_arn)

    session.events.register("before-parameter-build.secrets-manager.GetSecretValue", counted)
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": moto_server.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "UNKEY_ROOT_KEY_SECRET_ID": root_arn,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    aws_lambda._RUNTIME.reset()
    with unkey_emulator.client() as unkey:
        original = unkey.create_key(unkey_api_id, meta={"team": "billing"})
        sim = new_secret(sm, moto_server, json.dumps(key_fields(original)))
        yield Container(
            sim, sm, root_arn, unkey_emulator.emulator, unkey, unkey_api_id, reads, [first]
        )
    aws_lambda._RUNTIME.reset()


def rotate_the_root_key(container: Container, permissions: tuple[str, ...] = PERMISSIONS) -> None:
    """An operator's root key rotation: a new root key into the secret, the old one deleted."""
    old = container.root_keys[-1]
    container.put_root_key(container.new_root_key(permissions))
    container.emulator.delete_root_key(old)


def test_a_rotated_root_key_is_read_again_and_the_next_rotation_finishes(
    container: Container, caplog: pytest.LogCaptureFixture
) -> None:
    assert container.rotate() == (OUTCOMES, [1, 0, 0, 0])
    rotated_once = container.current()
    rotate_the_root_key(container)
    caplog.set_level(logging.INFO, logger="unkey_secrets.aws_lambda")
    caplog.clear()

    # In the same process: the first Unkey request is refused (401), the secret is read again
    # and createSecret runs again with the new root key.
    assert container.rotate() == (OUTCOMES, [1, 0, 0, 0])

    current = container.current()
    assert current.rerolled_from == rotated_once.key_id
    assert container.sim.holder("AWSPENDING") is None
    assert container.unkey.verify_key(current.secret).valid
    assert container.live_keys() <= {
        rotated_once.rerolled_from,
        rotated_once.key_id,
        current.key_id,
    }, "no key but the stored ones is valid"
    lines = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "unkey_secrets.aws_lambda"
    ]
    assert [line["outcome"] for line in lines] == OUTCOMES, "one line per step, no error"
    (warning,) = lines[0]["warnings"]
    assert warning == (
        "Unkey refused the root key (keys.getKey answered 401); read it again from its secret: "
        "a new root key; ran the step again"
    )
    assert not any("warnings" in line for line in lines[1:])
    text = caplog.text
    assert not any(root_key in text for root_key in container.root_keys)


def test_warm_invocations_make_no_extra_call(container: Container) -> None:
    from unkey_secrets import aws_lambda

    assert container.rotate() == (OUTCOMES, [1, 0, 0, 0]), "the cold start reads it"
    assert container.rotate() == (OUTCOMES, [0, 0, 0, 0])
    rotate_the_root_key(container)
    assert container.rotate() == (OUTCOMES, [1, 0, 0, 0]), "once, at the refusal"

    # Warm again with the new root key: exactly a clean rotation's calls, the root key's
    # secret never read.
    calls: list[str] = []
    client = aws_lambda._RUNTIME.rotator().secrets.client
    client.meta.events.register(
        "before-call.secrets-manager", lambda model, **_: calls.append("aws." + model.name)
    )
    unkey_before = collections.Counter(container.emulator.calls)
    assert container.rotate() == (OUTCOMES, [0, 0, 0, 0])
    unkey_calls = collections.Counter(container.emulator.calls) - unkey_before
    assert calls == [c for c in CLEAN_ROTATION if c.startswith("aws.")]
    expected = collections.Counter(
        c.removeprefix("unkey.") for c in CLEAN_ROTATION if c.startswith("unkey.")
    )
    assert unkey_calls == expected


@pytest.mark.parametrize(
    ("change", "refusals"),
    [
        # The old root key deleted and the secret not updated: the same key, 401 twice.
        ("deleted", "401 then 401"),
        # A new root key that may read keys but not update them: 401, then 403.
        ("replaced-without-update_key", "401 then 403"),
    ],
)
def test_a_root_key_still_refused_after_one_read_fails_the_step_clearly(
    container: Container, change: str, refusals: str
) -> None:
    assert container.rotate()[0] == OUTCOMES
    before = container.current()
    if change == "deleted":
        container.emulator.delete_root_key(container.root_keys[0])
    else:
        rotate_the_root_key(container, ("api.*.read_key",))
    token = container.sim.start()
    reads = len(container.root_reads)

    exc = _failure(lambda: container.step(token, "createSecret"))

    assert len(container.root_reads) == reads + 1, "the secret is read again exactly once"
    assert isinstance(exc, RotationStepError), repr(exc)
    message = str(exc)
    first, second = refusals.split(" then ")
    assert f"keys.getKey answered {first}" in message, message
    updated = "keys.updateKey failed with 403" if second == "403" else "keys.getKey failed with 401"
    assert updated in message, message
    assert "refused it again" in message
    assert "UNKEY_ROOT_KEY_SECRET_ID" in message
    assert ("a new root key" if change != "deleted" else "unchanged") in message
    found = [w for w, t in _texts_in(exc) if any(k in t for k in container.root_keys)]
    assert found == [], "no root key in the error"
    # Unkey refused every change: the current key carries no marker and no hold, and no key
    # was made.
    untouched = container.emulator.key(before.key_id)
    assert MARKER_META_KEY not in (untouched.meta or {})
    assert untouched.expires is None
    assert container.live_keys() <= {before.key_id, before.rerolled_from}

    # The operator puts a working root key in; Secrets Manager's retry of the step reads it
    # (once more) and the rotation finishes without a new container.
    container.put_root_key(container.new_root_key())
    reads = len(container.root_reads)
    assert [container.step(token, step)["outcome"] for step in STEPS] == OUTCOMES
    assert len(container.root_reads) == reads + 1
    assert container.current().rerolled_from == before.key_id


def test_a_refusal_inside_a_step_error_is_read_again_too(container: Container) -> None:
    """finishSecret's first Unkey request can be a delete, whose failure it wraps."""
    assert container.rotate()[0] == OUTCOMES
    token = container.sim.start()
    for step in STEPS[:3]:
        container.step(token, step)
    pending = parse_key_json(
        container.sim.value(VersionId=token), store="aws", location=container.sim.arn
    )
    # Another writer replaced AWSCURRENT meanwhile: finishSecret gives the rotation up and
    # deletes its pending key first; then the root key is rotated.
    other = container.unkey.create_key(container.api_id)
    version, holder = str(uuid.uuid4()), container.sim.holder("AWSCURRENT")
    container.sm.put_secret_value(
        SecretId=container.sim.arn,
        ClientRequestToken=version,
        SecretString=json.dumps(key_fields(other)),
        VersionStages=["unkey-next"],
    )
    container.sm.update_secret_version_stage(
        SecretId=container.sim.arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=version,
        RemoveFromVersionId=holder,
    )
    rotate_the_root_key(container)
    reads = len(container.root_reads)

    exc = _failure(lambda: container.step(token, "finishSecret"))

    assert isinstance(exc, RotationStepError), repr(exc)
    assert "gave the rotation up" in str(exc), str(exc)
    assert len(container.root_reads) == reads + 1
    assert container.emulator.key(pending.key_id).deleted, "the pending key was deleted"
    assert container.sim.holder("AWSPENDING") is None


def _replace_current(container: Container) -> None:
    """Another writer (a library rotation, an operator) makes a new key AWSCURRENT."""
    other = container.unkey.create_key(container.api_id)
    version, holder = str(uuid.uuid4()), container.sim.holder("AWSCURRENT")
    container.sm.put_secret_value(
        SecretId=container.sim.arn,
        ClientRequestToken=version,
        SecretString=json.dumps(key_fields(other)),
        VersionStages=["unkey-next"],
    )
    container.sm.update_secret_version_stage(
        SecretId=container.sim.arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=version,
        RemoveFromVersionId=holder,
    )


@pytest.mark.parametrize("refusals", [1, 2])
def test_a_given_up_rotation_ends_its_original_when_ending_it_is_refused(
    container: Container, refusals: int
) -> None:
    """finishSecret gives the rotation up; Unkey refuses the getKey that ends the original.

    Once: the handler's own rerun (after reading the root key again) finishes the give-up.
    Twice: the step fails naming the refusal and the key left valid, and Secrets Manager's
    retry of finishSecret finishes it. Either way the original, which no version holds any
    more, ends within the grace period.
    """
    assert container.rotate()[0] == OUTCOMES
    token = container.sim.start()
    for step in STEPS[:3]:
        container.step(token, step)
    pending = parse_key_json(
        container.sim.value(VersionId=token), store="aws", location=container.sim.arn
    )
    original = pending.rerolled_from
    assert original is not None
    _replace_current(container)
    # The give-up's first getKey is the one ending the original (after the pending key's delete).
    container.emulator.faults.fail_next("keys.getKey", times=refusals, status=401)

    exc = _failure(lambda: container.step(token, "finishSecret"))

    assert isinstance(exc, RotationStepError), repr(exc)
    message = str(exc)
    if refusals == 2:
        assert "keys.getKey answered 401" in message, message
        assert "refused it again" in message, message
        assert f"ending key {original} failed" in message, message
        assert "it stays valid" in message, message
        assert container.sim.holder("AWSPENDING") == token, "the retry must pass the gate"
        assert container.emulator.key(original).expires is None
        # Secrets Manager retries the step.
        exc = _failure(lambda: container.step(token, "finishSecret"))
        assert isinstance(exc, RotationStepError), repr(exc)
        message = str(exc)
    assert "gave the rotation up" in message, message
    assert f"ended key {original}" in message, message
    assert container.sim.holder("AWSPENDING") is None
    assert container.emulator.key(pending.key_id).deleted, "the pending key was deleted"
    ended = container.emulator.key(original).expires
    grace_end = int(time.time() * 1000) + 24 * 3600 * 1000
    assert ended is not None, f"{original}, which no version holds, was never ended"
    assert ended <= grace_end, f"{original} ends within the grace period"
    found = [w for w, t in _texts_in(exc) if any(k in t for k in container.root_keys)]
    assert found == [], "no root key in the error"
