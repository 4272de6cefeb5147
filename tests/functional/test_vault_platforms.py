"""Vault the way platforms run it, against real binaries on loopback.

* A TLS-enabled OpenBao with a private CA made in the test: the TLS certificate auth method
  (provision with a writer role, read with a reader role, a new login after a revoked token),
  and a listener that requires a client certificate (``tls_require_and_verify_client_cert``):
  ``VAULT_CLIENT_CERT``/``VAULT_CLIENT_KEY`` get through, their absence fails clearly.
* A real ``bao agent`` (AppRole auto-auth over TLS) and a real ``bao proxy`` (TLS certificate
  auto-auth on the client-certificate-only listener), each with
  ``api_proxy { use_auto_auth_token = true }`` on a loopback port: the app is given only
  ``VAULT_AGENT_ADDR``, no token, and reads (:meth:`KeyReader.vault`) and provisions through it.

Keys are compared, never printed; the agent's and proxy's output is checked to hold none.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests._pki import Authority, Issued
from unkey_secrets import ConfigurationError, StoreError, UnkeyClient, provision
from unkey_secrets.config import KeyAccessDeniedError, KeyReader, KeyStoreUnavailableError
from unkey_secrets.stores.vault import VaultStore

from ._bao_platforms import HOST, BaoDaemon, TlsOpenBao, free_port

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ALIAS = "billing"


@dataclass(frozen=True)
class Platform:
    """The TLS-enabled server, its CA, and the client certificates the test made."""

    server: TlsOpenBao
    authority: Authority
    app: Issued  # issued by the server's CA: trusted by the cert roles and the mTLS listener
    stranger: Issued  # issued by another CA: trusted by neither
    folder: Path


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    folder = tmp_path_factory.mktemp("vault-platform")
    authority = Authority(folder / "pki")
    stranger = Authority(folder / "other-pki", "other-ca").client("stranger")
    with TlsOpenBao(folder, authority) as server:
        root = server.client()
        root.sys.create_or_update_acl_policy(
            name="unkey-writer", policy=(POLICIES / "vault-writer.hcl").read_text()
        )
        root.sys.create_or_update_acl_policy(
            name="unkey-reader", policy=(POLICIES / "vault-reader.hcl").read_text()
        )
        root.sys.enable_auth_method("cert", path="cert")
        ca = authority.cert.read_text()
        for role, policies in (
            ("unkey-writer", ["unkey-writer"]),
            ("unkey-reader", ["unkey-reader"]),
            ("unkey-app", ["unkey-writer", "unkey-reader"]),
        ):
            root.auth.cert.create_ca_certificate_role(
                name=role,
                certificate=ca,
                token_policies=policies,
                token_ttl="10m",
                mount_point="cert",
            )
        yield Platform(server, authority, authority.client("unkey-app"), stranger, folder)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Vault setting, token file or proxy of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_VAULT_", "BAO_")) or name.lower() in (
            "https_proxy",
            "http_proxy",
            "all_proxy",
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def unkey(unkey_client: UnkeyClient) -> UnkeyClient:
    return unkey_client


def use(monkeypatch: pytest.MonkeyPatch, **variables: str | Path) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))


def cert_login(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, role: str, *, url: str | None = None
) -> None:
    use(
        monkeypatch,
        VAULT_ADDR=url or platform.server.tls_url,
        VAULT_CACERT=platform.authority.cert,
        VAULT_CLIENT_CERT=platform.app.cert,
        VAULT_CLIENT_KEY=platform.app.key,
        UNKEY_SECRETS_VAULT_AUTH_METHOD="cert",
        UNKEY_SECRETS_VAULT_ROLE=role,
    )


# -- the TLS certificate auth method ------------------------------------------------------


def test_cert_login_provisions_and_reads_over_tls(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, unkey: UnkeyClient, unkey_api_id: str
) -> None:
    cert_login(monkeypatch, platform, "unkey-writer")
    writer = VaultStore.from_settings()
    assert writer.auto_auth is not None
    assert writer.auto_auth.logins == 1
    done = provision(unkey, writer, unkey_api_id, alias=ALIAS)
    # The token is the writer role's: it wrote, and it cannot read a key back.
    me = writer.client.auth.token.lookup_self()["data"]
    assert me["policies"] == ["default", "unkey-writer"]
    assert me["meta"]["cert_name"] == "unkey-writer"

    cert_login(monkeypatch, platform, "unkey-reader")
    reader = KeyReader.vault(max_age=0)
    read = reader.get(api_id=unkey_api_id, alias=ALIAS)
    assert read.key_id == done.key_id
    assert unkey.verify_key(read.secret.reveal()).valid

    # A revoked token: the next write logs in again with the certificate and goes through.
    platform.server.client().auth.token.revoke(writer.client.token)
    again = provision(unkey, writer, unkey_api_id, alias="reports")
    assert writer.auto_auth.logins == 2
    assert reader.get(api_id=unkey_api_id, alias="reports").key_id == again.key_id


def test_cert_login_with_a_certificate_no_role_trusts_is_refused(
    monkeypatch: pytest.MonkeyPatch, platform: Platform
) -> None:
    cert_login(monkeypatch, platform, "unkey-reader")
    use(
        monkeypatch,
        VAULT_CLIENT_CERT=platform.stranger.cert,
        VAULT_CLIENT_KEY=platform.stranger.key,
    )
    with pytest.raises(StoreError, match=r"refused the cert login at auth/cert/login"):
        VaultStore.from_settings()


# -- a listener that requires a client certificate -----------------------------------------


def test_a_listener_requiring_client_certificates(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, unkey: UnkeyClient, unkey_api_id: str
) -> None:
    server = platform.server
    root = server.client()
    writer_token = root.auth.token.create(policies=["unkey-writer"], ttl="10m")["auth"]
    reader_token = root.auth.token.create(policies=["unkey-reader"], ttl="10m")["auth"]
    use(
        monkeypatch,
        VAULT_ADDR=server.mtls_url,
        VAULT_CACERT=platform.authority.cert,
        VAULT_CLIENT_CERT=platform.app.cert,
        VAULT_CLIENT_KEY=platform.app.key,
        VAULT_TOKEN=writer_token["client_token"],
    )
    done = provision(unkey, VaultStore.from_settings(), unkey_api_id, alias=ALIAS)
    use(monkeypatch, VAULT_TOKEN=reader_token["client_token"])
    assert KeyReader.vault().get(api_id=unkey_api_id, alias=ALIAS).key_id == done.key_id
    # The cert method on the same listener: the certificate is both the TLS client's and the
    # login's.
    monkeypatch.delenv("VAULT_TOKEN")
    cert_login(monkeypatch, platform, "unkey-reader", url=server.mtls_url)
    assert KeyReader.vault().get(api_id=unkey_api_id, alias=ALIAS).key_id == done.key_id

    # Without a client certificate, or with one from another CA: refused in the handshake,
    # and the error says which settings to look at.
    use(
        monkeypatch,
        UNKEY_SECRETS_VAULT_AUTH_METHOD="token",
        VAULT_TOKEN=reader_token["client_token"],
    )
    for cert in (None, platform.stranger):
        if cert is None:
            monkeypatch.delenv("VAULT_CLIENT_CERT")
            monkeypatch.delenv("VAULT_CLIENT_KEY")
        else:
            use(monkeypatch, VAULT_CLIENT_CERT=cert.cert, VAULT_CLIENT_KEY=cert.key)
        with pytest.raises(StoreError, match="VAULT_CLIENT_CERT and VAULT_CLIENT_KEY") as caught:
            KeyReader.vault().get(api_id=unkey_api_id, alias=ALIAS)
        assert "TLS failure" in str(caught.value)
        assert reader_token["client_token"] not in str(caught.value)
    # The writer's preflight says the same, before Unkey is asked for a key.
    monkeypatch.delenv("VAULT_CLIENT_CERT")
    monkeypatch.delenv("VAULT_CLIENT_KEY")
    use(monkeypatch, VAULT_TOKEN=writer_token["client_token"])
    with pytest.raises(ConfigurationError, match="VAULT_CLIENT_CERT and VAULT_CLIENT_KEY"):
        VaultStore.from_settings().check_writable(api_id=unkey_api_id, alias=ALIAS)


def test_a_missing_client_certificate_file_fails_at_start(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, tmp_path: Path
) -> None:
    use(
        monkeypatch,
        VAULT_ADDR=platform.server.mtls_url,
        VAULT_CACERT=platform.authority.cert,
        VAULT_CLIENT_CERT=tmp_path / "gone.pem",
        VAULT_CLIENT_KEY=platform.app.key,
        VAULT_TOKEN=platform.server.root_token,
    )
    with pytest.raises(ConfigurationError, match=r"VAULT_CLIENT_CERT names .*gone\.pem"):
        KeyReader.vault()


def test_a_server_certificate_from_an_unknown_ca_names_vault_cacert(
    monkeypatch: pytest.MonkeyPatch, platform: Platform, unkey_api_id: str
) -> None:
    # TLS is always verified: without VAULT_CACERT the test's CA is not trusted.
    use(
        monkeypatch,
        VAULT_ADDR=platform.server.tls_url,
        VAULT_CLIENT_CERT=platform.app.cert,
        VAULT_CLIENT_KEY=platform.app.key,
        VAULT_TOKEN=platform.server.root_token,
    )
    with pytest.raises(StoreError, match="server's certificate is not trusted: see VAULT_CACERT"):
        KeyReader.vault().get(api_id=unkey_api_id, alias=ALIAS)


# -- through a real bao agent and bao proxy -------------------------------------------------


def _agent_config(platform: Platform, folder: Path, port: int) -> str:
    """bao agent: AppRole auto-auth to the TLS listener, an API proxy on ``port``."""
    root = platform.server.client()
    if "approle/" not in root.sys.list_auth_methods():
        root.sys.enable_auth_method("approle", path="approle")
    root.auth.approle.create_or_update_approle(
        "unkey-agent", token_policies=["unkey-writer", "unkey-reader"], token_ttl="10m"
    )
    role_id = root.auth.approle.read_role_id("unkey-agent")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("unkey-agent")["data"]["secret_id"]
    (folder / "role-id").write_text(role_id)
    (folder / "secret-id").write_text(secret_id)
    return f"""
