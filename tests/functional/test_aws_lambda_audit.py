"""The rotation Lambda's audit events reach its log group whatever the root logger's level.

``unkey_secrets.aws_lambda.handler`` runs against moto server and the Unkey emulator, built from
its environment as in Lambda, with the root logger at WARNING (Python's default, and Lambda's
when no application log level is configured). When nothing set the audit logger's level and
``AWS_LAMBDA_LOG_LEVEL`` is unset, the handler enables ``unkey_secrets.audit`` at INFO, as it
does its own logger: every change of a rotation is one event, valid against the schema, with no
key or credential in it. ``UNKEY_AUDIT=false`` turns them off; an application log level set
through Lambda's logging configuration is left to decide.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import pytest

from tests.security._canary import needles
from unkey_secrets import ConfigurationError, UnkeyClient
from unkey_secrets._payload import key_fields, parse_key_json
from unkey_secrets.telemetry import AUDIT_LOGGER, audit_schema
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey

from ._rotation_harness import STEPS, SecretsManagerSim

pytestmark = pytest.mark.functional

FUNCTION_NAME = "unkey-rotation-audit"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Function:
    """One Lambda container: the test's clients, the audit records, what must stay hidden."""

    moto: MotoServer
    sm: Any
    unkey: UnkeyClient
    api_id: str
    credentials: list[str]
    seen: _Records

    def rotate(self) -> SecretsManagerSim:
        """Rotate a fresh secret through the four steps of the real handler."""
        from unkey_secrets import aws_lambda

        original = self.unkey.create_key(self.api_id, prefix="canary")
        value = dict(key_fields(original))
        value["issued_at"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=30)).isoformat()
        name = f"unkey/audit/{uuid.uuid4().hex}"
        arn = self.sm.create_secret(Name=name, SecretString=json.dumps(value))["ARN"]
        sim = SecretsManagerSim(self.moto, self.sm, arn)
        token = sim.start()
        results = [aws_lambda.handler(sim.event(token, step), None) for step in STEPS]
        assert [r["outcome"] for r in results] == ["rerolled", "nothing-to-do", "valid", "finished"]
        return sim

    def events(self) -> list[dict[str, Any]]:
        return [vars(r)["audit"] for r in self.seen.records if "audit" in vars(r)]

    def hidden(self, sim: SecretsManagerSim) -> list[str]:
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
    secret_access_key = "canary" + secrets.token_hex(20)
    for name, value in {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": "AKIAAUDITTESTS000001",
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_DEFAULT_REGION": moto_server.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
        "UNKEY_ROOT_KEY_SECRET_ID": root_arn,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
        "UNKEY_METRICS": "false",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_LAMBDA_LOG_LEVEL", "UNKEY_AUDIT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("UNKEY_SECRETS_ACTOR", raising=False)
    root = logging.getLogger()
    audit = logging.getLogger(AUDIT_LOGGER)
    saved = (root.level, audit.level, audit.disabled)
    # As in a Lambda container with no application log level: nothing set the audit logger's.
    root.setLevel(logging.WARNING)
    audit.setLevel(logging.NOTSET)
    seen = _Records()
    audit.addHandler(seen)
    aws_lambda._RUNTIME.reset()
    try:
        with unkey_emulator.client() as unkey:
            yield Function(
                moto_server, sm, unkey, unkey_api_id, [root_key, secret_access_key], seen
            )
    finally:
        aws_lambda._RUNTIME.reset()
        audit.removeHandler(seen)
        root.setLevel(saved[0])
        audit.setLevel(saved[1])
        audit.disabled = saved[2]


def test_a_rotation_emits_valid_audit_events_with_the_root_logger_at_warning(
    function: Function,
) -> None:
    sim = function.rotate()
    events = function.events()
    assert events, "the rotation's changes reach the audit logger"
    for event in events:
        jsonschema.validate(event, audit_schema())
    actions = [(e["action"], e["outcome"]) for e in events]
    assert ("key.rotated", "succeeded") in actions
    assert {e["actor"] for e in events} == {f"aws-lambda:{FUNCTION_NAME}"}
    text = "\n".join(
        [r.getMessage() for r in function.seen.records] + [json.dumps(e) for e in events]
    )
    leaks = [needle for needle in function.hidden(sim) if needle in text]
    assert leaks == [], "no key, root key or AWS credential in an event"


def test_unkey_audit_false_turns_the_events_off(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unkey_secrets.telemetry import audit

    monkeypatch.setenv("UNKEY_AUDIT", "false")
    function.rotate()
    assert function.events() == []
    assert not audit.enabled()


def test_an_application_log_level_from_lambda_decides(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Lambda's logging configuration sets AWS_LAMBDA_LOG_LEVEL and the root logger's level:
    # at WARN, the function's owner asked for no INFO records, audit events included.
    monkeypatch.setenv("AWS_LAMBDA_LOG_LEVEL", "WARN")
    function.rotate()
    assert function.events() == []


def test_a_bad_unkey_audit_is_a_configuration_error_naming_it(
    function: Function, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unkey_secrets import aws_lambda

    monkeypatch.setenv("UNKEY_AUDIT", "maybe")
    with pytest.raises(ConfigurationError, match="UNKEY_AUDIT must be true or false"):
        aws_lambda.handler({"SecretId": "x", "ClientRequestToken": "t", "Step": "createSecret"})
