"""The library's reconcile: findings decided and acted on without the CLI.

Runs against the Unkey emulator (in-process transport, its clock under the test's control) and
an :class:`InMemoryStore`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time

import pytest

from unkey_secrets import (
    ConfigurationError,
    FlowError,
    IssuedKey,
    ReconcileFinding,
    ReconcileReport,
    RetryPolicy,
    StoreUnavailableError,
    UnkeyClient,
    UnkeyServerError,
    provision,
    reconcile,
    rotate,
)
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator
from unkey_secrets.testing.emulator.transport import EmulatorTransport

DAY = 86400
MARKER = "unkey_secrets_op"
ROTATED_TO = "unkey_secrets_rotated_to"
HOUR_MS = 3600 * 1000


class World:
    """The emulator, one API, a store, and the plaintexts of every key made."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.emulator = Emulator(clock=lambda: time.time() + self.offset)
        self.api = self.emulator.create_api("rec")
        self.store = InMemoryStore()
        self.plaintexts: list[str] = []

    def client(self) -> UnkeyClient:
        return UnkeyClient(
            self.emulator.root_key,
            base_url="http://127.0.0.1",
            transport=EmulatorTransport(self.emulator),
            sleep=lambda _: None,
        )

    def provision(self, alias: str) -> str:
        self.offset = -DAY
        try:
            with self.client() as unkey:
                result = provision(unkey, self.store, self.api, alias=alias, mode="fast")
        finally:
            self.offset = 0
        self.plaintexts.append(
            self.store.get(api_id=self.api, key_id=result.key_id).secret.reveal()
        )
        return result.key_id

    def orphan(self, marker: str = "op_memory_" + "0" * 24, *, days_ago: float = 1) -> str:
        self.offset = -days_ago * DAY
        try:
            with self.client() as unkey:
                issued = unkey.create_key(self.api, meta={MARKER: marker})
        finally:
            self.offset = 0
        self.plaintexts.append(issued.secret.reveal())
        return issued.key_id

    def deleted(self) -> dict[str, bool]:
        return {k.key_id: k.deleted for k in self.emulator.keys(self.api)}

    def run(self, **options: object) -> ReconcileReport:
        with self.client() as unkey:
            return reconcile(unkey, self.store, self.api, **options)  # type: ignore[arg-type]


@pytest.fixture
def world() -> World:
    return World()


def kinds(report: ReconcileReport) -> set[tuple[str, str | None, str | None]]:
    return {(f.kind, f.key_id, f.alias) for f in report.findings}


def test_without_apply_it_reports_and_changes_nothing(world: World) -> None:
    world.provision("svc")
    gone = world.provision("old")
    with world.client() as unkey:
        unkey.delete_key(gone)
    orphan = world.orphan()
    world.orphan("rot_memory_" + "1" * 24, days_ago=0)  # too young
    world.orphan("9b2f1c3e-4a5d-4e6f-8a7b-0c1d2e3f4a5b")  # the Lambda's marker: not ours
    report = world.run(aliases=["old", "none"])
    assert kinds(report) == {
        ("orphan", orphan, None),
        ("stale", gone, None),
        ("dead-alias", gone, "old"),
        ("dead-alias", None, "none"),
    }
    assert all(f.action.startswith("reported") for f in report.findings)
    assert (report.findings_left, report.fixed, report.young_skipped) == (4, 0, 1)
    assert (report.api_id, report.store, report.applied) == (world.api, "memory", False)
    assert report.aliases_checked == 3  # old, none, and svc (a stored key's alias)
    assert not any(world.deleted()[k] for k in world.deleted() if k != gone)
    (stale,) = [f for f in report.findings if f.kind == "stale"]
    assert stale.status == "deleted"
    assert stale.location == world.store.key_location(api_id=world.api, key_id=gone)


