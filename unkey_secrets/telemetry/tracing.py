"""Spans for flows and for each Unkey or store call, and the audit events of the calls.

The shared machinery opens them: :func:`flow` around provision, rotate, capture, a bulk line
and the reader's read; :func:`unkey_call` around each :class:`~unkey_secrets.UnkeyClient`
request; :func:`store_call` around each :class:`~unkey_secrets.SecretStore` template method.
A call that changes state names its audit action, and its event is emitted on the way out
with the outcome (:mod:`.audit`), so one object carries a call's ids to its span and its
event alike.

Spans (once the application has loaded OpenTelemetry, see :mod:`unkey_secrets.telemetry`):

* a flow: ``unkey_secrets.<flow>`` (``provision``, ``rotate``, ``capture``, ``bulk.line``,
  ``reader.read``), kind INTERNAL;
* an Unkey call: ``unkey <operation>`` (``unkey keys.createKey``), kind CLIENT, with
  ``unkey_secrets.retries`` and ``http.response.status_code`` from the wire and an
  ``unkey_secrets.retry`` event per retry;
* a store call: ``<store> <operation>`` (``vault put``), kind CLIENT.

Attributes are ``unkey_secrets.<field>`` for the ids the call knows (``api_id``, ``key_id``,
``original_key_id``, ``alias``, ``store``, ``location``, ``version``, ``request_id``...),
``unkey_secrets.outcome`` (``succeeded``, ``failed``, ``unknown``) and, on failure,
``error.type`` (the error's class name) with the span's status set to ERROR, never the
error's message: a foreign error's text may quote what it was sent. Exceptions are not
recorded as span events for the same reason.

When neither tracing nor auditing is on, each helper returns one shared object whose methods
do nothing: the cost is a function call and two lookups. Whatever OpenTelemetry raises
(a span processor at a span's start or end) is caught: the call, its outcome and its audit
event are as without tracing (see :func:`unkey_secrets.telemetry._otel.failed`).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from .._errors import StoreUnavailableError, UnkeyAmbiguousError
from . import audit, metrics
from ._otel import API, failed

__all__ = [
    "FlowScope",
    "Observation",
    "Observed",
    "annotate",
    "current_flow",
    "flow",
    "outcome_of",
    "record",
    "span_event",
    "store_call",
    "unkey_call",
]

_PREFIX: Final = "unkey_secrets."

#: The flow running in this context (its name and api_id reach the audit events of its calls).
_FLOW: contextvars.ContextVar[FlowScope | None] = contextvars.ContextVar(
    "unkey_secrets_flow", default=None
)


def outcome_of(error: BaseException | None, *, write: bool = True) -> str:
    """What came of a call or flow that raised ``error`` (None: it returned).

    ``succeeded`` (no error), ``unknown`` (a lost answer to a write, or an interruption) or
    ``failed``. A lost answer is :class:`~unkey_secrets.UnkeyAmbiguousError`, or for a ``write``
    :class:`~unkey_secrets.StoreUnavailableError` (a store write whose answer did not come
    may have landed).
    """
    if error is None:
        return "succeeded"
    if isinstance(error, UnkeyAmbiguousError):
        return "unknown"
    if write and isinstance(error, StoreUnavailableError):
        return "unknown"
    if not isinstance(error, Exception):
        return "unknown"  # KeyboardInterrupt, SystemExit: stopped wherever it was
    return "failed"


def _attribute(value: object) -> Any:
    """``value`` as a span attribute (str, bool, int, float, or a list of str), else None."""
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def _trace_ids(span: Any) -> tuple[str, str] | None:
    context = span.get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class Observation:
    """One observed call (or a flow's span): its span if tracing, its audit event if auditing.

    Used as a context manager; :meth:`set` adds what is learned along the way (the new key's
    id, a version). On exit the outcome is decided from the exception, if any, and the span
    and the event get the same fields.
    """

    __slots__ = (
        "_action",
        "_kind",
        "_name",
        "_outcome",
        "_scope",
        "_span",
        "_unsure",
        "_write",
        "fields",
    )

    def __init__(
        self,
        name: str,
        kind: str,
        action: str | None,
        write: bool,
        fields: dict[str, Any],
        unsure: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._name = name
        self._kind = kind
        self._action = action
        self._write = write
        self._unsure = unsure
        self._outcome: str | None = None
        self._scope: Any = None
        self._span: Any = None
        self.fields = fields

    def set(self, **fields: Any) -> None:
        """Add (or replace) fields: they reach the span's attributes and the audit event."""
        self.fields.update(fields)

    def happened(self) -> None:
        """Say the change took place although the call raises (Unkey made a key we refuse)."""
        self._outcome = "succeeded"

    def _fail(self, error: str) -> None:
        """Report a failure that raised nothing: outcome ``failed``, ``error.type`` ``error``."""
        self._outcome = "failed"
        self.fields["error.type"] = error

    def __enter__(self) -> Observation:
        tracer = API.tracer()
        if tracer is not None:
            try:
                trace = API.trace()
                kind = trace.SpanKind.CLIENT if self._kind == "client" else trace.SpanKind.INTERNAL
                scope = tracer.start_as_current_span(
                    self._name,
                    kind=kind,
                    record_exception=False,
                    set_status_on_exception=False,
                )
                self._span = scope.__enter__()
                self._scope = scope
            except Exception as error:  # noqa: BLE001 (the call goes on without its span)
                self._span = self._scope = None
                failed("starting a span", error)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        outcome = self._outcome or outcome_of(exc, write=self._write)
        if exc is not None and isinstance(exc, self._unsure) and outcome == "failed":
            outcome = "unknown"
        if exc is not None and self.fields.get("request_id") is None:
            # Unkey's error envelope has one (shaped by the client: never free text).
            request_id = getattr(exc, "request_id", None)
            if isinstance(request_id, str):
                self.fields["request_id"] = request_id
        span = self._span
        ids = None
        if span is not None:
            try:
                try:
                    self._finish_span(span, outcome, exc)
                    ids = _trace_ids(span)
                except Exception as error:  # noqa: BLE001 (see _otel.failed)
                    failed("setting a span's attributes", error)
            finally:
                try:
                    # Ends the span: the SDK calls each span processor without catching.
                    self._scope.__exit__(None, None, None)
                except Exception as error:  # noqa: BLE001 (see _otel.failed)
                    failed("ending a span", error)
        if self._action is not None:
            # The operation names the span; the event's action says the same.
            fields = {k: v for k, v in self.fields.items() if k != "operation"}
            if ids is not None:
                fields["trace_id"], fields["span_id"] = ids
            _emit(self._action, outcome, fields, exc)

    def _finish_span(self, span: Any, outcome: str, exc: BaseException | None) -> None:
        if not span.is_recording():
            return
        for name, value in self.fields.items():
            shown = _attribute(value)
            if shown is not None:
                span.set_attribute(name if "." in name else _PREFIX + name, shown)
        span.set_attribute(_PREFIX + "outcome", outcome)
        error = type(exc).__name__ if exc is not None else self.fields.get("error.type")
        if isinstance(error, str):
            trace = API.trace()
            span.set_attribute("error.type", error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))


