"""One set of Secrets Manager scenarios, run against InMemorySecretsManager and a real moto server.

Backends:

* ``double``: :class:`~unkey_secrets.testing.InMemorySecretsManager`; every scenario must pass.
* ``moto``: the kit's moto server (the ``moto_server`` fixture), whose Secrets Manager answers
  as AWS does; every scenario must pass.
* ``moto-raw``: moto's own server as shipped, for the scenarios the kit corrects: strict
  xfails that prove each correction is still needed, so a moto that starts agreeing with AWS
  fails this file and the list gets updated.

A scenario takes a :class:`Side` and asserts AWS's behaviour.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.testing import InMemorySecretsManager
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.moto import MotoServer

from ._rotation_harness import SecretsManagerSim

ARN = re.compile(
    r"arn:aws:secretsmanager:us-east-1:123456789012:secret:(?P<name>.+)-[A-Za-z0-9]{6}"
)


@dataclass
class Side:
    """A client, and what RotateSecret does before invoking the Lambda, for one backend."""

    client: Any
    start_rotation: Callable[[str, str], str]

    def secret(self, value: str | None = "v1") -> str:
        options: dict[str, Any] = {"Name": f"contract/{uuid.uuid4().hex}"}
        if value is not None:
            options["SecretString"] = value
        return str(self.client.create_secret(**options)["ARN"])

    def labelled(self, arn: str) -> dict[str, list[str]]:
        answer = self.client.describe_secret(SecretId=arn).get("VersionIdsToStages") or {}
        return {v: sorted(s) for v, s in answer.items() if s}

    def current(self, arn: str) -> str:
        return str(
            self.client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["VersionId"]
        )

    def refused(self, code: str, call: Callable[[], object]) -> ClientError:
        with pytest.raises(ClientError) as raised:
            call()
        assert raised.value.response["Error"]["Code"] == code
        return raised.value


def token() -> str:
    return str(uuid.uuid4())


# -- scenarios ---------------------------------------------------------------------------------


def describe_shapes(side: Side) -> None:
    name = f"contract/{uuid.uuid4().hex}"
    first = token()
    created = side.client.create_secret(
        Name=name,
        SecretString="v",
        ClientRequestToken=first,
        Tags=[{"Key": "managed-by", "Value": "unkey-secrets"}],
    )
    assert created["VersionId"] == first
    assert created["Name"] == name
    match = ARN.fullmatch(created["ARN"])
    assert match is not None
    assert match["name"] == name
    for secret_id in (name, created["ARN"]):
        answer = side.client.describe_secret(SecretId=secret_id)
        assert answer["ARN"] == created["ARN"]
        assert answer["Tags"] == [{"Key": "managed-by", "Value": "unkey-secrets"}]
        assert answer["VersionIdsToStages"] == {first: ["AWSCURRENT"]}
        assert not answer.get("RotationEnabled")
        assert answer.get("DeletedDate") is None
        assert "SecretString" not in answer


def not_found(side: Side) -> None:
    missing = f"contract/missing-{uuid.uuid4().hex}"
    error = side.refused(
        "ResourceNotFoundException", lambda: side.client.describe_secret(SecretId=missing)
    )
    assert "can't find the specified secret" in str(error)
    side.refused(
        "ResourceNotFoundException",
        lambda: side.client.put_secret_value(SecretId=missing, SecretString="v"),
    )
    arn = side.secret()
    side.refused(
        "ResourceNotFoundException",
        lambda: side.client.get_secret_value(SecretId=arn, VersionStage="AWSPENDING"),
    )


def idempotent_put(side: Side) -> None:
    arn = side.secret()
    t = token()
    first = side.client.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert (first["VersionId"], first["VersionStages"]) == (t, ["AWSCURRENT"])
    again = side.client.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="v2")
    assert (again["VersionId"], again["VersionStages"]) == (t, ["AWSCURRENT"])
    assert len(side.labelled(arn)) == 2
    side.refused(
        "ResourceExistsException",
        lambda: side.client.put_secret_value(SecretId=arn, ClientRequestToken=t, SecretString="x"),
    )
    assert side.client.get_secret_value(SecretId=arn, VersionId=t)["SecretString"] == "v2"


def create_conflicts(side: Side) -> None:
    name = f"contract/{uuid.uuid4().hex}"
    t = token()
    first = side.client.create_secret(Name=name, SecretString="v", ClientRequestToken=t)
    again = side.client.create_secret(Name=name, SecretString="v", ClientRequestToken=t)
    assert again["ARN"] == first["ARN"]
    side.refused(
        "ResourceExistsException",
        lambda: side.client.create_secret(Name=name, SecretString="other", ClientRequestToken=t),
    )
    side.refused(
        "ResourceExistsException", lambda: side.client.create_secret(Name=name, SecretString="v")
    )


def awscurrent_moves_awsprevious(side: Side) -> None:
    arn = side.secret()
    v1 = side.current(arn)
    v2 = token()
    side.client.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["AWSPENDING"]
    )
    assert side.labelled(arn) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}
    side.client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1
    )
    assert side.labelled(arn) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT", "AWSPENDING"]}
    side.client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSPENDING", RemoveFromVersionId=v2
    )
    assert side.labelled(arn) == {v1: ["AWSPREVIOUS"], v2: ["AWSCURRENT"]}


def awscurrent_needs_remove_from(side: Side) -> None:
    arn = side.secret()
    v1 = side.current(arn)
    v2 = token()
    side.client.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["AWSPENDING"]
    )
    side.refused(
        "InvalidParameterException",
        lambda: side.client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2
        ),
    )
    side.refused(
        "InvalidParameterException",
        lambda: side.client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v2
        ),
    )
    assert side.labelled(arn) == {v1: ["AWSCURRENT"], v2: ["AWSPENDING"]}


def store_round_trip(side: Side) -> None:
    store = SecretsManagerStore(side.client)
    key, newer = canary_key(), canary_key()
    newer = type(newer)(**{**vars(newer), "api_id": key.api_id})
    store.put(key)
    assert store.put(key).created is False
    store.set_current(key, alias="svc")
    store.put(newer)
    state = store.alias_state(api_id=key.api_id, alias="svc")
    store.set_current(newer, alias="svc", expected=state)
    assert store.get_current(api_id=key.api_id, alias="svc").key_id == newer.key_id


def batch_reads(side: Side) -> None:
    first = side.secret("one")
    second = side.secret("two")
    match = ARN.fullmatch(first)
    assert match is not None
    first_name = match["name"]
    deleted = side.secret("gone")
    side.client.delete_secret(SecretId=deleted, RecoveryWindowInDays=7)
    missing = f"contract/missing-{uuid.uuid4().hex}"
    answer = side.client.batch_get_secret_value(SecretIdList=[first_name, missing, second, deleted])
    values = {v["ARN"]: v for v in answer["SecretValues"]}
    assert set(values) == {first, second}
    assert values[first]["Name"] == first_name
    assert values[first]["SecretString"] == "one"
    assert values[second]["SecretString"] == "two"
    assert values[first]["VersionId"] == side.current(first)
    assert values[first]["VersionStages"] == ["AWSCURRENT"]
    errors = {e["SecretId"]: e["ErrorCode"] for e in answer["Errors"]}
    assert errors == {missing: "ResourceNotFoundException", deleted: "InvalidRequestException"}
    assert not answer.get("NextToken")


def batch_reads_the_current_version_now(side: Side) -> None:
    arn = side.secret("old")
    v1 = side.current(arn)
    v2 = token()
    side.client.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="new", VersionStages=["AWSPENDING"]
    )
    side.client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1
    )
    (entry,) = side.client.batch_get_secret_value(SecretIdList=[arn])["SecretValues"]
    assert (entry["VersionId"], entry["SecretString"]) == (v2, "new")


# Where moto as shipped differs from AWS and the kit corrects it.


def batch_answers_a_secret_without_a_value_in_errors(side: Side) -> None:
    empty = side.secret(None)
    full = side.secret("v")
    answer = side.client.batch_get_secret_value(SecretIdList=[empty, full])
    assert [v["ARN"] for v in answer["SecretValues"]] == [full]
    assert [(e["SecretId"], e["ErrorCode"]) for e in answer["Errors"]] == [
        (empty, "ResourceNotFoundException")
    ]


def batch_takes_at_most_20_ids(side: Side) -> None:
    names = [f"contract/missing-{uuid.uuid4().hex}" for _ in range(21)]
    assert len(side.client.batch_get_secret_value(SecretIdList=names[:20])["Errors"]) == 20
    side.refused(
        "ValidationException", lambda: side.client.batch_get_secret_value(SecretIdList=names)
    )


def filled_pending_is_not_overwritten(side: Side) -> None:
    arn = side.secret()
    t = side.start_rotation(arn, token())
    side.client.put_secret_value(
        SecretId=arn, ClientRequestToken=t, SecretString="first", VersionStages=["AWSPENDING"]
    )
    side.refused(
        "ResourceExistsException",
        lambda: side.client.put_secret_value(
            SecretId=arn, ClientRequestToken=t, SecretString="second", VersionStages=["AWSPENDING"]
        ),
    )
    answer = side.client.get_secret_value(SecretId=arn, VersionStage="AWSPENDING")
    assert answer["SecretString"] == "first"


def get_follows_awscurrent(side: Side) -> None:
    arn = side.secret("old")
    v1 = side.current(arn)
    v2 = token()
    side.client.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="new", VersionStages=["AWSPENDING"]
    )
    side.client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v2, RemoveFromVersionId=v1
    )
    answer = side.client.get_secret_value(SecretId=arn)
    assert (answer["VersionId"], answer["SecretString"]) == (v2, "new")


def awscurrent_onto_a_secret_without_one(side: Side) -> None:
    arn = side.secret(None)
    t = side.start_rotation(arn, token())
    side.client.put_secret_value(
        SecretId=arn, ClientRequestToken=t, SecretString="first", VersionStages=["AWSPENDING"]
    )
    side.client.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=t
    )
    assert side.labelled(arn) == {t: ["AWSCURRENT", "AWSPENDING"]}
    assert side.client.get_secret_value(SecretId=arn)["SecretString"] == "first"


def any_label_held_elsewhere_needs_remove_from(side: Side) -> None:
    arn = side.secret()
    v1 = side.current(arn)
    side.client.update_secret_version_stage(SecretId=arn, VersionStage="BLUE", MoveToVersionId=v1)
    v2 = token()
    side.client.put_secret_value(
        SecretId=arn, ClientRequestToken=v2, SecretString="2", VersionStages=["GREEN"]
    )
    side.refused(
        "InvalidParameterException",
        lambda: side.client.update_secret_version_stage(
            SecretId=arn, VersionStage="BLUE", MoveToVersionId=v2
        ),
    )


def a_move_to_an_unknown_version_changes_nothing(side: Side) -> None:
    arn = side.secret()
    v1 = side.current(arn)
    side.refused(
        "InvalidParameterException",
        lambda: side.client.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token(), RemoveFromVersionId=v1
        ),
    )
    assert side.labelled(arn) == {v1: ["AWSCURRENT"]}, "moto takes the label off first"


def describe_lists_labelled_versions_only(side: Side) -> None:
    arn = side.secret()
    v1 = side.current(arn)
    for _ in range(2):
        side.client.put_secret_value(SecretId=arn, ClientRequestToken=token(), SecretString="n")
    stages = side.client.describe_secret(SecretId=arn)["VersionIdsToStages"]
    assert v1 not in stages, "a version without label is deprecated and not listed"


def value_over_65536_bytes_is_refused(side: Side) -> None:
    arn = side.secret()
    side.client.put_secret_value(SecretId=arn, SecretString="x" * 65_536)
    side.refused(
        "ValidationException",
        lambda: side.client.put_secret_value(SecretId=arn, SecretString="x" * 65_537),
    )


COMMON = [
    describe_shapes,
    not_found,
    idempotent_put,
    create_conflicts,
    awscurrent_moves_awsprevious,
    awscurrent_needs_remove_from,
    store_round_trip,
    batch_reads,
    batch_reads_the_current_version_now,
]
KIT_CORRECTS = [
    batch_answers_a_secret_without_a_value_in_errors,
    batch_takes_at_most_20_ids,
    filled_pending_is_not_overwritten,
    get_follows_awscurrent,
    awscurrent_onto_a_secret_without_one,
    any_label_held_elsewhere_needs_remove_from,
    a_move_to_an_unknown_version_changes_nothing,
    describe_lists_labelled_versions_only,
    value_over_65536_bytes_is_refused,
]


SCENARIOS = COMMON + KIT_CORRECTS
CASES = (
    [pytest.param(s, "double", id=f"double-{s.__name__}") for s in SCENARIOS]
    + [pytest.param(s, "moto", id=f"moto-{s.__name__}") for s in SCENARIOS]
    + [
        pytest.param(
            s,
            "moto-raw",
            id=f"moto-raw-{s.__name__}",
            marks=pytest.mark.xfail(
                strict=True, reason="moto as shipped differs from AWS here (the kit corrects it)"
            ),
        )
        for s in KIT_CORRECTS
    ]
)


@pytest.fixture(scope="module")
def moto_as_shipped(moto_server: MotoServer) -> Iterator[str]:
    """moto's own threaded server, without the kit's corrections; returns its URL.

    It serves the same in-process state as ``moto_server``, so ``SecretsManagerSim`` works on it.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def make_side(moto_server: MotoServer, request: pytest.FixtureRequest) -> Callable[[str], Side]:
    def make(backend: str) -> Side:
        if backend == "double":
            double = InMemorySecretsManager()
            return Side(double, double.start_rotation)
        client = moto_server.client("secretsmanager")
        if backend == "moto-raw":
            url = request.getfixturevalue("moto_as_shipped")
            client = moto_server.client("secretsmanager", endpoint_url=url)

        def start(arn: str, t: str) -> str:
            return SecretsManagerSim(moto_server, client, arn).start(t)

        return Side(client, start)

    return make


@pytest.mark.parametrize(("scenario", "backend"), CASES)
def test_scenario(
    scenario: Callable[[Side], None], backend: str, make_side: Callable[[str], Side]
) -> None:
    scenario(make_side(backend))
