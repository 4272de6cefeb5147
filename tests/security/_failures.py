"""The failure kinds the reporter matrix adds to the canary flows, as flows of the same shape.

Each is a function of a :class:`~._canary.FlowContext`, built from the canary flows' own
helpers (their root key, Vault token, AWS credentials, stores and tapped Unkey client): bad
configuration and constructor input, Vault logins answered with nonsense, Unkey failing (5xx,
a timeout, an answer lost after it acted, nobody listening), an app's settings source that
cannot log in or read, and a KeyboardInterrupt in the middle of a flow (after Unkey issued the
key, during the store's write). They live in a registry of their own, :data:`FAILURES`, with
the exception each must end with in :data:`FAILURE_OUTCOMES`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import pytest
from pydantic import SecretStr

from unkey_secrets import (
    ConfigurationError,
    InvalidInputError,
    UnkeyClient,
    UnkeySecretsError,
    provision,
    rotate,
)

from ._canary import FlowContext, FlowFunc, new_canary
from ._flows import (
    NO_RETRY,
    api,
    aws_credentials_env,
    dead_url,
    jwt_credential,
    root_key,
    signed_jwt,
    store,
    unkey,
)

FAILURES: dict[str, FlowFunc] = {}
#: The exception each failure flow must end with (the matrix checks it before judging).
FAILURE_OUTCOMES: dict[str, type[BaseException] | None] = {}


def failure(name: str, *, raises: type[BaseException] | None) -> Callable[[FlowFunc], FlowFunc]:
    """Register a failure flow under ``name``; ``raises`` is how it must end (None: return)."""

    def register(func: FlowFunc) -> FlowFunc:
        if name in FAILURES:
            raise ValueError(f"failure flow {name!r} registered twice")
        FAILURES[name] = func
        FAILURE_OUTCOMES[name] = raises
        return func

    return register


# -- a Vault that answers nonsense -----------------------------------------------------------


class _Answer(BaseHTTPRequestHandler):
    answer: bytes = b"{}"

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.answer)))
        self.end_headers()
        self.wfile.write(self.answer)

    do_GET = do_POST = do_PUT = _reply

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def answering(answer: object) -> Iterator[str]:
    """A loopback HTTP server answering every request 200 with ``answer`` as JSON; its URL."""
    handler = type("Answer", (_Answer,), {"answer": json.dumps(answer).encode()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def vault_settings(addr: str, **fields: Any) -> Any:
    from unkey_secrets.stores.vault.settings import VaultSettings

    return VaultSettings(addr=addr, **fields)


# -- configuration and constructors ----------------------------------------------------------


@failure("unkey-client-bad-base-url", raises=InvalidInputError)
def _bad_base_url(ctx: FlowContext) -> object:
    return UnkeyClient(root_key(ctx), base_url="ftp://127.0.0.1/unkey")


@failure("unkey-client-timeout-zero", raises=InvalidInputError)
def _timeout_zero(ctx: FlowContext) -> object:
    return UnkeyClient(root_key(ctx), base_url=ctx.fixture("unkey_emulator_server").url, timeout=0)


@failure("unkey-client-root-key-newline", raises=InvalidInputError)
def _root_key_newline(ctx: FlowContext) -> object:
    # A root key pasted with its line end, as `$(cat root-key.txt)` in a script does not do.
    return UnkeyClient(root_key(ctx) + "\n", base_url=ctx.fixture("unkey_emulator_server").url)


@failure("unkey-settings-timeout-zero", raises=ConfigurationError)
def _settings_timeout_zero(ctx: FlowContext) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNKEY_ROOT_KEY", root_key(ctx))
        patch.setenv("UNKEY_BASE_URL", ctx.fixture("unkey_emulator_server").url)
        patch.setenv("UNKEY_TIMEOUT", "0")
        return UnkeyClient.from_settings()


@failure("unkey-settings-root-key-newline", raises=UnkeySecretsError)
def _settings_root_key_newline(ctx: FlowContext) -> object:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("UNKEY_ROOT_KEY", root_key(ctx) + "\n")
        patch.setenv("UNKEY_BASE_URL", ctx.fixture("unkey_emulator_server").url)
        return UnkeyClient.from_settings()


@failure("vault-store-bad-addr", raises=ConfigurationError)
def _vault_bad_addr(ctx: FlowContext) -> object:
    from unkey_secrets.stores.vault import VaultStore

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAULT_TOKEN", ctx.credential(new_canary()))
        return VaultStore.from_settings(addr="ftp://127.0.0.1:8200")


# -- Vault logins answered with nonsense -----------------------------------------------------


@failure("vault-approle-login-auth-null", raises=Exception)
def _approle_auth_null(ctx: FlowContext) -> object:
    from unkey_secrets.stores.vault import VaultStore

    with answering({"auth": None}) as url:
        settings = vault_settings(
            url,
            auth_method="approle",
            role_id=ctx.credential(new_canary()),
            secret_id=ctx.credential(new_canary()),
        )
        return VaultStore(settings=settings)


@failure("vault-jwt-login-empty-answer", raises=Exception)
def _jwt_empty(ctx: FlowContext) -> object:
    from unkey_secrets.stores.vault import VaultStore

    now = int(time.time())
    jwt, _ = signed_jwt({"sub": "canary", "iat": now, "exp": now + 300})
    with answering({}) as url:
        settings = vault_settings(url, auth_method="jwt", role="app", jwt=jwt_credential(ctx, jwt))
        return VaultStore(settings=settings)


@failure("vault-aws-login-auth-null", raises=Exception)
def _aws_login_auth_null(ctx: FlowContext) -> object:
    from unkey_secrets.stores.vault import VaultStore

    with pytest.MonkeyPatch.context() as patch, answering({"auth": None}) as url:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "AKIDCANARY",
            **aws_credentials_env(ctx),
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        return VaultStore(settings=vault_settings(url, auth_method="aws", role="app"))


# -- an app's settings source ----------------------------------------------------------------


def app_settings(source: Callable[[type[Any]], Any], api_id: str) -> Any:
    """Load an app's settings whose ``billing_key`` comes from ``source(settings_cls)``."""
    from pydantic_settings import BaseSettings

    from unkey_secrets.config import UnkeyKey

    class AppSettings(BaseSettings):
        billing_key: Annotated[SecretStr, UnkeyKey(api_id=api_id, alias="svc")]

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: Any, *args: Any, **kwargs: Any
        ) -> tuple[Any, ...]:
            return (source(settings_cls),)

    # pydantic-settings fills the field from the sources: no argument is passed.
    load: Any = AppSettings
    return load()


