"""The rotation Lambda's metrics as CloudWatch would read them, through the real handler.

``unkey_secrets.aws_lambda.handler`` runs against moto server and the Unkey emulator, built
from its environment as in Lambda, and its standard output (file descriptor 1, what Lambda
sends to CloudWatch Logs) is captured: every line must be an embedded metric format document
valid per the specification (tests/_emf.py), carrying the expected metrics, dimensions and
values for each step, and no key, root key or AWS credential anywhere.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests import _emf
from tests.security._canary import needles
from unkey_secrets import IssuedKey, RotationStepError, UnkeyClient
from unkey_secrets._payload import key_fields, parse_key_json
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey

from ._rotation_harness import STEPS, SecretsManagerSim

DAY = 86_400
#: Slack for a loaded machine between the test's clock and the handler's.
SLACK = 600


@dataclass
class Function:
    """One Lambda container's world: its environment, the test's clients, what it must hide."""

    moto: MotoServer
    sm: Any
    unkey: UnkeyClient
    api_id: str
    credentials: list[str]

    def secret(self, issued_days_ago: float) -> tuple[SecretsManagerSim, IssuedKey]:
        original = self.unkey.create_key(self.api_id, prefix="canary", meta={"team": "billing"})
        value = dict(key_fields(original))
        issued = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=issued_days_ago)
        value["issued_at"] = issued.isoformat()
        name = f"unkey/metrics/{uuid.uuid4().hex}"
        arn = self.sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
        return SecretsManagerSim(self.moto, self.sm, arn), original

    def step(self, sim: SecretsManagerSim, token: str, step: str) -> dict[str, str | None]:
        from unkey_secrets import aws_lambda

        return aws_lambda.handler(sim.event(token, step), None)

    def hidden(self, sim: SecretsManagerSim) -> list[str]:
        """What no output may hold: every key the secret held, the root key, the AWS keys."""
        keys = [
            parse_key_json(v, store="aws", location="").secret.reveal()
            for v in sim.all_values().values()
        ]
        return [needle for value in keys + self.credentials for needle in needles(value)]


@pytest.fixture
def function(
    moto_server: MotoServer,
    unkey_emulator_server: EmulatorServer,
    unkey_emulator: LocalUnkey,
    unkey_api_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Function]:
    from unkey_secrets import aws_lambda

    sm = moto_server.client("secretsmanager")
    root_key = unkey_emulator.emulator.add_root_key(["*"])
    root_arn = sm.create_secret(
        Name=f"unkey/root/{uuid.uuid4().hex}", SecretString=json.dumps({"root_key": root_key})
    )["ARN"]
    # The handler's AWS credentials: moto takes any, so they are canaries too.
    secret_access_key = "canary" + secrets.token_hex(20)
    session_token = "canary" + secrets.token_hex(32)
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": "AKIAMETRICSTESTS0001",
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_SESSION_TOKEN": session_token,
        "AWS_DEFAULT_REGION": moto_server.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "UNKEY_ROOT_KEY_SECRET_ID": root_arn,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("UNKEY_METRICS", raising=False)
    aws_lambda._RUNTIME.reset()
    try:
        with unkey_emulator.client() as unkey:
            yield Function(
                moto_server,
                sm,
                unkey,
                unkey_api_id,
                [root_key, secret_access_key, session_token],
            )
    finally:
        aws_lambda._RUNTIME.reset()


def _documents(out: str) -> list[dict[str, Any]]:
    """Every line of the handler's standard output, each an EMF document."""
    lines = [line for line in out.splitlines() if line]
    found = _emf.documents(out)
    assert len(found) == len(lines), "the handler writes nothing but EMF documents to stdout"
    return found


def _values(document: dict[str, Any]) -> dict[str, tuple[tuple[tuple[str, str], ...], str, Any]]:
    """{metric: (dimensions, unit, value)}: each metric is written under one dimension set."""
    data = _emf.data(document)
    assert {d.namespace for d in data} == {"UnkeySecrets"}
    out = {d.name: (d.dimensions, d.unit, d.value) for d in data}
    assert len(out) == len(data)
    return out


