"""The error reporters users really install, each writing to memory, for the reporter matrix.

Each :class:`Reporter` is used twice around a flow. While the flow runs, ``attach()`` puts its
logging handler (where it has one) on the root logger, so it renders every log record as it is
emitted, third-party records with ``exc_info`` included (botocore's "Exception received when
sending HTTP request" at DEBUG). After the flow, ``report(error)`` hands it the error that
escaped, as an app's ``except`` block or excepthook would, and ``report_result(result)`` the
value a successful flow returned, as an app would log it. ``text()`` is all it wrote.

Each renders frame locals in its most revealing configuration, string limits lifted so no
value is cut (a cut value still leaks its first characters):

=================  ===============================================================================
``sentry``         sentry-sdk with an in-memory transport: ``capture_exception``, the logging
                   integration (every record a breadcrumb, WARNING and above an event, each with
                   the live stack: ``attach_stacktrace``), an ``EventHandler`` for every record
                   with ``exc_info``, every data collection category and the logs product on
``loguru``         a loguru logger with ``diagnose=True, backtrace=True`` (each name on a frame's
                   line shown with its value, the live stack above the catch point included),
                   the standard logging intercept, ``logger.opt(exception=...)``
``rich``           ``rich.traceback.install(show_locals=True)``: the excepthook
``rich-handler``   ``RichHandler(rich_tracebacks=True, tracebacks_show_locals=True)`` on the root
                   logger (records with ``exc_info``, and WARNING and above), ``logging.error``
                   with the error after the flow, ``Console.log`` of a result
``structlog``      structlog's dev ``ConsoleRenderer`` (its default exception formatter: rich,
                   locals shown), for structlog's own logger and for stdlib records through
                   ``ProcessorFormatter``
``traceback``      ``traceback.TracebackException(capture_locals=True)``, for the error and for
                   every record's ``exc_info``
``cgitb``          ``cgitb``'s text excepthook, deprecated but still in 3.11 and 3.12
``ipython``        IPython's verbose tracebacks (``VerboseTB``, ``%xmode Verbose``), where
                   IPython is installed
=================  ===============================================================================

Reporters that hold global state (sentry-sdk's client, rich's excepthook, rich's lexer choice)
put it back when the flow's observation ends, so the suite's other tests run as without them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from types import TracebackType
from typing import Any, ClassVar

from ._hunt import drop_harness_blocks, is_harness

#: Console width for rich: wide enough that no value is wrapped across lines.
WIDE = 2000
#: rich's limit on a local's string repr, lifted (its default cuts strings at 80 characters);
#: containers keep rich's default of 10 items (deeper walks cost seconds per traceback).
RICH_MAX_STRING = 100_000

REPORTERS: dict[str, type[Reporter]] = {}


def reporter(cls: type[Reporter]) -> type[Reporter]:
    """Register a reporter class under its ``name``."""
    REPORTERS[cls.name] = cls
    return cls


class Reporter:
    """One error reporter, configured to render frame locals, writing to memory."""

    name: ClassVar[str]
    #: Whether it renders log records while a flow runs (else only the error that escaped).
    records: ClassVar[bool] = False

    def __init__(self) -> None:
        self._out = io.StringIO()

    def __repr__(self) -> str:
        # A reporter is a local of the test that runs it: its repr shows nothing it wrote.
        return f"<{type(self).__name__}>"

    @contextlib.contextmanager
    def attach(self) -> Iterator[None]:
        """Be in place while a flow runs (a logging handler, where the reporter has one)."""
        yield

    def report(self, error: BaseException) -> None:
        """Report ``error`` as an app does with what escaped a call."""
        raise NotImplementedError

    def report_result(self, result: object) -> None:
        """Log ``result`` as an app does with what a call returned (reporters with records)."""

    def close(self) -> None:
        """Let go of what the reporter set up for itself."""

    def text(self) -> str:
        """Everything the reporter wrote."""
        return self._out.getvalue()


@contextlib.contextmanager
def on_root(handler: logging.Handler) -> Iterator[None]:
    """``handler`` on the root logger for the block."""
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


# -- sentry ----------------------------------------------------------------------------------


class _Envelopes:
    """Where the in-memory transport puts envelopes: the reporter of the flow being observed."""

    sink: list[Any] | None = None


def sentry_transport() -> Any:
    """A sentry-sdk transport that keeps envelopes in memory (nothing is sent anywhere)."""
    from sentry_sdk.transport import Transport

    class InMemoryTransport(Transport):
        def capture_envelope(self, envelope: Any) -> None:
            if _Envelopes.sink is not None:
                _Envelopes.sink.append(envelope)

        def flush(self, timeout: float, callback: Any = None) -> None:
            return None

        def kill(self) -> None:
            return None

    return InMemoryTransport()


@contextlib.contextmanager
def sentry_client() -> Iterator[None]:
    """sentry-sdk initialised as an app would, with every option that shows more data.

    Default integrations on (logging, excepthook, threading, stdlib, httpx, boto3...). On exit
    the client is closed and removed, so the integrations' patches (installed once per
    process) find no client and pass every call straight through.
    """
    import sentry_sdk
    from sentry_sdk.consts import DEFAULT_OPTIONS
    from sentry_sdk.integrations.logging import LoggingIntegration

    options: dict[str, Any] = {
        "transport": sentry_transport(),
        "attach_stacktrace": True,
        # Frame locals on: sentry-sdk 2's include_local_variables (on by default), 3's
        # data_collection stack_frame_variables; every other category of data too.
        "include_local_variables": True,
        "data_collection": {"user_info": True, "stack_frame_variables": True},
        "max_breadcrumbs": 1000,
        "enable_logs": True,
        "integrations": [LoggingIntegration(level=logging.DEBUG, event_level=logging.WARNING)],
    }
    # Each option the installed major version knows (3 dropped some of 2's names).
    sentry_sdk.init(**{name: value for name, value in options.items() if name in DEFAULT_OPTIONS})
    try:
        yield
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
        _Envelopes.sink = None


def _drop_harness_frames(value: Any) -> Any:
    """A Sentry payload without the harness's frames (those still running had their locals)."""
    if isinstance(value, dict):
        if isinstance(value.get("frames"), list):
            value = dict(value)
            value["frames"] = [
                frame
                for frame in value["frames"]
                if not is_harness(str(frame.get("abs_path") or frame.get("filename") or ""))
            ]
        return {key: _drop_harness_frames(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_drop_harness_frames(item) for item in value]
    return value


@reporter
class SentryReporter(Reporter):
    """sentry-sdk (see :func:`sentry_client`); needs the client set up around it."""

    name = "sentry"
    records = True

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[Any] = []

    @contextlib.contextmanager
    def attach(self) -> Iterator[None]:
        import sentry_sdk
        from sentry_sdk.integrations.logging import EventHandler

        events = EventHandler(level=logging.DEBUG)
        events.addFilter(lambda record: bool(record.exc_info and record.exc_info[0]))
        _Envelopes.sink = self.envelopes
        # A scope of its own: breadcrumbs of an earlier flow are not carried into this one.
        with sentry_sdk.isolation_scope(), on_root(events):
            try:
                yield
            finally:
                sentry_sdk.flush()

    def report(self, error: BaseException) -> None:
        import sentry_sdk

        with sentry_sdk.isolation_scope():
            sentry_sdk.capture_exception(error)
        sentry_sdk.flush()

    def report_result(self, result: object) -> None:
        import sentry_sdk

        with sentry_sdk.isolation_scope() as scope:
            scope.set_extra("result", result)
            sentry_sdk.capture_message("flow done")
        sentry_sdk.flush()

    def text(self) -> str:
        parts = []
        for envelope in self.envelopes:
            for item in envelope.items:
                payload = item.payload.json
                if payload is None:
                    raw = item.payload.get_bytes()
                    payload = json.loads(raw) if raw[:1] in (b"{", b"[") else raw.decode()
                parts.append(json.dumps(_drop_harness_frames(payload), default=str))
        return "\n".join(parts)


# -- loguru ----------------------------------------------------------------------------------


def loguru_logger() -> Any:
    """A loguru logger of its own, built as ``loguru`` builds its global one, with no sink.

    The global ``loguru.logger`` and its default stderr sink are left as they are.
    """
    from loguru import _logger

    loguru_internals: Any = _logger
    return loguru_internals.Logger(
        core=loguru_internals.Core(),
        exception=None,
        depth=0,
        record=False,
        lazy=False,
        colors=False,
        raw=False,
        capture=True,
        patchers=[],
        extra={},
    )


class InterceptHandler(logging.Handler):
    """loguru's documented recipe: every standard logging record, re-logged through loguru."""

    def __init__(self, logger: Any) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = self.logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        self.logger.opt(exception=record.exc_info).log(level, record.getMessage())


@reporter
class LoguruReporter(Reporter):
    """loguru, ``diagnose=True`` (every name on a frame's line annotated with its value)."""

    name = "loguru"
    records = True

    def __init__(self) -> None:
        super().__init__()
        self._logger = loguru_logger()
        self._logger.add(self._out, level="DEBUG", diagnose=True, backtrace=True, colorize=False)

    @contextlib.contextmanager
    def attach(self) -> Iterator[None]:
        with on_root(InterceptHandler(self._logger)):
            yield

    def report(self, error: BaseException) -> None:
        self._logger.opt(exception=error).error("flow failed")

    def report_result(self, result: object) -> None:
        self._logger.info("flow done: {!r}", result)

    def close(self) -> None:
        self._logger.remove()

    def text(self) -> str:
        # loguru's backtrace renders the live stack above the catch point, harness included.
        return drop_harness_blocks(self._out.getvalue())


# -- rich ------------------------------------------------------------------------------------


@contextlib.contextmanager
def plain_source() -> Iterator[None]:
    """rich's tracebacks with their source lexed as plain text, for the block.

    rich lexes each frame's whole file with pygments (a third of a second for a large one, the
    cost of the matrix); without colours the text it prints is the same whichever lexer ran.
    """
    from rich.traceback import Traceback

    saved = Traceback.__dict__["_guess_lexer"]
    Traceback._guess_lexer = classmethod(lambda cls, filename, code: "text")  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Traceback._guess_lexer = saved  # type: ignore[method-assign]


def rich_console(out: io.StringIO) -> Any:
    """A rich console writing plain text into ``out``, wide enough to wrap nothing."""
    from rich.console import Console

    return Console(file=out, width=WIDE, color_system=None, soft_wrap=True)


@reporter
class RichReporter(Reporter):
    """``rich.traceback.install(show_locals=True)``: the excepthook renders the error."""

    name = "rich"

    def report(self, error: BaseException) -> None:
        from rich.traceback import install

        previous = install(
            console=rich_console(self._out), show_locals=True, locals_max_string=RICH_MAX_STRING
        )
        try:
            sys.excepthook(type(error), error, error.__traceback__)
        finally:
            sys.excepthook = previous


def _worth_rendering(record: logging.LogRecord) -> bool:
    return bool(record.exc_info and record.exc_info[0]) or record.levelno >= logging.WARNING


@reporter
class RichHandlerReporter(Reporter):
    """``RichHandler(rich_tracebacks=True, tracebacks_show_locals=True)`` on the root logger."""

    name = "rich-handler"
    records = True

    def __init__(self) -> None:
        super().__init__()
        from rich.logging import RichHandler

        self._console = rich_console(self._out)
        self._handler = RichHandler(
            level=logging.DEBUG,
            console=self._console,
            rich_tracebacks=True,
            tracebacks_show_locals=True,
            tracebacks_width=WIDE,
            tracebacks_code_width=WIDE,
            locals_max_string=RICH_MAX_STRING,
        )
        # rich lays out every line as a table (milliseconds each, thousands of botocore DEBUG
        # lines per flow): it gets what only it renders, tracebacks with locals, and WARNING
        # and above; the canary matrix's logs channel judges every message line.
        self._handler.addFilter(_worth_rendering)

    @contextlib.contextmanager
    def attach(self) -> Iterator[None]:
        with on_root(self._handler):
            yield

    def report(self, error: BaseException) -> None:
        logger = logging.getLogger("app")
        logger.addHandler(self._handler)
        try:
            logger.error("flow failed", exc_info=error)
        finally:
            logger.removeHandler(self._handler)

    def report_result(self, result: object) -> None:
        self._console.log(result)


# -- structlog -------------------------------------------------------------------------------


def structlog_renderer() -> Any:
    """structlog's dev ConsoleRenderer as ``structlog.dev`` sets it up (rich tracebacks)."""
    import structlog

    return structlog.dev.ConsoleRenderer(colors=False)


@reporter
class StructlogReporter(Reporter):
    """structlog's dev ``ConsoleRenderer``, for its own logger and for stdlib records."""

    name = "structlog"
    records = True

    def __init__(self) -> None:
        super().__init__()
        import structlog

        self._log = structlog.wrap_logger(
            structlog.PrintLogger(file=self._out),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog_renderer(),
            ],
        )

    @contextlib.contextmanager
    def attach(self) -> Iterator[None]:
        import structlog

        handler = logging.StreamHandler(self._out)
        handler.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processor=structlog_renderer(),
                foreign_pre_chain=[
                    structlog.stdlib.add_log_level,
                    structlog.stdlib.add_logger_name,
                    structlog.processors.TimeStamper(fmt="iso"),
                ],
            )
        )
        with on_root(handler):
            yield

    def report(self, error: BaseException) -> None:
        self._log.error("flow failed", exc_info=error)

    def report_result(self, result: object) -> None:
        self._log.info("flow done", result=result)


