"""The flows load the rotation's own modules on first use: a provision does not pay for them."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import subprocess
import sys

_ROTATION = (
    "unkey_secrets.rotation.protocol",
    "unkey_secrets.rotation.attempt",
    "unkey_secrets.rotation.record",
    "unkey_secrets.rotation.displace",
)


def _loaded_after(code: str) -> list[str]:
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = json.loads(done.stdout)
    return modules


def test_importing_the_flows_loads_no_rotation_protocol() -> None:
    loaded = _loaded_after("import unkey_secrets.flows")
    assert not set(_ROTATION) & set(loaded)


def test_rotate_leases_as_the_rotation_protocol_does_by_default() -> None:
    from unkey_secrets import flows
    from unkey_secrets.rotation import protocol

    lease = inspect.signature(flows.rotate).parameters["lease"].default
    assert lease is protocol.DEFAULT_LEASE
    assert lease == dt.timedelta(minutes=15)
