"""An id the shape cannot tell from a key is confirmed by Unkey before a store path holds it."""

from __future__ import annotations

import pytest

from unkey_secrets import InvalidInputError, UnkeyNotFoundError
from unkey_secrets.bulk import BulkInputError, parse_line
from unkey_secrets.rotation.core import confirm_key_id
from unkey_secrets.unkey import KeyInfo

OLDER_ID = "key_2cGKbMxRyIzhCxo1Idjz8q"
KEY_WITH_PREFIX_KEY = "key_3ZkConfirmCanary8uVq2Lr7Wm1Nx"


class Unkey:
    """Answers getKey for the ids it knows; 404 for any other. Records what it was asked."""

    def __init__(self, *known: str) -> None:
        self.known = known
        self.asked: list[str] = []

    def get_key(self, key_id: str) -> KeyInfo:
        self.asked.append(key_id)
        if key_id not in self.known:
            raise UnkeyNotFoundError(
                operation="keys.getKey",
                status=404,
                error_type="https://unkey.com/docs/errors/unkey/data/key_not_found",
                title="Not Found",
                detail="The specified key was not found.",
                request_id="req_123",
            )
        return KeyInfo(key_id=key_id, start="key_", enabled=True, created_at=0)


def test_todays_ids_are_not_asked_about() -> None:
    unkey = Unkey()
    confirm_key_id(unkey, "key_3fG9aK1pQ")  # type: ignore[arg-type]
    confirm_key_id(unkey, "key_not_found")  # type: ignore[arg-type]
    assert unkey.asked == []


def test_an_older_id_unkey_knows_is_confirmed_with_one_get_key() -> None:
    unkey = Unkey(OLDER_ID)
    confirm_key_id(unkey, OLDER_ID)  # type: ignore[arg-type]
    assert unkey.asked == [OLDER_ID]


def test_a_key_unkey_does_not_know_is_refused_naming_the_field_only() -> None:
    unkey = Unkey(OLDER_ID)
    with pytest.raises(InvalidInputError) as raised:
        confirm_key_id(unkey, KEY_WITH_PREFIX_KEY, "--key-id")  # type: ignore[arg-type]
    assert raised.value.field == "--key-id"
    assert "getKey: not found" in raised.value.problem
    assert KEY_WITH_PREFIX_KEY not in str(raised.value)
    # Raised outside the except block: no context to render with the value in it.
    assert raised.value.__context__ is None
    assert raised.value.__cause__ is None


def test_a_bulk_line_whose_api_is_a_key_is_refused_without_echo() -> None:
    key = "prod_3ZkBulkLineCanary8uVq2Lr7Wm1Nx"
    with pytest.raises(BulkInputError) as raised:
        parse_line(7, {"api": key, "alias": "svc"})
    assert raised.value.field == "line 7: api"
    assert key not in str(raised.value)