@failure("settings-source-vault-read", raises=None)
def _source_read(ctx: FlowContext) -> object:
    from unkey_secrets.config import UnkeyVaultSource

    target: Any = store(ctx, "vault")
    api_id = api(ctx)
    with unkey(ctx) as client:
        provision(client, target, api_id, alias="svc", prefix="canary")
    settings = vault_settings(ctx.fixture("openbao_server").url, token=target.client.token)
    loaded = app_settings(lambda cls: UnkeyVaultSource(cls, settings=settings), api_id)
    ctx.keep(loaded)
    return loaded


@failure("settings-source-vault-down", raises=UnkeySecretsError)
def _source_down(ctx: FlowContext) -> object:
    from unkey_secrets.config import UnkeyVaultSource

    settings = vault_settings(dead_url(), token=ctx.credential(new_canary()), timeout=2)
    return app_settings(lambda cls: UnkeyVaultSource(cls, settings=settings), api(ctx))


@failure("settings-source-approle-auth-null", raises=Exception)
def _source_auth_null(ctx: FlowContext) -> object:
    from unkey_secrets.config import UnkeyVaultSource

    with answering({"auth": None}) as url:
        settings = vault_settings(
            url,
            auth_method="approle",
            role_id=ctx.credential(new_canary()),
            secret_id=ctx.credential(new_canary()),
        )
        return app_settings(lambda cls: UnkeyVaultSource(cls, settings=settings), "api_canary1")


# -- Unkey failing ---------------------------------------------------------------------------


@contextmanager
def faults(ctx: FlowContext) -> Iterator[Any]:
    """The emulator's fault injection, cleared after the block whatever happened."""
    emulator = ctx.fixture("unkey_emulator_server").emulator
    try:
        yield emulator.faults
    finally:
        emulator.reset_faults()


@failure("unkey-500-provision-vault", raises=UnkeySecretsError)
def _unkey_500(ctx: FlowContext) -> object:
    target, api_id = store(ctx, "vault"), api(ctx)
    with unkey(ctx) as client, faults(ctx) as injected:
        injected.fail_next("keys.createKey", status=500)
        return provision(client, target, api_id, alias="svc", prefix="canary", retry=NO_RETRY)


