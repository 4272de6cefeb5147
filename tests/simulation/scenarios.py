"""The write paths under simulation: who runs what, on which host, and what the end must be.

Every scenario starts from one key ``K`` (no expiry) stored and named by the alias ``svc``.
Its actors are the calls users really run at once; after the schedule, every call that was
killed or failed is run again as the README documents (the same call, from a new process
on the same host; after the lease when the claim is another host's), and the end state is
judged (:mod:`tests.simulation.judge`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unkey_secrets import (
    CompensatedError,
    InvalidInputError,
    RotationConflictError,
    UnkeyClient,
    UnkeySecretsError,
    capture,
    provision,
    reconcile,
    rotate,
)
from unkey_secrets._reconcile import DEFAULT_MIN_AGE
from unkey_secrets.bulk import BulkLine, provision_many

from .judge import Expect
from .world import EPOCH, GRACE, World

Call = Callable[[World, dict[str, Any], UnkeyClient], Any]


@dataclass(frozen=True)
class Actor:
    name: str
    call: Call
    host: str = "h1"
    #: What the README says to run again, when it is not the same call.
    rerun_call: Call | None = None
    #: Whether a compensated failure is run again (not for capture: its key was deleted).
    rerun_compensated: bool = True


@dataclass(frozen=True)
class Scenario:
    name: str
    actors: tuple[Actor, ...]
    expect: Callable[[World, dict[str, Any]], Expect] = lambda world, ctx: Expect()
    setup: Callable[[World, UnkeyClient], dict[str, Any]] = field(
        default=lambda world, client: _provisioned(world, client)
    )
    #: What the README documents after the re-runs, if anything (fast mode: reconcile).
    after: Callable[[World, UnkeyClient], None] | None = None


def _provisioned(world: World, client: UnkeyClient) -> dict[str, Any]:
    first = provision(client, world.store, world.api_id, alias="svc", retry=world.retry)
    return {"K": first.key_id}


def rotate_alias(world: World, ctx: dict[str, Any], client: UnkeyClient) -> Any:
    return rotate(
        client,
        world.store,
        world.api_id,
        alias="svc",
        grace_period=GRACE,
        retry=world.retry,
        clock=world.clock,
    )


def rotate_key(world: World, ctx: dict[str, Any], client: UnkeyClient) -> Any:
    return rotate(
        client,
        world.store,
        world.api_id,
        ctx["K"],
        grace_period=GRACE,
        retry=world.retry,
        clock=world.clock,
    )


def provision_replace(world: World, ctx: dict[str, Any], client: UnkeyClient) -> Any:
    return provision(
        client,
        world.store,
        world.api_id,
        alias="svc",
        replace=True,
        grace_period=GRACE,
        retry=world.retry,
        clock=world.clock,
    )


def provision_new(mode: str) -> Call:
    def call(world: World, ctx: dict[str, Any], client: UnkeyClient) -> Any:
        return provision(
            client, world.store, world.api_id, alias="new", mode=mode, retry=world.retry
        )  # type: ignore[arg-type]

    return call


def _with_captured_key(world: World, client: UnkeyClient) -> dict[str, Any]:
    ctx = _provisioned(world, client)
    # A key the caller made with its own SDK call, to hand to capture (held in memory only).
    ctx["C"] = client.create_key(world.api_id, prefix="cap")
    return ctx


def capture_alias(world: World, ctx: dict[str, Any], client: UnkeyClient) -> Any:
    made = ctx["C"]
    return capture(
        world.store,
        api_id=world.api_id,
        key_id=made.key_id,
        key=made.secret,
        alias="cap",
        unkey=client,
        retry=world.retry,
    )


def _captured(world: World, ctx: dict[str, Any]) -> Expect:
    # A capture that could not store its key deletes it: then no alias names it.
    return Expect(alias="cap", alias_required=False)


def bulk_line(world: World, ctx: dict[str, Any], client: UnkeyClient) -> Any:
    return _bulk(world, client, exclusive=False)


def _bulk(world: World, client: UnkeyClient, *, exclusive: bool) -> Any:
    line = BulkLine(number=1, api_id=world.api_id, alias="line")
    results = list(
        provision_many(
            client,
            world.store,
            [line],
            concurrency=1,
            retry=world.retry,
            store_writes_per_second=None,
            sleep=world.clock.sleep,
            clock=world.clock,
            wall_clock=world.clock,
            exclusive=exclusive,
        )
    )
    (result,) = results
    if result.status == "failed":
        # The command exits 4 on a failed line; its documented recovery is running the file
        # again (holding the file's lock: exclusive).
        raise BulkLineFailed(result.message or "")
    return result


class BulkLineFailed(UnkeySecretsError):
    """A bulk line ended failed (the command's exit 4): the file is run again."""


def bulk_rerun(world: World, ctx: dict[str, Any], client: UnkeyClient) -> Any:
    return _bulk(world, client, exclusive=True)


def rerun(error: BaseException | None, killed: bool, *, compensated: bool = True) -> bool:
    """Whether the README tells the caller to run the same call again after this."""
    if killed:
        return True
    # Another run at work finishes the job itself; a rotation given up because its alias
    # moved meanwhile needs nothing more; bad input is not retried.
    if isinstance(error, CompensatedError) and not compensated:
        return False  # a capture whose key was deleted has nothing left to capture
    return error is not None and not isinstance(error, (InvalidInputError, RotationConflictError))


def reconcile_later(world: World, client: UnkeyClient) -> None:
    """``reconcile --apply`` once its minimum age has passed: what fast mode's kills leave."""
    world.clock.sleep(DEFAULT_MIN_AGE.total_seconds() + 1)
    reconcile(client, world.store, world.api_id, apply=True, now_ms=world.clock.ms())


#: The original's own expiry in the expiring scenario: a week after the simulated epoch.
EXPIRES = int(EPOCH * 1000) + int(dt.timedelta(days=7).total_seconds() * 1000)
#: A rotation of a key that expires on its own: that expiry must survive it.
EXPIRING = "rotate-alias (expiring key)"


def _expiring(world: World, client: UnkeyClient) -> dict[str, Any]:
    first = provision(
        client, world.store, world.api_id, alias="svc", retry=world.retry, expires=EXPIRES
    )
    return {"K": first.key_id}


def _new_alias(world: World, ctx: dict[str, Any]) -> Expect:
    return Expect(alias="new", allowed_live={ctx["K"]})


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("rotate-alias", (Actor("A", rotate_alias),)),
        Scenario("rotate-key", (Actor("A", rotate_key),)),
        Scenario(
            EXPIRING,
            (Actor("A", rotate_alias),),
            expect=lambda world, ctx: Expect(expires=EXPIRES),
            setup=_expiring,
        ),
        Scenario("rotate-alias x2", (Actor("A", rotate_alias), Actor("B", rotate_alias))),
        Scenario(
            "rotate-alias x2 hosts",
            (Actor("A", rotate_alias), Actor("B", rotate_alias, host="h2")),
        ),
        Scenario("rotate-alias x rotate-key", (Actor("A", rotate_alias), Actor("B", rotate_key))),
        Scenario(
            "rotate-alias x provision-replace",
            (Actor("A", rotate_alias), Actor("P", provision_replace)),
        ),
        Scenario("provision-replace", (Actor("P", provision_replace),)),
        Scenario(
            "capture-alias",
            (Actor("C", capture_alias, rerun_compensated=False),),
            expect=_captured,
            setup=_with_captured_key,
        ),
        Scenario(
            "bulk-line",
            (Actor("L", bulk_line, rerun_call=bulk_rerun),),
            expect=lambda world, ctx: Expect(alias="line"),
        ),
        Scenario("provision-safe", (Actor("P", provision_new("safe")),), expect=_new_alias),
        Scenario(
            "provision-fast",
            (Actor("P", provision_new("fast")),),
            expect=_new_alias,
            after=reconcile_later,
        ),
    )
}
