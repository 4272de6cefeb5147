"""The library's rotation at unit speed: the in-process emulator and the in-memory store.

Each test is an input that once broke the protocol; the end state is what the README promises.
"""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from unkey_secrets import (
    FlowError,
    InvalidInputError,
    IssuedKey,
    RetryPolicy,
    RotationConflictError,
    StoredLocation,
    StoreUnavailableError,
    UnkeyClient,
    provision,
    rotate,
)
from unkey_secrets.rotation.record import Owner, RotationRecord
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

GRACE = dt.timedelta(hours=1)
FAST = RetryPolicy(attempts=3, sleep=lambda _: None)


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def unkey(emulator: Emulator) -> Iterator[UnkeyClient]:
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=EmulatorTransport(emulator),
        sleep=lambda _: None,
    ) as client:
        yield client


def live_without_end(emulator: Emulator, api_id: str) -> list[str]:
    return [k.key_id for k in emulator.keys(api_id) if not k.deleted and k.expires is None]


class AnswerLost(InMemoryStore):
    """The first alias write lands, then its answer is lost (a timeout after the write)."""

    lost = False

    def _set_current(self, key: IssuedKey, path: str, alias: str, expected: Any) -> StoredLocation:
        location = super()._set_current(key, path, alias, expected)
        if not self.lost:
            self.lost = True
            raise StoreUnavailableError("no answer", store=self.name)
        return location


def test_an_alias_write_whose_answer_was_lost_is_not_undone(
    emulator: Emulator, unkey: UnkeyClient
) -> None:
    store = AnswerLost()
    api_id = emulator.create_api("lost")
    first = provision(unkey, store, api_id, alias="svc")
    result = rotate(unkey, store, api_id, alias="svc", grace_period=GRACE, retry=FAST)
    assert store.get_current(api_id=api_id, alias="svc").key_id == result.key_id
    assert live_without_end(emulator, api_id) == [result.key_id]
    assert emulator.key(first.key_id).expires is not None


def test_an_interrupt_in_a_long_lived_process_does_not_lock_the_rotation_out(
    emulator: Emulator, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    api_id = emulator.create_api("ctrl-c")
    provision(unkey, store, api_id, alias="svc")
    store.fail_next("set_current", KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        rotate(unkey, store, api_id, alias="svc", grace_period=GRACE, retry=FAST)
    # Same process, same pid: the interrupted attempt is known dead, so this run goes ahead.
    result = rotate(unkey, store, api_id, alias="svc", grace_period=GRACE, retry=FAST)
    assert store.get_current(api_id=api_id, alias="svc").key_id == result.key_id
    assert live_without_end(emulator, api_id) == [result.key_id]


def test_a_key_with_an_unfinished_rotation_is_not_replaced(
    emulator: Emulator, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    api_id = emulator.create_api("replace")
    first = provision(unkey, store, api_id, alias="svc")
    # A rotation of the key claimed on another host and not finished.
    claim = RotationRecord(
        rotation="rot_" + "0" * 24,
        api_id=api_id,
        from_key_id=first.key_id,
        state="claimed",
        aliases=("svc",),
        owner=Owner("elsewhere", "another-host", 1, int(time.time() * 1000)),
    )
    store.write_rotation(claim)
    before = dict(emulator.calls)
    with pytest.raises(RotationConflictError, match="unfinished rotation"):
        provision(unkey, store, api_id, alias="svc", replace=True)
    assert dict(emulator.calls) == before, "refused before Unkey was called"
    assert store.get_current(api_id=api_id, alias="svc").key_id == first.key_id


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_resumed_cut_never_reaches_past_the_originals_own_expiry(
    emulator: Emulator, unkey: UnkeyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = InMemoryStore()
    api_id = emulator.create_api("soon")
    ends = int(time.time() * 1000) + 60_000
    first = provision(unkey, store, api_id, alias="svc", expires=ends)
    # The run dies right after cutting the original (before its record says done), as a
    # process on this host that no longer exists.
    pid = dead_pid()
    monkeypatch.setattr(
        Owner, "me", classmethod(lambda cls, now: Owner("gone", socket.gethostname(), pid, now))
    )
    real = store._write_rotation

    def die_at_done(record: RotationRecord, path: str) -> None:
        if record.state == "done":
            raise SystemExit("killed")
        real(record, path)

    monkeypatch.setattr(store, "_write_rotation", die_at_done)
    with pytest.raises(SystemExit):
        rotate(unkey, store, api_id, alias="svc", grace_period=dt.timedelta(hours=24), retry=FAST)
    monkeypatch.undo()
    assert emulator.key(first.key_id).expires == ends
    again = rotate(
        unkey, store, api_id, first.key_id, grace_period=dt.timedelta(hours=24), retry=FAST
    )
    assert again.outcome == "resumed"
    assert emulator.key(first.key_id).expires == ends, "never later than its own end"


class TakenMeanwhile(InMemoryStore):
    """Another writer creates the alias just before provision's own move."""

    def _set_current(self, key: IssuedKey, path: str, alias: str, expected: Any) -> StoredLocation:
        if expected is None and path not in self._entries:
            other = IssuedKey(
                key_id="key_othertenant", secret=key.secret, api_id=key.api_id, alias=alias
            )
            self._put(other, self.key_location(api_id=key.api_id, key_id=other.key_id))
            super()._set_current(other, path, alias, None)
        return super()._set_current(key, path, alias, expected)


def test_provision_that_loses_its_alias_to_another_writer_leaves_its_key_disabled(
    emulator: Emulator, unkey: UnkeyClient
) -> None:
    store = TakenMeanwhile()
    api_id = emulator.create_api("race")
    with pytest.raises(FlowError, match="taken by another writer") as raised:
        provision(unkey, store, api_id, alias="svc", retry=FAST)
    key_id = raised.value.key_id
    assert key_id is not None
    assert not emulator.key(key_id).enabled, "no alias will name it: it must not be valid"
    assert f"disabled key {key_id}" in raised.value.actions


def test_a_lost_answer_to_the_claim_is_retried_as_the_same_attempt(
    emulator: Emulator, unkey: UnkeyClient
) -> None:
    class ClaimAnswerLost(InMemoryStore):
        lost = False

        def _write_rotation(self, record: Any, path: str) -> None:
            super()._write_rotation(record, path)
            if not self.lost:
                self.lost = True
                raise StoreUnavailableError("no answer", store=self.name)

    store = ClaimAnswerLost()
    api_id = emulator.create_api("claim")
    provision(unkey, store, api_id, alias="svc")
    result = rotate(unkey, store, api_id, alias="svc", grace_period=GRACE, retry=FAST)
    assert result.outcome == "rotated"
    assert live_without_end(emulator, api_id) == [result.key_id]


def test_rotating_a_key_unkey_does_not_know_names_it_and_changes_nothing(
    emulator: Emulator, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    api_id = emulator.create_api("unknown")
    with pytest.raises(InvalidInputError, match="key_doesnotexist is not a key in Unkey"):
        rotate(unkey, store, api_id, "key_doesnotexist", grace_period=GRACE, retry=FAST)
    assert store.locations() == []
