"""The Secrets Manager store against a real moto server on 127.0.0.1."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from unkey_secrets import (
    ConfigurationError,
    InvalidInputError,
    NotOwnedError,
    StoreAccessError,
    StoreConflictError,
    StoredValueError,
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
    records_late_alias = False

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
    with pytest.raises(StoreConflictError, match="scheduled for deletion"):
        aws.put(key)
    # A new key whose name is taken by a deleted secret: CreateSecret itself is refused.
    again = canary_key()
    name = aws.key_location(api_id=again.api_id, key_id=again.key_id)
    sm.create_secret(Name=name, SecretString="old")
    sm.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    with pytest.raises(StoreConflictError, match="restore-secret --secret-id") as raised:
        aws.put(again)
    assert again.secret.reveal() not in str(raised.value)


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


# -- preflight: configuration checked live, before Unkey is called -------------------------------


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The standard chain pointed at moto, with no profile, config file or retry setting."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_SESSION_TOKEN",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", moto_server.region)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    return monkeypatch


def _refused_before_unkey(
    store: SecretStore, unkey_client: UnkeyClient, unkey_emulator: Emulator, api_id: str
) -> ConfigurationError:
    before = unkey_emulator.calls.copy()
    with pytest.raises(ConfigurationError) as raised:
        provision(unkey_client, store, api_id, alias="svc")
    assert unkey_emulator.calls == before, "Unkey was called"
    assert unkey_emulator.keys(api_id) == []
    return raised.value


def test_no_aws_credentials_is_refused_before_unkey(
    aws_env: pytest.MonkeyPatch,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    store = SecretsManagerStore.from_settings()
    error = _refused_before_unkey(store, unkey_client, unkey_emulator, unkey_api_id)
    assert "NoCredentialsError" in str(error)
    assert "AWS_PROFILE" in str(error)
    assert "policies/aws-writer.json" in str(error)


def test_a_dead_endpoint_is_refused_before_unkey(
    aws_env: pytest.MonkeyPatch,
    dead_port: int,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{dead_port}")
    store = SecretsManagerStore.from_settings()
    error = _refused_before_unkey(store, unkey_client, unkey_emulator, unkey_api_id)
    assert "could not reach Secrets Manager" in str(error)
    assert "AWS_ENDPOINT_URL" in str(error)


def test_a_missing_profile_is_a_configuration_error_naming_it(
    aws_env: pytest.MonkeyPatch,
) -> None:
    aws_env.setenv("AWS_PROFILE", "nosuch")
    with pytest.raises(ConfigurationError, match="'nosuch'") as raised:
        SecretsManagerStore.from_settings()
    assert "AWS_PROFILE" in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


def test_the_cli_with_a_missing_profile_exits_2_before_unkey(
    moto_server: MotoServer, unkey_emulator_server: Any, unkey_emulator: Emulator, unkey_api_id: str
) -> None:
    from ._cli_harness import aws_env as cli_aws_env
    from ._cli_harness import run_cli, unkey_env

    env = {**cli_aws_env(moto_server), **unkey_env(unkey_emulator_server), "AWS_PROFILE": "nosuch"}
    done = run_cli(["--store", "aws", "provision", "--api-id", unkey_api_id], env)
    assert done.returncode == 2, done.stderr
    assert "nosuch" in done.stderr
    assert "unexpected" not in done.stderr
    assert "ProfileNotFound" not in done.stderr
    assert unkey_emulator.keys(unkey_api_id) == []


def test_credentials_without_the_writer_policy_are_refused_before_unkey(
    moto_server: MotoServer,
    iam_user: Any,
    tmp_path: Path,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
) -> None:
    unrelated = tmp_path / "kms-only.json"
    unrelated.write_text(
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}],
            }
        )
    )
    store = SecretsManagerStore(iam_user(unrelated))
    with moto_server.enforce_iam():
        error = _refused_before_unkey(store, unkey_client, unkey_emulator, unkey_api_id)
    assert "policies/aws-writer.json" in str(error)


@pytest.mark.parametrize("alias", ["web-server", "billing-prod01"])
def test_an_alias_aws_reads_as_an_arn_suffix_is_refused_before_unkey(
    aws: SecretsManagerStore,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    alias: str,
) -> None:
    before = unkey_emulator.calls.copy()
    with pytest.raises(InvalidInputError, match="ARN suffix"):
        provision(unkey_client, aws, unkey_api_id, alias=alias)
    assert unkey_emulator.calls == before
    assert unkey_emulator.keys(unkey_api_id) == []


def test_the_preflight_costs_one_describe_per_store_object(aws: SecretsManagerStore) -> None:
    calls = _calls(aws.client)
    api_id = random_id("api")
    aws.check_writable(api_id=api_id, alias="svc")
    assert calls == ["DescribeSecret"]
    for _ in range(3):
        aws.check_writable(api_id=api_id, alias="svc")
        aws.check_writable(api_id=api_id)
    assert calls == ["DescribeSecret"], "cached for the store object"
    SecretsManagerStore(aws.client, preflight=False).check_writable(api_id=api_id)
    assert calls == ["DescribeSecret"]


# -- the write path at its floor -------------------------------------------------------------------


def test_a_new_key_costs_one_create_secret(aws: SecretsManagerStore, sm: Any) -> None:
    calls = _calls(aws.client)
    key = canary_key()
    assert aws.put(key).created
    assert calls == ["CreateSecret"], "no DescribeSecret before a write"
    # A repeat on the same object describes (a repeated create would succeed silently).
    assert not aws.put(key).created
    assert calls == ["CreateSecret", "DescribeSecret"]
    # A name taken by someone else: CreateSecret refused, then described, then refused.
    taken = canary_key(api_id=key.api_id)
    sm.create_secret(
        Name=aws.key_location(api_id=taken.api_id, key_id=taken.key_id), SecretString="x"
    )
    calls.clear()
    with pytest.raises(NotOwnedError):
        SecretsManagerStore(sm).put(taken)
    assert calls == ["CreateSecret", "DescribeSecret"]


def test_one_failing_put_is_retried_by_one_layer_only(
    aws_env: pytest.MonkeyPatch, moto_server: MotoServer
) -> None:
    from botocore.awsrequest import AWSResponse

    from unkey_secrets import RetryPolicy

    store = SecretsManagerStore()
    sent: list[str] = []

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield b'{"__type": "InternalServiceError", "message": "down"}'

    def fail(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        return AWSResponse(request.url, 500, {}, Raw())

    store.client.meta.events.register("before-send.secrets-manager", fail)
    with pytest.raises(StoreUnavailableError):
        RetryPolicy(attempts=4, sleep=lambda _: None).run(lambda: store.put(canary_key()))
    assert len(sent) == 4, f"{len(sent)} requests for 4 attempts of the flow"


def test_an_explicit_retry_setting_is_honoured(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_MAX_ATTEMPTS", "3")
    assert SecretsManagerStore().client.meta.config.retries.get("total_max_attempts") != 1
    aws_env.delenv("AWS_MAX_ATTEMPTS")
    assert SecretsManagerStore().client.meta.config.retries["total_max_attempts"] == 1


def test_sixteen_threads_share_a_store_without_overflowing_its_pool(
    aws_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    store = SecretsManagerStore(max_connections=16)
    assert store.client.meta.config.max_pool_connections == 16
    api_id = random_id("api")
    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: store.put(canary_key(api_id=api_id)), range(64)))
    assert all(r.created for r in results)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


# -- constructor errors with frame locals ----------------------------------------------------------


def test_a_constructor_error_renders_with_frame_locals(aws_env: pytest.MonkeyPatch) -> None:
    import traceback

    with pytest.raises(InvalidInputError) as raised:
        SecretsManagerStore(key_template="unkey/{api_id}/{key_id}-abcdef")
    rendered = traceback.TracebackException.from_exception(raised.value, capture_locals=True)
    assert "key_template" in "".join(rendered.format())
    aws_env.setenv("AWS_PROFILE", "nosuch")
    with pytest.raises(ConfigurationError) as failed:
        SecretsManagerStore.from_settings()
    rendered = traceback.TracebackException.from_exception(failed.value, capture_locals=True)
    assert "nosuch" in "".join(rendered.format())
    half = SecretsManagerStore.__new__(SecretsManagerStore)
    assert repr(half) == (
        "SecretsManagerStore(key_template=None, alias_template=None, region=None)"
    )


@pytest.mark.parametrize(
    "text", ['{"a":' * 5000 + "1" + "}" * 5000, '{"revision": ' + "9" * 5000 + "}"]
)
def test_a_rotation_record_that_cannot_be_decoded_is_a_stored_value_error(
    sm: Any, text: str
) -> None:
    store = SecretsManagerStore(sm)
    api_id, key_id = random_id("api"), random_id("key")
    sm.create_secret(Name=store.rotation_location(api_id=api_id, key_id=key_id), SecretString=text)
    with pytest.raises(StoredValueError):
        store.read_rotation(api_id=api_id, key_id=key_id)