vault {{
  address = "{platform.server.tls_url}"
  ca_cert = "{platform.authority.cert}"
}}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path                   = "{folder / "role-id"}"
      secret_id_file_path                 = "{folder / "secret-id"}"
      remove_secret_id_file_after_reading = false
    }}
  }}
}}
api_proxy {{
  use_auto_auth_token = true
}}
listener "tcp" {{
  address     = "{HOST}:{port}"
  tls_disable = true
}}
"""


def _proxy_config(platform: Platform, port: int) -> str:
    """bao proxy: TLS certificate auto-auth on the client-certificate-only listener."""
    return f"""
vault {{
  address     = "{platform.server.mtls_url}"
  ca_cert     = "{platform.authority.cert}"
  client_cert = "{platform.app.cert}"
  client_key  = "{platform.app.key}"
}}
auto_auth {{
  method "cert" {{
    mount_path = "auth/cert"
    config = {{
      name = "unkey-app"
    }}
  }}
}}
api_proxy {{
  use_auto_auth_token = true
}}
listener "tcp" {{
  address     = "{HOST}:{port}"
  tls_disable = true
}}
"""


@pytest.mark.parametrize("kind", ["agent", "proxy"])
def test_the_app_reads_and_provisions_through_an_agent_with_no_token(
    monkeypatch: pytest.MonkeyPatch,
    platform: Platform,
    unkey: UnkeyClient,
    unkey_api_id: str,
    tmp_path: Path,
    kind: str,
) -> None:
    port = free_port()
    config = (
        _agent_config(platform, tmp_path, port)
        if kind == "agent"
        else _proxy_config(platform, port)
    )
    # A token the vault CLI left in ~/.vault-token is not sent: the agent's token is the one.
    (tmp_path / ".vault-token").write_text("s.stale-token-of-a-workstation\n")
    with BaoDaemon(kind, tmp_path, config, port=port) as daemon:
        # Only the agent's address (plain http on loopback), as the Agent injector sets it up;
        # a VAULT_ADDR elsewhere is not where requests go.
        use(monkeypatch, VAULT_AGENT_ADDR=daemon.url, VAULT_ADDR="https://vault.invalid:8200")
        writer = VaultStore.from_settings()
        assert writer.auto_auth is not None
        assert writer.auto_auth.through_agent
        assert writer.client.adapter.token == ""
        done = provision(unkey, writer, unkey_api_id, alias=ALIAS)

        reader = KeyReader.vault(max_age=0)
        key = reader.get(api_id=unkey_api_id, alias=ALIAS)
        assert key.key_id == done.key_id
        assert unkey.verify_key(key.secret.reveal()).valid
        # Nothing of ours looked the agent's token up, renewed it or logged in.
        assert writer.auto_auth.logins == writer.auto_auth.renewals == 0
        assert isinstance(reader.store, VaultStore)
        assert reader.store.auto_auth is not None
        assert reader.store.auto_auth.logins == reader.store.auto_auth.renewals == 0

        # A path the agent's token may not read: refused, and the error points at the
        # agent's auto-auth, not at a token the app does not have.
        monkeypatch.setenv("UNKEY_SECRETS_VAULT_KEY_TEMPLATE", "elsewhere/{api_id}/{key_id}")
        monkeypatch.setenv("UNKEY_SECRETS_VAULT_ALIAS_TEMPLATE", "elsewhere/{api_id}/{alias}")
        with pytest.raises(KeyAccessDeniedError, match="auto-auth") as caught:
            KeyReader.vault().get(api_id=unkey_api_id, alias=ALIAS)
        assert "use_auto_auth_token" in str(caught.value)
        # The app holds no token that could have expired: the agent's token's policies it is.
        assert "expired" not in str(caught.value)
        assert "policies/vault-reader.hcl" in str(caught.value)
        secret = key.secret.reveal()
    assert secret not in daemon.output

    # The agent is gone: its address refuses the connection, which is no sealed Vault.
    with pytest.raises(KeyStoreUnavailableError) as refused:
        KeyReader.vault().get(api_id=unkey_api_id, alias=ALIAS)
    text = str(refused.value)
    assert "VAULT_AGENT_ADDR" in text
    assert "Vault Agent or Proxy" in text
    assert "sealed" not in text
    assert "503" not in text
