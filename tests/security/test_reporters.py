"""The reporter matrix: every flow, rendered by the error reporters users really install.

Invariant 8: an error reporter that renders frame locals finds no credential anywhere. The
flows are the canary matrix's (``_flows``, minus the command line's, whose errors and records
are another process's) and the failure kinds of ``_failures`` (bad configuration, logins
answered with nonsense, Unkey failing, settings sources, KeyboardInterrupt mid-flow). The
reporters are ``_reporters``' (sentry-sdk, loguru, rich, structlog, the traceback module,
cgitb, IPython). Each flow runs once, with every reporter's logging handler in place and every
library at DEBUG; then the error that escaped it goes to every reporter, as an app's ``except``
block or excepthook hands it over. A cell is one reporter's output for one flow: it fails if
any fragment of the flow's plaintexts or credentials is in it, in any spelling (``_hunt``), and
says which frame local held it.

Reporters that only see an escaped error (an excepthook) get cells for the flows that raise.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from unkey_secrets import UnkeySecretsError

from . import _flows  # noqa: F401 (registers the canary flows)
from ._canary import (
    FLOWS,
    OUTCOMES,
    FlowContext,
    FlowFunc,
    FlowRun,
    debug_logging,
    needles,
    new_canary,
)
from ._failures import FAILURE_OUTCOMES, FAILURES
from ._hunt import Hunt, Leak, Witness, WitnessHandler, clear_harness_frames
from ._reporters import available, on_root, plain_source, sentry_client

#: The canary flows that end in an error they do not declare: how they must end here.
RAISING: dict[str, type[BaseException]] = {
    **{
        f"{verb}-{kind}-store-down": UnkeySecretsError
        for verb in ("provision", "rotate", "capture")
        for kind in ("vault", "aws")
    },
    "capture-malformed-response": UnkeySecretsError,
    "client-broken-json": UnkeySecretsError,
    "client-verify-error-echo": UnkeySecretsError,
}
#: The canary flows that may refuse or go on (http.client debug output on): either is right.
EITHER = frozenset({"read-vault-http-debug", "read-aws-http-debug"})

#: Every flow of the matrix: the canary flows run in this process, and the failure kinds.
MATRIX_FLOWS: dict[str, FlowFunc] = {
    **{name: func for name, func in FLOWS.items() if not name.startswith("cli-")},
    **FAILURES,
}


def expected_outcome(name: str) -> type[BaseException] | None:
    """The exception flow ``name`` must end with, or None where it must return."""
    if name in FAILURE_OUTCOMES:
        return FAILURE_OUTCOMES[name]
    if name in RAISING:
        return RAISING[name]
    return OUTCOMES.get(name)  # a canary flow declared nothing: it returns


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``reporter_case`` over every flow x reporter (excepthooks: raising flows)."""
    if "reporter_case" not in metafunc.fixturenames:
        return
    cases = []
    for flow_name in MATRIX_FLOWS:
        raises = expected_outcome(flow_name) is not None
        for reporter_name, cls in available().items():
            if cls.records or raises:
                cases.append(
                    pytest.param((flow_name, reporter_name), id=f"{flow_name}-{reporter_name}")
                )
    metafunc.parametrize("reporter_case", cases)


class _Context(FlowContext):
    """A flow's context whose repr shows none of what it hunts (reporters render it)."""

    def __repr__(self) -> str:
        return "FlowContext(<hunted values not shown>)"


@dataclass
class Observed:
    """A flow's run and what each reporter wrote about it."""

    run: FlowRun
    outputs: dict[str, str]
    witness: Witness
    hunt: Hunt
    #: Reporters that raised while reporting the flow's error: what and where.
    crashes: dict[str, str]

    def __repr__(self) -> str:
        return f"Observed({self.run.name!r})"


def _call(func: FlowFunc, ctx: FlowContext) -> tuple[object, BaseException | None]:
    # A KeyboardInterrupt too: it reaches a reporter's excepthook like any other error.
    try:
        return func(ctx), None
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 (the error is observed)
        return None, exc


def _check_outcome(name: str, error: BaseException | None) -> None:
    # Only types are named: the error itself is under test and must not reach the report.
    __tracebackhide__ = True
    if name in EITHER:
        return
    expected = expected_outcome(name)
    if expected is None and error is not None:
        raise AssertionError(f"flow {name!r} should return but raised {type(error).__name__}")
    if expected is not None and not isinstance(error, expected):
        got = "returned" if error is None else f"raised {type(error).__name__}"
        raise AssertionError(f"flow {name!r} should raise {expected.__name__} but {got}")


