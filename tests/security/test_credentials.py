"""Every credential the process holds stays out of log records and http.client debug output.

Issue 8, section 1: the Unkey root key, Vault tokens (``VAULT_TOKEN``, ``~/.vault-token``, the
token a login returns), AppRole's role_id and secret_id, Kubernetes/JWT tokens, the AWS secret
access key and session token. Each guard is shown load-bearing: the same scenario with the
guard switched off shows the credential.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from unkey_secrets import ConfigurationError, Secret, _redact
from unkey_secrets._redact import MASK, hold, install_guards, scrub
from unkey_secrets.stores.vault import auth
from unkey_secrets.stores.vault.settings import VaultSettings

from ._canary import needles, new_canary

NEVER = re.compile(r"(?!)")


def leaked(canary: str, text: str) -> bool:
    return any(needle in text for needle in needles(canary))


def shapes_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the credential shapes off (values held are still masked)."""
    for name in ("_CREDENTIAL_SHAPE", "_HEADER_LINE", "_OTHER_CREDENTIALS"):
        monkeypatch.setattr(_redact, name, NEVER)


def http_debug_guard_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give http.client (and urllib3) back the builtin print, and keep it."""
    monkeypatch.setattr(_redact, "_guard_http_debug_output", lambda: None)
    for name in _redact._HTTP_DEBUG_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            monkeypatch.delattr(module, "print", raising=False)


@pytest.fixture
def debug_records() -> Iterator[list[str]]:
    """``logging.basicConfig(level=logging.DEBUG)``, formatted after the fact."""
    formatted: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda r: formatted.append(logging.Formatter().format(r))  # type: ignore[method-assign]
    root = logging.getLogger()
    saved = root.level, logging.getLogger("botocore").level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    try:
        yield formatted
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        logging.getLogger("botocore").setLevel(saved[1])


# -- the shapes the issue quotes -------------------------------------------------------------

TOKEN = "FwoGZXIvYXdzEJr__CANARY__SESSION__TOKEN//////////wEaDOo+Qe=="


def _issue_inputs(canary: str) -> dict[str, str]:
    return {
        # botocore.auth: the canonical request
        "canonical-request": (
            "CanonicalRequest:\nPOST\n/\n\ncontent-type:application/x-amz-json-1.1\n"
            f"host:127.0.0.1:4566\nx-amz-date:20260101T000000Z\nx-amz-security-token:{canary}\n"
            "x-amz-target:secretsmanager.GetSecretValue\n\n"
            "content-type;host;x-amz-date;x-amz-security-token;x-amz-target\ne3b0c442"
        ),
        # botocore.auth: the signature
        "signature-line": f"Signature:\n{canary}",
        # botocore.endpoint: the request headers
        "endpoint-headers": (
            "Sending http request: <AWSPreparedRequest stream_output=False, method=POST, "
            "headers={'X-Amz-Target': b'secretsmanager.GetSecretValue', "
            f"'X-Amz-Security-Token': b'{canary}', 'Authorization': b'AWS4-HMAC-SHA256 "
            "Credential=AKIA/20260101/us-east-1/secretsmanager/aws4_request, "
            f"SignedHeaders=host;x-amz-security-token, Signature={canary}'}}>"
        ),
        "authorization-bearer-line": f"send: b'POST /v2/keys.createKey HTTP/1.1\\r\\n"
        f"Authorization: Bearer {canary}\\r\\nContent-Type: application/json\\r\\n\\r\\n'",
        "authorization-bearer-dict": f"headers={{'authorization': 'Bearer {canary}'}}",
        "bearer-anywhere": f"refused Bearer {canary} (401)",
        "x-vault-token-line": "send: b'GET /v1/secret/data/k HTTP/1.1\\r\\nHost: x\\r\\n"
        f"X-Vault-Token: {canary}\\r\\n\\r\\n'",
        "x-vault-token-dict": f"{{'X-Vault-Token': '{canary}', 'X-Vault-Request': 'true'}}",
        "approle-body": f'send: b\'{{"role_id": "{canary}", "secret_id": "{canary}"}}\'',
        "jwt-body": f'send: b\'{{"role": "canary", "jwt": "{canary}"}}\'',
        "vault-login-answer": f'{{"auth": {{"client_token": "{canary}", "accessor": "a"}}}}',
        "frozen-credentials": (
            f"ReadOnlyCredentials(access_key='AKIA', secret_key='{canary}', token='{canary}')"
        ),
        "sts-xml": f"<Credentials><SecretAccessKey>{canary}</SecretAccessKey>"
        f"<SessionToken>{canary}</SessionToken></Credentials>",
        "presigned-url": "https://s3.amazonaws.com/b/k?X-Amz-Credential=AKIA&"
        f"X-Amz-Security-Token={canary}&X-Amz-Signature={canary}",
        "root-key-member": json.dumps({"SecretString": "x", "root_key": canary}),
    }


@pytest.mark.parametrize("case", sorted(_issue_inputs("x")))
def test_credential_shapes_are_masked_whatever_the_value(case: str) -> None:
    for canary in (new_canary(), TOKEN):
        text = _issue_inputs(canary)[case]
        clean = scrub(text)
        assert canary not in clean, clean
        assert MASK in clean


def test_ordinary_text_near_the_shapes_is_left_alone() -> None:
    for text in (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target",
        '{"NextToken": "abc", "ClientRequestToken": "0123456789abcdef0123456789abcdef"}',
        "StringToSign:\nAWS4-HMAC-SHA256\n20260101T000000Z",
        "logged in with approle at auth/approle/login",
    ):
        assert scrub(text) is text


# -- held values -----------------------------------------------------------------------------


def test_a_held_credential_is_masked_in_every_spelling_and_record() -> None:
    canary = new_canary() + '"\\'
    secret_str = new_canary()
    hold(canary, Secret(new_canary()), SecretStr(secret_str), None, 42)
    install_guards()
    record = logging.getLogger("guards.held").makeRecord(
        "guards.held",
        logging.DEBUG,
        __file__,
        1,
        "%s %r %s",
        (canary, canary, json.dumps([canary, secret_str])),
        None,
    )
    assert not leaked(canary, record.getMessage())
    assert secret_str not in record.getMessage()


def test_short_values_are_not_held() -> None:
    hold("testing", "s.dead")
    assert scrub("unkey_secrets.testing.moto s.dead") == "unkey_secrets.testing.moto s.dead"


@pytest.mark.parametrize("guard", ["on", "off"])
@pytest.mark.parametrize(
    "variable",
    ["UNKEY_ROOT_KEY", "VAULT_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"],
)
def test_credentials_in_the_environment_are_held(
    variable: str, guard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = new_canary()
    if guard == "off":
        monkeypatch.setattr(_redact, "CREDENTIAL_VARIABLES", ())
    monkeypatch.setenv(variable, canary)
    install_guards()
    # A spelling no shape knows: only the value itself can be masked.
    text = f"credential resolution: found {canary}"
    assert leaked(canary, scrub(text)) is (guard == "off")


def test_a_token_from_the_vault_cli_file_is_held(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = new_canary()
    (tmp_path / ".vault-token").write_text(canary + "\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("VAULT_TOKEN", raising=False)
    assert auth.read_token(VaultSettings(addr="http://127.0.0.1:1")) == canary
    assert scrub(f"using {canary}") == f"using {MASK}"


# -- botocore at DEBUG, as the issue reproduces it -------------------------------------------


@pytest.mark.parametrize("guard", ["on", "off"])
def test_botocore_debug_logs_carry_no_aws_credential(
    guard: str, moto_server: Any, debug_records: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_key, token = new_canary(), new_canary()
    if guard == "off":
        shapes_off(monkeypatch)
    install_guards()
    client = moto_server.client(
        "secretsmanager", aws_secret_access_key=secret_key, aws_session_token=token
    )
    name = "issue8/" + new_canary()
    client.create_secret(Name=name, SecretString="{}")
    client.get_secret_value(SecretId=name)
    text = "\n".join(debug_records)
    assert "x-amz-security-token:" in text  # the canonical request was logged
    assert leaked(token, text) is (guard == "off")
    assert not leaked(secret_key, text)  # botocore never logs it; held or not


# -- http.client debug output ----------------------------------------------------------------


@pytest.mark.parametrize("guard", ["on", "off"])
def test_http_debug_output_of_any_vault_request_is_scrubbed(
    guard: str,
    openbao_server: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain hvac read, none of our call sites: the process-wide guard alone."""
    token = openbao_server.create_token("root")
    client = openbao_server.client(token)
    if guard == "off":
        http_debug_guard_off(monkeypatch)
    install_guards()
    capfd.readouterr()
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    client.auth.token.lookup_self()
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 0)
    out, err = capfd.readouterr()
    assert "X-Vault-Token" in out  # the debug output was printed
    assert leaked(token, out + err) is (guard == "off")


