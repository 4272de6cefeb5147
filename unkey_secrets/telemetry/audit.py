"""Audit events: one structured record per change of state, schema ``unkey-secrets/audit/v1``.

Every event is a log record on the logger ``unkey_secrets.audit`` at INFO, with a one-line
message and the event itself as the record's ``audit`` attribute (``extra={"audit": {...}}``),
so any logging set-up a SIEM already ingests gets them, and :class:`AuditLogHandler` writes
them as JSON lines. When that logger is not enabled for INFO (the default: Python's root
logger is at WARNING), nothing is built: the check costs one cached level lookup.

What emits them is the shared machinery, not each flow: :class:`~unkey_secrets.UnkeyClient`'s
``create_key``, ``reroll_key``, ``update_key`` and ``delete_key``, the
:class:`~unkey_secrets.SecretStore` template methods ``put`` and ``set_current`` (so every
store plugin), and the settling code that undoes Unkey's side of a failed write. The fields
and actions are documented in ``docs/audit.md``; :func:`audit_schema` returns the JSON Schema
every event validates against.

An event holds ids, locations, names, times and error class names, never a key, a
credential or an error's message, and each of its strings passes through the same scrubber
as every log record (:func:`unkey_secrets._redact.scrub`).
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import errno
import functools
import json
import logging
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from .._errors import ConfigurationError
from .._redact import scrub

__all__ = [
    "ACTIONS",
    "ACTOR_VARIABLE",
    "AUDIT_LOGGER",
    "MAX_ACTOR",
    "OUTCOMES",
    "SCHEMA",
    "AuditLogHandler",
    "actor",
    "audit_schema",
    "current_purpose",
    "emit",
    "enabled",
    "purpose",
]

#: The value of every event's ``schema`` member.
SCHEMA: Final = "unkey-secrets/audit/v1"
#: The logger every event is a record of.
AUDIT_LOGGER: Final = "unkey_secrets.audit"
#: Who acts, when set: wins over the Lambda's function name and ``user@host``.
ACTOR_VARIABLE: Final = "UNKEY_SECRETS_ACTOR"
#: Every action an event may name.
ACTIONS: Final = (
    "key.created",
    "key.rotated",
    "key.enabled",
    "key.disabled",
    "key.cut",
    "key.restored",
    "key.updated",
    "key.deleted",
    "key.stored",
    "alias.moved",
    "compensation.run",
)
#: ``succeeded``; ``failed`` (it did not happen); ``unknown`` (the answer was lost: it may have).
OUTCOMES: Final = ("succeeded", "failed", "unknown")
#: The longest actor kept (a longer ``UNKEY_SECRETS_ACTOR`` is cut).
MAX_ACTOR = 256

_logger = logging.getLogger(AUDIT_LOGGER)

#: Optional members whose null says something (``expires``: never), kept when given.
_NULL_MEANS: Final = frozenset({"expires"})
#: What the caller says an updateKey is for (a cut, a restore); see :func:`purpose`.
_PURPOSE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "unkey_secrets_audit_purpose", default=None
)


def enabled() -> bool:
    """Whether events are emitted: the ``unkey_secrets.audit`` logger is enabled for INFO."""
    return _logger.isEnabledFor(logging.INFO)


@contextlib.contextmanager
def purpose(action: str) -> Iterator[None]:
    """Name the action of the Unkey updates made in the block (``"key.cut"``, ``"key.restored"``).

    The client cannot tell a cut from a restore by the fields alone; the rotation code can.
    An update that enables or disables a key is named by that whatever the purpose.
    """
    token = _PURPOSE.set(action)
    try:
        yield
    finally:
        _PURPOSE.reset(token)


def current_purpose() -> str | None:
    """The action :func:`purpose` names for the updates made now, if any."""
    return _PURPOSE.get()


@functools.lru_cache(maxsize=1)
def _user_at_host() -> str:
    # Imported here: the Lambda's cold start never needs it (it names itself by function).
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        # A container's uid with no passwd entry and no LOGNAME/USER: the uid is all there is.
        user = f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def actor() -> str:
    """Who acts, as events name it.

    ``UNKEY_SECRETS_ACTOR`` if set, else ``aws-lambda:<function>`` in a Lambda
    (``AWS_LAMBDA_FUNCTION_NAME``), else ``user@host``. Read on every event, so a job that
    sets the variable per run is named correctly. Cut to :data:`MAX_ACTOR` characters,
    control characters replaced.
    """
    given = os.environ.get(ACTOR_VARIABLE, "").strip()
    if given:
        name = given
    elif os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        name = f"aws-lambda:{os.environ['AWS_LAMBDA_FUNCTION_NAME']}"
    else:
        name = _user_at_host()
    name = "".join(c if c.isprintable() else "?" for c in name[:MAX_ACTOR])
    return scrub(name)


def _now() -> str:
    """RFC 3339, UTC, milliseconds: ``2025-01-31T12:00:00.123Z``."""
    now = dt.datetime.now(dt.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    return value


def emit(
    action: str,
    outcome: str,
    fields: Mapping[str, Any],
    *,
    error: BaseException | None = None,
) -> None:
    """Emit one event (if :func:`enabled`): ``action`` and ``outcome`` as documented.

    ``fields`` are the event's other members (``api_id``, ``key_id``, ``location``,
    ``store``, ``request_id``, ``original_key_id``, ``alias``, ``version``, ``created``,
    ``expires``, ``changes``, ``actions``, ``flow``, ``trace_id``, ``span_id``); a core member
    left out is null, an optional one left out or None is absent (but ``expires``, whose
    null means never). ``error`` is named by its class alone.
    """
    if not _logger.isEnabledFor(logging.INFO):
        return
    event: dict[str, Any] = {
        "schema": SCHEMA,
        "time": _now(),
        "actor": actor(),
        "action": action,
        "api_id": None,
        "key_id": None,
        "location": None,
        "outcome": outcome,
        "request_id": None,
        "store": None,
        "error": None if error is None else type(error).__name__,
    }
    for name, value in fields.items():
        if value is not None or name in event or name in _NULL_MEANS:
            event[name] = _clean(value)
    # One line a person can read; the record guard scrubs it as it scrubs every record. A
    # location comes from a store's answer (an ARN): its control characters are replaced, so
    # it cannot end the line and forge another record in a text log, nor drive a terminal.
    _logger.info(
        "%s %s key_id=%s api_id=%s location=%s%s",
        _one_line(action),
        _one_line(outcome),
        _one_line(event["key_id"]),
        _one_line(event["api_id"]),
        _one_line(event["location"]),
        f" error={_one_line(event['error'])}" if event["error"] else "",
        extra={"audit": event},
    )


def _one_line(value: object) -> str:
    """``value`` as text for the one-line message, each non-printable character a ``?``."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else "?" for c in text)


