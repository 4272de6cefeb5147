"""Secrets Manager batch reads: BatchGetSecretValue's round trips, per-key errors, fallbacks.

Over the InMemorySecretsManager double (which answers BatchGetSecretValue as AWS does) and
botocore's Stubber (for answers the double cannot give: a DecryptionFailure entry, a second
page, a name left out), plus the transport policy against misbehaving loopback servers.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from tests._policy_servers import endless_chunks, serve, trickle
from tests.unit._aws_client import make_client
from unkey_secrets import (
    InvalidInputError,
    KeyRef,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoredKey,
    StoredValueError,
    StoreError,
    StoreUnavailableError,
)
from unkey_secrets._models import IssuedKey
from unkey_secrets._payload import key_fields
from unkey_secrets.stores.aws import SecretsManagerStore, version_id_for
from unkey_secrets.stores.aws import batch as batch_module
from unkey_secrets.testing import InMemorySecretsManager, InMemoryStore
from unkey_secrets.testing.contract import canary_key, random_id

API = "api_batch1"
CANARY_MESSAGE = "aws-message-canary-0123456789"


class CountingDouble(InMemorySecretsManager):
    """The double, keeping the SecretIdList of every BatchGetSecretValue."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def batch_get_secret_value(self, **params: Any) -> dict[str, Any]:
        self.batches.append(list(params.get("SecretIdList") or ()))
        return super().batch_get_secret_value(**params)


class NoBatchClient:
    """A client of an SDK without batch_get_secret_value (the double, minus that method)."""

    def __init__(self, double: InMemorySecretsManager) -> None:
        self._double = double
        self.meta = double.meta
        self.exceptions = double.exceptions

    def __getattr__(self, name: str) -> Any:
        if name == "batch_get_secret_value":
            raise AttributeError(name)
        return getattr(self._double, name)


@pytest.fixture
def sm() -> CountingDouble:
    return CountingDouble()


@pytest.fixture
def stubbed() -> Iterator[tuple[SecretsManagerStore, Stubber]]:
    client = make_client()
    with Stubber(client) as stubber:
        yield SecretsManagerStore(client, preflight=False), stubber
        stubber.assert_no_pending_responses()


def aliased(store: SecretsManagerStore, count: int, api_id: str = API) -> list[IssuedKey]:
    """``count`` keys stored, each the current key of its own alias ``svc<n>``."""
    keys = [canary_key(api_id=api_id) for _ in range(count)]
    for n, key in enumerate(keys):
        store.put(key)
        store.set_current(key, alias=f"svc{n}")
    return keys


def alias_refs(count: int, api_id: str = API) -> list[KeyRef]:
    return [KeyRef(api_id=api_id, alias=f"svc{n}") for n in range(count)]


def value(key: IssuedKey, alias: str | None = None) -> str:
    return json.dumps(key_fields(dataclasses.replace(key, alias=alias) if alias else key))


def arn(name: str) -> str:
    return f"arn:aws:secretsmanager:us-east-1:123456789012:secret:{name}-AbCdEf"


def entry(name: str, text: str | None, version: str, *, with_name: bool = True) -> dict[str, Any]:
    """A SecretValues entry (GetSecretValue's shape) for the secret ``name``."""
    answer: dict[str, Any] = {
        "ARN": arn(name),
        "VersionId": version,
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    }
    if with_name:
        answer["Name"] = name
    if text is not None:
        answer["SecretString"] = text
    else:
        answer["SecretBinary"] = b"\x00binary"
    return answer


def assert_clean(results: list[Any], *keys: IssuedKey) -> None:
    for result in results:
        for key in keys:
            assert key.secret.reveal() not in repr(result)
            assert key.secret.reveal() not in str(result)
        if isinstance(result, BaseException):
            assert result.__cause__ is None
            assert result.__context__ is None
            assert CANARY_MESSAGE not in str(result)


# -- round trips ------------------------------------------------------------------------------


