"""A flow's hunted values in a reporter's output, in every spelling, and who held them.

A flow's *hunted values* are its canaries (the plaintext keys that went through it) and its
credentials (see :class:`~._canary.FlowContext`). A leak is any of their fragments found in an
output, raw or encoded: JSON-escaped, repr-escaped, url-encoded, or base64 (standard and url-safe,
at each of the three byte alignments, so a fragment inside a longer encoded value is found).

The *harness* is the caller's side of a flow: this repository's ``tests/`` and the test runner
(pytest, pluggy, xdist). Its frames hold canaries in locals by design (a flow builds the answer
it captures), so they are cleared (finished frames) or dropped (frames still running, which a
reporter reaches by walking the live stack) before a reporter's output is judged: what is left
is what the library and the libraries it calls kept.

:class:`Witness` records who held a hunted value: the frame locals (``file:function:variable``)
of every escaped error, and of every log record with ``exc_info`` or at WARNING and above (with
the live stack, as Sentry's ``attach_stacktrace`` and loguru's ``backtrace`` render it) when it
was emitted.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import inspect
import json
import logging
import re
import sys
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

from ._canary import needles

TESTS = Path(__file__).resolve().parents[1]
_RUNNER_PACKAGES = frozenset({"_pytest", "pluggy", "xdist", "execnet"})
_SUSPENDABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


@functools.lru_cache(maxsize=4096)
def is_harness(filename: str) -> bool:
    """Whether code in ``filename`` is the caller's: this repository's tests or the runner."""
    path = Path(filename)
    if path.is_absolute() and path.resolve().is_relative_to(TESTS):
        return True
    return bool(_RUNNER_PACKAGES.intersection(path.parts)) or "pytest" in path.parts[-2:-1]


def chain(exc: BaseException | None) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and the members of exception groups, each once."""
    pending = [exc] if exc is not None else []
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
        pending += list(getattr(current, "exceptions", ()))


def _frames(tb: TracebackType | None) -> Iterator[FrameType]:
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def clear_harness_frames(exc: BaseException | None) -> None:
    """Clear the locals of the harness's finished frames in ``exc``'s tracebacks.

    A suspended generator's frame is left alone: clearing it would finalise the generator (a
    context manager of the harness still in use).
    """
    for current in chain(exc):
        for frame in _frames(current.__traceback__):
            if is_harness(frame.f_code.co_filename) and not frame.f_code.co_flags & _SUSPENDABLE:
                with contextlib.suppress(RuntimeError):  # still running: a reporter skips it
                    frame.clear()


# -- spellings -------------------------------------------------------------------------------


def _base64_forms(fragment: str) -> set[str]:
    raw = fragment.encode()
    forms = set()
    for shift in range(3):
        aligned = raw[shift:]
        aligned = aligned[: len(aligned) - len(aligned) % 3]
        if len(aligned) >= 9:
            forms.add(base64.b64encode(aligned).decode())
            forms.add(base64.urlsafe_b64encode(aligned).decode())
    return forms


def spellings(fragment: str) -> dict[str, str]:
    """Each way ``fragment`` may be written in an output, named by its encoding."""
    forms = {
        "raw": fragment,
        "JSON-escaped": json.dumps(fragment)[1:-1],
        "JSON-escaped twice": json.dumps(json.dumps(fragment)[1:-1])[1:-1],
        "repr": repr(fragment)[1:-1],
        "url-encoded": urllib.parse.quote(fragment, safe=""),
        "url-encoded (plus)": urllib.parse.quote_plus(fragment, safe=""),
    }
    named: dict[str, str] = {}
    for name, form in forms.items():
        named.setdefault(form, name)
    for form in sorted(_base64_forms(fragment)):
        named.setdefault(form, "base64")
    return {form: name for form, name in named.items()}


def describe_credential(value: str) -> str:
    """A credential's kind, from its shape (the report names it, never shows it whole)."""
    if value.startswith("unkey_"):
        return "Unkey root key"
    if value.startswith(("hvs.", "s.")) or re.fullmatch(r"[0-9a-f]{32}", value):
        return "Vault token"
    if value.count(".") == 2:
        return "JWT"
    if re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value):
        return "AppRole role_id"
    if value.count("canary_") == 2:
        return "AWS session token"
    return "credential (secret_id, AWS secret key or token)"


@dataclass(frozen=True)
class Leak:
    """One hunted value found in an output: what it is, which fragment, in which spelling."""

    what: str
    fragment: str
    spelling: str

    def __str__(self) -> str:
        return f"{self.what} (fragment {self.fragment!r}, {self.spelling})"


