"""The Secrets Manager store against a real moto server on 127.0.0.1."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from unkey_secrets import (
    NotOwnedError,
    StoreAccessError,
    StoreConflictError,
    StoreUnavailableError,
    UnkeyClient,
    provision,
    rotate,
)
from unkey_secrets.stores.aws import MAX_VALUE_BYTES, SecretsManagerStore, version_id_for
from unkey_secrets.stores.base import SecretStore
from unkey_secrets.testing.contract import SecretStoreContract, canary_key, random_id
from unkey_secrets.testing.emulator import Emulator
from unkey_secrets.testing.moto import MotoServer

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture
def sm(moto_server: MotoServer) -> Any:
    return moto_server.client("secretsmanager")


@pytest.fixture
def aws(sm: Any) -> SecretsManagerStore:
    return SecretsManagerStore(sm)


def _tags(description: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in description.get("Tags", [])}


class TestSecretsManagerStoreContract(SecretStoreContract):
    @pytest.fixture
    def store(self, moto_server: MotoServer) -> SecretStore:
        return SecretsManagerStore(moto_server.client("secretsmanager"))

    def plant_foreign(self, store: SecretStore, location: str) -> None:
        assert isinstance(store, SecretsManagerStore)
        store.client.create_secret(Name=location, SecretString="someone else's secret")


def test_created_secret_carries_our_tags_and_token(sm: Any) -> None:
    store = SecretsManagerStore(sm, tags={"team": "payments"})
    key = canary_key()
    stored = store.put(key)
    described = sm.describe_secret(SecretId=stored.location)
    assert stored.location == described["ARN"]
    assert described["Name"] == f"unkey/{key.api_id}/{key.key_id}"
    assert _tags(described) == {
        "managed-by": "unkey-secrets",
        "unkey-kind": "key",
        "unkey-key-id": key.key_id,
        "unkey-api-id": key.api_id,
        "team": "payments",
    }
    assert stored.version == version_id_for(key.key_id)
    assert described["VersionIdsToStages"] == {stored.version: ["AWSCURRENT"]}
    value = json.loads(sm.get_secret_value(SecretId=stored.location)["SecretString"])
    assert value["key"] == key.secret.reveal()
    assert value["key_id"] == key.key_id


def test_stable_name_keeps_the_previous_key_as_awsprevious(
    aws: SecretsManagerStore, sm: Any
) -> None:
    first = canary_key()
    second = canary_key(api_id=first.api_id, rerolled_from=first.key_id)
    aws.set_current(first, alias="svc")
    moved = aws.set_current(second, alias="svc")
    assert moved.alias == "svc"
    stages = sm.describe_secret(SecretId=moved.location)["VersionIdsToStages"]
    assert stages == {
        version_id_for(first.key_id): ["AWSPREVIOUS"],
        version_id_for(second.key_id): ["AWSCURRENT"],
    }
    previous = sm.get_secret_value(SecretId=moved.location, VersionStage="AWSPREVIOUS")
    assert json.loads(previous["SecretString"])["key_id"] == first.key_id
    assert _tags(sm.describe_secret(SecretId=moved.location))["unkey-kind"] == "current"


def test_going_back_to_an_earlier_key_moves_the_label(aws: SecretsManagerStore, sm: Any) -> None:
    first = canary_key()
    second = canary_key(api_id=first.api_id)
    aws.set_current(first, alias="svc")
    aws.set_current(second, alias="svc")
    back = aws.set_current(first, alias="svc")
    assert back.created
    assert aws.get_current(api_id=first.api_id, alias="svc").key_id == first.key_id
    stages = sm.describe_secret(SecretId=back.location)["VersionIdsToStages"]
    assert stages[version_id_for(first.key_id)] == ["AWSCURRENT"]
    assert stages[version_id_for(second.key_id)] == ["AWSPREVIOUS"]


def test_moto_ignores_a_repeated_create_with_the_same_token_and_value(sm: Any) -> None:
    # The behaviour the store relies on (documented for AWS too): same token and value succeed
    # silently, another value under the same token is refused.
    name, token = f"unkey/probe/{random_id('key')}", version_id_for(random_id("key"))
    first = sm.create_secret(Name=name, ClientRequestToken=token, SecretString="v1")
    again = sm.create_secret(Name=name, ClientRequestToken=token, SecretString="v1")
    assert again["VersionId"] == first["VersionId"] == token
    with pytest.raises(sm.exceptions.ResourceExistsException):
        sm.create_secret(Name=name, ClientRequestToken=token, SecretString="v2")


def _time_out_after(client: Any, operation: str) -> list[int]:
    """Make the next ``operation`` raise ReadTimeoutError after the server has carried it out."""
    fired: list[int] = []

    def lose_the_answer(**_: Any) -> None:
        if not fired:
            fired.append(1)
            raise ReadTimeoutError(endpoint_url=client.meta.endpoint_url)

    client.meta.events.register(f"after-call.secretsmanager.{operation}", lose_the_answer)
    return fired


def test_retry_after_an_ambiguous_create_converges(aws: SecretsManagerStore, sm: Any) -> None:
    key = canary_key()
    fired = _time_out_after(sm, "CreateSecret")
    with pytest.raises(StoreUnavailableError) as raised:
        aws.put(key)
    assert fired
    assert key.secret.reveal() not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    again = aws.put(key)
    assert not again.created
    assert again.version == version_id_for(key.key_id)
    assert aws.get(api_id=key.api_id, key_id=key.key_id).secret == key.secret
    assert len(sm.describe_secret(SecretId=again.location)["VersionIdsToStages"]) == 1


def test_retry_after_an_ambiguous_move_converges(aws: SecretsManagerStore, sm: Any) -> None:
    first = canary_key()
    second = canary_key(api_id=first.api_id)
    aws.set_current(first, alias="svc")
    _time_out_after(sm, "PutSecretValue")
    with pytest.raises(StoreUnavailableError):
        aws.set_current(second, alias="svc")
    again = aws.set_current(second, alias="svc")
    assert not again.created
    assert aws.get_current(api_id=first.api_id, alias="svc").key_id == second.key_id


def test_a_new_object_for_a_stored_key_id_is_a_no_op(aws: SecretsManagerStore) -> None:
    key = canary_key()
    aws.put(key)
    # Same key_id, another issued_at: the value differs, the token does not.
    same = canary_key(api_id=key.api_id, key_id=key.key_id)
    assert not aws.put(same).created
    aws.set_current(key, alias="svc")
    assert not aws.set_current(same, alias="svc").created


def test_a_location_tagged_for_another_key_is_a_conflict(aws: SecretsManagerStore, sm: Any) -> None:
    key = canary_key()
    name = aws.key_location(api_id=key.api_id, key_id=key.key_id)
    sm.create_secret(
        Name=name,
        SecretString="{}",
        Tags=[
            {"Key": "managed-by", "Value": "unkey-secrets"},
            {"Key": "unkey-key-id", "Value": "key_other"},
        ],
    )
    with pytest.raises(StoreConflictError):
        aws.put(key)


def test_a_key_secret_is_never_used_as_a_stable_name(sm: Any) -> None:
    key = canary_key()
    # A template that makes a stable name land on the key's own secret.
    store = SecretsManagerStore(sm, alias_template="unkey/{api_id}/{alias}")
    store.put(key)
    with pytest.raises(StoreConflictError):
        store.set_current(key, alias=key.key_id)


def test_a_secret_scheduled_for_deletion_is_a_conflict(aws: SecretsManagerStore, sm: Any) -> None:
    key = canary_key()
    stored = aws.put(key)
    sm.delete_secret(SecretId=stored.location, RecoveryWindowInDays=7)
    with pytest.raises(StoreConflictError):
        aws.put(key)


def test_a_foreign_stable_name_is_never_moved(aws: SecretsManagerStore, sm: Any) -> None:
    key = canary_key()
    name = aws.alias_location(api_id=key.api_id, alias="svc")
    sm.create_secret(Name=name, SecretString="theirs")
    with pytest.raises(NotOwnedError):
        aws.set_current(key, alias="svc")
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "theirs"


def test_an_oversize_value_writes_nothing(aws: SecretsManagerStore, sm: Any) -> None:
    from unkey_secrets import InvalidInputError, Secret
    from unkey_secrets._models import IssuedKey

    key = IssuedKey(
        key_id=random_id("key"), api_id=random_id("api"), secret=Secret("k" * MAX_VALUE_BYTES)
    )
    with pytest.raises(InvalidInputError):
        aws.put(key)
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=aws.key_location(api_id=key.api_id, key_id=key.key_id))


@pytest.fixture
def unreachable_default_store(
    dead_port: int, monkeypatch: pytest.MonkeyPatch
) -> SecretsManagerStore:
    """The store's own boto3 client, from the standard chain set here, on a dead loopback port."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    return SecretsManagerStore(region="us-east-1", endpoint_url=f"http://127.0.0.1:{dead_port}")


