import json

import pytest

from unkey_secrets import IssuedKey, Secret, StoredValueError
from unkey_secrets._payload import (
    KEY_FORMAT,
    alias_fields,
    key_fields,
    parse_key_fields,
    parse_key_json,
)

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
    assert stored.extra == {}
    assert PLAINTEXT not in repr(stored)


def test_unknown_members_stay_in_extra_and_show_by_name_only() -> None:
    data = {**key_fields(issued()), "future_member": "canary-extra-value"}
    stored = parse_key_json(json.dumps(data), store="test", location="here")
    assert stored.extra == {"future_member": "canary-extra-value"}
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
def test_malformed_values_are_refused_without_echo(mutate) -> None:
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
