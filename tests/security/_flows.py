"""The flows of the canary matrix: every way a plaintext passes through unkey-secrets.

Each flow uses the real servers on loopback (OpenBao, moto, the Unkey emulator) through the
session fixtures of ``unkey_secrets.testing.pytest_plugin``, except where a broken answer must
be forged (``httpx.MockTransport``). A flow notes its canaries on the context: the keys the
emulator issues are noted by a tapped transport, the ones a flow makes up by ``ctx.canary()``.

The rotation Lambda's flows call ``unkey_secrets.aws_lambda.handler`` as Secrets Manager would
(the rotation started the way ``_rotation_harness.SecretsManagerSim`` starts it). The handler's
Unkey client gets a tapped transport, and each flow also notes every value the secret's versions
hold afterwards, read from moto's in-process backend.

Every flow also hunts the credentials it used: a root key of its own for Unkey, a Vault token of
its own (or an AppRole secret_id, a JWT, the token a login returned), and an AWS secret access
key and session token for Secrets Manager (explicit in the clients, in the environment for the
CLI and the Lambda).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import re
import secrets
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from unkey_secrets import (
    ConfigurationError,
    RetryPolicy,
    RotationStepError,
    SecretStore,
    StoreError,
    UnkeyClient,
    capture,
    provision,
    rotate,
)
from unkey_secrets._payload import parse_key_json

from ..functional._cli_harness import aws_env, run_cli, tapped_emulator, unkey_env, vault_env
from ..functional._rotation_harness import (
    STEPS,
    SecretsManagerSim,
    backend_secret,
    short_circuit,
)
from ._canary import FlowContext, flow, new_canary

NO_RETRY = RetryPolicy(attempts=1)


def dead_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def root_key(ctx: FlowContext) -> str:
    """A root key of the flow's own, holding every permission, hunted as a credential."""
    return ctx.credential(ctx.fixture("unkey_emulator_server").emulator.add_root_key(["*"]))


_EVERYTHING = (
    'path "*" { capabilities = ["create", "read", "update", "delete", "list", "patch", "sudo"] }'
)


def vault_token(ctx: FlowContext) -> str:
    """A Vault token of the flow's own, hunted as a credential."""
    server = ctx.fixture("openbao_server")
    server.write_policy("canary-everything", _EVERYTHING)
    return ctx.credential(server.create_token("canary-everything"))


def aws_credentials(ctx: FlowContext) -> dict[str, str]:
    """A secret access key and a session token, hunted as credentials (moto accepts any)."""
    return {
        "aws_secret_access_key": ctx.credential(new_canary()),
        "aws_session_token": ctx.credential(new_canary() + new_canary()),
    }


def aws_credentials_env(ctx: FlowContext) -> dict[str, str]:
    """:func:`aws_credentials` as the standard environment variables."""
    credentials = aws_credentials(ctx)
    return {
        "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
        "AWS_SESSION_TOKEN": credentials["aws_session_token"],
    }


