"""OpenTelemetry costs nothing unless the application loaded it: the library never imports it.

Each case runs a provision and a rotation in a fresh interpreter (the in-process emulator and
the in-memory store) and reports which ``opentelemetry`` modules it ended with.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_FLOWS = """
import json, sys
{prelude}
from unkey_secrets import UnkeyClient, provision, rotate
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

emulator = Emulator()
api_id = emulator.create_api("imports")
store = InMemoryStore()
with UnkeyClient(
    emulator.root_key, base_url="http://127.0.0.1:9", transport=EmulatorTransport(emulator)
) as unkey:
    provision(unkey, store, api_id, alias="svc")
    rotate(unkey, store, api_id, alias="svc")
{after}
print(json.dumps({{
    "modules": sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"),
    "spans": spans,
}}))
"""

#: Makes ``import opentelemetry`` fail, as where the extra is not installed.
_NOT_INSTALLED = """
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "opentelemetry":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None
sys.meta_path.insert(0, _Absent())
"""

#: The application sets up the SDK before using the library.
_SET_UP = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
"""


def _run(prelude: str, after: str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    code = _FLOWS.format(prelude=textwrap.dedent(prelude), after=textwrap.dedent(after))
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, list[str]] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_installed_but_not_set_up_nothing_is_imported() -> None:
    seen = _run("", "spans = []")
    assert seen["modules"] == []


def test_not_installed_the_flows_run_and_nothing_is_imported() -> None:
    seen = _run(_NOT_INSTALLED, "spans = []")
    assert seen["modules"] == []


def test_set_up_by_the_application_the_flows_are_traced() -> None:
    # The control: the same flows, with an SDK the application set up, make spans.
    seen = _run(_SET_UP, "spans = sorted({s.name for s in exporter.get_finished_spans()})")
    assert "opentelemetry.trace" in seen["modules"]
    assert {"unkey_secrets.provision", "unkey_secrets.rotate", "unkey keys.rerollKey"} <= set(
        seen["spans"]
    )