# -- the standard library --------------------------------------------------------------------


def with_locals(error: BaseException) -> str:
    """``error`` rendered by ``traceback.TracebackException(capture_locals=True)``."""
    return "".join(traceback.TracebackException.from_exception(error, capture_locals=True).format())


class _LocalsFormatter(logging.Formatter):
    """A formatter that renders a record's exception with its frames' locals."""

    def format(self, record: logging.LogRecord) -> str:
        if not (record.exc_info and record.exc_info[1] is not None):
            return super().format(record)
        # Not the text an earlier handler's formatter cached on the record: its own.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatException(self, ei: Any) -> str:
        return with_locals(ei[1])


@reporter
class TracebackReporter(Reporter):
    """``traceback.TracebackException(capture_locals=True)``: for the error and every record."""

    name = "traceback"
    records = True

    @contextlib.contextmanager
    def attach(self) -> Iterator[None]:
        handler = logging.StreamHandler(self._out)
        handler.setFormatter(_LocalsFormatter("%(name)s %(levelname)s %(message)s"))
        with on_root(handler):
            yield

    def report(self, error: BaseException) -> None:
        self._out.write(with_locals(error))

    def report_result(self, result: object) -> None:
        self._out.write(f"flow done: {result!r}\n")


def cgitb_module() -> Any:
    """``cgitb``, imported without its deprecation warning; None where it is gone (3.13)."""
    if importlib.util.find_spec("cgitb") is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import cgitb

    return cgitb


