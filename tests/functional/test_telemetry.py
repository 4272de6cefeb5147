"""Spans, metrics and audit events of real flows: OpenBao, moto's server and the Unkey emulator.

The OpenTelemetry SDK's in-memory exporter and metric reader gather what the library made
(``tests/_telemetry.py``); each audit event is validated against the shipped JSON Schema.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from unkey_secrets import (
    CompensatedError,
    RetryPolicy,
    SecretStore,
    StoreUnavailableError,
    UnkeyClient,
    capture,
    provision,
    rotate,
)
from unkey_secrets.bulk import BulkLine, provision_many
from unkey_secrets.config import KeyReader
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.telemetry import audit_schema, metrics
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.openbao import OpenBaoServer

from .._telemetry import Collected, collected

pytestmark = pytest.mark.functional


@pytest.fixture
def seen() -> Iterator[Collected]:
    with collected() as gathered:
        yield gathered


def valid(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        jsonschema.validate(event, audit_schema())
    return events


def children(seen: Collected, parent: ReadableSpan) -> list[ReadableSpan]:
    context = parent.get_span_context()
    return [
        s
        for s in seen.spans
        if s.parent is not None and context is not None and s.parent.span_id == context.span_id
    ]


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_a_provision_is_one_trace_of_its_unkey_and_store_calls(
    unkey_client: UnkeyClient,
    store: SecretStore,
    unkey_emulator_server: EmulatorServer,
    seen: Collected,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("traced")
    done = provision(unkey_client, store, api_id, alias="svc")
    flow = seen.span("unkey_secrets.provision")
    assert attributes(flow) == {
        "unkey_secrets.api_id": api_id,
        "unkey_secrets.alias": "svc",
        "unkey_secrets.mode": "safe",
        "unkey_secrets.replace": False,
        "unkey_secrets.key_id": done.key_id,
        "unkey_secrets.outcome": "succeeded",
    }
    calls = {s.name: s for s in children(seen, flow)}
    name = store.name
    assert {"unkey keys.createKey", f"{name} put", f"{name} set_current", "unkey keys.updateKey"}
    assert set(calls) >= {
        "unkey keys.createKey",
        f"{name} put",
        f"{name} set_current",
        "unkey keys.updateKey",
    }
    for span in calls.values():
        assert span.kind == trace.SpanKind.CLIENT
        assert attributes(span)["unkey_secrets.outcome"] == "succeeded"
    put = attributes(calls[f"{name} put"])
    assert put["unkey_secrets.store"] == name
    assert put["unkey_secrets.key_id"] == done.key_id
    assert put["unkey_secrets.location"] == done.location.location
    assert put["unkey_secrets.version"] == done.location.version
    created = attributes(calls["unkey keys.createKey"])
    assert created["http.response.status_code"] == 200
    assert created["unkey_secrets.request_id"] == done.request_id
    # Every audit event names the trace and its own call's span.
    events = valid(seen.events)
    trace_id = format(flow.context.trace_id, "032x") if flow.context else ""
    assert {e["trace_id"] for e in events} == {trace_id}
    spans_by_id = {format(s.context.span_id, "016x"): s.name for s in seen.spans if s.context}
    assert [spans_by_id[e["span_id"]] for e in events] == [
        "unkey keys.createKey",
        f"{name} put",
        f"{name} set_current",
        "unkey keys.updateKey",
    ]


def test_retries_are_counted_on_the_calls_span(
    unkey_client: UnkeyClient, unkey_emulator_server: EmulatorServer, seen: Collected
) -> None:
    emulator = unkey_emulator_server.emulator
    key_id = unkey_client.create_key(emulator.create_api("retried")).key_id
    emulator.faults.fail_next("keys.getKey", times=2, status=503)
    unkey_client.get_key(key_id)
    span = seen.span("unkey keys.getKey")
    assert attributes(span)["unkey_secrets.retries"] == 2
    assert attributes(span)["http.response.status_code"] == 200
    assert [(e.name, dict(e.attributes or {})["unkey_secrets.reason"]) for e in span.events] == [
        ("unkey_secrets.retry", "status 503"),
        ("unkey_secrets.retry", "status 503"),
    ]


def test_a_failed_flow_marks_its_span_and_the_failing_call(
    unkey_client: UnkeyClient,
    vault_store: VaultStore,
    unkey_emulator_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    seen: Collected,
) -> None:
    def unreachable(*_: object) -> None:
        raise StoreUnavailableError("Vault did not answer", store="vault")

    # Reachable for the preflight, then every write is lost (a store outage mid-flow).
    monkeypatch.setattr(vault_store, "_put", unreachable)
    api_id = unkey_emulator_server.emulator.create_api("failing")
    with pytest.raises(CompensatedError):
        provision(unkey_client, vault_store, api_id, mode="fast", retry=RetryPolicy(attempts=2))
    flow = seen.span("unkey_secrets.provision")
    assert flow.status.status_code == StatusCode.ERROR
    assert attributes(flow)["error.type"] == "CompensatedError"
    assert attributes(flow)["unkey_secrets.outcome"] == "failed"
    puts = [s for s in seen.spans if s.name == "vault put"]
    assert len(puts) == 2  # the retry is a call of its own
    for put in puts:
        assert put.status.status_code == StatusCode.ERROR
        assert attributes(put)["error.type"] == StoreUnavailableError.__name__
        assert attributes(put)["unkey_secrets.outcome"] == "unknown"
    assert [e.name for e in flow.events] == ["unkey_secrets.store_retry"]
    # Never an error's text: only its class.
    for span in seen.spans:
        assert span.status.description in (None, "", "CompensatedError", "StoreUnavailableError")
    assert (
        seen.delta(
            metrics.FLOWS,
            **{
                "unkey_secrets.flow": "provision",
                "unkey_secrets.outcome": "failed",
                "error.type": "CompensatedError",
            },
        )
        == 1
    )
    assert [a for a, _ in seen.actions()] == [
        "key.created",
        "key.stored",
        "key.stored",
        "key.deleted",
        "compensation.run",
    ]
    valid(seen.events)


def test_flows_are_counted_by_outcome_and_timed(
    unkey_client: UnkeyClient,
    store: SecretStore,
    unkey_emulator_server: EmulatorServer,
    seen: Collected,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("counted")
    provision(unkey_client, store, api_id, alias="svc")
    rotate(unkey_client, store, api_id, alias="svc")
    capture(store, api_id=api_id, key_id="key_capt1234", key="sk_" + "c" * 24)
    for flow in ("provision", "rotate", "capture"):
        wanted = {"unkey_secrets.flow": flow, "unkey_secrets.outcome": "succeeded"}
        assert seen.delta(metrics.FLOWS, **wanted) == 1, flow
        assert seen.delta(metrics.FLOW_DURATION, **wanted) == 1, flow
    assert seen.histogram_sum(metrics.FLOW_DURATION, **{"unkey_secrets.flow": "rotate"}) > 0
    valid(seen.events)


class Clocks:
    """A monotonic clock and a wall clock the test moves."""

    def __init__(self) -> None:
        self.monotonic = 1000.0
        self.wall = dt.datetime.now(dt.timezone.utc).timestamp()

    def tick(self, seconds: float) -> None:
        self.monotonic += seconds
        self.wall += seconds


def test_the_readers_cache_counts_hits_misses_stale_serves_and_rotation_pickups(
    unkey_client: UnkeyClient,
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    seen: Collected,
) -> None:
    store = VaultStore(openbao_server.client())
    api_id = unkey_emulator_server.emulator.create_api("cached")
    provision(unkey_client, store, api_id, alias="svc")
    clocks = Clocks()
    reader = KeyReader(
        store,
        max_age=60,
        max_stale=600,
        clock=lambda: clocks.monotonic,
        wall_clock=lambda: clocks.wall,
    )
    key = reader.key(api_id=api_id, alias="svc")
    labels = {"unkey_secrets.api_id": api_id, "unkey_secrets.alias": "svc"}

    def lookups(result: str) -> float:
        return seen.delta(
            metrics.READER_LOOKUPS, **labels, **{"unkey_secrets.reader.result": result}
        )

    key.get()
    key.get()
    key.get()
    assert (lookups("miss"), lookups("hit")) == (1, 2)
    read = seen.span("unkey_secrets.reader.read")
    assert [s.name for s in children(seen, read)] == ["vault get_current"]

    rotated = rotate(unkey_client, store, api_id, alias="svc")
    clocks.tick(61)
    assert key.get().key_id == rotated.key_id
    assert lookups("miss") == 2
    assert seen.delta(metrics.READER_ROTATION_PICKUP, **labels) == 1
    issued = dt.datetime.fromisoformat(key.get().issued_at or "").timestamp()
    picked = seen.histogram_sum(metrics.READER_ROTATION_PICKUP, **labels)
    assert picked == pytest.approx(clocks.wall - issued, abs=1.0)

    def down(*_: object) -> None:
        raise StoreUnavailableError("unreachable", store="vault")

    monkeypatch.setattr(store, "_get_current", down)
    clocks.tick(61)
    assert key.get().key_id == rotated.key_id  # served stale
    assert lookups("stale") == 1
    failed = {**labels, "error.type": "KeyStoreUnavailableError"}
    assert seen.delta(metrics.READER_REFRESH_FAILURES, **failed) == 1


def test_bulk_lines_are_spans_of_the_callers_trace_and_a_failed_line_is_counted(
    unkey_client: UnkeyClient,
    store: SecretStore,
    unkey_emulator_server: EmulatorServer,
    seen: Collected,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("bulk")
    lines = [
        BulkLine(number=1, api_id=api_id, alias="b1"),
        BulkLine(number=2, api_id=api_id, alias="b2"),
        # An API Unkey does not know: the line fails, the others go on.
        BulkLine(number=3, api_id="api_missing0000", alias="b3"),
    ]
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("deploy") as deploy:
        results = list(
            provision_many(
                unkey_client, store, lines, concurrency=3, attempts=1, sleep=lambda _: None
            )
        )
    assert sorted(r.status for r in results) == ["created", "created", "failed"]
    parent = deploy.get_span_context().span_id
    line_spans = [s for s in seen.spans if s.name == "unkey_secrets.bulk.line"]
    assert len(line_spans) == 3
    assert {s.parent.span_id for s in line_spans if s.parent} == {parent}
    failed = [s for s in line_spans if attributes(s)["unkey_secrets.line"] == 3]
    assert attributes(failed[0])["unkey_secrets.outcome"] == "failed"
    assert attributes(failed[0])["error.type"] == "UnkeyNotFoundError"
    assert (
        seen.delta(
            metrics.FLOWS, **{"unkey_secrets.flow": "bulk.line", "unkey_secrets.outcome": "failed"}
        )
        == 1
    )
    assert (
        seen.delta(
            metrics.FLOWS,
            **{"unkey_secrets.flow": "bulk.line", "unkey_secrets.outcome": "succeeded"},
        )
        == 2
    )
    events = valid(seen.events)
    assert {e["flow"] for e in events} == {"provision"}  # the innermost flow names each change


def test_a_command_of_the_command_line_is_the_root_of_its_flows_trace(
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seen: Collected,
) -> None:
    from unkey_secrets.cli import main

    for name, value in {
        "VAULT_ADDR": openbao_server.url,
        "VAULT_TOKEN": openbao_server.root_token,
        "UNKEY_ROOT_KEY": unkey_emulator_server.root_key,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    api_id = unkey_emulator_server.emulator.create_api("cli-traced")
    assert main(["--store", "vault", "provision", "--api-id", api_id]) == 0
    capsys.readouterr()
    command = seen.span("unkey_secrets.cli.provision")
    assert command.parent is None
    assert [s.name for s in children(seen, command)] == ["unkey_secrets.provision"]
    assert (
        seen.delta(
            metrics.FLOWS,
            **{"unkey_secrets.flow": "cli.provision", "unkey_secrets.outcome": "succeeded"},
        )
        == 1
    )


def test_a_command_that_exits_3_or_4_is_a_failed_flow_named_by_its_exit(
    openbao_server: OpenBaoServer,
    unkey_emulator_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    seen: Collected,
) -> None:
    """A nonzero exit is an error of the command's span and a ``failed`` command flow.

    Exit 3 (a check found problems) and 4 (some items failed) return rather than raise; the
    span's status, ``error.type`` and the metric follow the exit code all the same.
    """
    from unkey_secrets.cli import main

    for name, value in {
        "VAULT_ADDR": openbao_server.url,
        "VAULT_TOKEN": openbao_server.root_token,
        "UNKEY_ROOT_KEY": unkey_emulator_server.root_key,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
    }.items():
        monkeypatch.setenv(name, value)
    api_id = unkey_emulator_server.emulator.create_api("cli-exits")
    soon = int((dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).timestamp() * 1000)
    provision_argv = ["--store", "vault", "provision", "--api-id", api_id, "--alias", "svc"]
    assert main([*provision_argv, "--expires", str(soon)]) == 0
    listing = ["--store", "vault", "list", "--api-id", api_id]
    assert main([*listing, "--expiring-within", "7d"]) == 3
    assert main(listing) == 0
    due = ["--store", "vault", "rotate-due", "--api-id", api_id, "--older-than", "30d"]
    assert main([*due, "--alias", "nowhere"]) == 4
    capsys.readouterr()

    expected = {
        "list": [("failed", "ProblemsFound", 3), ("succeeded", None, 0)],
        "rotate-due": [("failed", "PartialFailure", 4)],
        "provision": [("succeeded", None, 0)],
    }
    for command, runs in expected.items():
        spans = [s for s in seen.spans if s.name == f"unkey_secrets.cli.{command}"]
        got = [
            (
                attributes(s)["unkey_secrets.outcome"],
                attributes(s).get("error.type"),
                attributes(s).get("process.exit.code"),
            )
            for s in spans
        ]
        assert got == runs, command
        for span, (outcome, _, _) in zip(spans, runs, strict=True):
            wanted = StatusCode.ERROR if outcome == "failed" else StatusCode.UNSET
            assert span.status.status_code == wanted, command
    flow = "unkey_secrets.flow"
    counted = {"unkey_secrets.outcome": "failed"}
    assert (
        seen.delta(
            metrics.FLOWS, **{flow: "cli.list"}, **counted, **{"error.type": "ProblemsFound"}
        )
        == 1
    )
    assert (
        seen.delta(metrics.FLOWS, **{flow: "cli.list", "unkey_secrets.outcome": "succeeded"}) == 1
    )
    assert (
        seen.delta(
            metrics.FLOWS, **{flow: "cli.rotate-due"}, **counted, **{"error.type": "PartialFailure"}
        )
        == 1
    )
    assert (
        seen.delta(metrics.FLOWS, **{flow: "cli.rotate-due", "unkey_secrets.outcome": "succeeded"})
        == 0
    )
    assert seen.delta(metrics.FLOW_DURATION, **{flow: "cli.rotate-due"}, **counted) == 1
