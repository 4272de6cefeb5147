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
import json
import pickle
import secrets
import string
import time

import pytest

from .._errors import (
    InvalidInputError,
    NotOwnedError,
    SecretNotFoundError,
    StoreConflictError,
    StoredValueError,
    StoreError,
)
from .._models import AliasState, IssuedKey, KeyEntry, KeyRef, StoredKey, StoredLocation
from .._secret import Secret
from .._validate import PathTemplate
from ..rotation.record import Owner, RotationRecord
from ..stores.base import SecretStore

__all__ = ["SecretStoreContract", "canary_key", "random_id"]

_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str) -> str:
    """Return an Unkey-shaped id such as ``key_3fG9aK1pQ``."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(10))


def canary_key(
    *,
    api_id: str | None = None,
    key_id: str | None = None,
    rerolled_from: str | None = None,
    alias: str | None = None,
) -> IssuedKey:
    """Return an :class:`IssuedKey` whose plaintext is a recognisable random canary."""
    return IssuedKey(
        key_id=key_id or random_id("key"),
        secret=Secret("canary_" + secrets.token_hex(16)),
        api_id=api_id or random_id("api"),
        request_id=random_id("req"),
        name="contract",
        rerolled_from=rerolled_from,
        alias=alias,
    )


def _rotation(key: IssuedKey) -> RotationRecord:
    """Revision 1 of a rotation of ``key`` claimed by a new run (each call: another run)."""
    now = int(time.time() * 1000)
    return RotationRecord(
        rotation=random_id("rot"),
        api_id=key.api_id,
        from_key_id=key.key_id,
        state="claimed",
        aliases=("svc",),
        owner=Owner.me(now),
        previous_expires=None,
        original_expires=now + 86_400_000,
        grace_period_ms=86_400_000,
    )


def _assert_no_plaintext(obj: object, key: IssuedKey) -> None:
    plaintext = key.secret.reveal()
    for rendering in (repr(obj), str(obj), f"{obj}"):
        assert plaintext not in rendering


class SecretStoreContract:
    """The behaviour every :class:`~unkey_secrets.stores.SecretStore` promises."""

    #: Whether an alias moved onto a key stored without one is recorded with the key. A store
    #: that can only record it when the key is written (Secrets Manager's tags, under the
    #: writer policy) sets this False: rotating such a key by key_id then needs ``alias=``.
    records_late_alias = True

    @pytest.fixture
    def store(self) -> SecretStore:
        """Return the store under test, talking to a real server."""
        raise NotImplementedError("a backend's test class provides the store fixture")

    def plant_foreign(self, store: SecretStore, location: str) -> None:
        """Create a secret at ``location`` the way another tool would (no ownership marker)."""
        raise NotImplementedError("a backend's test class provides plant_foreign")

    def with_alias_template(self, store: SecretStore, template: str) -> SecretStore:
        """``store`` reading and writing the same backend with another alias template.

        By default a shallow copy of ``store`` with its ``alias_template`` replaced; a backend
        whose store cannot be copied so overrides this.
        """
        other = copy.copy(store)
        other.alias_template = PathTemplate(template, required=frozenset({"alias"}))
        return other

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
        store.set_current(first, alias="service-a")
        assert store.get_current(api_id=first.api_id, alias="service-a").secret == first.secret

        second = canary_key(api_id=first.api_id, rerolled_from=first.key_id)
        store.put(second)
        moved = store.set_current(second, alias="service-a")
        assert moved.created
        current = store.get_current(api_id=first.api_id, alias="service-a")
        assert current.key_id == second.key_id
        assert current.secret == second.secret

    def test_set_current_again_is_a_no_op(self, store: SecretStore) -> None:
        key = canary_key()
        store.put(key)
        first = store.set_current(key, alias="svc")
        again = store.set_current(key, alias="svc")
        assert not again.created
        assert again.version == first.version

    def test_set_current_refuses_a_name_it_did_not_create(self, store: SecretStore) -> None:
        key = canary_key()
        store.put(key)
        self.plant_foreign(store, store.alias_location(api_id=key.api_id, alias="taken"))
        with pytest.raises(NotOwnedError):
            store.set_current(key, alias="taken")

    def test_get_current_of_a_missing_name_raises_not_found(self, store: SecretStore) -> None:
        with pytest.raises(SecretNotFoundError):
            store.get_current(api_id=random_id("api"), alias="nobody")

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
            store.set_current(key, alias=bad)

    def test_store_objects_never_show_or_pickle_a_plaintext(self, store: SecretStore) -> None:
        key = canary_key()
        store.put(key)
        read = store.get(api_id=key.api_id, key_id=key.key_id)
        _assert_no_plaintext(read, key)
        _assert_no_plaintext(key, key)
        assert copy.deepcopy(read.secret) == key.secret
        with pytest.raises(TypeError):
            pickle.dumps(read)

    # -- alias state and conditional moves -------------------------------------------------

    def test_alias_state_of_a_missing_alias_is_none(self, store: SecretStore) -> None:
        assert store.alias_state(api_id=random_id("api"), alias="nobody") is None

    def test_alias_state_names_the_current_key_and_changes_on_each_move(
        self, store: SecretStore
    ) -> None:
        first = canary_key()
        store.put(first)
        store.set_current(first, alias="svc")
        before = store.alias_state(api_id=first.api_id, alias="svc")
        assert before is not None
        assert (before.alias, before.api_id) == ("svc", first.api_id)
        assert (before.key_id, before.rerolled_from) == (first.key_id, None)

        second = canary_key(api_id=first.api_id, rerolled_from=first.key_id)
        store.put(second)
        store.set_current(second, alias="svc")
        after = store.alias_state(api_id=first.api_id, alias="svc")
        assert after is not None
        assert (after.key_id, after.rerolled_from) == (second.key_id, first.key_id)
        assert after.revision != before.revision

    def test_set_current_expecting_no_alias_refuses_an_existing_one(
        self, store: SecretStore
    ) -> None:
        first = canary_key()
        second = canary_key(api_id=first.api_id)
        store.put(first)
        store.put(second)
        assert store.set_current(first, alias="svc", expected=None).created
        with pytest.raises(StoreConflictError):
            store.set_current(second, alias="svc", expected=None)
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == first.key_id

    def test_set_current_with_the_current_state_moves_the_alias(self, store: SecretStore) -> None:
        first = canary_key()
        second = canary_key(api_id=first.api_id, rerolled_from=first.key_id)
        store.put(first)
        store.put(second)
        store.set_current(first, alias="svc")
        state = store.alias_state(api_id=first.api_id, alias="svc")
        assert state is not None
        assert store.set_current(second, alias="svc", expected=state).created
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == second.key_id
        now = store.alias_state(api_id=first.api_id, alias="svc")
        assert now is not None
        assert (now.key_id, now.rerolled_from) == (second.key_id, first.key_id)

    def test_a_conditional_move_repeated_after_it_landed_is_a_no_op(
        self, store: SecretStore
    ) -> None:
        # The retry of a move whose answer was lost names the state from before the move.
        first = canary_key()
        second = canary_key(api_id=first.api_id, rerolled_from=first.key_id)
        store.put(first)
        store.put(second)
        store.set_current(first, alias="svc")
        state = store.alias_state(api_id=first.api_id, alias="svc")
        assert state is not None
        assert store.set_current(second, alias="svc", expected=state).created
        again = store.set_current(second, alias="svc", expected=state)
        assert not again.created
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == second.key_id

    def test_an_alias_moved_onto_a_stored_key_is_recorded_with_the_key(
        self, store: SecretStore
    ) -> None:
        # Captured first, aliased later: a rotation by key_id must still find the alias.
        key = canary_key()
        store.put(key)
        store.set_current(key, alias="later")
        entry = store.key_entry(api_id=key.api_id, key_id=key.key_id)
        assert entry is not None
        assert entry.alias == ("later" if self.records_late_alias else None)

    def test_set_current_with_a_stale_state_is_refused(self, store: SecretStore) -> None:
        first = canary_key()
        theirs = canary_key(api_id=first.api_id)
        ours = canary_key(api_id=first.api_id)
        for key in (first, theirs, ours):
            store.put(key)
        store.set_current(first, alias="svc")
        stale = store.alias_state(api_id=first.api_id, alias="svc")
        assert stale is not None
        store.set_current(theirs, alias="svc")  # someone else moves it meanwhile
        with pytest.raises(StoreConflictError):
            store.set_current(ours, alias="svc", expected=stale)
        # The refused move left no trace: the alias and its state still name their key.
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == theirs.key_id
        state = store.alias_state(api_id=first.api_id, alias="svc")
        assert state is not None
        assert state.key_id == theirs.key_id

    def test_set_current_with_a_stale_state_refuses_a_move_back(self, store: SecretStore) -> None:
        first = canary_key()
        theirs = canary_key(api_id=first.api_id)
        store.put(first)
        store.put(theirs)
        store.set_current(first, alias="svc")
        stale = store.alias_state(api_id=first.api_id, alias="svc")
        assert isinstance(stale, AliasState)
        store.set_current(theirs, alias="svc")
        with pytest.raises(StoreConflictError):
            store.set_current(first, alias="svc", expected=stale)
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == theirs.key_id

    def test_a_prepared_move_changes_nothing_until_the_move(self, store: SecretStore) -> None:
        first = canary_key()
        ours = canary_key(api_id=first.api_id, rerolled_from=first.key_id)
        store.put(first)
        store.set_current(first, alias="svc")
        state = store.alias_state(api_id=first.api_id, alias="svc")
        assert state is not None
        # Prepared while the new key is being stored (the flows run them at once).
        store.prepare_move(ours, alias="svc", expected=state)
        store.put(ours)
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == first.key_id
        assert store.alias_state(api_id=first.api_id, alias="svc") == state
        moved = store.set_current(ours, alias="svc", expected=state)
        assert moved.key_id == ours.key_id
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == ours.key_id
        now = store.alias_state(api_id=first.api_id, alias="svc")
        assert now is not None
        assert (now.key_id, now.rerolled_from) == (ours.key_id, first.key_id)

    def test_a_prepared_move_refuses_when_the_alias_moved_after_it(
        self, store: SecretStore
    ) -> None:
        first = canary_key()
        theirs = canary_key(api_id=first.api_id)
        ours = canary_key(api_id=first.api_id)
        for key in (first, theirs, ours):
            store.put(key)
        store.set_current(first, alias="svc")
        state = store.alias_state(api_id=first.api_id, alias="svc")
        assert state is not None
        store.prepare_move(ours, alias="svc", expected=state)
        store.set_current(theirs, alias="svc")  # someone else moves it meanwhile
        with pytest.raises(StoreConflictError):
            store.set_current(ours, alias="svc", expected=state)
        # Their move stands, and the alias's state still names their key.
        assert store.get_current(api_id=first.api_id, alias="svc").key_id == theirs.key_id
        now = store.alias_state(api_id=first.api_id, alias="svc")
        assert now is not None
        assert now.key_id == theirs.key_id

    def test_a_move_prepared_from_a_stale_state_changes_nothing(self, store: SecretStore) -> None:
        first = canary_key()
        theirs = canary_key(api_id=first.api_id)
        ours = canary_key(api_id=first.api_id)
        for key in (first, theirs, ours):
            store.put(key)
        store.set_current(first, alias="svc")
        stale = store.alias_state(api_id=first.api_id, alias="svc")
        assert stale is not None
        store.set_current(theirs, alias="svc")
        store.prepare_move(ours, alias="svc", expected=stale)
        with pytest.raises(StoreConflictError):
            store.set_current(ours, alias="svc", expected=stale)
        now = store.alias_state(api_id=first.api_id, alias="svc")
        assert now is not None
        assert now.key_id == theirs.key_id

    def test_get_current_returns_the_full_key(self, store: SecretStore) -> None:
        first = canary_key()
        key = canary_key(api_id=first.api_id, rerolled_from=first.key_id, alias="svc")
        store.put(key)
        store.set_current(key, alias="svc")
        current = store.get_current(api_id=key.api_id, alias="svc")
        assert (current.key_id, current.api_id, current.secret) == (
            key.key_id,
            key.api_id,
            key.secret,
        )
        assert (current.alias, current.rerolled_from) == ("svc", first.key_id)
        assert (current.name, current.issued_at) == (key.name, key.issued_at.isoformat())

    def test_get_current_names_the_alias_even_if_the_key_was_put_without_one(
        self, store: SecretStore
    ) -> None:
        key = canary_key()
        store.put(key)
        store.set_current(key, alias="svc")
        assert store.get_current(api_id=key.api_id, alias="svc").alias == "svc"
        assert store.get(api_id=key.api_id, key_id=key.key_id).alias is None

    # -- key entries -----------------------------------------------------------------------

    def test_key_entry_of_an_unknown_key_is_none(self, store: SecretStore) -> None:
        assert store.key_entry(api_id=random_id("api"), key_id=random_id("key")) is None

    def test_key_entry_records_alias_and_rerolled_from(self, store: SecretStore) -> None:
        original = random_id("key")
        key = canary_key(rerolled_from=original, alias="svc")
        plain = canary_key(api_id=key.api_id)
        store.put(key)
        store.put(plain)
        assert store.key_entry(api_id=key.api_id, key_id=key.key_id) == KeyEntry(
            api_id=key.api_id, key_id=key.key_id, alias="svc", rerolled_from=original
        )
        assert store.key_entry(api_id=key.api_id, key_id=plain.key_id) == KeyEntry(
            api_id=key.api_id, key_id=plain.key_id
        )

    # -- rotation records ------------------------------------------------------------------

    def test_read_rotation_of_an_unrotated_key_is_none(self, store: SecretStore) -> None:
        assert store.read_rotation(api_id=random_id("api"), key_id=random_id("key")) is None

    def test_rotation_record_round_trips(self, store: SecretStore) -> None:
        record = _rotation(canary_key())
        store.write_rotation(record)
        assert store.read_rotation(api_id=record.api_id, key_id=record.from_key_id) == record

    def test_a_second_first_revision_of_a_rotation_conflicts(self, store: SecretStore) -> None:
        key = canary_key()
        ours = _rotation(key)
        store.write_rotation(ours)
        with pytest.raises(StoreConflictError):
            store.write_rotation(_rotation(key))  # another run claims it too
        assert store.read_rotation(api_id=key.api_id, key_id=key.key_id) == ours

    def test_rotation_revision_2_replaces_revision_1(self, store: SecretStore) -> None:
        new = canary_key()
        first = _rotation(canary_key(api_id=new.api_id))
        store.write_rotation(first)
        second = first.next(state="stored", key_id=new.key_id)
        store.write_rotation(second)
        read = store.read_rotation(api_id=first.api_id, key_id=first.from_key_id)
        assert read == second
        assert read is not None
        assert (read.revision, read.state, read.key_id) == (2, "stored", new.key_id)

    def test_a_stale_rotation_revision_conflicts(self, store: SecretStore) -> None:
        first = _rotation(canary_key())
        store.write_rotation(first)
        theirs = first.next(state="released", owner=None)
        store.write_rotation(theirs)
        with pytest.raises(StoreConflictError):
            store.write_rotation(first.next(state="stored", key_id=random_id("key")))
        assert store.read_rotation(api_id=first.api_id, key_id=first.from_key_id) == theirs

    def test_a_rotation_revision_that_skips_one_conflicts(self, store: SecretStore) -> None:
        first = _rotation(canary_key())
        store.write_rotation(first)
        with pytest.raises(StoreConflictError):
            store.write_rotation(first.next().next(state="done"))
        assert store.read_rotation(api_id=first.api_id, key_id=first.from_key_id) == first

    def test_a_rotation_revision_without_a_record_conflicts(self, store: SecretStore) -> None:
        with pytest.raises(StoreConflictError):
            store.write_rotation(_rotation(canary_key()).next(state="stored"))

    def test_rotation_record_holds_no_plaintext(self, store: SecretStore) -> None:
        original, new = canary_key(), canary_key()
        store.put(original)
        store.put(new)
        first = _rotation(original)
        store.write_rotation(first)
        store.write_rotation(first.next(state="stored", key_id=new.key_id))
        read = store.read_rotation(api_id=original.api_id, key_id=original.key_id)
        assert read is not None
        for key in (original, new):
            _assert_no_plaintext(read, key)
            assert key.secret.reveal() not in json.dumps(read.fields())

    # -- batch reads (get_many) ------------------------------------------------------------

    def test_get_many_answers_each_ref_in_order_as_a_single_read_would(
        self, store: SecretStore
    ) -> None:
        current = canary_key()
        other = canary_key(api_id=current.api_id)
        api = current.api_id
        store.put(current)
        store.set_current(current, alias="svc")
        store.put(other)
        planted = store.alias_location(api_id=api, alias="planted")
        self.plant_foreign(store, planted)
        refs = [
            KeyRef(api_id=api, key_id=other.key_id),
            KeyRef(api_id=api, alias="nobody"),
            KeyRef(api_id=api, alias="svc"),
            KeyRef(api_id=api, key_id=random_id("key")),
            KeyRef(api_id=api, alias="planted"),
            KeyRef(api_id=api, alias="svc"),
            KeyRef(api_id=random_id("api"), key_id=other.key_id),
        ]
        for concurrency in (8, 1):
            results = store.get_many(refs, concurrency=concurrency)
            assert len(results) == len(refs)
            assert results[0] == store.get(api_id=api, key_id=other.key_id)
            assert results[2] == store.get_current(api_id=api, alias="svc")
            assert results[5] == results[2]
            assert isinstance(results[2], StoredKey)
            assert (results[2].key_id, results[2].alias) == (current.key_id, "svc")
            assert results[2].secret == current.secret
            for missing in (1, 3, 6):
                assert isinstance(results[missing], SecretNotFoundError)
                assert results[missing].location is not None
            assert isinstance(results[4], StoredValueError)
            with pytest.raises(StoredValueError):
                store.get_current(api_id=api, alias="planted")
            for result in results:
                _assert_no_plaintext(result, current)
                _assert_no_plaintext(result, other)

    def test_get_many_refuses_a_key_of_another_api_under_an_alias(self, store: SecretStore) -> None:
        # An alias template without {api_id}: API A's key sits where API B's alias is read.
        shared = self.with_alias_template(store, "unkey/shared/by-name/{alias}")
        alias = random_id("svc")
        key = canary_key()
        shared.put(key)
        shared.set_current(key, alias=alias)
        other_api = random_id("api")
        ours, theirs = shared.get_many(
            [KeyRef(api_id=key.api_id, alias=alias), KeyRef(api_id=other_api, alias=alias)]
        )
        assert isinstance(ours, StoredKey)
        assert ours.key_id == key.key_id
        assert isinstance(theirs, StoredValueError)
        _assert_no_plaintext(theirs, key)
        with pytest.raises(StoredValueError):
            shared.get_current(api_id=other_api, alias=alias)

    def test_get_many_keeps_the_order_of_many_refs(self, store: SecretStore) -> None:
        # More refs than one Secrets Manager batch holds (20), repeats and gaps among them.
        api = random_id("api")
        keys = [canary_key(api_id=api) for _ in range(23)]
        for key in keys:
            store.put(key)
        wanted = [*reversed(keys), keys[3], keys[3]]
        refs = [KeyRef(api_id=api, key_id=k.key_id) for k in wanted]
        refs.insert(5, KeyRef(api_id=api, key_id=random_id("key")))
        results = store.get_many(refs)
        assert isinstance(results.pop(5), SecretNotFoundError)
        assert [r.key_id if isinstance(r, StoredKey) else r for r in results] == [
            k.key_id for k in wanted
        ]
        assert [r.secret for r in results if isinstance(r, StoredKey)] == [k.secret for k in wanted]

    def test_get_many_validates_every_ref_before_any_read(
        self, store: SecretStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_read(refs: list[KeyRef], concurrency: int) -> list[StoredKey | StoreError]:
            raise AssertionError("a read was made before every ref was validated")

        monkeypatch.setattr(store, "_get_many", no_read)
        api = random_id("api")
        good = KeyRef(api_id=api, alias="svc")
        for bad in (
            KeyRef(api_id=api, alias=".."),
            KeyRef(api_id=api, key_id="../etc"),
            KeyRef(api_id="../x", alias="svc"),
            KeyRef(api_id=api),
            KeyRef(api_id=api, alias="svc", key_id=random_id("key")),
        ):
            with pytest.raises(InvalidInputError):
                store.get_many([good, good, bad])
        with pytest.raises(InvalidInputError):
            store.get_many([good, "svc"])  # type: ignore[list-item]
        for concurrency in (0, -1, True, 1.5):
            with pytest.raises(InvalidInputError):
                store.get_many([good], concurrency=concurrency)  # type: ignore[arg-type]
        assert store.get_many([]) == []