def below_harness(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` from its first frame that is not the harness's.

    cgitb cannot render a frame whose arguments were cleared (it falls back to the plain
    traceback), and the harness's frames above the flow are cleared.
    """
    while tb is not None and is_harness(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return tb


@reporter
class CgitbReporter(Reporter):
    """``cgitb``'s excepthook, as text: each frame's variables on its lines, every attribute of
    the error (a frame whose locals were cleared makes it fall back to the plain traceback)."""

    name = "cgitb"

    def report(self, error: BaseException) -> None:
        module = cgitb_module()
        if module is None:
            raise RuntimeError("cgitb is not in this Python (removed in 3.13)")
        hook = module.Hook(display=1, file=self._out, format="text")
        hook.handle((type(error), error, below_harness(error.__traceback__)))


@reporter
class IPythonReporter(Reporter):
    """IPython's verbose tracebacks (``%xmode Verbose``): each frame's variables."""

    name = "ipython"

    def report(self, error: BaseException) -> None:
        from IPython.core.ultratb import VerboseTB

        formatter = VerboseTB(theme_name="nocolor", include_vars=True)
        self._out.write(formatter.text(type(error), error, error.__traceback__))


#: Reporters that only see the error that escaped a flow (excepthooks).
ERROR_ONLY = tuple(name for name, cls in REPORTERS.items() if not cls.records)


def available() -> dict[str, type[Reporter]]:
    """The registered reporters; cgitb where the Python has it, IPython where installed
    (the dev extra installs it on Python 3.11 and later)."""
    missing = set()
    if cgitb_module() is None:
        missing.add("cgitb")
    if importlib.util.find_spec("IPython") is None:
        missing.add("ipython")
    return {name: cls for name, cls in REPORTERS.items() if name not in missing}
