"""examples/cross_account/: the policies both accounts need, and the reader run on moto.

The policies are read as JSON and checked for the actions, principals and resources the
example's header describes, and against each other (one role, one ExternalId, one account
each). The example runs as a separate process against a moto server: its requests are
signed with the credentials moto's AssumeRole handed out, so it reads the secrets account.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.unit._aws_client import make_client
from unkey_secrets.stores.aws import SecretsManagerStore, version_id_for
from unkey_secrets.testing.contract import canary_key, random_id
from unkey_secrets.testing.moto import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY, MotoServer

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cross_account"
SECRETS_ACCOUNT, CALLER_ACCOUNT = "111111111111", "222222222222"
READER_ROLE = f"arn:aws:iam::{SECRETS_ACCOUNT}:role/unkey-secrets-reader"
APP_ROLE = f"arn:aws:iam::{CALLER_ACCOUNT}:role/billing-service"


def load(name: str) -> dict[str, Any]:
    policy = json.loads((EXAMPLE / name).read_text())
    assert policy["Version"] == "2012-10-17"
    assert all(s["Effect"] == "Allow" for s in policy["Statement"])
    return policy


def listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def matches(pattern: str, arn: str) -> bool:
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), arn) is not None


def external_id() -> str:
    (statement,) = load("reader_role_trust_policy.json")["Statement"]
    value = statement["Condition"]["StringEquals"]["sts:ExternalId"]
    assert isinstance(value, str)
    return value


def test_the_trust_policy_lets_the_app_role_in_with_the_external_id() -> None:
    (statement,) = load("reader_role_trust_policy.json")["Statement"]
    assert listed(statement["Action"]) == ["sts:AssumeRole"]
    assert listed(statement["Principal"]["AWS"]) == [APP_ROLE]
    assert list(statement["Condition"]) == ["StringEquals"]
    assert len(external_id()) >= 2


def test_the_caller_may_assume_the_reader_role_and_nothing_else() -> None:
    (statement,) = load("caller_policy.json")["Statement"]
    assert listed(statement["Action"]) == ["sts:AssumeRole"]
    assert listed(statement["Resource"]) == [READER_ROLE]


def test_the_reader_role_reads_the_unkey_secrets_of_its_account_only() -> None:
    statements = load("reader_role_permissions_policy.json")["Statement"]
    actions = {a for s in statements for a in listed(s["Action"])}
    assert actions == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:BatchGetSecretValue",
    }
    store = SecretsManagerStore(make_client())
    arn = "arn:aws:secretsmanager:eu-west-1:{account}:secret:{name}-AbC123"
    ours = [
        store.key_location(api_id="api_123", key_id="key_456"),
        store.alias_location(api_id="api_123", alias="billing"),
    ]
    for statement in statements:
        if listed(statement["Action"]) == ["secretsmanager:BatchGetSecretValue"]:
            # BatchGetSecretValue has no resource type: it returns what GetSecretValue allows.
            assert statement["Resource"] == "*"
            continue
        resource = statement["Resource"]
        assert all(matches(resource, arn.format(account=SECRETS_ACCOUNT, name=n)) for n in ours)
        assert not matches(resource, arn.format(account=SECRETS_ACCOUNT, name="prod/db"))
        assert not matches(resource, arn.format(account=CALLER_ACCOUNT, name=ours[0]))


def test_the_key_policy_lets_the_reader_role_decrypt_through_secrets_manager_only() -> None:
    statements = load("kms_key_policy.json")["Statement"]
    admin, reader = statements
    assert admin["Principal"]["AWS"] == f"arn:aws:iam::{SECRETS_ACCOUNT}:root"
    assert listed(reader["Principal"]["AWS"]) == [READER_ROLE]
    assert listed(reader["Action"]) == ["kms:Decrypt"]
    like = reader["Condition"]["StringLike"]
    assert like["kms:ViaService"] == "secretsmanager.*.amazonaws.com"
    assert like["kms:EncryptionContext:SecretARN"] == (
        f"arn:aws:secretsmanager:*:{SECRETS_ACCOUNT}:secret:unkey/*"
    )


def test_the_example_reads_the_key_through_the_role(
    moto_server: MotoServer, aws_env: dict[str, str]
) -> None:
    from moto.sts.models import sts_backends

    unkey_api_id = random_id("api")
    session_name = f"example-{os.getpid()}"
    # The secrets account's writer: the key stored there (moto keeps accounts apart).
    writer = SecretsManagerStore(
        region=moto_server.region,
        endpoint_url=moto_server.url,
        sts_endpoint_url=moto_server.url,
        role_arn=READER_ROLE,
        external_id=external_id(),
    )
    key = canary_key(api_id=unkey_api_id, alias="billing")
    writer.put(key)
    writer.set_current(key, alias="billing", expected=None)
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_REGION": moto_server.region,
        "AWS_ENDPOINT_URL": moto_server.url,
        "UNKEY_SECRETS_AWS_ROLE_ARN": READER_ROLE,
        "UNKEY_SECRETS_AWS_EXTERNAL_ID": external_id(),
        "UNKEY_SECRETS_AWS_ROLE_SESSION_NAME": session_name,
        "UNKEY_SECRETS_AWS_DURATION_SECONDS": "900",
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "read_key.py"), unkey_api_id, "billing"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        f"read {key.key_id} (version {version_id_for(key.key_id)}) of {unkey_api_id} alias "
        f"billing from account {SECRETS_ACCOUNT} in {moto_server.region}"
    )
    assert key.secret.reveal() not in done.stdout + done.stderr
    (assumed,) = [
        r
        for r in sts_backends[SECRETS_ACCOUNT]["aws"].assumed_roles
        if r.session_name == session_name
    ]
    assert (assumed.role_arn, assumed.external_id) == (READER_ROLE, external_id())
