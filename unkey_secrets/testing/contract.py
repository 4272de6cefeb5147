"""Contract tests every secret store must pass; backends subclass :class:`SecretStoreContract`.

A backend's test module provides two things::

    class TestMyStore(SecretStoreContract):
        @pytest.fixture
        def store(self) -> SecretStore: ...           # a store on a real (test) server

        def plant_foreign(self, store, location): ...  # write a secret we did not create

and inherits every test below, the same for built-in and third-party stores.
"""

from __future__ import annotations

import copy
import pickle
import secrets
import string

import pytest

from .._errors import InvalidInputError, NotOwnedError, SecretNotFoundError
from .._models import IssuedKey, StoredLocation
from .._secret import Secret
from ..stores.base import SecretStore

__all__ = ["SecretStoreContract", "canary_key", "random_id"]

_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str) -> str:
    """Return an Unkey-shaped id such as ``key_3fG9aK1pQ``."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def canary_key(
    *, api_id: str | None = None, key_id: str | None = None, rerolled_from: str | None = None
) -> IssuedKey:
    """Return an :class:`IssuedKey` whose plaintext is a recognisable random canary."""
    return IssuedKey(
        key_id=key_id or random_id("key"),
        secret=Secret("canary_" + secrets.token_hex(16)),
        api_id=api_id or random_id("api"),
        request_id=random_id("req"),
        name="contract",
        rerolled_from=rerolled_from,
    )


def _assert_no_plaintext(obj: object, key: IssuedKey) -> None:
    plaintext = key.secret.reveal()
    for rendering in (repr(obj), str(obj), f"{obj}"):
        assert plaintext not in rendering


class SecretStoreContract:
    """The behaviour every :class:`~unkey_secrets.stores.SecretStore` promises."""

    @pytest.fixture
    def store(self) -> SecretStore:
        """Return the store under test, talking to a real server."""
        raise NotImplementedError("a backend's test class provides the store fixture")

    def plant_foreign(self, store: SecretStore, location: str) -> None:
        """Create a secret at ``location`` the way another tool would (no ownership marker)."""
        raise NotImplementedError("a backend's test class provides plant_foreign")

    def test_put_then_get_returns_the_key(self, store: SecretStore) -> None:
        key = canary_key()
        stored = store.put(key)
        assert isinstance(stored, StoredLocation)
        assert stored.created
        assert stored.key_id == key.key_id
        assert stored.store == store.name
        read = store.get(api_id=key.api_id, key_id=key.key_id)
        assert read.key_id == key.key_id
        assert read.api_id == key.api_id
        assert read.secret == key.secret

    def test_location_record_holds_no_plaintext(self, store: SecretStore) -> None:
        key = canary_key()
        stored = store.put(key)
        _assert_no_plaintext(stored, key)
        _assert_no_plaintext(store.get(api_id=key.api_id, key_id=key.key_id), key)

    def test_put_twice_is_a_no_op(self, store: SecretStore) -> None:
        key = canary_key()
        first = store.put(key)
        second = store.put(key)
        assert not second.created
        assert second.location == first.location
        assert second.version == first.version

    def test_put_refuses_a_secret_it_did_not_create(self, store: SecretStore) -> None:
        key = canary_key()
        location = store.key_location(api_id=key.api_id, key_id=key.key_id)
        self.plant_foreign(store, location)
        with pytest.raises(NotOwnedError) as raised:
            store.put(key)
        assert key.secret.reveal() not in repr(raised.value)
        assert key.secret.reveal() not in str(raised.value)

    def test_contains_tells_a_stored_key_from_a_missing_or_foreign_one(
        self, store: SecretStore
    ) -> None:
        key = canary_key()
        assert not store.contains(api_id=key.api_id, key_id=key.key_id)
        store.put(key)
        assert store.contains(api_id=key.api_id, key_id=key.key_id)
        foreign = canary_key()
        self.plant_foreign(store, store.key_location(api_id=foreign.api_id, key_id=foreign.key_id))
        assert not store.contains(api_id=foreign.api_id, key_id=foreign.key_id)

    def test_check_writable_refuses_bad_input_before_any_io(self, store: SecretStore) -> None:
        store.check_writable(api_id=random_id("api"), alias="svc")
        with pytest.raises(InvalidInputError):
            store.check_writable(api_id="../x")
        with pytest.raises(InvalidInputError):
            store.check_writable(api_id=random_id("api"), alias="..")

    def test_get_of_a_missing_key_raises_not_found(self, store: SecretStore) -> None:
        with pytest.raises(SecretNotFoundError):
            store.get(api_id=random_id("api"), key_id=random_id("key"))

    def test_set_current_points_the_name_at_the_key(self, store: SecretStore) -> None:
        first = canary_key()
        store.put(first)
        store.set_current(first, name="service-a")
        assert store.get_current(api_id=first.api_id, name="service-a").secret == first.secret

        second = canary_key(api_id=first.api_id, rerolled_from=first.key_id)
        store.put(second)
        moved = store.set_current(second, name="service-a")
        assert moved.created
        current = store.get_current(api_id=first.api_id, name="service-a")
        assert current.key_id == second.key_id
        assert current.secret == second.secret

    def test_set_current_again_is_a_no_op(self, store: SecretStore) -> None:
        key = canary_key()
        store.put(key)
        first = store.set_current(key, name="svc")
        again = store.set_current(key, name="svc")
        assert not again.created
        assert again.version == first.version

    def test_set_current_refuses_a_name_it_did_not_create(self, store: SecretStore) -> None:
        key = canary_key()
        store.put(key)
        self.plant_foreign(store, store.alias_location(api_id=key.api_id, name="taken"))
        with pytest.raises(NotOwnedError):
            store.set_current(key, name="taken")

    def test_get_current_of_a_missing_name_raises_not_found(self, store: SecretStore) -> None:
        with pytest.raises(SecretNotFoundError):
            store.get_current(api_id=random_id("api"), name="nobody")

    @pytest.mark.parametrize("bad", ["../etc", "a/b", "", "x", "key id", "k" * 256, "key_..%2f"])
    def test_bad_key_id_is_refused_before_any_io(self, store: SecretStore, bad: str) -> None:
        with pytest.raises(InvalidInputError):
            store.get(api_id=random_id("api"), key_id=bad)
        with pytest.raises(InvalidInputError):
            store.key_location(api_id=random_id("api"), key_id=bad)

    @pytest.mark.parametrize("bad", ["..", ".", "a/b", "", "-x", "name with space"])
    def test_bad_name_is_refused_before_any_io(self, store: SecretStore, bad: str) -> None:
        key = canary_key()
        with pytest.raises(InvalidInputError):
            store.set_current(key, name=bad)

    def test_store_objects_never_show_or_pickle_a_plaintext(self, store: SecretStore) -> None:
        key = canary_key()
        store.put(key)
        read = store.get(api_id=key.api_id, key_id=key.key_id)
        _assert_no_plaintext(read, key)
        _assert_no_plaintext(key, key)
        assert copy.deepcopy(read.secret) == key.secret
        with pytest.raises(TypeError):
            pickle.dumps(read)
