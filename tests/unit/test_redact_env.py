"""The guard holds credentials where they are loaded, and reads no variable on an ordinary call.

Issue 19: the guard re-read seven credential variables on every guarded call (69% of a cached
read). Now a constructor, a settings source (``guarded(fresh=True)``), an HTTP client built or
put under the transport policy, and :func:`install_guards` hold what the environment names;
any other entry point reads nothing.
"""

from __future__ import annotations

import pytest

from unkey_secrets._redact import (
    CREDENTIAL_VARIABLES,
    MASK,
    confined,
    ensure_installed,
    guarded,
    install_guards,
    scrub,
)
from unkey_secrets.settings import UnkeySettings

from ..security._canary import new_canary
from ._environ_reads import counting_reads

CALLS = 100


@guarded
def _entry_point(value: int) -> int:
    return value + 1


class _Loader:
    @guarded
    def __init__(self) -> None:
        self.loaded = True


@guarded(fresh=True)
def _settings_source() -> dict[str, str]:
    return {}


def test_an_ordinary_entry_point_reads_no_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from unkey_secrets import Secret

    install_guards()
    with counting_reads(monkeypatch) as reads:
        for index in range(CALLS):
            _entry_point(index)
            ensure_installed()
            with confined(Secret("sk_unit_" + "x" * 20)):
                pass
    assert reads.names == {}, reads.names


@pytest.mark.parametrize(
    "load", [_Loader, _settings_source, UnkeySettings], ids=["constructor", "source", "settings"]
)
@pytest.mark.parametrize("variable", CREDENTIAL_VARIABLES)
def test_a_credential_set_after_import_is_held_where_it_may_be_loaded(
    load: object, variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    canary = new_canary()
    monkeypatch.setenv(variable, canary)
    with counting_reads(monkeypatch) as reads:
        _entry_point(1)
    assert reads.names == {}, "an ordinary call does not look"
    load()  # type: ignore[operator]
    assert scrub(f"credential resolution: found {canary}") == (
        f"credential resolution: found {MASK}"
    )


def test_unkey_settings_hold_a_root_key_given_as_a_value() -> None:
    canary = new_canary()
    UnkeySettings(root_key=canary)
    assert canary not in scrub(f"root {canary}")