def observe(
    name: str,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    func: FlowFunc | None = None,
) -> Observed:
    """Run flow ``name`` (or ``func`` under that name) with every reporter in place, then
    report what escaped it."""
    flow_func = func if func is not None else MATRIX_FLOWS[name]
    ctx = _Context(request)
    witness = Witness()
    capfd.readouterr()
    with sentry_client(), plain_source(), contextlib.ExitStack() as reporters_open:
        reporters = {key: make() for key, make in available().items()}
        for each in reporters.values():
            reporters_open.callback(each.close)
        with (
            debug_logging() as records,
            on_root(WitnessHandler(witness)),
            contextlib.ExitStack() as attached,
        ):
            for each in reporters.values():
                attached.enter_context(each.attach())
            result, error = _call(flow_func, ctx)
        out, err = capfd.readouterr()
        if not ctx.canaries and not ctx.credentials:
            raise AssertionError(f"flow {name!r} noted no canary nor credential: it proves nothing")
        if func is None:
            _check_outcome(name, error)
        clear_harness_frames(error)
        witness.error(error)
        crashes = {}
        for key, each in reporters.items():
            try:
                if error is not None:
                    each.report(error)
                elif each.records:
                    each.report_result(result)
            except Exception as exc:  # noqa: BLE001 (a reporter that crashes is a finding)
                # The type and where only: the message may quote what the reporter rendered.
                where = traceback.extract_tb(exc.__traceback__)[-1]
                crashes[key] = f"{type(exc).__name__} at {where.filename}:{where.lineno}"
        outputs = {key: each.text() for key, each in reporters.items()}
    run = FlowRun(
        name, ctx.canaries, records, out, err, result, error, ctx.objects, ctx.credentials
    )
    return Observed(run, outputs, witness, Hunt.of(ctx.canaries, ctx.credentials), crashes)


@pytest.fixture(scope="session")
def _observations() -> dict[str, Observed]:
    return {}


@pytest.fixture
def observed(
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
    _observations: dict[str, Observed],
) -> Callable[[str], Observed]:
    """Return ``observe(flow_name)``: the flow observed by every reporter, once per session."""

    def get(name: str) -> Observed:
        if name not in _observations:
            _observations[name] = observe(name, request, capfd)
        return _observations[name]

    return get


def explain(leaks: list[Leak], witness: Witness) -> str:
    """One line per leak: what leaked, in which spelling, and which frame locals held it."""
    lines = []
    for leak in leaks:
        holders = witness.holders(leak.fragment) or ["no frame local or error attribute seen"]
        lines.append(f"  {leak}; held by: {', '.join(holders)}")
    return "\n".join(lines)


def test_reporter_matrix(
    reporter_case: tuple[str, str], observed: Callable[[str], Observed]
) -> None:
    flow_name, reporter_name = reporter_case
    seen = observed(flow_name)
    outcome = type(seen.run.error).__name__ if seen.run.error else "returned"
    # A reporter that crashes loses the app's report (rendering a half-built object's repr).
    assert reporter_name not in seen.crashes, (
        f"{reporter_name} crashed reporting {flow_name} ({outcome}): {seen.crashes[reporter_name]}"
    )
    text = seen.outputs[reporter_name]
    assert text.strip(), (
        f"{reporter_name} rendered nothing for {flow_name}: the cell proves nothing"
    )
    leaks = seen.hunt.find(text)
    assert not leaks, f"{reporter_name} output for {flow_name} ({outcome}) holds:\n" + explain(
        leaks, seen.witness
    )


# -- calibration: each reporter shows a plaintext a frame holds, and the hunt finds it ----------

#: An app's module, outside the harness: its frames are judged like the library's.
_APP_MODULE = """
import logging


def fail_holding(value):
    held = value
    raise ValueError("failed", len(held))


def log_failure_holding(value):
    held = value
    try:
        raise ValueError("failed", len(held))
    except ValueError:
        logging.getLogger("app.calibration").debug("failed", exc_info=True)


def fail_holding_nothing():
    raise ValueError("failed")
"""


