"""The Vault store's clients (requests under hvac) held to the transport policy, on loopback.

Each server misbehaves as a hostile or broken Vault would: a trickled answer, an endless body, a
gzip bomb, a redirect replaying the token and the key elsewhere, a plain-http remote address.
"""

from __future__ import annotations

import pickle
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import hvac
import pytest
import requests
from pydantic import SecretStr
from urllib3.util import Timeout

from tests._policy_servers import (
    TRICKLE_LIMIT,
    bomb,
    declared_100_mb,
    endless_chunks,
    gzip_bomb,
    record_only,
    redirect_to,
    serve,
    trickle,
)
from unkey_secrets import (
    ConfigurationError,
    IssuedKey,
    Secret,
    StoreError,
    StoreUnavailableError,
)
from unkey_secrets.config import KeyReader
from unkey_secrets.settings import VaultSettings
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.stores.vault.auth import build_client
from unkey_secrets.transport import DEFAULT_MAX_ANSWER_BYTES, TransportBreachError
from unkey_secrets.transport.requests import (
    PolicyAdapter,
    RedirectRefusedError,
    RequestsAnswerTooLargeError,
    RequestsDeadlineExceededError,
    apply_policy,
    build_session,
    deadline_seconds,
)

API_ID = "api_transport1"
KEY_ID = "key_transport1"
PLAINTEXT = "sk_transport_" + "Q" * 24


def store_at(url: str, *, timeout: int = 1) -> VaultStore:
    """A store over an hvac client built the way the README shows, given to the store."""
    return VaultStore(
        hvac.Client(url=url, token="hvs.unit-token", timeout=timeout), preflight=False
    )


def issued() -> IssuedKey:
    return IssuedKey(api_id=API_ID, key_id=KEY_ID, secret=Secret(PLAINTEXT))


def timed(call: Callable[[], Any]) -> tuple[StoreError, float]:
    """The StoreError ``call()`` raises, and the seconds it took."""
    started = time.monotonic()
    with pytest.raises(StoreError) as raised:
        call()
    return raised.value, time.monotonic() - started


# -- the deadline -----------------------------------------------------------------------------


def test_a_trickled_answer_ends_at_the_clients_timeout_not_per_read() -> None:
    # A byte every 0.1 s from the status line on: a per-read timeout of 1 s never trips.
    with serve(trickle) as server:
        error, elapsed = timed(lambda: store_at(server.url).get(api_id=API_ID, key_id=KEY_ID))
    assert isinstance(error, StoreUnavailableError)
    assert "1 s deadline" in str(error)
    assert "the answer is lost" in str(error)
    # A read changed nothing: its message does not say a write may have been carried out.
    assert "may have been carried out" not in str(error)
    assert elapsed < 1 + 3 < TRICKLE_LIMIT


def test_a_trickled_write_ends_at_the_deadline_of_the_settings_timeout() -> None:
    with serve(trickle) as server:
        settings = VaultSettings(addr=server.url, token=SecretStr("hvs.unit-token"), timeout=1)
        store = VaultStore(settings=settings, preflight=False)
        error, elapsed = timed(lambda: store.put(issued()))
    assert isinstance(error, StoreUnavailableError)
    assert "may have been carried out" in str(error)
    assert PLAINTEXT not in str(error)
    assert PLAINTEXT not in repr(error.args)
    assert elapsed < 1 + 3


# -- the byte budget --------------------------------------------------------------------------


def test_an_endless_body_ends_at_the_byte_budget() -> None:
    with serve(endless_chunks) as server:
        error, elapsed = timed(
            lambda: store_at(server.url, timeout=5).get(api_id=API_ID, key_id=KEY_ID)
        )
    assert isinstance(error, StoreUnavailableError)
    assert f"{DEFAULT_MAX_ANSWER_BYTES} byte budget" in str(error)
    assert elapsed < 5


def test_a_gzip_bomb_is_counted_after_decompression_in_bounded_memory() -> None:
    payload = gzip_bomb()
    assert len(payload) < 2 * 1024 * 1024
    with serve(bomb(payload)) as server:
        store = store_at(server.url, timeout=20)
        tracemalloc.start()
        try:
            error, elapsed = timed(lambda: store.get(api_id=API_ID, key_id=KEY_ID))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert isinstance(error, StoreUnavailableError)
    assert "byte budget" in str(error)
    # The budget (16 MiB) plus a chunk, not the gigabyte the bomb inflates to.
    assert peak < 64 * 1024 * 1024
    assert elapsed < 20


def test_a_declared_100_mb_body_is_refused_before_it_is_read() -> None:
    with serve(declared_100_mb) as server:
        error, elapsed = timed(
            lambda: store_at(server.url, timeout=5).get(api_id=API_ID, key_id=KEY_ID)
        )
    assert isinstance(error, StoreUnavailableError)
    assert "byte budget" in str(error)
    assert elapsed < 3


