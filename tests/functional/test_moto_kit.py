"""The shipped moto server answers as AWS Secrets Manager does, call by call.

Each test drives the session's ``moto_server`` (the kit users get from the pytest plugin) through
the calls the store, the rotation Lambda and the readers make, and asserts what the AWS API
reference documents; the sentence it relies on is quoted above each test. moto as shipped
answers otherwise in every one of them (tests/functional/test_secretsmanager_double_contract.py
runs the same scenarios against it, as strict xfails).
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from unkey_secrets.aws_lambda import RuntimeConfig, build_rotator
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer

from ._rotation_harness import SecretsManagerSim

pytestmark = pytest.mark.functional


@pytest.fixture
def sm(moto_server: MotoServer) -> Any:
    return moto_server.client("secretsmanager")


def _name() -> str:
    return f"kit/{uuid.uuid4().hex}"


def _token() -> str:
    return str(uuid.uuid4())


def _refused(code: str, call: Any, **params: Any) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call(**params)
    assert raised.value.response["Error"]["Code"] == code
    return raised.value


def _labels(sm: Any, arn: str, *, deprecated: bool = False) -> dict[str, list[str]]:
    """Every version's labels, read back through ListSecretVersionIds."""
    answer = sm.list_secret_version_ids(SecretId=arn, IncludeDeprecated=deprecated)
    return {v["VersionId"]: sorted(v["VersionStages"]) for v in answer["Versions"]}


def _secret(sm: Any, value: str = "v1") -> tuple[str, str]:
    """A new secret with one version; returns (ARN, VersionId)."""
    token = _token()
    answer = sm.create_secret(Name=_name(), SecretString=value, ClientRequestToken=token)
    return str(answer["ARN"]), token


# -- GetSecretValue ------------------------------------------------------------------------------


# GetSecretValue, VersionId: "If you don't specify either a VersionStage or VersionId, then
# Secrets Manager returns the AWSCURRENT version."
def test_get_without_a_selector_reads_the_version_awscurrent_was_moved_to(sm: Any) -> None:
    arn, v1 = _secret(sm, "old")
    v2 = _token()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="new", VersionStages=["AWSPENDING"]
    )
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1
    )
    answer = sm.get_secret_value(SecretId=arn)
    assert (answer["VersionId"], answer["SecretString"]) == (v2, "new")
    assert "AWSCURRENT" in answer["VersionStages"]


def test_the_lambda_reads_the_root_key_awscurrent_was_moved_to(
    moto_server: MotoServer, unkey_emulator_server: EmulatorServer
) -> None:
    """The Lambda reads its root key's secret without a stage: it gets the key moved in."""
    sm = moto_server.client("secretsmanager")
    arn, v1 = _secret(sm, json.dumps({"root_key": "unkey_revoked_root_key"}))
    v2 = _token()
    sm.put_secret_value(
        SecretId=arn,
        ClientRequestToken=v2,
        SecretString=json.dumps({"root_key": unkey_emulator_server.root_key}),
        VersionStages=["AWSPENDING"],
    )
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1
    )
    config = RuntimeConfig.from_environ(
        {"UNKEY_ROOT_KEY_SECRET_ID": arn, "UNKEY_BASE_URL": unkey_emulator_server.url}
    )
    rotator = build_rotator(config, secrets_manager=sm)
    with rotator.unkey as unkey:
        api_id = unkey_emulator_server.emulator.create_api("kit")
        assert unkey.create_key(api_id).key_id


# GetSecretValue, VersionId: "If you include both this parameter and VersionStage, the two
# parameters must refer to the same secret version." Common Errors: InvalidRequestException,
# "HTTP Status Code: 400".
def test_a_stage_not_on_the_version_named_is_a_400(sm: Any) -> None:
    arn, v1 = _secret(sm)
    error = _refused(
        "InvalidRequestException",
        sm.get_secret_value,
        SecretId=arn,
        VersionId=v1,
        VersionStage="AWSPENDING",
    )
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- PutSecretValue ------------------------------------------------------------------------------