def test_a_rotation_writes_one_valid_document_per_step_and_no_secret(
    function: Function, capfd: pytest.CaptureFixture[str]
) -> None:
    sim, _ = function.secret(issued_days_ago=30)
    token = sim.start()
    capfd.readouterr()

    results = [function.step(sim, token, step) for step in STEPS]

    out, err = capfd.readouterr()
    documents = _documents(out)
    assert [d["Step"] for d in documents] == list(STEPS)
    arn = sim.arn
    for result, document in zip(results, documents, strict=True):
        step = str(result["step"])
        values = _values(document)
        assert values.pop("StepInvocations") == (
            (("Outcome", "succeeded"), ("SecretId", arn), ("Step", step)),
            "Count",
            1,
        )
        dimensions, unit, duration = values.pop("StepDuration")
        assert (dimensions, unit) == ((("SecretId", arn), ("Step", step)), "Milliseconds")
        assert 0 < duration < SLACK * 1000
        assert values.pop("KeysSwept") == ((("SecretId", arn),), "Count", 0)
        if step in ("testSecret", "finishSecret"):
            dimensions, unit, age = values.pop("CurrentKeyAgeSeconds")
            # The alarm's contract: UnkeySecrets/CurrentKeyAgeSeconds, SecretId alone, Seconds.
            assert (dimensions, unit) == ((("SecretId", arn),), "Seconds")
            # testSecret: the original is still current, 30 days old; finishSecret: the new key.
            low = 30 * DAY if step == "testSecret" else 0
            assert low <= age < low + SLACK, (step, age)
        assert values == {}, f"{step} wrote no other metric"
        assert document["StepOutcome"] == result["outcome"]
        assert document["ClientRequestToken"] == token
    assert [r["outcome"] for r in results] == ["rerolled", "nothing-to-do", "valid", "finished"]
    hidden = function.hidden(sim)
    assert len(hidden) == 3 * (2 + 3), "the original, the new key and three credentials"
    leaks = [needle for needle in hidden if needle in out or needle in err]
    assert leaks == [], "no key, root key or AWS credential in the output"


def test_a_failed_step_is_counted_as_failed_and_reports_the_aging_key(
    function: Function, capfd: pytest.CaptureFixture[str]
) -> None:
    sim, _ = function.secret(issued_days_ago=40)
    token = sim.start()
    created = function.step(sim, token, "createSecret")
    function.step(sim, token, "setSecret")
    # The new key no longer verifies: testSecret fails, and the 40-day-old key stays current.
    function.unkey.update_key(str(created["key_id"]), enabled=False)
    capfd.readouterr()

    with pytest.raises(RotationStepError, match="verifyKey"):
        function.step(sim, token, "testSecret")

    out, err = capfd.readouterr()
    (document,) = _documents(out)
    arn = sim.arn
    values = _values(document)
    assert values["StepInvocations"] == (
        (("Outcome", "failed"), ("SecretId", arn), ("Step", "testSecret")),
        "Count",
        1,
    )
    dimensions, unit, age = values["CurrentKeyAgeSeconds"]
    assert (dimensions, unit) == ((("SecretId", arn),), "Seconds")
    assert 40 * DAY <= age < 40 * DAY + SLACK
    assert document["StepOutcome"] == "error"
    assert "error" not in document, "no error text in a metric document"
    leaks = [needle for needle in function.hidden(sim) if needle in out or needle in err]
    assert leaks == []

    # Once the key verifies again, Secrets Manager's retry succeeds and says so.
    function.unkey.update_key(str(created["key_id"]), enabled=True)
    function.step(sim, token, "testSecret")
    (document,) = _documents(capfd.readouterr().out)
    assert document["Outcome"] == "succeeded"


def test_unkey_metrics_false_turns_the_documents_off(
    function: Function, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from unkey_secrets import aws_lambda

    sim, _ = function.secret(issued_days_ago=1)
    token = sim.start()
    capfd.readouterr()
    function.step(sim, token, "createSecret")
    (document,) = _documents(capfd.readouterr().out)
    assert document["Step"] == "createSecret"

    # A new container with UNKEY_METRICS=false: the rest of the rotation writes nothing.
    monkeypatch.setenv("UNKEY_METRICS", "false")
    aws_lambda._RUNTIME.reset()
    assert [function.step(sim, token, step)["outcome"] for step in STEPS[1:]][-1] == "finished"

    assert capfd.readouterr().out == ""
