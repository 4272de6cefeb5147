"""The Lambda lists the API's keys only when a lost attempt may have left one.

``apis.listKeys`` pages grow with the API. A rotation whose createSecret was its first attempt
makes none; one whose earlier attempt died after its reroll lists, and deletes that key.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

from unkey_secrets import UnkeyClient
from unkey_secrets._payload import key_fields
from unkey_secrets.aws_lambda import RotationConfig, Rotator
from unkey_secrets.aws_lambda.rotator import ALONE_META_KEY
from unkey_secrets.rotation.core import MARKER_META_KEY, PREVIOUS_EXPIRES_META_KEY
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
LIST = "apis.listKeys"


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def unkey(emulator: Emulator) -> Iterator[UnkeyClient]:
    transport = EmulatorTransport(emulator)
    with UnkeyClient(emulator.root_key, base_url="http://127.0.0.1", transport=transport) as c:
        yield c


def _secret(unkey: UnkeyClient, sm: InMemorySecretsManager, api_id: str) -> tuple[str, str]:
    original = unkey.create_key(api_id, meta={"team": "billing"})
    value = json.dumps(key_fields(original))
    arn = str(sm.create_secret(Name=f"unkey/{uuid.uuid4().hex}", SecretString=value)["ARN"])
    return arn, original.key_id


def _steps(rotator: Rotator, arn: str, token: str, emulator: Emulator) -> dict[str, int]:
    """Run the four steps; the listKeys pages each made."""
    listed = {}
    for step in STEPS:
        before = Counter(emulator.calls)
        rotator.handle({"SecretId": arn, "ClientRequestToken": token, "Step": step})
        listed[step] = emulator.calls[LIST] - before[LIST]
    return listed


def test_a_first_attempt_lists_nothing(emulator: Emulator, unkey: UnkeyClient) -> None:
    api_id = emulator.create_api("listing")
    for index in range(250):  # three pages of listKeys, were it called
        unkey.create_key(api_id, name=f"other-{index}")
    sm = InMemorySecretsManager()
    arn, original = _secret(unkey, sm, api_id)
    rotator = Rotator(sm, unkey, RotationConfig())
    for _ in range(2):
        token = sm.start_rotation(arn)
        assert _steps(rotator, arn, token, emulator) == dict.fromkeys(STEPS, 0)
    current = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    info = unkey.get_key(current["key_id"])
    # finishSecret took its marks off the new key, the one saying it was alone included.
    assert not {MARKER_META_KEY, PREVIOUS_EXPIRES_META_KEY, ALONE_META_KEY} & set(info.meta or {})
    assert info.meta == {"team": "billing"}
    assert current["key_id"] != original


def test_a_rotation_after_a_dead_attempt_lists_and_deletes_its_key(
    emulator: Emulator, unkey: UnkeyClient
) -> None:
    api_id = emulator.create_api("listing")
    sm = InMemorySecretsManager()
    arn, original = _secret(unkey, sm, api_id)
    token = sm.start_rotation(arn)
    # The first createSecret marked the original, rerolled it, and died before storing.
    marks = {"team": "billing", MARKER_META_KEY: token, PREVIOUS_EXPIRES_META_KEY: None}
    unkey.update_key(original, meta=marks)
    lost = unkey.reroll_key(original, expiration_ms=3_600_000, api_id=api_id).key_id

    listed = _steps(Rotator(sm, unkey, RotationConfig()), arn, token, emulator)

    assert listed["createSecret"] >= 1
    deleted = {k.key_id for k in emulator.keys(api_id) if k.deleted}
    assert lost in deleted
    current = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])["key_id"]
    assert current not in deleted
