"""The simulated world: one clock, the Unkey emulator and a store, every call a point.

Unkey requests pass through :class:`GatedTransport` and store calls through
:class:`GatedStore`; both stop at the scheduler's point and act out the fault it hands back:

* ``kill``: the actor stops there for good (the scheduler does it);
* ``unkey_503``: Unkey answers 503 to this request and every retry of it;
* ``unkey_dropped``: Unkey acts, then the connection drops before the answer;
* ``unkey_429``: Unkey answers 429 with a Retry-After far past the client's backoff cap;
* ``store_down``: this store call fails before acting (one blip: a retry gets through);
* ``store_outage``: this store call and the actor's next four fail before acting;
* ``store_lost``: a store write lands, then its answer is lost.

Each actor is a process of its own (host, pid) as the rotation record sees it; a killed
actor's process is dead, and so is a finished one's (it exited).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx

from unkey_secrets import RetryPolicy, StoreUnavailableError, UnkeyClient
from unkey_secrets._concurrent import RUNNER
from unkey_secrets.rotation.record import PROCESSES, Owner
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

from .scheduler import Fault, Pick, Scheduler

#: Where the simulated clock starts (Unix seconds): fixed, so every run is the same.
EPOCH = 1_800_000_000.0
GRACE = dt.timedelta(hours=1)

UNKEY_FAULTS = ("kill", "unkey_503", "unkey_dropped", "unkey_429")
STORE_READ_FAULTS = ("kill", "store_down", "store_outage")
STORE_WRITE_FAULTS = (*STORE_READ_FAULTS, "store_lost")
STORE_WRITES = frozenset({"put", "prepare_move", "set_current", "write_rotation"})


class Clock:
    """Simulated Unix seconds; each scheduling step and each sleep moves it on."""

    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += 0.001

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)

    def ms(self) -> int:
        return int(self.now * 1000)


class SimProcesses:
    """The process table of the simulated hosts; each actor thread sees itself as one."""

    def __init__(self) -> None:
        self.alive: set[tuple[str, int]] = set()
        self.next_pid = 1000

    def spawn(self, host: str) -> tuple[str, int]:
        self.next_pid += 1
        me = (host, self.next_pid)
        self.alive.add(me)
        return me

    def view(self, me: tuple[str, int]) -> _ProcessView:
        return _ProcessView(self, me)


class _ProcessView:
    def __init__(self, table: SimProcesses, me: tuple[str, int]) -> None:
        self.table = table
        self.me = me

    def current(self) -> tuple[str, int]:
        return self.me

    def is_alive(self, owner: Owner) -> bool:
        if owner.host != self.me[0]:
            return True  # another host's process: this one cannot tell
        return (owner.host, owner.pid) in self.table.alive


class GatedTransport(httpx.BaseTransport):
    """The emulator in-process, each request a scheduling point."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.inner = EmulatorTransport(world.emulator)
        self.failing: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        operation = path.rsplit("/", 1)[-1]
        fault = self.world.scheduler.point("unkey:" + operation)
        if self.failing is not None and self.failing != operation:
            self.failing = None
        if fault == "unkey_503" or self.failing == operation:
            self.failing = operation
            return _error(request, 503, "service unavailable")
        if fault == "unkey_429":
            response = _error(request, 429, "too many requests")
            response.headers["Retry-After"] = "3600"
            return response
        response = self.inner.handle_request(request)
        if fault == "unkey_dropped":
            raise httpx.RemoteProtocolError("connection dropped", request=request)
        return response


def _error(request: httpx.Request, status: int, title: str) -> httpx.Response:
    body = {
        "meta": {"requestId": "req_sim"},
        "error": {"title": title, "detail": title, "status": status, "type": "about:blank"},
    }
    return httpx.Response(status, content=json.dumps(body).encode(), request=request)


