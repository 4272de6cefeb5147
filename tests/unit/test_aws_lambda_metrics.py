"""The rotation Lambda's metrics (CloudWatch's embedded metric format), step by step.

Against InMemorySecretsManager and the in-process emulator, with a fixed clock so every age
is exact. Each document is checked against the format's specification (tests/_emf.py) and
read back as the data CloudWatch would extract from it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest

from tests import _emf
from unkey_secrets import (
    ConfigurationError,
    IssuedKey,
    RotationStepError,
    SecretNotFoundError,
    UnkeyClient,
)
from unkey_secrets._payload import key_fields
from unkey_secrets.aws_lambda import RotationConfig, Rotator, RuntimeConfig
from unkey_secrets.aws_lambda.metrics import NAMESPACE, StepMetrics, key_age
from unkey_secrets.rotation.core import MARKER_META_KEY, PREVIOUS_EXPIRES_META_KEY
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
DAY = 86_400
#: The rotators' fixed clock, a fixed second in the past, so a key Unkey issues during a test
#: is never older than NOW (its age is 0), and test ids built from it are the same in every
#: pytest-xdist worker (a clock read at import made workers collect different ids).
NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class FailingReads(InMemorySecretsManager):
    """The double, where a read of one chosen version fails as a throttled request does."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_version: str | None = None

    def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "GetSecretValue" and params.get("VersionId") == self.fail_version:
            raise self._client_error(operation, "ThrottlingException", "Rate exceeded")
        return super()._call(operation, params)


@dataclass
class World:
    sm: FailingReads
    emulator: Emulator
    unkey: UnkeyClient
    api_id: str
    lines: list[str] = field(default_factory=list)

    def rotator(self, metrics: Any = None) -> Rotator:
        return Rotator(
            self.sm,
            self.unkey,
            RotationConfig(),
            clock=lambda: NOW,
            metrics=self.lines.append if metrics is None else metrics,
        )

    def secret(self, issued_days_ago: float) -> tuple[str, IssuedKey]:
        """A secret holding a new key of the API, stored as issued ``issued_days_ago`` ago."""
        original = self.unkey.create_key(self.api_id, meta={"team": "billing"})
        arn = self.put(f"unkey/{uuid.uuid4().hex}", original, issued_days_ago)
        return arn, original

    def put(self, name: str, key: IssuedKey, issued_days_ago: float) -> str:
        value = dict(key_fields(key))
        value["issued_at"] = _iso(NOW - issued_days_ago * DAY)
        return str(self.sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"])

    def holder(self, arn: str, stage: str) -> str | None:
        stages = self.sm.describe_secret(SecretId=arn).get("VersionIdsToStages") or {}
        return next((v for v, labels in stages.items() if stage in labels), None)

    def documents(self) -> list[dict[str, Any]]:
        return [_emf.validate(line, now=NOW) for line in self.lines]


def _iso(seconds: float, offset_hours: int = 0) -> str:
    zone = dt.timezone(dt.timedelta(hours=offset_hours))
    return dt.datetime.fromtimestamp(seconds, zone).isoformat()


def _event(arn: str, token: str, step: str) -> dict[str, str]:
    return {"SecretId": arn, "ClientRequestToken": token, "Step": step}


@pytest.fixture
def world() -> Iterator[World]:
    emulator = Emulator()
    api_id = emulator.create_api("metrics")
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=EmulatorTransport(emulator),
        sleep=lambda _: None,
    ) as unkey:
        yield World(FailingReads(), emulator, unkey, api_id)


def series(document: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...], str], Any]:
    """{(metric, dimensions, unit): value} of one document, every metric in NAMESPACE."""
    data = _emf.data(document)
    assert {d.namespace for d in data} == {NAMESPACE}
    out = {(d.name, d.dimensions, d.unit): d.value for d in data}
    assert len(out) == len(data), "no metric twice under the same dimensions"
    return out


def expected(
    arn: str, step: str, outcome: str, duration: float, swept: int, age: float | None
) -> dict[tuple[str, tuple[tuple[str, str], ...], str], Any]:
    secret = (("SecretId", arn),)
    out: dict[tuple[str, tuple[tuple[str, str], ...], str], Any] = {
        ("StepInvocations", (("Outcome", outcome), ("SecretId", arn), ("Step", step)), "Count"): 1,
        ("StepDuration", (("SecretId", arn), ("Step", step)), "Milliseconds"): duration,
        ("KeysSwept", secret, "Count"): swept,
    }
    if age is not None:
        out[("CurrentKeyAgeSeconds", secret, "Seconds")] = age
    return out


# -- a rotation -----------------------------------------------------------------------------------


