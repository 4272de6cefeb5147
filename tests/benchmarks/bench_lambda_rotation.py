"""The rotation Lambda's Unkey calls per step as the API grows: flat, or listing the API.

For APIs holding 10, 1,000 and 10,000 keys, a secret holding one key of the API is rotated by
the Lambda's handler (:class:`~unkey_secrets.aws_lambda.Rotator`), its four steps in turn,
ROTATIONS times. Unkey is the emulator, in process (its own per-operation counters count the
calls); Secrets Manager is the in-memory double. Printed per step: the Unkey calls and how many
of them page ``apis.listKeys`` (the only call that grows with the API). Then the same for a
rotation whose createSecret ran twice (the first attempt died after its reroll): that one is
meant to list, to find the key the dead attempt made.

Goal: the happy path's calls are the same at 10 and at 10,000 keys.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections import Counter

from unkey_secrets import UnkeyClient
from unkey_secrets._payload import key_fields
from unkey_secrets.aws_lambda import RotationConfig, Rotator
from unkey_secrets.rotation.core import MARKER_META_KEY, PREVIOUS_EXPIRES_META_KEY
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

ROTATIONS = int(os.environ.get("BENCH_ROTATIONS", "5"))
SIZES = (10, 1_000, 10_000)
STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
LIST = "apis.listKeys"


def _rotate(
    rotator: Rotator, sm: InMemorySecretsManager, arn: str, emulator: Emulator
) -> dict[str, Counter[str]]:
    """One rotation of ``arn``, its four steps: the Unkey calls each made, by operation."""
    token = sm.start_rotation(arn)
    per_step: dict[str, Counter[str]] = {}
    for step in STEPS:
        before = Counter(emulator.calls)
        rotator.handle({"SecretId": arn, "ClientRequestToken": token, "Step": step})
        calls = Counter(emulator.calls)
        calls.subtract(before)
        per_step[step] = +calls
    return per_step


def _lost_attempt(unkey: UnkeyClient, sm: InMemorySecretsManager, arn: str, api_id: str) -> str:
    """Start a rotation whose first createSecret died after its reroll; returns the token."""
    token = sm.start_rotation(arn)
    current = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
    info = unkey.get_key(current["key_id"])
    marks = {**(info.meta or {}), MARKER_META_KEY: token, PREVIOUS_EXPIRES_META_KEY: info.expires}
    unkey.update_key(info.key_id, meta=marks)
    unkey.reroll_key(info.key_id, expiration_ms=3_600_000, api_id=api_id)
    return token


def _measure(size: int) -> tuple[dict[str, Counter[str]], dict[str, Counter[str]]]:
    emulator = Emulator()
    with UnkeyClient(
        emulator.root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(emulator)
    ) as unkey:
        api_id = emulator.create_api(f"bench-lambda-{size}")
        for index in range(size - 1):
            unkey.create_key(api_id, name=f"seed-{index}")
        original = unkey.create_key(api_id, meta={"team": "billing"})
        sm = InMemorySecretsManager()
        arn = str(
            sm.create_secret(
                Name=f"unkey/{uuid.uuid4().hex}", SecretString=json.dumps(key_fields(original))
            )["ARN"]
        )
        rotator = Rotator(sm, unkey, RotationConfig())
        _rotate(rotator, sm, arn, emulator)  # warm up
        happy: dict[str, Counter[str]] = {step: Counter() for step in STEPS}
        for _ in range(ROTATIONS):
            for step, calls in _rotate(rotator, sm, arn, emulator).items():
                happy[step].update(calls)
        happy = {
            step: Counter({op: n // ROTATIONS for op, n in c.items()}) for step, c in happy.items()
        }

        token = _lost_attempt(unkey, sm, arn, api_id)
        resumed: dict[str, Counter[str]] = {}
        for step in STEPS:
            before = Counter(emulator.calls)
            rotator.handle({"SecretId": arn, "ClientRequestToken": token, "Step": step})
            calls = Counter(emulator.calls)
            calls.subtract(before)
            resumed[step] = +calls
    return happy, resumed


def _row(label: str, size: int, per_step: dict[str, Counter[str]]) -> str:
    cells = " | ".join(
        f"{sum(per_step[step].values()):>6} {per_step[step].get(LIST, 0):>5}" for step in STEPS
    )
    total = sum(sum(c.values()) for c in per_step.values())
    listed = sum(c.get(LIST, 0) for c in per_step.values())
    return f"{label:<14} {size:>6} | {cells} | {total:>6} {listed:>5}"


def main() -> int:
    """Print the table; always succeeds (a benchmark reports, it does not judge)."""
    logging.getLogger("unkey_secrets.aws_lambda").setLevel(logging.WARNING)
    heads = " | ".join(f"{step:>12}" for step in (*STEPS, "total"))
    print(f"{'':<14} {'keys':>6} | {heads}   [calls, of them {LIST} pages]")
    happy_rows, resumed_rows = [], []
    totals: dict[int, int] = {}
    for size in SIZES:
        happy, resumed = _measure(size)
        totals[size] = sum(sum(c.values()) for c in happy.values())
        happy_rows.append(_row("rotation", size, happy))
        resumed_rows.append(_row("after a death", size, resumed))
    for row in (*happy_rows, *resumed_rows):
        print(row, flush=True)
    flat = totals[SIZES[0]] == totals[SIZES[-1]]
    print(
        f"happy path: {totals[SIZES[0]]} Unkey calls at {SIZES[0]:,} keys, "
        f"{totals[SIZES[-1]]} at {SIZES[-1]:,} (goal: the same; {'met' if flat else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