class GatedStore(InMemoryStore):
    """The in-memory store, each call a scheduling point (set up by :class:`World`)."""

    world: World
    outage: dict[int, int]

    def _gate(self, hook: str, call: Callable[[], Any]) -> Any:
        operation = hook.lstrip("_")
        fault = self.world.scheduler.point("store:" + operation)
        actor = self.world.scheduler.current()
        index = actor.index if actor is not None else -1
        if fault == "store_outage":
            self.outage[index] = 5
        if self.outage.get(index, 0) > 0:
            self.outage[index] -= 1
            raise StoreUnavailableError(f"{operation}: store unavailable", store=self.name)
        if fault == "store_down" or (fault == "store_lost" and operation not in STORE_WRITES):
            raise StoreUnavailableError(f"{operation}: store unavailable", store=self.name)
        result = call()
        if fault == "store_lost":
            raise StoreUnavailableError(f"{operation}: no answer", store=self.name)
        return result

    def _put(self, *args: Any) -> Any:
        return self._gate("_put", lambda: super(GatedStore, self)._put(*args))

    def _set_current(self, *args: Any) -> Any:
        return self._gate("_set_current", lambda: super(GatedStore, self)._set_current(*args))

    def _prepare_move(self, *args: Any) -> None:
        self._gate("_prepare_move", lambda: super(GatedStore, self)._prepare_move(*args))

    def _alias_state(self, *args: Any) -> Any:
        return self._gate("_alias_state", lambda: super(GatedStore, self)._alias_state(*args))

    def _key_entry(self, *args: Any) -> Any:
        return self._gate("_key_entry", lambda: super(GatedStore, self)._key_entry(*args))

    def _read_rotation(self, *args: Any) -> Any:
        return self._gate("_read_rotation", lambda: super(GatedStore, self)._read_rotation(*args))

    def _write_rotation(self, *args: Any) -> Any:
        return self._gate("_write_rotation", lambda: super(GatedStore, self)._write_rotation(*args))

    def _get(self, *args: Any) -> Any:
        return self._gate("_get", lambda: super(GatedStore, self)._get(*args))

    def _get_current(self, *args: Any) -> Any:
        return self._gate("_get_current", lambda: super(GatedStore, self)._get_current(*args))

    def _check_writable(self) -> None:
        self._gate("_check_writable", lambda: super(GatedStore, self)._check_writable())


class World:
    """One schedule's world: clock, emulator, store, processes, and the scheduler."""

    def __init__(self, prefix: list[Pick], fault: Fault | None) -> None:
        self.clock = Clock()
        self.emulator = Emulator(clock=self.clock)
        self.processes = SimProcesses()
        self.scheduler = Scheduler(prefix, fault, advance=self.clock.tick)
        self.store = GatedStore()
        self.store.world = self
        self.store.outage = {}
        self.retry = RetryPolicy(attempts=3, sleep=self.clock.sleep)
        self.api_id = self.emulator.create_api("sim")
        self.clients: list[UnkeyClient] = []

    def client(self) -> UnkeyClient:
        """An Unkey client whose every request is a point (sleeps move the clock)."""
        client = UnkeyClient(
            self.emulator.root_key,
            base_url="http://127.0.0.1",
            transport=GatedTransport(self),
            sleep=self.clock.sleep,
        )
        self.clients.append(client)
        return client

    def actor(self, name: str, body: Callable[[UnkeyClient], Any], *, host: str = "h1") -> None:
        """Add an actor: a new process on ``host`` running ``body`` with its own client."""
        me = self.processes.spawn(host)
        client = self.client()

        def setup() -> None:
            PROCESSES.set(self.processes.view(me))
            # Calls a flow issues together run as strands of this actor.
            RUNNER.set(self.scheduler.run_group)

        def run() -> Any:
            try:
                return body(client)
            finally:
                # The process exits (a killed one never gets here: it stays dead).
                self.processes.alive.discard(me)

        self.scheduler.add(name, run, setup, lambda: self.processes.alive.discard(me))

    def as_process(self, host: str = "h1") -> tuple[str, int]:
        """Make the calling thread a new process on ``host`` (set-up and recovery)."""
        me = self.processes.spawn(host)
        PROCESSES.set(self.processes.view(me))
        # Outside the actors (set-up, recovery), calls issued together run one by one, in order.
        RUNNER.set(self.scheduler.run_group)
        return me

    def close(self) -> None:
        self.scheduler.close()
        for client in self.clients:
            client.close()
