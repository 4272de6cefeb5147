"""The confinement guards: what keeps plaintext keys and credentials out of logs and tracebacks.

Installed by :func:`install_guards` (idempotent, thread-safe, called by every public entry
point, so nobody has to remember it), or applied where a value is held:

* **Log records.** A process-wide log record factory, chained to the one it found, scrubs each
  record as it is created, whichever logger made it and however late a handler formats it (a
  ``QueueHandler`` included). Two sources: the exact plaintexts currently in flight, registered
  by :func:`confined` around the I/O that carries them (also in their JSON-escaped and repr
  forms), and the shapes of bodies whose plaintext nobody knows in advance (botocore's
  ``SecretString``, Unkey's ``"key"``/``"plaintext"`` members, the ``unkey.py`` SDK's
  ``key='...'`` reprs). A message is only rewritten (``msg`` rendered, ``args=()``) when
  something had to be masked. A record carrying an exception (``exc_info``) from a logger on our
  request paths (:data:`REQUEST_PATH_LOGGERS`: botocore's "Exception received when sending HTTP
  request." first of all) always has it rendered as ``logging`` renders it, without frame
  locals, scrubbed into ``exc_text``, and ``exc_info`` dropped: no handler, formatter or
  reporter downstream gets the live exception, whose frames hold what they held (a signed
  request's session token, a login body). An application's own records keep their live
  exception (its reporters need it; our errors reach it with their frames cleared) unless its
  plain rendering needed masking. Levels,
  handlers and formatters are never touched.
  Every credential the process holds is masked the same way, for as long as it is held, from
  where it is loaded: the ones named by the standard environment variables
  (``UNKEY_ROOT_KEY``, ``VAULT_TOKEN``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``...),
  read by :func:`hold_environment` whenever something may load them (a constructor or settings
  source behind :func:`guarded`, an HTTP client built or put under the transport policy,
  :func:`install_guards` itself), never on an ordinary call; and the ones registered with
  :func:`hold` where they are loaded (a ``~/.vault-token``, an AppRole ``role_id`` and
  ``secret_id``, a JWT, the token a login returns, a botocore client's credentials).
  Credential-bearing shapes are masked whatever their value: ``Authorization``,
  ``X-Vault-Token`` and ``X-Amz-Security-Token`` headers (as header lines, in a canonical
  request and in header dict reprs), ``Bearer`` tokens,
  ``secret_id``/``jwt``/``token``/``client_token`` members, presigned URL credentials and
  botocore's ``Signature:`` line.
* **http.client debug output.** ``http.client.HTTPConnection.debuglevel > 0`` prints whole
  requests to stdout, headers and bodies. Process-wide, every line it prints goes through the
  same scrubber as a log record (``http.client``'s own ``print`` is replaced by a scrubbing one,
  chained to whatever it was); and :func:`confined` and the logins refuse outright while it is
  set on the class, before anything is sent.
* **Tracebacks.** :func:`guarded` wraps every boundary: the public entry points, and each
  constructor, factory, login and settings source that takes or loads a credential. An
  exception leaving it (``KeyboardInterrupt`` included) has the locals of every finished frame
  below the boundary cleared, in its cause and context chain too, so a traceback rendered with
  ``capture_locals=True`` (Sentry, rich, loguru's ``diagnose``, pytest ``-l``) shows no value
  from inside the call. A boundary whose error unwinds into code we do not own (the
  pydantic-settings sources and their constructors, ``load_settings``, the Lambda's
  configuration) uses ``guarded(fresh=True)``: the error that leaves is a fresh one
  (:func:`fresh_error`) with no cause, no context and a traceback starting at the boundary.
  The stored payload is a :class:`MaskedDict` and an encoded one a :class:`MaskedText`, whose
  reprs hide the values, for the frames that are still running when something renders them;
  every ``__repr__`` of ours works on an object whose constructor failed at any line.
* **Holders.** What a generic serialiser or a deep locals renderer walks (``__slots__``,
  ``__dict__``, ``dataclasses.asdict``, ``vars``) holds no plaintext: a
  :class:`~unkey_secrets.Secret` keeps its value outside the object, the settings models type
  every credential ``SecretStr``, and a stored value's unknown members are kept by name only.
* **Core dumps.** :func:`disable_core_dumps` for processes (the CLI) that should never leave
  their memory on disk.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import functools
import http.client
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, NoReturn, ParamSpec, Protocol, TypeVar, overload

from ._errors import ConfigurationError, UnkeySecretsError
from ._secret import Secret

__all__ = [
    "MASK",
    "MaskedDict",
    "MaskedText",
    "check_http_debug",
    "confined",
    "disable_core_dumps",
    "ensure_installed",
    "fresh_error",
    "guarded",
    "hold",
    "hold_environment",
    "install_guards",
    "scrub",
]

MASK = "**********"

_P = ParamSpec("_P")
_R = TypeVar("_R")

# -- the in-flight registry ------------------------------------------------------------------

_lock = threading.RLock()
_counts: dict[str, int] = {}


def _new_lock_in_child() -> None:
    # A fork taken while another thread held the lock (a write, a verify) would leave the
    # child's copy held forever: the child starts with a free one.
    global _lock
    _lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)
#: Longest first, so a longer form is masked before a shorter one it contains. Rebuilt under
#: the lock and read without it: a tuple is replaced in one reference assignment.
_needles: tuple[str, ...] = ()


def _forms(plaintext: str) -> set[str]:
    """Return the spellings a plaintext takes in log text.

    Raw, JSON-escaped (once, and again inside another JSON string as in a SecretString), and
    the str and bytes repr of each.
    """
    once = json.dumps(plaintext)[1:-1]
    once_utf8 = json.dumps(plaintext, ensure_ascii=False)[1:-1]
    twice = json.dumps(once)[1:-1]
    forms: set[str] = set()
    for form in {plaintext, once, once_utf8, twice}:
        forms.add(form)
        forms.add(repr(form)[1:-1])
        forms.add(repr(form.encode("utf-8", "backslashreplace"))[2:-1])
    forms.discard("")
    return forms


def _rebuild() -> None:
    global _needles
    _needles = tuple(sorted(_counts, key=len, reverse=True))


@contextlib.contextmanager
def confined(secret: Secret) -> Iterator[None]:
    """Mark ``secret`` as in flight: every log record made meanwhile has it masked.

    Wrap the I/O that carries a plaintext (a store write, an Unkey create, reroll or verify).
    Nesting and concurrent use are safe (the registry is reference-counted). Raises
    :class:`~unkey_secrets.ConfigurationError`, before anything is sent, when
    ``http.client`` debug output is on, since it would print the request body.
    """
    check_http_debug()
    forms = _forms(secret.reveal())
    with _lock:
        for form in forms:
            _counts[form] = _counts.get(form, 0) + 1
        _rebuild()
    try:
        yield
    finally:
        with _lock:
            for form in forms:
                left = _counts[form] - 1
                if left:
                    _counts[form] = left
                else:
                    del _counts[form]
            _rebuild()


# -- held credentials ------------------------------------------------------------------------

#: Shorter values are not masked by value: they would mask ordinary words (moto's dummy
#: ``testing``). Real credentials are far longer; the shapes below still mask short ones.
MIN_HELD_LENGTH = 12

#: The standard variables that name a credential, read by :func:`hold_environment`.
CREDENTIAL_VARIABLES = (
    "UNKEY_ROOT_KEY",
    "VAULT_TOKEN",
    "UNKEY_SECRETS_VAULT_SECRET_ID",
    "UNKEY_SECRETS_VAULT_JWT",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
)

_held: set[str] = set()
_environment_seen: tuple[str | None, ...] = ()


def _text_of(value: object) -> str | None:
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, str):
        return value
    reveal = getattr(value, "get_secret_value", None)  # pydantic's SecretStr
    if callable(reveal):
        text = reveal()
        return text if isinstance(text, str) else None
    return None


def hold(*values: object) -> None:
    """Mask each of ``values`` (a credential) in every log record and debug line from now on.

    Call it where a credential is loaded: a root key, a Vault token, a ``secret_id``, a JWT, an
    AWS secret key or session token. Takes a ``str``, a :class:`~unkey_secrets.Secret` or a
    pydantic ``SecretStr``; ``None``, other types and values shorter than
    :data:`MIN_HELD_LENGTH` are ignored. A held value stays held for the life of the process.
    """
    forms: set[str] = set()
    for value in values:
        text = _text_of(value)
        if text is not None and len(text.strip()) >= MIN_HELD_LENGTH:
            forms |= _forms(text) | _forms(text.strip())
    with _lock:
        new = forms - _held
        if not new:
            return
        for form in new:
            _counts[form] = _counts.get(form, 0) + 1
        _held.update(new)
        _rebuild()


def hold_environment() -> None:
    """Hold the credentials the standard variables name now (:data:`CREDENTIAL_VARIABLES`).

    Called where such a credential may be loaded: :func:`install_guards`, every constructor and
    settings source behind :func:`guarded`, and each HTTP client built or put under the
    transport policy (:mod:`unkey_secrets.transport`). A credential set in the environment later
    is held by the next of those, before anything of ours can read it; an ordinary call reads
    no variable.
    """
    global _environment_seen
    seen = tuple(os.environ.get(name) for name in CREDENTIAL_VARIABLES)
    if seen != _environment_seen:
        hold(*seen)
        _environment_seen = seen


# -- scrubbing -------------------------------------------------------------------------------

# A member or keyword whose value is a secret, in JSON, a dict repr or a keyword repr, at any
# escaping depth: ``"key": "..."``, ``\\"key\\": \\"...\\"``, ``'SecretString': '...'``,
# ``key='...'``. The value ends at the same quote sequence that opened it, not escaped.
_SHAPE = re.compile(
    r"""(?<![\w$])(?P<name>SecretString|SecretBinary|plaintext|key)(?P<q1>\\*["']|)"""
    r"""(?P<sep>\s*[:=]\s*)(?P<q2>\\*["'])(?P<value>.*?)(?<!\\)(?P=q2)""",
    re.DOTALL,
)
_TRIGGERS = ("key", "Secret", "plaintext")

# The same, for members and headers that hold a credential, whatever their value. Header names
# match in any case; a value may be a bytes repr (``'X-Amz-Security-Token': b'...'``).
_CREDENTIAL_SHAPE = re.compile(
    r"""(?:(?<![\w$-])|(?<=\\[nrt]))"""
    r"""(?P<name>(?i:x-amz-security-token|x-vault-token|proxy-authorization"""
    r"""|authorization)|root_key|role_id|secret_id|jwt|token|client_token|secret_key|session_token"""
    r"""|aws_secret_access_key|aws_session_token|SecretAccessKey|SessionToken"""
    r"""|iam_request_headers|password)(?P<q1>\\*["']|)"""
    r"""(?P<sep>\s*[:=]\s*)(?P<b>b?)(?P<q2>\\*["'])(?P<value>.*?)(?<!\\)(?P=q2)""",
    re.DOTALL,
)
# A header line (an HTTP request as http.client prints it, a canonical request): the value
# runs to the end of the line, a quote, or an escaped CR/LF in a bytes repr. Each shape may
# also start right after an escaped ``\r``/``\n``/``\t`` (a header after ``\r\n`` in a repr).
_HEADER_LINE = re.compile(
    r"""(?:(?<![\w-])|(?<=\\[nrt]))"""
    r"""(?P<name>(?i:x-amz-security-token|x-vault-token|proxy-authorization"""
    r"""|authorization))(?P<sep>[ \t]*:[ \t]*)(?!\\*["'])"""
    r"""(?P<value>(?:[^\r\n'"\\]|\\(?![rn]))+)"""
)
# Credentials in other spellings: a bearer token anywhere, presigned URL parameters, an XML
# element (STS), botocore's ``Signature:`` line and ``Signature=`` in a SigV4 header.
_OTHER_CREDENTIALS = re.compile(
    r"""(?P<name>(?:(?<![\w-])|(?<=\\[nrt]))(?:Bearer\s+|Signature(?::[ \t]*\r?\n|=))"""
    r"""|(?i:X-Amz-Security-Token|X-Amz-Signature)=|<(?:SessionToken|SecretAccessKey)>)"""
    r"""(?P<value>[A-Za-z0-9._~+/%=-]+)"""
)
_CREDENTIAL_TRIGGERS = (
    "oken",
    "OKEN",
    "uthorization",
    "UTHORIZATION",
    "Bearer",
    "secret",
    "root_key",
    "role_id",
    "jwt",
    "password",
    "Signature",
    "SecretAccessKey",
    "iam_request",
)


def _mask_shape(match: re.Match[str]) -> str:
    q2 = match["q2"]
    prefix = match.groupdict().get("b") or ""
    return f"{match['name']}{match['q1']}{match['sep']}{prefix}{q2}{MASK}{q2}"


def _mask_header(match: re.Match[str]) -> str:
    return f"{match['name']}{match['sep']}{MASK}"


def _mask_other(match: re.Match[str]) -> str:
    return f"{match['name']}{MASK}"


def scrub(text: str) -> str:
    """Return ``text`` with in-flight plaintexts and secret-bearing members masked.

    Returns the very same object when nothing needed masking, so callers can test identity.
    """
    clean = text
    for needle in _needles:
        if needle in clean:
            clean = clean.replace(needle, MASK)
    if any(trigger in clean for trigger in _TRIGGERS):
        masked = _SHAPE.sub(_mask_shape, clean)
        if masked != clean:
            clean = masked
    if any(trigger in clean for trigger in _CREDENTIAL_TRIGGERS):
        masked = _CREDENTIAL_SHAPE.sub(_mask_shape, clean)
        masked = _HEADER_LINE.sub(_mask_header, masked)
        masked = _OTHER_CREDENTIALS.sub(_mask_other, masked)
        if masked != clean:
            clean = masked
    return clean


_exception_formatter = logging.Formatter()


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 (logging reports a bad format itself, at emit time)
        # The record cannot be rendered; keep its parts from echoing a plaintext when logging
        # prints them in its own error report.
        raw = f"{record.msg!s} (arguments: {record.args!r})"
        if scrub(raw) is not raw:
            record.msg, record.args = scrub(raw), ()
    else:
        clean = scrub(message)
        if clean is not message:
            record.msg, record.args = clean, ()
    if record.exc_info:
        if record.exc_info[0] is None:
            record.exc_info = None
        else:
            rendered = _render_exception(record.exc_info)
            clean = scrub(rendered)
            # The libraries on our request paths log exceptions mid-request: their live
            # traceback reaches frames holding a signed request (a session token) or a body,
            # which a formatter or reporter rendering locals would print, however clean the
            # plain text. Only their scrubbed text goes on. An application's own records keep
            # their exception for its reporters, unless its plain text needed masking.
            if clean is not rendered or _on_our_paths(record.name):
                record.exc_text, record.exc_info = clean, None
    elif record.exc_text:
        record.exc_text = scrub(record.exc_text)
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


#: The loggers of the libraries our requests go through (and our own): a record they make with
#: an exception never carries it live past the guard.
REQUEST_PATH_LOGGERS = (
    "unkey_secrets",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "requests",
    "hvac",
    "httpx",
    "httpcore",
    "unkey",
)


def _on_our_paths(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in REQUEST_PATH_LOGGERS)


def _render_exception(exc_info: Any) -> str:
    """The traceback text ``logging`` would print for ``exc_info``, without frame locals."""
    try:
        return _exception_formatter.formatException(exc_info)
    except Exception:  # noqa: BLE001 (a record must be made whatever the exception does)
        kind = getattr(exc_info[0], "__name__", "exception")
        return f"{kind} (its traceback could not be rendered)"


# -- the record factory ----------------------------------------------------------------------

_probe = threading.local()
_checked_factory: Callable[..., logging.LogRecord] | None = None


def _guarding(previous: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if getattr(_probe, "active", False):
            _probe.seen = True
            return record
        _scrub_record(record)
        return record

    return factory


def _factory_scrubs(factory: Callable[..., logging.LogRecord]) -> bool:
    """Whether ``factory`` (ours, or one chained in front of ours) runs our scrubber."""
    _probe.active, _probe.seen = True, False
    try:
        factory(__name__, logging.DEBUG, __file__, 0, "probe", (), None)
    finally:
        _probe.active = False
    return bool(_probe.seen)


def install_guards() -> None:
    """Install the guards, once, and hold the credentials the environment names now.

    Holds the credentials the standard environment variables name (:func:`hold_environment`),
    puts the scrubbing ``print`` into ``http.client`` (and ``urllib3.connection``) and the log
    record guard in front of the record factory. If someone later replaced the factory with
    one that does not chain to ours, ours is put back in front of theirs; a factory that does
    chain is left alone. The entry points call :func:`ensure_installed`, which reads no
    variable.
    """
    hold_environment()
    ensure_installed()


def ensure_installed() -> None:
    """:func:`install_guards` without the environment: cheap enough for every call."""
    global _checked_factory
    _guard_http_debug_output()
    if logging.getLogRecordFactory() is _checked_factory:
        return
    with _lock:
        current = logging.getLogRecordFactory()
        if current is _checked_factory:
            return
        if not _factory_scrubs(current):
            logging.setLogRecordFactory(_guarding(current))
        _checked_factory = logging.getLogRecordFactory()


# -- http.client -----------------------------------------------------------------------------

#: The modules whose debug output (``debuglevel > 0``) is printed with the module-level name
#: ``print``: a ``print`` in their globals shadows the builtin for them alone.
_HTTP_DEBUG_MODULES = ("http.client", "urllib3.connection")


def _scrubbing_print(previous: Callable[..., None]) -> Callable[..., None]:
    def scrubbed_print(
        *values: object,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        text = (" " if sep is None else sep).join(str(value) for value in values)
        previous(scrub(text), end=end, file=file, flush=flush)

    scrubbed_print.__unkey_secrets_guard__ = True  # type: ignore[attr-defined]
    return scrubbed_print


def _guard_http_debug_output() -> None:
    for name in _HTTP_DEBUG_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        current = vars(module).get("print", builtins.print)
        if getattr(current, "__unkey_secrets_guard__", False):
            continue
        with _lock:
            current = vars(module).get("print", builtins.print)
            if not getattr(current, "__unkey_secrets_guard__", False):
                module.print = _scrubbing_print(current)  # type: ignore[attr-defined]


def check_http_debug() -> None:
    """Refuse to go on while ``http.client`` would print requests (headers, bodies) to stdout.

    Called before anything is sent by every store write (:func:`confined`), the flows and the
    Vault logins. Its output is scrubbed anyway (see :func:`install_guards`); this refusal is
    the second line, for what a scrubber cannot know.
    """
    ensure_installed()
    classes: list[Any] = [http.client.HTTPConnection]
    urllib3_connection = sys.modules.get("urllib3.connection")
    if urllib3_connection is not None:
        classes.append(getattr(urllib3_connection, "HTTPConnection", None))
    for cls in classes:
        if isinstance(getattr(cls, "debuglevel", 0), int) and cls.debuglevel > 0:
            raise ConfigurationError(
                f"{cls.__module__}.{cls.__qualname__}.debuglevel is {cls.debuglevel}: it prints "
                "requests, credentials and plaintext keys included, to stdout; set it to 0 first"
            )


# -- tracebacks ------------------------------------------------------------------------------


def _clear_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        tb: TracebackType | None = current.__traceback__
        while tb is not None:
            with contextlib.suppress(RuntimeError):  # a frame still running keeps its locals
                tb.tb_frame.clear()
            tb = tb.tb_next
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)


class _Guard(Protocol):
    def __call__(self, func: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def guarded(func: Callable[_P, _R], /) -> Callable[_P, _R]: ...


@overload
def guarded(*, fresh: bool) -> _Guard: ...


def guarded(
    func: Callable[_P, _R] | None = None, /, *, fresh: bool = False
) -> Callable[_P, _R] | _Guard:
    """Wrap a public entry point: guards installed first, no frame locals leave with an error.

    A constructor (``__init__``) and a ``fresh`` boundary (a settings source, a loader) may
    load a credential: they hold the environment's first (:func:`hold_environment`). Any other
    entry point reads no variable.

    An exception raised through the wrapper (``KeyboardInterrupt`` and every other
    ``BaseException`` included) has the locals of the finished frames in its traceback, and in
    its cause and context chain, cleared: file names and line numbers stay, the values that
    could hold a body, a plaintext or a credential go.

    ``@guarded(fresh=True)`` is for a boundary whose error unwinds into code we do not own
    (a pydantic-settings source, a constructor it calls, a login): what leaves is a fresh
    exception instead (see :func:`fresh_error`), with no cause, no context and a traceback
    that starts at the wrapper, so nothing the failing call reached can be reached from it.
    """
    if func is None:
        return _FreshGuard() if fresh else guarded
    return _guard(func, fresh=fresh)


class _FreshGuard:
    def __call__(self, func: Callable[_P, _R], /) -> Callable[_P, _R]:
        return _guard(func, fresh=True)


def _guard(func: Callable[_P, _R], *, fresh: bool) -> Callable[_P, _R]:
    # Decided once, here: a boundary that may load a credential reads the environment's.
    install = install_guards if fresh or func.__name__ == "__init__" else ensure_installed

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        install()
        # Handed over without a name: while ``func`` runs, this frame holds no argument (a
        # plaintext, an SDK response), so an error reporter that walks the live stack when a
        # log record is made (Sentry's attach_stacktrace) finds none here.
        held: list[Any] = [args, kwargs]
        del args, kwargs
        failure: BaseException
        try:
            return func(*held.pop(0), **held.pop(0))
        except BaseException as exc:
            _clear_frames(exc)
            if not fresh:
                raise
            failure = fresh_error(exc)
        # Raised outside the handler: the original is not this one's context.
        raise failure

    return wrapper


#: The types a foreign exception's arguments may have to be carried over to a fresh one.
_PLAIN_ARGUMENTS = (str, int, float, bool, type(None))


def fresh_error(exc: BaseException) -> BaseException:
    """Return a new exception standing for ``exc``, reaching nothing ``exc`` reached.

    No traceback, no ``__cause__``, no ``__context__`` (and ``__suppress_context__`` set, as
    ``raise ... from None`` does). One of ours
    (:class:`~unkey_secrets.UnkeySecretsError`) is copied whole, as pickling copies it (its
    messages and attributes never hold a credential). Any other keeps its type and its
    arguments when they are plain values (``str`` ones scrubbed, see :func:`scrub`), and
    nothing else: its attributes (a ``requests`` error's prepared request, say) are dropped.
    One that cannot be rebuilt that way becomes an
    :class:`~unkey_secrets.UnkeySecretsError` naming its type.
    """
    error: BaseException
    if isinstance(exc, UnkeySecretsError):
        rebuild, arguments, *_ = exc.__reduce__()
        error = rebuild(*arguments)
    else:
        kind = type(exc)
        arguments = exc.args if all(isinstance(a, _PLAIN_ARGUMENTS) for a in exc.args) else ()
        try:
            error = kind(*(scrub(a) if isinstance(a, str) else a for a in arguments))
        except Exception:  # noqa: BLE001 (a type with required arguments of its own)
            error = UnkeySecretsError(
                f"{kind.__module__}.{kind.__qualname__} (its details are not kept: they may "
                "hold a credential)"
            )
    # As ``raise ... from None`` marks it: a context the caller's own handler adds is not shown.
    error.__suppress_context__ = True
    return error


# -- masked containers -----------------------------------------------------------------------


class MaskedDict(dict[str, Any]):
    """A dict whose ``repr``/``str`` show its member names only; ``json.dumps`` sees everything.

    The stored payload travels in one, so a frame holding it renders without the plaintext.
    Pickling is refused, as for :class:`~unkey_secrets.Secret`; copies stay masked.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{name!r}: {MASK!r}" for name in self) + "}"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a MaskedDict cannot be pickled: the plaintext must stay in memory")

    def __copy__(self) -> MaskedDict:
        return MaskedDict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> MaskedDict:
        return MaskedDict({name: copy.deepcopy(value, memo) for name, value in self.items()})


class MaskedText(str):
    """A str whose ``repr`` is a mask: an encoded payload held in a local or a request dict.

    ``str()``, formatting, ``json.dumps`` and every str method see the text (they must, to send
    it); only ``repr``, which tracebacks and container reprs use, is masked.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a MaskedText cannot be pickled: the plaintext must stay in memory")

    def __copy__(self) -> MaskedText:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> MaskedText:
        return self


# -- core dumps ------------------------------------------------------------------------------


def disable_core_dumps() -> bool:
    """Set this process's core file size limit to 0; return False where that is unsupported."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return False
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        return False
    return True
