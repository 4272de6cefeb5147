import json
from collections.abc import Callable
from typing import Any

import pytest

from unkey_secrets import IssuedKey, Secret, StoredValueError
from unkey_secrets._payload import (
    KEY_FORMAT,
    alias_fields,
    key_fields,
    load_stored_json,
    parse_key_fields,
    parse_key_json,
)
from unkey_secrets.testing import InMemoryStore

PLAINTEXT = "live_canaryPAYLOADcanary"


def issued() -> IssuedKey:
    return IssuedKey(
        key_id="key_abc123",
        secret=Secret(PLAINTEXT),
        api_id="api_xyz789",
        name="svc",
        external_id="tenant_1",
        prefix="live",
        expires=1_900_000_000_000,
        rerolled_from="key_old999",
    )


def test_the_stored_shape_is_stable() -> None:
    fields = key_fields(issued())
    assert set(fields) == {
        "format",
        "key_id",
        "api_id",
        "key",
        "issued_at",
        "name",
        "external_id",
        "prefix",
        "expires",
        "rerolled_from",
        "alias",
    }
    assert fields["format"] == KEY_FORMAT == "unkey-secrets/key/v1"
    assert fields["key"] == PLAINTEXT
    json.dumps(fields)


def test_round_trip_through_json() -> None:
    text = json.dumps(key_fields(issued()))
    stored = parse_key_json(text, store="test", location="here", version="3")
    assert stored.key_id == "key_abc123"
    assert stored.api_id == "api_xyz789"
    assert stored.secret == Secret(PLAINTEXT)
    assert stored.version == "3"
    assert stored.rerolled_from == "key_old999"
    assert (stored.prefix, stored.expires, stored.alias) == ("live", 1_900_000_000_000, None)
    assert stored.extra == ()
    assert PLAINTEXT not in repr(stored)


def test_unknown_members_stay_in_extra_and_show_by_name_only() -> None:
    data = {**key_fields(issued()), "future_member": "canary-extra-value"}
    stored = parse_key_json(json.dumps(data), store="test", location="here")
    assert stored.extra == ("future_member",)
    assert "future_member" in repr(stored)
    assert "canary-extra-value" not in repr(stored)


def test_legacy_alias_pointer_holds_no_plaintext() -> None:
    alias = alias_fields(key_id="key_1abc", api_id="api_1abc", path="unkey/api_1abc/key_1abc")
    assert "key" not in alias
    assert alias["format"] == "unkey-secrets/alias/v1"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("format"),
        lambda d: d.update(format="other/v9"),
        lambda d: d.pop("key"),
        lambda d: d.update(key=""),
        lambda d: d.update(key=42),
        lambda d: d.update(key_id="../escape"),
        lambda d: d.pop("api_id"),
    ],
)
def test_malformed_values_are_refused_without_echo(
    mutate: Callable[[dict[str, Any]], object],
) -> None:
    data = key_fields(issued())
    mutate(data)
    with pytest.raises(StoredValueError) as raised:
        parse_key_fields(data, store="test", location="unkey/api/key")
    assert PLAINTEXT not in str(raised.value)
    assert PLAINTEXT not in repr(raised.value.args)


def test_broken_json_error_keeps_only_the_position() -> None:
    text = json.dumps(key_fields(issued()))[:-5]
    with pytest.raises(StoredValueError) as raised:
        parse_key_json(text, store="test", location="here")
    assert "not JSON" in str(raised.value)
    assert PLAINTEXT not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__suppress_context__


def test_non_object_json_is_refused() -> None:
    with pytest.raises(StoredValueError, match="JSON object"):
        parse_key_json(json.dumps([PLAINTEXT]), store="test", location="here")


def test_an_extra_member_holding_a_key_never_prints_through_a_store() -> None:
    # The case: a stored value with "previous_key": "S" must not print S.
    store = InMemoryStore()
    key = issued()
    location = store.put(key).location
    data = {**key_fields(key), "previous_key": "S_previousKeyCanary9xYz"}
    store._entries[location].value = json.dumps(data)
    stored = store.get(api_id=key.api_id, key_id=key.key_id)
    assert stored.extra == ("previous_key",)
    assert "previous_key" in repr(stored)
    assert "S_previousKeyCanary9xYz" not in repr(stored)
    assert "S_previousKeyCanary9xYz" not in str(stored)


