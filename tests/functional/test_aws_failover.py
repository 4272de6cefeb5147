"""RegionFailoverStore on a real moto server: one server answers for every region.

Each test names its own API, so the session's moto state is shared safely. A region that is
"down" is a client for that region whose endpoint is a closed loopback port; a throttled one,
a client whose ``before-send`` hook answers as Secrets Manager does when it throttles.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config

from unkey_secrets import (
    ConfigurationError,
    KeyRef,
    SecretNotFoundError,
    StoreAccessError,
    StoredKey,
    StoreUnavailableError,
)
from unkey_secrets.config import KeyNotFoundError, KeyReader, UnkeyKey
from unkey_secrets.config._model import arn_region
from unkey_secrets.settings import AwsSettings
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.failover import RegionFailoverStore, reader_store
from unkey_secrets.testing.contract import canary_key, random_id
from unkey_secrets.testing.moto import MotoServer

PRIMARY, REPLICA, THIRD = "us-east-1", "eu-west-1", "ap-southeast-2"


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


class _Answer:
    """A before-send hook answering every request with ``status`` and error ``code``."""

    def __init__(self, status: int, code: str) -> None:
        self.status, self.code = status, code
        self.calls = 0

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse:
        self.calls += 1
        body = json.dumps({"__type": self.code, "message": "answer-text-canary"}).encode()
        return AWSResponse(request.url, self.status, {}, _Raw(body))


def _store(moto: MotoServer, region: str, **kwargs: Any) -> SecretsManagerStore:
    # One attempt per request, as the clients the store builds send: botocore does not retry.
    config = Config(retries={"mode": "standard", "total_max_attempts": 1})
    client = moto.client("secretsmanager", region_name=region, config=config, **kwargs)
    return SecretsManagerStore(client)


def _write(store: SecretsManagerStore, api_id: str, alias: str) -> str:
    key = canary_key(api_id=api_id, alias=alias)
    store.put(key)
    store.set_current(key, alias=alias, expected=None)
    return key.key_id


@pytest.fixture
def api_id() -> str:
    return random_id("api")


def test_the_first_region_serves_when_it_has_the_key(moto_server: MotoServer, api_id: str) -> None:
    writer = SecretsManagerStore(
        moto_server.client("secretsmanager", region_name=PRIMARY), replica_regions=[REPLICA]
    )
    key_id = _write(writer, api_id, "billing")
    store = RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, REPLICA)])
    stored = store.get_current(api_id=api_id, alias="billing")
    assert stored.key_id == key_id
    assert arn_region(stored.location) == PRIMARY
    # The replica Secrets Manager made is readable on its own too.
    alone = RegionFailoverStore([_store(moto_server, REPLICA)])
    assert arn_region(alone.get_current(api_id=api_id, alias="billing").location) == REPLICA


def test_a_missing_replica_fails_over_and_the_reader_says_which_region(
    moto_server: MotoServer, api_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    key_id = _write(_store(moto_server, REPLICA), api_id, "billing")
    store = RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, REPLICA)])
    reader = KeyReader(store, max_age=60)
    with caplog.at_level(logging.WARNING, logger="unkey_secrets.stores.aws"):
        info = reader.key(api_id=api_id, alias="billing").info()
    assert (info.key_id, info.store, info.region) == (key_id, "aws", REPLICA)
    assert f"served from {REPLICA}, after {PRIMARY}" in caplog.text
    assert "canary_" not in caplog.text


def test_a_region_that_is_down_fails_over(
    moto_server: MotoServer, api_id: str, dead_port: int
) -> None:
    key_id = _write(_store(moto_server, REPLICA), api_id, "billing")
    down = _store(moto_server, PRIMARY, endpoint_url=f"http://127.0.0.1:{dead_port}")
    with pytest.raises(StoreUnavailableError):
        down.get_current(api_id=api_id, alias="billing")
    store = RegionFailoverStore([down, _store(moto_server, REPLICA)])
    stored = store.get_current(api_id=api_id, alias="billing")
    assert (stored.key_id, arn_region(stored.location)) == (key_id, REPLICA)


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "ThrottlingException"), (429, "TooManyRequests"), (503, "ServiceUnavailable")],
)
def test_a_throttled_or_failing_region_fails_over(
    moto_server: MotoServer, api_id: str, status: int, code: str
) -> None:
    # The key is in both regions: only the first one's answer makes the store move on.
    writer = SecretsManagerStore(
        moto_server.client("secretsmanager", region_name=PRIMARY), replica_regions=[REPLICA]
    )
    key_id = _write(writer, api_id, "billing")
    first = _store(moto_server, PRIMARY)
    answer = _Answer(status, code)
    first.client.meta.events.register("before-send.secrets-manager", answer)
    store = RegionFailoverStore([first, _store(moto_server, REPLICA)])
    stored = store.get_current(api_id=api_id, alias="billing")
    assert (stored.key_id, arn_region(stored.location), answer.calls) == (key_id, REPLICA, 1)


def test_an_access_denial_is_not_failed_over(moto_server: MotoServer, api_id: str) -> None:
    _write(_store(moto_server, REPLICA), api_id, "billing")
    first, second = _store(moto_server, PRIMARY), _store(moto_server, REPLICA)
    denied = _Answer(400, "AccessDeniedException")
    first.client.meta.events.register("before-send.secrets-manager", denied)
    reached = _Answer(500, "InternalServiceError")
    second.client.meta.events.register("before-send.secrets-manager", reached)
    store = RegionFailoverStore([first, second])
    with pytest.raises(StoreAccessError, match="AccessDeniedException") as raised:
        store.get_current(api_id=api_id, alias="billing")
    assert (denied.calls, reached.calls) == (1, 0)
    assert "answer-text-canary" not in str(raised.value)


def test_a_key_no_region_has_is_not_found(moto_server: MotoServer, api_id: str) -> None:
    store = RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, REPLICA)])
    with pytest.raises(SecretNotFoundError, match=f"{PRIMARY}, {REPLICA}"):
        store.get_current(api_id=api_id, alias="nowhere")
    assert store.read_rotation(api_id=api_id, key_id="key_nowhere") is None


def test_a_reader_names_every_region_read_and_writes_in_the_first(
    moto_server: MotoServer, api_id: str
) -> None:
    store = RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, REPLICA)])
    with pytest.raises(KeyNotFoundError) as raised:
        KeyReader(store).get(api_id=api_id, alias="nowhere")
    text = str(raised.value)
    assert f"{PRIMARY}, {REPLICA}" in text
    assert "UNKEY_SECRETS_AWS_READ_REGIONS" in text
    assert f"unkey-secrets --store aws --region {PRIMARY} provision --api-id {api_id}" in text
    assert "mount" not in text


def test_not_found_where_the_others_were_out_is_unavailable(
    moto_server: MotoServer, api_id: str, dead_port: int
) -> None:
    down = _store(moto_server, THIRD, endpoint_url=f"http://127.0.0.1:{dead_port}")
    store = RegionFailoverStore([_store(moto_server, PRIMARY), down])
    with pytest.raises(StoreUnavailableError) as raised:
        store.get(api_id=api_id, key_id="key_nowhere")
    text = str(raised.value)
    assert f"{PRIMARY}: no secret" in text
    assert f"{THIRD}: could not reach Secrets Manager" in text


def test_get_many_reads_each_key_from_the_first_region_that_has_it(
    moto_server: MotoServer, api_id: str
) -> None:
    both = SecretsManagerStore(
        moto_server.client("secretsmanager", region_name=PRIMARY), replica_regions=[REPLICA]
    )
    in_both = _write(both, api_id, "both")
    only_replica = _write(_store(moto_server, REPLICA), api_id, "replica")
    store = RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, REPLICA)])
    refs = [
        KeyRef(api_id=api_id, alias="both"),
        KeyRef(api_id=api_id, alias="replica"),
        KeyRef(api_id=api_id, alias="nowhere"),
        KeyRef(api_id=api_id, key_id=only_replica),
    ]
    results = store.get_many(refs)
    assert [type(r) for r in results] == [StoredKey, StoredKey, SecretNotFoundError, StoredKey]
    served = [(r.key_id, arn_region(r.location)) for r in results if isinstance(r, StoredKey)]
    assert served == [(in_both, PRIMARY), (only_replica, REPLICA), (only_replica, REPLICA)]


def test_rotation_records_fail_over_too(moto_server: MotoServer, api_id: str) -> None:
    from unkey_secrets.testing.contract import _rotation

    replica = _store(moto_server, REPLICA)
    key = canary_key(api_id=api_id, alias="billing")
    replica.write_rotation(_rotation(key))
    store = RegionFailoverStore([_store(moto_server, PRIMARY), replica])
    read = store.read_rotation(api_id=api_id, key_id=key.key_id)
    assert read is not None
    assert read.from_key_id == key.key_id


def test_writes_and_writer_checks_are_refused(moto_server: MotoServer, api_id: str) -> None:
    store = RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, REPLICA)])
    key = canary_key(api_id=api_id, alias="billing")
    for attempt in (
        lambda: store.put(key),
        lambda: store.set_current(key, alias="billing"),
        lambda: store.check_writable(api_id=api_id, alias="billing"),
        lambda: store.alias_state(api_id=api_id, alias="billing"),
        lambda: store.contains(api_id=api_id, key_id=key.key_id),
    ):
        with pytest.raises(ConfigurationError, match="reads only"):
            attempt()
    assert not SecretsManagerStore(moto_server.client("secretsmanager")).contains(
        api_id=api_id, key_id=key.key_id
    )


def test_for_regions_from_the_environment(
    moto_server: MotoServer, api_id: str, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = _write(_store(moto_server, REPLICA), api_id, "billing")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_READ_REGIONS", f"{PRIMARY},{REPLICA}")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_TIMEOUT", "5")
    store = reader_store()
    assert isinstance(store, RegionFailoverStore)
    assert store.regions == (PRIMARY, REPLICA)
    assert store.read_timeout == 10.0
    # The reader takes the regions' summed timeouts as its read_timeout by default.
    reader = KeyReader(store)
    assert reader.read_timeout == 10.0
    info = reader.cached(UnkeyKey(api_id=api_id, alias="billing")).info()
    assert (info.key_id, info.region) == (key_id, REPLICA)
    # KeyReader.secrets_manager(regions=...) builds the same, regions= winning.
    built = KeyReader.secrets_manager(regions=[THIRD, REPLICA], max_age=60)
    assert isinstance(built.store, RegionFailoverStore)
    assert (built.store.regions, built.read_timeout) == ((THIRD, REPLICA), 10.0)
    assert built.key(api_id=api_id, alias="billing").info().region == REPLICA
    with pytest.raises(ConfigurationError, match="pass no client"):
        KeyReader.secrets_manager(client=moto_server.client("secretsmanager"), regions=[THIRD])
    # regions= wins over the environment; one region is a plain store.
    only = RegionFailoverStore.for_regions([REPLICA], settings=AwsSettings())
    assert only.regions == (REPLICA,)
    monkeypatch.delenv("UNKEY_SECRETS_AWS_READ_REGIONS")
    assert isinstance(reader_store(), SecretsManagerStore)


def test_bad_stores_and_regions_are_refused(moto_server: MotoServer) -> None:
    from unkey_secrets import InvalidInputError

    with pytest.raises(InvalidInputError, match="twice"):
        RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, PRIMARY)])
    other = SecretsManagerStore(
        moto_server.client("secretsmanager", region_name=REPLICA), key_template="k/{key_id}"
    )
    with pytest.raises(InvalidInputError, match="templates"):
        RegionFailoverStore([_store(moto_server, PRIMARY), other])
    with pytest.raises(InvalidInputError, match="stores"):
        RegionFailoverStore([])
    with pytest.raises(InvalidInputError, match="regions"):
        RegionFailoverStore.for_regions(["eu-west-1", "not a region"], settings=AwsSettings())
    with pytest.raises(ConfigurationError, match="no region"):
        RegionFailoverStore.for_regions(settings=AwsSettings(region=None))
    with pytest.raises(ConfigurationError, match="pass no client"):
        reader_store(client=moto_server.client("secretsmanager"), regions=[PRIMARY, REPLICA])


def test_get_many_refuses_a_name_secrets_manager_could_not_hold(
    moto_server: MotoServer, api_id: str
) -> None:
    from unkey_secrets import InvalidInputError

    # A name ending in a hyphen and six characters reads as an ARN's suffix: the plain store
    # refuses it before any read, and so does the failover store, for the whole call.
    _write(_store(moto_server, PRIMARY), api_id, "billing")
    store = RegionFailoverStore([_store(moto_server, PRIMARY), _store(moto_server, REPLICA)])
    refs = [KeyRef(api_id=api_id, alias="billing"), KeyRef(api_id=api_id, alias="web-server")]
    with pytest.raises(InvalidInputError):
        store.get_many(refs)
    assert isinstance(store.get_many(refs[:1])[0], StoredKey)
