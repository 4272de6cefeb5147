"""Vault batch reads on a real OpenBao: KV v2 has no batch read, so one read per ref, at once.

The reads run on worker threads over the client's one HTTP session, never more at once than
its connection pool holds: a connection beyond the pool would be opened, used once and thrown
away with urllib3's "Connection pool is full" warning.
"""

from __future__ import annotations

import logging

import pytest

from unkey_secrets import KeyRef, SecretNotFoundError, StoredKey
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.contract import canary_key, random_id
from unkey_secrets.testing.openbao import OpenBaoServer

FULL = "Connection pool is full"


@pytest.mark.parametrize(("max_connections", "pool"), [(None, 10), (4, 4)])
def test_many_reads_at_once_stay_within_the_connection_pool(
    openbao_server: OpenBaoServer,
    caplog: pytest.LogCaptureFixture,
    max_connections: int | None,
    pool: int,
) -> None:
    store = VaultStore(openbao_server.client(), max_connections=max_connections)
    assert store._max_parallel_reads() == pool
    api = random_id("api")
    keys = [canary_key(api_id=api) for _ in range(8)]
    for key in keys:
        store.put(key)
    refs = [KeyRef(api_id=api, key_id=k.key_id) for k in keys] * 8
    refs.append(KeyRef(api_id=api, key_id=random_id("key")))
    with caplog.at_level(logging.WARNING, logger="urllib3"):
        results = store.get_many(refs, concurrency=64)
    assert [r.key_id for r in results[:-1] if isinstance(r, StoredKey)] == [
        k.key_id for k in keys
    ] * 8
    assert isinstance(results[-1], SecretNotFoundError)
    assert not [r for r in caplog.records if FULL in r.getMessage()]
