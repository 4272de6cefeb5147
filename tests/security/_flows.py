"""The flows of the canary matrix: every way a plaintext passes through unkey-secrets.

Each flow uses the real servers on loopback (OpenBao, moto, the Unkey emulator) through the
session fixtures of ``unkey_secrets.testing.pytest_plugin``, except where a broken answer must
be forged (``httpx.MockTransport``). A flow notes its canaries on the context: the keys the
emulator issues are noted by a tapped transport, the ones a flow makes up by ``ctx.canary()``.
"""

from __future__ import annotations

import logging
import secrets
import socket
from typing import Any

import httpx

from unkey_secrets import RetryPolicy, SecretStore, UnkeyClient, capture, provision, rotate

from ._canary import FlowContext, flow

NO_RETRY = RetryPolicy(attempts=1)


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def unkey(ctx: FlowContext, transport: httpx.BaseTransport | None = None) -> UnkeyClient:
    server = ctx.fixture("unkey_emulator_server")
    return UnkeyClient(
        server.root_key,
        base_url=server.url,
        transport=transport or ctx.tap(),
        sleep=lambda _: None,
    )


def api(ctx: FlowContext) -> str:
    return str(ctx.fixture("unkey_emulator_server").emulator.create_api("canary"))


def store(ctx: FlowContext, kind: str, *, down: bool = False) -> SecretStore:
    if kind == "vault":
        import hvac

        from unkey_secrets.stores.vault import VaultStore

        if down:
            return VaultStore(hvac.Client(url=dead_url(), token="s.dead", timeout=2))
        return VaultStore(ctx.fixture("openbao_server").client())
    import boto3
    from botocore.config import Config

    from unkey_secrets.stores.aws import SecretsManagerStore

    if down:
        client = boto3.client(
            "secretsmanager",
            endpoint_url=dead_url(),
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
        )
        return SecretsManagerStore(client)
    return SecretsManagerStore(ctx.fixture("moto_server").client("secretsmanager"))


def unkey_answer(key_id: str, key: str) -> dict[str, Any]:
    return {"meta": {"requestId": "req_canary"}, "data": {"keyId": key_id, "key": key}}


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


for _kind in ("vault", "aws"):

    @flow(f"provision-{_kind}")
    def _provision(ctx: FlowContext, kind: str = _kind) -> object:
        with unkey(ctx) as client:
            return provision(client, store(ctx, kind), api(ctx), alias="svc", prefix="canary")

    @flow(f"rotate-{_kind}")
    def _rotate(ctx: FlowContext, kind: str = _kind) -> object:
        target, api_id = store(ctx, kind), api(ctx)
        with unkey(ctx) as client:
            first = provision(client, target, api_id, alias="svc", prefix="canary")
            return rotate(client, target, api_id, first.key_id, alias="svc")

    @flow(f"capture-{_kind}")
    def _capture(ctx: FlowContext, kind: str = _kind) -> object:
        answer = unkey_answer(new_key_id(), ctx.canary())
        return capture(store(ctx, kind), answer, api_id=api(ctx), alias="svc")

    @flow(f"read-{_kind}")
    def _read(ctx: FlowContext, kind: str = _kind) -> object:
        target, api_id = store(ctx, kind), api(ctx)
        with unkey(ctx) as client:
            done = provision(client, target, api_id, alias="svc", prefix="canary")
        stored = target.get(api_id=api_id, key_id=done.key_id)
        current = target.get_current(api_id=api_id, name="svc")
        ctx.keep(stored, current)
        return stored

    @flow(f"provision-{_kind}-store-down")
    def _provision_down(ctx: FlowContext, kind: str = _kind) -> object:
        with unkey(ctx) as client:
            return provision(
                client, store(ctx, kind, down=True), api(ctx), prefix="canary", retry=NO_RETRY
            )

    @flow(f"rotate-{_kind}-store-down")
    def _rotate_down(ctx: FlowContext, kind: str = _kind) -> object:
        api_id = api(ctx)
        with unkey(ctx) as client:
            first = provision(client, store(ctx, kind), api_id, prefix="canary")
            return rotate(client, store(ctx, kind, down=True), api_id, first.key_id, retry=NO_RETRY)

    @flow(f"capture-{_kind}-store-down")
    def _capture_down(ctx: FlowContext, kind: str = _kind) -> object:
        answer = unkey_answer(new_key_id(), ctx.canary())
        return capture(store(ctx, kind, down=True), answer, api_id=api(ctx), retry=NO_RETRY)


@flow("capture-malformed-response")
def _capture_malformed(ctx: FlowContext) -> object:
    # A key_id Unkey would never send, next to a real-looking key: the error names the problem.
    answer = unkey_answer("key id with spaces!", ctx.canary())
    return capture(store(ctx, "vault"), answer, api_id=api(ctx))


@flow("client-broken-json")
def _client_broken_json(ctx: FlowContext) -> object:
    canary = ctx.canary()
    whole = f'{{"meta":{{"requestId":"req_1"}},"data":{{"keyId":"key_abc123","key":"{canary}"'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=whole.encode()))
    with unkey(ctx, transport) as client:
        return client.create_key("api_canary123", prefix="canary")


@flow("client-verify-error-echo")
def _client_verify_echo(ctx: FlowContext) -> object:
    canary = ctx.canary()
    body = {
        "meta": {"requestId": "req_1"},
        "error": {
            "title": "Bad Request",
            "detail": f"key {canary} is malformed",
            "status": 400,
            "type": f"https://unkey.com/docs/errors/{canary}",
        },
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(400, json=body))
    with unkey(ctx, transport) as client:
        return client.verify_key(canary)


@flow("sdk-debug-logger-capture")
def _sdk_capture(ctx: FlowContext) -> object:
    from unkey.py import Unkey

    server, api_id = ctx.fixture("unkey_emulator_server"), api(ctx)
    debug_logger = logging.getLogger("unkey.test")
    with httpx.Client(transport=ctx.tap()) as http:
        sdk = Unkey(
            root_key=server.root_key, server_url=server.url, client=http, debug_logger=debug_logger
        )
        response = sdk.keys.create_key(api_id=api_id, prefix="canary")
        return capture(store(ctx, "aws"), response, api_id=api_id)