def test_45_aliases_cost_3_batch_calls_of_at_most_20_names(sm: CountingDouble) -> None:
    store = SecretsManagerStore(sm)
    keys = aliased(store, 45)
    sm.calls.clear()
    results = store.get_many(alias_refs(45))
    assert sm.calls == ["BatchGetSecretValue"] * 3
    assert sorted(len(names) for names in sm.batches) == [5, 20, 20]
    assert [r.key_id if isinstance(r, StoredKey) else r for r in results] == [
        k.key_id for k in keys
    ]
    assert [r.alias for r in results if isinstance(r, StoredKey)] == [f"svc{n}" for n in range(45)]
    assert_clean(results, *keys)


def test_20_aliases_are_one_call_and_21_are_two(sm: CountingDouble) -> None:
    store = SecretsManagerStore(sm)
    aliased(store, 21)
    sm.calls.clear()
    assert all(isinstance(r, StoredKey) for r in store.get_many(alias_refs(20)))
    assert sm.calls == ["BatchGetSecretValue"]
    sm.calls.clear()
    store.get_many(alias_refs(21))
    assert sm.calls == ["BatchGetSecretValue"] * 2


def test_each_secret_is_asked_for_once_and_each_ref_gets_its_own_result(
    sm: CountingDouble,
) -> None:
    store = SecretsManagerStore(sm)
    (key,) = aliased(store, 1)
    missing = KeyRef(api_id=API, alias="nobody")
    refs = [KeyRef(api_id=API, alias="svc0"), missing, KeyRef(api_id=API, alias="svc0"), missing]
    sm.calls.clear()
    first, gone, again, gone_again = store.get_many(refs)
    assert sm.calls == ["BatchGetSecretValue"]
    assert sm.batches[-1] == [
        store.alias_location(api_id=API, alias="svc0"),
        store.alias_location(api_id=API, alias="nobody"),
    ]
    assert isinstance(first, StoredKey)
    assert first == again
    assert first.key_id == key.key_id
    assert isinstance(gone, SecretNotFoundError)
    assert isinstance(gone_again, SecretNotFoundError)
    assert gone is not gone_again


def test_keys_by_key_id_and_by_alias_share_the_calls(sm: CountingDouble) -> None:
    store = SecretsManagerStore(sm)
    keys = aliased(store, 12)
    refs = [KeyRef(api_id=API, key_id=k.key_id) for k in keys] + alias_refs(12)
    sm.calls.clear()
    results = store.get_many(refs)
    assert sm.calls == ["BatchGetSecretValue"] * 2
    assert [r.key_id for r in results if isinstance(r, StoredKey)] == [k.key_id for k in keys] * 2
    # Read by key_id, a key is the one stored without an alias; by alias, the alias's copy.
    assert {r.alias for r in results[:12] if isinstance(r, StoredKey)} == {None}


def test_the_calls_run_at_once_up_to_concurrency(
    sm: CountingDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    pools: list[int] = []

    class Pool(ThreadPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers)

    monkeypatch.setattr(batch_module, "ThreadPoolExecutor", Pool)
    store = SecretsManagerStore(sm)
    aliased(store, 45)
    store.get_many(alias_refs(45))
    store.get_many(alias_refs(45), concurrency=2)
    store.get_many(alias_refs(45), concurrency=1)
    assert pools == [3, 2]


# -- per-key errors: as a single read ---------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("ResourceNotFoundException", "can't find", SecretNotFoundError),
        ("DecryptionFailure", "KMS", StoreAccessError),
        ("AccessDeniedException", "not authorized", StoreAccessError),
        ("InvalidRequestException", "scheduled for deletion", StoreConflictError),
        ("InvalidParameterException", "bad", StoreError),
        ("InternalServiceError", "oops", StoreError),
    ],
)
def test_an_errors_entry_is_the_error_a_single_read_raises(
    stubbed: tuple[SecretsManagerStore, Stubber], code: str, message: str, expected: type
) -> None:
    store, stubber = stubbed
    ref = KeyRef(api_id=API, alias="svc")
    name = store.alias_location(api_id=API, alias="svc")
    stubber.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [],
            "Errors": [
                {"SecretId": name, "ErrorCode": code, "Message": f"{message} {CANARY_MESSAGE}"}
            ],
        },
        {"SecretIdList": [name]},
    )
    stubber.add_client_error(
        "get_secret_value", code, f"{message} {CANARY_MESSAGE}", http_status_code=400
    )
    (batched,) = store.get_many([ref])
    with pytest.raises(StoreError) as single:
        store.get_current(api_id=API, alias="svc")
    assert isinstance(batched, expected)
    assert type(batched) is type(single.value)
    assert batched.location == name
    assert code in str(batched)
    assert_clean([batched])


