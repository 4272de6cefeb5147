r"""A FastAPI service that calls an upstream API with an Unkey key read through AsyncKeyReader.

What it shows:

* the lifespan builds one :class:`~unkey_secrets.config.AsyncKeyReader` of Secrets Manager
  (configured the standard way: ``AWS_ENDPOINT_URL``, ``AWS_REGION``, the credential chain),
  reads the key once so a service that cannot read it fails at start-up, and closes the reader
  on shutdown;
* ``GET /report`` calls the upstream with ``Authorization: Bearer <key>``: the key comes from
  memory while younger than ``KEY_MAX_AGE`` seconds, and is read again on a worker thread
  after that, so no request blocks the event loop and a rotation is picked up without a
  restart; on a 401 the endpoint reads the key again (``refresh()``) and retries once;
* an ``async def`` ``on_change`` callback logs the key_id change (never the key);
* ``upstream``, a stand-in for the API the key opens: it lets a request in when Unkey's
  ``keys.verifyKey`` says the presented key is valid.

Run it with uvicorn (``.venv/bin/pip install uvicorn``) against the local stack, from the
project root::

    # 1. the local stack, each in a terminal of its own (state in memory only)
    .venv/bin/python -m unkey_secrets.testing.moto --port 5000
    .venv/bin/python -m unkey_secrets.testing.emulator --port 7070 --api billing  # prints an API id

    # 2. the environment of the commands below (moto accepts any credentials)
    export AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1
    export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
    export UNKEY_BASE_URL=http://127.0.0.1:7070 UNKEY_ROOT_KEY=unkey_root
    export UNKEY_API_ID=api_...            # the id the emulator printed

    # 3. a key under the alias the service reads
    .venv/bin/unkey-secrets --store aws provision --api-id "$UNKEY_API_ID" --alias billing

    # 4. the upstream, then the service (KEY_MAX_AGE: seconds a read stays fresh, default 60)
    .venv/bin/uvicorn examples.fastapi_app:upstream --port 8001 &
    # (--log-config: log.json of docs/guides/app-configuration.md, for the on_change line)
    UPSTREAM_URL=http://127.0.0.1:8001 KEY_MAX_AGE=5 \
        .venv/bin/uvicorn examples.fastapi_app:app --port 8000 --log-config log.json
    curl http://127.0.0.1:8000/report      # {"upstream": "ok", "key_id": "key_..."}

    # 5. rotate: within KEY_MAX_AGE seconds /report names the new key_id, with no failed call
    .venv/bin/unkey-secrets --store aws rotate --api-id "$UNKEY_API_ID" --alias billing

tests/e2e/test_example_fastapi_app.py serves requests through this app (httpx's ASGI
transport) against moto's server and the Unkey emulator while the alias is rotated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from pydantic_settings import BaseSettings

from unkey_secrets import Secret, UnkeyClient
from unkey_secrets.config import AsyncCachedKey, AsyncKeyReader, KeyInfo

log = logging.getLogger("examples.fastapi_app")


class ServiceSettings(BaseSettings):
    """The service's own settings, from the environment (the key's store: the AWS_* ones)."""

    unkey_api_id: str
    key_alias: str = "billing"
    key_max_age: float = 60.0
    upstream_url: str = "http://127.0.0.1:8001"


def create_app(
    settings: ServiceSettings | None = None,
    *,
    upstream_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The service. ``upstream_transport`` replaces the network (tests pass an ASGI one)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or ServiceSettings()
        # Building the reader makes a boto3 client (files read, models loaded): off the loop.
        reader = await asyncio.to_thread(AsyncKeyReader.secrets_manager, max_age=config.key_max_age)
        async with (
            reader,
            httpx.AsyncClient(
                base_url=config.upstream_url, transport=upstream_transport, timeout=10
            ) as upstream,
        ):
            key = reader.key(api_id=config.unkey_api_id, alias=config.key_alias)
            await key.get()  # a key that cannot be read fails the start-up, not a request

            async def changed(old: KeyInfo, new: KeyInfo) -> None:
                log.info("the key behind %s changed: %s -> %s", new.alias, old.key_id, new.key_id)

            key.on_change(changed)
            app.state.reader, app.state.key, app.state.upstream = reader, key, upstream
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/report")
    async def report(request: Request) -> dict[str, Any]:
        key: AsyncCachedKey = request.app.state.key
        upstream: httpx.AsyncClient = request.app.state.upstream
        stored = await key.get()
        answer = await _call(upstream, stored.secret)
        if answer.status_code == 401:
            # The key may have just been rotated out (or revoked): read it again, retry once.
            stored = await key.refresh()
            answer = await _call(upstream, stored.secret)
        if answer.status_code != 200:
            raise HTTPException(502, f"the upstream answered {answer.status_code}")
        return {"upstream": answer.json()["status"], "key_id": stored.key_id}

    return app


async def _call(upstream: httpx.AsyncClient, secret: Secret) -> httpx.Response:
    return await upstream.get("/v1/report", headers={"Authorization": f"Bearer {secret.reveal()}"})


def create_upstream(unkey: UnkeyClient | None = None) -> FastAPI:
    """The API the key opens: 200 when Unkey says the bearer key is valid, else 401.

    ``unkey`` defaults to a client built from ``UNKEY_ROOT_KEY`` and ``UNKEY_BASE_URL``.
    """
    upstream = FastAPI()
    clients: list[UnkeyClient] = [unkey] if unkey is not None else []

    @upstream.get("/v1/report")
    async def protected(request: Request) -> dict[str, str]:
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            raise HTTPException(401, "a bearer key is required")
        if not clients:
            clients.append(UnkeyClient.from_settings())
        # The client is synchronous: it runs on a worker thread, off the loop.
        verdict = await asyncio.to_thread(clients[0].verify_key, Secret(presented))
        if not verdict.valid:
            raise HTTPException(401, f"key not valid ({verdict.code})")
        return {"status": "ok"}

    return upstream


app = create_app()
upstream = create_upstream()