@pytest.fixture
def app_module(tmp_path: Path) -> Any:
    """``_APP_MODULE``, imported from a file of its own (reporters read its source)."""
    path = tmp_path / "app_calibration.py"
    path.write_text(_APP_MODULE, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("app_calibration", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def unguarded_records() -> Iterator[None]:
    """Log records made as before the library's record guard (which drops every record's
    ``exc_info``) was installed: what a reporter renders from a record's exception."""
    saved = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    try:
        yield
    finally:
        logging.setLogRecordFactory(saved)


def _holds_where(seen: Observed, function: str) -> None:
    fragment = seen.run.canaries[0]
    holders = seen.witness.holders(fragment)
    assert any(place.endswith(f"app_calibration.py:{function}:held") for place in holders), holders


@pytest.mark.usefixtures("unguarded_records")
@pytest.mark.parametrize("reporter_name", list(available()))
def test_reporter_shows_what_an_escaped_errors_frame_holds(
    reporter_name: str,
    app_module: Any,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The cells can fail: each reporter renders a plaintext an app's frame holds, and the
    hunt finds it and names the local that held it."""
    seen = observe("calibration", request, capfd, lambda ctx: app_module.fail_holding(ctx.canary()))
    assert isinstance(seen.run.error, ValueError)
    leaks = seen.hunt.find(seen.outputs[reporter_name])
    assert [leak.fragment for leak in leaks] == needles(seen.run.canaries[0])
    _holds_where(seen, "fail_holding")


@pytest.mark.usefixtures("unguarded_records")
@pytest.mark.parametrize(
    "reporter_name", [name for name, cls in available().items() if cls.records]
)
def test_reporter_shows_what_a_logged_errors_frame_holds(
    reporter_name: str,
    app_module: Any,
    request: pytest.FixtureRequest,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Each reporter with a logging handler renders a DEBUG record's ``exc_info`` with its
    frames' locals (botocore's failed send is such a record)."""
    seen = observe(
        "calibration", request, capfd, lambda ctx: app_module.log_failure_holding(ctx.canary())
    )
    assert seen.run.error is None
    leaks = seen.hunt.find(seen.outputs[reporter_name])
    assert leaks, f"{reporter_name} did not render the record's frame locals"
    _holds_where(seen, "log_failure_holding")


def test_the_harness_frames_are_not_judged(
    app_module: Any, request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]
) -> None:
    """A plaintext only the flow's own frame holds is the caller's business: no reporter's
    output is judged to hold it (the flow's frame is cleared, or dropped where still running)."""

    def flow_holding(ctx: FlowContext) -> None:
        held = ctx.canary()
        logging.getLogger("app.calibration").warning("about to fail holding %d", len(held))
        app_module.fail_holding_nothing()

    seen = observe("calibration", request, capfd, flow_holding)
    assert isinstance(seen.run.error, ValueError)
    found = {name: seen.hunt.find(text) for name, text in seen.outputs.items()}
    assert found == {name: [] for name in seen.outputs}


def test_the_hunt_finds_every_spelling() -> None:
    value = new_canary()
    hunt = Hunt.of([value], {})
    encoded = {
        "raw": f"x{value}y",
        "JSON-escaped": json.dumps({"a": json.dumps({"b": value})}),
        "url-encoded": urllib.parse.quote(f"key={value}&", safe=""),
        **{
            f"base64 at offset {shift}": base64.b64encode(b"p" * shift + value.encode()).decode()
            for shift in range(3)
        },
        "url-safe base64": base64.urlsafe_b64encode(b"??" + value.encode()).decode(),
    }
    for spelling, text in encoded.items():
        assert hunt.find(text), f"not found {spelling}"
    assert hunt.find(json.dumps({"a": "b"}) + base64.b64encode(b"canary_").decode()) == []


# -- pytest -l --junitxml, with the shipped fixtures --------------------------------------------

#: A downstream project's conftest: ``hunted`` notes what the run must not show, and hands it
#: to the matrix through an inherited pipe (memory only) when the session ends.
_APP_CONFTEST = """
import json
import os

import pytest


class Hunted:
    def __init__(self):
        self.values = []

    def __repr__(self):
        return "<hunted>"

    def add(self, value):
        self.values.append(value)
        return value


@pytest.fixture(scope="session")
def hunted(openbao_server):
    found = Hunted()
    found.add(openbao_server.root_token)
    yield found
    os.write(int(os.environ["HUNTED_FD"]), json.dumps(found.values).encode())
"""

#: Failing tests as a downstream project writes them, on every shipped fixture.
_APP_TESTS = """
import secrets
import socket

from unkey_secrets import UnkeyClient, provision
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore


def dead_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_provision_into_vault(unkey_emulator, unkey_api_id, openbao_server, vault_env, hunted):
    store = VaultStore(openbao_server.client())
    with unkey_emulator.client() as client:
        result = provision(client, store, unkey_api_id, alias="svc", prefix="app")
    hunted.add(store.get(api_id=unkey_api_id, key_id=result.key_id).secret.reveal())
    assert result.key_id == "key_expected"


def test_provision_into_secrets_manager(
    unkey_emulator, unkey_api_id, unkey_env, aws_env, moto_server, monkeypatch, hunted
):
    monkeypatch.setenv("AWS_SESSION_TOKEN", hunted.add("token_" + secrets.token_hex(24)))
    store = SecretsManagerStore.from_settings()
    with UnkeyClient.from_settings() as client:
        result = provision(client, store, unkey_api_id, alias="svc", prefix="app")
    hunted.add(store.get(api_id=unkey_api_id, key_id=result.key_id).secret.reveal())
    assert result.key_id == "key_expected"


def test_store_down(unkey_emulator, unkey_api_id, unkey_env, aws_env, monkeypatch, hunted):
    monkeypatch.setenv("AWS_SESSION_TOKEN", hunted.add("token_" + secrets.token_hex(24)))
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", hunted.add("secret_" + secrets.token_hex(20)))
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_url())
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with UnkeyClient.from_settings() as client:
        provision(client, SecretsManagerStore.from_settings(), unkey_api_id, prefix="app")


def test_pasted_root_key(unkey_emulator, hunted):
    UnkeyClient(hunted.add(unkey_emulator.add_root_key(["*"])) + "\\n", base_url=unkey_emulator.url)
"""

_LOCAL_LINE = re.compile(r"^(?P<name>[A-Za-z_]\w*)\s+= ")
_FRAME_END = re.compile(r"^(?P<where>\S+:\d+): ")


def showlocals_holders(text: str, fragment: str) -> list[str]:
    """The ``path:line:variable`` of each local pytest -l printed with ``fragment`` in it."""
    lines = text.splitlines()
    found = set()
    for index, line in enumerate(lines):
        local = _LOCAL_LINE.match(line)
        if local is None or fragment not in line:
            continue
        end = next((m["where"] for m in map(_FRAME_END.match, lines[index:]) if m is not None), "?")
        found.add(f"{end}:{local['name']}")
    return sorted(found) or ["not a local (see the report)"]


def test_pytest_showlocals_junitxml(tmp_path: Path) -> None:
    """A downstream project's failing tests on the shipped fixtures, run ``pytest -l``:
    neither its terminal output nor its JUnit XML shows a plaintext or credential."""
    (tmp_path / "conftest.py").write_text(_APP_CONFTEST, encoding="utf-8")
    (tmp_path / "test_app.py").write_text(_APP_TESTS, encoding="utf-8")
    report = tmp_path / "report.xml"
    read_end, write_end = os.pipe()
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-l", f"--junitxml={report}"),
                *("-o", "junit_logging=all", "-o", "log_level=DEBUG", "-p", "no:cacheprovider"),
                *("-p", "no:randomly", "-p", "no:xdist", "--rootdir", str(tmp_path)),
                "test_app.py",
            ],
            cwd=tmp_path,
            env={**os.environ, "HUNTED_FD": str(write_end)},
            pass_fds=(write_end,),
            capture_output=True,
            text=True,
            timeout=300,
        )
        os.close(write_end)
        write_end = -1
        with os.fdopen(read_end, "rb") as pipe:
            read_end = -1
            hunted = json.loads(pipe.read() or b"[]")
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
    # The report is our own pytest's, written moments ago.
    suite = ElementTree.parse(report).getroot().find("testsuite")  # noqa: S314
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "4", "0"), (
        done.stdout[-3000:]
    )
    # Both keys provisioned, the root token, the pasted root key, two session tokens, a secret.
    assert len(hunted) == 7, f"the inner run noted {len(hunted)} values, not 7"
    hunt = Hunt.of([], {value: needles(value) for value in hunted})
    outputs = {"terminal": done.stdout + done.stderr, "junitxml": report.read_text("utf-8")}
    problems = [
        f"  {leak} in the {where}; held by: " + ", ".join(showlocals_holders(text, leak.fragment))
        for where, text in outputs.items()
        for leak in hunt.find(text)
    ]
    assert not problems, "pytest -l --junitxml shows:\n" + "\n".join(problems)


def test_the_package_never_imports_a_reporter() -> None:
    """The reporters are the security suite's dependencies only: no module of the package
    imports one (httpx imports rich for its own command line where rich is installed)."""
    package = Path(__file__).resolve().parents[2] / "unkey_secrets"
    reporters = {"sentry_sdk", "loguru", "rich", "structlog", "IPython", "cgitb"}
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [
                f"{path.relative_to(package.parent)}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] in reporters
            ]
    assert found == []