# PutSecretValue, ClientRequestToken: "If a version with this value already exists and the
# version of the SecretString and SecretBinary values are different from those in the request,
# then the request fails because you can't modify a secret version."
def test_a_filled_pending_version_is_never_overwritten(moto_server: MotoServer, sm: Any) -> None:
    arn, _ = _secret(sm)
    token = SecretsManagerSim(moto_server, sm, arn).start()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString="first", VersionStages=["AWSPENDING"]
    )
    _refused(
        "ResourceExistsException",
        sm.put_secret_value,
        SecretId=arn,
        ClientRequestToken=token,
        SecretString="second",
        VersionStages=["AWSPENDING"],
    )
    assert sm.get_secret_value(SecretId=arn, VersionId=token)["SecretString"] == "first"


# The valueless version RotateSecret made takes its value while it is AWSPENDING ("During
# rotation, Secrets Manager creates an AWSPENDING version ID before creating the new secret
# version"); once a later rotation took AWSPENDING away, its token is one "already associated
# with a version" whose value differs, and the put is refused: a stale rotation cannot take
# AWSPENDING back from the one in progress.
def test_an_abandoned_rotation_version_takes_no_value(moto_server: MotoServer, sm: Any) -> None:
    arn, v1 = _secret(sm)
    sim = SecretsManagerSim(moto_server, sm, arn)
    first = sim.start()
    second = sim.start()
    _refused(
        "ResourceExistsException",
        sm.put_secret_value,
        SecretId=arn,
        ClientRequestToken=first,
        SecretString="late",
        VersionStages=["AWSPENDING"],
    )
    assert sim.stages() == {v1: ["AWSCURRENT"], second: ["AWSPENDING"]}
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=second, SecretString="2", VersionStages=["AWSPENDING"]
    )
    assert sm.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")["VersionId"] == second


# PutSecretValue, ClientRequestToken: "If a version with this value already exists and that
# version's SecretString or SecretBinary values are the same as those in the request then the
# request is ignored. The operation is idempotent."
def test_a_repeated_put_moves_no_label(sm: Any) -> None:
    arn, v1 = _secret(sm)
    v2 = _token()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["AWSPENDING"]
    )
    again = sm.put_secret_value(SecretId=arn, ClientRequestToken=v2, SecretString="2")
    assert (again["VersionId"], again["VersionStages"]) == (v2, ["AWSPENDING"])
    assert _labels(sm, arn) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}


# PutSecretValue, VersionStages: "If you specify AWSCURRENT, and it is already attached to another
# version, then Secrets Manager also moves the staging label AWSPREVIOUS to the version that
# AWSCURRENT was removed from." Only those two labels move: the version it left keeps its others.
def test_a_put_as_awscurrent_moves_only_awscurrent_and_awsprevious(sm: Any) -> None:
    arn, v1 = _secret(sm)
    sm.update_secret_version_stage(SecretId=arn, VersionStage="BLUE", MoveToVersionId=v1)
    v2 = _token()
    sm.put_secret_value(SecretId=arn, ClientRequestToken=v2, SecretString="2")
    assert _labels(sm, arn) == {v1: ["AWSPREVIOUS", "BLUE"], v2: ["AWSCURRENT"]}


