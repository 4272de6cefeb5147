"""The Secrets Manager clients (botocore) held to the transport policy, on loopback.

The store's, the reader's and the rotation Lambda's clients, built here or passed in, against a
"Secrets Manager" that trickles its answer, sends an endless body or declares a huge one.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from tests._policy_servers import (
    TRICKLE_LIMIT,
    declared_100_mb,
    endless_chunks,
    json_answer,
    serve,
    trickle,
)
from unkey_secrets import ConfigurationError, StoreError, StoreUnavailableError
from unkey_secrets.aws_lambda import RuntimeConfig, build_rotator
from unkey_secrets.config import KeyReader
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.transport import DEFAULT_MAX_ANSWER_BYTES, TransportBreachError
from unkey_secrets.transport.botocore import (
    BotocoreAnswerTooLargeError,
    BotocoreDeadlineExceededError,
    PolicySession,
    apply_policy,
    deadline_seconds,
)

API_ID = "api_transport1"
KEY_ID = "key_transport1"


def sm_client(url: str, **config: Any) -> Any:
    """A caller's client: dummy credentials, no profile or config file, its own ``Config``."""
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


@pytest.fixture
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and a region in the environment; no profile or AWS config file."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def timed(call: Callable[[], Any], error: type[Exception] = StoreError) -> tuple[Exception, float]:
    """The ``error`` ``call()`` raises, and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(error) as raised:
        call()
    return raised.value, time.monotonic() - started


# -- the deadline -----------------------------------------------------------------------------


def test_a_given_clients_deadline_is_its_connect_plus_read_timeout() -> None:
    with serve(trickle) as server:
        client = sm_client(server.url, connect_timeout=0.5, read_timeout=0.5)
        store = SecretsManagerStore(client, preflight=False)
        error, elapsed = timed(lambda: store.get(api_id=API_ID, key_id=KEY_ID))
    assert isinstance(error, StoreUnavailableError)
    assert "1 s deadline" in str(error)
    assert "the answer is lost" in str(error)
    # A read changed nothing: its message does not say a write may have been carried out.
    assert "may have been carried out" not in str(error)
    assert elapsed < 1 + 3 < TRICKLE_LIMIT


@pytest.mark.usefixtures("dummy_credentials")
def test_the_built_clients_deadline_is_the_timeout_setting() -> None:
    with serve(trickle) as server:
        store = SecretsManagerStore(endpoint_url=server.url, timeout=1, preflight=False)
        error, elapsed = timed(lambda: store.get(api_id=API_ID, key_id=KEY_ID))
    assert isinstance(error, StoreUnavailableError)
    assert "1 s deadline" in str(error)
    assert elapsed < 1 + 3


@pytest.mark.usefixtures("dummy_credentials")
def test_the_readers_client_is_bounded_too() -> None:
    with serve(trickle) as server:
        reader = KeyReader.secrets_manager(
            client=sm_client(server.url, connect_timeout=0.5, read_timeout=0.5)
        )
        error, elapsed = timed(lambda: reader.get(api_id=API_ID, key_id=KEY_ID), Exception)
    assert "deadline" in str(error)
    assert elapsed < 1 + 3


@pytest.mark.usefixtures("dummy_credentials")
def test_the_lambdas_root_key_read_ends_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(trickle) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        config = RuntimeConfig.from_environ(
            {"UNKEY_ROOT_KEY_SECRET_ID": "unkey/root", "UNKEY_SECRETS_AWS_TIMEOUT": "1"}
        )
        assert config.store_timeout == 1
        boto3.client("secretsmanager", region_name="us-east-1")  # loader warmed: time the read
        error, elapsed = timed(lambda: build_rotator(config), ConfigurationError)
    assert "could not read the Unkey root key from unkey/root" in str(error)
    assert "1 s deadline" in str(error)
    assert elapsed < 1 + 5 < TRICKLE_LIMIT


def test_the_lambdas_given_client_is_bounded_too() -> None:
    with serve(trickle) as server:
        client = sm_client(server.url, connect_timeout=0.5, read_timeout=0.5)
        config = RuntimeConfig.from_environ({"UNKEY_ROOT_KEY_SECRET_ID": "unkey/root"})
        error, elapsed = timed(lambda: build_rotator(config, client), ConfigurationError)
    assert "1 s deadline" in str(error)
    assert elapsed < 1 + 3


# -- the byte budget --------------------------------------------------------------------------


def test_an_endless_body_ends_at_the_byte_budget() -> None:
    with serve(endless_chunks) as server:
        store = SecretsManagerStore(sm_client(server.url, read_timeout=5), preflight=False)
        error, elapsed = timed(lambda: store.get(api_id=API_ID, key_id=KEY_ID))
    assert isinstance(error, StoreUnavailableError)
    assert f"{DEFAULT_MAX_ANSWER_BYTES} byte budget" in str(error)
    assert elapsed < 5


def test_a_declared_100_mb_body_is_refused_before_it_is_read() -> None:
    with serve(declared_100_mb) as server:
        store = SecretsManagerStore(sm_client(server.url, read_timeout=5), preflight=False)
        error, elapsed = timed(lambda: store.get(api_id=API_ID, key_id=KEY_ID))
    assert isinstance(error, StoreUnavailableError)
    assert "byte budget" in str(error)
    assert elapsed < 3


# -- proxies ----------------------------------------------------------------------------------


def test_a_given_client_made_under_http_proxy_never_uses_it_for_plain_http(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests._policy_servers import record_only

    with serve(record_only) as proxy, serve(trickle) as server:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("http_proxy", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        # botocore reads the proxy variables when the client is made: this one would use it.
        client = sm_client(server.url, connect_timeout=0.25, read_timeout=0.25)
        store = SecretsManagerStore(client, preflight=False)
        timed(lambda: store.get(api_id=API_ID, key_id=KEY_ID))
        assert proxy.received == []
        assert [r.method for r in server.received] == ["POST"]


def test_an_https_client_keeps_its_own_proxies_and_takes_the_environments_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = "https://secretsmanager.us-east-1.amazonaws.com"
    mine = sm_client(url, proxies={"https": "http://mine.example:8080"})
    apply_policy(mine)
    session = mine._endpoint.http_session
    assert session._proxy_config.proxy_url_for(url) == "http://mine.example:8080"
    theirs = sm_client(url)
    apply_policy(theirs)
    session = theirs._endpoint.http_session
    assert session._proxy_config.proxy_url_for(url) == "http://proxy.example:3128"


# -- the pieces -------------------------------------------------------------------------------


def test_apply_policy_swaps_the_session_once_and_skips_doubles() -> None:
    client = sm_client("http://127.0.0.1:9", connect_timeout=2, read_timeout=3)
    assert apply_policy(client)
    session = client._endpoint.http_session
    assert isinstance(session, PolicySession)
    assert session.deadline == 5
    assert apply_policy(client)
    assert client._endpoint.http_session is session, "the same policy is not applied twice"
    assert apply_policy(client, deadline=1)
    assert client._endpoint.http_session.deadline == 1
    assert not apply_policy(object())


def test_a_config_without_timeouts_gives_botocores_defaults() -> None:
    assert deadline_seconds(Config()) == 120
    assert deadline_seconds(Config(connect_timeout=1, read_timeout=4)) == 5


def test_breaches_are_botocore_errors_and_lost_answers_and_pickle() -> None:
    for error in (BotocoreDeadlineExceededError(1.5), BotocoreAnswerTooLargeError(10)):
        assert isinstance(error, BotoCoreError)
        assert isinstance(error, TransportBreachError)
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
        assert type(copy) is type(error)
        assert str(copy) == str(error)


# -- an answer botocore cannot decode ---------------------------------------------------------


def _not_utf8(payload: bytes) -> Callable[..., None]:
    """An answer whose JSON is whole but for one byte that is not UTF-8 (a mangling proxy)."""

    def answer(handler: Any, server: Any, _: Any) -> None:
        json_answer(handler, 200, payload[:-1] + b',"X":"\xff"}')

    return answer


def test_an_undecodable_read_answer_is_our_error_holding_no_stored_value() -> None:
    import json

    plaintext = "sk_" + "U" * 24
    stored = json.dumps({"format": "unkey-secrets/v1", "key": plaintext, "key_id": KEY_ID})
    payload = json.dumps({"Name": "n", "SecretString": stored, "VersionId": "v1"}).encode()
    with serve(_not_utf8(payload)) as server:
        store = SecretsManagerStore(sm_client(server.url), preflight=False)
        error, _ = timed(lambda: store.get(api_id=API_ID, key_id=KEY_ID), StoreError)
    # botocore's UnicodeDecodeError held the whole body in .object: none of it comes along.
    assert type(error).__name__ == "StoredValueError"
    assert "could not be decoded (UnicodeDecodeError)" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert plaintext not in repr(vars(error))
    assert plaintext not in repr(pickle.dumps(error))


def test_an_undecodable_write_answer_is_a_lost_answer() -> None:
    from unkey_secrets.testing.contract import canary_key

    with serve(_not_utf8(b'{"ARN": "a", "Name": "n", "VersionId": "v1"}')) as server:
        store = SecretsManagerStore(sm_client(server.url), preflight=False)
        error, _ = timed(lambda: store.put(canary_key(api_id=API_ID)), StoreError)
    assert isinstance(error, StoreUnavailableError)
    assert "may have been carried out" in str(error)
    assert error.__context__ is None