def test_an_extra_member_named_s_prints_by_name_only() -> None:
    data = {**key_fields(issued()), "previous_key": "S"}
    stored = parse_key_fields(data, store="test", location="here")
    assert "'previous_key'" in repr(stored)
    assert "'S'" not in repr(stored)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (PLAINTEXT + "\x00", f"got {len(PLAINTEXT) + 1} characters"),
        ("k" * 50_000, "got 50000 characters"),
        ("short", "got 5 characters"),
        (PLAINTEXT + "\n", f"got {len(PLAINTEXT) + 1} characters"),
        ("live_key_abc123_canaryPAYLOAD", "contains the key_id"),
    ],
)
def test_a_stored_key_is_held_to_the_one_key_rule(key: str, problem: str) -> None:
    data = {**key_fields(issued()), "key": key}
    with pytest.raises(StoredValueError) as raised:
        parse_key_json(json.dumps(data), store="test", location="unkey/api/key")
    assert problem in str(raised.value)
    assert key[:5] not in str(raised.value)
    assert raised.value.__context__ is None


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
    ],
    ids=["array", "object"],
)
def test_a_deeply_nested_value_is_a_stored_value_error(text: str) -> None:
    with pytest.raises(StoredValueError, match="nested too deeply") as raised:
        parse_key_json(text, store="test", location="here")
    assert raised.value.__context__ is None
    assert raised.value.location == "here"


def test_a_number_too_long_to_convert_is_a_stored_value_error() -> None:
    data = json.dumps(key_fields(issued()))[:-1] + ', "n": ' + "9" * 5_000 + "}"
    with pytest.raises(StoredValueError, match="number is too long") as raised:
        parse_key_json(data, store="test", location="here")
    assert PLAINTEXT not in str(raised.value)
    assert raised.value.__context__ is None


def test_load_stored_json_is_the_one_decoder() -> None:
    assert load_stored_json('{"a": 1}', store="test", location="here") == {"a": 1}
    with pytest.raises(StoredValueError, match="not JSON"):
        load_stored_json(PLAINTEXT, store="test", location="here")
    with pytest.raises(StoredValueError, match="expected a JSON string, got bytes"):
        load_stored_json(PLAINTEXT.encode(), store="test", location="here")


@pytest.mark.parametrize("expires", [10**17, 253_402_300_800_000, -62_135_596_800_001, -(10**17)])
def test_a_stored_expires_no_datetime_holds_is_dropped(expires: int) -> None:
    # Kept only in its own shape, as a member of the wrong type is: a reader would otherwise
    # fail on the first datetime made of it (its expiry warning, KeyInfo.expires_at).
    from unkey_secrets.config import KeyInfo

    data = {**key_fields(issued()), "expires": expires}
    stored = parse_key_json(json.dumps(data), store="test", location="here")
    assert stored.expires is None
    assert KeyInfo.from_stored(stored, store="test", fetched_at=0.0).expires_at is None


@pytest.mark.parametrize("expires", [253_402_300_799_999, -62_135_596_800_000, 0])
def test_a_stored_expires_at_the_ends_of_what_a_datetime_holds_is_kept(expires: int) -> None:
    from unkey_secrets.config import KeyInfo

    data = {**key_fields(issued()), "expires": expires}
    stored = parse_key_json(json.dumps(data), store="test", location="here")
    assert stored.expires == expires
    info = KeyInfo.from_stored(stored, store="test", fetched_at=0.0)
    assert info.expires_at is not None


def test_a_plugin_writes_and_reads_the_stored_value_through_public_names() -> None:
    """``unkey_secrets.stores`` exports the encoder and decoders a store plugin needs."""
    import unkey_secrets.stores as stores

    for name in ("KEY_FORMAT", "key_fields", "parse_key_fields", "parse_key_json"):
        assert name in stores.__all__, name
        # Each has a docstring the API reference shows (the format string aside).
        assert name == "KEY_FORMAT" or getattr(stores, name).__doc__, name
    assert stores.KEY_FORMAT == KEY_FORMAT
    text = json.dumps(stores.key_fields(issued()))
    stored = stores.parse_key_json(text, store="kv", location="unkey/api_xyz789/key_abc123")
    assert (stored.key_id, stored.api_id, stored.secret) == (
        "key_abc123",
        "api_xyz789",
        Secret(PLAINTEXT),
    )
    assert stores.parse_key_fields(json.loads(text), store="kv", location="x").prefix == "live"
    # What it cannot read is a StoredValueError naming the store and location, never the key.
    for bad in (text[:-1], json.dumps({**json.loads(text), "format": "other"})):
        with pytest.raises(StoredValueError) as raised:
            stores.parse_key_json(bad, store="kv", location="here")
        assert (raised.value.store, raised.value.location) == ("kv", "here")
        assert PLAINTEXT not in str(raised.value)
        assert PLAINTEXT not in repr(raised.value.__dict__)
