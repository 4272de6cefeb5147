"""UnkeySettings lives with the Unkey client; the old import paths still reach it."""

from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys

import unkey_secrets.settings
import unkey_secrets.unkey
import unkey_secrets.unkey.client
import unkey_secrets.unkey.settings


def test_every_import_path_names_the_same_class() -> None:
    cls = unkey_secrets.unkey.settings.UnkeySettings
    assert unkey_secrets.settings.UnkeySettings is cls
    assert unkey_secrets.unkey.UnkeySettings is cls
    assert cls.__module__ == "unkey_secrets.unkey.settings"


def test_the_client_does_not_import_the_top_level_settings() -> None:
    # The top-level module reaches both stores' settings; the client needs only its own.
    tree = ast.parse(inspect.getsource(unkey_secrets.unkey.client))
    imported = {
        ("." * node.level) + (node.module or "")
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }
    assert "..settings" not in imported
    assert "unkey_secrets.settings" not in imported


def test_importing_the_client_package_loads_no_settings_or_store_modules() -> None:
    code = (
        "import json, sys, unkey_secrets.unkey; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith("
        "('pydantic', 'unkey_secrets.settings', 'unkey_secrets.unkey.settings', "
        "'unkey_secrets.stores.vault.settings', 'unkey_secrets.stores.aws.settings')))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
