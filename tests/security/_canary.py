"""The canary hunt: run a flow with a known plaintext, then look for it in every channel.

A *flow* is a callable that takes a :class:`FlowContext`, does one scenario end to end and
tells the context which plaintexts (canaries) went through it. A *channel* is a callable that
takes the finished :class:`FlowRun` and returns the text (or bytes) one kind of observer would
see: log records, stdout/stderr, exception text, a rendered traceback, reprs, serialised copies,
the audit events (a SIEM's feed, the CLI's ``--audit-log`` file) and what OpenTelemetry's
exporters would ship (every span, attribute, event and metric point, gathered by the SDK's
in-memory exporter and reader while the flow ran), the flow's call wrapped in an application's
own span as apps write it: ``start_as_current_span`` with its defaults, which record an
escaping error (its message and its whole traceback text) as a span event.
The matrix is every flow against every channel. Later features (CLI, Lambda, app configuration)
add their flows with :func:`flow` and their channels (a CLI's ``--json`` output...) with
:func:`channel`, and the matrix grows.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import pickle
import secrets
import traceback
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .._telemetry import collected

FlowFunc = Callable[["FlowContext"], object]
ChannelFunc = Callable[["FlowRun"], "str | bytes"]

FLOWS: dict[str, FlowFunc] = {}
CHANNELS: dict[str, ChannelFunc] = {}
#: How a flow must end, where it says so: an exception type it must raise, or None to return.
OUTCOMES: dict[str, type[BaseException] | None] = {}
#: Cells that leak today, with the reason: run as strict xfail, so a fix shows as XPASS.
KNOWN_LEAKS: dict[tuple[str, str], str] = {}

#: Loggers set to DEBUG during a run, besides the root logger: every library on the path.
LOGGERS = ("botocore", "boto3", "urllib3", "httpx", "httpcore", "hvac", "unkey", "unkey_secrets")
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def flow(
    name: str, *, raises: type[BaseException] | None = None, returns: bool = False
) -> Callable[[FlowFunc], FlowFunc]:
    """Register a flow under ``name`` in the canary matrix.

    ``raises`` (an exception type) or ``returns=True`` pins how the flow must end, so a flow
    meant to fail cannot pass its exception cells by not failing, nor a flow meant to succeed
    by failing early.
    """

    def register(func: FlowFunc) -> FlowFunc:
        if name in FLOWS:
            raise ValueError(f"flow {name!r} registered twice")
        if raises is not None and returns:
            raise ValueError(f"flow {name!r} cannot both raise and return")
        FLOWS[name] = func
        if raises is not None or returns:
            OUTCOMES[name] = raises
        return func

    return register


def channel(name: str) -> Callable[[ChannelFunc], ChannelFunc]:
    """Register a channel under ``name`` in the canary matrix."""

    def register(func: ChannelFunc) -> ChannelFunc:
        CHANNELS[name] = func
        return func

    return register


def known_leak(flow_name: str, channel_name: str, reason: str) -> None:
    """Record that the cell (flow, channel) leaks today; it fails the run once it stops."""
    KNOWN_LEAKS[(flow_name, channel_name)] = reason


def new_canary() -> str:
    """A random plaintext shaped like an Unkey key, unlikely to occur anywhere by chance."""
    return "canary_" + "".join(secrets.choice(_B58) for _ in range(24))


def needles(canary: str) -> list[str]:
    """What counts as a leak of ``canary``: all of it, or either half of its random part."""
    body = canary.rpartition("_")[2] or canary
    half = len(body) // 2
    return [canary, body[:half], body[half:]]


class Tap(httpx.BaseTransport):
    """An httpx transport that notes the plaintexts Unkey issues, so a flow knows its canaries."""

    def __init__(self, inner: httpx.BaseTransport, found: list[str]) -> None:
        self.inner = inner
        self.found = found

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        if request.url.path.endswith(("keys.createKey", "keys.rerollKey")):
            try:
                key = json.loads(body)["data"]["key"]
            except (ValueError, KeyError, TypeError):
                key = None
            if isinstance(key, str):
                self.found.append(key)
        return httpx.Response(
            response.status_code, headers=response.headers, content=body, request=request
        )

    def close(self) -> None:
        self.inner.close()


@dataclass
class FlowContext:
    """What a flow gets: fixtures on demand, fresh canaries, and where to note them."""

    request: pytest.FixtureRequest
    canaries: list[str] = field(default_factory=list)
    #: Objects a flow hands back for the repr and serialisation channels.
    objects: list[object] = field(default_factory=list)
    #: The credentials the flow used (root key, Vault token, secret_id, JWT, AWS secret key and
    #: session token), each with the fragments that count as its leak.
    credentials: dict[str, list[str]] = field(default_factory=dict)
    #: Lines of audit log files a flow's processes wrote (the CLI's ``--audit-log``).
    audit_lines: list[str] = field(default_factory=list)

    def fixture(self, name: str) -> Any:
        """Return the fixture ``name`` (session servers from the unkey_secrets plugin...)."""
        return self.request.getfixturevalue(name)

    def canary(self) -> str:
        """A new canary plaintext, already noted."""
        value = new_canary()
        self.canaries.append(value)
        return value

    def credential(self, value: str, fragments: list[str] | None = None) -> str:
        """Note ``value`` as a credential the flow uses: hunted like a canary; returns it.

        ``fragments`` (default: the value and either half of it) are what counts as its leak.
        """
        if len(value) < 16:
            raise ValueError("a credential canary must be long enough to be found by itself")
        self.credentials[value] = fragments if fragments is not None else needles(value)
        return value

    def tap(self, inner: httpx.BaseTransport | None = None) -> Tap:
        """A transport that notes every key Unkey issues through it as a canary."""
        return Tap(inner or httpx.HTTPTransport(), self.canaries)

    def keep(self, *objects: object) -> None:
        """Hand ``objects`` to the repr and serialisation channels."""
        self.objects.extend(objects)


@dataclass
class FlowRun:
    """Everything observable after a flow ran."""

    name: str
    canaries: list[str]
    records: list[logging.LogRecord]
    stdout: str
    stderr: str
    result: object
    error: BaseException | None
    objects: list[object]
    credentials: dict[str, list[str]] = field(default_factory=dict)
    #: Every audit event of the run: the records of this process, then the CLI's files' lines.
    audit: list[dict[str, Any]] = field(default_factory=list)
    #: Every span (JSON) the SDK's exporter got, and the metric points, as an exporter ships them.
    otel: str = ""

    def leaks(self, observed: str | bytes) -> list[str]:
        """Return the canary and credential fragments found in ``observed``."""
        hunted = [needles(canary) for canary in self.canaries] + list(self.credentials.values())
        found = []
        for fragments in hunted:
            for needle in fragments:
                hit = (
                    needle.encode() in observed
                    if isinstance(observed, bytes)
                    else needle in observed
                )
                if hit:
                    found.append(needle)
        return found


class _Keep(logging.Handler):
    """Keeps records unformatted; they are formatted after the flow, as a QueueHandler would."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def debug_logging() -> Iterator[list[logging.LogRecord]]:
    """Everything at DEBUG, into a list: what ``basicConfig(level=DEBUG)`` would show, and more."""
    keep = _Keep()
    root = logging.getLogger()
    saved = [(logging.getLogger(name), logging.getLogger(name).level) for name in LOGGERS]
    saved.append((root, root.level))
    # A child logger an earlier test held above DEBUG (the Lambda holds botocore's body loggers
    # at INFO) would hide exactly the records this hunt is after: open it for the run.
    saved += [
        (logger, logger.level)
        for name, logger in list(logging.Logger.manager.loggerDict.items())
        if isinstance(logger, logging.Logger)
        and name.startswith(tuple(f"{parent}." for parent in LOGGERS))
        and logger.level > logging.DEBUG
    ]
    root.addHandler(keep)
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    try:
        yield keep.records
    finally:
        root.removeHandler(keep)
        for logger, level in saved:
            logger.setLevel(level)


