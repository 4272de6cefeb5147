"""The in-memory test double: the store contract, failure injection and call recording."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

import unkey_secrets.testing
from unkey_secrets import SecretNotFoundError, StoreConflictError, StoreUnavailableError
from unkey_secrets.stores.base import SecretStore
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import SecretStoreContract, canary_key


class TestInMemoryStore(SecretStoreContract):
    @pytest.fixture
    def store(self) -> SecretStore:
        return InMemoryStore()

    def plant_foreign(self, store: SecretStore, location: str) -> None:
        assert isinstance(store, InMemoryStore)
        store.plant_foreign(location)


@pytest.fixture
def memory() -> InMemoryStore:
    return InMemoryStore()


def _down() -> StoreUnavailableError:
    return StoreUnavailableError("injected", store="memory")


def test_is_exported_and_named_memory() -> None:
    assert "InMemoryStore" in unkey_secrets.testing.__all__
    assert InMemoryStore.name == "memory"


def test_repr_and_entries_never_show_the_plaintext(memory: InMemoryStore) -> None:
    key = canary_key()
    memory.put(key)
    memory.set_current(key, alias="svc")
    plaintext = key.secret.reveal()
    assert plaintext not in repr(memory)
    assert plaintext not in repr(vars(memory))
    assert memory.locations() == sorted(
        [
            memory.key_location(api_id=key.api_id, key_id=key.key_id),
            memory.alias_location(api_id=key.api_id, alias="svc"),
        ]
    )


def test_values_are_the_documented_json(memory: InMemoryStore) -> None:
    key = canary_key()
    memory.put(key)
    memory.set_current(key, alias="svc")
    alias = memory.alias_location(api_id=key.api_id, alias="svc")
    value = json.loads(memory._entries[alias].value)
    assert value["format"] == "unkey-secrets/key/v1"
    assert (value["key_id"], value["key"], value["alias"]) == (
        key.key_id,
        key.secret.reveal(),
        "svc",
    )


def test_set_current_refuses_a_key_that_was_not_put(memory: InMemoryStore) -> None:
    key = canary_key()
    with pytest.raises(SecretNotFoundError):
        memory.set_current(key, alias="svc")
    assert memory.alias_state(api_id=key.api_id, alias="svc") is None


def test_fail_next_raises_before_the_operation_acts(memory: InMemoryStore) -> None:
    key = canary_key()
    memory.fail_next("put", _down())
    with pytest.raises(StoreUnavailableError):
        memory.put(key)
    assert not memory.contains(api_id=key.api_id, key_id=key.key_id)
    assert memory.put(key).created


def test_fail_next_times_and_queueing(memory: InMemoryStore) -> None:
    key = canary_key()
    memory.put(key)
    memory.fail_next("get", _down(), times=2)
    conflict = StoreConflictError("injected", store="memory")
    memory.fail_next("get", conflict)
    for expected in (StoreUnavailableError, StoreUnavailableError, StoreConflictError):
        with pytest.raises(expected):
            memory.get(api_id=key.api_id, key_id=key.key_id)
    assert memory.get(api_id=key.api_id, key_id=key.key_id).secret == key.secret


@pytest.mark.parametrize(
    "operation",
    [
        "put",
        "set_current",
        "alias_state",
        "key_entry",
        "read_rotation",
        "write_rotation",
        "get",
        "get_current",
    ],
)
def test_every_operation_can_be_made_to_fail(memory: InMemoryStore, operation: str) -> None:
    from unkey_secrets.rotation.record import RotationRecord

    key = canary_key()
    memory.put(key)
    memory.set_current(key, alias="svc")
    calls: dict[str, Callable[[], object]] = {
        "put": lambda: memory.put(canary_key()),
        "set_current": lambda: memory.set_current(key, alias="other"),
        "alias_state": lambda: memory.alias_state(api_id=key.api_id, alias="svc"),
        "key_entry": lambda: memory.key_entry(api_id=key.api_id, key_id=key.key_id),
        "read_rotation": lambda: memory.read_rotation(api_id=key.api_id, key_id=key.key_id),
        "write_rotation": lambda: memory.write_rotation(
            RotationRecord(
                rotation="rot_x", api_id=key.api_id, from_key_id=key.key_id, state="claimed"
            )
        ),
        "get": lambda: memory.get(api_id=key.api_id, key_id=key.key_id),
        "get_current": lambda: memory.get_current(api_id=key.api_id, alias="svc"),
    }
    memory.fail_next(operation, _down())
    with pytest.raises(StoreUnavailableError):
        calls[operation]()
    calls[operation]()  # the next call goes through


def test_fail_next_refuses_an_unknown_operation(memory: InMemoryStore) -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        memory.fail_next("delete", _down())
    with pytest.raises(ValueError, match="times"):
        memory.fail_next("get", _down(), times=0)


def test_calls_records_each_operation_in_order(memory: InMemoryStore) -> None:
    key = canary_key()
    memory.fail_next("alias_state", _down())
    memory.put(key)
    memory.contains(api_id=key.api_id, key_id=key.key_id)
    memory.set_current(key, alias="svc")
    with pytest.raises(StoreUnavailableError):
        memory.alias_state(api_id=key.api_id, alias="svc")
    memory.get_current(api_id=key.api_id, alias="svc")
    assert memory.calls == ["put", "key_entry", "set_current", "alias_state", "get_current"]


def test_get_current_is_one_read(memory: InMemoryStore) -> None:
    key = canary_key()
    memory.put(key)
    memory.set_current(key, alias="svc")
    memory.calls.clear()
    assert memory.get_current(api_id=key.api_id, alias="svc").secret == key.secret
    assert memory.calls == ["get_current"]


def test_concurrent_conditional_moves_have_one_winner(memory: InMemoryStore) -> None:
    first = canary_key()
    memory.put(first)
    memory.set_current(first, alias="svc")
    state = memory.alias_state(api_id=first.api_id, alias="svc")
    contenders = [canary_key(api_id=first.api_id) for _ in range(8)]
    for key in contenders:
        memory.put(key)
    outcomes: list[bool] = []
    barrier = threading.Barrier(len(contenders))

    def move(key_index: int) -> None:
        barrier.wait()
        try:
            memory.set_current(contenders[key_index], alias="svc", expected=state)
        except StoreConflictError:
            outcomes.append(False)
        else:
            outcomes.append(True)

    threads = [threading.Thread(target=move, args=(i,)) for i in range(len(contenders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [False] * 7 + [True]
