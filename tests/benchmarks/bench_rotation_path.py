"""A rotation by alias against a hand-written one, interleaved, and its critical path measured.

The hand-written job is the floor the issue names: ``keys.rerollKey`` (httpx to Unkey), the new
key written create-only at its own location and the alias written to hold it, with the store's
own SDK (hvac: the key's data with ``cas=0``, then the alias's data; boto3: ``CreateSecret`` of
the key, then ``PutSecretValue`` of the alias). It knows the key to reroll already (it kept it
from its last round), so it is 3 round trips, one after the other.

Ours is ``rotate(unkey, store, api_id, alias="svc")`` on a warm store object, on the same
servers (the real OpenBao dev server, moto server, the Unkey emulator on loopback). Each round
runs both, alternating who goes first, so drift hits both; printed are the medians, their
ratio beside the goal, and the critical path.

**The critical path** is measured, not counted: every round trip a rotation makes (each Unkey
request at the httpx client, each Vault request at hvac's adapter, each Secrets Manager call
at the boto3 client) is timed from its start to its end, and the longest chain of calls each
starting after the one before it ended is the path's length (two calls that overlap in time
ran concurrently). Printed is its median over the rounds, and the calls made.

Twice: on loopback as it is (answers in well under a millisecond: the clients' CPU dominates),
then with ``BENCH_ROTATION_RTT_MS`` (default 10; 0 skips it) added to every round trip of both
jobs, as a network's latency would be (the critical path dominates). ``BENCH_ROTATION_ROUNDS``
sets the rounds (default 60).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore, version_id_for
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

ROUNDS = int(os.environ.get("BENCH_ROTATION_ROUNDS", "60"))
#: A network's round trip, added to every call of both jobs (loopback answers in well under a
#: millisecond, so there the clients' CPU dominates; over a network the critical path does).
RTT_MS = float(os.environ.get("BENCH_ROTATION_RTT_MS", "10"))
GRACE = dt.timedelta(hours=1)
#: The issue's goals: within 2x of the hand-written job, at most 5 sequential round trips.
GOAL_RATIO = 2.0
GOAL_PATH = 5


class Timeline:
    """Every round trip's start and end (monotonic seconds), from whichever thread made it."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, str]] = []
        self._lock = threading.Lock()
        #: Seconds added to each round trip (a network's latency; 0 on loopback as it is).
        self.latency = 0.0

    @contextlib.contextmanager
    def trip(self, label: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            if self.latency:
                time.sleep(self.latency)
            yield
        finally:
            ended = time.perf_counter()
            with self._lock:
                self.spans.append((started, ended, label))

    def take(self) -> list[tuple[float, float, str]]:
        with self._lock:
            spans, self.spans = self.spans, []
        return spans

    # -- where the round trips are timed ------------------------------------------------------

    def watch_unkey(self, unkey: UnkeyClient) -> None:
        http = unkey._wire.http
        inner = http.stream

        @contextlib.contextmanager
        def stream(method: str, url: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            label = "unkey " + str(url).rsplit("/", 1)[-1]
            with self.trip(label), inner(method, url, *args, **kwargs) as response:
                yield response

        http.stream = stream  # type: ignore[method-assign]

    def watch_hvac(self, client: Any) -> None:
        adapter = client.adapter
        inner = adapter.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            with self.trip(f"vault {method} {url.split('?', 1)[0]}"):
                return inner(method, url, *args, **kwargs)

        adapter.request = request

    def watch_boto(self, client: Any) -> None:
        inner = client._make_api_call

        def call(operation: str, params: Any) -> Any:
            with self.trip(f"aws {operation}"):
                return inner(operation, params)

        client._make_api_call = call


def critical_path(spans: list[tuple[float, float, str]]) -> int:
    """The longest chain of round trips each starting after the previous one ended."""
    ordered = sorted(spans, key=lambda s: s[1])
    longest: list[int] = []
    for index, (start, _end, _label) in enumerate(ordered):
        before = [longest[j] for j in range(index) if ordered[j][1] <= start]
        longest.append(1 + max(before, default=0))
    return max(longest, default=0)


def _hand_written(
    kind: str,
    http: httpx.Client,
    server: EmulatorServer,
    client: Any,
    api_id: str,
    first: str,
    line: Timeline,
) -> Callable[[], None]:
    """One rotation by hand: reroll the key it holds, write the new key, point the alias at it."""
    held = [first]
    headers = {"Authorization": f"Bearer {server.root_key}"}
    alias = f"unkey/{api_id}/by-name/by-hand"
    grace_ms = int(GRACE.total_seconds() * 1000)

    def reroll() -> tuple[str, str]:
        with line.trip("unkey keys.rerollKey"):
            answer = http.post(
                f"{server.url}/v2/keys.rerollKey",
                headers=headers,
                json={"keyId": held[0], "expiration": grace_ms},
            )
        answer.raise_for_status()
        data = answer.json()["data"]
        held[0] = data["keyId"]
        return data["keyId"], data["key"]

    def value(key_id: str, key: str) -> dict[str, Any]:
        return {"format": "unkey-secrets/key/v1", "key_id": key_id, "api_id": api_id, "key": key}

    if kind == "vault":

        def vault_job() -> None:
            key_id, key = reroll()
            client.secrets.kv.v2.create_or_update_secret(
                path=f"unkey/{api_id}/{key_id}", secret=value(key_id, key), cas=0,
                mount_point="secret",
            )  # fmt: skip
            client.secrets.kv.v2.create_or_update_secret(
                path=alias, secret=value(key_id, key), mount_point="secret"
            )

        return vault_job

    client.create_secret(Name=alias, SecretString=json.dumps({"format": "bootstrap"}))

    def aws_job() -> None:
        key_id, key = reroll()
        client.create_secret(
            Name=f"unkey/{api_id}/{key_id}",
            ClientRequestToken=version_id_for(key_id),
            SecretString=json.dumps(value(key_id, key)),
            Tags=[
                {"Key": "managed-by", "Value": "unkey-secrets"},
                {"Key": "unkey-kind", "Value": "key"},
                {"Key": "unkey-key-id", "Value": key_id},
                {"Key": "unkey-api-id", "Value": api_id},
            ],
        )
        client.put_secret_value(
            SecretId=alias,
            ClientRequestToken=version_id_for(key_id),
            SecretString=json.dumps(value(key_id, key)),
        )

    return aws_job


def _timed(action: Callable[[], None], samples: list[float]) -> None:
    started = time.perf_counter()
    action()
    samples.append((time.perf_counter() - started) * 1000)


def _bench(
    kind: str,
    store: SecretStore,
    hand_client: Any,
    unkey: UnkeyClient,
    http: httpx.Client,
    server: EmulatorServer,
) -> None:
    ours_line, hand_line = Timeline(), Timeline()
    lines = (ours_line, hand_line)
    if isinstance(store, VaultStore):
        ours_line.watch_hvac(store.client)
        hand_line.watch_hvac(hand_client)
    else:
        ours_line.watch_boto(store.client)
        hand_line.watch_boto(hand_client)
    ours_line.watch_unkey(unkey)
    api_id = server.emulator.create_api(f"rotation-path-{kind}-{uuid.uuid4().hex[:6]}")
    provision(unkey, store, api_id, alias="svc", mode="fast")
    first = unkey.create_key(api_id).key_id

    def ours() -> None:
        rotate(unkey, store, api_id, alias="svc", grace_period=GRACE)

    hand = _hand_written(kind, http, server, hand_client, api_id, first, hand_line)
    for _ in range(5):  # warm both: connection pools, caches, the preflight
        ours()
        hand()
    for latency in (0.0, RTT_MS / 1000) if RTT_MS else (0.0,):
        for line in lines:
            line.latency = latency
            line.take()
        _rounds(kind, ours, hand, ours_line, hand_line, latency)


def _rounds(
    kind: str,
    ours: Callable[[], None],
    hand: Callable[[], None],
    ours_line: Timeline,
    hand_line: Timeline,
    latency: float,
) -> None:
    mine: list[float] = []
    theirs: list[float] = []
    paths: list[int] = []
    hand_paths: list[int] = []
    calls: list[int] = []
    hand_calls: list[int] = []
    for index in range(ROUNDS):
        # Alternate who goes first, so neither always meets a cold moment.
        order = [(ours, mine, ours_line), (hand, theirs, hand_line)]
        for action, samples, line in order if index % 2 else order[::-1]:
            line.take()
            _timed(action, samples)
            spans = line.take()
            if line is ours_line:
                paths.append(critical_path(spans))
                calls.append(len(spans))
            else:
                hand_paths.append(critical_path(spans))
                hand_calls.append(len(spans))
    ours_ms, hand_ms = statistics.median(mine), statistics.median(theirs)
    ratio = ours_ms / hand_ms
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    path = statistics.median(paths)
    where = "loopback" if not latency else f"+{latency * 1000:g} ms a round trip"
    print(
        f"{kind:>5}: rotate by alias {ours_ms:6.2f} ms | by hand {hand_ms:6.2f} ms | "
        f"ratio {ratio:4.2f}x (goal <= {GOAL_RATIO:.1f}x: {verdict})"
        f"  [{where}; median of {ROUNDS}, interleaved]",
        flush=True,
    )
    print(
        f"{'':>5}  critical path {path:g} round trips (goal <= {GOAL_PATH}: "
        f"{'met' if path <= GOAL_PATH else 'MISSED'}; min {min(paths)}, max {max(paths)}) of "
        f"{statistics.median(calls):g} calls | by hand {statistics.median(hand_paths):g} of "
        f"{statistics.median(hand_calls):g}",
        flush=True,
    )


def main() -> int:
    """Print the figures; always succeeds (a benchmark reports, it does not judge)."""
    with (
        OpenBaoServer() as bao,
        MotoServer() as moto,
        EmulatorServer() as server,
        UnkeyClient(server.root_key, base_url=server.url) as unkey,
        httpx.Client() as http,
    ):
        _bench("vault", VaultStore(bao.client()), bao.client(), unkey, http, server)
        aws = SecretsManagerStore(moto.client("secretsmanager"))
        _bench("aws", aws, moto.client("secretsmanager"), unkey, http, server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
