"""The end state every schedule must reach, read from the emulator and the store directly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from unkey_secrets import ProvisionResult, RotationResult, UnkeySecretsError
from unkey_secrets.rotation.core import LIBRARY_TOKEN_PREFIX, MARKER_META_KEY
from unkey_secrets.rotation.record import parse_rotation_fields
from unkey_secrets.testing.emulator.model import sha256

from .world import GRACE, World


@dataclass
class Outcome:
    """What one call reported: its result or its error (None: killed, it reported nothing)."""

    actor: str
    result: Any = None
    error: BaseException | None = None
    killed: bool = False
    recovery: bool = False


@dataclass
class Expect:
    """What the scenario's end state must be: ``alias`` names a live key expiring ``expires``."""

    alias: str | None = "svc"
    expires: int | None = None
    #: Whether the alias must exist at the end (a capture whose key was deleted leaves none).
    alias_required: bool = True
    #: Key ids that may stay valid past the grace period without an alias (the caller's own).
    allowed_live: set[str] = field(default_factory=set)


def judge(world: World, expect: Expect, outcomes: list[Outcome]) -> list[str]:
    """Every broken promise of this end state, as one line each (empty: all kept)."""
    problems: list[str] = []
    emulator, store, api_id = world.emulator, world.store, world.api_id
    now = world.clock.ms()
    grace_end = now + int(GRACE.total_seconds() * 1000)
    keys = {k.key_id: k for k in emulator.keys(api_id)}
    entries = dict(store._entries)
    stored = {e.key_id for e in entries.values() if e.kind == "key"}
    named: dict[str, str] = {}
    for entry in entries.values():
        if entry.kind == "alias" and entry.alias is not None:
            named[entry.alias] = entry.key_id
    current: str | None = None
    if expect.alias is not None:
        current = named.get(expect.alias)
        if current is None:
            if expect.alias_required:
                problems.append(f"alias {expect.alias} names no key")
        else:
            key = keys.get(current)
            value = json.loads(
                next(e.value for e in entries.values() if e.kind == "alias" and e.key_id == current)
            )
            if key is None or key.deleted:
                problems.append(f"alias {expect.alias} names {current}, deleted in Unkey")
            elif not key.enabled:
                problems.append(f"alias {expect.alias} names {current}, disabled in Unkey")
            elif key.expires != expect.expires:
                problems.append(
                    f"alias {expect.alias} names {current}, which expires at {key.expires}, "
                    f"not its own {expect.expires}"
                )
            elif key.hash != sha256(value["key"]):
                problems.append(f"alias {expect.alias} holds a value that is not key {current}")
            if current not in stored:
                problems.append(f"alias {expect.alias} names {current}, not stored at its own path")
    for key in keys.values():
        if key.deleted or not key.enabled or key.key_id == current:
            continue
        if key.key_id in named.values() and key.expires is None:
            continue  # another alias's current key (set up by the scenario)
        if key.key_id in expect.allowed_live:
            continue
        if key.expires is None or key.expires > grace_end:
            where = "stored" if key.key_id in stored else "unstored"
            problems.append(
                f"key {key.key_id} ({where}, named by no alias) stays valid "
                + ("for good" if key.expires is None else f"until {key.expires}")
            )
    for key in keys.values():
        marker = (key.meta or {}).get(MARKER_META_KEY)
        if not key.deleted and isinstance(marker, str) and marker.startswith(LIBRARY_TOKEN_PREFIX):
            # Every rotation finished (re-runs included): none left its marks on a key.
            problems.append(f"key {key.key_id} still carries the marks of rotation {marker}")
    for key_id in sorted(stored | set(named.values())):
        key = keys.get(key_id)
        if key is not None and key.deleted and key_id in named.values():
            problems.append(f"key {key_id} is named by an alias and was deleted")
        elif key is not None and key.deleted:
            problems.append(f"key {key_id} is stored and was deleted")
    for path, entry in entries.items():
        if entry.kind != "rotation":
            continue
        record = parse_rotation_fields(json.loads(entry.value), store="memory", location=path)
        if record.state == "claimed":
            problems.append(f"rotation record of {record.from_key_id} left claimed")
    for outcome in outcomes:
        problems.extend(_reported(outcome, keys, stored, named, grace_end))
    return problems


def reporter(outcome: Outcome) -> tuple[str, str | None]:
    """Who reported ``outcome``, and the problem if an error outside our tree escaped."""
    who = outcome.actor + (" (re-run)" if outcome.recovery else "")
    error = outcome.error
    if type(error).__name__ == "NeverFinished":
        return who, str(error)
    if error is not None and not isinstance(error, UnkeySecretsError):
        return who, f"{who}: {type(error).__name__} escaped, outside the documented tree"
    return who, None


def stays_valid(key: Any, grace_end: int) -> bool:
    """Whether an emulated key exists, is not deleted and outlives ``grace_end`` (Unix ms)."""
    return key is not None and not key.deleted and (key.expires is None or key.expires > grace_end)


def _reported(
    outcome: Outcome,
    keys: dict[str, Any],
    stored: set[str],
    named: dict[str, str],
    grace_end: int,
) -> list[str]:
    who, escaped = reporter(outcome)
    if escaped is not None:
        return [escaped]
    result = outcome.result
    problems = []
    if isinstance(result, RotationResult):
        new, old = keys.get(result.key_id), keys.get(result.original_key_id)
        if result.key_id not in stored:
            problems.append(f"{who}: reported {result.outcome} to {result.key_id}, not stored")
        if new is None or new.deleted:
            problems.append(f"{who}: reported {result.outcome} to {result.key_id}, deleted")
        elif result.key_id not in named.values() and (
            new.expires is None or new.expires > grace_end
        ):
            problems.append(
                f"{who}: reported {result.outcome} to {result.key_id}, which no alias names "
                "and which stays valid"
            )
        if stays_valid(old, grace_end):
            problems.append(
                f"{who}: reported {result.outcome} from {result.original_key_id}, which stays "
                "valid past the grace period"
            )
    if isinstance(result, ProvisionResult):
        key = keys.get(result.key_id)
        if result.key_id not in stored:
            problems.append(f"{who}: reported provisioned {result.key_id}, not stored")
        if key is None or key.deleted:
            problems.append(f"{who}: reported provisioned {result.key_id}, deleted")
        replaced = result.replaced_key_id
        if replaced is not None:
            old = keys.get(replaced)
            if (
                old is not None
                and not old.deleted
                and (old.expires is None or old.expires > grace_end)
            ):
                problems.append(f"{who}: reported replacing {replaced}, which stays valid")
    return problems