def test_the_default_client_reports_an_unreachable_endpoint(
    unreachable_default_store: SecretsManagerStore,
) -> None:
    store = unreachable_default_store
    with pytest.raises(StoreUnavailableError) as raised:
        store.put(canary_key())
    assert raised.value.__context__ is None


# -- least privilege -----------------------------------------------------------------------------


def _policy_for_moto(path: Path) -> str:
    """The shipped policy with Resource "*" and no Condition.

    moto authorises Secrets Manager calls against the resource "*" and does not evaluate these
    condition keys, so only the actions are checked here; resources are checked in
    tests/unit/test_aws_policies.py.
    """
    document = json.loads(path.read_text())
    for statement in document["Statement"]:
        statement["Resource"] = "*"
        statement.pop("Condition", None)
    return json.dumps(document)


@pytest.fixture
def iam_user(moto_server: MotoServer) -> Any:
    iam = moto_server.client("iam")

    def make(policy: Path) -> Any:
        user = random_id("user")
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user, PolicyName="unkey", PolicyDocument=_policy_for_moto(policy)
        )
        access = iam.create_access_key(UserName=user)["AccessKey"]
        return moto_server.client(
            "secretsmanager",
            aws_access_key_id=access["AccessKeyId"],
            aws_secret_access_key=access["SecretAccessKey"],
        )

    return make


