"""Cold start: importing the rotation handler loads httpx and our own modules, nothing heavier."""

from __future__ import annotations

import json
import subprocess
import sys

# Top-level modules that `import unkey_secrets.aws_lambda` adds on top of `import httpx`.
EXPECTED = {
    # The rotation record's process table (a built-in C module, no start-up cost to speak of).
    "_contextvars",
    "contextvars",
    "dataclasses",
    "hmac",
    "unkey_secrets",
}
FORBIDDEN = {
    "boto3",
    "botocore",
    "hvac",
    "pydantic",
    "pydantic_settings",
    "click",
    "typer",
    "unkey",
}


def _added(code: str) -> set[str]:
    probe = (
        "import json, sys\n"
        # As in the Lambda runtime, no rich: where it is installed (the dev extra), httpx
        # imports it (and what it imports) for its own command line.
        "sys.modules['rich'] = None\n"
        "import httpx\n"
        "before = set(sys.modules)\n"
        f"{code}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_importing_the_handler_pins_its_modules() -> None:
    added = _added("import unkey_secrets.aws_lambda")
    assert added == EXPECTED
    assert not added & FORBIDDEN


def test_boto3_is_imported_at_first_use_only() -> None:
    added = _added(
        "import unkey_secrets.aws_lambda as m\n"
        "assert 'boto3' not in sys.modules\n"
        "import os\n"
        "os.environ.update(AWS_DEFAULT_REGION='us-east-1', AWS_ACCESS_KEY_ID='x',\n"
        "    AWS_SECRET_ACCESS_KEY='x', UNKEY_ALLOW_ROOT_KEY_ENV='true',\n"
        "    UNKEY_ROOT_KEY='unkey_x')\n"
        "m._RUNTIME.rotator()"
    )
    assert {"boto3", "botocore"} <= added
    assert not added & {"hvac", "pydantic", "pydantic_settings", "typer"}
