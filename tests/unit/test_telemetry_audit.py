"""Audit events (schema ``unkey-secrets/audit/v1``): who, what, outcome, on every write path.

The flows run on the in-process emulator and the in-memory store; every event is validated
against the shipped JSON Schema. Real servers, spans and metrics: tests/functional.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from unkey_secrets import (
    CompensatedError,
    NotOwnedError,
    StoreUnavailableError,
    UnkeyClient,
    capture,
    provision,
    rotate,
)
from unkey_secrets._errors import ConfigurationError, UnkeyNotFoundError
from unkey_secrets._redact import MASK, hold
from unkey_secrets.telemetry import (
    ACTIONS,
    AUDIT_LOGGER,
    SCHEMA,
    AuditLogHandler,
    actor,
    audit_schema,
)
from unkey_secrets.telemetry import audit as audit_module
from unkey_secrets.telemetry.audit import purpose
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

from .._telemetry import Collected, collected


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def client(emulator: Emulator) -> Iterator[UnkeyClient]:
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1:9",
        transport=EmulatorTransport(emulator),
        sleep=lambda _: None,
    ) as unkey:
        yield unkey


@pytest.fixture
def seen() -> Iterator[Collected]:
    with collected() as gathered:
        yield gathered


def valid(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    validator = jsonschema.Draft202012Validator(audit_schema())
    for event in events:
        errors = sorted(validator.iter_errors(event), key=str)
        assert not errors, (event, [e.message for e in errors])
    return events


# -- the schema ----------------------------------------------------------------------------


def test_the_schema_is_valid_json_schema_and_names_every_action() -> None:
    schema = audit_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"]["const"] == SCHEMA
    assert tuple(schema["properties"]["action"]["enum"]) == ACTIONS


def test_the_schema_refuses_an_event_with_a_member_it_does_not_define() -> None:
    event = {
        "schema": SCHEMA,
        "time": "2025-01-31T12:00:00.123Z",
        "actor": "ci@runner",
        "action": "key.created",
        "api_id": "api_1",
        "key_id": "key_1",
        "location": None,
        "outcome": "succeeded",
        "request_id": None,
        "store": None,
        "error": None,
    }
    valid([event])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**event, "key": "sk_live_oops"}, audit_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**event, "error": "Bad: message text"}, audit_schema())


# -- the actor -----------------------------------------------------------------------------


def test_the_actor_is_the_variable_then_the_lambda_then_user_at_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("UNKEY_SECRETS_ACTOR", raising=False)
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    assert "@" in actor()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "unkey-rotator")
    assert actor() == "aws-lambda:unkey-rotator"
    monkeypatch.setenv("UNKEY_SECRETS_ACTOR", "deploy-bot (pipeline 42)")
    assert actor() == "deploy-bot (pipeline 42)"


def test_the_actor_is_cut_cleaned_and_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_ACTOR", "a\x1bb" + "x" * 400)
    assert actor() == "a?b" + "x" * 253
    held = "unkey_heldcredential0123456789"
    hold(held)
    monkeypatch.setenv("UNKEY_SECRETS_ACTOR", f"job with {held}")
    assert actor() == f"job with {MASK}"


# -- what each flow emits ------------------------------------------------------------------


def test_a_safe_provision_creates_disabled_stores_moves_then_enables(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    api_id = emulator.create_api("audit")
    done = provision(client, InMemoryStore(), api_id, alias="svc")
    events = valid(seen.events)
    assert seen.actions() == [
        ("key.created", "succeeded"),
        ("key.stored", "succeeded"),
        ("alias.moved", "succeeded"),
        ("key.enabled", "succeeded"),
    ]
    assert {e["key_id"] for e in events} == {done.key_id}
    assert {e["api_id"] for e in events} == {api_id}
    assert {e["flow"] for e in events} == {"provision"}
    created, stored, moved, enabled = events
    assert created["request_id"] == done.request_id
    assert stored["store"] == "memory"
    assert stored["location"] == done.location.location
    assert stored["created"] is True
    assert moved["alias"] == "svc"
    assert moved["location"] == f"unkey/{api_id}/by-name/svc"
    # updateKey names no api_id: the flow's is used.
    assert enabled["changes"] == ["meta", "enabled"]
    assert enabled["request_id"].startswith("req_")


def test_a_fast_provision_and_a_replace(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    api_id, store = emulator.create_api("audit"), InMemoryStore()
    first = provision(client, store, api_id, alias="svc", mode="fast")
    assert seen.actions() == [
        ("key.created", "succeeded"),
        ("key.stored", "succeeded"),
        ("alias.moved", "succeeded"),
    ]
    seen.records.clear()
    second = provision(client, store, api_id, alias="svc", replace=True, mode="fast")
    events = valid(seen.events)
    cut = [e for e in events if e["action"] == "key.cut"]
    assert [e["key_id"] for e in cut] == [first.key_id]
    assert cut[0]["expires"] == second.replaced_expires
    moved = [e for e in events if e["action"] == "alias.moved"]
    assert [e["key_id"] for e in moved] == [second.key_id]


def test_a_rotation_marks_rerolls_stores_moves_cuts_and_unmarks(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    api_id, store = emulator.create_api("audit"), InMemoryStore()
    first = provision(client, store, api_id, alias="svc")
    seen.records.clear()
    done = rotate(client, store, api_id, alias="svc")
    events = valid(seen.events)
    assert seen.actions() == [
        ("key.updated", "succeeded"),  # marked
        ("key.rotated", "succeeded"),
        ("key.stored", "succeeded"),
        ("alias.moved", "succeeded"),
        ("key.cut", "succeeded"),
        ("key.updated", "succeeded"),  # its marks cleared
    ]
    rotated = events[1]
    assert rotated["key_id"] == done.key_id
    assert rotated["original_key_id"] == first.key_id
    assert events[4]["key_id"] == first.key_id
    assert events[4]["expires"] == done.original_expires
    assert {e["flow"] for e in events} == {"rotate"}


def test_a_capture_stores_and_moves(seen: Collected) -> None:
    location = capture(
        InMemoryStore(),
        api_id="api_audit",
        key_id="key_abc123def",
        key="sk_" + "a" * 24,
        alias="svc",
    )
    events = valid(seen.events)
    assert seen.actions() == [("key.stored", "succeeded"), ("alias.moved", "succeeded")]
    assert events[0]["location"] == location.location
    assert {e["flow"] for e in events} == {"capture"}


# -- failure paths -------------------------------------------------------------------------


def test_a_store_outage_is_an_unknown_write_then_a_compensation(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    from unkey_secrets import RetryPolicy

    store = InMemoryStore()
    store.fail_next("put", StoreUnavailableError("down", store="memory"))
    with pytest.raises(CompensatedError):
        provision(
            client,
            store,
            emulator.create_api("audit"),
            mode="fast",
            retry=RetryPolicy(attempts=1),
        )
    events = valid(seen.events)
    assert seen.actions() == [
        ("key.created", "succeeded"),
        ("key.stored", "unknown"),
        ("key.deleted", "succeeded"),
        ("compensation.run", "succeeded"),
    ]
    assert events[1]["error"] == "StoreUnavailableError"
    key_id = events[0]["key_id"]
    assert events[3]["key_id"] == key_id
    assert events[3]["actions"] == [f"deleted key {key_id} in Unkey"]


def test_a_write_the_store_refuses_failed(seen: Collected) -> None:
    store = InMemoryStore()
    store.plant_foreign(store.key_location(api_id="api_audit", key_id="key_abc123def"))
    with pytest.raises(Exception, match="could not be stored"):
        capture(store, api_id="api_audit", key_id="key_abc123def", key="sk_" + "a" * 24)
    events = valid(seen.events)
    assert seen.actions() == [("key.stored", "failed")]
    assert events[0]["error"] == NotOwnedError.__name__


def test_a_lost_create_is_unknown_and_the_key_it_made_is_deleted(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    api_id = emulator.create_api("audit")
    emulator.faults.drop_after_action("keys.createKey")
    with pytest.raises(Exception, match="no clear answer"):
        provision(client, InMemoryStore(), api_id)
    events = valid(seen.events)
    assert seen.actions() == [
        ("key.created", "unknown"),
        ("key.deleted", "succeeded"),
        ("compensation.run", "succeeded"),
    ]
    assert events[0]["key_id"] is None
    assert events[0]["error"] == "UnkeyAmbiguousError"
    assert events[2]["key_id"] == events[1]["key_id"]


def test_a_create_answered_5xx_is_unknown(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    emulator.faults.fail_next("keys.createKey", status=503)
    with pytest.raises(Exception, match="no clear answer"):
        provision(client, InMemoryStore(), emulator.create_api("audit"))
    valid(seen.events)
    assert seen.actions()[0] == ("key.created", "unknown")


def test_an_update_unkey_refuses_failed_with_its_request_id(
    client: UnkeyClient, seen: Collected
) -> None:
    with pytest.raises(UnkeyNotFoundError) as raised:
        client.update_key("key_nothere123", enabled=False)
    (event,) = valid(seen.events)
    assert (event["action"], event["outcome"]) == ("key.disabled", "failed")
    assert event["error"] == "UnkeyNotFoundError"
    assert event["request_id"] == raised.value.request_id is not None
    assert event["api_id"] is None  # no flow, and updateKey names none


def test_a_key_unkey_made_but_answered_unusably_is_created_then_undone(
    seen: Collected,
) -> None:
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        operation = request.url.path.rsplit("/", 1)[1]
        calls.append(operation)
        if operation == "keys.createKey":
            # A "key" that breaks the one key rule: it exists in Unkey but is never stored.
            data = {"keyId": "key_madeitbad1", "key": "x"}
            return httpx.Response(200, json={"meta": {"requestId": "req_made"}, "data": data})
        return httpx.Response(200, json={"meta": {"requestId": "req_deleted"}, "data": {}})

    with (
        UnkeyClient(
            "unkey_root", base_url="http://127.0.0.1:9", transport=httpx.MockTransport(answer)
        ) as unkey,
        pytest.raises(CompensatedError),
    ):
        provision(unkey, InMemoryStore(), "api_audit", mode="fast")
    events = valid(seen.events)
    assert seen.actions() == [
        ("key.created", "succeeded"),
        ("key.deleted", "succeeded"),
        ("compensation.run", "succeeded"),
    ]
    assert events[0]["key_id"] == "key_madeitbad1"
    assert events[0]["error"] == "UnkeyResponseError"
    assert calls == ["keys.createKey", "keys.deleteKey"]


def test_an_update_names_its_purpose_or_what_it_changes(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    key_id = client.create_key(emulator.create_api("audit")).key_id
    seen.records.clear()
    client.update_key(key_id, name="renamed")
    with purpose("key.cut"):
        client.update_key(key_id, expires=4_000_000_000_000)
        client.update_key(key_id, enabled=True)  # enabling is named so whatever the purpose
    client.update_key(key_id, expires=None)
    events = valid(seen.events)
    assert [(e["action"], e.get("changes"), e.get("expires", "-")) for e in events] == [
        ("key.updated", ["name"], "-"),
        ("key.cut", ["expires"], 4_000_000_000_000),
        ("key.enabled", ["enabled"], "-"),
        ("key.updated", ["expires"], None),
    ]


# -- cost, and where the events go ---------------------------------------------------------


def test_with_the_audit_logger_off_no_event_is_built(
    client: UnkeyClient, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    logger = logging.getLogger(AUDIT_LOGGER)
    assert not logger.isEnabledFor(logging.INFO), "the suite must not turn audit on globally"

    def refuse() -> str:
        raise AssertionError("an event was built with nobody listening")

    monkeypatch.setattr(audit_module, "_now", refuse)
    provision(client, InMemoryStore(), emulator.create_api("audit"), alias="svc")


def test_the_audit_log_handler_appends_json_lines_to_a_0600_file(
    client: UnkeyClient, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "audit.jsonl"
    logger = logging.getLogger(AUDIT_LOGGER)
    made = []
    for run in (1, 2):
        handler = AuditLogHandler(path)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            made.append(provision(client, InMemoryStore(), emulator.create_api("audit")).key_id)
            logger.info("not an event: ignored")
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
            handler.close()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        lines = path.read_text(encoding="utf-8").splitlines()
        # Appended: the first run's lines are still there.
        assert len(lines) == 3 * run
    events = valid([json.loads(line) for line in lines])
    assert [(e["action"], e["key_id"]) for e in events] == [
        (action, key_id)
        for key_id in made
        for action in ("key.created", "key.stored", "key.enabled")
    ]


def test_an_audit_log_that_cannot_be_opened_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot open the audit log .*missing"):
        AuditLogHandler(tmp_path / "missing" / "audit.jsonl")
