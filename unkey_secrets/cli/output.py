"""What the command line prints: human lines, or one JSON object per result; never a plaintext.

Every field is copied by name from a result record (:class:`~unkey_secrets.ProvisionResult`,
:class:`~unkey_secrets.RotationResult`, :class:`~unkey_secrets.StoredLocation`) or from one of
our exceptions; none of them holds a plaintext, and nothing is rendered from a repr. Each line
still goes through :func:`~unkey_secrets._redact.scrub` on its way out, so a plaintext that is in
flight (the key ``capture`` read from stdin) could not be printed even by mistake.

Writing never raises: a stdout that is closed, or whose reader went away (``| head``), costs the
output, never the outcome of a command that succeeded, and never shows a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from .._errors import FlowError, InvalidInputError, StoreError, UnkeySecretsError
from .._models import StoredKey, StoredLocation
from .._redact import scrub
from .options import format_duration

if TYPE_CHECKING:
    from ..flows import ProvisionResult
    from ..rotation.protocol import RotationResult

__all__ = [
    "LOST_RESULT",
    "Output",
    "Record",
    "capture_record",
    "error_message",
    "error_record",
    "iso_time",
    "location_record",
    "provision_record",
    "register_human",
    "rotation_record",
    "settle",
    "show_record",
    "stores_record",
    "usage_record",
]

Record = dict[str, Any]


def location_record(location: StoredLocation | None) -> Record | None:
    """The fields of a :class:`StoredLocation`, or None."""
    if location is None:
        return None
    return {
        "store": location.store,
        "location": location.location,
        "key_id": location.key_id,
        "version": location.version,
        "created": location.created,
        "alias": location.alias,
    }


def provision_record(result: ProvisionResult, alias: str | None) -> Record:
    """What ``provision`` reports."""
    return {
        "command": "provision",
        "ok": True,
        "key_id": result.key_id,
        "api_id": result.api_id,
        "mode": result.mode,
        "alias": alias,
        "request_id": result.request_id,
        "location": location_record(result.location),
        "current": location_record(result.current),
        "replaced_key_id": result.replaced_key_id,
        "replaced_expires": result.replaced_expires,
        "replaced_expires_at": iso_time(result.replaced_expires),
    }


def rotation_record(result: RotationResult, alias: str | None) -> Record:
    """What ``rotate`` reports; ``original_expires`` is Unix ms, as Unkey counts it."""
    expires_at = iso_time(result.original_expires)
    return {
        "command": "rotate",
        "ok": True,
        "key_id": result.key_id,
        "original_key_id": result.original_key_id,
        "api_id": result.api_id,
        "alias": alias,
        "request_id": result.request_id,
        "grace_period_seconds": int(result.grace_period.total_seconds()),
        "original_expires": result.original_expires,
        "original_expires_at": expires_at,
        "outcome": result.outcome,
        "location": location_record(result.location),
        "current": location_record(result.current),
        "aliases": [location_record(moved) for moved in result.aliases],
    }


def iso_time(ms: int | None) -> str | None:
    """Unix ms as an ISO 8601 UTC time, to the second; None for None.

    Also None for a time no ISO 8601 year can write (before year 1, after 9999): the value
    comes from an answer (Unkey's ``expires``, a stored value's), and one key's odd value must
    not end a listing; the record keeps the raw milliseconds beside it.
    """
    if ms is None:
        return None
    try:
        moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="seconds")


def capture_record(
    location: StoredLocation, *, api_id: str, alias: str | None, rerolled_from: str | None
) -> Record:
    """What ``capture`` reports."""
    return {
        "command": "capture",
        "ok": True,
        "key_id": location.key_id,
        "api_id": api_id,
        "alias": alias,
        "rerolled_from": rerolled_from,
        "location": location_record(location),
    }


def show_record(stored: StoredKey, *, store: str, alias: str | None) -> Record:
    """What ``show`` reports: the stored value's metadata, copied by name; never its key."""
    return {
        "command": "show",
        "ok": True,
        "key_id": stored.key_id,
        "api_id": stored.api_id,
        "alias": alias,
        "store": store,
        "location": stored.location,
        "version": stored.version,
        "issued_at": stored.issued_at,
        "expires": stored.expires,
        "expires_at": iso_time(stored.expires),
        "rerolled_from": stored.rerolled_from,
        "name": stored.name,
        "external_id": stored.external_id,
        "prefix": stored.prefix,
    }