def run_flow(
    name: str, request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]
) -> FlowRun:
    """Run the flow ``name`` with full DEBUG logging and captured stdout/stderr."""
    context = FlowContext(request)
    result: object = None
    error: BaseException | None = None
    capfd.readouterr()
    with debug_logging() as records, collected() as told:
        from opentelemetry import trace

        try:
            # An application's span around the call, with the SDK's defaults: an error that
            # escapes is recorded on it (exception.message, exception.stacktrace).
            with trace.get_tracer("canary.app").start_as_current_span("app.call"):
                result = FLOWS[name](context)
        except Exception as exc:  # noqa: BLE001 (the error is one of the things observed)
            error = exc
        audit = told.events + [json.loads(line) for line in context.audit_lines]
        otel = told.otel_text()
    out, err = capfd.readouterr()
    if not context.canaries and not context.credentials:
        raise AssertionError(f"flow {name!r} noted no canary nor credential: it proves nothing")
    if name in OUTCOMES:
        _check_outcome(name, OUTCOMES[name], error)
    return FlowRun(
        name,
        context.canaries,
        records,
        out,
        err,
        result,
        error,
        context.objects,
        context.credentials,
        audit,
        otel,
    )


def _check_outcome(
    name: str, expected: type[BaseException] | None, error: BaseException | None
) -> None:
    # Only the type is named: the error itself is under test and must not reach the report.
    if expected is None and error is not None:
        raise AssertionError(f"flow {name!r} should return but raised {type(error).__name__}")
    if expected is not None and not isinstance(error, expected):
        got = "returned" if error is None else f"raised {type(error).__name__}"
        raise AssertionError(f"flow {name!r} should raise {expected.__name__} but {got}")