def test_each_step_writes_one_document_with_its_counts_duration_sweep_and_key_age(
    world: World,
) -> None:
    arn, _ = world.secret(issued_days_ago=30)
    token = world.sm.start_rotation(arn)
    rotator = world.rotator()

    outcomes = [rotator.handle(_event(arn, token, step))["outcome"] for step in STEPS]

    documents = world.documents()
    assert len(documents) == 4, "one document per step"
    for step, outcome, document in zip(STEPS, outcomes, documents, strict=True):
        duration = document["StepDuration"]
        assert 0 < duration < 60_000
        # testSecret: the key still current is the original, 30 days old; after finishSecret it
        # is the new key, issued after NOW by the real clock, so 0 (an age is never negative).
        age = {"testSecret": 30.0 * DAY, "finishSecret": 0.0}.get(step)
        assert series(document) == expected(arn, step, "succeeded", duration, 0, age), step
        assert document["StepOutcome"] == outcome
        assert document["ClientRequestToken"] == token
        assert document["_aws"]["Timestamp"] == int(NOW * 1000)
    assert outcomes == ["rerolled", "nothing-to-do", "valid", "finished"]


def test_the_key_age_is_exactly_what_the_overdue_alarm_reads(world: World) -> None:
    """Namespace UnkeySecrets, CurrentKeyAgeSeconds, the one dimension SecretId, in Seconds."""
    arn, _ = world.secret(issued_days_ago=45.5)
    token = world.sm.start_rotation(arn)
    rotator = world.rotator()
    for step in STEPS[:3]:
        rotator.handle(_event(arn, token, step))

    (document,) = [d for d in world.documents() if d["Step"] == "testSecret"]
    (datum,) = _emf.find(_emf.data(document), "CurrentKeyAgeSeconds")
    assert datum == _emf.Datum(
        NAMESPACE, "CurrentKeyAgeSeconds", (("SecretId", arn),), "Seconds", 45.5 * DAY
    )
    assert NAMESPACE == "UnkeySecrets"


def test_the_secret_id_dimension_is_the_events_own(world: World) -> None:
    """An event naming the secret by name (a hand-made invocation) is counted under the name."""
    name = f"unkey/{uuid.uuid4().hex}"
    original = world.unkey.create_key(world.api_id)
    arn = world.put(name, original, issued_days_ago=1)
    token = world.sm.start_rotation(arn)

    world.rotator().handle(_event(name, token, "createSecret"))

    (document,) = world.documents()
    assert document["SecretId"] == name
    assert {d.dimensions[-1] for d in _emf.data(document)} >= {("SecretId", name)}


def test_keys_swept_counts_the_leftovers_a_step_deleted(world: World) -> None:
    arn, original = world.secret(issued_days_ago=1)
    token = world.sm.start_rotation(arn)
    # Two keys lost attempts of this rotation made and never stored, after marking the original.
    marks = {"team": "billing", MARKER_META_KEY: token, PREVIOUS_EXPIRES_META_KEY: None}
    world.unkey.update_key(original.key_id, meta=marks)
    for _ in range(2):
        world.unkey.create_key(world.api_id, meta={MARKER_META_KEY: token})

    result = world.rotator().handle(_event(arn, token, "createSecret"))

    (document,) = world.documents()
    assert result["outcome"] == "rerolled"
    assert document["KeysSwept"] == 2
    assert series(document)[("KeysSwept", (("SecretId", arn),), "Count")] == 2


# -- failures -------------------------------------------------------------------------------------


def test_a_failed_test_secret_is_counted_as_failed_with_the_current_keys_age(
    world: World,
) -> None:
    """The overdue alarm's case: the rotation fails and the original, still current, ages."""
    arn, _ = world.secret(issued_days_ago=33)
    token = world.sm.start_rotation(arn)
    rotator = world.rotator()
    created = rotator.handle(_event(arn, token, "createSecret"))
    rotator.handle(_event(arn, token, "setSecret"))
    world.unkey.update_key(str(created["key_id"]), enabled=False)

    with pytest.raises(RotationStepError, match="verifyKey"):
        rotator.handle(_event(arn, token, "testSecret"))

    document = world.documents()[-1]
    duration = document["StepDuration"]
    assert series(document) == expected(arn, "testSecret", "failed", duration, 0, 33.0 * DAY)
    assert document["StepOutcome"] == "error"