def stores_record(names: list[str]) -> Record:
    """What ``stores`` reports."""
    return {"command": "stores", "ok": True, "stores": list(names)}


def error_message(exc: BaseException) -> str:
    """Our exceptions' text (it never holds a plaintext); a foreign one is named by class only."""
    if isinstance(exc, UnkeySecretsError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"unexpected {type(exc).__name__}"


def error_record(command: str | None, exc: BaseException, exit_code: int) -> Record:
    """What a failed command reports: the message and, for a flow, what was done."""
    record: Record = {
        "command": command,
        "ok": False,
        "exit_code": exit_code,
        "error": type(exc).__name__,
        "message": error_message(exc),
    }
    if isinstance(exc, FlowError):
        record["key_id"] = exc.key_id
        record["original_key_id"] = exc.original_key_id
        record["actions"] = list(exc.actions)
    elif isinstance(exc, StoreError):
        record["store"] = exc.store
        record["location"] = exc.location
    elif isinstance(exc, InvalidInputError):
        record["field"] = exc.field
    return record


_HEADLINES = {
    "provision": "provisioned key {key_id} in API {api_id} ({mode} mode)",
    "rotate": "rotated key {original_key_id} to key {key_id} in API {api_id}",
    "capture": "captured key {key_id} of API {api_id}",
}


def usage_record(command: str | None, message: str, exit_code: int) -> Record:
    """What a command line that could not be parsed reports; ``message`` names no value."""
    return {
        "command": command,
        "ok": False,
        "exit_code": exit_code,
        "error": "UsageError",
        "message": message,
    }


#: command -> how its records read on a terminal; see :func:`register_human`.
_RENDERERS: dict[str, Callable[[Record], list[str]]] = {}


def register_human(command: str, render: Callable[[Record], list[str]]) -> None:
    """Make ``render`` print ``command``'s records without ``--json`` (a plugin command's too).

    A command without one prints each record as ``name value`` pairs.
    """
    _RENDERERS[command] = render


def _pairs(record: Record) -> list[str]:
    shown = [
        f"{name} {value}"
        for name, value in sorted(record.items())
        if name not in ("command", "ok") and value is not None and not isinstance(value, dict)
    ]
    return [" ".join(shown)]


def _human(record: Record) -> list[str]:
    render = _RENDERERS.get(str(record.get("command")))
    if render is not None:
        return render(record)
    if record["command"] not in _HEADLINES and record["command"] not in ("stores", "show"):
        return _pairs(record)
    if record["command"] == "stores":
        return [str(name) for name in record["stores"]]
    if record["command"] == "show":
        return _show_lines(record)
    headline = _HEADLINES[record["command"]]
    if record.get("outcome") == "already-done":
        headline = "key {original_key_id} was rotated to key {key_id} in API {api_id} before"
    lines = [headline.format(**record)]
    lines += _where("stored at", record.get("location"))
    alias = record.get("alias")
    moved = record.get("aliases") or ([record["current"]] if record.get("current") else [])
    for location in moved:
        lines += _where(f"alias {location.get('alias') or alias} ->", location)
    if not moved and alias is not None and record["command"] != "rotate":
        lines.append(f"alias {alias} now points at it")
    if record.get("replaced_key_id") is not None:
        lines.append(
            f"key {record['replaced_key_id']}, which the alias named before, stays valid "
            f"until {record['replaced_expires_at']}"
        )
    if record["command"] == "rotate":
        if record.get("outcome") == "already-done":
            lines.append("this rotation had already finished; nothing was changed")
        elif record.get("outcome") == "resumed":
            lines.append("finished a rotation an earlier run had left unfinished")
        lines.append(
            f"key {record['original_key_id']} stays valid until {record['original_expires_at']} "
            f"(grace period {record['grace_period_seconds']} s)"
        )
    if record.get("rerolled_from") is not None:
        lines.append(f"rerolled from key {record['rerolled_from']}")
    if record.get("request_id") is not None:
        lines.append(f"request_id {record['request_id']}")
    return lines


def _show_lines(record: Record) -> list[str]:
    named = f"alias {record['alias']} names " if record["alias"] is not None else ""
    version = f" version {record['version']}" if record["version"] else ""
    expires = "never" if record["expires"] is None else record["expires_at"]
    lines = [
        f"{named}key {record['key_id']} of API {record['api_id']}",
        f"stored at {record['store']} {record['location']}{version}",
        f"created {record['issued_at'] or 'unknown'}",
        f"expires {expires}",
    ]
    if record["rerolled_from"] is not None:
        lines.append(f"rerolled from key {record['rerolled_from']}")
    for field in ("name", "external_id", "prefix"):
        if record[field] is not None:
            lines.append(f"{field} {record[field]}")
    return lines


def _where(label: str, location: Record | None) -> list[str]:
    if location is None:
        return []
    state = "" if location["created"] else " (already there, nothing written)"
    version = f" version {location['version']}" if location["version"] else ""
    return [f"{label} {location['store']} {location['location']}{version}{state}"]


# -- the operations commands ------------------------------------------------------------------


def _list_lines(record: Record) -> list[str]:
    if record.get("summary"):
        more = f"; more after key {record['next_after']} (--after)" if record["truncated"] else ""
        within = record.get("expiring_within_seconds")
        what = "key(s)" if within is None else f"key(s) expiring within {format_duration(within)}"
        return [
            f"{record['count']} {what} of API {record['api_id']} listed from {record['store']}"
            + more
        ]
    alias = record["alias"] or "-"
    expires = record["expires_at"] or "never"
    if record.get("expiring"):
        expires += f" (in {record['expires_in']})"
    stored = "" if record["stored"] else "  (not stored)"
    return [
        f"{record['key_id']}  {record['status']:<8}  alias {alias}  created "
        f"{record['created'] or 'unknown'}  expires {expires}{stored}"
    ]


def _verify_lines(record: Record) -> list[str]:
    if record.get("summary"):
        return [
            f"{record['checked']} checked, {record['problems']} problem(s) "
            f"(API {record['api_id']}, {record['store']})"
        ]
    what = f"alias {record['alias']}" if record["alias"] is not None else "key"
    key = record["key_id"] or "?"
    if record["ok"]:
        return [f"ok       {what}: key {key} verifies ({record['code']})"]
    if record["key_id"] is None and record.get("version_gone"):
        # No key was read: the alias's current version is gone (the problem says which).
        return [
            f"PROBLEM  {what}: its current version was {record['version_gone']}: "
            f"{record['problem']}"
        ]
    return [f"PROBLEM  {what}: key {key} {record['problem']}"]


def _reconcile_lines(record: Record) -> list[str]:
    if record.get("summary"):
        return [
            f"{record['findings_left']} finding(s) left, {record['fixed']} fixed, "
            f"{record['young_skipped']} recent key(s) skipped, {record['aliases_checked']} "
            f"alias(es) checked (API {record['api_id']}, {record['store']})"
        ]
    finding = record["finding"]
    if finding == "orphan":
        subject = f"key {record['key_id']} (marker {record['marker']}, not in the store)"
    elif finding == "stale":
        subject = f"key {record['key_id']} is {record['status']} in Unkey, still stored at " + str(
            record["location"]
        )
    elif finding == "dead-alias" and record.get("key_id"):
        subject = f"alias {record['alias']} names key {record['key_id']}, {record['status']}"
    else:
        subject = f"alias {record['alias']}"
    return [f"{finding}: {subject}: {record['action']}"]


def _doctor_lines(record: Record) -> list[str]:
    if record.get("summary"):
        line = f"{record['failed']} check(s) failed, {record['unchecked']} unchecked"
        if record["not_granted"]:
            line += f", {record['not_granted']} not granted (needed by no command checked)"
        return [line]
    if "for_command" in record:
        line = f"{record['for_command']:<18} ready: {record['ready']}"
        if not record["checked"]:
            line += " (not checked for)"
        if record["missing"]:
            line += f"; missing {', '.join(record['missing'])}"
            if record["granted_by"]:
                line += f" (granted by {'; '.join(record['granted_by'])})"
        return [line]
    line = f"{record['result']:<9} {record['check']}: {record['detail']}"
    if record["granted_by"] and record["result"] in ("failed", "not granted"):
        line += f" (granted by {record['granted_by']})"
    return [line]


def _rotate_due_lines(record: Record) -> list[str]:
    if record.get("summary"):
        return [
            f"{record['considered']} alias(es): {record['rotated']} rotated, {record['due']} "
            f"due, {record['not_due']} not due, {record['failed']} failed, "
            f"{record['missing']} missing"
        ]
    age = "" if record["age_seconds"] is None else f", {record['age_seconds'] // 86400} day(s) old"
    key = f" key {record['key_id']}" if record["key_id"] else ""
    outcome = record["outcome"]
    if outcome == "rotated":
        return [f"rotated   alias {record['alias']}:{key} -> key {record['new_key_id']}{age}"]
    tail = f": {record['error']}" if record["error"] else ""
    # No key (the alias could not be read): "alias s0: <error>", not "alias s0:: <error>".
    facts = f":{key}{age}" if key or age else ""
    return [f"{outcome:<9} alias {record['alias']}{facts}{tail}"]


for _command, _render in (
    ("list", _list_lines),
    ("verify", _verify_lines),
    ("reconcile", _reconcile_lines),
    ("doctor", _doctor_lines),
    ("rotate-due", _rotate_due_lines),
):
    register_human(_command, _render)


#: The note on stderr when a result was produced but stdout could not take it.
LOST_RESULT = (
    "warning: the result could not be written to stdout (closed, or its reader went away); "
    "the command itself succeeded"
)


@dataclass
class Output:
    """Where results and errors go: ``stdout`` for results, ``stderr`` for the error line.

    Either stream may be None: Python starts with ``sys.stdout`` None when descriptor 1 is
    closed (``>&-``).
    """

    json: bool
    stdout: TextIO | None
    stderr: TextIO | None
    #: Whether the note about a result stdout could not take was given: once per run.
    lost_noted: bool = dataclasses.field(default=False, init=False)

    def result(self, record: Record) -> bool:
        """Print one result: one JSON object on one line, or human lines.

        Returns False when stdout could not take it; a note then goes to stderr (if it can,
        once per run however many results are lost), and the caller's exit code stays what
        the command earned.
        """
        lines = [json.dumps(record, sort_keys=True)] if self.json else _human(record)
        for line in lines:
            if not self._write(self.stdout, line):
                if not self.lost_noted:
                    self.lost_noted = True
                    self._write(self.stderr, LOST_RESULT)
                return False
        return True

    def failure(self, command: str | None, exc: BaseException, exit_code: int) -> None:
        """Print ``error: <message>`` on stderr; with ``--json`` also the error object on stdout."""
        self._write(self.stderr, "error: " + " ".join(error_message(exc).split()))
        if self.json:
            record = error_record(command, exc, exit_code)
            self._write(self.stdout, json.dumps(record, sort_keys=True))

    def usage(self, usage: str, message: str, command: str | None, exit_code: int) -> None:
        """Print the usage text and ``error: <message>``; with ``--json`` also an error object.

        ``message`` must already have every typed value taken out.
        """
        self._write(self.stderr, usage.rstrip("\n"))
        self._write(self.stderr, "error: " + " ".join(message.split()))
        if self.json:
            record = usage_record(command, message, exit_code)
            self._write(self.stdout, json.dumps(record, sort_keys=True))

    @staticmethod
    def _write(stream: TextIO | None, line: str) -> bool:
        if stream is None:
            return False
        try:
            stream.write(scrub(line) + "\n")
            stream.flush()
        except ValueError:  # closed
            return False
        except OSError:  # e.g. BrokenPipeError
            _discard_from_now_on(stream)
            return False
        return True


def settle(stream: TextIO | None) -> None:
    """Flush ``stream`` without raising; a broken one is pointed at the null device.

    What argparse printed for ``--help`` sits in the buffer until the interpreter's last
    flush, which would otherwise fail loudly (and exit 120) when the reader is gone.
    """
    if stream is None:
        return
    try:
        stream.flush()
    except ValueError:
        pass
    except OSError:
        _discard_from_now_on(stream)


def _discard_from_now_on(stream: TextIO) -> None:
    """Point a broken stream's descriptor at the null device.

    The unwritten text stays buffered, and the interpreter flushes it once more on exit; into
    the null device, that flush succeeds quietly. A stream without a descriptor is left alone.
    """
    try:
        descriptor = stream.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
    except (OSError, ValueError):
        return
    try:
        os.dup2(null, descriptor)
    except OSError:
        pass
    finally:
        os.close(null)
