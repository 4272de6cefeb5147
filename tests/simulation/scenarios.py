"""The write paths under simulation: who runs what, on which host, and what the end must be.

Every scenario starts from one key ``K`` (no expiry) stored and named by the alias ``svc``.
Its actors are the calls users really run at once; after the schedule, every call that was
killed or failed is run again as the README documents (the same call, from a new process
on the same host; after the lease when the claim is another host's), and the end state is
judged (:mod:`tests.simulation.judge`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from unkey_secrets import (
    InvalidInputError,
    RotationConflictError,
    UnkeyClient,
    provision,
    reconcile,
    rotate,
)
from unkey_secrets._reconcile import DEFAULT_MIN_AGE

from .judge import Expect
from .world import GRACE, World

Call = Callable[[World, dict[str, Any], UnkeyClient], Any]


@dataclass(frozen=True)
class Actor:
    name: str
    call: Call
    host: str = "h1"


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


def rerun(error: BaseException | None, killed: bool) -> bool:
    """Whether the README tells the caller to run the same call again after this."""
    if killed:
        return True
    # Another run at work finishes the job itself; a rotation given up because its alias
    # moved meanwhile needs nothing more; bad input is not retried.
    return error is not None and not isinstance(error, (InvalidInputError, RotationConflictError))


def reconcile_later(world: World, client: UnkeyClient) -> None:
    """``reconcile --apply`` once its minimum age has passed: what fast mode's kills leave."""
    world.clock.sleep(DEFAULT_MIN_AGE.total_seconds() + 1)
    reconcile(client, world.store, world.api_id, apply=True, now_ms=world.clock.ms())


def _new_alias(world: World, ctx: dict[str, Any]) -> Expect:
    return Expect(alias="new", allowed_live={ctx["K"]})


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("rotate-alias", (Actor("A", rotate_alias),)),
        Scenario("rotate-key", (Actor("A", rotate_key),)),
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
        Scenario("provision-safe", (Actor("P", provision_new("safe")),), expect=_new_alias),
        Scenario(
            "provision-fast",
            (Actor("P", provision_new("fast")),),
            expect=_new_alias,
            after=reconcile_later,
        ),
    )
}
