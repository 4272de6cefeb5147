"""Vault auth methods: token, AppRole and JWT against OpenBao; Kubernetes and AWS IAM against a
loopback stand-in for Vault's login endpoint that records what it is sent."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from unkey_secrets import ConfigurationError, StoreAccessError
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.stores.vault.settings import VaultSettings
from unkey_secrets.testing.contract import canary_key
from unkey_secrets.testing.openbao import OpenBaoServer

POLICIES = Path(__file__).resolve().parents[2] / "policies"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Vault or AWS settings, token file or profile of the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_VAULT_", "AWS_", "BAO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def writer_policy(openbao_server: OpenBaoServer) -> str:
    openbao_server.write_policy("unkey-writer", (POLICIES / "vault-writer.hcl").read_text())
    return "unkey-writer"


def settings(server: OpenBaoServer, **values: Any) -> VaultSettings:
    return VaultSettings(addr=server.url, **values)


def assert_writer(store: VaultStore) -> None:
    """The store is logged in with the writer policy: it writes and cannot read back."""
    key = canary_key()
    assert store.put(key).created
    with pytest.raises(StoreAccessError):
        store.get(api_id=key.api_id, key_id=key.key_id)


# -- token ----------------------------------------------------------------------------------


def test_token_from_vault_token(
    openbao_server: OpenBaoServer, writer_policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", openbao_server.url)
    monkeypatch.setenv("VAULT_TOKEN", openbao_server.create_token(writer_policy))
    assert_writer(VaultStore.from_settings())


def test_token_from_the_cli_token_file(
    openbao_server: OpenBaoServer, writer_policy: str, tmp_path: Path
) -> None:
    (tmp_path / ".vault-token").write_text(openbao_server.create_token(writer_policy) + "\n")
    assert_writer(VaultStore.from_settings(settings(openbao_server)))


def test_no_token_anywhere_is_a_configuration_error(openbao_server: OpenBaoServer) -> None:
    with pytest.raises(ConfigurationError, match="VAULT_TOKEN"):
        VaultStore.from_settings(settings(openbao_server))


# -- AppRole --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def approle(openbao_server: OpenBaoServer, writer_policy: str) -> dict[str, str]:
    root = openbao_server.client()
    root.sys.enable_auth_method("approle", path="t-approle")
    root.auth.approle.create_or_update_approle(
        "deployer", token_policies=[writer_policy], token_ttl="10m", mount_point="t-approle"
    )
    role_id = root.auth.approle.read_role_id("deployer", mount_point="t-approle")
    secret = root.auth.approle.generate_secret_id("deployer", mount_point="t-approle")
    return {"role_id": role_id["data"]["role_id"], "secret_id": secret["data"]["secret_id"]}


def test_approle_login(openbao_server: OpenBaoServer, approle: dict[str, str]) -> None:
    store = VaultStore.from_settings(
        settings(openbao_server, auth_method="approle", auth_mount="t-approle", **approle)
    )
    assert store.client.adapter.token
    assert_writer(store)


def test_approle_with_a_wrong_secret_id_is_refused(
    openbao_server: OpenBaoServer, approle: dict[str, str]
) -> None:
    wrong = "0" * 8 + approle["secret_id"][8:]
    with pytest.raises(StoreAccessError) as raised:
        VaultStore.from_settings(
            settings(
                openbao_server,
                auth_method="approle",
                auth_mount="t-approle",
                role_id=approle["role_id"],
                secret_id=wrong,
            )
        )
    assert wrong not in str(raised.value)
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


def test_approle_without_a_role_id_is_a_configuration_error(
    openbao_server: OpenBaoServer,
) -> None:
    with pytest.raises(ConfigurationError, match="ROLE_ID"):
        VaultStore.from_settings(settings(openbao_server, auth_method="approle"))


# -- JWT ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """A local JWT issuer: an RSA key made for the test, signing RS256 tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def public_pem(self) -> str:
        return (
            self.key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": "ci-deployer", "aud": "unkey-secrets", "iat": now, "exp": now + 300}
        body.update(claims)
        header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
        payload = _b64(json.dumps(body).encode())
        signed = f"{header}.{payload}".encode()
        signature = self.key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64(signature)}"


@pytest.fixture(scope="module")
def issuer(openbao_server: OpenBaoServer, writer_policy: str) -> Issuer:
    issuer = Issuer()
    root = openbao_server.client()
    root.sys.enable_auth_method("jwt", path="t-jwt")
    root.adapter.post("/v1/auth/t-jwt/config", json={"jwt_validation_pubkeys": [issuer.public_pem]})
    root.adapter.post(
        "/v1/auth/t-jwt/role/deployer",
        json={
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": ["unkey-secrets"],
            "token_policies": [writer_policy],
            "token_ttl": "10m",
        },
    )
    return issuer


def test_jwt_login_with_a_token_from_a_file(
    openbao_server: OpenBaoServer, issuer: Issuer, tmp_path: Path
) -> None:
    token_file = tmp_path / "jwt"
    token_file.write_text(issuer.token())
    store = VaultStore.from_settings(
        settings(
            openbao_server,
            auth_method="jwt",
            auth_mount="t-jwt",
            role="deployer",
            jwt_path=str(token_file),
        )
    )
    assert_writer(store)


def test_jwt_login_with_a_token_from_the_environment(
    openbao_server: OpenBaoServer, issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ADDR", openbao_server.url)
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", "jwt")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_MOUNT", "t-jwt")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE", "deployer")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_JWT", issuer.token())
    assert_writer(VaultStore.from_settings())