# The same, after AWSCURRENT was moved by UpdateSecretVersionStage: AWSPREVIOUS goes to the version
# holding AWSCURRENT now, and AWSCURRENT is on one version only ("Each staging label can be
# attached to only one version at a time", UpdateSecretVersionStage).
def test_a_put_as_awscurrent_after_a_move_leaves_one_awscurrent(sm: Any) -> None:
    arn, v1 = _secret(sm)
    v2, v3 = _token(), _token()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["MOVING"]
    )
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1
    )
    sm.put_secret_value(SecretId=arn, ClientRequestToken=v3, SecretString="3")
    assert _labels(sm, arn) == {v2: ["AWSPREVIOUS", "MOVING"], v3: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == v3


# SecretString: "Length Constraints: Maximum length of 65536." (PutSecretValue, CreateSecret.)
def test_a_value_over_65536_bytes_is_refused(sm: Any) -> None:
    arn, _ = _secret(sm)
    sm.put_secret_value(SecretId=arn, SecretString="x" * 65_536)
    _refused("ValidationException", sm.put_secret_value, SecretId=arn, SecretString="é" * 32_769)
    _refused("ValidationException", sm.create_secret, Name=_name(), SecretString="x" * 65_537)


# PutSecretValue, SecretBinary: "You must include SecretBinary or SecretString, but not both."
# CreateSecret: "Either SecretString or SecretBinary must have a value, but not both." AWS
# answers InvalidParameterException: "You can't specify both a binary secret value and a string
# secret value in the same secret."
def test_a_string_and_a_binary_value_at_once_are_refused(sm: Any) -> None:
    name = _name()
    _refused(
        "InvalidParameterException",
        sm.create_secret,
        Name=name,
        SecretString="s",
        SecretBinary=b"b",
    )
    _refused("ResourceNotFoundException", sm.describe_secret, SecretId=name)
    arn, v1 = _secret(sm)
    _refused(
        "InvalidParameterException",
        sm.put_secret_value,
        SecretId=arn,
        SecretString="s2",
        SecretBinary=b"b2",
        ClientRequestToken=_token(),
    )
    assert _labels(sm, arn) == {v1: ["AWSCURRENT"]}, "nothing was stored"
    value = sm.get_secret_value(SecretId=arn)
    assert (value["SecretString"], "SecretBinary" in value) == ("v1", False)


# SecretBinary: "Type: Base64-encoded binary data object". A member that is not (only a raw
# HTTP client can send one) is refused as malformed: 400, never a server error.
def test_a_binary_value_that_is_not_base64_is_a_400(moto_server: MotoServer, sm: Any) -> None:
    arn, v1 = _secret(sm)
    for operation, params in (
        ("PutSecretValue", {"SecretId": arn, "ClientRequestToken": _token()}),
        ("CreateSecret", {"Name": _name(), "ClientRequestToken": _token()}),
    ):
        answer = httpx.post(
            moto_server.url,
            content=json.dumps({**params, "SecretBinary": "!!not base64!!"}),
            headers={
                "X-Amz-Target": f"secretsmanager.{operation}",
                "Content-Type": "application/x-amz-json-1.1",
                "Authorization": (
                    "AWS4-HMAC-SHA256 Credential=testing/20240101/us-east-1/secretsmanager/"
                    "aws4_request, SignedHeaders=host, Signature=0"
                ),
            },
            timeout=30,
        )
        assert answer.status_code == 400, (operation, answer.status_code, answer.text[:200])
        assert answer.json()["__type"] == "SerializationException", operation
    assert _labels(sm, arn) == {v1: ["AWSCURRENT"]}, "nothing was stored"


# InvalidRequestException: "A parameter value is not valid for the current state of the
# resource. Possible causes: The secret is scheduled for deletion."
def test_a_secret_scheduled_for_deletion_takes_no_write(sm: Any) -> None:
    arn, v1 = _secret(sm)
    v2 = _token()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["AWSPENDING"]
    )
    name = sm.describe_secret(SecretId=arn)["Name"]
    sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    _refused("InvalidRequestException", sm.put_secret_value, SecretId=arn, SecretString="3")
    _refused(
        "InvalidRequestException",
        sm.update_secret_version_stage,
        SecretId=arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=v2,
        RemoveFromVersionId=v1,
    )
    _refused("InvalidRequestException", sm.create_secret, Name=name, SecretString="v")
    _refused("InvalidRequestException", sm.get_secret_value, SecretId=arn, VersionStage="NONE")
    sm.restore_secret(SecretId=arn)
    assert _labels(sm, arn) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}