def test_a_failed_finish_secret_reports_the_key_another_writer_made_current(
    world: World,
) -> None:
    arn, _ = world.secret(issued_days_ago=20)
    token = world.sm.start_rotation(arn)
    rotator = world.rotator()
    for step in STEPS[:3]:
        rotator.handle(_event(arn, token, step))
    # Another writer replaced AWSCURRENT with a key issued two days ago.
    other = world.unkey.create_key(world.api_id)
    value = dict(key_fields(other))
    value["issued_at"] = _iso(NOW - 2 * DAY)
    version = str(uuid.uuid4())
    world.sm.put_secret_value(
        SecretId=arn,
        ClientRequestToken=version,
        SecretString=json.dumps(value),
        VersionStages=["unkey-next"],
    )
    world.sm.update_secret_version_stage(
        SecretId=arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=version,
        RemoveFromVersionId=world.holder(arn, "AWSCURRENT"),
    )

    with pytest.raises(RotationStepError, match="gave the rotation up"):
        rotator.handle(_event(arn, token, "finishSecret"))

    document = world.documents()[-1]
    duration = document["StepDuration"]
    assert series(document) == expected(arn, "finishSecret", "failed", duration, 0, 2.0 * DAY)


def test_a_step_that_fails_before_it_knows_the_key_has_no_age(world: World) -> None:
    arn, _ = world.secret(issued_days_ago=5)
    token = world.sm.start_rotation(arn)

    with pytest.raises(RotationStepError, match="createSecret has not finished"):
        world.rotator().handle(_event(arn, token, "testSecret"))

    (document,) = world.documents()
    duration = document["StepDuration"]
    assert series(document) == expected(arn, "testSecret", "failed", duration, 0, None)


def test_a_failed_read_of_the_current_key_costs_the_age_not_the_step(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    arn, _ = world.secret(issued_days_ago=7)
    token = world.sm.start_rotation(arn)
    rotator = world.rotator()
    for step in STEPS[:2]:
        rotator.handle(_event(arn, token, step))
    world.sm.fail_version = world.holder(arn, "AWSCURRENT")
    caplog.set_level(logging.INFO, logger="unkey_secrets.aws_lambda")

    assert rotator.handle(_event(arn, token, "testSecret"))["outcome"] == "valid"

    document = world.documents()[-1]
    duration = document["StepDuration"]
    assert series(document) == expected(arn, "testSecret", "succeeded", duration, 0, None)
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.levelno == logging.INFO]
    (warning,) = line["warnings"]
    assert warning.startswith("could not read the current key's age: ")
    assert "ThrottlingException" in warning


