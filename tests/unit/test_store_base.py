"""The store base: reads return the key asked for, and every location passes the backend's rules."""

from __future__ import annotations

from typing import ClassVar

import pytest

from unkey_secrets import InvalidInputError, IssuedKey, Secret, StoredKey, StoredValueError
from unkey_secrets._models import AliasState, KeyEntry, StoredLocation
from unkey_secrets.stores.base import SecretStore, _Unchecked

KEY = "prod_3ZkStoreBaseCanary8uVq2Lr7Wm1"


class TinyStore(SecretStore):
    """Records the locations it is asked to check and answers reads with a set value."""

    name: ClassVar[str] = "tiny"

    def __init__(self, refuse: str | None = None) -> None:
        super().__init__()
        self.checked: list[str] = []
        self.refuse = refuse
        self.answer: StoredKey | None = None
        self.read: list[str] = []

    def _check_location(self, location: str) -> None:
        self.checked.append(location)
        if self.refuse is not None and self.refuse in location:
            raise InvalidInputError("alias", "looks like a Secrets Manager random suffix")

    def _get(self, path: str) -> StoredKey:
        self.read.append(path)
        assert self.answer is not None
        return self.answer

    def _get_current(self, path: str) -> StoredKey:
        return self._get(path)

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        raise AssertionError("not written in these tests")

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | _Unchecked | None
    ) -> StoredLocation:
        raise AssertionError("not written in these tests")

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        return None


def stored(key_id: str = "key_abc123", api_id: str = "api_xyz789", **extra: object) -> StoredKey:
    return StoredKey(
        key_id=key_id, secret=Secret(KEY), api_id=api_id, location="somewhere", **extra
    )  # type: ignore[arg-type]


# -- check_writable calls the backend's location hook ---------------------------------------


def test_check_writable_checks_every_location_a_flow_will_write() -> None:
    store = TinyStore()
    store.check_writable(api_id="api_xyz789", alias="web-server")
    stand_in = "key_" + "x" * 28
    assert store.checked == [
        f"unkey/api_xyz789/{stand_in}",
        f"unkey/rotated-from/api_xyz789/{stand_in}",
        "unkey/api_xyz789/by-name/web-server",
    ]


def test_check_writable_without_an_alias_checks_key_and_rotation_record() -> None:
    store = TinyStore()
    store.check_writable(api_id="api_xyz789")
    assert len(store.checked) == 2


@pytest.mark.parametrize("alias", ["web-server", "billing-prod01"])
def test_an_alias_the_hook_refuses_fails_check_writable(alias: str) -> None:
    store = TinyStore(refuse=alias)
    with pytest.raises(InvalidInputError):
        store.check_writable(api_id="api_xyz789", alias=alias)
    assert store.checked[-1].endswith(f"/by-name/{alias}")


def test_the_default_hook_accepts_every_rendered_location() -> None:
    class Plain(TinyStore):
        _check_location = SecretStore._check_location

    Plain().check_writable(api_id="api_xyz789", alias="web-server")


# -- get: the value must be the key asked for -------------------------------------------------


def test_get_returns_the_key_asked_for() -> None:
    store = TinyStore()
    store.answer = stored()
    assert store.get(api_id="api_xyz789", key_id="key_abc123") is store.answer


@pytest.mark.parametrize(
    ("answer", "shown"),
    [
        (stored(key_id="key_other9"), "holds key key_other9 of API api_xyz789"),
        (stored(api_id="api_other9"), "holds key key_abc123 of API api_other9"),
    ],
    ids=["key_id", "api_id"],
)
def test_get_refuses_a_value_for_another_key(answer: StoredKey, shown: str) -> None:
    store = TinyStore()
    store.answer = answer
    with pytest.raises(StoredValueError) as raised:
        store.get(api_id="api_xyz789", key_id="key_abc123")
    assert shown in str(raised.value)
    assert "not key key_abc123 of API api_xyz789" in str(raised.value)
    assert raised.value.location == "unkey/api_xyz789/key_abc123"
    assert raised.value.store == "tiny"
    assert KEY not in str(raised.value)


# -- get_current: the alias's equivalent ----------------------------------------------------


@pytest.mark.parametrize("alias", [None, "web"])
def test_get_current_returns_a_key_of_the_api_stored_for_the_alias(alias: str | None) -> None:
    store = TinyStore()
    store.answer = stored(alias=alias)
    assert store.get_current(api_id="api_xyz789", alias="web") is store.answer


def test_get_current_refuses_a_key_of_another_api() -> None:
    store = TinyStore()
    store.answer = stored(api_id="api_other9", alias="web")
    with pytest.raises(StoredValueError, match="a key of API api_other9, not of API api_xyz789"):
        store.get_current(api_id="api_xyz789", alias="web")


def test_get_current_refuses_a_key_stored_for_another_alias() -> None:
    store = TinyStore()
    store.answer = stored(alias="billing")
    with pytest.raises(StoredValueError, match="stored for alias billing, not web") as raised:
        store.get_current(api_id="api_xyz789", alias="web")
    assert raised.value.location == "unkey/api_xyz789/by-name/web"


def test_the_issues_swapped_value_in_a_real_store_is_refused() -> None:
    from unkey_secrets.testing import InMemoryStore

    store = InMemoryStore()
    mine = IssuedKey(key_id="key_abc123", secret=Secret(KEY), api_id="api_xyz789")
    location = store.put(mine).location
    other = store.key_location(api_id="api_xyz789", key_id="key_other9")
    # Key K's location holds the value written for another key (a copy, a swap, a bad restore).
    store._entries[other] = store._entries[location]
    with pytest.raises(StoredValueError, match="holds key key_abc123") as raised:
        store.get(api_id="api_xyz789", key_id="key_other9")
    assert KEY not in str(raised.value)