# -- UpdateSecretVersionStage --------------------------------------------------------------------


# UpdateSecretVersionStage, MoveToVersionId: "If the staging label is already attached to a
# different version of the secret, then you must also specify the RemoveFromVersionId
# parameter." Not attached anywhere, nothing else is needed.
def test_awscurrent_moves_onto_a_secret_that_has_none(moto_server: MotoServer, sm: Any) -> None:
    arn = str(sm.create_secret(Name=_name())["ARN"])
    token = SecretsManagerSim(moto_server, sm, arn).start()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=token, SecretString="first", VersionStages=["AWSPENDING"]
    )
    sm.update_secret_version_stage(SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token)
    assert _labels(sm, arn) == {token: ["AWSCURRENT", "AWSPENDING"]}
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "first"


# UpdateSecretVersionStage, RemoveFromVersionId: "If the staging label you are trying to attach
# to one version is already attached to a different version, then you must include this
# parameter and specify the version that the label is to be removed from. If the label is
# attached and you either do not specify this parameter, or the version ID does not match, then
# the operation fails." Any label, not only AWSCURRENT.
def test_any_label_held_elsewhere_needs_remove_from(sm: Any) -> None:
    arn, v1 = _secret(sm)
    sm.update_secret_version_stage(SecretId=arn, VersionStage="BLUE", MoveToVersionId=v1)
    v2 = _token()
    sm.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["GREEN"]
    )
    _refused(
        "InvalidParameterException",
        sm.update_secret_version_stage,
        SecretId=arn,
        VersionStage="BLUE",
        MoveToVersionId=v2,
    )
    assert _labels(sm, arn) == {v1: ["AWSCURRENT", "BLUE"], v2: ["GREEN"]}
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="BLUE", MoveToVersionId=v2, RemoveFromVersionId=v1
    )
    assert _labels(sm, arn) == {v1: ["AWSCURRENT"], v2: ["BLUE", "GREEN"]}


# A refused call changes nothing: "Each staging label can be attached to only one version at a
# time" holds after a failed move too, with AWSCURRENT still where it was.
def test_a_move_to_an_unknown_version_changes_nothing(sm: Any) -> None:
    arn, v1 = _secret(sm)
    _refused(
        "InvalidParameterException",
        sm.update_secret_version_stage,
        SecretId=arn,
        VersionStage="AWSCURRENT",
        MoveToVersionId=_token(),
        RemoveFromVersionId=v1,
    )
    assert _labels(sm, arn) == {v1: ["AWSCURRENT"]}
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == v1


# -- DescribeSecret, ListSecretVersionIds --------------------------------------------------------


# DescribeSecret, VersionIdsToStages: "A list of the versions of the secret that have staging
# labels attached. Versions that don't have staging labels are considered deprecated and Secrets
# Manager can delete them."
def test_describe_lists_labelled_versions_only(sm: Any) -> None:
    arn, _ = _secret(sm)
    v2, v3 = _token(), _token()
    for token in (v2, v3):
        sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=token)
    assert sm.describe_secret(SecretId=arn)["VersionIdsToStages"] == {
        v2: ["AWSPREVIOUS"],
        v3: ["AWSCURRENT"],
    }


# ListSecretVersionIds, IncludeDeprecated: "By default, versions without staging labels aren't
# included." Its note: "ListSecretVersionIds only returns versions that contain a secret value."
# ARN: "The ARN of the secret."
def test_list_versions_leaves_out_deprecated_and_valueless_versions(
    moto_server: MotoServer, sm: Any
) -> None:
    arn, v1 = _secret(sm)
    v2, v3 = _token(), _token()
    for token in (v2, v3):
        sm.put_secret_value(SecretId=arn, ClientRequestToken=token, SecretString=token)
    pending = SecretsManagerSim(moto_server, sm, arn).start()
    answer = sm.list_secret_version_ids(SecretId=arn)
    assert answer["ARN"] == arn
    assert {v["VersionId"] for v in answer["Versions"]} == {v2, v3}
    assert set(_labels(sm, arn, deprecated=True)) == {v1, v2, v3}
    assert pending in sm.describe_secret(SecretId=arn)["VersionIdsToStages"]


