"""The rotation record's JSON: what a store keeps about one rotation, read back strictly."""

from __future__ import annotations

from typing import Any

import pytest

from unkey_secrets import StoredValueError
from unkey_secrets.rotation.record import Owner, RotationRecord, parse_rotation_fields


def record(**changes: Any) -> dict[str, Any]:
    base = RotationRecord(
        rotation="rot_" + "a" * 24,
        api_id="api_123",
        from_key_id="key_old",
        state="claimed",
        owner=Owner("attempt", "host", 123, 1_700_000_000_000),
        aliases=("svc",),
    ).fields()
    return {**base, **changes}


def parse(data: object) -> RotationRecord:
    return parse_rotation_fields(data, store="vault", location="secret/unkey/rotated-from/x")


def test_a_record_round_trips() -> None:
    data = record()
    assert parse(data).fields() == data


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"format": "unkey-secrets/key/v1"}, "format"),
        ({"revision": 0}, "revision"),
        ({"revision": True}, "revision"),
        ({"state": "finished"}, "state"),
        ({"rotation": ""}, "rotation"),
        ({"aliases": "svc"}, "aliases"),
        ({"owner": {"attempt": 1}}, "owner"),
        ({"owner": None}, "names no owner"),
        ({"state": "done", "key_id": None}, "new key"),
        ({"state": "done", "key_id": "key_old"}, "new key"),
        ({"state": "stored", "key_id": "key_old"}, "new key"),
        ({"from_key_id": "../x"}, "from_key_id"),
    ],
)
def test_a_record_in_any_other_shape_is_refused(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(StoredValueError, match=problem) as raised:
        parse(record(**changes))
    assert "../x" not in str(raised.value)


def test_a_deeply_nested_value_is_refused_not_recursed() -> None:
    nested: object = {}
    for _ in range(5000):
        nested = {"owner": nested}
    with pytest.raises(StoredValueError):
        parse(record(owner=nested))
