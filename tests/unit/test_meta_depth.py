"""The library refuses the meta nesting the emulator refuses, before anything is sent."""

from __future__ import annotations

from typing import Any

import pytest

from unkey_secrets import InvalidInputError, UnkeyClient
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport
from unkey_secrets.testing.emulator import schemas as emulator_schemas
from unkey_secrets.unkey.options import MAX_META_DEPTH, check_meta


def meta(levels: int) -> dict[str, Any]:
    """A meta nesting ``levels`` objects and arrays, itself included (built without recursion)."""
    value: Any = "leaf"
    for level in range(levels - 1):
        value = [value] if level % 2 else {"n": value}
    return {"m": value}


def test_the_library_and_the_emulator_draw_the_line_at_the_same_depth() -> None:
    assert MAX_META_DEPTH == emulator_schemas.MAX_META_DEPTH


def test_a_meta_at_the_limit_is_sent_as_it_is() -> None:
    assert check_meta(meta(MAX_META_DEPTH)) == meta(MAX_META_DEPTH)


@pytest.mark.parametrize("levels", [MAX_META_DEPTH + 1, 900, 5000])
def test_a_deeper_meta_is_refused_naming_the_bound(levels: int) -> None:
    with pytest.raises(InvalidInputError) as raised:
        check_meta(meta(levels))
    assert raised.value.field == "meta"
    assert f"more than {MAX_META_DEPTH} levels" in raised.value.problem


def test_a_meta_that_contains_itself_is_refused() -> None:
    looped: dict[str, Any] = {}
    looped["again"] = [looped]
    with pytest.raises(InvalidInputError, match="levels deep"):
        check_meta(looped)


def test_create_and_update_refuse_it_before_any_request() -> None:
    emulator = Emulator()
    api_id = emulator.create_api("depth")
    with UnkeyClient(
        emulator.root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(emulator)
    ) as unkey:
        key_id = unkey.create_key(api_id, meta=meta(MAX_META_DEPTH)).key_id
        before = emulator.calls.copy()
        with pytest.raises(InvalidInputError):
            unkey.create_key(api_id, meta=meta(MAX_META_DEPTH + 1))
        with pytest.raises(InvalidInputError):
            unkey.update_key(key_id, meta=meta(MAX_META_DEPTH + 1))
        assert emulator.calls == before
        # What was accepted is read back whole.
        assert unkey.get_key(key_id).meta == meta(MAX_META_DEPTH)
