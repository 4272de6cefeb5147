"""``docs/reference/environment.md`` lists every environment variable the code reads.

The variables are found two ways, so neither a settings field nor an ``os.environ`` read can
slip by:

* every field of the pydantic settings classes (``UnkeySettings``, ``VaultSettings``,
  ``AwsSettings``), under the names pydantic-settings reads it by (its aliases, and its
  ``env_prefix`` and name where the class populates by name or the field has no alias);
* every string literal in ``unkey_secrets/`` shaped like a variable (``UPPER_CASE_WORDS``)
  that is not the name of something in the code (a constant, a class) nor one of the few
  other literals of that shape listed in :data:`NOT_VARIABLES` (TLS alerts, Unkey's error
  codes). A new ``os.environ.get("UNKEY_...")`` therefore fails here until the page lists it.

Each ``UNKEY_*`` name the page lists must be one the code reads, too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.docs._blocks import ROOT

PAGE = ROOT / "docs" / "reference" / "environment.md"
PACKAGE = ROOT / "unkey_secrets"

_SHAPE = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")

#: Literals shaped like variables that are not: TLS alert names the Vault errors recognise,
#: Unkey's error codes the emulator and readers use, an ``os`` flag, a moto internal.
NOT_VARIABLES = frozenset(
    {
        "BAD_CERTIFICATE",
        "CERTIFICATE_EXPIRED",
        "CERTIFICATE_REQUIRED",
        "CERTIFICATE_REVOKED",
        "CERTIFICATE_UNKNOWN",
        "CERTIFICATE_VERIFY_FAILED",
        "HANDSHAKE_FAILURE",
        "UNKNOWN_CA",
        "UNSUPPORTED_CERTIFICATE",
        "INSUFFICIENT_PERMISSIONS",
        "NOT_FOUND",
        "RATE_LIMITED",
        "USAGE_EXCEEDED",
        "O_NONBLOCK",
        "PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT",
    }
)


def literal_variables() -> dict[str, set[str]]:
    """Variable-shaped string literals of the package, by name: the files using each."""
    literals: dict[str, set[str]] = {}
    names: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.rsplit(".", 1)[-1])
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _SHAPE.match(node.value)
            ):
                literals.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    return {k: v for k, v in literals.items() if k not in names and k not in NOT_VARIABLES}


def settings_variables() -> set[str]:
    """The variables the settings classes read, as pydantic-settings names them."""
    from unkey_secrets._config import _aliases
    from unkey_secrets.settings import AwsSettings, UnkeySettings, VaultSettings

    found: set[str] = set()
    for cls in (UnkeySettings, VaultSettings, AwsSettings):
        prefix = str(cls.model_config.get("env_prefix") or "")
        by_name = bool(cls.model_config.get("populate_by_name"))
        for field in cls.model_fields:
            aliases = _aliases(cls, field)
            found.update(aliases)
            if by_name or not aliases:  # read under the prefix and its own name too
                found.add(f"{prefix}{field}".upper())
    return found


def documented() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`", PAGE.read_text(encoding="utf-8")))


def test_every_variable_read_is_documented() -> None:
    literals = literal_variables()
    missing = sorted((set(literals) | settings_variables()) - documented())
    assert not missing, "variables read but not in docs/reference/environment.md:\n" + "\n".join(
        f"  {name} ({', '.join(sorted(literals.get(name, {'settings'})))})" for name in missing
    )


def test_every_documented_unkey_variable_is_read() -> None:
    read = set(literal_variables()) | settings_variables()
    stale = sorted(n for n in documented() if n.startswith("UNKEY_") and n not in read)
    assert not stale, f"environment.md lists variables no code reads: {stale}"


def test_the_scan_finds_both_kinds() -> None:
    """The scan sees a Lambda variable, a CLI one and a settings-only one."""
    assert {"UNKEY_GRACE_PERIOD_SECONDS", "UNKEY_SECRETS_AUDIT_LOG"} <= set(literal_variables())
    assert "UNKEY_SECRETS_VAULT_AUTH_METHOD" in settings_variables()
    assert Path(PAGE).is_file()
