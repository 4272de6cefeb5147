"""pytest fixtures for real local servers: OpenBao, moto and the Unkey emulator.

Registered through the ``pytest11`` entry point, so any project that installs
``unkey-secrets[test]`` gets them. Each server starts on a free loopback port once per session,
only when a test asks for it, and stops at the end.

===========================  ====================================================================
fixture                      yields
===========================  ====================================================================
``unkey_emulator``           :class:`LocalUnkey`: ``.url``, ``.root_key``, ``.emulator`` (the
                             :class:`~unkey_secrets.testing.emulator.Emulator` state),
                             ``.client()``, and the Emulator's own ``create_api``, ``keys``,
                             ``key``, ``calls``, ``faults``; faults are cleared around each test
``unkey_api_id``             a new API id (``api_...``) in the emulator, one per test
``unkey_emulator_server``    the session's :class:`~unkey_secrets.testing.emulator.EmulatorServer`
``openbao_server``           the session's :class:`~unkey_secrets.testing.openbao.OpenBaoServer`
                             (``.url``, ``.root_token``, ``.client()``); KV v2 at ``secret/``
``moto_server``              the session's :class:`~unkey_secrets.testing.moto.MotoServer`
                             (``.url``, ``.region``, ``.client(service)``); its state is kept
                             for the whole session
``moto_clean``               the same server, reset before the test: no secret of an earlier
                             test is left
``unkey_env``                sets ``UNKEY_ROOT_KEY``, ``UNKEY_BASE_URL`` and ``UNKEY_API_ID``
                             (``unkey_api_id``) for the test; yields the dict it set
``vault_env``                sets ``VAULT_ADDR`` and ``VAULT_TOKEN`` (OpenBao's root token),
                             removes every other ``VAULT_*``; yields the dict it set
``aws_env``                  sets ``AWS_ENDPOINT_URL``, ``AWS_REGION`` and
                             ``AWS_DEFAULT_REGION`` (boto3's), dummy credentials, no profile or
                             config file; yields the dict it set
===========================  ====================================================================

The ``*_env`` fixtures use ``monkeypatch``: the environment is put back after each test. The
dict each yields is an :class:`EnvValues`: its repr masks the credentials, so a failing test's
report (``pytest -l``, a JUnit XML file kept as a CI artifact) shows none.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, ClassVar

import pytest

__all__ = [
    "EnvValues",
    "LocalUnkey",
    "aws_env",
    "moto_clean",
    "moto_server",
    "openbao_server",
    "unkey_api_id",
    "unkey_emulator",
    "unkey_emulator_server",
    "unkey_env",
    "vault_env",
]

if TYPE_CHECKING:
    from ..unkey import UnkeyClient
    from .emulator import EmulatedKey, Emulator, EmulatorServer, Faults
    from .moto import MotoServer
    from .openbao import OpenBaoServer


class LocalUnkey:
    """What ``unkey_emulator`` yields: the running emulator, by URL and root key, and its state.

    ``url`` and ``root_key`` are what ``UNKEY_BASE_URL`` and ``UNKEY_ROOT_KEY`` take;
    ``emulator`` is the in-memory state behind them. The state's test helpers are here as well
    (``create_api``, ``keys``, ``key``, ``calls``, ``faults``...), so a test may use this object
    where it used the :class:`~unkey_secrets.testing.emulator.Emulator`.
    """

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.emulator: Emulator = server.emulator

    def __repr__(self) -> str:
        # Safe on a half-built object, or one whose server is not started (no url yet).
        server = getattr(self, "server", None)
        url = None
        if server is not None and getattr(server, "_server", None) is not None:
            url = server.url
        return f"LocalUnkey(url={url!r})"

    @property
    def url(self) -> str:
        """The base URL, such as ``http://127.0.0.1:43211`` (``UNKEY_BASE_URL``)."""
        return self.server.url

    @property
    def root_key(self) -> str:
        """A root key with every permission (``UNKEY_ROOT_KEY``)."""
        return self.emulator.root_key

    def client(self) -> UnkeyClient:
        """Our :class:`~unkey_secrets.UnkeyClient` for this emulator (close it, or use ``with``)."""
        from ..unkey import UnkeyClient

        return UnkeyClient(self.root_key, base_url=self.url)

    @property
    def calls(self) -> Counter[str]:
        """Requests received per operation (``"keys.createKey"``...)."""
        return self.emulator.calls

    @property
    def faults(self) -> Faults:
        """The faults to inject (see :class:`~unkey_secrets.testing.emulator.Faults`)."""
        return self.emulator.faults

    def create_api(self, name: str = "api", *, store_encrypted_keys: bool = False) -> str:
        """Create an API (keyspace) and return its id."""
        return self.emulator.create_api(name, store_encrypted_keys=store_encrypted_keys)

    def add_root_key(self, permissions: Iterable[str]) -> str:
        """Make a root key with only ``permissions`` and return it."""
        return self.emulator.add_root_key(permissions)

    def keys(self, api_id: str | None = None) -> list[EmulatedKey]:
        """Every key the emulator holds (of ``api_id``, if given), deleted ones included."""
        return self.emulator.keys(api_id)

    def key(self, key_id: str) -> EmulatedKey:
        """One key by id."""
        return self.emulator.key(key_id)

    def reset_faults(self) -> None:
        """Clear every injected fault."""
        self.emulator.reset_faults()


