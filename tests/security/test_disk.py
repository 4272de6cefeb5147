"""No file receives a plaintext: the main flows run under strace and every write is checked."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets import UnkeyClient, provision
from unkey_secrets._payload import parse_key_json
from unkey_secrets.stores.aws import SecretsManagerStore

from ..functional._rotation_harness import SecretsManagerSim
from ._canary import needles

_ROOT = Path(__file__).parents[2]
# strace -yy annotates each fd: <socket:[..]>, <TCP:[..]>, <UNIX:[..]>, <pipe:[..]>, </a/path>.
_WRITE = re.compile(
    r"^(?:\[pid\s+\d+\]\s+)?(?:\d+\s+)?(p?writev?|pwrite64|pwritev2?|sendto|sendmsg)\((\d+)<([^>]*)>"
)
_NOT_DISK = re.compile(r"^(?:socket|TCP|TCPv6|UDP|UDPv6|UNIX|UNIX-STREAM|NETLINK|pipe):")
_SOCKET = re.compile(r"^(?:socket|TCP|TCPv6):")


def _strace() -> str:
    found = shutil.which("strace")
    if found:
        return found
    if os.geteuid() == 0 and os.environ.get("CI"):
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "strace"], check=False, capture_output=True
        )
        found = shutil.which("strace")
        if found:
            return found
    pytest.skip("strace is not installed (installed automatically only as root under CI)")


def _start_rotation(moto_server: Any, unkey_emulator_server: Any) -> tuple[SecretsManagerSim, str]:
    """A key stored by unkey-secrets, and its rotation started, for the child's Lambda."""
    client = moto_server.client("secretsmanager")
    api_id = unkey_emulator_server.emulator.create_api("disk-lambda")
    with UnkeyClient(unkey_emulator_server.root_key, base_url=unkey_emulator_server.url) as unkey:
        done = provision(unkey, SecretsManagerStore(client), api_id, alias="svc", prefix="canary")
    assert done.current is not None
    sim = SecretsManagerSim(moto_server, client, done.current.location)
    return sim, sim.start()


def _lambda_environment(moto_server: Any, unkey_emulator_server: Any) -> dict[str, str]:
    """What the Lambda is configured by: AWS's variables and its own."""
    root = moto_server.client("secretsmanager").create_secret(
        Name=f"unkey/root/{uuid.uuid4().hex}",
        SecretString=json.dumps({"root_key": unkey_emulator_server.root_key}),
    )["ARN"]
    return {
        "AWS_ENDPOINT_URL": moto_server.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": moto_server.region,
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "UNKEY_ROOT_KEY_SECRET_ID": root,
        "UNKEY_BASE_URL": unkey_emulator_server.url,
    }


def test_no_write_to_disk_holds_a_plaintext(
    tmp_path: Path,
    openbao_server: Any,
    moto_server: Any,
    unkey_emulator_server: Any,
) -> None:
    strace = _strace()
    trace = tmp_path / "trace.txt"
    rotation, token = _start_rotation(moto_server, unkey_emulator_server)
    (original,) = rotation.all_values().values()
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "AWS_LAMBDA_LOG_LEVEL")},
        **_lambda_environment(moto_server, unkey_emulator_server),
        "CANARY_ROTATION_ARN": rotation.arn,
        "CANARY_ROTATION_TOKEN": token,
        "CANARY_MOTO_URL": moto_server.url,
        "CANARY_VAULT_URL": openbao_server.url,
        "CANARY_VAULT_TOKEN": openbao_server.root_token,
        "CANARY_UNKEY_URL": unkey_emulator_server.url,
        "CANARY_UNKEY_ROOT_KEY": unkey_emulator_server.root_key,
        "CANARY_API_VAULT": unkey_emulator_server.emulator.create_api("disk-vault"),
        "CANARY_API_AWS": unkey_emulator_server.emulator.create_api("disk-aws"),
    }
    child = subprocess.run(
        [
            strace,
            "-f",
            "-yy",
            "-qq",
            "-e",
            "trace=write,pwrite64,writev,pwritev,pwritev2,sendto,sendmsg",
            "-s",
            "100000",
            "-o",
            str(trace),
            sys.executable,
            "-m",
            "tests.security._disk_child",
            str(tmp_path / "debug.log"),
        ],
        cwd=_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if child.returncode != 0 and "ptrace" in child.stderr:
        pytest.skip(f"strace cannot trace here: {child.stderr.strip()[:200]}")
    assert child.returncode == 0, child.stderr[-2000:]
    canaries = json.loads(child.stdout.strip().splitlines()[-1])
    assert len(canaries) == 6  # provision, rotate and capture, in each store
    assert rotation.holder("AWSCURRENT") == token, "the child's Lambda finished the rotation"
    new_key = rotation.value(VersionId=token)
    canaries.append(parse_key_json(new_key, store="aws", location="").secret.reveal())
    # The original went into the child only as an answer it read: it must not be written either.
    hidden = [*canaries, parse_key_json(original, store="aws", location="").secret.reveal()]
    disk_writes, socket_writes = [], []
    for line in trace.read_text(errors="replace").splitlines():
        match = _WRITE.match(line)
        if match and not _NOT_DISK.match(match.group(3)):
            disk_writes.append((match.group(3), line))
        elif match and _SOCKET.match(match.group(3)):
            socket_writes.append(line)
    assert any(path.endswith("debug.log") for path, _ in disk_writes), "the log file was written"
    logged = (tmp_path / "debug.log").read_text()
    assert logged.count('"event": "unkey_secrets.rotation"') == 4, "the Lambda logged each step"
    leaks = [
        f"{path}: {needle}"
        for path, line in disk_writes
        for canary in hidden
        for needle in needles(canary)
        if needle in line
    ]
    assert not leaks, leaks
    # The trace saw the plaintexts go out on sockets: it is looking in the right place.
    unseen = [c for c in canaries if not any(c in line for line in socket_writes)]
    assert not unseen, f"{len(unseen)} of {len(canaries)} canaries never seen on a socket"
