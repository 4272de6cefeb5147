"""examples/kubernetes/: the three ways to restart a workload when its key rotates, run through one.

* Vault Agent's process supervisor mode (examples/vault_agent/exec.hcl, which
  examples/kubernetes/vault-agent-exec.yaml carries): run for real with ``bao agent`` against
  OpenBao, supervising a small app; a rotation by the library restarts the app with the new key.
* Vault Secrets Operator (vault-secrets-operator.yaml): what its VaultStaticSecret names is read
  as the operator reads it, with a token holding the reader policy only, before and after a
  rotation: the Secret it keeps changes, which is what makes it restart the Deployment.
* External Secrets Operator with Reloader (reloader-external-secret.yaml): its remoteRefs are
  followed in Secrets Manager (moto) before and after a rotation, likewise.

Keys are compared by their SHA-256, never printed; the agent's output is checked to hold none.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._k8s_manifests import load_documents
from unkey_secrets import UnkeyClient, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer, find_bao

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AGENT = ROOT / "examples" / "vault_agent"
KUBERNETES = ROOT / "examples" / "kubernetes"
PLACEHOLDER_API = "api_123"
ALIAS = "billing"
#: How long the agent may take to start or restart the app on a loaded machine, in seconds.
DEADLINE = 60.0

# The app the agent supervises: it records each start and stop (pid, key_id, the key's SHA-256)
# in starts.jsonl beside it, and ends with the agent even if the agent is killed outright.
APP = """\
import hashlib, json, os, signal, sys, time

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "starts.jsonl")


def record(event):
    key = os.environ["UNKEY_API_KEY"].encode()
    line = {"pid": os.getpid(), "event": event, "key_id": os.environ["UNKEY_KEY_ID"],
            "key_sha256": hashlib.sha256(key).hexdigest()}
    with open(LOG, "a") as log:
        log.write(json.dumps(line) + "\\n")


def stop(signum, frame):
    record("stopped")
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
record("started")
parent = os.getppid()
while os.getppid() == parent:
    time.sleep(0.1)
"""


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def unkey(unkey_emulator: Any) -> Iterator[UnkeyClient]:
    with unkey_emulator.client() as client:
        yield client


@pytest.fixture
def reader_token(openbao_server: OpenBaoServer) -> str:
    """A token with the reader policy, plus Vault's default policy (token self-lookup)."""
    openbao_server.write_policy(
        "unkey-reader", (ROOT / "policies" / "vault-reader.hcl").read_text()
    )
    answer = openbao_server.client().auth.token.create(policies=["unkey-reader"], ttl="10m")
    assert answer["auth"]["policies"] == ["default", "unkey-reader"]
    return str(answer["auth"]["client_token"])


def replace_once(text: str, old: str, new: str) -> str:
    """``text`` with its one ``old`` replaced; fails the test if the example changed shape."""
    assert text.count(old) == 1, f"expected {old!r} once in the example"
    return text.replace(old, new)


