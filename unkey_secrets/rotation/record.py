"""The durable record of one rotation, kept in the store beside the keys it concerns.

A rotation of key ``K`` owns one record, at the store's rotation location for ``K`` (default
``unkey/rotated-from/{api_id}/{key_id}``). It holds no plaintext, only ids, states and times
(format ``unkey-secrets/rotation/v1``)::

    {"format": "unkey-secrets/rotation/v1", "revision": 2, "rotation": "rot_...",
     "api_id": "api_...", "from_key_id": "key_K", "key_id": "key_N" | null,
     "aliases": ["svc"], "state": "claimed" | "stored" | "released" | "done",
     "owner": {"attempt": "...", "host": "...", "pid": 123, "since": <ms>} | null,
     "previous_expires": <ms or null>, "original_expires": <ms or null>,
     "grace_period_ms": 86400000, "finished": <ms or null>}

Every write names the revision it replaces and fails if another writer got there first
(Vault ``cas``; a Secrets Manager ClientRequestToken derived from the revision), so two runs
can never both own a rotation. ``claimed`` means a run owns it (``owner`` says which);
``stored`` that the new key ``key_id`` is stored and only the tidy-up is left; ``released``
that an attempt failed and undid its Unkey side, so the next run starts afresh; ``done`` that
the original was cut to ``original_expires`` and nothing is left to do.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from .._errors import StoredValueError
from .._validate import validate_api_id, validate_key_id

#: Attempt ids of the rotations running in this process now: an owner with this process's pid
#: whose attempt is not here was interrupted (Ctrl-C in a long-lived process) and is dead.
LIVE_ATTEMPTS: set[str] = set()

__all__ = [
    "LIVE_ATTEMPTS",
    "PROCESSES",
    "ROTATION_FORMAT",
    "LocalProcesses",
    "Owner",
    "Processes",
    "RotationRecord",
    "State",
    "parse_rotation_fields",
]

ROTATION_FORMAT = "unkey-secrets/rotation/v1"

State = Literal["claimed", "stored", "released", "done"]
_STATES = ("claimed", "stored", "released", "done")


class Processes(Protocol):
    """Where a run happens and whether another run can still be at work.

    The rotation record names its owner by host and pid; this is what decides whether that
    owner is alive. :class:`LocalProcesses` asks the operating system; a simulator gives each
    of its actors a process of its own.
    """

    def current(self) -> tuple[str, int]:
        """The host name and pid of the run asking."""
        ...

    def is_alive(self, owner: Owner) -> bool:
        """Whether ``owner`` can still be at work, as far as this host can tell."""
        ...


class LocalProcesses:
    """The operating system's view: this host's name, this process's pid, ``kill(pid, 0)``."""

    def current(self) -> tuple[str, int]:
        """``socket.gethostname()`` and ``os.getpid()``."""
        return socket.gethostname(), os.getpid()

    def is_alive(self, owner: Owner) -> bool:
        """Whether ``owner`` can still be at work, as far as this host can tell.

        A process on this host that no longer exists is dead, and so is an attempt of this
        process that is no longer running; a run on another host is taken to be alive.
        """
        host, pid = self.current()
        if owner.host != host:
            return True
        if owner.pid == pid:
            return owner.attempt in LIVE_ATTEMPTS
        try:
            os.kill(owner.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True


#: The process table runs in this context consult (a context variable, so a simulator's
#: threads can each be a process of their own).
PROCESSES: contextvars.ContextVar[Processes] = contextvars.ContextVar(
    "unkey_secrets_processes",
    default=LocalProcesses(),  # noqa: B039 (stateless: one instance serves every context)
)


@dataclass(frozen=True)
class Owner:
    """The run that holds a rotation: a random attempt id, the host and process, since when (ms)."""

    attempt: str
    host: str
    pid: int
    since: int

    @classmethod
    def me(cls, now_ms: int) -> Owner:
        """A new owner for this process, starting ``now_ms`` (Unix ms)."""
        host, pid = PROCESSES.get().current()
        return cls(secrets.token_hex(8), host, pid, now_ms)

    def is_alive(self) -> bool:
        """Whether the run can still be at work, as far as :data:`PROCESSES` can tell."""
        return PROCESSES.get().is_alive(self)


@dataclass(frozen=True)
class RotationRecord:
    """What a store keeps about one rotation (see the module docstring for the JSON shape)."""

    rotation: str
    api_id: str
    from_key_id: str
    state: State
    revision: int = 1
    key_id: str | None = None
    aliases: tuple[str, ...] = ()
    owner: Owner | None = None
    previous_expires: int | None = None
    original_expires: int | None = None
    grace_period_ms: int | None = None
    finished: int | None = None

    def next(self, **changes: Any) -> RotationRecord:
        """The record's next revision with ``changes`` applied."""
        return dataclasses.replace(self, revision=self.revision + 1, **changes)

    def fields(self) -> dict[str, Any]:
        """The stored JSON members."""
        return {
            "format": ROTATION_FORMAT,
            "revision": self.revision,
            "rotation": self.rotation,
            "api_id": self.api_id,
            "from_key_id": self.from_key_id,
            "key_id": self.key_id,
            "aliases": list(self.aliases),
            "state": self.state,
            "owner": dataclasses.asdict(self.owner) if self.owner is not None else None,
            "previous_expires": self.previous_expires,
            "original_expires": self.original_expires,
            "grace_period_ms": self.grace_period_ms,
            "finished": self.finished,
        }


def parse_rotation_fields(data: object, *, store: str, location: str) -> RotationRecord:
    """Read a stored rotation record; a value in any other shape raises StoredValueError."""

    def bad(problem: str) -> StoredValueError:
        return StoredValueError(
            f"value at {location} is not an unkey-secrets rotation record: {problem}",
            store=store,
            location=location,
        )

    if not isinstance(data, Mapping) or data.get("format") != ROTATION_FORMAT:
        raise bad(f"format is not {ROTATION_FORMAT!r}")
    try:
        api_id = validate_api_id(data.get("api_id"))
        from_key_id = validate_key_id(data.get("from_key_id"), "from_key_id")
        key_id = data.get("key_id")
        if key_id is not None:
            key_id = validate_key_id(key_id)
    except ValueError as exc:
        raise bad(str(exc)) from None
    state, revision, rotation = data.get("state"), data.get("revision"), data.get("rotation")
    if state not in _STATES:
        raise bad("member 'state' is not one of " + ", ".join(_STATES))
    if not isinstance(revision, int) or isinstance(revision, bool) or revision < 1:
        raise bad("member 'revision' is not a positive integer")
    if not isinstance(rotation, str) or not rotation:
        raise bad("member 'rotation' is missing")
    aliases = data.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise bad("member 'aliases' is not a list of names")
    owner = _owner(data.get("owner"))
    if data.get("owner") is not None and owner is None:
        raise bad("member 'owner' is not an owner")
    if state == "claimed" and owner is None:
        raise bad("a claimed rotation names no owner")
    if state in ("stored", "done") and key_id in (None, from_key_id):
        raise bad(f"a {state} rotation must name a new key other than the original")
    return RotationRecord(
        rotation=rotation,
        api_id=api_id,
        from_key_id=from_key_id,
        state=state,
        revision=revision,
        key_id=key_id,
        aliases=tuple(aliases),
        owner=owner,
        previous_expires=_optional_int(data.get("previous_expires")),
        original_expires=_optional_int(data.get("original_expires")),
        grace_period_ms=_optional_int(data.get("grace_period_ms")),
        finished=_optional_int(data.get("finished")),
    )


def _owner(value: object) -> Owner | None:
    if not isinstance(value, Mapping):
        return None
    attempt, host = value.get("attempt"), value.get("host")
    pid, since = _optional_int(value.get("pid")), _optional_int(value.get("since"))
    if isinstance(attempt, str) and isinstance(host, str) and pid is not None and since is not None:
        return Owner(attempt, host, pid, since)
    return None


def _optional_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
