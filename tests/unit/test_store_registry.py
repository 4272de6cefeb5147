import sys
import textwrap
from pathlib import Path

import pytest

from unkey_secrets import SecretStore, StoreNotFoundError, available_stores, load_store


@pytest.fixture
def plugin_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An installed third-party distribution registering stores, found by importlib.metadata."""
    dist = tmp_path / "thirdparty_store-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-store\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(
            """
            [unkey_secrets.stores]
            memory = thirdparty_store:MemoryStore
            broken = thirdparty_broken:Store
            notastore = thirdparty_store:NotAStore
            """
        )
    )
    (tmp_path / "thirdparty_store.py").write_text(
        textwrap.dedent(
            """
            from unkey_secrets.stores.base import SecretStore

            class MemoryStore(SecretStore):
                name = "memory"
                def _put(self, key, path): raise NotImplementedError
                def _set_current(self, key, path, alias, expected): raise NotImplementedError
                def _get(self, path): raise NotImplementedError
                def _get_current(self, path): raise NotImplementedError
                def _key_entry(self, path, api_id, key_id): raise NotImplementedError

            class NotAStore:
                pass
            """
        )
    )
    (tmp_path / "thirdparty_broken.py").write_text("import a_module_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("thirdparty_store", "thirdparty_broken"):
        sys.modules.pop(name, None)


def test_builtin_stores_are_registered_as_entry_points() -> None:
    assert {"vault", "aws"} <= set(available_stores())
    assert load_store("vault").name == "vault"
    assert load_store("aws").name == "aws"


def test_unknown_store_lists_what_is_installed() -> None:
    with pytest.raises(StoreNotFoundError) as raised:
        load_store("consul")
    assert "consul" in str(raised.value)
    assert "aws" in str(raised.value)
    assert "vault" in str(raised.value)
    assert {"aws", "vault"} <= set(raised.value.available)


def test_third_party_store_loads_like_a_builtin(plugin_dist: Path) -> None:
    assert "memory" in available_stores()
    store_class = load_store("memory")
    assert issubclass(store_class, SecretStore)
    assert store_class().key_location(api_id="api_1", key_id="key_1") == "unkey/api_1/key_1"


def test_plugin_import_errors_are_not_swallowed(plugin_dist: Path) -> None:
    with pytest.raises(ModuleNotFoundError, match="a_module_that_is_not_installed"):
        load_store("broken")


def test_entry_point_that_is_not_a_store_is_refused(plugin_dist: Path) -> None:
    with pytest.raises(TypeError, match="not a SecretStore"):
        load_store("notastore")
