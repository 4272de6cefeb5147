"""``docs/reference/formats.md`` shows the stored shapes as the code writes and reads them.

Each example is matched to its format by its ``format`` (or ``schema``) member and compared
with what the writer produces: the same members, and the example itself read back by the
package's own parser (a stored key, a pointer alias, a rotation record) or valid against the
shipped JSON Schema (an audit event).
"""

from __future__ import annotations

import json
from typing import Any

from tests.docs._blocks import ROOT, blocks_of
from unkey_secrets._models import IssuedKey
from unkey_secrets._payload import (
    ALIAS_FORMAT,
    KEY_FORMAT,
    alias_fields,
    key_fields,
    parse_alias_fields,
    parse_key_fields,
)
from unkey_secrets._secret import Secret
from unkey_secrets.rotation.record import ROTATION_FORMAT, RotationRecord, parse_rotation_fields
from unkey_secrets.telemetry import audit_schema

PAGE = ROOT / "docs" / "reference" / "formats.md"


def examples() -> dict[str, dict[str, Any]]:
    """Each JSON example of the page, by its format."""
    found: dict[str, dict[str, Any]] = {}
    for block in blocks_of(PAGE):
        if block.language == "json":
            value = json.loads(block.source)
            found[value.get("format") or value.get("schema")] = value
    return found


def test_every_format_has_an_example() -> None:
    assert set(examples()) == {KEY_FORMAT, ALIAS_FORMAT, ROTATION_FORMAT, "unkey-secrets/audit/v1"}


def test_stored_key() -> None:
    example = examples()[KEY_FORMAT]
    issued = IssuedKey(key_id="key_3hQvFz8Wm", secret=Secret("unkey_local"), api_id="api_123")
    assert set(example) == set(key_fields(issued))
    example = {**example, "key": "live_3hQvFz8WmLrT2bNc"}
    parse_key_fields(example, store="docs", location="formats.md")


def test_pointer_alias() -> None:
    example = examples()[ALIAS_FORMAT]
    assert set(example) == set(alias_fields(key_id="key_1", api_id="api_1", path="p"))
    parse_alias_fields(example, store="docs", location="formats.md")


def test_rotation_record() -> None:
    example = examples()[ROTATION_FORMAT]
    record = parse_rotation_fields(example, store="docs", location="formats.md")
    assert record.fields() == example
    bare = RotationRecord(rotation="rot_x", api_id="api_1", from_key_id="key_1", state="claimed")
    assert set(bare.fields()) == set(example)


def test_audit_event() -> None:
    jsonschema = __import__("jsonschema")
    jsonschema.validate(examples()["unkey-secrets/audit/v1"], audit_schema())
