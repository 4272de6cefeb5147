"""Boundaries that take or load a credential leave nothing of it in a rendered traceback.

Each failure is rendered the way an error reporter does (``traceback`` with ``capture_locals``,
from the first frame outside the tests down, pydantic-settings' and hvac's frames included) and
each credential is hunted raw, JSON-escaped and by halves. The scenarios are issue 15's: a
Vault login answered with ``{"auth": null}``, ``{}`` or JSON nested 100,000 deep, a
``KeyboardInterrupt`` in the middle of a login, a settings source failing under
pydantic-settings, the settings models' reprs, and a third-party log record carrying
``exc_info`` to a formatter that renders frame locals.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from unkey_secrets import ConfigurationError, Secret, StoreAccessError, _redact
from unkey_secrets._config import load_settings
from unkey_secrets.aws_lambda import build_rotator, handler
from unkey_secrets.aws_lambda.config import RotationConfig, RuntimeConfig
from unkey_secrets.config import (
    KeyNotFoundError,
    KeyReader,
    UnkeyKey,
    UnkeyKeySource,
    UnkeySecretsManagerSource,
    UnkeyVaultSource,
)
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.settings import AwsSettings
from unkey_secrets.stores.vault import VaultStore, auth
from unkey_secrets.stores.vault.settings import VaultSettings
from unkey_secrets.testing import InMemoryStore

from ._canary import needles, new_canary

TESTS = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Vault, AWS or Unkey settings, token file or profile of the machine running the tests."""
    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_", "AWS_", "BAO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def failure_of(call: Callable[[], object]) -> BaseException:
    """The exception ``call`` raises (any BaseException); fails the test if it returns."""
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 (KeyboardInterrupt is a case under test)
        return exc
    raise AssertionError("the call did not fail")


def rendered(exc: BaseException) -> str:
    """``exc`` as a reporter renders it, locals included, from the first frame not a test's."""
    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename).is_relative_to(TESTS):
        tb = tb.tb_next
    assert tb is not None, "no frame below the test"
    text = traceback.TracebackException(type(exc), exc, tb, capture_locals=True).format()
    return "".join(text)


def found(credentials: list[str], text: str) -> list[str]:
    """The credentials whose value, JSON-escaped value or either half shows in ``text``."""
    return [
        value
        for value in credentials
        if any(n in text for n in [*needles(value), json.dumps(value)[1:-1]])
    ]


# -- a Vault stand-in answering logins badly -------------------------------------------------

DEEP = ("[" * 100_000 + "]" * 100_000).encode()
ANSWERS = {
    "auth-null": json.dumps({"auth": None, "data": {}}).encode(),
    "empty": b"{}",
    "deep": DEEP,
}


@dataclass
class FakeVault:
    """A loopback HTTP server answering every Vault login with ``answer``.

    ``answer=None``: interrupt the main thread (SIGINT, as Ctrl-C does) once the login request
    has arrived, and never answer.
    """

    answer: bytes | None
    url: str = ""
    logins: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def fake_vault(request: pytest.FixtureRequest) -> Iterator[FakeVault]:
    vault = FakeVault(answer=request.param)
    main = threading.main_thread().ident

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            vault.logins.append(self.path)
            if vault.answer is None:
                assert main is not None
                signal.pthread_kill(main, signal.SIGINT)
                vault.release.wait(30)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(vault.answer)))
            self.end_headers()
            self.wfile.write(vault.answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    vault.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield vault
    finally:
        signal.signal(signal.SIGINT, previous)
        vault.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def _credentials(method: str) -> dict[str, str]:
    """The method's credentials, as VaultSettings fields."""
    if method == "approle":
        return {"role_id": new_canary(), "secret_id": new_canary()}
    return {"jwt": f"eyJ{new_canary()}.eyJ{new_canary()}.sig{new_canary()}"}


def _settings(vault: FakeVault, method: str, values: dict[str, str]) -> VaultSettings:
    given: dict[str, Any] = {"addr": vault.url, "auth_method": method, "timeout": 10, **values}
    if method == "jwt":
        given["role"] = "deployer"
    return VaultSettings(**given)


class _Keyed(BaseSettings):
    billing: Annotated[SecretStr, UnkeyKey(api_id="api_boundary", alias="billing")]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, UnkeyVaultSource(settings_cls))