# -- CreateSecret --------------------------------------------------------------------------------


# CreateSecret, ClientRequestToken: "If a version with this value already exists and the version
# SecretString and SecretBinary values are the same as those in the request, then the request is
# ignored." Ignored: it moves no label and answers with the version the token names.
def test_a_repeated_create_is_ignored(sm: Any) -> None:
    name, t1, t2 = _name(), _token(), _token()
    first = sm.create_secret(Name=name, SecretString="1", ClientRequestToken=t1)
    sm.put_secret_value(
        SecretId=name, ClientRequestToken=t2, SecretString="2", VersionStages=["AWSPENDING"]
    )
    for token, value in ((t2, "2"), (t1, "1")):
        again = sm.create_secret(Name=name, SecretString=value, ClientRequestToken=token)
        assert (again["ARN"], again["Name"], again["VersionId"]) == (first["ARN"], name, token)
    assert _labels(sm, first["ARN"]) == {t1: ["AWSCURRENT"], t2: ["AWSPENDING"]}
    _refused(
        "ResourceExistsException",
        sm.create_secret,
        Name=name,
        SecretString="other",
        ClientRequestToken=t2,
    )


# CreateSecret, Name: "The name of the new secret. The secret name can contain ASCII letters,
# numbers, and the following characters: /_+=.@-"
def test_a_name_outside_the_allowed_characters_is_refused(sm: Any) -> None:
    _refused("ValidationException", sm.create_secret, Name="kit/a b", SecretString="v")
    _refused("ValidationException", sm.create_secret, Name="kit/ä", SecretString="v")


# -- the store, through the whole kit ------------------------------------------------------------


def test_a_store_alias_moved_then_replaced_reads_the_new_key(sm: Any) -> None:
    """set_current by move, then by put: both what GetSecretValue and DescribeSecret say agree."""
    store = SecretsManagerStore(sm)
    first, second = canary_key(), canary_key()
    second = type(second)(**{**vars(second), "api_id": first.api_id})
    store.put(first)
    store.set_current(first, alias="svc")
    store.put(second)
    state = store.alias_state(api_id=first.api_id, alias="svc")
    moved = store.set_current(second, alias="svc", expected=state)
    location = store.alias_location(api_id=first.api_id, alias="svc")
    plain = json.loads(sm.get_secret_value(SecretId=location)["SecretString"])
    assert plain["key_id"] == second.key_id
    stages = sm.describe_secret(SecretId=location)["VersionIdsToStages"]
    assert [v for v, s in stages.items() if "AWSCURRENT" in s] == [moved.version]


# -- running it by hand --------------------------------------------------------------------------


def test_the_server_runs_on_its_own(dead_port: int) -> None:
    """``python -m unkey_secrets.testing.moto --port N`` serves the same corrected API."""
    process = subprocess.Popen(
        [sys.executable, "-m", "unkey_secrets.testing.moto", "--port", str(dead_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == f"moto server listening on http://127.0.0.1:{dead_port}"
        server = MotoServer()
        server.url = f"http://127.0.0.1:{dead_port}"
        test_get_without_a_selector_reads_the_version_awscurrent_was_moved_to(
            server.client("secretsmanager")
        )
        taken = subprocess.run(
            [sys.executable, "-m", "unkey_secrets.testing.moto", "--port", str(dead_port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert taken.returncode == 2
        assert taken.stderr.startswith(f"error: cannot listen on 127.0.0.1 port {dead_port}: ")
    finally:
        process.terminate()
        process.wait(timeout=30)
