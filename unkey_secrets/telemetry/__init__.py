"""What unkey-secrets tells an operator: audit events, OpenTelemetry spans and metrics.

* :mod:`.audit`: one structured event per change of state (a key created, stored, enabled,
  rotated, cut, deleted; an alias moved; a compensation run), schema
  ``unkey-secrets/audit/v1``, on the logger ``unkey_secrets.audit``; :class:`AuditLogHandler`
  writes them as JSON lines (the CLI's ``--audit-log``). See ``docs/audit.md``.
* :mod:`.tracing`: a span per flow and per Unkey or store call.
* :mod:`.metrics`: flows by outcome and duration; the reader's cache hits, misses, stale
  serves, failed reads and the time it takes to pick up a rotation.

OpenTelemetry is optional (the ``otel`` extra installs ``opentelemetry-api``) and never
imported here: spans and metrics are made once the application has loaded the API (its SDK
set-up or ``opentelemetry-instrument`` does), so without it nothing is imported and nothing
costs (the SDK's own ``OTEL_SDK_DISABLED=true`` turns its side off). See
``docs/telemetry.md``.
"""

from __future__ import annotations

from ._otel import INSTRUMENTATION_NAME
from .audit import (
    ACTIONS,
    ACTOR_VARIABLE,
    AUDIT_LOGGER,
    OUTCOMES,
    SCHEMA,
    AuditLogHandler,
    actor,
    audit_schema,
)

__all__ = [
    "ACTIONS",
    "ACTOR_VARIABLE",
    "AUDIT_LOGGER",
    "INSTRUMENTATION_NAME",
    "OUTCOMES",
    "SCHEMA",
    "AuditLogHandler",
    "actor",
    "audit_schema",
]