def test_apply_deletes_only_this_stores_orphans(world: World) -> None:
    world.provision("svc")
    ours = world.orphan()
    vault = world.orphan("op_vault_" + "2" * 24)
    unlabelled = world.orphan("op_" + "4" * 24)
    report = world.run(apply=True)
    by_key = {f.key_id: f for f in report.findings}
    assert (by_key[ours].action, by_key[ours].resolved, by_key[ours].ok) == (
        "deleted in Unkey",
        True,
        True,
    )
    assert by_key[vault].belongs_to == "vault"
    assert (by_key[vault].resolved, by_key[vault].ok) == (False, True)
    assert by_key[unlabelled].action.endswith("--include-unlabelled deletes it")
    assert not by_key[unlabelled].ok
    assert (report.fixed, report.findings_left, report.other_store_skipped) == (1, 1, 1)
    state = world.deleted()
    assert (state[ours], state[vault], state[unlabelled]) == (True, False, False)

    report = world.run(apply=True, include_unlabelled=True)
    assert [(f.key_id, f.action) for f in report.findings if f.resolved] == [
        (unlabelled, "deleted in Unkey")
    ]
    assert world.deleted()[unlabelled] is True
    assert world.deleted()[vault] is False


def test_min_age_and_now_decide_what_is_young(world: World) -> None:
    orphan = world.orphan(days_ago=1)
    assert world.run(min_age=dt.timedelta(days=2)).young_skipped == 1
    assert kinds(world.run(min_age=dt.timedelta(0))) == {("orphan", orphan, None)}
    a_day_ago = int((time.time() - DAY) * 1000)
    assert world.run(now_ms=a_day_ago).young_skipped == 1


def test_apply_is_refused_before_any_delete_against_a_store_holding_none(world: World) -> None:
    world.provision("svc")
    world.orphan()
    world.store = InMemoryStore()  # the wrong store: same kind, none of the API's keys
    seen: list[ReconcileFinding] = []
    with pytest.raises(ConfigurationError, match="most likely the wrong store"):
        world.run(apply=True, on_finding=seen.append)
    assert seen == []
    assert not any(world.deleted().values())


def test_on_finding_sees_each_finding_as_decided(world: World) -> None:
    gone = world.provision("old")
    with world.client() as unkey:
        unkey.delete_key(gone)
    world.orphan()
    seen: list[ReconcileFinding] = []
    report = world.run(aliases=["old"], on_finding=seen.append)
    assert tuple(seen) == report.findings
    # Listed keys first (the orphan), then each alias: its stale key, then the alias itself.
    assert [f.kind for f in seen] == ["orphan", "stale", "dead-alias"]


