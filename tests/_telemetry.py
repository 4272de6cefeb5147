"""What a test needs to see the library's telemetry: audit events, spans and metric points.

:func:`collected` gathers, for the block: every audit event (the records of the
``unkey_secrets.audit`` logger, set to INFO for the block), every span ended (through the
OpenTelemetry SDK's ``InMemorySpanExporter``) and the metric points (``InMemoryMetricReader``,
read on demand). The SDK's tracer and meter providers are set once per process, the first time
a test asks (OpenTelemetry allows one global provider of each); spans ended outside a block
are dropped, so the rest of the suite runs as without them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from unkey_secrets.telemetry import AUDIT_LOGGER


class _Forward(SpanProcessor):
    """Hands started and ended spans to the processor of the block in progress, if any."""

    def __init__(self) -> None:
        self.target: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        target = self.target
        if target is not None:
            target.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target
        if target is not None:
            target.on_end(span)


class _Global:
    lock = threading.Lock()
    forward: _Forward | None = None
    reader: InMemoryMetricReader | None = None

    @classmethod
    def install(cls) -> tuple[_Forward, InMemoryMetricReader]:
        with cls.lock:
            if cls.forward is None or cls.reader is None:
                forward = _Forward()
                provider = TracerProvider()
                provider.add_span_processor(forward)
                trace.set_tracer_provider(provider)
                reader = InMemoryMetricReader()
                metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
                cls.forward, cls.reader = forward, reader
            return cls.forward, cls.reader


class _Events(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Collected:
    """What the library told, gathered during a :func:`collected` block."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    records: list[logging.LogRecord]
    baseline: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = field(default_factory=dict)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The audit events, in the order they were emitted."""
        return [vars(record)["audit"] for record in self.records if "audit" in vars(record)]

    def actions(self) -> list[tuple[str, str]]:
        """``(action, outcome)`` of every audit event, in order."""
        return [(event["action"], event["outcome"]) for event in self.events]

    @property
    def spans(self) -> list[ReadableSpan]:
        """Every span ended so far in the block."""
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        """The one span named ``name`` (fails if there is not exactly one)."""
        found = [s for s in self.spans if s.name == name]
        assert len(found) == 1, (name, [s.name for s in self.spans])
        return found[0]

    def points(self) -> dict[tuple[str, tuple[tuple[str, Any], ...]], float]:
        """Each metric point now: (name, sorted attributes) -> sum (counters) or count
        (histograms)."""
        data = self.reader.get_metrics_data()
        found: dict[tuple[str, tuple[tuple[str, Any], ...]], float] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        key = (metric.name, tuple(sorted(attributes.items())))
                        value: Any = getattr(point, "value", None)
                        found[key] = float(getattr(point, "count", 0) if value is None else value)
        return found

    def delta(self, name: str, **attributes: Any) -> float:
        """How much the points of ``name`` whose attributes include ``attributes`` grew in the
        block (a counter's sum, a histogram's count)."""
        total = 0.0
        for (metric, attrs), value in self.points().items():
            if metric == name and set(attributes.items()) <= set(attrs):
                total += value - self.baseline.get((metric, attrs), 0.0)
        return total

    def histogram_sum(self, name: str, **attributes: Any) -> float:
        """The sum of the histogram ``name``'s points with ``attributes`` (cumulative)."""
        data = self.reader.get_metrics_data()
        total = 0.0
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        if set(attributes.items()) <= set((point.attributes or {}).items()):
                            total += float(getattr(point, "sum", 0.0))
        return total

    def otel_text(self) -> str:
        """Every span of the block and every metric point, as JSON (what an exporter ships)."""
        parts = [span.to_json() for span in self.spans]
        data = self.reader.get_metrics_data()
        if data is not None:
            parts.append(data.to_json())
        return "\n".join(parts)


@contextlib.contextmanager
def collected() -> Iterator[Collected]:
    """Gather audit events, spans and metric points made in the block."""
    forward, reader = _Global.install()
    exporter = InMemorySpanExporter()
    events = _Events()
    audit = logging.getLogger(AUDIT_LOGGER)
    level = audit.level
    audit.addHandler(events)
    audit.setLevel(logging.INFO)
    previous, forward.target = forward.target, SimpleSpanProcessor(exporter)
    seen = Collected(exporter, reader, events.records)
    seen.baseline = seen.points()
    try:
        yield seen
    finally:
        forward.target = previous
        audit.removeHandler(events)
        audit.setLevel(level)


class _Raising(SpanProcessor):
    """Forwards to ``target``, then raises at ``when`` ("start", "end") for the spans named."""

    def __init__(self, target: SpanProcessor | None, when: str, names: frozenset[str] | None):
        self.target, self.when, self.names = target, when, names

    def _raise(self, when: str, name: str) -> None:
        if when == self.when and (self.names is None or name in self.names):
            raise RuntimeError(f"span processor bug at the {when} of {name}")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.target is not None:
            self.target.on_start(span, parent_context=parent_context)
        self._raise("start", span.name)

    def on_end(self, span: ReadableSpan) -> None:
        if self.target is not None:
            self.target.on_end(span)
        self._raise("end", span.name)


@contextlib.contextmanager
def processor_raising(when: str, *names: str) -> Iterator[None]:
    """Inside a :func:`collected` block: the span processor raises ``RuntimeError`` at the
    ``when`` (``"start"`` or ``"end"``) of each span named (every span when none is), after
    the block's exporter got it."""
    forward, _ = _Global.install()
    previous = forward.target
    forward.target = _Raising(previous, when, frozenset(names) if names else None)
    try:
        yield
    finally:
        forward.target = previous
