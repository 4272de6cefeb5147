"""InMemorySecretsManager: AWS's semantics one by one, its error shapes and failure injection.

The same scenarios also run against moto in tests/functional/test_secretsmanager_double_contract.py.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

import unkey_secrets.testing
from unkey_secrets import (
    SecretNotFoundError,
    SecretStore,
    StoreConflictError,
    StoreUnavailableError,
)
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.errors import ResourceExistsError, translate
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.contract import SecretStoreContract, canary_key

ARN = re.compile(
    r"arn:aws:secretsmanager:us-east-1:123456789012:secret:(?P<name>.+)-[A-Za-z0-9]{6}"
)
PLAINTEXT = "unkey_canary_value_do_not_log_0123456789"


@pytest.fixture
def sm() -> InMemorySecretsManager:
    return InMemorySecretsManager()


def token() -> str:
    return str(uuid.uuid4())


def code_of(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return str(raised.value.response["Error"]["Code"])


def new_secret(sm: InMemorySecretsManager, value: str | None = "v1", **extra: Any) -> str:
    options: dict[str, Any] = {"Name": f"test/{uuid.uuid4().hex}", **extra}
    if value is not None:
        options["SecretString"] = value
    return str(sm.create_secret(**options)["ARN"])


# -- the store's contract, over the double -----------------------------------------------------


class TestSecretsManagerStoreOverTheDouble(SecretStoreContract):
    records_late_alias = False

    @pytest.fixture
    def store(self) -> SecretStore:
        return SecretsManagerStore(InMemorySecretsManager())

    def plant_foreign(self, store: SecretStore, location: str) -> None:
        assert isinstance(store, SecretsManagerStore)
        store.client.create_secret(Name=location, SecretString="someone else's secret")


# -- shapes ------------------------------------------------------------------------------------


def test_is_exported_and_the_core_package_does_not_import_it() -> None:
    import subprocess
    import sys

    assert "InMemorySecretsManager" in unkey_secrets.testing.__all__
    code = (
        "import sys, unkey_secrets, unkey_secrets.testing; "
        "print('unkey_secrets.testing.secretsmanager' in sys.modules and 'botocore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "importing the test kit must not load botocore"


def test_arn_is_in_the_real_format_and_any_id_finds_the_secret(sm: InMemorySecretsManager) -> None:
    answer = sm.create_secret(Name="team/app", SecretString="v1", ClientRequestToken=token())
    match = ARN.fullmatch(answer["ARN"])
    assert match is not None
    assert match["name"] == "team/app"
    partial = answer["ARN"][: -len("-xxxxxx")]
    for secret_id in ("team/app", answer["ARN"], partial):
        assert sm.describe_secret(SecretId=secret_id)["ARN"] == answer["ARN"]
    other = InMemorySecretsManager()
    other.create_secret(Name="team/app", SecretString="v1")
    assert other.describe_secret(SecretId="team/app")["ARN"] != answer["ARN"], "random suffix"


def test_describe_secret_shapes(sm: InMemorySecretsManager) -> None:
    first = token()
    sm.create_secret(
        Name="shapes",
        SecretString="v1",
        ClientRequestToken=first,
        Description="d",
        Tags=[{"Key": "managed-by", "Value": "unkey-secrets"}],
    )
    answer = sm.describe_secret(SecretId="shapes")
    assert answer["Name"] == "shapes"
    assert answer["Description"] == "d"
    assert answer["Tags"] == [{"Key": "managed-by", "Value": "unkey-secrets"}]
    assert answer["VersionIdsToStages"] == {first: ["AWSCURRENT"]}
    assert isinstance(answer["CreatedDate"], dt.datetime)
    assert answer["CreatedDate"].tzinfo
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "RotationEnabled" not in answer, "as AWS and moto: only once rotation was configured"
    assert "DeletedDate" not in answer
    assert "SecretString" not in answer


def test_create_without_value_has_no_version(sm: InMemorySecretsManager) -> None:
    answer = sm.create_secret(Name="empty")
    assert "VersionId" not in answer
    assert "VersionIdsToStages" not in sm.describe_secret(SecretId="empty")
    with pytest.raises(ClientError) as raised:
        sm.get_secret_value(SecretId="empty")
    assert code_of(raised) == "ResourceNotFoundException"


# -- idempotency -------------------------------------------------------------------------------


def test_put_with_the_same_token_and_value_is_a_no_op(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    t = token()
    first = sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert first["VersionId"] == t
    assert first["VersionStages"] == ["AWSCURRENT"]
    newer = token()
    sm.put_secret_value(SecretId=arn, ClientRequestToken=newer, SecretString="v3")
    again = sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert again["VersionStages"] == ["AWSPREVIOUS"], "answered as it is, no label moved"
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == newer


def test_put_with_the_same_token_and_another_value_is_refused(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    t = token()
    sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    with pytest.raises(sm.exceptions.ResourceExistsException) as raised:
        sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="other")
    assert isinstance(raised.value, ClientError)
    message = raised.value.response["Error"]["Message"]
    assert message.startswith(f"You can't use ClientRequestToken {t} because")
    assert "other" not in str(raised.value)
    assert sm.get_secret_value(SecretId=arn, VersionId=t)["SecretString"] == "v2"


def test_a_filled_pending_version_is_not_overwritten(sm: InMemorySecretsManager) -> None:
    """moto overwrites it; AWS refuses."""
    arn = new_secret(sm)
    t = sm.start_rotation(arn)
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=t, SecretString="first", VersionStages=["AWSPENDING"]
    )
    with pytest.raises(ClientError) as raised:
        sm.put_secret_value(
            SecretId=arn, ClientRequestToken=t, SecretString="second", VersionStages=["AWSPENDING"]
        )
    assert code_of(raised) == "ResourceExistsException"
    assert sm.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["SecretString"] == "first"
    same = sm.put_secret_value(
        SecretId=arn, ClientRequestToken=t, SecretString="first", VersionStages=["AWSPENDING"]
    )
    assert same["VersionStages"] == ["AWSPENDING"]


def test_create_repeated_with_its_token_is_a_no_op_else_refused(
    sm: InMemorySecretsManager,
) -> None:
    t = token()
    first = sm.create_secret(Name="again", SecretString="v", ClientRequestToken=t)
    assert (
        sm.create_secret(Name="again", SecretString="v", ClientRequestToken=t)["ARN"]
        == (first["ARN"])
    )
    for options in ({"SecretString": "other", "ClientRequestToken": t}, {"SecretString": "v"}):
        with pytest.raises(ClientError) as raised:
            sm.create_secret(Name="again", **options)
        assert code_of(raised) == "ResourceExistsException"


# -- reads follow AWSCURRENT -------------------------------------------------------------------


def test_get_without_selector_reads_awscurrent_after_a_stage_move(
    sm: InMemorySecretsManager,
) -> None:
    """moto reads the version last written as current; AWS follows the label."""
    arn = new_secret(sm, "old")
    old = sm.get_secret_value(SecretId=arn)["VersionId"]
    new = token()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=new, SecretString="new", VersionStages=["AWSPENDING"]
    )
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "old"
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=new, RemoveFromVersionId=old
    )
    answer = sm.get_secret_value(SecretId=arn)
    assert (answer["VersionId"], answer["SecretString"]) == (new, "new")
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=old, RemoveFromVersionId=new
    )
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "old"


def test_get_by_stage_and_version_must_agree(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    current = sm.get_secret_value(SecretId=arn)["VersionId"]
    with pytest.raises(ClientError) as raised:
        sm.get_secret_value(SecretId=arn, VersionId=current, VersionStage="AWSPREVIOUS")
    assert code_of(raised) == "InvalidRequestException"
    for selector in ({"VersionId": token()}, {"VersionStage": "AWSPENDING"}):
        with pytest.raises(ClientError) as raised:
            sm.get_secret_value(SecretId=arn, **selector)
        assert code_of(raised) == "ResourceNotFoundException"
        assert "can't find the specified secret value for" in str(raised.value)


# -- labels ------------------------------------------------------------------------------------


def test_moving_awscurrent_moves_awsprevious(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    v1 = sm.get_secret_value(SecretId=arn)["VersionId"]
    v2, v3 = token(), token()
    sm.put_secret_value(SecretId=arn, ClientRequestToken=v2, SecretString="2")
    sm.put_secret_value(SecretId=arn, ClientRequestToken=v3, SecretString="3", VersionStages=["X"])
    assert sm.versions(arn) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"], v3: ["X"]}
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v3, RemoveFromVersionId=v2
    )
    assert sm.versions(arn) == {v1: [], v2: ["AWSPREVIOUS"], v3: ["X", "AWSCURRENT"]}
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    assert stages == {v2: ["AWSPREVIOUS"], v3: ["X", "AWSCURRENT"]}, "labelled versions only"


@pytest.mark.parametrize("label", ["AWSCURRENT", "CUSTOM"])
def test_moving_a_label_held_elsewhere_needs_remove_from(
    sm: InMemorySecretsManager, label: str
) -> None:
    arn = new_secret(sm)
    v1 = sm.get_secret_value(SecretId=arn)["VersionId"]
    if label != "AWSCURRENT":
        sm.update_secret_version_stage(SecretId=arn, VersionStage=label, MoveToVersionId=v1)
    v2 = token()
    sm.put_secret_value(SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["Y"])
    before = sm.versions(arn)
    with pytest.raises(sm.exceptions.InvalidParameterException) as raised:
        sm.update_secret_version_stage(SecretId=arn, VersionStage=label, MoveToVersionId=v2)
    assert f"attached to version {v1}" in str(raised.value)
    with pytest.raises(ClientError) as raised:
        sm.update_secret_version_stage(
            SecretId=arn, VersionStage=label, MoveToVersionId=v2, RemoveFromVersionId=v2
        )
    assert code_of(raised) == "InvalidParameterException"
    assert sm.versions(arn) == before, "a refused move changes nothing"


def test_awscurrent_moves_onto_a_secret_without_one(sm: InMemorySecretsManager) -> None:
    arn = sm.create_secret(Name="bootstrap")["ARN"]
    t = sm.start_rotation(arn)
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=t, SecretString="first", VersionStages=["AWSPENDING"]
    )
    assert sm.versions(arn) == {t: ["AWSPENDING"]}
    sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=t)
    sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=t)
    assert sm.versions(arn) == {t: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "first"


def test_unknown_versions_are_invalid_parameters(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    for options in ({"MoveToVersionId": token()}, {"RemoveFromVersionId": token()}):
        with pytest.raises(ClientError) as raised:
            sm.update_secret_version_stage(SecretId=arn, VersionStage="X", **options)
        assert code_of(raised) == "InvalidParameterException"


# -- rotation start ----------------------------------------------------------------------------


def test_start_rotation_enables_it_and_adds_an_empty_pending_version(
    sm: InMemorySecretsManager,
) -> None:
    arn = new_secret(sm)
    first = sm.start_rotation(arn)
    answer = sm.describe_secret(SecretId=arn)
    assert answer["RotationEnabled"] is True
    assert answer["VersionIdsToStages"][first] == ["AWSPENDING"]
    with pytest.raises(ClientError) as raised:
        sm.get_secret_value(SecretId=arn, VersionId=first)
    assert code_of(raised) == "ResourceNotFoundException", "no value until createSecret"
    second = sm.start_rotation(arn, "b" * 32)
    assert second == "b" * 32
    assert sm.versions(arn)[first] == [], "an abandoned rotation's version loses AWSPENDING"
    assert "RotateSecret" not in sm.calls


def test_rotate_secret_as_the_api(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    with pytest.raises(ClientError) as raised:
        sm.rotate_secret(SecretId=arn)
    assert code_of(raised) == "InvalidRequestException", "no Lambda ARN"
    lam = "arn:aws:lambda:us-east-1:123456789012:function:rotate"
    answer = sm.rotate_secret(
        SecretId=arn, RotationLambdaARN=lam, RotationRules={"AutomaticallyAfterDays": 7}
    )
    described = sm.describe_secret(SecretId=arn)
    assert described["VersionIdsToStages"][answer["VersionId"]] == ["AWSPENDING"]
    assert described["RotationLambdaARN"] == lam
    assert described["RotationRules"] == {"AutomaticallyAfterDays": 7}
    with pytest.raises(ClientError) as raised:
        sm.rotate_secret(SecretId=arn)
    assert code_of(raised) == "InvalidRequestException", "the previous rotation is not complete"
    sm.set_rotation_enabled(arn, False)
    assert sm.describe_secret(SecretId=arn)["RotationEnabled"] is False


# -- errors and limits -------------------------------------------------------------------------


def test_errors_have_the_real_codes_and_translate_as_real_ones(sm: InMemorySecretsManager) -> None:
    with pytest.raises(sm.exceptions.ResourceNotFoundException) as raised:
        sm.describe_secret(SecretId="missing")
    error = raised.value
    assert str(error) == (
        "An error occurred (ResourceNotFoundException) when calling the DescribeSecret "
        "operation: Secrets Manager can't find the specified secret."
    )
    assert error.operation_name == "DescribeSecret"
    assert isinstance(translate(error, operation="x", location="y"), SecretNotFoundError)
    arn = new_secret(sm)
    t = token()
    sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="a")
    with pytest.raises(ClientError) as raised:
        sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="b")
    assert isinstance(translate(raised.value, operation="x", location="y"), ResourceExistsError)


def test_a_secret_marked_deleted(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    assert "DeletedDate" in sm.describe_secret(SecretId=arn)
    name = sm.describe_secret(SecretId=arn)["Name"]
    calls: list[Callable[[], object]] = [
        lambda: sm.get_secret_value(SecretId=arn),
        lambda: sm.put_secret_value(SecretId=arn, SecretString="x"),
        lambda: sm.create_secret(Name=name),
    ]
    for call in calls:
        with pytest.raises(ClientError) as raised:
            call()
        assert code_of(raised) == "InvalidRequestException"
        assert isinstance(translate(raised.value, operation="x", location="y"), StoreConflictError)
    sm.restore_secret(SecretId=arn)
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "v1"
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    with pytest.raises(sm.exceptions.ResourceNotFoundException):
        sm.describe_secret(SecretId=arn)


def test_value_size_limit_is_65536_bytes(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    sm.put_secret_value(SecretId=arn, SecretString="x" * 65_536)
    with pytest.raises(ClientError) as raised:
        sm.put_secret_value(SecretId=arn, SecretString="é" * 32_769)  # 65,538 bytes
    assert code_of(raised) == "ValidationException"
    assert "é" not in str(raised.value)
    with pytest.raises(ClientError):
        sm.create_secret(Name="big", SecretBinary=b"\0" * 65_537)


@pytest.mark.parametrize("name", ["has space", "a" * 513, "semi;colon"])
def test_name_rules(sm: InMemorySecretsManager, name: str) -> None:
    with pytest.raises(ClientError) as raised:
        sm.create_secret(Name=name, SecretString="v")
    assert code_of(raised) == "ValidationException"
    sm.create_secret(Name="ok/_+=.@-" + "a" * 503, SecretString="v")


def test_client_request_token_is_32_to_64_characters(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    with pytest.raises(ParamValidationError):  # botocore refuses it before sending
        sm.put_secret_value(SecretId=arn, ClientRequestToken="t" * 31, SecretString="v")
    with pytest.raises(ClientError) as raised:
        sm.put_secret_value(SecretId=arn, ClientRequestToken="t" * 65, SecretString="v")
    assert code_of(raised) == "InvalidParameterException"
    sm.put_secret_value(SecretId=arn, ClientRequestToken="t" * 64, SecretString="v")
    sm.put_secret_value(SecretId=arn, ClientRequestToken="u" * 32, SecretString="v")


def test_parameters_are_checked_as_botocore_does(sm: InMemorySecretsManager) -> None:
    with pytest.raises(ParamValidationError):
        sm.describe_secret()
    with pytest.raises(ParamValidationError):
        sm.describe_secret(SecretId="x", Unknown=1)
    with pytest.raises(TypeError):
        sm.describe_secret("x")  # type: ignore[call-arg]
    assert sm.calls == [], "a refused request is never sent"


# -- values never show -------------------------------------------------------------------------


def test_reprs_never_show_a_value(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm, PLAINTEXT)
    sm.create_secret(Name="binary", SecretBinary=PLAINTEXT.encode())
    answer = sm.get_secret_value(SecretId=arn)
    assert answer["SecretString"] == PLAINTEXT
    assert PLAINTEXT not in repr(answer)
    assert PLAINTEXT not in repr(sm)
    assert PLAINTEXT not in repr(vars(sm))
    with pytest.raises(ClientError) as raised:
        sm.put_secret_value(
            SecretId=arn,
            ClientRequestToken=answer["VersionId"],
            SecretString=PLAINTEXT + "x",
        )
    assert PLAINTEXT not in str(raised.value)
    assert PLAINTEXT not in repr(raised.value.response)


# -- failure injection -------------------------------------------------------------------------


def test_fail_next_before_the_write_lands_nothing(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    t = token()
    sm.fail_next("PutSecretValue", "ThrottlingException")
    with pytest.raises(ClientError) as raised:
        sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert code_of(raised) == "ThrottlingException"
    assert isinstance(translate(raised.value, operation="x", location="y"), StoreUnavailableError)
    assert t not in sm.versions(arn)
    sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == t


def test_fail_next_after_lands_the_write_and_loses_the_answer(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    t = token()
    lost = TimeoutError("answer lost")
    sm.fail_next("put_secret_value", lost, after=True)
    with pytest.raises(TimeoutError) as raised:
        sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert raised.value is lost
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == t, "the write landed"
    again = sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert again["VersionStages"] == ["AWSCURRENT"], "the retry is a no-op"


def test_fail_next_queues_and_records_calls(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    sm.calls.clear()
    sm.fail_next("DescribeSecret", "InternalServiceError", times=2)
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            sm.describe_secret(SecretId=arn)
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    sm.describe_secret(SecretId=arn)
    assert sm.calls == ["DescribeSecret"] * 3
    with pytest.raises(ValueError, match="unknown operation"):
        sm.fail_next("ListSecrets", "X")
    with pytest.raises(ValueError, match="at least 1"):
        sm.fail_next("DescribeSecret", "X", times=0)


def test_the_store_settles_a_lost_create(sm: InMemorySecretsManager) -> None:
    store = SecretsManagerStore(sm)
    key = canary_key()
    sm.fail_next("CreateSecret", "ServiceUnavailable", after=True)
    with pytest.raises(StoreUnavailableError):
        store.put(key)
    location = store.put(key)
    assert location.created is False, "the retry found its own write"
    assert store.get(api_id=key.api_id, key_id=key.key_id).key_id == key.key_id


# -- threads -----------------------------------------------------------------------------------


def test_concurrent_writers_of_one_token_one_wins(sm: InMemorySecretsManager) -> None:
    arn = new_secret(sm)
    t = token()
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def write(i: int) -> None:
        barrier.wait()
        try:
            sm.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString=f"w{i}")
            outcomes.append("ok")
        except ClientError as exc:
            outcomes.append(str(exc.response["Error"]["Code"]))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["ResourceExistsException"] * 7 + ["ok"]
    assert len(sm.versions(arn)) == 2