def unkey(ctx: FlowContext, transport: httpx.BaseTransport | None = None) -> UnkeyClient:
    server = ctx.fixture("unkey_emulator_server")
    return UnkeyClient(
        root_key(ctx),
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
            return VaultStore(
                hvac.Client(url=dead_url(), token=ctx.credential(new_canary()), timeout=2)
            )
        return VaultStore(ctx.fixture("openbao_server").client(vault_token(ctx)))
    import boto3
    from botocore.config import Config

    from unkey_secrets.stores.aws import SecretsManagerStore

    if down:
        client = boto3.client(
            "secretsmanager",
            endpoint_url=dead_url(),
            region_name="us-east-1",
            aws_access_key_id="testing",
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
            **aws_credentials(ctx),
        )
        return SecretsManagerStore(client)
    moto = ctx.fixture("moto_server")
    return SecretsManagerStore(moto.client("secretsmanager", **aws_credentials(ctx)))


def unkey_answer(key_id: str, key: str) -> dict[str, Any]:
    return {"meta": {"requestId": "req_canary"}, "data": {"keyId": key_id, "key": key}}


def new_key_id() -> str:
    # Today's keyId form (key_ and a short random part): a longer run is a key's shape, which
    # the CLI confirms with Unkey before a store path holds it, and these ids are made up.
    return "key_" + secrets.token_hex(6)


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
        current = target.get_current(api_id=api_id, alias="svc")
        ctx.keep(stored, current)
        return stored

    @flow(f"read-{_kind}-http-debug")
    def _read_http_debug(ctx: FlowContext, kind: str = _kind) -> object:
        # http.client prints every request it sends (the Vault token, the AWS session token and
        # signature in its headers): the read may refuse, or go on with the output scrubbed.
        target, api_id = store(ctx, kind), api(ctx)
        with unkey(ctx) as client:
            done = provision(client, target, api_id, alias="svc", prefix="canary")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(http.client.HTTPConnection, "debuglevel", 1)
            stored = target.get(api_id=api_id, key_id=done.key_id)
        ctx.keep(stored)
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


# -- Vault logins --------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed_jwt(claims: dict[str, Any]) -> tuple[str, str]:
    """A JWT signed RS256 with a new key: ``(jwt, public key PEM)``."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing_input = (
        _b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        + "."
        + _b64url(json.dumps(claims).encode())
    )
    signature = private.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"{signing_input}.{_b64url(signature)}", public.decode()


def self_signed_pem() -> str:
    """A throwaway CA certificate (the Kubernetes auth config wants one)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "canary-ca")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def jwt_credential(ctx: FlowContext, jwt: str) -> str:
    """Hunt ``jwt``: all of it, or any of three slices of its signature."""
    signature = jwt.rpartition(".")[2]
    return ctx.credential(jwt, [jwt, signature[:24], signature[150:174], signature[-24:]])


def auth_mount(ctx: FlowContext, method: str) -> tuple[Any, str]:
    """Enable ``method`` at a mount of the flow's own; return the admin client and the mount."""
    server = ctx.fixture("openbao_server")
    server.write_policy("canary-everything", _EVERYTHING)
    admin, mount = server.client(), f"{method}-{secrets.token_hex(4)}"
    admin.sys.enable_auth_method(method, path=mount)
    return admin, mount


def approle_settings(ctx: FlowContext) -> dict[str, str]:
    """An AppRole with a custom secret_id; its role_id and secret_id are hunted."""
    admin, mount = auth_mount(ctx, "approle")
    admin.write(f"auth/{mount}/role/canary", token_policies=["canary-everything"], token_ttl="10m")
    role_id = admin.read(f"auth/{mount}/role/canary/role-id")["data"]["role_id"]
    secret_id = ctx.credential(new_canary())
    admin.write(f"auth/{mount}/role/canary/custom-secret-id", secret_id=secret_id)
    return {
        "auth_method": "approle",
        "auth_mount": mount,
        "role_id": ctx.credential(role_id),
        "secret_id": secret_id,
    }


def vault_settings(ctx: FlowContext, **fields: str) -> Any:
    from unkey_secrets.stores.vault.settings import VaultSettings

    return VaultSettings(addr=ctx.fixture("openbao_server").url, **fields)


def logged_in_round_trip(ctx: FlowContext, settings: Any) -> object:
    """Log in with ``settings``, hunt the token Vault issued, provision and read a key."""
    from unkey_secrets.stores.vault import VaultStore

    target, api_id = VaultStore(settings=settings), api(ctx)
    ctx.credential(target.client.token)
    with unkey(ctx) as client:
        done = provision(client, target, api_id, alias="svc", prefix="canary")
    stored = target.get(api_id=api_id, key_id=done.key_id)
    ctx.keep(stored)
    return stored


@flow("vault-approle-login", returns=True)
def _vault_approle(ctx: FlowContext) -> object:
    return logged_in_round_trip(ctx, vault_settings(ctx, **approle_settings(ctx)))


