"""issue 14, kind 7: bulk under Unkey's rate limit, and a run killed at every call of a line.

In-process: the emulator over a transport, the in-memory store. A kill is a BaseException
raised from the transport or a store hook; once it fired, every later call of that run raises
it too, so nothing after it runs (as when the process dies).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from unkey_secrets import StoreUnavailableError, UnkeyClient
from unkey_secrets.bulk import DONE, BulkLine, LineResult, provision_many
from unkey_secrets.flows import RetryPolicy
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

NO_WAIT = RetryPolicy(sleep=lambda _: None)
#: The in-memory store's hooks: one per round trip a real store makes.
HOOKS = ("_put", "_set_current", "_alias_state", "_key_entry", "_get", "_get_current")


class Killed(BaseException):
    """The process died here."""


class FakeTime:
    """A clock that only moves when something sleeps; thread-safe."""

    def __init__(self) -> None:
        # At the start of one of the emulator's 12 s windows: a 429 then asks for 12 s,
        # more than the client's 10 s backoff cap.
        self.now = 12.0 * 100_000
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += max(0.0, seconds)


class Killer:
    """Counts calls; kills the run at call ``at`` (before it acts, or after: answer lost)."""

    def __init__(self, at: int | None = None, phase: str = "before") -> None:
        self.at = at
        self.phase = phase
        self.calls: list[str] = []
        self.dead = False

    def before(self, name: str) -> int:
        if self.dead:
            raise Killed(name)
        self.calls.append(name)
        index = len(self.calls) - 1
        if index == self.at and self.phase == "before":
            self.dead = True
            raise Killed(name)
        return index

    def after(self, index: int) -> None:
        if index == self.at and self.phase == "after":
            self.dead = True
            raise Killed(self.calls[index])


class KillTransport(EmulatorTransport):
    def __init__(self, emulator: Emulator, killer: Killer) -> None:
        super().__init__(emulator)
        self.killer = killer

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        index = self.killer.before("unkey " + request.url.path.removeprefix("/v2/"))
        response = super().handle_request(request)
        self.killer.after(index)
        return response


class KillStore(InMemoryStore):
    """An in-memory store whose every hook is a point where the run may die."""

    killer = Killer()

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name not in HOOKS:
            return attribute
        killer = super().__getattribute__("killer")

        def hook(*args: Any, **kwargs: Any) -> Any:
            index = killer.before("store " + name.lstrip("_"))
            result = attribute(*args, **kwargs)
            killer.after(index)
            return result

        return hook


def client(emulator: Emulator, killer: Killer | None = None) -> UnkeyClient:
    transport = KillTransport(emulator, killer or Killer())
    return UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=transport,
        sleep=lambda _: None,
    )


def run(unkey: UnkeyClient, store: InMemoryStore, lines: list[BulkLine]) -> list[LineResult]:
    # exclusive: the bulk command passes it while it holds the file's lock.
    fake = FakeTime()
    results = provision_many(
        unkey,
        store,
        lines,
        concurrency=1,
        retry=NO_WAIT,
        sleep=fake.sleep,
        clock=fake.clock,
        exclusive=True,
    )
    return list(results)


def live(emulator: Emulator, api_id: str) -> set[str]:
    return {k.key_id for k in emulator.keys(api_id) if not k.deleted and k.enabled}


def assert_one_live_key_per_line(
    emulator: Emulator, store: InMemoryStore, api_id: str, lines: list[BulkLine]
) -> None:
    keys = set()
    for line in lines:
        if line.alias is not None:
            key_id = store.get_current(api_id=api_id, alias=line.alias).key_id
        else:
            (key_id,) = [
                k.key_id
                for k in emulator.keys(api_id)
                if not k.deleted and k.enabled and k.external_id == line.external_id
            ]
        assert store.contains(api_id=api_id, key_id=key_id)
        key = emulator.key(key_id)
        assert key.enabled
        assert not key.deleted
        keys.add(key_id)
    assert live(emulator, api_id) == keys


LINES = {
    "alias": {"alias": "billing", "name": "Billing", "meta": {"team": "pay"}},
    "alias+externalId": {"alias": "billing", "external_id": "tenant_1"},
    "externalId": {"external_id": "tenant_2"},
}


def _clean_calls(shape: str) -> list[str]:
    emulator = Emulator()
    api_id = emulator.create_api("bulk")
    killer = Killer()
    store = KillStore()
    store.killer = killer
    with client(emulator, killer) as unkey:
        results = run(unkey, store, [BulkLine(number=1, api_id=api_id, **LINES[shape])])
    assert [r.status for r in results] == ["created"]
    return killer.calls


def _cases() -> Iterator[Any]:
    for shape in LINES:
        calls = _clean_calls(shape)
        for index, call in enumerate(calls):
            for phase in ("before", "after"):
                yield pytest.param(shape, index, phase, id=f"{shape}-{index}-{call}-{phase}")


@pytest.mark.parametrize(("shape", "index", "phase"), list(_cases()))
def test_a_run_killed_at_any_call_is_finished_by_the_rerun(
    shape: str, index: int, phase: str
) -> None:
    emulator = Emulator()
    api_id = emulator.create_api("bulk")
    lines = [BulkLine(number=1, api_id=api_id, **LINES[shape])]  # type: ignore[arg-type]
    killer = Killer(index, phase)
    store = KillStore()
    store.killer = killer
    with client(emulator, killer) as unkey, pytest.raises(Killed):
        run(unkey, store, lines)
    assert killer.dead
    store.killer = Killer()
    with client(emulator) as unkey:
        again = run(unkey, store, lines)
    assert [r.status for r in again if r.status not in DONE] == [], again
    assert_one_live_key_per_line(emulator, store, api_id, lines)
    with client(emulator) as unkey:
        assert [r.status for r in run(unkey, store, lines)] == ["exists"]
    assert_one_live_key_per_line(emulator, store, api_id, lines)


def test_the_clean_run_is_what_the_matrix_kills() -> None:
    # The enumeration is not empty and reaches every kind of call of a safe-mode line.
    calls = _clean_calls("alias")
    wanted = {"unkey keys.createKey", "unkey keys.updateKey", "store put", "store set_current"}
    assert wanted <= set(calls)


# -- the rate limit -------------------------------------------------------------------------


def test_a_rate_limited_file_ends_stored_enabled_and_aliased() -> None:
    """Unkey's 5 requests per 12 s, 8 lines at concurrency 2: Retry-After beyond the cap."""
    fake = FakeTime()
    emulator = Emulator(clock=fake.clock, rate_limit=(5, 12))
    api_id = emulator.create_api("bulk")
    store = InMemoryStore()
    lines = [BulkLine(number=i, api_id=api_id, alias=f"svc{i}") for i in range(1, 9)]
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=EmulatorTransport(emulator),
        sleep=fake.sleep,
    ) as unkey:
        results = list(
            provision_many(
                unkey,
                store,
                lines,
                concurrency=2,
                retry=NO_WAIT,
                sleep=fake.sleep,
                clock=fake.clock,
            )
        )
        assert Counter(r.status for r in results) == {"created": 8}, results
        assert all(r.attempts == 1 for r in results)  # a 429 is not an attempt
        assert_one_live_key_per_line(emulator, store, api_id, lines)
        for key in emulator.keys(api_id):
            assert "unkey_secrets_op" not in (key.meta or {})
        again = list(provision_many(unkey, store, lines, sleep=fake.sleep, clock=fake.clock))
        assert Counter(r.status for r in again) == {"exists": 8}


def test_a_rerun_holding_the_lock_finishes_a_half_done_alias_line_at_once() -> None:
    emulator = Emulator()
    api_id = emulator.create_api("bulk")
    store = InMemoryStore()
    lines = [BulkLine(number=1, api_id=api_id, alias="billing")]
    # Fast mode: the key is stored (valid) and the alias move keeps failing: half done. (Safe
    # mode leaves a disabled key there, which no re-run needs to adopt.)
    store.fail_next("set_current", StoreUnavailableError("down", store="memory"), times=10)
    with client(emulator) as unkey:
        first = list(provision_many(unkey, store, lines, mode="fast", retry=NO_WAIT))
        assert first[0].status == "failed"
        assert first[0].key_id is not None
        store.clear_failures()
        # Without the lock's guarantee, a young half-done key may be another run's.
        busy = list(provision_many(unkey, store, lines, mode="fast", retry=NO_WAIT))
        assert busy[0].error == "LineInProgressError"
        again = list(
            provision_many(unkey, store, lines, mode="fast", retry=NO_WAIT, exclusive=True)
        )
    assert again[0].status == "completed"
    assert again[0].key_id == first[0].key_id
    assert_one_live_key_per_line(emulator, store, api_id, lines)