# -- channels --------------------------------------------------------------------------------

_FORMAT = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s", defaults=None)


@channel("logs")
def _logs(run: FlowRun) -> str:
    lines = []
    for record in run.records:
        lines.append(_FORMAT.format(record))
        lines.append(repr(record.args))
        lines.append(repr({k: v for k, v in record.__dict__.items() if k != "exc_info"}))
    return "\n".join(lines)


@channel("audit")
def _audit(run: FlowRun) -> str:
    return "\n".join(json.dumps(event) for event in run.audit)


@channel("otel")
def _otel(run: FlowRun) -> str:
    return run.otel


@channel("stdio")
def _stdio(run: FlowRun) -> str:
    return run.stdout + "\n" + run.stderr


def _chain(exc: BaseException | None) -> Iterable[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


@channel("exception")
def _exception(run: FlowRun) -> str:
    parts = []
    for exc in _chain(run.error):
        parts += [
            str(exc),
            repr(exc),
            repr(exc.args),
            repr(vars(exc)),
            f"{exc}",
            type(exc).__name__,
        ]
        parts += [repr(getattr(exc, name, None)) for name in ("doc", "response", "request", "body")]
    return "\n".join(parts)


_HERE = str(Path(__file__).parent)


def _without_test_frames(rendered: traceback.TracebackException) -> None:
    """Drop the frames of this folder's code: a flow's own locals are the caller's business."""
    pending, seen = [rendered], set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.stack[:] = [f for f in current.stack if not f.filename.startswith(_HERE)]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]


@channel("traceback")
def _traceback(run: FlowRun) -> str:
    if run.error is None:
        return ""
    rendered = traceback.TracebackException.from_exception(run.error, capture_locals=True)
    _without_test_frames(rendered)
    return "".join(rendered.format())


def _inspected(run: FlowRun) -> list[object]:
    return [run.result, *run.objects]


@channel("reprs")
def _reprs(run: FlowRun) -> str:
    parts = []
    for obj in _inspected(run):
        parts += [repr(obj), str(obj), f"{obj}", format(obj, "")]
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            parts += [repr(getattr(obj, f.name)) for f in dataclasses.fields(obj)]
    return "\n".join(parts)


@channel("serialisation")
def _serialisation(run: FlowRun) -> bytes:
    out = io.BytesIO()
    for obj in _inspected(run):
        for dump in (
            lambda o: pickle.dumps(o),
            lambda o: repr(copy.copy(o)).encode(),
            lambda o: repr(copy.deepcopy(o)).encode(),
            lambda o: json.dumps(o, default=str).encode(),
            lambda o: json.dumps(
                dataclasses.asdict(o) if dataclasses.is_dataclass(o) else o, default=str
            ).encode(),
        ):
            try:
                out.write(dump(obj) + b"\n")
            except (TypeError, pickle.PicklingError, AttributeError):
                out.write(b"<refused>\n")  # refusing to serialise is a pass
    return out.getvalue()
