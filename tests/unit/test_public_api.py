import pytest

import unkey_secrets

EXPECTED = {
    "AliasState",
    "AmbiguousOutcomeError",
    "CompensatedError",
    "CompensationFailedError",
    "ConfigurationError",
    "DeletedVersionError",
    "FlowError",
    "InvalidInputError",
    "IssuedKey",
    "KeyEntry",
    "KeyRef",
    "NotOwnedError",
    "ProvisionResult",
    "ReconcileFinding",
    "ReconcileReport",
    "RetryPolicy",
    "RotationConflictError",
    "RotationRecord",
    "RotationResult",
    "RotationStepError",
    "Secret",
    "SecretNotFoundError",
    "SecretStore",
    "StoreAccessError",
    "StoreConflictError",
    "StoreError",
    "StoreNotFoundError",
    "StoreUnavailableError",
    "StoredKey",
    "StoredLocation",
    "StoredValueError",
    "UnkeyAPIError",
    "UnkeyAmbiguousError",
    "UnkeyAuthError",
    "UnkeyClient",
    "UnkeyError",
    "UnkeyNotFoundError",
    "UnkeyRateLimitedError",
    "UnkeyResponseError",
    "UnkeySecretsError",
    "UnkeyServerError",
    "UnkeyTransportError",
    "__version__",
    "available_stores",
    "capture",
    "install_guards",
    "load_store",
    "provision",
    "reconcile",
    "rotate",
}


def test_all_is_pinned() -> None:
    assert set(unkey_secrets.__all__) == EXPECTED
    for name in unkey_secrets.__all__:
        assert hasattr(unkey_secrets, name), name


def test_every_public_thing_has_a_docstring() -> None:
    for name in unkey_secrets.__all__:
        if name == "__version__":
            continue
        assert getattr(unkey_secrets, name).__doc__, name


def test_every_error_derives_from_the_root() -> None:
    for name in unkey_secrets.__all__:
        obj = getattr(unkey_secrets, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, unkey_secrets.UnkeySecretsError), name


def test_importing_the_package_pulls_in_no_store_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, unkey_secrets; "
        "print(sorted(m for m in ('hvac', 'boto3', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _public_modules() -> list[str]:
    import pathlib

    root = pathlib.Path(unkey_secrets.__file__).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] == "__main__" or any(p.startswith("_") for p in parts):
            continue
        names.append(".".join(parts))
    return names


#: Modules whose job is to gather settings defined beside them, like a package's __init__.
_AGGREGATORS = {"unkey_secrets.settings"}

#: What a public module exports from a private module that stays its implementation: the
#: stored value a store plugin writes and reads (``unkey_secrets._payload``), public beside
#: ``SecretStore``.
_REEXPORTED = {
    "unkey_secrets.stores": {"KEY_FORMAT", "key_fields", "parse_key_fields", "parse_key_json"},
}


def _own_public_names(module: object) -> set[str]:
    """The public names a module's source binds at top level (imports count in __init__)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    is_package = getattr(module, "__file__", "").endswith("__init__.py")
    is_package = is_package or module.__name__ in _AGGREGATORS  # type: ignore[attr-defined]
    names: set[str] = set()
    body = list(tree.body)
    for node in tree.body:
        # A lazy package names what it re-exports under TYPE_CHECKING.
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            body += [n for n in node.body if isinstance(n, ast.ImportFrom) and n.level == 1]
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif is_package and isinstance(node, ast.ImportFrom) and node.level == 1:
            # A package re-exports what its own modules define.
            names.update(alias.asname or alias.name for alias in node.names)
    return {n for n in names if not n.startswith("_") or n == "__version__"}


@pytest.mark.parametrize("name", _public_modules())
def test_every_public_module_pins_all_to_its_own_public_names(name: str) -> None:
    import importlib

    module = importlib.import_module(name)
    declared = getattr(module, "__all__", None)
    own = (_own_public_names(module) - {"logger"}) | _REEXPORTED.get(name, set())
    if declared is None:
        assert not own, f"{name} binds public names {sorted(own)} but has no __all__"
        return
    assert len(declared) == len(set(declared)), f"{name}.__all__ repeats a name"
    assert set(declared) == own, name
