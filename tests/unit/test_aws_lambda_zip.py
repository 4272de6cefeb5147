"""`make lambda-zip`: reproducible bytes, no boto3, and the handler imports from the zip alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_lambda_zip.py"


def _build(target: Path) -> bytes:
    subprocess.run([sys.executable, str(SCRIPT), str(target)], check=True, capture_output=True)
    return target.read_bytes()


def test_the_package_is_reproducible_and_self_sufficient(tmp_path: Path) -> None:
    first = _build(tmp_path / "a.zip")
    assert _build(tmp_path / "b.zip") == first
    # The runtime it was built for, beside it: what rotation-lambda deploys it with.
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}\n"
    assert (tmp_path / "a.zip.runtime").read_text() == runtime
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        names = archive.namelist()
        assert names == sorted(names)
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    tops = {name.split("/")[0] for name in names}
    assert {"unkey_secrets", "httpx", "httpcore", "h11", "anyio", "certifi", "idna"} <= tops
    assert not any(
        top.startswith(("boto3", "botocore", "pydantic", "hvac", "click")) for top in tops
    )
    assert "unkey_secrets/testing/emulator/server.py" not in names
    # An isolated interpreter with only the zip on its path, as /var/task minus boto3.
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); import unkey_secrets.aws_lambda as m; "
        "assert m.handler and 'boto3' not in sys.modules; print(m.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe, str(tmp_path / "a.zip")],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.stdout.strip().startswith(str(tmp_path / "a.zip"))
