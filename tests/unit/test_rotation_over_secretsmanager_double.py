"""The rotation Lambda's four steps against InMemorySecretsManager and the in-process emulator."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from unkey_secrets import IssuedKey, StoredKey, UnkeyClient
from unkey_secrets._payload import key_fields, parse_key_json
from unkey_secrets.aws_lambda import RotationConfig, Rotator
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
MINUTE_MS = 60_000


@dataclass
class World:
    sm: InMemorySecretsManager
    emulator: Emulator
    unkey: UnkeyClient
    api_id: str
    rotator: Rotator

    def run(self, arn: str, token: str) -> list[dict[str, str | None]]:
        return [
            self.rotator.handle({"SecretId": arn, "ClientRequestToken": token, "Step": step})
            for step in STEPS
        ]

    def holder(self, arn: str, stage: str) -> str | None:
        stages = self.sm.describe_secret(SecretId=arn).get("VersionIdsToStages") or {}
        return next((v for v, labels in stages.items() if stage in labels), None)

    def key_at(self, arn: str, **selector: str) -> StoredKey:
        text = self.sm.get_secret_value(SecretId=arn, **selector)["SecretString"]
        return parse_key_json(text, store="aws", location=arn)


@pytest.fixture
def world() -> Iterator[World]:
    emulator = Emulator()
    api_id = emulator.create_api("rotation")
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=EmulatorTransport(emulator),
        sleep=lambda _: None,
    ) as unkey:
        sm = InMemorySecretsManager()
        yield World(sm, emulator, unkey, api_id, Rotator(sm, unkey, RotationConfig()))


def holding(world: World, original: IssuedKey) -> str:
    value = json.dumps(key_fields(original))
    return str(world.sm.create_secret(Name=f"unkey/{uuid.uuid4().hex}", SecretString=value)["ARN"])


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_rotation_ends_with_the_new_key_current_and_the_old_in_its_grace(world: World) -> None:
    original = world.unkey.create_key(world.api_id, meta={"team": "billing"})
    arn = holding(world, original)
    old_version = world.holder(arn, "AWSCURRENT")
    token = world.sm.start_rotation(arn)

    results = world.run(arn, token)

    assert [r["outcome"] for r in results] == ["rerolled", "nothing-to-do", "valid", "finished"]
    assert world.holder(arn, "AWSCURRENT") == token
    assert world.holder(arn, "AWSPREVIOUS") == old_version
    assert world.holder(arn, "AWSPENDING") is None
    current = world.key_at(arn)
    previous = world.key_at(arn, VersionStage="AWSPREVIOUS")
    assert current.rerolled_from == original.key_id
    assert previous.key_id == original.key_id
    new_id = current.key_id
    assert new_id != original.key_id
    assert world.unkey.verify_key(current.secret).valid
    old = world.emulator.key(original.key_id)
    grace_ms = int(RotationConfig().grace_period.total_seconds() * 1000)
    assert old.expires is not None, "the old key's expiry is cut to the grace period"
    assert now_ms() < old.expires <= now_ms() + grace_ms + MINUTE_MS
    assert world.emulator.key(new_id).expires is None, "the new key keeps no hold"
    assert world.emulator.key(new_id).meta == {"team": "billing"}, "the rotation's marks are gone"
    assert world.sm.calls.count("UpdateSecretVersionStage") == 2


def test_a_rotation_whose_put_answer_was_lost_still_converges(world: World) -> None:
    original = world.unkey.create_key(world.api_id)
    arn = holding(world, original)
    token = world.sm.start_rotation(arn)
    world.sm.fail_next("PutSecretValue", "ServiceUnavailable", after=True)

    world.run(arn, token)

    assert world.holder(arn, "AWSCURRENT") == token
    new_id = world.key_at(arn).key_id
    live = {k.key_id for k in world.emulator.keys(world.api_id) if not k.deleted}
    assert live == {original.key_id, new_id}, "the stored key was kept, nothing else made"


def test_a_first_key_for_a_secret_without_value(world: World) -> None:
    name = f"unkey/{uuid.uuid4().hex}"
    arn = str(
        world.sm.create_secret(Name=name, Tags=[{"Key": "unkey-api-id", "Value": world.api_id}])[
            "ARN"
        ]
    )
    token = world.sm.start_rotation(arn)

    results = world.run(arn, token)

    assert results[0]["outcome"] == "created-first-key"
    assert world.sm.versions(arn) == {token: ["AWSCURRENT"]}
    first = world.key_at(arn)
    assert world.unkey.verify_key(first.secret).valid, "enabled by setSecret"