@pytest.mark.parametrize(
    "code",
    [
        "Throttling\nERROR forged log line",
        "X" * 100_000,
        "ResourceNotFoundException because " + CANARY_MESSAGE,
    ],
)
def test_an_error_code_no_aws_code_looks_like_is_not_quoted(
    stubbed: tuple[SecretsManagerStore, Stubber], code: str
) -> None:
    # The code is the server's text, quoted by every error: a broken or hostile endpoint's
    # (a line break forging a log line, a megabyte, words) counts as no code at all.
    store, stubber = stubbed
    names = [store.alias_location(api_id=API, alias=a) for a in ("svc", "other")]
    stubber.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [],
            "Errors": [
                {"SecretId": names[0], "ErrorCode": code, "Message": CANARY_MESSAGE},
            ],
        },
        {"SecretIdList": names},
    )
    stubber.add_client_error("get_secret_value", code, CANARY_MESSAGE, http_status_code=503)
    entry, alone = store.get_many([KeyRef(api_id=API, alias=a) for a in ("svc", "other")])
    for error in (entry, alone):
        assert isinstance(error, StoreError)
        text = str(error)
        assert "Unknown" in text
        assert "\n" not in text
        assert len(text) < 500
        assert "forged" not in text
        assert "XXXX" not in text
        assert CANARY_MESSAGE not in text
    assert isinstance(alone, StoreUnavailableError)  # judged by its status, as before


def test_values_are_decoded_and_checked_as_a_single_read(
    stubbed: tuple[SecretsManagerStore, Stubber],
) -> None:
    store, stubber = stubbed
    key = canary_key(api_id=API)
    stranger = canary_key()
    refs = {
        "ours": KeyRef(api_id=API, alias="ours"),
        "by-id": KeyRef(api_id=API, key_id=key.key_id),
        "another-key": KeyRef(api_id=API, key_id=random_id("key")),
        "another-api": KeyRef(api_id=API, alias="theirs"),
        "another-alias": KeyRef(api_id=API, alias="other"),
        "not-json": KeyRef(api_id=API, alias="garbled"),
        "binary": KeyRef(api_id=API, alias="binary"),
    }
    texts: dict[str, str | None] = {
        "ours": value(key, "ours"),
        "by-id": value(key),
        "another-key": value(key),
        "another-api": value(stranger, "theirs"),
        "another-alias": value(key, "elsewhere"),
        "not-json": "{" + key.secret.reveal(),
        "binary": None,
    }
    names = {label: store._ref_location(ref) for label, ref in refs.items()}
    stubber.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [
                entry(names[label], texts[label], version_id_for(key.key_id)) for label in refs
            ],
            "Errors": [],
        },
        {"SecretIdList": list(names.values())},
    )
    for label in refs:
        stubber.add_response(
            "get_secret_value",
            entry(names[label], texts[label], version_id_for(key.key_id)),
            {"SecretId": names[label], "VersionStage": "AWSCURRENT"},
        )
    results = dict(zip(refs, store.get_many(list(refs.values())), strict=True))
    for label, ref in refs.items():
        single = store._read_one(ref)
        batched = results[label]
        if isinstance(single, StoredKey):
            assert batched == single, label
        else:
            assert type(batched) is type(single), label
            assert str(batched) == str(single), label
    assert isinstance(results["ours"], StoredKey)
    assert results["ours"].secret == key.secret
    assert results["ours"].location == arn(names["ours"])
    for label in ("another-key", "another-api", "another-alias", "not-json", "binary"):
        assert isinstance(results[label], StoredValueError), label
    assert_clean(list(results.values()), key, stranger)