@pytest.mark.parametrize("guard", ["on", "off"])
def test_http_debug_output_of_a_secrets_manager_read_is_scrubbed(
    guard: str,
    moto_server: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = new_canary()
    client = moto_server.client("secretsmanager", aws_session_token=token)
    name = "issue8/" + new_canary()
    client.create_secret(Name=name, SecretString="{}")
    if guard == "off":
        http_debug_guard_off(monkeypatch)
    install_guards()
    capfd.readouterr()
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    client.get_secret_value(SecretId=name)
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 0)
    out, err = capfd.readouterr()
    assert "X-Amz-Security-Token" in out
    assert leaked(token, out + err) is (guard == "off")


def _approle(openbao_server: Any) -> VaultSettings:
    import secrets

    admin, mount = openbao_server.client(), f"approle-{secrets.token_hex(4)}"
    admin.sys.enable_auth_method("approle", path=mount)
    admin.write(f"auth/{mount}/role/canary", token_policies=["default"], token_ttl="5m")
    role_id = admin.read(f"auth/{mount}/role/canary/role-id")["data"]["role_id"]
    secret_id = new_canary()
    admin.write(f"auth/{mount}/role/canary/custom-secret-id", secret_id=secret_id)
    return VaultSettings(
        addr=openbao_server.url,
        auth_method="approle",
        auth_mount=mount,
        role_id=role_id,
        secret_id=SecretStr(secret_id),
    )


