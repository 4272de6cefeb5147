"""`make demo`'s program, run as a user would, in a fresh process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The demo's keys carry the prefixes "demo" and "live"; a plaintext would be prefix_ + base58.
PLAINTEXT = re.compile(r"\b(?:demo|live)_[1-9A-HJ-NP-Za-km-z]{8,}")


def test_demo_runs_end_to_end_without_printing_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "UNKEY_"))}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Done: servers stopped." in done.stdout
    key_ids = set(re.findall(r"\bkey_[A-Za-z0-9]{9,}\b", done.stdout))
    assert len(key_ids) >= 3, done.stdout
    assert "VALID (valid=True)" in done.stdout
    assert not PLAINTEXT.search(output), "a plaintext key reached the demo's output"