@functools.lru_cache(maxsize=1)
def audit_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``unkey-secrets/audit/v1`` events, as a dict."""
    from importlib import resources

    text = resources.files(__package__).joinpath("audit-v1.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is_fifo(path: Path) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except OSError:
        return False


def _open_append(path: Path) -> int:
    """Open ``path`` to append, created 0600; a named pipe with no reader raises ENXIO.

    Opened non-blocking (a pipe's open would otherwise wait for a reader), then set back to
    blocking, so writes to a pipe whose reader is slow wait rather than fail.
    """
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | nonblocking
    fd = os.open(path, flags, 0o600)
    if nonblocking:
        try:
            os.set_blocking(fd, True)
        except OSError:
            os.close(fd)
            raise
    return fd


class AuditLogHandler(logging.Handler):
    """Appends every audit event it is handed to ``path``, one JSON object per line.

    The file is opened for appending and created with mode 0600 (an existing file keeps its
    mode). Each line is written with one ``write`` and flushed, so a reader tailing the file
    (a SIEM's agent) never sees half a line. Records without an ``audit`` attribute are
    ignored. Raises :class:`~unkey_secrets.ConfigurationError` naming the path and the
    error's class when the file cannot be opened, at once for a named pipe nobody reads
    (opening it would wait for a reader forever); a pipe with a reader gets the lines.
    """

    def __init__(self, path: str | os.PathLike[str], level: int = logging.INFO) -> None:
        # Set first: logging knows the handler from here on and closes it at exit, even when
        # the file cannot be opened.
        self._fd: int | None = None
        super().__init__(level)
        self.path = Path(path)
        try:
            self._fd = _open_append(self.path)
        except OSError as exc:
            problem = type(exc).__name__
            if exc.errno == errno.ENXIO and _is_fifo(self.path):
                problem = "a named pipe with no reader"
        else:
            return
        raise ConfigurationError(f"cannot open the audit log {self.path} ({problem})")

    def __repr__(self) -> str:
        return f"AuditLogHandler({str(getattr(self, 'path', '?'))!r})"

    def emit(self, record: logging.LogRecord) -> None:
        """Write ``record``'s event as one JSON line (``logging`` reports a failed write)."""
        event = getattr(record, "audit", None)
        if not isinstance(event, dict) or self._fd is None:
            return
        try:
            line = json.dumps(event, separators=(",", ":"), sort_keys=True) + "\n"
            data = memoryview(line.encode("utf-8"))
            while data:
                data = data[os.write(self._fd, data) :]
        except Exception:  # noqa: BLE001 (logging's own report, as every handler does)
            self.handleError(record)

    def close(self) -> None:
        """Close the file; later events are dropped."""
        with contextlib.suppress(OSError):
            if self._fd is not None:
                os.close(self._fd)
        self._fd = None
        super().close()