def test_a_failed_delete_is_reported_not_raised(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.provision("svc")
    orphan = world.orphan()

    def refuse(self: UnkeyClient, key_id: str) -> None:
        raise UnkeyServerError(
            operation="keys.deleteKey",
            status=503,
            error_type="https://unkey.com/docs/errors/unavailable",
            title="Service Unavailable",
            detail="try again",
            request_id="req_1",
        )

    monkeypatch.setattr(UnkeyClient, "delete_key", refuse)
    report = world.run(apply=True)
    (finding,) = report.findings
    assert finding.key_id == orphan
    assert finding.action.startswith("delete failed (UnkeyServerError")
    assert not finding.ok
    assert report.findings_left == 1


def test_the_report_is_frozen_and_holds_no_plaintext(world: World) -> None:
    world.provision("svc")
    gone = world.provision("old")
    with world.client() as unkey:
        unkey.delete_key(gone)
    world.orphan()
    world.orphan("op_vault_" + "2" * 24)
    report = world.run(aliases=["old"], apply=True)
    assert report.findings
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.applied = False  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.findings[0].action = "x"  # type: ignore[misc]
    text = repr(report) + repr(dataclasses.asdict(report))
    assert world.plaintexts
    for plaintext in world.plaintexts:
        assert plaintext not in text


# -- unnamed: stored for an alias that does not name it, still valid -------------------------


def killed_before_the_alias_move(world: World, alias: str = "svc") -> str:
    """A real fast-mode provision whose alias move fails: stored, valid, marked, unnamed."""
    world.store.fail_next("set_current", StoreUnavailableError("down", store="memory"), times=10)
    try:
        with world.client() as unkey, pytest.raises(FlowError) as caught:
            provision(
                unkey,
                world.store,
                world.api,
                alias=alias,
                mode="fast",
                retry=RetryPolicy(sleep=lambda _: None),
            )
    finally:
        world.store.clear_failures()
    key_id = caught.value.key_id
    assert key_id is not None
    return key_id


def stored_for(
    world: World, alias: str | None, meta: dict[str, object], rerolled_from: str | None = None
) -> IssuedKey:
    """A key made in Unkey with ``meta`` and stored for ``alias`` (the alias not moved)."""
    with world.client() as unkey:
        issued = unkey.create_key(world.api, meta=meta)
    issued = dataclasses.replace(issued, alias=alias, rerolled_from=rerolled_from)
    world.store.put(issued)
    return issued


def enabled(world: World, key_id: str) -> bool:
    with world.client() as unkey:
        return unkey.get_key(key_id).enabled


def unnamed(report: ReconcileReport) -> list[ReconcileFinding]:
    return [f for f in report.findings if f.kind == "unnamed"]


def test_a_provision_killed_before_its_alias_move_is_found_once_old_enough(
    world: World,
) -> None:
    key_id = killed_before_the_alias_move(world)
    with world.client() as unkey:
        info = unkey.get_key(key_id)
    assert info.enabled
    assert str((info.meta or {})[MARKER]).startswith("op_memory_")
    assert world.store.alias_state(api_id=world.api, alias="svc") is None
    now = int(time.time() * 1000)

    young = world.run(now_ms=now)
    assert unnamed(young) == []
    assert young.young_skipped == 1
    assert young.findings_left == 0

    report = world.run(now_ms=now + 2 * HOUR_MS)
    (finding,) = report.findings
    assert (finding.kind, finding.key_id, finding.alias, finding.status) == (
        "unnamed",
        key_id,
        "svc",
        "valid",
    )
    assert finding.location == world.store.key_location(api_id=world.api, key_id=key_id)
    assert finding.age_seconds is not None
    assert 2 * 3600 - 60 <= finding.age_seconds <= 2 * 3600
    assert finding.action.startswith("reported")
    assert (finding.resolved, finding.ok, report.findings_left, report.young_skipped) == (
        False,
        False,
        1,
        0,
    )
    assert enabled(world, key_id)  # reporting changes nothing
    assert kinds(world.run(min_age=dt.timedelta(0))) == {("unnamed", key_id, "svc")}


def test_apply_disables_an_unnamed_key_and_keeps_it_stored(world: World) -> None:
    key_id = killed_before_the_alias_move(world)
    later = int(time.time() * 1000) + 2 * HOUR_MS
    report = world.run(apply=True, now_ms=later)
    (finding,) = report.findings
    assert (finding.kind, finding.action, finding.resolved, finding.ok) == (
        "unnamed",
        "disabled in Unkey",
        True,
        True,
    )
    assert (report.fixed, report.findings_left) == (1, 0)
    assert not enabled(world, key_id)
    assert world.deleted()[key_id] is False
    assert world.store.key_entry(api_id=world.api, key_id=key_id) is not None
    # Disabled, it is now a stale entry (the store has no delete), no longer unnamed.
    assert kinds(world.run(now_ms=later)) == {("stale", key_id, None)}


def test_keys_that_are_not_unnamed_are_not_reported(world: World) -> None:
    # A fast-mode key the alias names (it keeps its marker).
    named = world.provision("svc")
    with world.client() as unkey:
        assert str((unkey.get_key(named).meta or {})[MARKER]).startswith("op_memory_")
    # Stored without an alias.
    stored_for(world, None, {MARKER: "op_memory_" + "a" * 24})
    # Stored for an alias that names it not, but another store's marker names it.
    stored_for(world, "other", {MARKER: "op_vault_" + "b" * 24})
    # Replaced: a stored key rerolled from it names it (the alias names its replacement).
    replaced = stored_for(world, "rep", {MARKER: "op_memory_" + "c" * 24})
    replacement = stored_for(world, "rep", {}, rerolled_from=replaced.key_id)
    world.store.set_current(replacement, alias="rep", expected=None)
    # Rotated out: its meta names the key that replaced it.
    stored_for(world, "svc", {MARKER: "op_memory_" + "d" * 24, ROTATED_TO: named})
    # A real rotation of a fast-mode key: the original stays valid for its grace period.
    rotated = world.provision("rot")
    with world.client() as unkey:
        rotate(unkey, world.store, world.api, alias="rot")
    assert world.run(now_ms=int(time.time() * 1000) + 2 * HOUR_MS).findings == ()
    report = world.run(apply=True, now_ms=int(time.time() * 1000) + 2 * HOUR_MS)
    assert (report.findings, report.fixed) == ((), 0)
    assert enabled(world, named)
    assert enabled(world, rotated)


def test_a_key_another_alias_names_is_not_unnamed(world: World) -> None:
    key_id = killed_before_the_alias_move(world)
    stored = world.store.get(api_id=world.api, key_id=key_id)
    issued = IssuedKey(key_id=key_id, secret=stored.secret, api_id=world.api, alias="svc")
    world.store.set_current(issued, alias="extra", expected=None)
    later = int(time.time() * 1000) + 2 * HOUR_MS
    assert unnamed(world.run(aliases=["extra"], now_ms=later)) == []
    assert [f.key_id for f in unnamed(world.run(now_ms=later))] == [key_id]  # extra unread


def test_an_alias_pointed_at_it_meanwhile_gets_it_enabled_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_id = killed_before_the_alias_move(world)
    stored = world.store.get(api_id=world.api, key_id=key_id)
    issued = IssuedKey(key_id=key_id, secret=stored.secret, api_id=world.api, alias="svc")
    real_update = UnkeyClient.update_key

    def update_then_adopt(self: UnkeyClient, key: str, **changes: object) -> None:
        real_update(self, key, **changes)  # type: ignore[arg-type]
        if changes == {"enabled": False}:
            # Another run (bulk adopting the leftover) points the alias at it meanwhile.
            world.store.set_current(issued, alias="svc", expected=None)

    monkeypatch.setattr(UnkeyClient, "update_key", update_then_adopt)
    report = world.run(apply=True, now_ms=int(time.time() * 1000) + 2 * HOUR_MS)
    (finding,) = report.findings
    assert finding.kind == "unnamed"
    assert finding.action.startswith("left enabled: alias svc was pointed at it meanwhile")
    assert finding.ok
    assert enabled(world, key_id)


def test_a_failed_disable_is_reported_not_raised(world: World) -> None:
    key_id = killed_before_the_alias_move(world)
    world.emulator.faults.fail_next("keys.updateKey", times=10, status=500)
    report = world.run(apply=True, now_ms=int(time.time() * 1000) + 2 * HOUR_MS)
    (finding,) = report.findings
    assert (finding.kind, finding.key_id) == ("unnamed", key_id)
    assert finding.action.startswith("disable failed (")
    assert not finding.ok
    assert report.findings_left == 1


def test_a_key_whose_alias_cannot_be_read_is_not_decided(world: World) -> None:
    key_id = killed_before_the_alias_move(world)
    world.store.plant_foreign(world.store.alias_location(api_id=world.api, alias="svc"))
    report = world.run(apply=True, now_ms=int(time.time() * 1000) + 2 * HOUR_MS)
    assert kinds(report) == {("unowned-alias", None, "svc")}
    assert enabled(world, key_id)