@pytest.mark.parametrize("guards", ["both", "refusal-off", "both-off"])
def test_an_approle_login_under_http_debug(
    guards: str,
    openbao_server: Any,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The login refuses; without the refusal its output is scrubbed; without both, it leaks."""
    settings = _approle(openbao_server)
    secret_id = settings.secret_id.get_secret_value() if settings.secret_id else ""
    if guards != "both":
        monkeypatch.setattr(auth, "check_http_debug", lambda: None)
    if guards == "both-off":
        http_debug_guard_off(monkeypatch)
    install_guards()
    client = auth.build_client(settings)
    capfd.readouterr()
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    try:
        if guards == "both":
            with pytest.raises(ConfigurationError, match="debuglevel"):
                auth.login(client, settings)
        else:
            auth.login(client, settings)
    finally:
        monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 0)
    out, err = capfd.readouterr()
    assert leaked(secret_id, out + err) is (guards == "both-off")
    if guards == "refusal-off":
        assert "send:" in out
        assert MASK in out
        # The token Vault issued is held from now on.
        assert scrub(f"token {client.adapter.token}") == f"token {MASK}"


def test_the_http_debug_guard_chains_to_a_print_already_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(
        http.client, "print", lambda *a, **k: seen.append(" ".join(a)), raising=False
    )
    install_guards()
    canary = new_canary()
    http.client.print("send:", repr(f"X-Vault-Token: {canary}\r\n".encode()))  # type: ignore[attr-defined]
    assert len(seen) == 1
    assert canary not in seen[0]
    assert MASK in seen[0]
