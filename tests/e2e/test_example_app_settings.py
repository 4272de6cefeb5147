"""examples/app_settings.py, run as a user would, in a fresh process, against the local stack."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The example's keys carry the prefix "app"; a plaintext would be app_ + base58.
PLAINTEXT = re.compile(r"\bapp_[1-9A-HJ-NP-Za-km-z]{8,}")


def test_the_app_follows_a_rotation_without_a_failed_call_or_a_printed_key() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "UNKEY_"))}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "app_settings.py")],
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
    assert "with billing_key -> 200" in done.stdout
    assert "with reports_key -> 200" in done.stdout
    assert re.search(r"app picked it up .*key_\w+ -> key_\w+", done.stdout), done.stdout
    assert re.search(r"calls made +\d+, failed: 0, keys used: 2", done.stdout), done.stdout
    assert "UnkeySecretStr('**********'" in done.stdout
    assert not PLAINTEXT.search(output), "a plaintext key reached the example's output"