@flow("vault-jwt-login", returns=True)
def _vault_jwt(ctx: FlowContext) -> object:
    admin, mount = auth_mount(ctx, "jwt")
    now = int(time.time())
    jwt, public_key = signed_jwt(
        {"sub": new_canary(), "aud": "unkey-secrets", "iat": now, "nbf": now, "exp": now + 300}
    )
    admin.write(f"auth/{mount}/config", jwt_validation_pubkeys=[public_key])
    admin.write(
        f"auth/{mount}/role/canary",
        role_type="jwt",
        user_claim="sub",
        bound_audiences=["unkey-secrets"],
        token_policies=["canary-everything"],
        token_ttl="10m",
    )
    settings = vault_settings(
        ctx, auth_method="jwt", auth_mount=mount, role="canary", jwt=jwt_credential(ctx, jwt)
    )
    return logged_in_round_trip(ctx, settings)


@flow("vault-kubernetes-login-refused", raises=StoreError)
def _vault_kubernetes(ctx: FlowContext) -> object:
    # The service account token read from its file, as in a pod; Vault cannot reach the
    # (dead) Kubernetes API to review it, so the login fails after the JWT was sent.
    admin, mount = auth_mount(ctx, "kubernetes")
    admin.write(
        f"auth/{mount}/config",
        kubernetes_host=dead_url(),
        kubernetes_ca_cert=self_signed_pem(),
        token_reviewer_jwt="reviewer.not.used",
    )
    admin.write(
        f"auth/{mount}/role/canary",
        bound_service_account_names=["*"],
        bound_service_account_namespaces=["*"],
        token_policies=["canary-everything"],
    )
    now = int(time.time())
    jwt, _ = signed_jwt(
        {
            "iss": "kubernetes/serviceaccount",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/service-account.name": "canary",
            "kubernetes.io/serviceaccount/service-account.uid": str(uuid.uuid4()),
            "sub": "system:serviceaccount:default:canary",
            "iat": now,
            "exp": now + 300,
        }
    )
    path = ctx.fixture("tmp_path") / "token"
    path.write_text(jwt_credential(ctx, jwt) + "\n", encoding="utf-8")
    settings = vault_settings(
        ctx, auth_method="kubernetes", auth_mount=mount, role="canary", jwt_path=str(path)
    )
    return logged_in_round_trip(ctx, settings)


@flow("vault-approle-login-http-debug", raises=ConfigurationError)
def _vault_approle_http_debug(ctx: FlowContext) -> object:
    from unkey_secrets.stores.vault import VaultStore

    settings = vault_settings(ctx, **approle_settings(ctx))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(http.client.HTTPConnection, "debuglevel", 1)
        return VaultStore(settings=settings)


# -- the rotation Lambda -----------------------------------------------------------------------

#: Loggers the Lambda sets levels on: put back after each Lambda flow.
_LAMBDA_LOGGERS = ("unkey_secrets.aws_lambda", "botocore.endpoint", "botocore.parsers")