def test_the_writer_policy_writes_and_cannot_read(moto_server: MotoServer, iam_user: Any) -> None:
    writer = SecretsManagerStore(iam_user(POLICIES / "aws-writer.json"))
    reader = SecretsManagerStore(iam_user(POLICIES / "aws-reader.json"))
    first = canary_key()
    second = canary_key(api_id=first.api_id)
    with moto_server.enforce_iam():
        assert writer.put(first).created
        assert not writer.put(first).created
        writer.put(second)
        writer.set_current(first, alias="svc")
        writer.set_current(second, alias="svc")
        writer.set_current(first, alias="svc")  # moves the label back: UpdateSecretVersionStage
        with pytest.raises(StoreAccessError):
            writer.get(api_id=first.api_id, key_id=first.key_id)
        with pytest.raises(StoreAccessError):
            writer.get_current(api_id=first.api_id, alias="svc")
        assert reader.get(api_id=first.api_id, key_id=first.key_id).secret == first.secret
        assert reader.get_current(api_id=first.api_id, alias="svc").key_id == first.key_id
        with pytest.raises(StoreAccessError):
            reader.put(canary_key())


def test_every_call_the_writer_makes_is_in_the_writer_policy(sm: Any) -> None:
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        called.add(f"secretsmanager:{model.name}")

    sm.meta.events.register("before-call.secretsmanager", record)
    store = SecretsManagerStore(sm)
    first = canary_key()
    second = canary_key(api_id=first.api_id)
    for key in (first, second, first):
        store.put(key)
        store.set_current(key, alias="svc")
    writes = set(called)
    policy = json.loads((POLICIES / "aws-writer.json").read_text())
    allowed = {a for s in policy["Statement"] for a in s["Action"]}
    assert writes == {
        "secretsmanager:CreateSecret",
        "secretsmanager:DescribeSecret",
        "secretsmanager:PutSecretValue",
        "secretsmanager:UpdateSecretVersionStage",
    }
    assert writes <= allowed
    assert not any(a.startswith(("secretsmanager:Get", "secretsmanager:List")) for a in allowed)


# -- contains: from DescribeSecret alone -------------------------------------------------------


def _calls(client: Any) -> list[str]:
    called: list[str] = []
    client.meta.events.register(
        "before-call.secretsmanager", lambda model, **_: called.append(model.name)
    )
    return called


def test_contains_answers_from_metadata_alone(aws: SecretsManagerStore, sm: Any) -> None:
    key = canary_key()
    assert not aws.contains(api_id=key.api_id, key_id=key.key_id)
    aws.put(key)
    called = _calls(sm)
    assert aws.contains(api_id=key.api_id, key_id=key.key_id)
    assert not aws.contains(api_id=key.api_id, key_id=random_id("key"))
    assert called == ["DescribeSecret", "DescribeSecret"]


