"""RegionFailoverStore's time budget: each region keeps to its own timeout, so the next gets its.

A region that never answers (a loopback server trickling its answer forever) in front of moto:
a batch of several BatchGetSecretValue calls in it must not use up the whole budget
(``read_timeout``, the regions' timeouts summed), or the region that has every key is never
asked.
"""

from __future__ import annotations

from tests._policy_servers import serve, trickle
from unkey_secrets.config import KeyInfo, KeyReader, UnkeyKey
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.client import AwsSession
from unkey_secrets.stores.aws.failover import RegionFailoverStore
from unkey_secrets.testing.contract import canary_key, random_id
from unkey_secrets.testing.moto import MotoServer

#: Seconds each region's client may take per request.
TIMEOUT = 1.0


def test_a_batch_in_a_region_that_hangs_leaves_the_next_region_its_share(
    moto_server: MotoServer, aws_env: dict[str, str]
) -> None:
    api_id = random_id("api")
    live = SecretsManagerStore(moto_server.client("secretsmanager"))
    aliases = [f"svc{n}" for n in range(21)]  # two BatchGetSecretValue calls (20 names each)
    for alias in aliases:
        key = canary_key(api_id=api_id, alias=alias)
        live.put(key)
        live.set_current(key, alias=alias, expected=None)
    session = AwsSession(timeout=TIMEOUT)
    with serve(trickle) as hanging:
        try:
            # One connection: the hanging region's two calls run one after the other, each
            # given the whole per-request timeout unless the region's share is kept.
            out = session.client("eu-central-1", endpoint_url=hanging.url, max_connections=1)
            there = session.client(moto_server.region, endpoint_url=moto_server.url)
            regions = RegionFailoverStore(
                [SecretsManagerStore(out, timeout=TIMEOUT), SecretsManagerStore(there)]
            )
            reader = KeyReader(regions, max_age=60)
            assert reader.read_timeout == 2 * TIMEOUT
            warmed = reader.warm([UnkeyKey(api_id=api_id, alias=alias) for alias in aliases])
        finally:
            hanging.stop.set()
    failed = {r.alias: type(v).__name__ for r, v in warmed.items() if not isinstance(v, KeyInfo)}
    assert failed == {}
    assert {v.region for v in warmed.values() if isinstance(v, KeyInfo)} == {moto_server.region}
