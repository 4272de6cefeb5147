"""The one settling layer: store or undo, naming an error, the cut, a lost answer's keys."""

from __future__ import annotations

import datetime as dt

import pytest

from unkey_secrets import (
    CompensatedError,
    CompensationFailedError,
    StoredLocation,
    StoreUnavailableError,
    UnkeyClient,
)
from unkey_secrets.settle import (
    cut_target,
    describe_error,
    find_marked,
    lost_answer_settled,
    safe_cause,
    store_or_undo,
    undo_create,
)
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

CANARY = "sk_live_canary_value_0123456789"
LOCATION = StoredLocation(store="memory", location="unkey/api_1/key_1", key_id="key_1", version="1")


class Echoing(Exception):
    """A foreign error that quotes its input, as some SDKs do."""


def _fail(exc: BaseException) -> StoredLocation:
    raise exc


def test_a_write_that_landed_is_kept_not_undone() -> None:
    undone: list[BaseException] = []
    got = store_or_undo(
        lambda: _fail(StoreUnavailableError("no answer", store="memory")),
        lambda cause: undone.append(cause) or (),
        key_id="key_1",
        stored=lambda: LOCATION,
    )
    assert got == LOCATION
    assert undone == []


def test_a_write_that_did_not_land_is_undone_and_said_so() -> None:
    with pytest.raises(CompensatedError) as raised:
        store_or_undo(
            lambda: _fail(StoreUnavailableError("down", store="memory")),
            lambda cause: ("deleted key key_1 in Unkey",),
            key_id="key_1",
            stored=lambda: None,
            original_key_id="key_0",
        )
    assert raised.value.key_id == "key_1"
    assert raised.value.original_key_id == "key_0"
    assert raised.value.actions == ("deleted key key_1 in Unkey",)
    assert isinstance(raised.value.__cause__, StoreUnavailableError)


def test_when_the_store_cannot_say_the_unnamed_key_is_undone_and_said_so() -> None:
    # No alias names a key before it is stored: undoing strands no reader.
    undone: list[BaseException] = []
    with pytest.raises(CompensatedError) as raised:
        store_or_undo(
            lambda: _fail(StoreUnavailableError("down", store="memory")),
            lambda cause: undone.append(cause) or ("deleted key key_1 in Unkey",),
            key_id="key_1",
            stored=lambda: _fail(StoreUnavailableError("still down", store="memory")),
        )
    assert len(undone) == 1
    assert raised.value.key_id == "key_1"
    assert "could not say whether the write landed" in str(raised.value)


def test_a_foreign_failure_is_named_by_class_and_never_chained() -> None:
    with pytest.raises(CompensatedError) as raised:
        store_or_undo(
            lambda: _fail(Echoing(CANARY)),
            lambda cause: (),
            key_id="key_1",
            stored=lambda: None,
        )
    assert CANARY not in str(raised.value)
    assert "Echoing" in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_an_interruption_undoes_and_goes_on() -> None:
    undone: list[BaseException] = []
    with pytest.raises(KeyboardInterrupt):
        store_or_undo(
            lambda: _fail(KeyboardInterrupt()),
            lambda cause: undone.append(cause) or (),
            key_id="key_1",
            stored=lambda: None,
        )
    assert len(undone) == 1


def test_describe_error_and_safe_cause_trust_only_our_errors() -> None:
    ours = StoreUnavailableError("vault down", store="vault")
    assert describe_error(ours) == "StoreUnavailableError: vault down"
    assert describe_error(Echoing(CANARY)) == "Echoing"
    assert safe_cause(ours) is ours
    assert safe_cause(Echoing(CANARY)) is None


@pytest.mark.parametrize(
    ("previous", "expected"),
    [(None, 1_000 + 3_600_000), (2_000, 2_000), (10_000_000, 1_000 + 3_600_000)],
)
def test_the_cut_never_outlives_the_keys_own_expiry(previous: int | None, expected: int) -> None:
    assert cut_target(1_000, previous, dt.timedelta(hours=1)) == expected


def test_keys_a_lost_answer_made_are_found_by_marker_and_undone() -> None:
    emulator = Emulator()
    api_id = emulator.create_api("settle")
    with UnkeyClient(
        emulator.root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(emulator)
    ) as unkey:
        marked = unkey.create_key(api_id, meta={"unkey_secrets_op": "op_memory_abc"})
        unkey.create_key(api_id, meta={"unkey_secrets_op": "op_memory_other"})
        found = find_marked(unkey, api_id, "op_memory_abc", None)
        assert [k.key_id for k in found] == [marked.key_id]
        assert find_marked(unkey, api_id, "op_memory_abc", None, exclude={marked.key_id}) == []
        assert undo_create(unkey, marked.key_id, RuntimeError()) == (
            f"deleted key {marked.key_id} in Unkey",
        )
        assert emulator.key(marked.key_id).deleted
        # Gone already is what undoing wants; a delete Unkey refuses is named for revoking.
        assert undo_create(unkey, marked.key_id, RuntimeError())
        emulator.faults.fail_next("keys.deleteKey", times=10, status=500)
        other = unkey.create_key(api_id)
        with pytest.raises(CompensationFailedError, match=f"Revoke key {other.key_id}"):
            undo_create(unkey, other.key_id, RuntimeError())
    error = lost_answer_settled("createKey", [marked.key_id])
    assert error.key_id == marked.key_id
    assert "made by the unanswered request" in str(error)
    assert lost_answer_settled("createKey", []).actions == ("Unkey had not acted",)