def wait_for(what: str, found: Callable[[], Any], agent: subprocess.Popen[str]) -> Any:
    """Poll ``found`` until it returns something truthy, the agent exits, or DEADLINE passes."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        if agent.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"{what}: not seen within {DEADLINE} s (agent exit {agent.poll()})")


def events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    # A line still being written has no newline yet: leave it for the next poll.
    return [
        json.loads(line) for line in log.read_text().splitlines(keepends=True) if line[-1:] == "\n"
    ]


# -- 3. Vault Agent's process supervisor mode, for real ----------------------------------------


def test_vault_agent_restarts_the_app_with_the_rotated_key(
    tmp_path: Path,
    openbao_server: OpenBaoServer,
    unkey: UnkeyClient,
    unkey_api_id: str,
    reader_token: str,
) -> None:
    vault = VaultStore(openbao_server.client())
    provision(unkey, vault, unkey_api_id, alias=ALIAS)
    first = vault.get_current(api_id=unkey_api_id, alias=ALIAS)
    old_key = first.secret.reveal()

    # The shipped files as they are, but for the API id, the app and a 1 s render interval.
    shutil.copy(AGENT / "auth-token-file.hcl", tmp_path / "auth-token-file.hcl")
    config = (AGENT / "exec.hcl").read_text().replace(PLACEHOLDER_API, unkey_api_id)
    config = replace_once(
        config, 'static_secret_render_interval = "5m"', 'static_secret_render_interval = "1s"'
    )
    config = replace_once(
        config,
        '["/app/billing-api", "--port", "8080"]',
        json.dumps([sys.executable, str(tmp_path / "app.py")]),
    )
    (tmp_path / "exec.hcl").write_text(config)
    (tmp_path / "app.py").write_text(APP)
    (tmp_path / "vault-token").write_text(reader_token)
    log = tmp_path / "starts.jsonl"

    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "BAO_ADDR": openbao_server.url,
        "HOME": str(tmp_path),
    }
    agent = subprocess.Popen(
        [find_bao(), "agent", "-config=auth-token-file.hcl", "-config=exec.hcl"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = ""
    try:
        started = wait_for("the app's first start", lambda: events(log), agent)
        assert [(e["event"], e["key_id"], e["key_sha256"]) for e in started] == [
            ("started", first.key_id, sha256(old_key))
        ]
        first_pid = started[0]["pid"]

        rotated = rotate(unkey, vault, unkey_api_id, alias=ALIAS)
        current = vault.get_current(api_id=unkey_api_id, alias=ALIAS)
        assert current.key_id == rotated.key_id != first.key_id
        new_key = current.secret.reveal()

        def restarted() -> list[dict[str, Any]]:
            seen = events(log)
            return seen if any(e["key_id"] == rotated.key_id for e in seen) else []

        seen = wait_for("the app's start with the rotated key", restarted, agent)
        # One restart: the old app stopped (by restart_stop_signal), then the new one started.
        assert [(e["event"], e["key_id"]) for e in seen] == [
            ("started", first.key_id),
            ("stopped", first.key_id),
            ("started", rotated.key_id),
        ]
        assert seen[1]["pid"] == first_pid != seen[2]["pid"]
        # The key and its key_id come from one render of the alias.
        assert seen[2]["key_sha256"] == sha256(new_key) != sha256(old_key)
        # The grace period covers the gap: the old key still verifies, and so does the new one.
        assert unkey.verify_key(old_key).valid
        assert unkey.verify_key(new_key).valid
    finally:
        agent.terminate()
        try:
            output, _ = agent.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            agent.kill()
            output, _ = agent.communicate(timeout=15)

    # Stopping the agent stops the app (the pod's termination reaches it).
    assert events(log)[-1]["event"] == "stopped"
    assert "spawning" in output
    for key in (old_key, new_key):
        assert key not in output, "the agent's output holds a key"


# -- 2. Vault Secrets Operator ---------------------------------------------------------------


def vso_sync(
    spec: dict[str, Any], openbao_server: OpenBaoServer, token: str, api_id: str
) -> dict[str, str]:
    """What the operator keeps in the destination Secret for ``spec`` (a VaultStaticSecret's)."""
    answer = openbao_server.client(token).secrets.kv.v2.read_secret_version(
        path=spec["path"].replace(PLACEHOLDER_API, api_id),
        mount_point=spec["mount"],
        raise_on_deleted_version=True,
    )
    data = answer["data"]["data"]
    transformation = spec["destination"]["transformation"]
    # The operator's filter: top-level members matching an include pattern; no _raw member.
    assert transformation["excludeRaw"] is True
    return {
        name: value
        for name, value in data.items()
        if any(re.search(pattern, name) for pattern in transformation["includes"])
    }


def test_vault_secrets_operator_sees_a_rotation_through_the_reader_policy(
    openbao_server: OpenBaoServer, unkey: UnkeyClient, unkey_api_id: str, reader_token: str
) -> None:
    docs = {doc["kind"]: doc for doc in load_documents(KUBERNETES / "vault-secrets-operator.yaml")}
    spec = docs["VaultStaticSecret"]["spec"]
    assert spec["type"] == "kv-v2"
    vault = VaultStore(openbao_server.client(), mount=spec["mount"])
    assert spec["path"].replace(PLACEHOLDER_API, unkey_api_id) == vault.alias_location(
        api_id=unkey_api_id, alias=ALIAS
    )
    provision(unkey, vault, unkey_api_id, alias=ALIAS)
    before = vso_sync(spec, openbao_server, reader_token, unkey_api_id)
    current = vault.get_current(api_id=unkey_api_id, alias=ALIAS)
    assert set(before) == {"key", "key_id"}
    assert before["key_id"] == current.key_id
    assert sha256(before["key"]) == sha256(current.secret.reveal())

    rotated = rotate(unkey, vault, unkey_api_id, alias=ALIAS)
    after = vso_sync(spec, openbao_server, reader_token, unkey_api_id)
    current = vault.get_current(api_id=unkey_api_id, alias=ALIAS)
    # The Secret's data changes (so its HMAC does, and the operator restarts the Deployment).
    assert after["key_id"] == rotated.key_id == current.key_id != before["key_id"]
    assert sha256(after["key"]) == sha256(current.secret.reveal()) != sha256(before["key"])


# -- 1. External Secrets Operator + Reloader -------------------------------------------------


def eso_sync(external: dict[str, Any], client: Any, api_id: str) -> dict[str, str]:
    """What the operator keeps in the target Secret: GetSecretValue, the JSON member named."""
    synced = {}
    for item in external["spec"]["data"]:
        ref = item["remoteRef"]
        answer = client.get_secret_value(SecretId=ref["key"].replace(PLACEHOLDER_API, api_id))
        synced[item["secretKey"]] = json.loads(answer["SecretString"])[ref["property"]]
    return synced


def test_external_secret_for_reloader_sees_a_rotation(
    moto_server: MotoServer, unkey: UnkeyClient, unkey_api_id: str
) -> None:
    docs = {
        doc["kind"]: doc for doc in load_documents(KUBERNETES / "reloader-external-secret.yaml")
    }
    assert docs["SecretStore"]["spec"]["provider"]["aws"]["service"] == "SecretsManager"
    external = docs["ExternalSecret"]
    client = moto_server.client("secretsmanager")
    aws = SecretsManagerStore(client)
    for item in external["spec"]["data"]:
        key = item["remoteRef"]["key"].replace(PLACEHOLDER_API, unkey_api_id)
        assert key == aws.alias_location(api_id=unkey_api_id, alias=ALIAS)
    provision(unkey, aws, unkey_api_id, alias=ALIAS)
    before = eso_sync(external, client, unkey_api_id)
    current = aws.get_current(api_id=unkey_api_id, alias=ALIAS)
    assert before["key_id"] == current.key_id
    assert sha256(before["key"]) == sha256(current.secret.reveal())

    rotated = rotate(unkey, aws, unkey_api_id, alias=ALIAS)
    after = eso_sync(external, client, unkey_api_id)
    current = aws.get_current(api_id=unkey_api_id, alias=ALIAS)
    # The Secret's data changes, which is what Reloader acts on.
    assert after["key_id"] == rotated.key_id == current.key_id != before["key_id"]
    assert sha256(after["key"]) == sha256(current.secret.reveal()) != sha256(before["key"])
