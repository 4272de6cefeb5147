"""Vault the way platforms run it, without a server: VAULT_AGENT_ADDR and the agent method, TLS
client certificates checked at start, the cert auth method's settings."""

from __future__ import annotations

import base64
import datetime
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from unkey_secrets import ConfigurationError, SecretNotFoundError, StoreAccessError
from unkey_secrets.settings import load_settings
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.stores.vault.auth import build_client, check_client_cert
from unkey_secrets.stores.vault.settings import VaultSettings

from .test_vault_offline import FakeVault, attach

AGENT = "https://127.0.0.1:8100"
VAULT = "https://vault.internal:8200"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_VAULT_", "BAO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


def _pem_pair(tmp_path: Path, name: str, *, passphrase: bytes | None = None) -> tuple[Path, Path]:
    """A self-signed certificate and its key, written to ``name``.pem and ``name``-key.pem."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


# -- VAULT_AGENT_ADDR -----------------------------------------------------------------------


def test_the_agent_address_wins_over_vault_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", VAULT)
    assert VaultSettings().address == VAULT
    monkeypatch.setenv("VAULT_AGENT_ADDR", AGENT)
    settings = VaultSettings()
    assert settings.addr == VAULT
    assert settings.address == AGENT
    assert build_client(settings).url == AGENT


def test_the_agent_address_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AGENT_ADDR", AGENT)
    client = build_client(VaultSettings())
    assert client.url == AGENT


def test_the_standard_agent_variable_wins_over_the_prefixed_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AGENT_ADDR", "https://127.0.0.1:1")
    monkeypatch.setenv("VAULT_AGENT_ADDR", AGENT)
    assert VaultSettings().address == AGENT


def test_neither_address_names_both_variables() -> None:
    with pytest.raises(ConfigurationError, match="VAULT_ADDR nor VAULT_AGENT_ADDR"):
        build_client(VaultSettings(auth_method="agent"))


def test_a_plain_http_agent_elsewhere_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_AGENT_ADDR", "http://10.0.0.5:8100")
    with pytest.raises(ConfigurationError, match=r"VAULT_AGENT_ADDR must be https://"):
        load_settings(VaultSettings)
    monkeypatch.setenv("VAULT_AGENT_ADDR", "http://127.0.0.1:8100")
    assert VaultSettings().address == "http://127.0.0.1:8100"


#: Environments and the auth method each one gives.
METHOD_CHOICES: list[tuple[dict[str, str], str]] = [
    ({"VAULT_AGENT_ADDR": AGENT}, "agent"),
    ({"VAULT_AGENT_ADDR": AGENT, "VAULT_ADDR": VAULT}, "agent"),
    ({"VAULT_AGENT_ADDR": AGENT, "VAULT_TOKEN": ""}, "agent"),
    ({"VAULT_ADDR": VAULT, "UNKEY_SECRETS_VAULT_AUTH_METHOD": "agent"}, "agent"),
    # An explicit token or method wins; without an agent address nothing changes.
    ({"VAULT_AGENT_ADDR": AGENT, "VAULT_TOKEN": "hvs.app-own-token"}, "token"),
    ({"VAULT_AGENT_ADDR": AGENT, "UNKEY_SECRETS_VAULT_AUTH_METHOD": "token"}, "token"),
    ({"VAULT_AGENT_ADDR": AGENT, "UNKEY_SECRETS_VAULT_AUTH_METHOD": "approle"}, "approle"),
    ({"VAULT_ADDR": VAULT}, "token"),
]


def test_the_agent_method_is_chosen_when_an_agent_and_no_token_are_given() -> None:
    for environment, method in METHOD_CHOICES:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in environment.items():
                patch.setenv(name, value)
            assert VaultSettings().auth_method == method, environment


def test_through_an_agent_the_app_sends_no_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A token the vault CLI left behind is not sent either: with use_auto_auth_token = true a
    # request's own token wins over the agent's, and a stale one would be refused.
    (tmp_path / ".vault-token").write_text("hvs.stale-cli-token-of-the-workstation\n")
    monkeypatch.setenv("VAULT_AGENT_ADDR", AGENT)
    store = VaultStore.from_settings()
    assert store.auto_auth is not None
    assert store.auto_auth.through_agent
    assert not store.auto_auth.can_login
    assert store.client.adapter.token == ""
    # No lookup-self planned, no renewal thread.
    assert store.auto_auth._due is None

    def forbidden(request: requests.PreparedRequest) -> tuple[int, Any]:
        return 403, {"errors": ["permission denied"]}

    fake: FakeVault = attach(store, forbidden)
    with pytest.raises(StoreAccessError) as caught:
        store.get_current(api_id="api_123", alias="billing")
    # One request: no lookup-self, renew-self or login after the refusal (the token is the
    # agent's), and no token header on it.
    assert [r.path_url for r in fake.sent] == ["/v1/secret/data/unkey/api_123/by-name/billing"]
    assert "X-Vault-Token" not in fake.sent[0].headers
    message = str(caught.value)
    assert "auto-auth" in message
    assert "use_auto_auth_token" in message
    assert "VAULT_AGENT_ADDR" in message


def test_the_writer_preflight_through_an_agent_names_its_auto_auth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULT_AGENT_ADDR", AGENT)
    store = VaultStore.from_settings()

    mount_readable = False

    def answer(request: requests.PreparedRequest) -> tuple[int, Any]:
        if mount_readable and "sys/internal/ui/mounts" in (request.url or ""):
            return 200, {"data": {"type": "kv", "options": {"version": "2"}}}
        return 403, {"errors": ["permission denied"]}

    attach(store, answer)
    # The agent adds no token (its auto-auth failed, or api_proxy does not use it).
    with pytest.raises(ConfigurationError, match="use_auto_auth_token") as caught:
        store.check_writable(api_id="api_123", alias="billing")
    assert "VAULT_TOKEN" not in str(caught.value)
    # The agent's token reads the mount but may not check its capabilities.
    mount_readable = True
    with pytest.raises(ConfigurationError, match="Proxy's auto-auth token"):
        store.check_writable(api_id="api_123", alias="billing")


# -- client certificates ----------------------------------------------------------------------


def test_client_certificate_variables_standard_and_prefixed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_CLIENT_CERT", "/prefixed/cert.pem")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_CLIENT_KEY", "/prefixed/key.pem")
    settings = VaultSettings()
    assert (settings.client_cert, settings.client_key) == (
        "/prefixed/cert.pem",
        "/prefixed/key.pem",
    )
    monkeypatch.setenv("VAULT_CLIENT_CERT", "/standard/cert.pem")
    monkeypatch.setenv("VAULT_CLIENT_KEY", "/standard/key.pem")
    settings = VaultSettings()
    assert (settings.client_cert, settings.client_key) == (
        "/standard/cert.pem",
        "/standard/key.pem",
    )


@pytest.mark.parametrize("given", ["VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY"])
def test_a_client_certificate_needs_both_files(monkeypatch: pytest.MonkeyPatch, given: str) -> None:
    monkeypatch.setenv(given, "/etc/vault/client.pem")
    with pytest.raises(ConfigurationError, match="VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go"):
        load_settings(VaultSettings)


def test_the_client_certificate_is_presented_on_every_request(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, "client")
    settings = VaultSettings(
        addr=VAULT, token="hvs.unit-token", client_cert=str(cert), client_key=str(key)
    )
    store = VaultStore(settings=settings)
    seen: list[Any] = []

    class Recording(FakeVault):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            seen.append(kwargs.get("cert"))
            return super().send(request, **kwargs)

    store.client.adapter.session.mount("https://", Recording(lambda r: (404, {"errors": []})))
    for _ in range(2):
        with pytest.raises(SecretNotFoundError):
            store.get_current(api_id="api_123", alias="billing")
    assert len(seen) >= 2  # the reads, and the token lookup before the first
    assert all(c == (str(cert), str(key)) for c in seen)
    assert store.client.adapter.session.cert == (str(cert), str(key))


def _fails_clearly(
    settings: VaultSettings, match: str, *, never: tuple[bytes, ...] = ()
) -> ConfigurationError:
    with pytest.raises(ConfigurationError, match=match) as caught:
        build_client(settings)
    error = caught.value
    assert error.__cause__ is None
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for content in never:
        for line in content.decode().splitlines():
            if len(line) > 20:  # the base64 body, not the BEGIN/END markers
                assert line not in rendered
    return error


def test_a_missing_client_certificate_file_is_named_at_start(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, "client")
    missing = tmp_path / "absent.pem"
    _fails_clearly(
        VaultSettings(addr=VAULT, token="t" * 16, client_cert=str(missing), client_key=str(key)),
        rf"VAULT_CLIENT_CERT names {missing}, which cannot be read \(FileNotFoundError\)",
    )
    _fails_clearly(
        VaultSettings(addr=VAULT, token="t" * 16, client_cert=str(cert), client_key=str(missing)),
        rf"VAULT_CLIENT_KEY names {missing}, which cannot be read",
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_client_key_is_named_at_start(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, "client")
    key.chmod(0)
    _fails_clearly(
        VaultSettings(addr=VAULT, token="t" * 16, client_cert=str(cert), client_key=str(key)),
        r"VAULT_CLIENT_KEY names .*PermissionError",
    )


@pytest.mark.parametrize(
    "problem",
    ["mismatched", "encrypted", "not_pem", "swapped"],
)
def test_a_client_certificate_that_does_not_load_fails_at_start_without_its_contents(
    tmp_path: Path, problem: str
) -> None:
    cert, key = _pem_pair(tmp_path, "client")
    other_cert, other_key = _pem_pair(tmp_path, "other", passphrase=b"passphrase-value")
    pairs: dict[str, Callable[[], tuple[Path, Path]]] = {
        "mismatched": lambda: (cert, _pem_pair(tmp_path, "third")[1]),
        "encrypted": lambda: (other_cert, other_key),
        "not_pem": lambda: (cert, tmp_path / "junk"),
        "swapped": lambda: (key, cert),
    }
    (tmp_path / "junk").write_text("not a key at all, but a line longer than twenty characters\n")
    chosen_cert, chosen_key = pairs[problem]()
    _fails_clearly(
        VaultSettings(
            addr=VAULT, token="t" * 16, client_cert=str(chosen_cert), client_key=str(chosen_key)
        ),
        r"do not load as a PEM certificate and its matching, unencrypted private key",
        never=(chosen_key.read_bytes(), chosen_cert.read_bytes()),
    )


@pytest.mark.parametrize("form", ["pem", "escaped", "base64", "pem_cert"])
def test_a_key_given_as_its_contents_is_never_quoted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, form: str
) -> None:
    # A platform's secret mounted as an environment variable: the key itself, not its path.
    cert, key = _pem_pair(tmp_path, "client")
    text = key.read_text()
    given = {
        "pem": (str(cert), text),
        "escaped": (str(cert), text.replace("\n", "\\n")),
        "base64": (str(cert), base64.b64encode(key.read_bytes()).decode()),
        "pem_cert": (cert.read_text(), text),
    }[form]
    variable = "VAULT_CLIENT_CERT" if form == "pem_cert" else "VAULT_CLIENT_KEY"
    settings = VaultSettings(addr=VAULT, token="t" * 16, client_cert=given[0], client_key=given[1])
    error = _fails_clearly(
        settings,
        rf"{variable} holds what looks like the PEM text itself .*not the path of a file",
        never=(key.read_bytes(), base64.b64encode(key.read_bytes())),
    )
    assert given[1][40:80] not in str(error)
    assert given[1][40:80] not in repr(settings)
    monkeypatch.setenv("VAULT_ADDR", VAULT)
    monkeypatch.setenv("VAULT_TOKEN", "t" * 16)
    monkeypatch.setenv("VAULT_CLIENT_CERT", given[0])
    monkeypatch.setenv("VAULT_CLIENT_KEY", given[1])
    with pytest.raises(ConfigurationError) as caught:
        VaultStore.from_settings()
    assert given[1][40:80] not in str(caught.value)


def test_a_good_pair_is_returned(tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, "client")
    settings = VaultSettings(client_cert=str(cert), client_key=str(key))
    assert check_client_cert(settings) == (str(cert), str(key))
    assert check_client_cert(VaultSettings()) is None


# -- the cert auth method ---------------------------------------------------------------------


def test_the_cert_method_needs_a_client_certificate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", VAULT)
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", "cert")
    with pytest.raises(ConfigurationError, match="cert auth method logs in with the TLS client"):
        load_settings(VaultSettings)


def test_the_cert_method_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cert, key = _pem_pair(tmp_path, "client")
    monkeypatch.setenv("VAULT_ADDR", VAULT)
    monkeypatch.setenv("VAULT_CLIENT_CERT", str(cert))
    monkeypatch.setenv("VAULT_CLIENT_KEY", str(key))
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", "cert")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE", "unkey-reader")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_MOUNT", "cert-apps")
    settings = VaultSettings()
    assert settings.auth_method == "cert"
    assert settings.role == "unkey-reader"
    assert settings.auth_mount == "cert-apps"
    # No token read: the login makes one.
    assert build_client(settings).adapter.token == ""


def test_settings_errors_never_show_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_CLIENT_CERT", "/secretive/path/cert.pem")
    with pytest.raises(ValidationError):
        VaultSettings()
    with pytest.raises(ConfigurationError) as caught:
        load_settings(VaultSettings)
    assert "/secretive/path" not in str(caught.value)
