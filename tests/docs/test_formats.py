"""``docs/reference/formats.md`` shows the stored shapes as the code writes and reads them.

Each example is matched to its format by its ``format`` (or ``schema``) member and compared
with what the writer produces: the same members, and the example itself read back by the
package's own parser (a stored key, a pointer alias, a rotation record) or valid against the
shipped JSON Schema (an audit event).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest

from tests.docs._blocks import ROOT, blocks_of
from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
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
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.telemetry import audit_schema
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

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


# -- ownership marks ------------------------------------------------------------------------

#: The marks table's store and location columns, as the page writes them.
_STORES = {"Vault": "vault", "Secrets Manager": "aws"}


def documented_marks() -> dict[tuple[str, str], set[str]]:
    """The members the "Ownership marks" table lists, by (store, location)."""
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("## Ownership marks", 1)[1].split("\n## ", 1)[0]
    marks: dict[tuple[str, str], set[str]] = {}
    for store, where, member in re.findall(
        r"(?m)^\| (Vault|Secrets Manager) \| (key|alias|rotation record) \| `([\w-]+)`", section
    ):
        marks.setdefault((_STORES[store], where), set()).add(member)
    return marks


def _written(unkey: UnkeyClient, store: SecretStore, api_id: str) -> list[tuple[str, str]]:
    """Provision a key for an alias and rotate it twice: each location, as (location, path)."""
    first = provision(unkey, store, api_id, alias="billing").key_id
    second = rotate(unkey, store, api_id, alias="billing", grace_period=dt.timedelta(hours=1))
    third = rotate(unkey, store, api_id, alias="billing", grace_period=dt.timedelta(hours=1))
    return [
        *(("key", store.key_location(api_id=api_id, key_id=k)) for k in (first, third.key_id)),
        ("alias", store.alias_location(api_id=api_id, alias="billing")),
        ("rotation record", store.rotation_location(api_id=api_id, key_id=second.key_id)),
    ]


@pytest.mark.functional
def test_ownership_marks_are_what_the_stores_write(
    unkey_env: dict[str, str], openbao_server: OpenBaoServer, moto_server: MotoServer
) -> None:
    api_id = unkey_env["UNKEY_API_ID"]
    vault = VaultStore(openbao_server.client())
    sm = moto_server.client("secretsmanager")
    aws = SecretsManagerStore(sm)
    written: dict[tuple[str, str], set[str]] = {}
    with UnkeyClient.from_settings() as unkey:
        for where, path in _written(unkey, vault, api_id):
            meta = vault.client.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")
            custom = meta["data"]["custom_metadata"] or {}
            written.setdefault(("vault", where), set()).update(custom)
        for where, name in _written(unkey, aws, api_id):
            tags = sm.describe_secret(SecretId=name).get("Tags", [])
            written.setdefault(("aws", where), set()).update(t["Key"] for t in tags)
    # After the moves, UNKEYMOVING is on one version, the current one (the page says so).
    alias = sm.describe_secret(SecretId=aws.alias_location(api_id=api_id, alias="billing"))
    labelled = [set(stages) for stages in alias["VersionIdsToStages"].values()]
    assert sorted(map(sorted, labelled)) == [["AWSCURRENT", "UNKEYMOVING"], ["AWSPREVIOUS"]]
    # A rotation record in Vault is data only (no custom_metadata): the table lists no row.
    written = {kind: members for kind, members in written.items() if members}
    documented = documented_marks()
    problems = [
        f"{kind}: listed, not written: {sorted(documented.get(kind, set()) - members)}; "
        f"written, not listed: {sorted(members - documented.get(kind, set()))}"
        for kind, members in sorted(written.items())
        if documented.get(kind) != members
    ]
    problems += [
        f"{kind}: listed, nothing written" for kind in sorted(set(documented) - set(written))
    ]
    assert not problems, "\n".join(problems)
