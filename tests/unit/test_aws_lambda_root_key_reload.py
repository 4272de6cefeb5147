"""The Rotator's root key reload, one step at a time and across threads (no servers).

Against InMemorySecretsManager and the in-process emulator; the functional tests in
``tests/functional/test_aws_lambda_root_key.py`` cover the handler end to end.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from unkey_secrets import ConfigurationError, RotationStepError, UnkeyClient
from unkey_secrets._payload import key_fields
from unkey_secrets.aws_lambda import RotationConfig, Rotator
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

WAIT = 30  # seconds a thread may wait for another before the test fails


class GatedTransport(EmulatorTransport):
    """The emulator, with its first request held until ``release`` is set; knows its close."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.closed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.entered.is_set():
            self.entered.set()
            if not self.release.wait(WAIT):
                raise AssertionError("the held request was never released")
        return super().handle_request(request)

    def close(self) -> None:
        self.closed = True


@dataclass
class Reloads:
    """A ``reload_unkey`` that reads ``root_key`` and counts its calls."""

    emulator: Emulator
    root_key: str
    calls: int = 0
    made: list[UnkeyClient] = field(default_factory=list)

    def __call__(self) -> UnkeyClient | None:
        self.calls += 1
        client = client_for(self.emulator, self.root_key, EmulatorTransport(self.emulator))
        self.made.append(client)
        return client


def client_for(emulator: Emulator, root_key: str, transport: httpx.BaseTransport) -> UnkeyClient:
    return UnkeyClient(
        root_key, base_url="http://127.0.0.1", transport=transport, sleep=lambda _: None
    )


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


def secret_holding_a_key(sm: InMemorySecretsManager, emulator: Emulator, api_id: str) -> str:
    with client_for(emulator, emulator.root_key, EmulatorTransport(emulator)) as unkey:
        original = unkey.create_key(api_id)
    value = json.dumps(key_fields(original))
    return str(sm.create_secret(Name=f"unkey/{uuid.uuid4().hex}", SecretString=value)["ARN"])


def create_event(sm: InMemorySecretsManager, arn: str) -> dict[str, str]:
    token = sm.start_rotation(arn)
    return {"SecretId": arn, "ClientRequestToken": token, "Step": "createSecret"}


@pytest.fixture
def gated(emulator: Emulator) -> Iterator[GatedTransport]:
    transport = GatedTransport(emulator)
    yield transport
    transport.release.set()


def test_two_steps_refused_together_read_the_root_key_once_and_close_the_old_client_last(
    emulator: Emulator, gated: GatedTransport, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="unkey_secrets.aws_lambda")
    api_id = emulator.create_api("rotation")
    old_root, new_root = emulator.add_root_key(["*"]), emulator.add_root_key(["*"])
    sm = InMemorySecretsManager()
    first, second = (secret_holding_a_key(sm, emulator, api_id) for _ in range(2))
    reloads = Reloads(emulator, new_root)
    rotator = Rotator(
        sm, client_for(emulator, old_root, gated), RotationConfig(), reload_unkey=reloads
    )
    emulator.delete_root_key(old_root)
    results: dict[str, dict[str, str | None]] = {}

    def run(arn: str) -> None:
        results[arn] = rotator.handle(create_event(sm, arn))

    # The second secret's step holds its first request, made with the old root key, while the
    # first secret's step is refused, reads the root key again and finishes.
    held = threading.Thread(target=run, args=(second,))
    held.start()
    assert gated.entered.wait(WAIT)
    run(first)
    assert results[first]["outcome"] == "rerolled"
    assert reloads.calls == 1
    assert rotator.unkey is reloads.made[0]
    assert not gated.closed, "a step still running uses the old client: it stays open"

    gated.release.set()
    held.join(WAIT)
    assert not held.is_alive()
    assert results[second]["outcome"] == "rerolled"
    assert reloads.calls == 1, "the refused step used the root key the other step read"
    assert gated.closed, "the old client is closed once no step uses it"
    notes = [json.loads(r.getMessage()).get("warnings") for r in caplog.records]
    assert notes == [
        [
            "Unkey refused the root key (keys.getKey answered 401); read it again from its "
            "secret: a new root key; ran the step again"
        ],
        [
            "Unkey refused the root key (keys.getKey answered 401); another step had read it "
            "again; ran the step again"
        ],
    ]
    rotator.close()
    assert reloads.made[0]._wire.http.is_closed


def test_a_root_key_that_cannot_be_read_again_fails_the_step_with_both_reasons(
    emulator: Emulator,
) -> None:
    api_id = emulator.create_api("rotation")
    old_root = emulator.add_root_key(["*"])
    sm = InMemorySecretsManager()
    arn = secret_holding_a_key(sm, emulator, api_id)
    calls = []

    def unreadable() -> UnkeyClient | None:
        calls.append(1)
        raise ConfigurationError("could not read the Unkey root key from unkey/root: denied")

    unkey = client_for(emulator, old_root, EmulatorTransport(emulator))
    rotator = Rotator(sm, unkey, RotationConfig(), reload_unkey=unreadable)
    emulator.delete_root_key(old_root)

    with pytest.raises(RotationStepError) as raised:
        rotator.handle(create_event(sm, arn))

    assert calls == [1]
    assert str(raised.value) == (
        "Unkey refused the root key (keys.getKey answered 401) and reading it again failed: "
        "ConfigurationError: could not read the Unkey root key from unkey/root: denied"
    )
    assert raised.value.step == "createSecret"
    assert rotator.unkey is unkey
