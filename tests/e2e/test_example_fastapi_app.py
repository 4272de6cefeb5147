"""examples/fastapi_app.py served through httpx's ASGI transport while the alias is rotated.

The service reads its key from moto's Secrets Manager server through AsyncKeyReader (max_age
1 s) and calls the example's upstream, which asks the Unkey emulator whether the key is valid.
Each of the service's reads of its key is made READ_DELAY longer (a store across a
continent), so a read made on the event loop would stall the loop at least that long. Four
clients call the service continuously while the alias is rotated through the library; a ticker
task measures its own oversleep all along. During each read of the key (timed by hooks on the
reader's own botocore client) the loop's worst lag must stay under LAG_BOUND: in every read
but at most one, since a machine under load deschedules some thread now and then for tens of
milliseconds (any thread, whatever the reader does), and in none up to READ_DELAY, which a read
made on the loop would cost every read.

The heap the test process built before serving (moto's server, boto3, FastAPI, pytest) is
frozen out of the garbage collector while it serves, as a server does after start-up
(``gc.freeze()``): a full collection of it takes 100-300 ms here and stalls any event loop,
whatever the reader does. Keys are compared by key_id, never printed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import importlib.util
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from unkey_secrets import provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.testing.moto import MotoServer

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"
MAX_AGE = 1.0
#: Added to each of the service's GetSecretValue calls (on the thread that makes it).
READ_DELAY = 0.25
#: The most the event loop may lag while the reader refreshes: well under READ_DELAY, the
#: least a read made on the loop would stall it.
LAG_BOUND = 0.050
#: How long after the rotation a request may still be served the old key, past max_age: the
#: refresh that started just before the rotation ended finishes (READ_DELAY and a round trip).
READ_SLACK = 0.5
CLIENTS = 4
#: Each client's pause between two requests: a steady load, not a saturated loop.
PAUSE = 0.05
TICK = 0.005


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_app_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class Served:
    #: (monotonic start, status, key_id served) per request
    calls: list[tuple[float, int, str | None]] = field(default_factory=list)
    #: (monotonic end, oversleep in seconds) per tick
    ticks: list[tuple[float, float]] = field(default_factory=list)
    #: (monotonic start, end) of each of the reader's reads of the key after start-up
    reads: list[tuple[float, float]] = field(default_factory=list)
    rotated_at: float = 0.0

    def worst_lag_per_read(self) -> list[float]:
        """For each read of the key, the worst oversleep of the ticks that overlapped it."""
        return [
            max(
                (lag for end, lag in self.ticks if end - TICK - lag <= b and end >= a),
                default=math.inf,  # not one tick while it ran
            )
            for a, b in self.reads
        ]


async def serve_through_rotation(app: Any, rotate_alias: Any, served: Served) -> str:
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            served.ticks.append((time.monotonic(), time.perf_counter() - started - TICK))

    async def caller(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.monotonic()
            answer = await client.get("/report")
            key_id = answer.json().get("key_id") if answer.status_code == 200 else None
            served.calls.append((started, answer.status_code, key_id))
            await asyncio.sleep(PAUSE)

    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://service"
        ) as client,
    ):
        started: list[float] = []

        def far_away(**_: Any) -> None:  # runs on the reader's worker thread
            started.append(time.monotonic())
            time.sleep(READ_DELAY)

        def answered(**_: Any) -> None:
            served.reads.append((started.pop(), time.monotonic()))

        events = app.state.reader.store.client.meta.events
        events.register("before-send.secrets-manager.GetSecretValue", far_away)
        events.register("after-call.secrets-manager.GetSecretValue", answered)
        tasks = [asyncio.ensure_future(ticker())]
        tasks += [asyncio.ensure_future(caller(client)) for _ in range(CLIENTS)]
        try:
            # Serve through at least one refresh of the old key before the rotation.
            await asyncio.sleep(1.5 * MAX_AGE)
            new_key_id: str = await asyncio.to_thread(rotate_alias)
            served.rotated_at = time.monotonic()
            # Then through the pick-up and one more refresh of the new key.
            await asyncio.sleep(2 * MAX_AGE + READ_SLACK)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
    return new_key_id


def test_the_service_serves_through_a_rotation_with_no_failure_and_a_live_loop(
    aws_env: dict[str, str],
    moto_server: MotoServer,
    unkey_emulator: Any,
    unkey_api_id: str,
) -> None:
    example = load_example()
    writer = SecretsManagerStore(moto_server.client("secretsmanager"))
    with unkey_emulator.client() as operator, unkey_emulator.client() as verifier:
        first = provision(operator, writer, unkey_api_id, alias="billing")

        def rotate_alias() -> str:
            grace = dt.timedelta(hours=1)
            return rotate(
                operator, writer, unkey_api_id, alias="billing", grace_period=grace
            ).key_id

        settings = example.ServiceSettings(
            unkey_api_id=unkey_api_id, key_max_age=MAX_AGE, upstream_url="http://upstream"
        )
        upstream = example.create_upstream(verifier)
        app = example.create_app(settings, upstream_transport=httpx.ASGITransport(app=upstream))
        served = Served()
        gc.collect()
        gc.freeze()
        try:
            second = asyncio.run(serve_through_rotation(app, rotate_alias, served))
        finally:
            gc.unfreeze()

    statuses = [status for _, status, _ in served.calls]
    assert len(statuses) > 50, f"only {len(statuses)} requests were served"
    assert statuses.count(200) == len(statuses), f"{len(statuses) - statuses.count(200)} failed"
    assert {key_id for _, _, key_id in served.calls} == {first.key_id, second}
    deadline = served.rotated_at + MAX_AGE + READ_SLACK
    late = {key_id for started, _, key_id in served.calls if started > deadline}
    assert late == {second}, "the old key was still served max_age after the rotation"

    # The reader refreshed every max_age while it served, each read READ_DELAY long.
    assert len(served.reads) >= 3, served.reads
    worst = served.worst_lag_per_read()
    shown = ", ".join(f"{lag * 1000:.0f}" for lag in worst)
    over = [lag for lag in worst if lag >= LAG_BOUND]
    assert max(worst) < READ_DELAY, f"the event loop stalled during a read: worst ticks {shown} ms"
    assert len(over) <= 1, f"the event loop lagged {LAG_BOUND * 1000:.0f} ms or more: {shown} ms"