@dataclass
class Hunt:
    """The fragments of every hunted value, each with what it belongs to."""

    targets: list[tuple[str, list[str]]] = field(default_factory=list)

    @classmethod
    def of(cls, canaries: Iterable[str], credentials: dict[str, list[str]]) -> Hunt:
        """The hunt for a flow's canaries (plaintext keys) and credentials."""
        hunt = cls()
        for canary in canaries:
            hunt.targets.append(("plaintext key", needles(canary)))
        for value, fragments in credentials.items():
            hunt.targets.append((describe_credential(value), fragments))
        return hunt

    def fragments(self) -> list[str]:
        """Every raw fragment hunted."""
        return [fragment for _, fragments in self.targets for fragment in fragments]

    def find(self, observed: str) -> list[Leak]:
        """Return every hunted fragment found in ``observed``, in any spelling."""
        found = []
        for what, fragments in self.targets:
            for fragment in fragments:
                for form, spelling in spellings(fragment).items():
                    if form in observed:
                        found.append(Leak(what, fragment, spelling))
                        break
        return found


# -- who held it -----------------------------------------------------------------------------


def where(filename: str, function: str, name: str) -> str:
    """``file:function:variable``, the file relative to the repository or site-packages."""
    path = filename
    if "site-packages/" in path:
        path = path.split("site-packages/", 1)[1]
    else:
        with contextlib.suppress(ValueError):
            path = str(Path(filename).resolve().relative_to(TESTS.parent))
    return f"{path}:{function}:{name}"


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:  # noqa: BLE001 (a repr that fails holds nothing to show)
        return f"<repr failed: {type(exc).__name__}>"


@dataclass
class Witness:
    """Who held what: ``(file:function:variable, repr of the value)`` for every frame seen."""

    held: list[tuple[str, str]] = field(default_factory=list)

    def frame(self, frame: FrameType) -> None:
        """Note the locals of ``frame`` (nothing for a harness frame)."""
        code = frame.f_code
        if is_harness(code.co_filename):
            return
        for name, value in list(frame.f_locals.items()):
            self.held.append((where(code.co_filename, code.co_name, name), _safe_repr(value)))

    def error(self, exc: BaseException | None) -> None:
        """Note every frame of ``exc``'s tracebacks, and what each exception carries."""
        for current in chain(exc):
            label = f"{type(current).__module__}.{type(current).__qualname__}"
            self.held.append((f"{label} (message)", _safe_repr(str(current))))
            self.held.append((f"{label}.args", _safe_repr(current.args)))
            for name, value in list(vars(current).items()):
                self.held.append((f"{label}.{name}", _safe_repr(value)))
            for frame in _frames(current.__traceback__):
                self.frame(frame)

    def stack(self, frame: FrameType | None) -> None:
        """Note every frame of the live stack from ``frame`` up."""
        while frame is not None:
            self.frame(frame)
            frame = frame.f_back

    def holders(self, fragment: str) -> list[str]:
        """Where ``fragment`` was held, each place once."""
        return sorted({place for place, text in self.held if fragment in text})


class WitnessHandler(logging.Handler):
    """First on the root logger: clears the harness's frames, notes who holds what.

    For a record with ``exc_info``: the locals of the exception's frames and of the live stack
    (loguru's ``backtrace`` renders it); for a record at WARNING or above: the live stack
    (Sentry's ``attach_stacktrace``). It runs before the reporters' handlers, so they render
    the record with the harness's finished frames already cleared.
    """

    def __init__(self, witness: Witness) -> None:
        super().__init__(logging.DEBUG)
        self.witness = witness

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            clear_harness_frames(error)
            self.witness.error(error)
        if error is not None or record.levelno >= logging.WARNING:
            self.witness.stack(sys._getframe(1))


_FRAME_HEADER = re.compile(r'^\s*(?:> )?File "(?P<path>[^"]+)", line \d+, in ')


def drop_harness_blocks(text: str) -> str:
    """Drop the harness's frames from tracebacks in the standard layout (loguru's included).

    A frame is its ``File "...", line N, in f`` line and the indented lines under it (source,
    variables); the harness's frames still running when a reporter walked the live stack are
    rendered with their locals, which are the caller's, not what the library kept.
    """
    kept: list[str] = []
    dropping = False
    for line in text.splitlines():
        header = _FRAME_HEADER.match(line)
        if header is not None:
            dropping = is_harness(header["path"])
        elif dropping and not line.startswith((" ", "\t")):
            dropping = False
        if not dropping:
            kept.append(line)
    return "\n".join(kept)
