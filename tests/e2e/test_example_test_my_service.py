"""examples/test_my_service.py, run by pytest in a fresh process as a user's suite would be.

``testpaths`` is ``["tests"]``, so the example is not collected by ``make test`` itself; this
test runs it by path, with the plugin loaded from its entry point (no conftest involved).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
_OWN_PREFIXES = ("AWS_", "VAULT_", "UNKEY_", "BAO_")


def test_the_users_example_suite_passes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_PREFIXES)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "examples" / "test_my_service.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={tmp_path / 'report.xml'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,  # not the repository: the fixtures come from the installed plugin
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "report.xml").read_text()
    assert 'tests="4"' in report
    assert 'failures="0"' in report
    assert 'skipped="0"' in report