# -- redirects --------------------------------------------------------------------------------


def test_a_redirect_replays_neither_the_token_nor_the_key() -> None:
    with serve(record_only) as elsewhere, serve(redirect_to(elsewhere.url)) as vault:
        # hvac.Client follows redirects unless told otherwise: the store turns that off.
        error, _ = timed(lambda: store_at(vault.url).put(issued()))
        assert [r.method for r in vault.received] == ["POST"], "the write reached the first"
        assert elsewhere.received == [], "nothing reaches the redirect's target"
    assert isinstance(error, StoreError)
    assert "redirect (307)" in str(error)
    assert "VAULT_ADDR" in str(error)


def test_a_redirect_is_refused_even_when_a_caller_asks_requests_to_follow() -> None:
    session = requests.Session()
    apply_policy(session)
    with serve(record_only) as elsewhere, serve(redirect_to(elsewhere.url)) as vault:
        with pytest.raises(RedirectRefusedError) as raised:
            session.post(vault.url + "/v1/secret/data/x", json={"k": "v"}, allow_redirects=True)
        assert elsewhere.received == []
    assert raised.value.status == 307


# -- addresses and proxies --------------------------------------------------------------------


def test_a_given_client_for_a_plain_http_remote_address_is_refused_before_any_request() -> None:
    with pytest.raises(ConfigurationError, match="https://, or http:// to a loopback host"):
        VaultStore(hvac.Client(url="http://vault.internal.example:8200", token="hvs.t"))


def test_the_readers_given_client_is_held_to_the_same_rule() -> None:
    settings = VaultSettings(addr="https://vault.internal.example", token=SecretStr("hvs.t"))
    client = hvac.Client(url="http://vault.internal.example:8200", token="hvs.t")
    with pytest.raises(ConfigurationError, match="loopback"):
        KeyReader.vault(settings, client=client)


def test_a_proxy_never_carries_plain_http_even_for_a_given_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with serve(record_only) as proxy, serve(trickle) as vault:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        store = store_at(vault.url, timeout=1)
        with pytest.raises(StoreUnavailableError):
            store.get(api_id=API_ID, key_id=KEY_ID)
        assert proxy.received == []
        assert [r.method for r in vault.received] == ["GET"]


def test_our_sessions_resolve_proxies_and_the_ca_bundle_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "bypassed.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/first.pem")
    session = build_session("https://vault.example:8200")
    assert session.trust_env is False
    assert session.proxies == {"https": "http://proxy.example:3128"}
    assert session.verify == "/etc/ssl/first.pem"
    assert build_session("https://bypassed.example").proxies == {}
    assert build_session("http://127.0.0.1:8200").proxies == {}
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/second.pem")
    assert session.verify == "/etc/ssl/first.pem", "read once, when the session was built"
    settings = VaultSettings(
        addr="https://vault.example:8200", token=SecretStr("t"), cacert="/ca/vault.pem"
    )
    client = build_client(settings)
    assert client.adapter.session.verify == "/ca/vault.pem", "VAULT_CACERT wins"
    assert client.adapter.session.proxies == {"https": "http://proxy.example:3128"}
    assert isinstance(client.adapter.session.get_adapter(settings.addr or ""), PolicyAdapter)


def test_the_policy_adapter_replaces_every_adapter_of_a_given_session() -> None:
    session = requests.Session()
    session.mount("https://vault.example", requests.adapters.HTTPAdapter())
    client = hvac.Client(url="https://vault.example", token="t", session=session)
    VaultStore(client, max_connections=4)
    for url in ("https://vault.example/v1/x", "http://127.0.0.1/", "https://other/"):
        adapter = session.get_adapter(url)
        assert isinstance(adapter, PolicyAdapter)
        assert adapter.pool_maxsize == 4
    assert client.adapter.allow_redirects is False


# -- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [
        (None, 30.0),
        (10, 10.0),
        ((2, 5), 7.0),
        ((2, None), 32.0),
        (Timeout(connect=1, read=3), 4.0),
        (Timeout(total=9, connect=1, read=3), 9.0),
    ],
)
def test_a_requests_timeout_gives_the_deadline(timeout: Any, seconds: float) -> None:
    assert deadline_seconds(timeout) == seconds


def test_breaches_are_requests_errors_and_lost_answers_and_pickle() -> None:
    for error in (RequestsDeadlineExceededError(1.5), RequestsAnswerTooLargeError(10)):
        assert isinstance(error, requests.exceptions.RequestException)
        assert isinstance(error, TransportBreachError)
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
        assert type(copy) is type(error)
        assert str(copy) == str(error)
    assert isinstance(RequestsDeadlineExceededError(1), requests.exceptions.Timeout)
    refused = pickle.loads(pickle.dumps(RedirectRefusedError(308)))  # noqa: S301 (our own bytes)
    assert refused.status == 308