def _emit(action: str, outcome: str, fields: dict[str, Any], error: BaseException | None) -> None:
    """Emit an audit event, naming the flow it is part of (and its api_id, if not known)."""
    scope = _FLOW.get()
    if scope is not None:
        fields.setdefault("flow", scope.flow)
        if fields.get("api_id") is None:
            fields["api_id"] = scope.api_id
    audit.emit(action, outcome, fields, error=error)


def record(action: str, outcome: str, *, error: BaseException | None = None, **fields: Any) -> None:
    """Emit the audit event of a change made by several calls (a compensation), if auditing.

    The current span's ids are added when tracing, and the flow's name and api_id.
    """
    if not audit.enabled():
        return
    trace = API.trace()
    if trace is not None:
        try:
            ids = _trace_ids(trace.get_current_span())
        except Exception as problem:  # noqa: BLE001 (see _otel.failed)
            failed("reading the current span", problem)
            ids = None
        if ids is not None:
            fields["trace_id"], fields["span_id"] = ids
    _emit(action, outcome, fields, error)


class _Nothing:
    """What the helpers return when nothing observes: every method does nothing."""

    __slots__ = ()
    fields: Mapping[str, Any] = {}

    def set(self, **fields: Any) -> None:
        """Do nothing."""

    def happened(self) -> None:
        """Do nothing."""

    def failed(self, error: str) -> None:
        """Do nothing."""

    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


_NOTHING: Final = _Nothing()

#: What :func:`unkey_call` and :func:`store_call` return: an observation, or nothing at work.
Observed = Observation | _Nothing