def test_an_entry_named_by_its_arn_is_matched(stubbed: tuple[SecretsManagerStore, Stubber]) -> None:
    store, stubber = stubbed
    key = canary_key(api_id=API)
    name = store.alias_location(api_id=API, alias="svc")
    gone = store.alias_location(api_id=API, alias="gone")
    stubber.add_response(
        "batch_get_secret_value",
        {
            "SecretValues": [entry(name, value(key, "svc"), "v" * 32, with_name=False)],
            "Errors": [
                {"SecretId": arn(gone), "ErrorCode": "ResourceNotFoundException", "Message": ""}
            ],
        },
        {"SecretIdList": [name, gone]},
    )
    found, missing = store.get_many(
        [KeyRef(api_id=API, alias="svc"), KeyRef(api_id=API, alias="gone")]
    )
    assert isinstance(found, StoredKey)
    assert found.key_id == key.key_id
    assert isinstance(missing, SecretNotFoundError)


# -- pages and gaps ---------------------------------------------------------------------------


def test_next_token_is_followed(stubbed: tuple[SecretsManagerStore, Stubber]) -> None:
    store, stubber = stubbed
    first, second = canary_key(api_id=API), canary_key(api_id=API)
    names = [store.alias_location(api_id=API, alias=a) for a in ("a", "b")]
    stubber.add_response(
        "batch_get_secret_value",
        {"SecretValues": [entry(names[0], value(first, "a"), "1" * 32)], "NextToken": "page-2"},
        {"SecretIdList": names},
    )
    stubber.add_response(
        "batch_get_secret_value",
        {"SecretValues": [entry(names[1], value(second, "b"), "2" * 32)]},
        {"SecretIdList": names, "NextToken": "page-2"},
    )
    a, b = store.get_many([KeyRef(api_id=API, alias="a"), KeyRef(api_id=API, alias="b")])
    assert isinstance(a, StoredKey)
    assert isinstance(b, StoredKey)
    assert (a.key_id, b.key_id) == (first.key_id, second.key_id)


def test_a_name_the_answer_leaves_out_is_read_alone(
    stubbed: tuple[SecretsManagerStore, Stubber],
) -> None:
    store, stubber = stubbed
    first, second = canary_key(api_id=API), canary_key(api_id=API)
    names = [store.alias_location(api_id=API, alias=a) for a in ("a", "b")]
    stubber.add_response(
        "batch_get_secret_value",
        {"SecretValues": [entry(names[0], value(first, "a"), "1" * 32)], "Errors": []},
        {"SecretIdList": names},
    )
    stubber.add_response(
        "get_secret_value",
        entry(names[1], value(second, "b"), "2" * 32),
        {"SecretId": names[1], "VersionStage": "AWSCURRENT"},
    )
    a, b = store.get_many([KeyRef(api_id=API, alias="a"), KeyRef(api_id=API, alias="b")])
    assert isinstance(a, StoredKey)
    assert isinstance(b, StoredKey)
    assert (a.key_id, b.key_id) == (first.key_id, second.key_id)


# -- the whole call fails ---------------------------------------------------------------------


def test_a_refused_batch_reads_one_by_one_remembers_it_and_says_so_once(
    sm: CountingDouble, caplog: pytest.LogCaptureFixture
) -> None:
    store = SecretsManagerStore(sm)
    keys = aliased(store, 3)
    sm.calls.clear()
    sm.fail_next("BatchGetSecretValue", "AccessDeniedException")
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.aws"):
        results = store.get_many(alias_refs(3))
        assert Counter(sm.calls) == {"BatchGetSecretValue": 1, "GetSecretValue": 3}
        assert [r.key_id for r in results if isinstance(r, StoredKey)] == [k.key_id for k in keys]
        sm.calls.clear()
        again = store.get_many(alias_refs(3))
        assert sm.calls == ["GetSecretValue"] * 3
        assert again == results
    said = [r for r in caplog.records if r.name == "unkey_secrets.stores.aws"]
    assert len(said) == 1
    assert "AccessDeniedException" in said[0].getMessage()
    assert "secretsmanager:BatchGetSecretValue" in said[0].getMessage()
    assert "policies/aws-reader.json" in said[0].getMessage()
    # Another store object asks again.
    sm.calls.clear()
    SecretsManagerStore(sm).get_many(alias_refs(3))
    assert sm.calls == ["BatchGetSecretValue"]