_MASK = "**********"


class EnvValues(dict[str, str]):
    """The variables an ``*_env`` fixture set: a dict whose repr and str mask the credentials.

    Items read as set (``vault_env["VAULT_TOKEN"]`` is the token); only the renderings a test
    report uses (``pytest -l``, an assertion's diff, a print) show ``**********`` for the
    variables in :attr:`CREDENTIALS`.
    """

    #: The variables whose values are masked.
    CREDENTIALS: ClassVar[frozenset[str]] = frozenset(
        {
            "UNKEY_ROOT_KEY",
            "VAULT_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_SECURITY_TOKEN",
        }
    )

    def __repr__(self) -> str:
        shown = (
            f"{name!r}: {_MASK!r}" if name in self.CREDENTIALS else f"{name!r}: {value!r}"
            for name, value in self.items()
        )
        return "{" + ", ".join(shown) + "}"

    __str__ = __repr__


@pytest.fixture(scope="session")
def unkey_emulator_server() -> Iterator[EmulatorServer]:
    """A running Unkey emulator for the whole session."""
    from .emulator import EmulatorServer

    with EmulatorServer() as server:
        yield server


@pytest.fixture
def unkey_emulator(unkey_emulator_server: EmulatorServer) -> Iterator[LocalUnkey]:
    """The session's emulator (``.url``, ``.root_key``, its state); faults cleared per test."""
    local = LocalUnkey(unkey_emulator_server)
    local.reset_faults()
    yield local
    local.reset_faults()


@pytest.fixture
def unkey_api_id(unkey_emulator: LocalUnkey) -> str:
    """A new API (keyspace) in the emulator for each test, so tests never see each other's keys."""
    return unkey_emulator.create_api("test")


@pytest.fixture(scope="session")
def openbao_server() -> Iterator[OpenBaoServer]:
    """A running OpenBao dev server (the real ``bao`` binary) for the whole session."""
    from .openbao import OpenBaoServer

    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A running moto server (Secrets Manager, IAM, STS, KMS, Lambda) for the whole session.

    Its Secrets Manager answers as AWS does where moto as shipped does not (after
    UpdateSecretVersionStage, GetSecretValue without a stage reads the new AWSCURRENT; see
    :mod:`unkey_secrets.testing.moto`).

    Its state lasts the session: use ``moto_clean`` for a test that needs it empty, or names
    unique to the test (``unkey_api_id`` makes every location unique).
    """
    from .moto import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def moto_clean(moto_server: MotoServer) -> MotoServer:
    """The session's moto server, with every backend reset before this test."""
    moto_server.reset()
    return moto_server


@pytest.fixture
def unkey_env(
    monkeypatch: pytest.MonkeyPatch, unkey_emulator: LocalUnkey, unkey_api_id: str
) -> dict[str, str]:
    """``UNKEY_ROOT_KEY``, ``UNKEY_BASE_URL`` and ``UNKEY_API_ID`` for the code under test."""
    values = EnvValues(
        {
            "UNKEY_ROOT_KEY": unkey_emulator.root_key,
            "UNKEY_BASE_URL": unkey_emulator.url,
            "UNKEY_API_ID": unkey_api_id,
        }
    )
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def vault_env(monkeypatch: pytest.MonkeyPatch, openbao_server: OpenBaoServer) -> dict[str, str]:
    """``VAULT_ADDR`` and ``VAULT_TOKEN`` for OpenBao; no other ``VAULT_*`` setting is left."""
    for name in list(os.environ):
        if name.startswith("VAULT_"):
            monkeypatch.delenv(name)
    values = EnvValues(VAULT_ADDR=openbao_server.url, VAULT_TOKEN=openbao_server.root_token)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_server: MotoServer) -> dict[str, str]:
    """The standard AWS variables for moto: endpoint, region, dummy keys, no profile or files.

    The region is in both ``AWS_REGION`` and ``AWS_DEFAULT_REGION``: a plain
    ``boto3.client("secretsmanager")`` reads only the latter (botocore reads ``AWS_REGION`` on
    Lambda alone), so the code under test finds moto with no argument.
    """
    from .moto import DUMMY_ACCESS_KEY_ID, DUMMY_SECRET_ACCESS_KEY

    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    values = EnvValues(
        {
            "AWS_ENDPOINT_URL": moto_server.url,
            "AWS_REGION": moto_server.region,
            "AWS_DEFAULT_REGION": moto_server.region,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    )
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values