def unkey_call(
    operation: str,
    action: str | None = None,
    *,
    unsure: tuple[type[BaseException], ...] = (),
    **fields: Any,
) -> Observation | _Nothing:
    """Observe one Unkey request (``operation``: ``keys.createKey``...).

    ``action`` is the audit action when the call changes state (None for reads). ``unsure``
    are the errors after which whether Unkey acted is not known (a 5xx after a create, which
    is never retried): their outcome is ``unknown``.
    """
    audited = action is not None and audit.enabled()
    if not audited and API.tracer() is None:
        return _NOTHING
    fields["operation"] = operation
    return Observation(
        f"unkey {operation}", "client", action if audited else None, True, fields, unsure
    )


def store_call(
    store: str, operation: str, action: str | None = None, **fields: Any
) -> Observation | _Nothing:
    """Observe one call of a store's template method (``operation``: ``put``, ``get``...).

    ``action`` is the audit action of a write (None for reads, whose
    :class:`~unkey_secrets.StoreUnavailableError` is then a failure, not an unknown outcome).
    """
    audited = action is not None and audit.enabled()
    if not audited and API.tracer() is None:
        return _NOTHING
    fields["store"] = store
    fields["operation"] = operation
    return Observation(
        f"{store} {operation}", "client", action if audited else None, action is not None, fields
    )


class FlowScope:
    """One flow being run: its span, its metrics, and what its calls' audit events name.

    Made by :func:`flow`; :meth:`set` adds what the flow learned (the key it made).
    """

    __slots__ = ("_error", "_observation", "_started", "_token", "api_id", "flow")

    def __init__(self, flow_name: str, api_id: str | None, fields: dict[str, Any]) -> None:
        self.flow = flow_name
        self.api_id = api_id
        self._observation = Observation(_PREFIX + flow_name, "internal", None, True, fields)
        self._started = 0.0
        self._error: str | None = None
        self._token: contextvars.Token[FlowScope | None] | None = None

    def set(self, **fields: Any) -> None:
        """Add fields to the flow's span."""
        self._observation.set(**fields)

    def failed(self, error: str) -> None:
        """Say the flow failed with the error class ``error``, though it returns.

        A bulk line reports its failure in its result instead of raising it.
        """
        self._error = error

    def __enter__(self) -> FlowScope:
        self._token = _FLOW.set(self)
        self._started = time.perf_counter()
        self._observation.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            error = self._error if exc is None else type(exc).__name__
            outcome = "failed" if exc is None and error is not None else outcome_of(exc)
            if exc is None and error is not None:
                self._observation._fail(error)
            self._observation.__exit__(exc_type, exc, tb)
            metrics.flow_finished(self.flow, outcome, time.perf_counter() - self._started, error)
        finally:
            if self._token is not None:
                _FLOW.reset(self._token)


def flow(name: str, *, api_id: str | None = None, **fields: Any) -> FlowScope | _Nothing:
    """Observe one flow (``provision``, ``rotate``, ``capture``, ``bulk.line``...).

    Its span is the parent of the calls made inside it; its outcome and duration are
    recorded as metrics; the audit events of its calls name it (``flow``) and its ``api_id``.
    """
    if API.tracer() is None and not audit.enabled() and not metrics.enabled():
        return _NOTHING
    fields["api_id"] = api_id
    return FlowScope(name, api_id, fields)


def current_flow() -> FlowScope | None:
    """The flow running in this context, if one is observed."""
    return _FLOW.get()


def annotate(**attributes: Any) -> None:
    """Set ``unkey_secrets.<name>`` attributes on the current span, if one is recording."""
    trace = API.trace()
    if trace is None:
        return
    try:
        span = trace.get_current_span()
        if span.is_recording():
            for name, value in attributes.items():
                shown = _attribute(value)
                if shown is not None:
                    span.set_attribute(name if "." in name else _PREFIX + name, shown)
    except Exception as error:  # noqa: BLE001 (see _otel.failed)
        failed("setting a span's attributes", error)


def span_event(name: str, **attributes: Any) -> None:
    """Add the event ``name`` to the current span, if one is recording (ids and numbers only)."""
    trace = API.trace()
    if trace is None:
        return
    try:
        span = trace.get_current_span()
        if span.is_recording():
            shown = {}
            for key, value in attributes.items():
                attribute = _attribute(value)
                if attribute is not None:
                    shown[key if "." in key else _PREFIX + key] = attribute
            span.add_event(name, shown)
    except Exception as error:  # noqa: BLE001 (see _otel.failed)
        failed("adding a span event", error)
