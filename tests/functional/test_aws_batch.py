"""Secrets Manager batch reads against a real moto server: round trips, errors, IAM policies."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets import (
    KeyRef,
    SecretNotFoundError,
    StoreAccessError,
    StoredKey,
    StoredValueError,
    StoreError,
)
from unkey_secrets._models import IssuedKey
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.testing.contract import canary_key, random_id
from unkey_secrets.testing.moto import MotoServer

POLICIES = Path(__file__).resolve().parents[2] / "policies"


class Calls:
    """The Secrets Manager operations a client sends, by name, in order."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-call.secretsmanager", self._record)

    def _record(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)

    def take(self) -> list[str]:
        taken, self.names = self.names, []
        return taken


def aliased(store: SecretsManagerStore, count: int) -> tuple[str, list[IssuedKey]]:
    api = random_id("api")
    keys = [canary_key(api_id=api) for _ in range(count)]
    for n, key in enumerate(keys):
        store.put(key)
        store.set_current(key, alias=f"svc{n}")
    return api, keys


def refs_of(api: str, count: int) -> list[KeyRef]:
    return [KeyRef(api_id=api, alias=f"svc{n}") for n in range(count)]


def key_ids(results: list[StoredKey | StoreError]) -> list[str | None]:
    return [r.key_id if isinstance(r, StoredKey) else None for r in results]


def test_20_aliases_are_one_round_trip_and_45_are_three(moto_server: MotoServer) -> None:
    client = moto_server.client("secretsmanager")
    store = SecretsManagerStore(client)
    api, keys = aliased(store, 45)
    calls = Calls(client)
    results = store.get_many(refs_of(api, 20))
    assert calls.take() == ["BatchGetSecretValue"]
    assert key_ids(results) == [k.key_id for k in keys[:20]]
    results = store.get_many(refs_of(api, 45))
    assert calls.take() == ["BatchGetSecretValue"] * 3
    assert key_ids(results) == [k.key_id for k in keys]
    assert [r.secret for r in results if isinstance(r, StoredKey)] == [k.secret for k in keys]
    # One read per alias, for comparison: what a batch saves.
    for ref in refs_of(api, 20):
        assert ref.alias is not None
        store.get_current(api_id=api, alias=ref.alias)
    assert calls.take() == ["GetSecretValue"] * 20


def test_every_kind_of_failure_is_the_single_reads(moto_server: MotoServer) -> None:
    client = moto_server.client("secretsmanager")
    store = SecretsManagerStore(client)
    api, (key,) = aliased(store, 1)
    # A secret without a value, one scheduled for deletion, one that is not a key.
    empty = store.alias_location(api_id=api, alias="empty")
    client.create_secret(Name=empty)
    deleted = store.alias_location(api_id=api, alias="deleted")
    client.create_secret(Name=deleted, SecretString="x")
    client.delete_secret(SecretId=deleted, RecoveryWindowInDays=7)
    client.create_secret(Name=store.alias_location(api_id=api, alias="foreign"), SecretString="x")
    refs = [
        KeyRef(api_id=api, alias="svc0"),
        KeyRef(api_id=api, alias="empty"),
        KeyRef(api_id=api, alias="deleted"),
        KeyRef(api_id=api, alias="foreign"),
        KeyRef(api_id=api, alias="nobody"),
        KeyRef(api_id=api, key_id=key.key_id),
        KeyRef(api_id=random_id("api"), key_id=key.key_id),
    ]
    calls = Calls(client)
    results = store.get_many(refs)
    assert calls.take() == ["BatchGetSecretValue"]
    singles = [store._read_one(ref) for ref in refs]
    assert calls.take() == ["GetSecretValue"] * len(refs)
    for ref, batched, single in zip(refs, results, singles, strict=True):
        if isinstance(single, StoredKey):
            assert batched == single, ref
        else:
            assert type(batched) is type(single), ref
            assert batched.location == single.location, ref
    assert isinstance(results[0], StoredKey)
    assert isinstance(results[1], SecretNotFoundError)
    assert isinstance(results[3], StoredValueError)
    assert isinstance(results[4], SecretNotFoundError)
    assert isinstance(results[5], StoredKey)
    assert isinstance(results[6], SecretNotFoundError)


# -- the IAM policies ----------------------------------------------------------------------------


def _for_moto(document: dict[str, Any]) -> str:
    """``document`` with Resource "*" and no Condition: moto checks the actions only."""
    for statement in document["Statement"]:
        statement["Resource"] = "*"
        statement.pop("Condition", None)
    return json.dumps(document)


def _iam_client(moto_server: MotoServer, document: dict[str, Any]) -> Any:
    iam = moto_server.client("iam")
    user = random_id("user")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="unkey", PolicyDocument=_for_moto(document))
    access = iam.create_access_key(UserName=user)["AccessKey"]
    return moto_server.client(
        "secretsmanager",
        aws_access_key_id=access["AccessKeyId"],
        aws_secret_access_key=access["SecretAccessKey"],
    )


def _policy(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((POLICIES / name).read_text())
    return document


def test_the_reader_policy_reads_in_batches(moto_server: MotoServer) -> None:
    api, keys = aliased(SecretsManagerStore(moto_server.client("secretsmanager")), 3)
    client = _iam_client(moto_server, _policy("aws-reader.json"))
    calls = Calls(client)
    with moto_server.enforce_iam():
        results = SecretsManagerStore(client).get_many(refs_of(api, 3))
    assert calls.take() == ["BatchGetSecretValue"]
    assert key_ids(results) == [k.key_id for k in keys]


def test_a_reader_policy_without_batch_reads_falls_back_once(
    moto_server: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    api, keys = aliased(SecretsManagerStore(moto_server.client("secretsmanager")), 3)
    older = _policy("aws-reader.json")
    older["Statement"] = [
        s for s in older["Statement"] if "secretsmanager:BatchGetSecretValue" not in s["Action"]
    ]
    client = _iam_client(moto_server, older)
    store = SecretsManagerStore(client)
    calls = Calls(client)
    with (
        moto_server.enforce_iam(),
        caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.aws"),
    ):
        first = store.get_many(refs_of(api, 3))
        assert Counter(calls.take()) == {"BatchGetSecretValue": 1, "GetSecretValue": 3}
        second = store.get_many(refs_of(api, 3))
        assert calls.take() == ["GetSecretValue"] * 3
    assert key_ids(first) == key_ids(second) == [k.key_id for k in keys]
    said = [r.getMessage() for r in caplog.records if r.name == "unkey_secrets.stores.aws"]
    assert len(said) == 1
    # moto answers an IAM refusal as a 403 without AWS's AccessDeniedException code.
    assert "refused BatchGetSecretValue (HTTP 403)" in said[0]


def test_the_writer_policy_still_reads_nothing(moto_server: MotoServer) -> None:
    api, _ = aliased(SecretsManagerStore(moto_server.client("secretsmanager")), 2)
    client = _iam_client(moto_server, _policy("aws-writer.json"))
    with moto_server.enforce_iam():
        results = SecretsManagerStore(client).get_many(refs_of(api, 2))
    assert all(isinstance(r, StoreAccessError) for r in results)
