"""examples/vault_agent/ and examples/external_secrets/: the readers' side of an alias.

The Vault Agent template is rendered by the real ``bao agent`` against OpenBao, with a token
carrying only policies/vault-reader.hcl; each ExternalSecret's remoteRef is followed to the
store's alias location and the property it names is checked to hold the stored key. Keys are
compared, never printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer, find_bao

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "examples" / "vault_agent"
EXTERNAL = ROOT / "examples" / "external_secrets"
#: What the examples name; each test substitutes its own API id for the placeholder.
PLACEHOLDER_API = "api_123"
ALIAS = "billing"


@pytest.fixture
def unkey(unkey_emulator: Any) -> Any:
    with unkey_emulator.client() as client:
        yield client


def test_agent_template_reads_the_alias_in_one_read() -> None:
    template = (AGENT / "billing-api-key.ctmpl").read_text()
    assert template == (
        '{{ with secret "secret/data/unkey/api_123/by-name/billing" }}{{ .Data.data.key }}{{ end }}'
    )
    config = (AGENT / "agent.hcl").read_text()
    assert re.search(r'source\s*=\s*"\./billing-api-key\.ctmpl"', config)
    assert re.search(r'token_file_path\s*=\s*"\./vault-token"', config)


def render_with_agent(workdir: Path, address: str, timeout: float = 30.0) -> str:
    """Run ``bao agent`` in ``workdir`` until the template's file appears; return its text."""
    destination = workdir / "out" / "billing-api-key"
    env = {"PATH": os.environ.get("PATH", os.defpath), "BAO_ADDR": address, "HOME": str(workdir)}
    agent = subprocess.Popen(
        [find_bao(), "agent", "-config=agent.hcl"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and agent.poll() is None:
            if destination.exists() and destination.stat().st_size:
                return destination.read_text()
            time.sleep(0.05)
    finally:
        agent.terminate()
        output, _ = agent.communicate(timeout=10)
    pytest.fail(f"bao agent rendered nothing (exit {agent.returncode}):\n{output[-3000:]}")


def test_vault_agent_renders_the_current_key(
    tmp_path: Path, openbao_server: OpenBaoServer, unkey: UnkeyClient, unkey_api_id: str
) -> None:
    vault = VaultStore(openbao_server.client())
    first = provision(unkey, vault, unkey_api_id, alias=ALIAS)
    openbao_server.write_policy(
        "unkey-reader", (ROOT / "policies" / "vault-reader.hcl").read_text()
    )
    # The reader policy, plus Vault's default policy: the agent looks its own token up.
    answer = openbao_server.client().auth.token.create(policies=["unkey-reader"], ttl="10m")
    reader = answer["auth"]["client_token"]
    assert answer["auth"]["policies"] == ["default", "unkey-reader"]

    def rendered() -> str:
        workdir = tmp_path / str(time.monotonic_ns())
        shutil.copytree(AGENT, workdir)
        (workdir / "vault-token").write_text(reader)
        template = workdir / "billing-api-key.ctmpl"
        template.write_text(template.read_text().replace(PLACEHOLDER_API, unkey_api_id))
        config = workdir / "agent.hcl"
        text = config.read_text().replace("/run/secrets/billing-api-key", "./out/billing-api-key")
        config.write_text(text)
        return render_with_agent(workdir, openbao_server.url)

    current = vault.get_current(api_id=unkey_api_id, alias=ALIAS)
    assert current.key_id == first.key_id
    assert rendered() == current.secret.reveal()

    # After a rotation the same template renders the new key.
    rotated = rotate(unkey, vault, unkey_api_id, alias=ALIAS)
    current = vault.get_current(api_id=unkey_api_id, alias=ALIAS)
    assert current.key_id == rotated.key_id
    assert rendered() == current.secret.reveal()


def load_manifests(name: str) -> list[dict[str, Any]]:
    documents = list(yaml.safe_load_all((EXTERNAL / name).read_text()))
    assert all(isinstance(doc, dict) for doc in documents)
    return documents


def external_secret(documents: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one SecretStore and the one ExternalSecret, checked to refer to each other."""
    kinds = {doc["kind"]: doc for doc in documents}
    assert sorted(kinds) == ["ExternalSecret", "SecretStore"]
    for doc in documents:
        assert doc["apiVersion"] == "external-secrets.io/v1"
    secret_store, external = kinds["SecretStore"], kinds["ExternalSecret"]
    spec = external["spec"]
    assert spec["secretStoreRef"] == {
        "kind": "SecretStore",
        "name": secret_store["metadata"]["name"],
    }
    assert spec["target"]["name"] == "billing-api-key"
    # Well inside the default grace period of 24 h.
    assert re.fullmatch(r"\d+m", spec["refreshInterval"])
    assert int(spec["refreshInterval"][:-1]) <= 60
    (item,) = spec["data"]
    return secret_store, item


def remote_ref(item: dict[str, Any], api_id: str) -> tuple[str, str]:
    ref = item["remoteRef"]
    assert set(ref) == {"key", "property"}
    return ref["key"].replace(PLACEHOLDER_API, api_id), ref["property"]


def assert_names_the_alias(store: SecretStore, key: str, api_id: str) -> None:
    assert key == store.alias_location(api_id=api_id, alias=ALIAS)


def test_external_secret_for_vault_reads_the_alias(
    openbao_server: OpenBaoServer, unkey: UnkeyClient, unkey_api_id: str
) -> None:
    secret_store, item = external_secret(load_manifests("vault.yaml"))
    provider = secret_store["spec"]["provider"]["vault"]
    assert provider["version"] == "v2"
    key, prop = remote_ref(item, unkey_api_id)
    vault = VaultStore(openbao_server.client(), mount=provider["path"])
    assert_names_the_alias(vault, key, unkey_api_id)
    provision(unkey, vault, unkey_api_id, alias=ALIAS)
    # What the operator does: read remoteRef.key from the KV v2 mount, take the property.
    answer = openbao_server.client().secrets.kv.v2.read_secret_version(
        path=key, mount_point=provider["path"], raise_on_deleted_version=True
    )
    value = answer["data"]["data"][prop]
    assert value == vault.get_current(api_id=unkey_api_id, alias=ALIAS).secret.reveal()


def test_external_secret_for_secrets_manager_reads_the_alias(
    moto_server: MotoServer, unkey: UnkeyClient, unkey_api_id: str
) -> None:
    secret_store, item = external_secret(load_manifests("aws.yaml"))
    assert secret_store["spec"]["provider"]["aws"]["service"] == "SecretsManager"
    key, prop = remote_ref(item, unkey_api_id)
    client = moto_server.client("secretsmanager")
    aws = SecretsManagerStore(client)
    assert_names_the_alias(aws, key, unkey_api_id)
    provision(unkey, aws, unkey_api_id, alias=ALIAS)
    # What the operator does: GetSecretValue on remoteRef.key, the JSON member property.
    value = json.loads(client.get_secret_value(SecretId=key)["SecretString"])[prop]
    assert value == aws.get_current(api_id=unkey_api_id, alias=ALIAS).secret.reveal()