def test_jwt_for_another_audience_is_refused(openbao_server: OpenBaoServer, issuer: Issuer) -> None:
    jwt = issuer.token(aud="someone-else")
    with pytest.raises(StoreAccessError) as raised:
        VaultStore.from_settings(
            settings(
                openbao_server, auth_method="jwt", auth_mount="t-jwt", role="deployer", jwt=jwt
            )
        )
    assert jwt not in str(raised.value)


def test_jwt_signed_by_another_key_is_refused(
    openbao_server: OpenBaoServer, issuer: Issuer
) -> None:
    forged = Issuer().token()
    with pytest.raises(StoreAccessError):
        VaultStore.from_settings(
            settings(
                openbao_server, auth_method="jwt", auth_mount="t-jwt", role="deployer", jwt=forged
            )
        )


# -- a recording stand-in for Vault's login endpoints ---------------------------------------


class LoginRecorder:
    """A loopback HTTP server answering ``POST /v1/auth/<mount>/login`` with a token."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                recorder.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length) or b"{}"),
                    }
                )
                if recorder.status == 200:
                    answer = {"auth": {"client_token": "s.from-the-stand-in", "policies": []}}
                else:
                    answer = {"errors": ["permission denied"]}
                payload = json.dumps(answer).encode()
                self.send_response(recorder.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> LoginRecorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder() -> Iterator[LoginRecorder]:
    with LoginRecorder() as server:
        yield server


def test_kubernetes_login_sends_the_service_account_jwt(
    recorder: LoginRecorder, tmp_path: Path
) -> None:
    jwt_file = tmp_path / "token"
    jwt_file.write_text("eyJ.service-account.jwt\n")
    store = VaultStore.from_settings(
        VaultSettings(
            addr=recorder.url, auth_method="kubernetes", role="unkey", jwt_path=str(jwt_file)
        )
    )
    assert store.client.adapter.token == "s.from-the-stand-in"
    (sent,) = recorder.requests
    assert sent["path"] == "/v1/auth/kubernetes/login"
    assert sent["body"] == {"role": "unkey", "jwt": "eyJ.service-account.jwt"}


def test_kubernetes_login_reads_the_pod_token_path_by_default(recorder: LoginRecorder) -> None:
    from unkey_secrets.stores.vault import auth as _vault_auth

    if Path(_vault_auth.KUBERNETES_JWT_PATH).exists():
        pytest.skip("running inside a Kubernetes pod")
    with pytest.raises(ConfigurationError, match="serviceaccount/token"):
        VaultStore.from_settings(
            VaultSettings(addr=recorder.url, auth_method="kubernetes", role="unkey")
        )
    assert recorder.requests == []


def test_kubernetes_login_refused_is_an_access_error(
    recorder: LoginRecorder, tmp_path: Path
) -> None:
    recorder.status = 403
    jwt_file = tmp_path / "token"
    jwt_file.write_text("eyJ.secret-jwt")
    with pytest.raises(StoreAccessError) as raised:
        VaultStore.from_settings(
            VaultSettings(
                addr=recorder.url,
                auth_method="kubernetes",
                auth_mount="k8s-prod",
                role="unkey",
                jwt_path=str(jwt_file),
            )
        )
    assert "eyJ.secret-jwt" not in str(raised.value)
    assert recorder.requests[0]["path"] == "/v1/auth/k8s-prod/login"


def _sigv4(
    secret_key: str, amz_date: str, headers: dict[str, str], signed: list[str], body: str
) -> str:
    """An independent AWS Signature Version 4 for a POST / to STS in us-east-1."""
    lower = {k.lower(): v for k, v in headers.items()}
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{name}:{lower[name].strip()}\n" for name in signed),
            ";".join(signed),
            hashlib.sha256(body.encode()).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/us-east-1/sts/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = f"AWS4{secret_key}".encode()
    for part in (amz_date[:8], "us-east-1", "sts", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def test_aws_iam_login_sends_a_signed_get_caller_identity(
    recorder: LoginRecorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token-value")
    store = VaultStore.from_settings(
        VaultSettings(
            addr=recorder.url,
            auth_method="aws",
            role="unkey-writer",
            aws_server_id="vault.example.com",
        )
    )
    assert store.client.adapter.token == "s.from-the-stand-in"

    (sent,) = recorder.requests
    assert sent["path"] == "/v1/auth/aws/login"
    body = sent["body"]
    assert body["role"] == "unkey-writer"
    assert body["iam_http_request_method"] == "POST"
    assert base64.b64decode(body["iam_request_url"]).decode() == "https://sts.amazonaws.com/"
    sts_body = base64.b64decode(body["iam_request_body"]).decode()
    assert sts_body == "Action=GetCallerIdentity&Version=2011-06-15"
    headers = {
        k: v[0] for k, v in json.loads(base64.b64decode(body["iam_request_headers"])).items()
    }
    assert headers["X-Vault-AWS-IAM-Server-ID"] == "vault.example.com"
    assert headers["X-Amz-Security-Token"] == "session-token-value"
    authorization = headers["Authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/")
    assert "/us-east-1/sts/aws4_request" in authorization
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert "x-vault-aws-iam-server-id" in signed, "the server id is covered by the signature"
    signature = authorization.split("Signature=")[1]
    assert signature == _sigv4(secret_key, headers["X-Amz-Date"], headers, signed, sts_body)
    assert secret_key not in json.dumps(sent), "the secret key itself is never sent"


def test_aws_iam_login_without_credentials_is_refused_before_any_request(
    recorder: LoginRecorder,
) -> None:
    with pytest.raises(StoreAccessError, match="AWS credentials"):
        VaultStore.from_settings(
            VaultSettings(addr=recorder.url, auth_method="aws", role="unkey-writer")
        )
    assert recorder.requests == []
