"""The environment is read once per client, when it is built, never per request.

Proxies, ``NO_PROXY``, the CA bundle and the credentials the standard variables name are
resolved when a client is built or put under the transport policy (issue 19). Each test counts
what the calling thread reads from ``os.environ`` over 100 calls after the build: none of the
variables that route or verify a request, nor the credential variables.
"""

from __future__ import annotations

from typing import Any

import hvac
import pytest
import requests

from tests._policy_servers import record_only, serve
from unkey_secrets import StoreUnavailableError, UnkeyClient
from unkey_secrets._redact import CREDENTIAL_VARIABLES
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.transport.requests import FrozenEnvironment, PolicyAdapter, apply_policy

from ._environ_reads import PROXY_AND_CA_VARIABLES, SCAN, counting_reads

CALLS = 100
WATCHED = PROXY_AND_CA_VARIABLES | set(CREDENTIAL_VARIABLES)


@pytest.fixture
def proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Proxy variables as an operator sets them (loopback targets are never proxied)."""
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.test:3128")
    monkeypatch.setenv("NO_PROXY", ".bypassed.test")
    monkeypatch.delenv("no_proxy", raising=False)


# -- requests under hvac (Vault) --------------------------------------------------------------


def test_a_vault_store_over_hvacs_own_session_reads_no_variable_per_request(
    openbao_server: Any, proxy_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hvac's session trusts the environment: requests would read it twice per request."""
    client = openbao_server.client()
    store = VaultStore(client, preflight=False)
    key = canary_key()
    store.put(key)
    assert client.adapter.session.trust_env is False
    with counting_reads(monkeypatch) as reads:
        for _ in range(CALLS):
            store.get(api_id=key.api_id, key_id=key.key_id)
    assert reads.names == {}, reads.names


def test_a_proxy_set_before_the_client_is_built_carries_its_https_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Functional: the proxy is asked to CONNECT to Vault, no variable read per request."""
    with serve(record_only) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "elsewhere.test,.bypassed.test")
        store = VaultStore(
            hvac.Client(url="https://vault.proxied.test:8200", token="hvs.unit-token", timeout=5),
            preflight=False,
        )
        with counting_reads(monkeypatch) as reads:
            for _ in range(3):
                with pytest.raises(StoreUnavailableError):
                    store.get(api_id="api_env1", key_id="key_env1")
        assert [(r.method, r.path) for r in proxy.received] == [
            ("CONNECT", "vault.proxied.test:8200")
        ] * 3
        assert reads.names == {}, reads.names


class _Sent(Exception):
    """Raised in place of sending: what the adapter would have sent with."""


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, str], Any]]:
    """Every request the policy adapter hands to requests' own adapter, never sent."""
    seen: list[tuple[str, dict[str, str], Any]] = []

    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        seen.append((request.url, dict(kwargs["proxies"]), kwargs["verify"]))
        raise requests.ConnectionError("not sent")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    return seen


def test_a_given_session_keeps_requests_rules_from_the_variables_read_at_build(
    proxy_environment: None,
    sent: list[tuple[str, dict[str, str], Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/at-build.pem")
    session = requests.Session()
    apply_policy(session)
    assert session.trust_env is False
    # Changed after the build: not seen by this session (a session built later sees them).
    monkeypatch.setenv("HTTPS_PROXY", "http://later.corp.test:3128")
    monkeypatch.setenv("NO_PROXY", "vault.proxied.test")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/later.pem")
    with counting_reads(monkeypatch) as reads:
        for url in (
            "https://vault.proxied.test:8200/v1/x",
            "https://vault.bypassed.test/v1/x",  # NO_PROXY=.bypassed.test
            "http://127.0.0.1:1/v1/x",  # plain http: never a proxy
        ):
            for _ in range(CALLS // 3):
                with pytest.raises(requests.ConnectionError):
                    session.get(url, verify=True)
    assert reads.names == {}, reads.names
    routes = {url: (proxies.get("https"), verify) for url, proxies, verify in sent}
    assert routes == {
        "https://vault.proxied.test:8200/v1/x": (
            "http://proxy.corp.test:3128",
            "/etc/ssl/at-build.pem",
        ),
        "https://vault.bypassed.test/v1/x": (None, "/etc/ssl/at-build.pem"),
        "http://127.0.0.1:1/v1/x": (None, True),
    }
    assert all(proxies == {} for url, proxies, _ in sent if url.startswith("http:"))


def test_a_proxy_the_session_names_wins_over_the_variables_as_hvac_passes_it(
    proxy_environment: None,
    sent: list[tuple[str, dict[str, str], Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """hvac sends a session's proxies with each request: they win over HTTPS_PROXY."""
    session = requests.Session()
    session.proxies = {"https": "http://own.corp.test:3128"}
    client = hvac.Client(url="https://vault.proxied.test", token="hvs.t", session=session)
    store = VaultStore(client, preflight=False)
    with counting_reads(monkeypatch) as reads:
        for _ in range(CALLS):
            with pytest.raises(StoreUnavailableError):
                store.get(api_id="api_env1", key_id="key_env1")
    assert {proxies["https"] for _, proxies, _ in sent} == {"http://own.corp.test:3128"}
    assert reads.of(WATCHED) == {}, reads.of(WATCHED)


def test_the_frozen_environment_survives_a_new_pool_size_and_pickling(
    proxy_environment: None,
) -> None:
    import pickle

    session = requests.Session()
    apply_policy(session)
    frozen = session.get_adapter("https://x/").environment  # type: ignore[attr-defined]
    assert isinstance(frozen, FrozenEnvironment)
    apply_policy(session, pool_maxsize=32)  # as VaultStore does with max_connections
    adapter = session.get_adapter("https://x/")
    assert isinstance(adapter, PolicyAdapter)
    assert adapter.pool_maxsize == 32
    assert adapter.environment is frozen
    copy = pickle.loads(pickle.dumps(adapter))  # noqa: S301 (our own bytes)
    assert copy.environment.proxies.proxy_for("https://vault.proxied.test") == (
        "http://proxy.corp.test:3128"
    )
    assert copy.environment.proxies.proxy_for("https://a.bypassed.test") is None
    assert "proxy.corp.test" not in repr(frozen), "a proxy URL may carry a password"


# -- httpx (Unkey) and botocore (Secrets Manager) ---------------------------------------------


def test_the_unkey_client_reads_no_variable_per_call(
    unkey_emulator: Any, proxy_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with UnkeyClient(unkey_emulator.root_key, base_url=unkey_emulator.url) as client:
        api_id = client.create_api("env-reads")
        with counting_reads(monkeypatch) as reads:
            for _ in range(CALLS):
                client.get_api(api_id)
    assert reads.names == {}, reads.names


def test_a_secrets_manager_store_reads_no_proxy_ca_or_credential_variable_per_call(
    moto_server: Any, proxy_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore still reads its own per-request switches (the Lambda trace id): not these."""
    store = SecretsManagerStore(moto_server.client("secretsmanager"), preflight=False)
    key = canary_key()
    store.put(key)
    with counting_reads(monkeypatch) as reads:
        for _ in range(CALLS):
            store.get(api_id=key.api_id, key_id=key.key_id)
    assert reads.of(WATCHED) == {}, reads.of(WATCHED)
    assert SCAN not in reads.names
