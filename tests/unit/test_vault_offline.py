"""The Vault store without a server: requests answered in-process by a fake transport."""

from __future__ import annotations

import json
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any

import hvac
import pytest
import requests
from requests.adapters import BaseAdapter

from unkey_secrets import (
    ConfigurationError,
    IssuedKey,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.stores.vault.settings import VaultSettings
from unkey_secrets.testing.contract import canary_key

ADDR = "https://127.0.0.1:8200"
Answer = Callable[[requests.PreparedRequest], "tuple[int, Any] | BaseException"]


class FakeVault(BaseAdapter):
    """A requests transport that records each request and answers it from ``answer``."""

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer
        self.sent: list[requests.PreparedRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        result = self.answer(request)
        if isinstance(result, BaseException):
            raise result
        status, body = result
        response = requests.Response()
        response.status_code = status
        response._content = b"" if body is None else json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def happy(request: requests.PreparedRequest) -> tuple[int, Any]:
    """A Vault where nothing exists yet and every write succeeds."""
    if request.method == "GET":
        return 404, {"errors": []}
    if "/metadata/" in (request.url or ""):
        return 204, None
    return 200, {"data": {"version": 1}}


def attach(store: VaultStore, answer: Answer) -> FakeVault:
    fake = FakeVault(answer)
    store.client.adapter.session.mount("https://", fake)
    return fake


def make_store(answer: Answer, **options: Any) -> tuple[VaultStore, FakeVault]:
    store = VaultStore(hvac.Client(url=ADDR, token="hvs.unit-token"), **options)
    return store, attach(store, answer)


def assert_clean(error: BaseException, key: IssuedKey) -> None:
    plaintext = key.secret.reveal()
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert plaintext not in rendered
    assert plaintext not in repr(error.args)
    assert error.__cause__ is None
    assert error.__context__ is None


# -- imports --------------------------------------------------------------------------------


def test_importing_the_store_does_not_import_hvac() -> None:
    code = (
        "import sys, unkey_secrets.stores.vault, unkey_secrets.stores.vault.settings; "
        "assert 'hvac' not in sys.modules, 'hvac imported'; "
        "assert 'requests' not in sys.modules, 'requests imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_hvac_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hvac", None)
    with pytest.raises(ConfigurationError, match=r"unkey-secrets\[vault\]"):
        VaultStore(None)


# -- what is sent ---------------------------------------------------------------------------


def test_put_of_a_new_key_is_a_cas_0_write_then_the_marker() -> None:
    store, fake = make_store(happy)
    key = canary_key()
    stored = store.put(key)
    assert stored.created
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    calls = [(r.method, (r.url or "").removeprefix(ADDR)) for r in fake.sent]
    assert calls == [
        ("POST", f"/v1/secret/data/{path}"),
        ("POST", f"/v1/secret/metadata/{path}"),
    ]
    write, confirm = (json.loads(r.body or b"{}") for r in fake.sent)
    # Only custom_metadata: max_versions and delete_version_after are never sent (or reset).
    assert set(confirm) == {"custom_metadata"}
    assert confirm["custom_metadata"]["version"] == "1"
    assert confirm["custom_metadata"]["managed-by"] == "unkey-secrets"
    assert confirm["custom_metadata"]["key_id"] == key.key_id
    assert write["options"] == {"cas": 0}
    assert write["data"]["key"] == key.secret.reveal()
    assert key.secret.reveal() not in json.dumps(confirm)


def test_the_namespace_header_is_sent_when_configured() -> None:
    store = VaultStore(
        settings=VaultSettings(addr=ADDR, token="hvs.unit-token", namespace="team-a/unkey")
    )
    fake = attach(store, happy)
    store.put(canary_key())
    assert fake.sent
    for request in fake.sent:
        assert request.headers["X-Vault-Namespace"] == "team-a/unkey"
        assert request.headers["X-Vault-Token"] == "hvs.unit-token"


def test_no_namespace_header_by_default() -> None:
    store = VaultStore(settings=VaultSettings(addr=ADDR, token="hvs.unit-token"))
    fake = attach(store, happy)
    store.put(canary_key())
    assert all("X-Vault-Namespace" not in r.headers for r in fake.sent)


def test_kv_v1_writes_are_refused_before_any_request() -> None:
    store, fake = make_store(happy, kv_version=1)
    key = canary_key()
    with pytest.raises(ConfigurationError):
        store.put(key)
    with pytest.raises(ConfigurationError):
        store.set_current(key, alias="svc")
    assert fake.sent == []


def test_a_redirect_is_not_followed_with_the_plaintext() -> None:
    def redirect(request: requests.PreparedRequest) -> tuple[int, Any]:
        if request.method == "GET":
            return 404, {"errors": []}
        if "/data/" in (request.url or ""):
            return 307, {"errors": []}
        return 204, None

    store, fake = make_store(redirect)
    store.client.adapter.allow_redirects = False
    key = canary_key()
    with pytest.raises(StoreError) as raised:
        store.put(key)
    assert_clean(raised.value, key)
    assert len(fake.sent) == 1


CAS_MISMATCH = (400, {"errors": ["check-and-set parameter did not match the current version"]})


def test_put_owned_elsewhere_writes_nothing() -> None:
    def foreign(request: requests.PreparedRequest) -> tuple[int, Any]:
        if request.method == "POST":
            return CAS_MISMATCH
        meta = {"current_version": 1, "custom_metadata": {"owner": "terraform"}, "versions": {}}
        return 200, {"data": meta}

    store, fake = make_store(foreign)
    with pytest.raises(StoreError):
        store.put(canary_key())
    # The refused cas=0 write, then the metadata read; nothing else.
    assert [r.method for r in fake.sent] == ["POST", "GET"]


def test_put_of_another_key_id_at_the_path_is_a_conflict() -> None:
    def marked(request: requests.PreparedRequest) -> tuple[int, Any]:
        if request.method == "POST":
            return CAS_MISMATCH
        custom = {"managed-by": "unkey-secrets", "kind": "key", "key_id": "key_other"}
        return 200, {"data": {"current_version": 1, "custom_metadata": custom, "versions": {}}}

    store, _ = make_store(marked)
    with pytest.raises(StoreConflictError):
        store.put(canary_key())


# -- error mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, StoreError),
        (401, StoreAccessError),
        (403, StoreAccessError),
        (405, StoreError),
        (429, StoreUnavailableError),
        (500, StoreUnavailableError),
        (502, StoreUnavailableError),
        (503, StoreUnavailableError),
    ],
)
def test_status_codes_map_to_the_error_tree_without_vault_text(
    status: int, expected: type[StoreError]
) -> None:
    key = canary_key()
    plaintext = key.secret.reveal()

    def failing(request: requests.PreparedRequest) -> tuple[int, Any]:
        if request.method == "GET":
            return 404, {"errors": []}
        # A server that (unlike Vault) echoes the request: nothing of it may reach our error.
        return status, {"errors": [f"rejected {plaintext}"]}

    store, _ = make_store(failing)
    with pytest.raises(expected) as raised:
        store.put(key)
    assert type(raised.value) is expected
    # hvac keeps no status for codes it has no class for: those are named by class.
    assert (str(status) if status != 405 else "UnexpectedError") in str(raised.value)
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    assert raised.value.location == f"secret/{path}"
    assert_clean(raised.value, key)