def _set_environment(monkeypatch: pytest.MonkeyPatch, settings: VaultSettings) -> None:
    monkeypatch.setenv("VAULT_ADDR", str(settings.addr))
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", settings.auth_method)
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_TIMEOUT", "10")
    for name in ("role_id", "secret_id", "jwt"):
        value = getattr(settings, name)
        if value is not None:
            monkeypatch.setenv(f"UNKEY_SECRETS_VAULT_{name.upper()}", value.get_secret_value())
    if settings.role is not None:
        monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE", settings.role)


def _source_from_environment(settings: VaultSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    _set_environment(monkeypatch, settings)
    return UnkeyVaultSource(_Keyed)


def _settings_class(settings: VaultSettings, monkeypatch: pytest.MonkeyPatch) -> object:
    _set_environment(monkeypatch, settings)
    return _Keyed()  # type: ignore[call-arg]


ENTRY_POINTS: dict[str, Callable[[VaultSettings, pytest.MonkeyPatch], object]] = {
    "login": lambda s, _: auth.login(auth.build_client(s), s),
    "VaultStore.from_settings": lambda s, _: VaultStore.from_settings(s),
    "KeyReader.vault": lambda s, _: KeyReader.vault(s),
    "UnkeyVaultSource(settings=)": lambda s, _: UnkeyVaultSource(_Keyed, settings=s),
    "UnkeyVaultSource(environment)": _source_from_environment,
    "settings class": _settings_class,
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("method", ["approle", "jwt"])
@pytest.mark.parametrize("fake_vault", list(ANSWERS.values()), ids=list(ANSWERS), indirect=True)
def test_a_login_answered_without_a_token_leaves_no_credential(
    fake_vault: FakeVault, method: str, entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = _credentials(method)
    settings = _settings(fake_vault, method, values)
    error = failure_of(lambda: ENTRY_POINTS[entry](settings, monkeypatch))
    assert fake_vault.logins == [f"/v1/auth/{method}/login"]
    assert isinstance(error, StoreAccessError), repr(error)
    assert "without a token" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert not found(list(values.values()), rendered(error))


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
@pytest.mark.parametrize("method", ["approle", "jwt"])
@pytest.mark.parametrize("fake_vault", [None], ids=["ctrl-c"], indirect=True)
def test_a_login_interrupted_by_ctrl_c_leaves_no_credential(
    fake_vault: FakeVault, method: str, entry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert threading.current_thread() is threading.main_thread()
    values = _credentials(method)
    settings = _settings(fake_vault, method, values)
    error = failure_of(lambda: ENTRY_POINTS[entry](settings, monkeypatch))
    assert fake_vault.logins == [f"/v1/auth/{method}/login"]
    assert isinstance(error, KeyboardInterrupt), repr(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert not found(list(values.values()), rendered(error))


# -- the settings models and the sources under pydantic-settings ------------------------------


def test_every_credential_in_the_settings_models_is_a_secret() -> None:
    from unkey_secrets.unkey.settings import UnkeySettings

    credentials = {"token", "role_id", "secret_id", "jwt", "root_key"}
    checked = 0
    for model in (VaultSettings, AwsSettings, UnkeySettings):
        for name, info in model.model_fields.items():
            if name in credentials:
                assert info.annotation == SecretStr | None, f"{model.__name__}.{name}"
                checked += 1
    assert checked == 5
    values = {name: new_canary() for name in ("token", "role_id", "secret_id", "jwt")}
    text = repr(VaultSettings(addr="http://127.0.0.1:8200", **values))  # type: ignore[arg-type]
    assert not found(list(values.values()), text)


class _RootAndKey(BaseSettings):
    """An app's settings: a root key from the environment and a key from a store."""

    root_key: SecretStr
    billing: Annotated[SecretStr, UnkeyKey(api_id="api_boundary", alias="billing")]

    model_config = {"env_prefix": "UNKEY_"}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        reader = KeyReader(InMemoryStore(), max_age=60)  # nothing stored: the read fails
        return (init_settings, env_settings, UnkeyKeySource(settings_cls, reader))


@pytest.mark.parametrize("through_load_settings", [False, True])
def test_a_failing_source_leaves_no_environment_value_in_pydantic_settings_frames(
    through_load_settings: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    root_key = new_canary()
    monkeypatch.setenv("UNKEY_ROOT_KEY", root_key)
    error = failure_of(
        lambda: load_settings(_RootAndKey) if through_load_settings else _RootAndKey()  # type: ignore[call-arg]
    )
    assert isinstance(error, KeyNotFoundError), repr(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    text = rendered(error)
    if not through_load_settings:  # below load_settings, the frames are not even kept
        assert "_settings_build_values" in text  # pydantic-settings' frames are rendered
    assert not found([root_key], text)


def test_a_source_built_for_another_store_raises_a_fresh_error() -> None:
    reader = KeyReader(InMemoryStore())
    error = failure_of(lambda: UnkeyVaultSource(_Keyed, reader))
    assert isinstance(error, ConfigurationError)
    assert error.__cause__ is None
    assert error.__context__ is None
    # The fresh error's traceback starts at the boundary: nothing below it is reachable.
    assert error.__traceback__ is not None
    frames = traceback.extract_tb(error.__traceback__)
    assert [f.name for f in frames if "unkey_secrets" in f.filename] == ["wrapper"]


def test_load_settings_names_the_field_never_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {"secret_id": new_canary(), "role_id": new_canary(), "root": new_canary()}
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_SECRET_ID", values["secret_id"])
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE_ID", values["role_id"])
    monkeypatch.setenv("UNKEY_ROOT_KEY", values["root"])
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_KV_VERSION", values["root"])
    error = failure_of(lambda: load_settings(VaultSettings))
    assert isinstance(error, ConfigurationError)
    assert "kv_version (UNKEY_SECRETS_VAULT_KV_VERSION)" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert not found(list(values.values()), rendered(error))


def test_the_lambda_configuration_leaves_no_environment_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root_key, session_token = new_canary(), new_canary()
    environ = {
        "UNKEY_ROOT_KEY": root_key,
        "AWS_SESSION_TOKEN": session_token,
        "UNKEY_TIMEOUT": "not a number",
    }
    for call in (
        lambda: RuntimeConfig.from_environ(environ),
        lambda: RotationConfig.from_environ({**environ, "UNKEY_GRACE_PERIOD_SECONDS": "x"}),
    ):
        error = failure_of(call)
        assert isinstance(error, ConfigurationError)
        assert error.__context__ is None
        assert not found([root_key, session_token], rendered(error))


# -- every boundary is guarded ---------------------------------------------------------------

#: The public constructors, classmethods and functions outside unkey/ and config/reader.py that
#: take or load a credential (a root key, a Vault token or login, AWS credentials).
BOUNDARIES: dict[str, Any] = {
    "VaultStore.__init__": VaultStore.__init__,
    "VaultStore.from_settings": VaultStore.from_settings.__func__,  # type: ignore[attr-defined]
    "SecretsManagerStore.__init__": SecretsManagerStore.__init__,
    "SecretsManagerStore.from_settings": SecretsManagerStore.from_settings.__func__,  # type: ignore[attr-defined]
    "UnkeyKeySource.__init__": UnkeyKeySource.__init__,
    "UnkeyKeySource.__call__": UnkeyKeySource.__call__,
    "UnkeyVaultSource.__init__": UnkeyVaultSource.__init__,
    "UnkeySecretsManagerSource.__init__": UnkeySecretsManagerSource.__init__,
    "load_settings": load_settings,
    "RuntimeConfig.from_environ": RuntimeConfig.from_environ.__func__,  # type: ignore[attr-defined]
    "RotationConfig.from_environ": RotationConfig.from_environ.__func__,  # type: ignore[attr-defined]
    "build_rotator": build_rotator,
    "handler": handler,
    "login": auth.login,
    "read_token": auth.read_token,
}


@pytest.mark.parametrize("name", list(BOUNDARIES))
def test_every_boundary_is_guarded(name: str) -> None:
    guard = _redact.guarded(lambda: None)
    assert BOUNDARIES[name].__code__ is guard.__code__, f"{name} is not wrapped by guarded"


# -- log records carrying a live exception ---------------------------------------------------


class LocalsFormatter(logging.Formatter):
    """A formatter that renders the record's exception with its frame locals (as Sentry does)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            rendering = traceback.TracebackException(
                type(exc), exc, exc.__traceback__, capture_locals=True
            )
            text += "".join(rendering.format())
        return text


@pytest.fixture
def root_at_debug() -> Iterator[list[logging.LogRecord]]:
    """Root logging at DEBUG, as ``basicConfig(level=DEBUG)`` does, keeping every record."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    saved = root.level, logging.getLogger("botocore").level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.NOTSET)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        logging.getLogger("botocore").setLevel(saved[1])


def test_a_locals_formatter_renders_a_live_exception() -> None:
    """The formatter below is load-bearing: given a record that keeps exc_info, it leaks."""
    token = new_canary()

    def sign(session_token: str) -> None:
        raise ConnectionError("could not connect")

    try:
        sign(token)
    except ConnectionError as exc:
        record = logging.LogRecord(
            "x", logging.DEBUG, __file__, 1, "failed", (), (type(exc), exc, exc.__traceback__)
        )
    assert token in LocalsFormatter().format(record)


def test_a_botocore_exception_record_reaches_no_formatter_alive(
    root_at_debug: list[logging.LogRecord],
) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import EndpointConnectionError

    session_token = "FwoGZXIvYXdz" + new_canary() + "//////////wEa"
    secret_key = new_canary()
    # A loopback port bound but not listening: every connection is refused.
    with socket.socket() as unreachable:
        unreachable.bind(("127.0.0.1", 0))
        port = unreachable.getsockname()[1]
        client = boto3.client(
            "secretsmanager",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=5),
        )
        _redact.install_guards()
        with pytest.raises(EndpointConnectionError):
            client.get_secret_value(SecretId="unkey/api_boundary/by-name/billing")
    carrying = [r for r in root_at_debug if r.exc_text and "EndpointConnectionError" in r.exc_text]
    assert carrying, "botocore logged no exception"
    assert all(record.exc_info is None for record in root_at_debug)
    text = "\n".join(LocalsFormatter().format(record) for record in root_at_debug)
    assert "Exception received when sending HTTP request" in text
    assert not found([session_token, secret_key], text)


def test_an_applications_own_exception_record_stays_alive_for_its_reporters(
    root_at_debug: list[logging.LogRecord],
) -> None:
    # Sentry's logging integration, RichHandler and structlog need the live exception of the
    # application's own logger.exception(); only the request-path libraries' records lose it.
    _redact.install_guards()
    try:
        raise ValueError("the application's own failure")
    except ValueError:
        logging.getLogger("myapp.billing").exception("billing sync failed")
    try:
        raise ValueError("a library's failure")
    except ValueError:
        logging.getLogger("urllib3.connectionpool").exception("retrying")
    (own,) = [r for r in root_at_debug if r.name == "myapp.billing"]
    (library,) = [r for r in root_at_debug if r.name == "urllib3.connectionpool"]
    assert own.exc_info is not None
    assert own.exc_info[0] is ValueError
    assert library.exc_info is None
    assert "a library's failure" in (library.exc_text or "")


def test_an_applications_exception_record_holding_a_plaintext_is_scrubbed_and_dropped(
    root_at_debug: list[logging.LogRecord],
) -> None:
    plaintext = "sk_" + new_canary()
    secret = Secret(plaintext)
    with _redact.confined(secret):
        try:
            raise ValueError(f"echoed {plaintext}")
        except ValueError:
            logging.getLogger("myapp.billing").exception("failed")
    (own,) = [r for r in root_at_debug if r.name == "myapp.billing"]
    assert own.exc_info is None
    assert "ValueError" in (own.exc_text or "")
    assert plaintext not in (own.exc_text or "")
