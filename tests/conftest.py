from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by the folder they live in, so a run can pick them by cost."""
    for item in items:
        folder = Path(str(item.path)).relative_to(_HERE).parts[0]
        if folder in ("functional", "e2e"):
            item.add_marker(folder)
