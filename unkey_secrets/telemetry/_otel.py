"""OpenTelemetry's API, used only once the application has loaded it; never imported here.

A tracer or meter provider can only be set up by code that imports ``opentelemetry.trace``
(or ``opentelemetry.metrics``): the SDK, ``opentelemetry-instrument``, an app's own set-up.
So the API is looked up in ``sys.modules`` on each use, one dictionary lookup, and taken
from there the first time it is found: without the ``otel`` extra, or with it installed but
never set up, nothing is imported and nothing costs.

OpenTelemetry never changes what a call does. Whatever it raises (a span processor, which the
SDK calls without catching; a meter whose instruments cannot be made or refuse a measurement;
the API module caught half imported by another thread) is caught where the library calls it,
the call goes on without that span or point, and :func:`failed` says so once per kind of
failure, on the logger ``unkey_secrets.telemetry``, by the error's class alone.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

__all__ = ["API", "INSTRUMENTATION_NAME", "failed"]

_log = logging.getLogger("unkey_secrets.telemetry")
#: The failures :func:`failed` reported already: (what was done, the error's class).
_REPORTED: set[tuple[str, str]] = set()


def failed(doing: str, error: Exception) -> None:
    """Say, once per ``doing`` and error class, that OpenTelemetry raised ``error``.

    Never the error's message: a processor's or exporter's text may quote what it handled.
    """
    seen = (doing, type(error).__name__)
    if seen in _REPORTED:
        return
    _REPORTED.add(seen)
    _log.warning(
        "OpenTelemetry raised %s %s; the call went on without it (reported once)",
        type(error).__name__,
        doing,
    )


#: The instrumentation scope of every span and metric (``opentelemetry.trace.get_tracer``).
INSTRUMENTATION_NAME = "unkey_secrets"


class _Api:
    """The tracer and meter, each taken from the loaded API on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tracer: Any = None
        self._trace: Any = None
        self._meter: Any = None

    def trace(self) -> Any:
        """``opentelemetry.trace`` once something loaded it (else None)."""
        if self._trace is not None:
            return self._trace
        module = sys.modules.get("opentelemetry.trace")
        if module is None:
            return None
        with self._lock:
            if self._trace is None:
                from .. import __version__

                try:
                    # A proxy until a provider is set: spans become real from then on.
                    self._tracer = module.get_tracer(INSTRUMENTATION_NAME, __version__)
                except Exception as error:  # noqa: BLE001 (see failed: asked again next call)
                    failed("getting the tracer", error)
                    return None
                self._trace = module
        return self._trace

    def tracer(self) -> Any:
        """The library's tracer once ``opentelemetry.trace`` is loaded (else None)."""
        return self._tracer if self.trace() is not None else None

    def meter(self) -> Any:
        """The library's meter once ``opentelemetry.metrics`` is loaded (else None)."""
        if self._meter is not None:
            return self._meter
        module = sys.modules.get("opentelemetry.metrics")
        if module is None:
            return None
        with self._lock:
            if self._meter is None:
                from .. import __version__

                try:
                    self._meter = module.get_meter(INSTRUMENTATION_NAME, __version__)
                except Exception as error:  # noqa: BLE001 (see failed: asked again next call)
                    failed("getting the meter", error)
                    return None
        return self._meter


#: The one place the library reaches OpenTelemetry through.
API = _Api()
