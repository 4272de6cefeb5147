"""``docs/reference/policies.md`` lists the root key's Unkey permissions as ``doctor`` checks them.

The page's "Unkey root key" table is the one place the other pages link to: each command's row
must name exactly the permissions behind the ``unkey.*`` checks ``doctor`` says it needs.
"""

from __future__ import annotations

import re

from tests.docs._blocks import ROOT
from unkey_secrets.cli.commands.doctor import NEEDS

PAGE = ROOT / "docs" / "reference" / "policies.md"
PERMISSIONS = ("create_key", "read_key", "update_key", "delete_key", "read_api", "verify_key")
#: apis.listKeys, doctor's read_key probe, needs read_api as well.
IMPLIES = {"read_key": {"read_key", "read_api"}}


def _rows() -> dict[str, set[str]]:
    """Command => the permissions its row names, from the page's Unkey root key table."""
    section = PAGE.read_text().split("## Unkey root key", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or cells[0] in ("who", "---"):
            continue
        named = set(re.findall(r"`([a-z_]+)`", cells[1])) & set(PERMISSIONS)
        for command in re.findall(r"`([a-z -]+)`", cells[0]):
            rows[command] = named
    return rows


def test_each_command_row_names_what_doctor_checks_for_it() -> None:
    rows = _rows()
    for command, needs in NEEDS.items():
        expected: set[str] = set()
        for check in needs:
            if check.startswith("unkey."):
                name = check.removeprefix("unkey.")
                expected |= IMPLIES.get(name, {name})
        assert command in rows, f"policies.md has no row for {command}"
        assert rows[command] == expected, command


def test_the_rotation_lambda_row_names_every_call_it_makes() -> None:
    """createSecret rerolls (create_key), testSecret verifies, finishSecret updates and deletes."""
    section = PAGE.read_text().split("## Unkey root key", 1)[1]
    (row,) = [line for line in section.splitlines() if line.startswith("| the rotation Lambda |")]
    assert set(re.findall(r"`([a-z_]+)`", row)) == set(PERMISSIONS)