@failure("unkey-timeout-provision-aws", raises=UnkeySecretsError)
def _unkey_timeout(ctx: FlowContext) -> object:
    target, api_id = store(ctx, "aws"), api(ctx)
    server = ctx.fixture("unkey_emulator_server")
    with (
        faults(ctx) as injected,
        UnkeyClient(
            root_key(ctx), base_url=server.url, transport=ctx.tap(), timeout=0.3, max_retries=0
        ) as client,
    ):
        # Unkey answers after the client gave up: the key exists, its answer is lost.
        injected.delay("keys.createKey", 1.0)
        return provision(client, target, api_id, alias="svc", prefix="canary", retry=NO_RETRY)


@failure("unkey-answer-lost-rotate-vault", raises=UnkeySecretsError)
def _unkey_answer_lost(ctx: FlowContext) -> object:
    target, api_id = store(ctx, "vault"), api(ctx)
    with unkey(ctx) as client:
        first = provision(client, target, api_id, alias="svc", prefix="canary")
        with faults(ctx) as injected:
            injected.drop_after_action("keys.rerollKey")
            return rotate(client, target, api_id, first.key_id, alias="svc", retry=NO_RETRY)


@failure("unkey-unreachable-provision-vault", raises=UnkeySecretsError)
def _unkey_unreachable(ctx: FlowContext) -> object:
    target, api_id = store(ctx, "vault"), api(ctx)
    with UnkeyClient(root_key(ctx), base_url=dead_url(), sleep=lambda _: None) as client:
        return provision(client, target, api_id, alias="svc", prefix="canary", retry=NO_RETRY)


# -- interrupted -----------------------------------------------------------------------------


class _InterruptAfter(httpx.BaseTransport):
    """Passes requests on; raises KeyboardInterrupt once ``operation``'s answer is read."""

    def __init__(self, inner: httpx.BaseTransport, operation: str) -> None:
        self.inner = inner
        self.operation = operation

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.url.path.endswith(self.operation):
            response.read()
            raise KeyboardInterrupt
        return response

    def close(self) -> None:
        self.inner.close()


@failure("interrupt-after-create-vault", raises=KeyboardInterrupt)
def _interrupt_after_create(ctx: FlowContext) -> object:
    target, api_id = store(ctx, "vault"), api(ctx)
    with unkey(ctx, _InterruptAfter(ctx.tap(), "keys.createKey")) as client:
        return provision(client, target, api_id, alias="svc", prefix="canary")


@failure("interrupt-in-vault-write", raises=KeyboardInterrupt)
def _interrupt_in_vault_write(ctx: FlowContext) -> object:
    target: Any = store(ctx, "vault")
    api_id = api(ctx)

    def interrupt(response: Any, *args: Any, **kwargs: Any) -> None:
        # The key's data written (its body holds the plaintext); interrupted before the answer
        # is read.
        request = response.request
        if request.method in ("POST", "PUT") and "/data/" in str(request.url):
            raise KeyboardInterrupt

    target.client.adapter.session.hooks["response"].append(interrupt)
    with unkey(ctx) as client:
        return provision(client, target, api_id, alias="svc", prefix="canary")


@failure("interrupt-in-aws-write", raises=KeyboardInterrupt)
def _interrupt_in_aws_write(ctx: FlowContext) -> object:
    target: Any = store(ctx, "aws")
    api_id = api(ctx)

    def interrupt(request: Any, **_: Any) -> None:
        # Signed, session token in its headers, the plaintext in its body: then interrupted.
        if b"SecretString" in (request.body or b""):
            raise KeyboardInterrupt

    target.client.meta.events.register_first("before-send.secrets-manager", interrupt)
    with unkey(ctx) as client:
        return provision(client, target, api_id, alias="svc", prefix="canary")


# -- a store call failing inside a group made at once (unkey_secrets._concurrent.together) ----
#
# A rotation by alias makes independent calls at once, one on the calling thread and each
# other on a thread of its own: the original's getKey beside the record's claim, the new key's
# put beside the alias's prepared move, the cut beside the record's ``done``, and (Secrets
# Manager) the alias's DescribeSecret beside its GetSecretValue. Each flow below fails the one
# call of a group that runs on a worker thread, or the one beside it, so the error a reporter
# renders was raised on another thread than the one that raises it again.


def _vault_hook(target: Any, fails: Callable[[Any], bool], action: Callable[[Any], None]) -> None:
    """On each Vault answer whose request ``fails`` matches, ``action(response)`` (once)."""
    done = threading.Event()

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        if not done.is_set() and fails(response.request):
            done.set()
            action(response)

    target.client.adapter.session.hooks["response"].append(hook)


