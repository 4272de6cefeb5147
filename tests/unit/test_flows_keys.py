"""The flows hold every key that enters to the one key rule, and settle a bad one from Unkey."""

from __future__ import annotations

from typing import Literal

import pytest

from tests.unit._unkey_fake import FakeUnkey, exception_texts, issued, make_client, ok
from unkey_secrets import CompensatedError, InvalidInputError, capture, provision
from unkey_secrets.testing import InMemoryStore

BAD_KEYS = {
    "trailing-nul": "prod_3ZkFlowsCanary8uVq2Lr7Wm1Nx\x00",
    "50-kb": "k" * 50_000,
    "short": "k3yTooShort",
    "contains-key-id": "prod_key_new123_3ZkFlowsCanary",
}


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
@pytest.mark.parametrize("mode", ["safe", "fast"])
def test_provision_deletes_a_created_key_whose_plaintext_is_not_a_key(
    key: str, mode: Literal["safe", "fast"]
) -> None:
    fake = FakeUnkey(issued(key_id="key_new123", key=key), ok({}))
    store = InMemoryStore()
    with make_client(fake) as client, pytest.raises(CompensatedError) as raised:
        provision(client, store, "api_123", mode=mode)
    assert fake.paths == ["/v2/keys.createKey", "/v2/keys.deleteKey"]
    assert fake.bodies[1] == {"keyId": "key_new123"}
    error = raised.value
    assert error.key_id == "key_new123"
    assert error.actions == ("deleted key key_new123 in Unkey",)
    assert "not an Unkey key" in str(error)
    assert key[:10] not in exception_texts(error)
    assert store.calls == []


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_capture_refuses_the_same_values(key: str) -> None:
    store = InMemoryStore()
    with pytest.raises(InvalidInputError) as raised:
        capture(store, api_id="api_123", key_id="key_new123", key=key)
    assert raised.value.field == "key"
    assert key[:10] not in str(raised.value)
    assert store.calls == []


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_capture_of_an_sdk_shaped_response_refuses_them_too(key: str) -> None:
    store = InMemoryStore()
    response = {"meta": {"requestId": "req_1"}, "data": {"keyId": "key_new123", "key": key}}
    with pytest.raises(InvalidInputError):
        capture(store, response, api_id="api_123")
    assert store.calls == []