def _plant(sm: Any, aws: SecretsManagerStore, key_id: str, api_id: str, **tags: str) -> str:
    name = aws.key_location(api_id=api_id, key_id=key_id)
    sm.create_secret(
        Name=name,
        ClientRequestToken=version_id_for(key_id),
        SecretString="{}",
        Tags=[{"Key": k.replace("_", "-"), "Value": v} for k, v in tags.items()],
    )
    return name


@pytest.mark.parametrize(
    "tags",
    [
        {},
        {"managed_by": "someone-else", "unkey_kind": "key"},
        {"managed_by": "unkey-secrets", "unkey_kind": "current"},
        {"managed_by": "unkey-secrets", "unkey_kind": "key", "unkey_key_id": "key_other"},
        {"managed_by": "unkey-secrets", "unkey_kind": "key", "unkey_key_id": "not a key id"},
        {"managed_by": "unkey-secrets", "unkey_kind": "key", "unkey_api_id": "api_other"},
    ],
    ids=["untagged", "other-owner", "stable-name", "other-key", "bad-key-id", "other-path"],
)
def test_contains_is_false_for_a_secret_that_is_not_our_key(
    aws: SecretsManagerStore, sm: Any, tags: dict[str, str]
) -> None:
    api_id, key_id = random_id("api"), random_id("key")
    # Fill in the rest of a genuine tag set, so each case differs in one tag only.
    full = {"managed_by": "unkey-secrets", "unkey_kind": "key", "unkey_key_id": key_id}
    full["unkey_api_id"] = api_id
    planted = {**full, **tags} if tags else {}
    _plant(sm, aws, key_id, api_id, **planted)
    assert not aws.contains(api_id=api_id, key_id=key_id)


def test_contains_is_true_for_a_genuine_tag_set(aws: SecretsManagerStore, sm: Any) -> None:
    # The control for the cases above: the same planting with every tag right.
    api_id, key_id = random_id("api"), random_id("key")
    _plant(
        sm,
        aws,
        key_id,
        api_id,
        managed_by="unkey-secrets",
        unkey_kind="key",
        unkey_key_id=key_id,
        unkey_api_id=api_id,
    )
    assert aws.contains(api_id=api_id, key_id=key_id)


def test_contains_is_false_when_our_version_is_not_current(
    aws: SecretsManagerStore, sm: Any
) -> None:
    key = canary_key()
    name = aws.put(key).location
    other = version_id_for(random_id("key"))
    sm.put_secret_value(SecretId=name, ClientRequestToken=other, SecretString="{}")
    assert not aws.contains(api_id=key.api_id, key_id=key.key_id)


def test_contains_works_with_the_writer_policy(moto_server: MotoServer, iam_user: Any) -> None:
    writer = SecretsManagerStore(iam_user(POLICIES / "aws-writer.json"))
    key = canary_key()
    with moto_server.enforce_iam():
        writer.put(key)
        assert writer.contains(api_id=key.api_id, key_id=key.key_id)


def test_contains_reports_an_unreachable_endpoint(
    unreachable_default_store: SecretsManagerStore,
) -> None:
    store = unreachable_default_store
    with pytest.raises(StoreUnavailableError):
        store.contains(api_id="api_1", key_id="key_1")


def test_rotation_needs_the_rotator_policy_and_the_writer_is_refused_before_unkey(
    moto_server: MotoServer,
    iam_user: Any,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    writer = SecretsManagerStore(iam_user(POLICIES / "aws-writer.json"))
    rotator = SecretsManagerStore(iam_user(POLICIES / "aws-rotator.json"))
    with moto_server.enforce_iam():
        first = provision(unkey_client, writer, unkey_api_id, alias="svc")
        before = unkey_emulator.calls.copy()
        with pytest.raises(StoreAccessError):
            rotate(unkey_client, writer, unkey_api_id, alias="svc")
        assert unkey_emulator.calls == before, "refused before Unkey was called"
        result = rotate(unkey_client, rotator, unkey_api_id, alias="svc")
        assert result.original_key_id == first.key_id
        again = rotate(unkey_client, rotator, unkey_api_id, first.key_id)
        assert (again.outcome, again.key_id) == ("already-done", result.key_id)
