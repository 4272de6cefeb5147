"""OpenTelemetry misbehaving never changes what a call does: its outcome, its audit events.

A span processor that raises (the SDK calls each processor without catching), a meter whose
instruments cannot be made or refuse a measurement, an ``opentelemetry.trace`` caught half
imported: the flows run as without telemetry, their audit events all emitted, and the library
says once, by class name, that OpenTelemetry raised. The flows run on the in-process emulator
and the in-memory store.
"""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from unkey_secrets import UnkeyClient, provision, rotate
from unkey_secrets.config import KeyReader
from unkey_secrets.telemetry import _otel, metrics
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

from .._telemetry import Collected, collected, processor_raising

#: What a full safe provision with an alias emits, then a rotation of it.
_PROVISION = [
    ("key.created", "succeeded"),
    ("key.stored", "succeeded"),
    ("alias.moved", "succeeded"),
    ("key.enabled", "succeeded"),
]
_ROTATE = [
    ("key.updated", "succeeded"),
    ("key.rotated", "succeeded"),
    ("key.stored", "succeeded"),
    ("alias.moved", "succeeded"),
    ("key.cut", "succeeded"),
    ("key.updated", "succeeded"),
]


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


@pytest.fixture(autouse=True)
def reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each test sees the library's one report per kind of failure afresh.
    monkeypatch.setattr(_otel, "_REPORTED", set())


def _run_flows(client: UnkeyClient, emulator: Emulator, seen: Collected) -> None:
    api_id, store = emulator.create_api("faults"), InMemoryStore()
    made = provision(client, store, api_id, alias="svc")
    done = rotate(client, store, api_id, alias="svc")
    assert seen.actions() == _PROVISION + _ROTATE
    assert store.get_current(api_id=api_id, alias="svc").key_id == done.key_id
    assert [k.key_id for k in emulator.keys(api_id) if k.enabled] == [made.key_id, done.key_id]
    reader = KeyReader(store)
    assert reader.key(api_id=api_id, alias="svc").get().key_id == done.key_id


def _reports(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "unkey_secrets.telemetry"]


@pytest.mark.parametrize("when", ["start", "end"])
def test_a_span_processor_raising_on_every_span_changes_nothing(
    when: str,
    client: UnkeyClient,
    emulator: Emulator,
    seen: Collected,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "unkey_secrets.telemetry"), processor_raising(when):
        _run_flows(client, emulator, seen)
    (report,) = _reports(caplog)  # once, not once per span
    assert "RuntimeError" in report
    assert "span processor bug" not in report  # the class, never the message


def test_a_span_processor_raising_after_a_create_loses_no_key_and_no_event(
    client: UnkeyClient, emulator: Emulator, seen: Collected
) -> None:
    # The create happened; a processor failing as its span ends must not make the flow
    # believe it did not (an orphaned key, an event never emitted, a foreign error raised).
    with processor_raising("end", "unkey keys.createKey", "memory set_current"):
        _run_flows(client, emulator, seen)
    created = seen.span("unkey keys.createKey")
    assert created.attributes is not None
    assert created.attributes["unkey_secrets.outcome"] == "succeeded"


def test_instruments_that_cannot_be_made_change_nothing(
    client: UnkeyClient,
    emulator: Emulator,
    seen: Collected,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Refusing:
        def __getattr__(self, name: str) -> Any:
            raise RuntimeError(f"meter bug: no {name}")

    monkeypatch.setattr(_otel.API, "_meter", Refusing())
    monkeypatch.setattr(metrics._INSTRUMENTS, "_instruments", None)
    with caplog.at_level(logging.WARNING, "unkey_secrets.telemetry"):
        _run_flows(client, emulator, seen)
    (report,) = _reports(caplog)
    assert "RuntimeError" in report


def test_instruments_refusing_a_measurement_change_nothing(
    client: UnkeyClient,
    emulator: Emulator,
    seen: Collected,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def add(self, *_: object) -> None:
            raise ValueError("exemplar filter bug")

        record = add

    broken = types.SimpleNamespace(
        **{
            name: Broken()
            for name in ("flows", "flow_duration", "lookups", "refresh_failures", "rotation_pickup")
        }
    )
    monkeypatch.setattr(metrics._INSTRUMENTS, "_instruments", broken)
    with caplog.at_level(logging.WARNING, "unkey_secrets.telemetry"):
        _run_flows(client, emulator, seen)
    (report,) = _reports(caplog)
    assert "ValueError" in report


def test_an_api_module_caught_half_imported_changes_nothing(
    client: UnkeyClient,
    emulator: Emulator,
    seen: Collected,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another thread is importing opentelemetry.trace: the module is in sys.modules, its
    # functions not yet defined. The next call finds it whole.
    monkeypatch.setattr(_otel.API, "_trace", None)
    monkeypatch.setattr(_otel.API, "_tracer", None)
    monkeypatch.setattr(_otel.API, "_meter", None)
    monkeypatch.setattr(metrics._INSTRUMENTS, "_instruments", None)
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", types.ModuleType("opentelemetry.trace"))
    monkeypatch.setitem(
        sys.modules, "opentelemetry.metrics", types.ModuleType("opentelemetry.metrics")
    )
    _run_flows(client, emulator, seen)