def test_a_404_with_an_explanation_is_not_a_missing_secret() -> None:
    store, _ = make_store(lambda r: (404, {"errors": ["no handler for route 'nope/data/x'"]}))
    with pytest.raises(StoreError) as raised:
        store.get(api_id="api_123", key_id="key_123")
    assert not isinstance(raised.value, SecretNotFoundError)
    assert "no handler" not in str(raised.value)


def test_a_plain_404_is_not_found() -> None:
    store, _ = make_store(lambda r: (404, {"errors": []}))
    with pytest.raises(SecretNotFoundError):
        store.get(api_id="api_123", key_id="key_123")
    with pytest.raises(SecretNotFoundError):
        store.get_current(api_id="api_123", alias="svc")


@pytest.mark.parametrize(
    ("failure", "expected", "words"),
    [
        (requests.exceptions.ConnectionError, StoreUnavailableError, "could not reach"),
        (requests.exceptions.ConnectTimeout, StoreUnavailableError, "could not reach"),
        (requests.exceptions.ReadTimeout, StoreUnavailableError, "may have been carried out"),
        (requests.exceptions.SSLError, StoreError, "TLS"),
    ],
)
def test_transport_failures_map_without_their_text(
    failure: type[requests.exceptions.RequestException], expected: type[StoreError], words: str
) -> None:
    key = canary_key()

    def broken(request: requests.PreparedRequest) -> tuple[int, Any] | BaseException:
        if request.method == "GET":
            return 404, {"errors": []}
        if "/data/" in (request.url or ""):
            return failure(f"failed sending {key.secret.reveal()}", request=request)
        return 204, None

    store, _ = make_store(broken)
    with pytest.raises(expected) as raised:
        store.put(key)
    assert type(raised.value) is expected
    assert words in str(raised.value)
    assert_clean(raised.value, key)


def test_a_cas_mismatch_twice_is_a_conflict() -> None:
    custom = {"managed-by": "unkey-secrets", "kind": "key"}

    def busy(request: requests.PreparedRequest) -> tuple[int, Any]:
        if request.method == "GET":
            # Always data we marked but did not vouch for: a rewrite is tried and loses again.
            meta = {"current_version": 1, "custom_metadata": custom, "versions": {}}
            return 200, {"data": meta}
        if "/data/" in (request.url or ""):
            return 400, {"errors": ["check-and-set parameter did not match the current version"]}
        return 204, None

    store, fake = make_store(busy)
    with pytest.raises(StoreConflictError, match="kept changing"):
        store.put(canary_key())
    # The fast cas=0 write, then the careful rewrite twice.
    assert sum("/data/" in (r.url or "") for r in fake.sent) == 3