@pytest.mark.parametrize("failing", [OSError(32, "Broken pipe"), ValueError("I/O on closed file")])
def test_a_metrics_writer_that_fails_never_fails_the_step(
    world: World, caplog: pytest.LogCaptureFixture, failing: Exception
) -> None:
    def broken(line: str) -> None:
        raise failing

    arn, _ = world.secret(issued_days_ago=1)
    token = world.sm.start_rotation(arn)
    rotator = world.rotator(metrics=broken)

    assert rotator.handle(_event(arn, token, "createSecret"))["outcome"] == "rerolled"
    # A failing step still raises its own error, not the writer's.
    with pytest.raises(RotationStepError, match="has no version"):
        rotator.handle(_event(arn, uuid.uuid4().hex * 2, "setSecret"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # describe_error names a foreign error by its type: its text is no business of a log line.
    assert warnings == [f"could not write the step's metrics: {type(failing).__name__}"] * 2


@pytest.mark.parametrize("secret_id", ["unkey/ünïcode", "x" * 1025, "   "])
def test_a_secret_id_cloudwatch_cannot_take_as_a_dimension_writes_no_document(
    world: World, caplog: pytest.LogCaptureFixture, secret_id: str
) -> None:
    with pytest.raises(SecretNotFoundError):
        world.rotator().handle(_event(secret_id, "t" * 32, "createSecret"))

    assert world.lines == []
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == "no metrics for this step: its SecretId is no CloudWatch dimension"


def test_without_a_metrics_writer_nothing_is_measured(world: World) -> None:
    arn, _ = world.secret(issued_days_ago=1)
    token = world.sm.start_rotation(arn)
    rotator = Rotator(world.sm, world.unkey, RotationConfig(), clock=lambda: NOW)

    assert [rotator.handle(_event(arn, token, s))["outcome"] for s in STEPS][-1] == "finished"
    assert world.lines == []


# -- the document and its parts -------------------------------------------------------------------


def _measured(**changes: Any) -> StepMetrics:
    fields: dict[str, Any] = {
        "secret_id": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:unkey/a-AbCdEf",
        "step": "finishSecret",
        "client_request_token": "t" * 36,
        "failed": False,
        "outcome": "finished",
        "duration": 0.0123456,
        "keys_swept": 1,
        "current_key_age": 12.3456,
        "timestamp": NOW,
    }
    fields.update(changes)
    return StepMetrics(**fields)


def test_the_document_is_one_line_of_the_specified_shape_and_nothing_more() -> None:
    line = _measured().line()
    document = _emf.validate(line, now=NOW)
    arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:unkey/a-AbCdEf"
    assert document == {
        "_aws": {
            "Timestamp": int(NOW * 1000),
            "CloudWatchMetrics": [
                {
                    "Namespace": "UnkeySecrets",
                    "Dimensions": [["SecretId", "Step", "Outcome"]],
                    "Metrics": [{"Name": "StepInvocations", "Unit": "Count"}],
                },
                {
                    "Namespace": "UnkeySecrets",
                    "Dimensions": [["SecretId", "Step"]],
                    "Metrics": [{"Name": "StepDuration", "Unit": "Milliseconds"}],
                },
                {
                    "Namespace": "UnkeySecrets",
                    "Dimensions": [["SecretId"]],
                    "Metrics": [
                        {"Name": "KeysSwept", "Unit": "Count"},
                        {"Name": "CurrentKeyAgeSeconds", "Unit": "Seconds"},
                    ],
                },
            ],
        },
        "SecretId": arn,
        "Step": "finishSecret",
        "Outcome": "succeeded",
        "StepInvocations": 1,
        "StepDuration": 12.346,
        "KeysSwept": 1,
        "CurrentKeyAgeSeconds": 12.346,
        "ClientRequestToken": "t" * 36,
        "StepOutcome": "finished",
    }


def test_without_an_age_the_directive_names_no_age_and_a_failure_says_failed() -> None:
    document = _emf.validate(
        _measured(current_key_age=None, failed=True, outcome=None).line(), now=NOW
    )
    assert "CurrentKeyAgeSeconds" not in document
    assert "StepOutcome" not in document
    assert document["Outcome"] == "failed"
    names = [m["Name"] for d in document["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
    assert names == ["StepInvocations", "StepDuration", "KeysSwept"]


def test_a_document_shares_nothing_with_the_next() -> None:
    first = _measured().document()
    first["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].append("Extra")  # type: ignore[index]
    assert _measured().document()["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [  # type: ignore[index]
        ["SecretId", "Step", "Outcome"]
    ]


def test_the_validator_refuses_what_the_specification_forbids() -> None:
    """tests/_emf.py can fail: each rule it checks, broken once."""
    good = json.loads(_measured().line())

    def broken(change: Any) -> str:
        document = json.loads(json.dumps(good))
        change(document)
        return json.dumps(document)

    cases = [
        lambda d: d.pop("StepDuration"),  # a metric with no value
        lambda d: d.update(SecretId=5),  # a dimension that is no string
        lambda d: d.update(KeysSwept="1"),  # a metric that is no number
        lambda d: d["_aws"].pop("Timestamp"),
        lambda d: d["_aws"].update(Timestamp=1),  # 1970
        lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Extra=1),
        lambda d: d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0].update(Unit="Days"),
        lambda d: d["_aws"]["CloudWatchMetrics"][0].update(Namespace=""),
        lambda d: d.update(SecretId="ü"),
        lambda d: d.update(SecretId="  "),  # no character but whitespace
        lambda d: d.update(SecretId="a\u0007b"),  # a control character
        lambda d: d.update(KeysSwept=list(range(101))),
    ]
    _emf.validate(json.dumps(good), now=NOW)
    for change in cases:
        with pytest.raises((AssertionError, jsonschema.ValidationError)):
            _emf.validate(broken(change), now=NOW)
    with pytest.raises(AssertionError, match="one line"):
        _emf.validate(json.dumps(good, indent=1), now=NOW)


@pytest.mark.parametrize(
    ("issued_at", "age"),
    [
        (_iso(NOW - 90), 90.0),
        (_iso(NOW - 90).replace("+00:00", "Z"), 90.0),
        (_iso(NOW - 90).replace("+00:00", ""), 90.0),  # no offset: UTC
        (_iso(NOW - 3600, offset_hours=5), 3600.0),
        (_iso(NOW + 90), 0.0),  # a clock behind the writer's: never negative
        (None, None),
        ("", None),
        ("yesterday", None),
    ],
    # Named, not shown: the times depend on the clock, and xdist's workers must agree on ids.
    ids=["offset", "Z", "naive", "plus-five-hours", "future", "none", "empty", "not-a-time"],
)
def test_key_age(issued_at: str | None, age: float | None) -> None:
    assert key_age(issued_at, NOW) == age


@pytest.mark.parametrize(
    ("value", "enabled"), [(None, True), ("", True), ("true", True), ("FALSE", False), ("0", False)]
)
def test_unkey_metrics_turns_the_documents_on_and_off(value: str | None, enabled: bool) -> None:
    environ = {} if value is None else {"UNKEY_METRICS": value}
    assert RuntimeConfig.from_environ(environ).metrics is enabled


def test_unkey_metrics_must_be_true_or_false() -> None:
    with pytest.raises(ConfigurationError, match="UNKEY_METRICS must be true or false"):
        RuntimeConfig.from_environ({"UNKEY_METRICS": "sometimes"})