@pytest.mark.parametrize("how", ["UnknownOperationException", "no method"])
def test_an_unsupported_batch_reads_one_by_one(
    sm: CountingDouble, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    keys = aliased(SecretsManagerStore(sm), 2)
    if how == "no method":
        store = SecretsManagerStore(NoBatchClient(sm))
    else:
        store = SecretsManagerStore(sm)
        sm.fail_next("BatchGetSecretValue", how)
    sm.calls.clear()
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.aws"):
        first = store.get_many(alias_refs(2))
        second = store.get_many(alias_refs(2))
    assert [r.key_id for r in first if isinstance(r, StoredKey)] == [k.key_id for k in keys]
    assert first == second
    assert sm.calls.count("GetSecretValue") == 4
    assert sm.calls.count("BatchGetSecretValue") == (1 if how != "no method" else 0)
    assert len([r for r in caplog.records if r.name == "unkey_secrets.stores.aws"]) == 1


def test_a_throttled_batch_fails_each_ref_with_its_own_location_and_is_tried_again(
    sm: CountingDouble,
) -> None:
    store = SecretsManagerStore(sm)
    aliased(store, 3)
    sm.calls.clear()
    sm.fail_next("BatchGetSecretValue", "ThrottlingException")
    results = store.get_many(alias_refs(3))
    assert sm.calls == ["BatchGetSecretValue"]
    for n, result in enumerate(results):
        assert isinstance(result, StoreUnavailableError)
        assert result.location == store.alias_location(api_id=API, alias=f"svc{n}")
        assert "ThrottlingException" in str(result)
    assert len({id(r) for r in results}) == 3
    assert_clean(results)
    sm.calls.clear()
    assert all(isinstance(r, StoredKey) for r in store.get_many(alias_refs(3)))
    assert sm.calls == ["BatchGetSecretValue"]


def test_a_batch_refused_for_one_of_its_secrets_is_read_one_by_one(sm: CountingDouble) -> None:
    store = SecretsManagerStore(sm)
    keys = aliased(store, 2)
    sm.calls.clear()
    sm.fail_next("BatchGetSecretValue", "ResourceNotFoundException")
    refs = [*alias_refs(2), KeyRef(api_id=API, alias="nobody")]
    first, second, missing = store.get_many(refs)
    assert Counter(sm.calls) == {"BatchGetSecretValue": 1, "GetSecretValue": 3}
    assert isinstance(first, StoredKey)
    assert isinstance(second, StoredKey)
    assert (first.key_id, second.key_id) == (keys[0].key_id, keys[1].key_id)
    assert isinstance(missing, SecretNotFoundError)
    sm.calls.clear()
    store.get_many(refs)
    assert sm.calls == ["BatchGetSecretValue"], "not remembered: the next call batches again"


# -- validation and pools ---------------------------------------------------------------------


def test_a_name_secrets_manager_would_refuse_fails_the_call_before_any_read(
    sm: CountingDouble,
) -> None:
    store = SecretsManagerStore(sm)
    aliased(store, 2)
    sm.calls.clear()
    # "web-server" ends like the random suffix AWS adds to an ARN: not a name we may use.
    refs = [*alias_refs(2), KeyRef(api_id=API, alias="web-server")]
    with pytest.raises(InvalidInputError):
        store.get_many(refs, concurrency=1)
    assert sm.calls == []


def test_reads_at_once_are_capped_at_the_clients_pool() -> None:
    client = make_client()
    assert SecretsManagerStore(client)._max_parallel_reads() == 10
    small = sm_client("http://127.0.0.1:9", max_pool_connections=3)
    assert SecretsManagerStore(small)._max_parallel_reads() == 3


def test_the_default_reads_never_outnumber_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    pools: list[int] = []

    class Pool(ThreadPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=max_workers)

    class SmallPoolStore(InMemoryStore):
        def _max_parallel_reads(self) -> int | None:
            return 2

    # get_many imports the pool where it reads (the rotation Lambda never imports it).
    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", Pool)
    store = SmallPoolStore()
    refs = [KeyRef(api_id=API, key_id=random_id("key")) for _ in range(6)]
    assert all(isinstance(r, SecretNotFoundError) for r in store.get_many(refs, concurrency=32))
    InMemoryStore().get_many(refs, concurrency=4)
    assert pools == [2, 4]


# -- the transport policy ---------------------------------------------------------------------


def sm_client(url: str, **config: Any) -> Any:
    """A caller's client on ``url``: dummy credentials, no profile or config file."""
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    core.set_config_variable("config_file", os.devnull)
    core.set_config_variable("credentials_file", os.devnull)
    session = boto3.session.Session(
        botocore_session=core,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return session.client(
        "secretsmanager",
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}, **config),
    )


