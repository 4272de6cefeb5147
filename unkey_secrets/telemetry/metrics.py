"""The library's OpenTelemetry metrics: flows by outcome and duration, and the reader's cache.

Recorded on the meter ``unkey_secrets`` once the application has loaded OpenTelemetry's
metrics API (see :mod:`unkey_secrets.telemetry`); otherwise each call here returns at once.

=========================================  =========  ===========  ==============================
instrument                                 kind       unit         attributes
=========================================  =========  ===========  ==============================
``unkey_secrets.flows``                    counter    ``{flow}``   flow, outcome, error.type
``unkey_secrets.flow.duration``            histogram  ``s``        flow, outcome
``unkey_secrets.reader.lookups``           counter    ``{lookup}`` store, api_id, alias, result
``unkey_secrets.reader.refresh_failures``  counter    ``{read}``   store, api_id, alias,
                                                                   error.type
``unkey_secrets.reader.rotation_pickup``   histogram  ``s``        store, api_id, alias
=========================================  =========  ===========  ==============================

``result`` is ``hit`` (served from memory), ``miss`` (the store was read, by this caller or
one it waited for) or ``stale`` (the cached key served after a failed read). A rotation pickup
is the time from a key's ``issued_at`` to the first time a reader serves it in place of the
key it served before. Attribute names carry the ``unkey_secrets.`` prefix, but ``error.type``
(OpenTelemetry's own). No attribute ever holds a key, a credential or an error's message.
Whatever the meter raises is caught: the call goes on without the point.
"""

from __future__ import annotations

import threading
from typing import Any

from ._otel import API, failed

__all__ = [
    "FLOWS",
    "FLOW_DURATION",
    "READER_LOOKUPS",
    "READER_REFRESH_FAILURES",
    "READER_ROTATION_PICKUP",
    "enabled",
    "flow_finished",
    "reader_lookup",
    "reader_refresh_failed",
    "reader_rotation_pickup",
]

FLOWS = "unkey_secrets.flows"
FLOW_DURATION = "unkey_secrets.flow.duration"
READER_LOOKUPS = "unkey_secrets.reader.lookups"
READER_REFRESH_FAILURES = "unkey_secrets.reader.refresh_failures"
READER_ROTATION_PICKUP = "unkey_secrets.reader.rotation_pickup"


class _Instruments:
    """The instruments, made once on the library's meter."""

    def __init__(self, meter: Any) -> None:
        self.flows = meter.create_counter(
            FLOWS, unit="{flow}", description="Flows run (provision, rotate, capture, bulk line)"
        )
        self.flow_duration = meter.create_histogram(
            FLOW_DURATION, unit="s", description="How long a flow ran"
        )
        self.lookups = meter.create_counter(
            READER_LOOKUPS, unit="{lookup}", description="Keys a reader handed out, by result"
        )
        self.refresh_failures = meter.create_counter(
            READER_REFRESH_FAILURES, unit="{read}", description="Reads of the store that failed"
        )
        self.rotation_pickup = meter.create_histogram(
            READER_ROTATION_PICKUP,
            unit="s",
            description="From a key's issued_at to a reader first serving it after another key",
        )


class _Holder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instruments: _Instruments | None = None

    def get(self) -> _Instruments | None:
        if self._instruments is not None:
            return self._instruments
        meter = API.meter()
        if meter is None:
            return None
        with self._lock:
            if self._instruments is None:
                try:
                    self._instruments = _Instruments(meter)
                except Exception as error:  # noqa: BLE001 (see _otel.failed: asked again)
                    failed("making the metric instruments", error)
                    return None
        return self._instruments


_INSTRUMENTS = _Holder()


def enabled() -> bool:
    """Whether metrics are recorded (OpenTelemetry's metrics API is loaded)."""
    return _INSTRUMENTS.get() is not None


def flow_finished(flow: str, outcome: str, seconds: float, error: str | None) -> None:
    """Count a finished flow and record its duration (``seconds``)."""
    instruments = _INSTRUMENTS.get()
    if instruments is None:
        return
    attributes = {"unkey_secrets.flow": flow, "unkey_secrets.outcome": outcome}
    try:
        instruments.flow_duration.record(seconds, attributes)
        if error is not None:
            attributes = {**attributes, "error.type": error}
        instruments.flows.add(1, attributes)
    except Exception as problem:  # noqa: BLE001 (see _otel.failed)
        failed("recording a metric", problem)


def _reader_attributes(store: str, api_id: str, alias: str | None) -> dict[str, str]:
    attributes = {"unkey_secrets.store": store, "unkey_secrets.api_id": api_id}
    if alias is not None:
        attributes["unkey_secrets.alias"] = alias
    return attributes


def reader_lookup(store: str, api_id: str, alias: str | None, result: str) -> None:
    """Count one key handed out by a reader: ``result`` is hit, miss or stale."""
    instruments = _INSTRUMENTS.get()
    if instruments is None:
        return
    attributes = _reader_attributes(store, api_id, alias)
    attributes["unkey_secrets.reader.result"] = result
    try:
        instruments.lookups.add(1, attributes)
    except Exception as error:  # noqa: BLE001 (see _otel.failed)
        failed("recording a metric", error)


def reader_refresh_failed(store: str, api_id: str, alias: str | None, error: str) -> None:
    """Count one failed read of the store (``error``: the error's class name)."""
    instruments = _INSTRUMENTS.get()
    if instruments is None:
        return
    attributes = _reader_attributes(store, api_id, alias)
    attributes["error.type"] = error
    try:
        instruments.refresh_failures.add(1, attributes)
    except Exception as problem:  # noqa: BLE001 (see _otel.failed)
        failed("recording a metric", problem)


def reader_rotation_pickup(store: str, api_id: str, alias: str | None, seconds: float) -> None:
    """Record how long after its issue (``seconds``) a reader first served a new key."""
    instruments = _INSTRUMENTS.get()
    if instruments is None:
        return
    attributes = _reader_attributes(store, api_id, alias)
    try:
        instruments.rotation_pickup.record(max(seconds, 0.0), attributes)
    except Exception as error:  # noqa: BLE001 (see _otel.failed)
        failed("recording a metric", error)
