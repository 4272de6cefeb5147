"""OpenTelemetry's API, used only once the application has loaded it; never imported here.

A tracer or meter provider can only be set up by code that imports ``opentelemetry.trace``
(or ``opentelemetry.metrics``): the SDK, ``opentelemetry-instrument``, an app's own set-up.
So the API is looked up in ``sys.modules`` on each use, one dictionary lookup, and taken
from there the first time it is found: without the ``otel`` extra, or with it installed but
never set up, nothing is imported and nothing costs.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["API", "INSTRUMENTATION_NAME"]

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

                # A proxy until a provider is set: spans become real from then on.
                self._tracer = module.get_tracer(INSTRUMENTATION_NAME, __version__)
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

                self._meter = module.get_meter(INSTRUMENTATION_NAME, __version__)
        return self._meter


#: The one place the library reaches OpenTelemetry through.
API = _Api()
