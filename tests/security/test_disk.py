"""No file receives a plaintext: the main flows run under strace and every write is checked."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ._canary import needles

_ROOT = Path(__file__).parents[2]
# strace -yy annotates each fd: <socket:[..]>, <TCP:[..]>, <UNIX:[..]>, <pipe:[..]>, </a/path>.
_WRITE = re.compile(
    r"^(?:\[pid\s+\d+\]\s+)?(?:\d+\s+)?(p?writev?|pwrite64|pwritev2?)\((\d+)<([^>]*)>"
)
_NOT_DISK = re.compile(r"^(?:socket|TCP|TCPv6|UDP|UDPv6|UNIX|UNIX-STREAM|NETLINK|pipe):")


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


def test_no_write_to_disk_holds_a_plaintext(
    tmp_path: Path,
    openbao_server: Any,
    moto_server: Any,
    unkey_emulator_server: Any,
) -> None:
    strace = _strace()
    trace = tmp_path / "trace.txt"
    env = {
        **os.environ,
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
            "trace=write,pwrite64,writev,pwritev,pwritev2",
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
    disk_writes = []
    lines = trace.read_text(errors="replace").splitlines()
    for line in lines:
        match = _WRITE.match(line)
        if match and not _NOT_DISK.match(match.group(3)):
            disk_writes.append((match.group(3), line))
    assert any(path.endswith("debug.log") for path, _ in disk_writes), "the log file was written"
    leaks = [
        f"{path}: {needle}"
        for path, line in disk_writes
        for canary in canaries
        for needle in needles(canary)
        if needle in line
    ]
    assert not leaks, leaks
    # The trace saw the plaintexts go out on sockets: it is looking in the right place.
    assert all(any(canary in line for line in lines) for canary in canaries)