@contextmanager
def lambda_runtime(ctx: FlowContext) -> Iterator[Any]:
    """The handler's environment, pointed at the session's moto server and emulator.

    Yields a Secrets Manager client for the flow's own set-up. The handler builds its clients
    itself, from the environment, except that its Unkey client's transport is tapped. The
    Lambda's logger is set to DEBUG, as ``AWS_LAMBDA_LOG_LEVEL=DEBUG`` would; the handler's
    clients are rebuilt on entry and dropped on exit, and every logger level it touched is put
    back.
    """
    from unkey_secrets import aws_lambda

    moto, server = ctx.fixture("moto_server"), ctx.fixture("unkey_emulator_server")
    levels = {name: logging.getLogger(name).level for name in _LAMBDA_LOGGERS}
    with pytest.MonkeyPatch.context() as patch:
        client = moto.client("secretsmanager")
        root = client.create_secret(
            Name=f"unkey/root/{uuid.uuid4().hex}",
            SecretString=json.dumps({"root_key": root_key(ctx)}),
        )["ARN"]
        for name, value in {
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_ACCESS_KEY_ID": "testing",
            **aws_credentials_env(ctx),
            "AWS_DEFAULT_REGION": moto.region,
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
            "UNKEY_ROOT_KEY_SECRET_ID": root,
            "UNKEY_BASE_URL": server.url,
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        patch.delenv("AWS_LAMBDA_LOG_LEVEL", raising=False)
        # The handler's own Unkey client, on a tapped transport: every key it is issued is noted.
        patch.setattr(
            aws_lambda,
            "UnkeyClient",
            lambda *args, **options: UnkeyClient(*args, transport=ctx.tap(), **options),
        )
        logging.getLogger("unkey_secrets.aws_lambda").setLevel(logging.DEBUG)
        aws_lambda._RUNTIME.reset()
        try:
            yield client
        finally:
            aws_lambda._RUNTIME.reset()
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def rotation_of(ctx: FlowContext, client: Any, arn: str) -> SecretsManagerSim:
    """Secrets Manager's side of rotating ``arn``: ``start()`` does what RotateSecret does."""
    return SecretsManagerSim(ctx.fixture("moto_server"), client, arn)


def note_stored_keys(ctx: FlowContext, sim: SecretsManagerSim) -> None:
    """Note every plaintext the secret's versions hold (read in-process: nothing is logged)."""
    for value in sim.all_values().values():
        plaintext = parse_key_json(value, store="aws", location="").secret.reveal()
        if plaintext not in ctx.canaries:
            ctx.canaries.append(plaintext)


def stored_original(ctx: FlowContext, client: UnkeyClient) -> str:
    """A key provisioned into Secrets Manager by unkey-secrets itself; returns its alias's ARN."""
    done = provision(client, store(ctx, "aws"), api(ctx), alias="svc", prefix="canary")
    assert done.current is not None
    return done.current.location


def expect_canaries(ctx: FlowContext, count: int) -> None:
    """Fail the flow (not its cells) when it did not see the keys it should have."""
    if len(ctx.canaries) != count:
        raise AssertionError(f"expected {count} canaries, noted {len(ctx.canaries)}")


def handle(sim: SecretsManagerSim, token: str, steps: tuple[str, ...], results: list[Any]) -> None:
    """Invoke the handler for ``steps``, keeping each return value."""
    from unkey_secrets import aws_lambda

    for step in steps:
        results.append(aws_lambda.handler(sim.event(token, step), None))


@flow("lambda-rotate-aws", returns=True)
def _lambda_rotate(ctx: FlowContext) -> object:
    results: list[Any] = []
    with unkey(ctx) as client, lambda_runtime(ctx) as sm:
        sim = rotation_of(ctx, sm, stored_original(ctx, client))
        try:
            handle(sim, sim.start(), STEPS, results)
        finally:
            note_stored_keys(ctx, sim)
    expect_canaries(ctx, 2)  # the original and the new key
    return results


@flow("lambda-bootstrap-aws", returns=True)
def _lambda_bootstrap(ctx: FlowContext) -> object:
    results: list[Any] = []
    with lambda_runtime(ctx) as sm:
        arn = sm.create_secret(
            Name=f"unkey/bootstrap/{uuid.uuid4().hex}",
            Tags=[{"Key": "unkey-api-id", "Value": api(ctx)}],
        )["ARN"]
        sim = rotation_of(ctx, sm, arn)
        try:
            handle(sim, sim.start(), STEPS, results)
        finally:
            note_stored_keys(ctx, sim)
    expect_canaries(ctx, 1)  # the first key
    return results


@flow("lambda-test-secret-fails", raises=RotationStepError)
def _lambda_test_fails(ctx: FlowContext) -> object:
    results: list[Any] = []
    ctx.keep(results)
    with unkey(ctx) as client, lambda_runtime(ctx) as sm:
        sim = rotation_of(ctx, sm, stored_original(ctx, client))
        token = sim.start()
        try:
            handle(sim, token, ("createSecret", "setSecret"), results)
            client.update_key(str(results[0]["key_id"]), enabled=False)
            handle(sim, token, ("testSecret",), results)
        finally:
            note_stored_keys(ctx, sim)
    return results


@flow("lambda-put-fails", raises=RotationStepError)
def _lambda_put_fails(ctx: FlowContext) -> object:
    from unkey_secrets import aws_lambda

    with unkey(ctx) as client, lambda_runtime(ctx) as sm:
        sim = rotation_of(ctx, sm, stored_original(ctx, client))
        token = sim.start()
        handler_client = aws_lambda._RUNTIME.rotator().secrets.client
        with short_circuit(handler_client, "PutSecretValue", "ThrottlingException"):
            # The rerolled key never reaches the secret: only the tap knows it.
            return aws_lambda.handler(sim.event(token, "createSecret"), None)


# -- the command line ----------------------------------------------------------------------------

#: A line the CLI's logging prints (``LEVEL logger: message``).
_CLI_LOG_LINE = re.compile(r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) (\S+): (.*)")


def relay(done: subprocess.CompletedProcess[str]) -> None:
    """Hand a CLI run's output to the channels: stdio as it was printed, and logs line by line.

    Each line becomes a log record of the run (its own logger and level where the line is one
    of the CLI's log lines), built with ``makeLogRecord`` so this process's record guard does not
    rewrite it: the logs channel judges what the CLI printed, not what this process would mask.
    """
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        for line in text.splitlines():
            match = _CLI_LOG_LINE.fullmatch(line)
            level, name, message = match.groups() if match else ("INFO", stream, line)
            record = logging.makeLogRecord(
                {
                    "name": f"unkey-secrets-cli.{name}",
                    "levelname": level,
                    "levelno": logging.getLevelName(level),
                    "msg": message,
                }
            )
            logging.getLogger().handle(record)


def cli_run(
    ctx: FlowContext,
    args: list[str],
    store_env: dict[str, str],
    *,
    exit_code: int | tuple[int, ...],
    stdin: bytes = b"",
) -> subprocess.CompletedProcess[str]:
    """Run the console script with Unkey behind a tap that notes every key it issues.

    Its audit log (``UNKEY_SECRETS_AUDIT_LOG``) goes to a file of its own, whose lines the
    context keeps for the audit channel.
    """
    audit_log = ctx.fixture("tmp_path_factory").mktemp("audit") / "audit.jsonl"
    with tapped_emulator(ctx.fixture("unkey_emulator_server"), ctx.canaries) as server:
        unkey_settings = {**unkey_env(server), "UNKEY_ROOT_KEY": root_key(ctx)}
        audited = {"UNKEY_SECRETS_AUDIT_LOG": str(audit_log)}
        done = run_cli(args, {**store_env, **unkey_settings, **audited}, stdin=stdin)
    if audit_log.exists():
        ctx.audit_lines += audit_log.read_text(encoding="utf-8").splitlines()
    relay(done)
    expected = exit_code if isinstance(exit_code, tuple) else (exit_code,)
    if done.returncode not in expected:
        raise AssertionError(f"unkey-secrets exited {done.returncode}, expected {exit_code}")
    return done


def stored_values(ctx: FlowContext, kind: str, record: dict[str, Any]) -> list[str]:
    """The plaintexts stored where the CLI's JSON ``record`` says; nothing is logged reading them.

    Vault is read with hvac (which logs no bodies); Secrets Manager from moto's in-process
    backend, since a boto3 read would log the body at DEBUG in the middle of the run.
    """
    if kind == "vault":
        target = store(ctx, "vault")
        return [target.get(api_id=record["api_id"], key_id=record["key_id"]).secret.reveal()]
    secret = backend_secret(ctx.fixture("moto_server"), record["location"]["location"])
    return [
        parse_key_json(version["secret_string"], store="aws", location="").secret.reveal()
        for version in secret.versions.values()
        if "secret_string" in version
    ]


def expect_stored(ctx: FlowContext, kind: str, record: dict[str, Any]) -> None:
    """Fail the flow unless what the CLI stored is a noted canary (so the tap saw it)."""
    values = stored_values(ctx, kind, record)
    if not values or any(value not in ctx.canaries for value in values):
        raise AssertionError(f"the key stored for {record['key_id']} is not a noted canary")


@flow("cli-provision-vault-json", returns=True)
def _cli_provision_json(ctx: FlowContext) -> object:
    api_id = api(ctx)
    done = cli_run(
        ctx,
        [
            *("--json", "--store", "vault", "provision", "--api-id", api_id, "--alias", "svc"),
            *("--prefix", "canary"),
        ],
        {**vault_env(ctx.fixture("openbao_server")), "VAULT_TOKEN": vault_token(ctx)},
        exit_code=0,
    )
    expect_canaries(ctx, 1)
    expect_stored(ctx, "vault", json.loads(done.stdout))
    return done


@flow("cli-rotate-aws-debug", returns=True)
def _cli_rotate_debug(ctx: FlowContext) -> object:
    api_id = api(ctx)
    with unkey(ctx) as client:
        first = provision(client, store(ctx, "aws"), api_id, alias="svc", prefix="canary")
    done = cli_run(
        ctx,
        [
            *("-vv", "--json", "--store", "aws", "rotate", "--api-id", api_id),
            *("--key-id", first.key_id, "--alias", "svc"),
        ],
        {**aws_env(ctx.fixture("moto_server")), **aws_credentials_env(ctx)},
        exit_code=0,
    )
    expect_canaries(ctx, 2)  # the original and the new key
    expect_stored(ctx, "aws", json.loads(done.stdout))
    return done


@flow("cli-capture-vault-stdin", returns=True)
def _cli_capture_stdin(ctx: FlowContext) -> object:
    api_id, key_id = api(ctx), new_key_id()
    canary = ctx.canary()
    done = cli_run(
        ctx,
        [
            *("-v", "--store", "vault", "capture", "--api-id", api_id, "--key-id", key_id),
            *("--alias", "svc"),
        ],
        {**vault_env(ctx.fixture("openbao_server")), "VAULT_TOKEN": vault_token(ctx)},
        exit_code=0,
        stdin=canary.encode() + b"\n",
    )
    if stored_values(ctx, "vault", {"api_id": api_id, "key_id": key_id}) != [canary]:
        raise AssertionError("capture did not store the key it was given on stdin")
    return done


@flow("cli-provision-vault-store-down", returns=True)
def _cli_provision_down(ctx: FlowContext) -> object:
    done = cli_run(
        ctx,
        [
            *("-vv", "--json", "--store", "vault", "provision", "--api-id", api(ctx)),
            *("--prefix", "canary"),
        ],
        {**vault_env(url=dead_url()), "VAULT_TOKEN": ctx.credential(new_canary())},
        exit_code=(1, 2),
    )
    if done.returncode == 2:
        # Vault was found unreachable before Unkey was asked for a key: only credentials.
        expect_canaries(ctx, 0)
        return done
    # The key was deleted in Unkey and never stored: only the tap knows its plaintext.
    expect_canaries(ctx, 1)
    if "deleted key" not in done.stderr:
        raise AssertionError("the failed provision did not report its compensation")
    return done


@flow("cli-provision-aws-session-token-vv", returns=True)
def _cli_provision_session_token(ctx: FlowContext) -> object:
    # The reproduction: -vv (every library at DEBUG) with temporary AWS credentials.
    done = cli_run(
        ctx,
        [
            *("-vv", "--json", "--store", "aws", "provision", "--api-id", api(ctx)),
            *("--alias", "svc", "--prefix", "canary"),
        ],
        {**aws_env(ctx.fixture("moto_server")), **aws_credentials_env(ctx)},
        exit_code=0,
    )
    expect_canaries(ctx, 1)
    expect_stored(ctx, "aws", json.loads(done.stdout))
    return done


@flow("cli-provision-vault-token-file-vv", returns=True)
def _cli_provision_token_file(ctx: FlowContext) -> object:
    # No VAULT_TOKEN: the token the vault CLI saved in ~/.vault-token.
    home = ctx.fixture("tmp_path_factory").mktemp("home")
    (home / ".vault-token").write_text(vault_token(ctx) + "\n", encoding="utf-8")
    done = cli_run(
        ctx,
        [
            *("-vv", "--json", "--store", "vault", "provision", "--api-id", api(ctx)),
            *("--alias", "svc", "--prefix", "canary"),
        ],
        {"VAULT_ADDR": ctx.fixture("openbao_server").url, "HOME": str(home)},
        exit_code=0,
    )
    expect_canaries(ctx, 1)
    expect_stored(ctx, "vault", json.loads(done.stdout))
    return done


@flow("cli-provision-vault-approle-vv", returns=True)
def _cli_provision_approle(ctx: FlowContext) -> object:
    settings = approle_settings(ctx)
    done = cli_run(
        ctx,
        [
            *("-vv", "--json", "--store", "vault", "provision", "--api-id", api(ctx)),
            *("--alias", "svc", "--prefix", "canary"),
        ],
        {
            "VAULT_ADDR": ctx.fixture("openbao_server").url,
            **{f"UNKEY_SECRETS_VAULT_{name.upper()}": value for name, value in settings.items()},
        },
        exit_code=0,
    )
    expect_canaries(ctx, 1)
    expect_stored(ctx, "vault", json.loads(done.stdout))
    return done


# -- the reader side: asyncio, batches, regions, a role, client certificates -----------------


def _provisioned(ctx: FlowContext, target: SecretStore, aliases: tuple[str, ...]) -> str:
    """An API of the flow's own with a key provisioned under each of ``aliases``."""
    api_id = api(ctx)
    with unkey(ctx) as client:
        for alias in aliases:
            provision(client, target, api_id, alias=alias, prefix="canary")
    expect_canaries(ctx, len(aliases))
    return api_id


def _async_reads(reader: Any, api_id: str, aliases: tuple[str, ...]) -> list[object]:
    """Through an AsyncKeyReader: a batch warm-up (one alias never stored), a get, a refresh."""
    import asyncio

    from unkey_secrets.config import UnkeyKey

    async def main() -> list[object]:
        async with reader:
            refs = [UnkeyKey(api_id=api_id, alias=alias) for alias in (*aliases, "absent")]
            warmed = await reader.warm(refs)
            got = await reader.get(api_id=api_id, alias=aliases[0])
            refreshed = await reader.key(api_id=api_id, alias=aliases[-1]).refresh()
            return [warmed, got, refreshed, await reader.key(api_id=api_id, alias="svc").info()]

    return asyncio.run(main())


@flow("reader-async-warm-aws", returns=True)
def _reader_async_warm(ctx: FlowContext) -> object:
    from unkey_secrets.config import AsyncKeyReader

    target = store(ctx, "aws")
    api_id = _provisioned(ctx, target, ("svc", "other"))
    outcome = _async_reads(AsyncKeyReader(target, max_age=60), api_id, ("svc", "other"))
    ctx.keep(*outcome)
    return outcome


@flow("reader-async-warm-vault", returns=True)
def _reader_async_warm_vault(ctx: FlowContext) -> object:
    from unkey_secrets.config import AsyncKeyReader

    target = store(ctx, "vault")
    api_id = _provisioned(ctx, target, ("svc", "other"))
    outcome = _async_reads(AsyncKeyReader(target, max_age=60), api_id, ("svc", "other"))
    ctx.keep(*outcome)
    return outcome


@flow("reader-failover-aws", returns=True)
def _reader_failover(ctx: FlowContext) -> object:
    # The first region is out (nothing listens): each read fails over to moto's region, and
    # the failover's warnings name the first region's error.
    import boto3
    from botocore.config import Config

    from unkey_secrets.config import KeyReader, UnkeyKey
    from unkey_secrets.stores.aws import SecretsManagerStore
    from unkey_secrets.stores.aws.failover import RegionFailoverStore

    live = store(ctx, "aws")
    api_id = _provisioned(ctx, live, ("svc", "other"))
    out = boto3.client(
        "secretsmanager",
        endpoint_url=dead_url(),
        region_name="eu-central-1",
        aws_access_key_id="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=2),
        **aws_credentials(ctx),
    )
    regions = RegionFailoverStore([SecretsManagerStore(out), live])  # type: ignore[list-item]
    with KeyReader(regions, max_age=60) as reader:
        refs = [UnkeyKey(api_id=api_id, alias=alias) for alias in ("svc", "other", "absent")]
        outcome = [reader.warm(refs), reader.get(api_id=api_id, alias="svc")]
    ctx.keep(*outcome)
    return outcome


@flow("reader-aws-assume-role", returns=True)
def _reader_assume_role(ctx: FlowContext) -> object:
    # The chain's credentials (hunted) assume a role through moto's STS, with an ExternalId
    # (hunted); the role's own credentials, which moto records, are hunted afterwards.
    from moto.sts.models import sts_backends

    from unkey_secrets.config import AsyncKeyReader
    from unkey_secrets.stores.aws import SecretsManagerStore

    moto = ctx.fixture("moto_server")
    ctx.fixture("aws_env")
    session_name = "canary-" + secrets.token_hex(4)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_credentials_env(ctx).items():
            patch.setenv(name, value)
        target = SecretsManagerStore(
            sts_endpoint_url=moto.url,
            role_arn="arn:aws:iam::111122223333:role/unkey-reader",
            external_id=ctx.credential(new_canary()),
            role_session_name=session_name,
            duration_seconds=900,
        )
        api_id = _provisioned(ctx, target, ("svc", "other"))
        outcome = _async_reads(AsyncKeyReader(target, max_age=60), api_id, ("svc", "other"))
    for assumed in sts_backends["111122223333"]["aws"].assumed_roles:
        if assumed.session_name == session_name:
            ctx.credential(assumed.secret_access_key)
            ctx.credential(assumed.session_token)
    ctx.keep(*outcome)
    return outcome


@flow("reader-aws-assume-role-sts-down", raises=StoreError)
def _reader_assume_role_sts_down(ctx: FlowContext) -> object:
    from unkey_secrets.config import KeyReader
    from unkey_secrets.stores.aws import SecretsManagerStore

    ctx.fixture("aws_env")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in aws_credentials_env(ctx).items():
            patch.setenv(name, value)
        target = SecretsManagerStore(
            sts_endpoint_url=dead_url(),
            role_arn="arn:aws:iam::111122223333:role/unkey-reader",
            external_id=ctx.credential(new_canary()),
            timeout=2,
        )
        ctx.canary()  # nothing is read: the credentials are what is hunted
        with KeyReader(target, max_age=60) as reader:
            return reader.get(api_id=api(ctx), alias="svc")


def _client_key_pem() -> tuple[str, list[str]]:
    """A fresh EC private key as PEM text, and the lines of its base64 body (its leak)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    return pem, [line for line in pem.splitlines() if len(line) >= 20 and "-----" not in line]


@flow("reader-vault-client-key-as-contents", raises=ConfigurationError)
def _reader_client_key_contents(ctx: FlowContext) -> object:
    # VAULT_CLIENT_KEY set to the key itself (a platform's secret as an environment variable)
    # rather than to a file's path: refused, the private key quoted nowhere.
    from unkey_secrets.config import KeyReader

    pem, body = _client_key_pem()
    ctx.credential(pem, body)
    ctx.canary()  # nothing is read: the private key is what is hunted
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAULT_ADDR", ctx.fixture("openbao_server").url)
        patch.setenv("VAULT_TOKEN", vault_token(ctx))
        patch.setenv("VAULT_CLIENT_CERT", self_signed_pem_file(ctx))
        patch.setenv("VAULT_CLIENT_KEY", pem)
        return KeyReader.vault()


def self_signed_pem_file(ctx: FlowContext) -> str:
    """A certificate's PEM file in the test's own folder (its content is public)."""
    path = ctx.fixture("tmp_path") / "client.pem"
    path.write_text(self_signed_pem())
    return str(path)