def _vault_500(response: Any) -> None:
    response.status_code = 500
    response._content = b'{"errors":["injected failure"]}'


def _data_write(part: str) -> Callable[[Any], bool]:
    def matches(request: Any) -> bool:
        url = str(request.url)
        return request.method in ("POST", "PUT") and "/data/" in url and part in url

    return matches


def _rotate_by_alias(
    ctx: FlowContext, target: Any, api_id: str, arrange: Callable[[], None]
) -> object:
    with unkey(ctx) as client:
        first = provision(client, target, api_id, alias="svc", prefix="canary")
        arrange()
        return rotate(client, target, api_id, first.key_id, alias="svc", retry=NO_RETRY)


@failure("vault-500-claim-rotate-vault", raises=UnkeySecretsError)
def _vault_500_claim(ctx: FlowContext) -> object:
    # The claim (the record's first write) runs on a worker thread beside the getKey.
    target, api_id = store(ctx, "vault"), api(ctx)
    return _rotate_by_alias(
        ctx,
        target,
        api_id,
        lambda: _vault_hook(target, _data_write("/rotated-from/"), _vault_500),
    )


@failure("vault-500-put-rotate-vault", raises=UnkeySecretsError)
def _vault_500_put(ctx: FlowContext) -> object:
    # The new key's put (its body holds the plaintext) fails beside the alias's prepared move.
    target, api_id = store(ctx, "vault"), api(ctx)

    def new_key(request: Any) -> bool:
        url = str(request.url)
        return (
            _data_write(f"/unkey/{api_id}/")(request)
            and "/by-name/" not in url
            and "/rotated-from/" not in url
        )

    return _rotate_by_alias(ctx, target, api_id, lambda: _vault_hook(target, new_key, _vault_500))


@failure("vault-500-done-rotate-vault", raises=UnkeySecretsError)
def _vault_500_done(ctx: FlowContext) -> object:
    # The record's writes: the claim, "rerolled", "stored", then "done" beside the cut.
    target, api_id = store(ctx, "vault"), api(ctx)

    def record_done(request: Any) -> bool:
        if not _data_write("/rotated-from/")(request):
            return False
        return b'"done"' in (request.body or b"")

    return _rotate_by_alias(
        ctx, target, api_id, lambda: _vault_hook(target, record_done, _vault_500)
    )


@failure("interrupt-in-claim-rotate-vault", raises=KeyboardInterrupt)
def _interrupt_in_claim(ctx: FlowContext) -> object:
    # A KeyboardInterrupt raised on the worker thread that writes the claim.
    target, api_id = store(ctx, "vault"), api(ctx)

    def interrupt(response: Any) -> None:
        raise KeyboardInterrupt

    return _rotate_by_alias(
        ctx,
        target,
        api_id,
        lambda: _vault_hook(target, _data_write("/rotated-from/"), interrupt),
    )


def _aws_hook(target: Any, operation: str, fails: Callable[[dict[str, Any]], bool]) -> None:
    """Answer the first ``operation`` whose params ``fails`` matches with a 500 error."""
    from botocore.exceptions import ClientError

    done = threading.Event()

    def hook(params: dict[str, Any], **_: Any) -> None:
        if not done.is_set() and fails(params):
            done.set()
            raise ClientError(
                {"Error": {"Code": "InternalServiceError", "Message": "injected failure"}},
                operation,
            )

    target.client.meta.events.register_first(
        f"provide-client-params.secrets-manager.{operation}", hook
    )


@failure("aws-500-alias-read-rotate-aws", raises=UnkeySecretsError)
def _aws_500_alias_read(ctx: FlowContext) -> object:
    # The alias's GetSecretValue (a worker thread) fails beside its DescribeSecret.
    target, api_id = store(ctx, "aws"), api(ctx)
    return _rotate_by_alias(
        ctx,
        target,
        api_id,
        lambda: _aws_hook(
            target, "GetSecretValue", lambda params: "/by-name/" in str(params.get("SecretId"))
        ),
    )


@failure("aws-500-put-rotate-aws", raises=UnkeySecretsError)
def _aws_500_put(ctx: FlowContext) -> object:
    # The new key's CreateSecret (its SecretString the plaintext) fails beside the prepare.
    target, api_id = store(ctx, "aws"), api(ctx)

    def new_key(params: dict[str, Any]) -> bool:
        name = str(params.get("Name"))
        return name.startswith(f"unkey/{api_id}/") and "/by-name/" not in name

    return _rotate_by_alias(ctx, target, api_id, lambda: _aws_hook(target, "CreateSecret", new_key))