def test_a_batch_ends_at_its_deadline_each_ref_failing_as_a_lost_read() -> None:
    with serve(trickle) as server:
        store = SecretsManagerStore(
            sm_client(server.url, connect_timeout=0.5, read_timeout=0.5), preflight=False
        )
        started = time.monotonic()
        results = store.get_many(alias_refs(3))
        elapsed = time.monotonic() - started
        targets = [r.headers.get("X-Amz-Target") for r in server.received]
    assert targets == ["secretsmanager.BatchGetSecretValue"]
    for n, result in enumerate(results):
        assert isinstance(result, StoreUnavailableError)
        assert "1 s deadline" in str(result)
        assert "may have been carried out" not in str(result)
        assert result.location == store.alias_location(api_id=API, alias=f"svc{n}")
    assert elapsed < 1 + 3


def test_a_batch_answer_over_the_byte_budget_is_lost() -> None:
    with serve(endless_chunks) as server:
        store = SecretsManagerStore(sm_client(server.url, read_timeout=5), preflight=False)
        results = store.get_many(alias_refs(2))
        targets = [r.headers.get("X-Amz-Target") for r in server.received]
    assert targets == ["secretsmanager.BatchGetSecretValue"]
    assert all(isinstance(r, StoreUnavailableError) and "byte budget" in str(r) for r in results)


def test_a_403_without_an_aws_code_is_a_refusal_but_expired_credentials_are_not(
    stubbed: tuple[SecretsManagerStore, Stubber],
) -> None:
    store, stubber = stubbed
    key = canary_key(api_id=API)
    name = store.alias_location(api_id=API, alias="svc")
    ref = KeyRef(api_id=API, alias="svc")
    stubber.add_client_error(
        "batch_get_secret_value", "ExpiredTokenException", "expired", http_status_code=400
    )
    (expired,) = store.get_many([ref])
    assert isinstance(expired, StoreAccessError)
    assert expired.location == name
    assert store._batch_off is None, "a credentials problem is not the policy's refusal"
    stubber.add_client_error("batch_get_secret_value", "403", "<xml/>", http_status_code=403)
    stubber.add_response(
        "get_secret_value",
        entry(name, value(key, "svc"), "1" * 32),
        {"SecretId": name, "VersionStage": "AWSCURRENT"},
    )
    (read,) = store.get_many([ref])
    assert isinstance(read, StoredKey)
    assert read.key_id == key.key_id
    assert store._batch_off is not None


def test_the_double_refuses_what_aws_refuses(sm: CountingDouble) -> None:
    from botocore.exceptions import ClientError

    name = "test/x"
    sm.create_secret(Name=name, SecretString="v")
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"SecretIdList": [name], "Filters": [{"Key": "name", "Values": ["x"]}]},
            "InvalidParameterException",
        ),
        ({"SecretIdList": [name], "MaxResults": 5}, "InvalidParameterException"),
        ({"SecretIdList": [name], "NextToken": "made-up"}, "InvalidNextTokenException"),
        ({"SecretIdList": [f"test/{n}" for n in range(21)]}, "ValidationException"),
    ]
    for params, code in cases:
        with pytest.raises(ClientError) as refused:
            sm.batch_get_secret_value(**params)
        assert refused.value.response["Error"]["Code"] == code, params
    with pytest.raises(NotImplementedError):
        sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["test"]}])
    answer = sm.batch_get_secret_value(SecretIdList=[name])
    assert [v["SecretString"] for v in answer["SecretValues"]] == ["v"]
    assert answer["Errors"] == []
