"""Every hand-written ``__repr__`` in the package works on an object its constructor never finished.

An error reporter that renders frame locals (``traceback`` with ``capture_locals``, Sentry, rich,
pytest ``-l``) calls ``repr(self)`` in a constructor that failed at its first line; a repr that
raises there loses the report. ``unkey_secrets.unkey`` and ``config/reader.py`` are tested with
their own modules.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType
from typing import Annotated, Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

import unkey_secrets
from unkey_secrets import Secret, StoredKey
from unkey_secrets.config import KeyReader, UnkeyKey, UnkeySecretStr, UnkeyVaultSource
from unkey_secrets.config._source import UnkeyKeySource
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer
from unkey_secrets.testing.emulator.model import Faults
from unkey_secrets.testing.openbao import OpenBaoServer
from unkey_secrets.testing.pytest_plugin import LocalUnkey
from unkey_secrets.testing.secretsmanager import InMemorySecretsManager
from unkey_secrets.transport.policy import Deadline

PACKAGE = Path(unkey_secrets.__file__).parent
#: Tested with their own modules (tests/unit/test_unkey_*.py, test_config_reader*.py).
ELSEWHERE = ("unkey_secrets.unkey", "unkey_secrets.config.reader")


def _modules() -> list[str]:
    names = ["unkey_secrets"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="unkey_secrets."):
        # A __main__ module runs a program when imported.
        if not info.name.startswith(ELSEWHERE) and not info.name.endswith(".__main__"):
            names.append(info.name)
    return names


def _hand_written(cls: type) -> bool:
    """Whether ``cls`` itself defines ``__repr__`` in a source file of the package.

    A dataclass's generated repr has no file (``<string>``): it is not hand-written.
    """
    method = vars(cls).get("__repr__")
    code = getattr(inspect.unwrap(method), "__code__", None) if method is not None else None
    return code is not None and Path(code.co_filename).is_relative_to(PACKAGE)


def _classes() -> list[type]:
    found: dict[str, type] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == name
                and _hand_written(value)
                and not name.startswith(ELSEWHERE)
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


CLASSES = _classes()


def test_the_walk_finds_the_reprs() -> None:
    names = {f"{cls.__module__}.{cls.__qualname__}" for cls in CLASSES}
    for expected in (
        "unkey_secrets._secret.Secret",
        "unkey_secrets._models.StoredKey",
        "unkey_secrets.config._source.UnkeyKeySource",
        "unkey_secrets.config._model.UnkeySecretStr",
        "unkey_secrets.stores.vault.store.VaultStore",
        "unkey_secrets.testing.memory.InMemoryStore",
    ):
        assert expected in names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_repr_works_on_a_bare_object(cls: type[Any]) -> None:
    # object.__new__ for a plain class; a str or dict subclass needs its own __new__.
    bare: object = cls.__new__(cls)  # type: ignore[call-overload]
    assert isinstance(repr(bare), str)


# -- a constructor stopped at each of its lines ---------------------------------------------


class _Settings(BaseSettings):
    billing: Annotated[SecretStr, UnkeyKey(api_id="api_reprs", alias="billing")]


def _vault_store() -> VaultStore:
    import hvac

    return VaultStore(hvac.Client(url="http://127.0.0.1:9"), preflight=False)


def _aws_store() -> SecretsManagerStore:
    import boto3

    client = boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url="http://127.0.0.1:9",
        aws_access_key_id="AKIAREPRSTEST",
        aws_secret_access_key="reprs-test-secret",
    )
    return SecretsManagerStore(client, preflight=False)


#: How to build the classes with a constructor of their own (no I/O).
FACTORIES: dict[type, Callable[[], object]] = {
    Secret: lambda: Secret("plaintext-" * 3),
    StoredKey: lambda: StoredKey(
        key_id="key_reprs1", secret=Secret("x" * 24), api_id="api_reprs", location="here"
    ),
    UnkeySecretStr: lambda: UnkeySecretStr("x" * 24),
    UnkeyKeySource: lambda: UnkeyKeySource(_Settings, KeyReader(InMemoryStore())),
    UnkeyVaultSource: lambda: UnkeyVaultSource(_Settings, KeyReader(_vault_store())),
    VaultStore: _vault_store,
    SecretsManagerStore: _aws_store,
    InMemoryStore: InMemoryStore,
    InMemorySecretsManager: InMemorySecretsManager,
    Faults: Faults,
    Emulator: Emulator,
    EmulatorServer: EmulatorServer,
    LocalUnkey: lambda: LocalUnkey(EmulatorServer()),
    OpenBaoServer: OpenBaoServer,
    Deadline: lambda: Deadline(5.0),
}


class _Stop(Exception):
    """Raised by the tracer at the line where the constructor is to stop."""


def _init_code(cls: type) -> CodeType | None:
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is not None:
            code = getattr(inspect.unwrap(init), "__code__", None)
            return code if isinstance(code, CodeType) else None
    return None


def _stopped_at(factory: Callable[[], object], code: CodeType, line: int) -> object | None:
    """Run ``factory`` with ``code`` (a constructor) stopped at its ``line``-th line event.

    Returns the ``self`` it was building then, or None when it finished before that line.
    """
    seen = 0
    building: list[object] = []

    def in_init(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal seen
        if event == "line" and not building:
            seen += 1
            if seen == line:
                building.append(frame.f_locals["self"])
                raise _Stop
        return in_init

    def calls(frame: FrameType, event: str, arg: Any) -> Any:
        return in_init if event == "call" and frame.f_code is code and not building else None

    previous = sys.gettrace()
    sys.settrace(calls)
    try:
        factory()
    except Exception:  # noqa: BLE001, S110 (_Stop, or what a fresh-error boundary made of it)
        pass
    finally:
        sys.settrace(previous)
    return building[0] if building else None


@pytest.mark.parametrize(
    "cls", list(FACTORIES), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}"
)
def test_repr_works_on_an_object_whose_constructor_failed_at_any_line(cls: type) -> None:
    code = _init_code(cls)
    assert code is not None
    stops = 0
    for line in range(1, 500):
        half_built = _stopped_at(FACTORIES[cls], code, line)
        if half_built is None:
            break
        stops += 1
        assert isinstance(repr(half_built), str), line
    assert stops > 0
