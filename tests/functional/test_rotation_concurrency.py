"""A rotation's calls made at once, against OpenBao, moto's server and the Unkey emulator.

The calls of a group really overlap in time, each keeps the flow's trace (its span is a child
of the rotation's) and its audit event; an interruption or a failure inside a group leaves no
thread running and settles as the sequential code settled it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from unkey_secrets import (
    CompensatedError,
    RetryPolicy,
    SecretStore,
    StoreUnavailableError,
    UnkeyClient,
    UnkeyServerError,
    provision,
    rotate,
)
from unkey_secrets.testing.emulator import EmulatorServer

from .._telemetry import Collected, collected

pytestmark = pytest.mark.functional

GRACE = dt.timedelta(hours=1)
NO_RETRY = RetryPolicy(attempts=1, sleep=lambda _: None)


@pytest.fixture
def seen() -> Iterator[Collected]:
    with collected() as gathered:
        yield gathered


def _overlap(a: ReadableSpan, b: ReadableSpan) -> bool:
    assert a.start_time is not None
    assert a.end_time is not None
    assert b.start_time is not None
    assert b.end_time is not None
    return a.start_time < b.end_time and b.start_time < a.end_time


def test_a_rotations_calls_made_at_once_overlap_in_its_one_trace(
    unkey_client: UnkeyClient,
    store: SecretStore,
    unkey_emulator_server: EmulatorServer,
    seen: Collected,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("together")
    provision(unkey_client, store, api_id, alias="svc")
    rotated = rotate(unkey_client, store, api_id, alias="svc", grace_period=GRACE)
    flow = seen.span("unkey_secrets.rotate")
    assert flow.context is not None
    inside = [s for s in seen.spans if s.context and s.context.trace_id == flow.context.trace_id]
    calls = [s for s in inside if s is not flow]
    # Every call of the rotation, on whichever thread it ran, is a child of the flow's span.
    assert calls
    assert all(s.parent is not None and s.parent.span_id == flow.context.span_id for s in calls)
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in calls:
        by_name.setdefault(span.name, []).append(span)
    name = store.name
    (read,) = by_name["unkey keys.getKey"]
    claim, done = sorted(by_name[f"{name} write_rotation"], key=lambda s: s.start_time or 0)
    (put,) = by_name[f"{name} put"]
    (prepared,) = by_name[f"{name} prepare_move"]
    cut = max(by_name["unkey keys.updateKey"][:2], key=lambda s: s.start_time or 0)
    assert _overlap(read, claim), "the original read and the claim at once"
    assert _overlap(put, prepared), "the put and the move's preparation at once"
    assert _overlap(cut, done), "the cut and the record marked done at once"
    # Each audit event names the flow's trace and its own call's span.
    trace_id = format(flow.context.trace_id, "032x")
    events = [e for e in seen.events if e.get("flow") == "rotate"]
    assert events
    assert {e["trace_id"] for e in events} == {trace_id}
    spans = {format(s.context.span_id, "016x") for s in calls if s.context}
    assert {e["span_id"] for e in events} <= spans, "each names its own call's span"
    actions = sorted(e["action"] for e in events)
    # The mark and the strip are key.updated; the cut key.cut.
    expected = ["key.updated", "key.rotated", "key.stored", "alias.moved", "key.cut", "key.updated"]
    assert actions == sorted(expected)
    assert all(e["api_id"] == api_id for e in events)
    assert rotated.outcome == "rotated"


class _Interrupted(BaseException):
    """Stands for a Ctrl-C arriving while one call of a group is in flight."""


def test_an_interruption_inside_a_group_leaves_no_thread_running(
    unkey_client: UnkeyClient,
    store: SecretStore,
    unkey_emulator_server: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("interrupted")
    provision(unkey_client, store, api_id, alias="svc")
    ended = threading.Event()
    real_put = type(store).put

    def put(self: SecretStore, key: Any) -> Any:
        try:
            return real_put(self, key)
        finally:
            ended.set()

    def prepare(self: SecretStore, *args: Any, **kwargs: Any) -> None:
        raise _Interrupted

    monkeypatch.setattr(type(store), "put", put)
    monkeypatch.setattr(type(store), "prepare_move", prepare)
    with pytest.raises(_Interrupted):
        rotate(unkey_client, store, api_id, alias="svc", grace_period=GRACE)
    assert ended.is_set(), "raised once the put beside it had ended"
    calls = [t for t in threading.enumerate() if t.name.startswith("unkey-secrets-call-")]
    assert calls == [], "no call of the group left running"


def test_a_failed_read_of_the_original_releases_the_claim_made_beside_it(
    unkey_emulator_server: EmulatorServer,
    store: SecretStore,
    unkey_client: UnkeyClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("read-fails")
    first = provision(unkey_client, store, api_id, alias="svc")

    def down(self: UnkeyClient, key_id: str, **kwargs: Any) -> Any:
        raise UnkeyServerError(
            operation="keys.getKey",
            status=503,
            error_type="about:blank",
            title="unavailable",
            detail="unavailable",
            request_id=None,
        )

    with monkeypatch.context() as patch:
        patch.setattr(UnkeyClient, "get_key", down)
        with pytest.raises(UnkeyServerError):
            rotate(unkey_client, store, api_id, alias="svc", grace_period=GRACE)
    # The claim made beside the read is given up: the next run, from any host, goes on at once
    # (taking the released record over, as after any attempt that undid itself).
    record = store.read_rotation(api_id=api_id, key_id=first.key_id)
    assert record is not None
    assert (record.state, record.owner, record.key_id) == ("released", None, None)
    assert unkey_emulator_server.emulator.key(first.key_id).meta in (None, {}), "never marked"
    again = rotate(unkey_client, store, api_id, alias="svc", grace_period=GRACE)
    assert again.original_key_id == first.key_id
    assert store.get_current(api_id=api_id, alias="svc").key_id == again.key_id


def test_a_failed_put_beside_a_prepared_move_is_undone_and_the_alias_unchanged(
    unkey_emulator_server: EmulatorServer,
    store: SecretStore,
    unkey_client: UnkeyClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api_id = unkey_emulator_server.emulator.create_api("put-fails")
    first = provision(unkey_client, store, api_id, alias="svc")

    def down(self: SecretStore, key: Any) -> Any:
        raise StoreUnavailableError("put: down", store=self.name)

    with monkeypatch.context() as patch:
        patch.setattr(type(store), "put", down)
        with pytest.raises(CompensatedError) as failed:
            rotate(unkey_client, store, api_id, alias="svc", grace_period=GRACE, retry=NO_RETRY)
    new_key = failed.value.key_id
    assert new_key is not None
    emulator = unkey_emulator_server.emulator
    assert emulator.key(new_key).deleted, "the new key was deleted"
    assert emulator.key(first.key_id).expires is None, "the original put back"
    state = store.alias_state(api_id=api_id, alias="svc")
    assert state is not None
    assert state.key_id == first.key_id
    assert store.get_current(api_id=api_id, alias="svc").key_id == first.key_id
    # The prepared move left nothing in the way: the next rotation moves the alias.
    again = rotate(unkey_client, store, api_id, alias="svc", grace_period=GRACE)
    assert store.get_current(api_id=api_id, alias="svc").key_id == again.key_id
