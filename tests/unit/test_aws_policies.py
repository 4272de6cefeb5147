"""The shipped IAM policies: the writer writes and never reads; resources match our secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit._aws_client import make_client
from unkey_secrets._payload import MANAGED_BY as MANAGED
from unkey_secrets.stores.aws import SecretsManagerStore

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def load(name: str) -> dict[str, Any]:
    return json.loads((POLICIES / name).read_text())


def actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def matches(pattern: str, arn: str) -> bool:
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), arn) is not None


#: The one action granted on Resource "*": it has no resource type (the Service
#: Authorization Reference lists none), and reads no value by itself: each secret it returns
#: needs GetSecretValue on that secret.
BATCH = "secretsmanager:BatchGetSecretValue"


def test_every_statement_allows_and_names_its_actions() -> None:
    for name in ("aws-writer.json", "aws-reader.json", "aws-rotator.json"):
        policy = load(name)
        assert policy["Version"] == "2012-10-17"
        for statement in policy["Statement"]:
            assert statement["Effect"] == "Allow"
            assert "*" not in statement["Action"]
            assert all(not a.endswith("*") for a in statement["Action"])
            if statement["Resource"] == "*":
                assert statement["Action"] == [BATCH], statement.get("Sid")


def test_batch_reads_on_every_resource_read_only_what_getsecretvalue_allows() -> None:
    reader = load("aws-reader.json")["Statement"]
    (everywhere,) = [s for s in reader if s["Resource"] == "*"]
    assert everywhere["Action"] == [BATCH]
    assert "Condition" not in everywhere
    gets = [s for s in reader if "secretsmanager:GetSecretValue" in s["Action"]]
    assert [s["Resource"] for s in gets] == ["arn:aws:secretsmanager:*:*:secret:unkey/*"]
    # ListSecrets is needed for Filters only; the store names its secrets (SecretIdList).
    assert not any("secretsmanager:ListSecrets" in s["Action"] for s in reader)


def test_the_writer_can_write_but_not_read() -> None:
    writer = actions(load("aws-writer.json"))
    assert {
        "secretsmanager:CreateSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:TagResource",
        "secretsmanager:UpdateSecretVersionStage",
    } <= writer
    reads = {"secretsmanager:GetSecretValue", "secretsmanager:BatchGetSecretValue"}
    assert not writer & reads
    assert not {a for a in writer if a.startswith("secretsmanager:") and "Delete" in a}


def test_the_rotator_is_the_writer_plus_reading_aliases() -> None:
    writer, rotator = load("aws-writer.json"), load("aws-rotator.json")
    extra = [s for s in rotator["Statement"] if s not in writer["Statement"]]
    assert all(s in rotator["Statement"] for s in writer["Statement"])
    assert [s["Action"] for s in extra] == [["secretsmanager:GetSecretValue"]]
    store = SecretsManagerStore(make_client())
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:{}-AbC123"
    (statement,) = extra
    resources = statement["Resource"]
    alias = arn.format(store.alias_location(api_id="api_1", alias="s"))
    record = arn.format(store.rotation_location(api_id="api_1", key_id="key_1"))
    key = arn.format(store.key_location(api_id="api_1", key_id="key_1"))
    assert any(matches(r, alias) for r in resources)
    assert any(matches(r, record) for r in resources)
    assert not any(matches(r, key) for r in resources), "a key's own secret stays unread"


def test_the_reader_can_read_but_not_write() -> None:
    reader = actions(load("aws-reader.json"))
    assert reader == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:BatchGetSecretValue",
        "secretsmanager:DescribeSecret",
        "kms:Decrypt",
    }


@pytest.mark.parametrize("policy", ["aws-writer.json", "aws-reader.json"])
def test_secret_resources_cover_exactly_the_default_names(policy: str) -> None:
    store = SecretsManagerStore(make_client())
    names = [
        store.key_location(api_id="api_123", key_id="key_456"),
        store.alias_location(api_id="api_123", alias="svc"),
    ]
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:{}-AbC123"
    for statement in load(policy)["Statement"]:
        if not statement["Action"][0].startswith("secretsmanager:") or statement["Action"] == [
            BATCH
        ]:
            continue
        for name in names:
            assert matches(statement["Resource"], arn.format(name))
        assert not matches(statement["Resource"], arn.format("prod/db-password"))


def test_kms_use_is_limited_to_secrets_manager_and_our_secrets() -> None:
    for name in ("aws-writer.json", "aws-reader.json", "aws-rotator.json"):
        for statement in load(name)["Statement"]:
            if statement["Action"][0].startswith("kms:"):
                like = statement["Condition"]["StringLike"]
                assert like["kms:ViaService"] == "secretsmanager.*.amazonaws.com"
                assert like["kms:EncryptionContext:SecretARN"].endswith(":secret:unkey/*")


OUR_TAG_KEYS = {
    "managed-by",
    "unkey-kind",
    "unkey-key-id",
    "unkey-api-id",
    "unkey-alias",
    "unkey-rerolled-from",
}
TAGGING = {"secretsmanager:TagResource", "secretsmanager:UntagResource"}


def test_the_writer_cannot_tag_or_untag_a_secret_that_exists() -> None:
    """Tagging is the way to take a secret over: only CreateSecret's own tags are allowed.

    PutSecretValue and UpdateSecretVersionStage trust the managed-by tag, so a writer that could
    tag an existing foreign secret ``managed-by=unkey-secrets`` could then overwrite it. Every
    statement allowing TagResource must either require the secret to be ours already, or hold
    only inside a CreateSecret request (whose request context names the new secret; a
    standalone TagResource names a SecretId and no Name), and must limit the keys to ours.
    """
    writer = load("aws-writer.json")
    assert writer["Statement"]
    for statement in writer["Statement"]:
        allowed = set(statement["Action"])
        assert "secretsmanager:UntagResource" not in allowed
        assert not {a for a in allowed if a.startswith("secretsmanager:") and "*" in a}
        if not allowed & TAGGING:
            continue
        condition = statement.get("Condition", {})
        assert condition.get("StringEquals", {}).get("aws:RequestTag/managed-by") == MANAGED
        keys = condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys")
        assert keys is not None
        assert set(keys) <= OUR_TAG_KEYS
        already_ours = (
            condition.get("StringEquals", {}).get("secretsmanager:ResourceTag/managed-by")
            == MANAGED
        )
        inside_create = condition.get("Null", {}) == {"secretsmanager:Name": "false"}
        assert already_ours or inside_create, statement.get("Sid")


def test_creation_is_limited_to_our_tag_keys() -> None:
    for statement in load("aws-writer.json")["Statement"]:
        if "secretsmanager:CreateSecret" in statement["Action"]:
            condition = statement["Condition"]
            assert condition["StringEquals"]["aws:RequestTag/managed-by"] == MANAGED
            keys = condition["ForAllValues:StringEquals"]["aws:TagKeys"]
            assert set(keys) == OUR_TAG_KEYS


def test_the_store_tags_only_when_it_creates() -> None:
    """The policy allows no TagResource call on its own: the store must never make one."""
    source = (
        Path(__file__).resolve().parents[2] / "unkey_secrets" / "stores" / "aws" / "store.py"
    ).read_text()
    assert "tag_resource" not in source
    assert "untag_resource" not in source


def test_the_tag_keys_in_the_policy_are_the_ones_the_store_writes() -> None:
    from unkey_secrets.stores import aws

    assert {
        aws.TAG_MANAGED_BY,
        aws.TAG_KIND,
        aws.TAG_KEY_ID,
        aws.TAG_API_ID,
        aws.TAG_ALIAS,
        aws.TAG_REROLLED_FROM,
    } == OUR_TAG_KEYS
