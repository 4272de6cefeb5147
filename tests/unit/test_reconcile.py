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
    ReconcileFinding,
    ReconcileReport,
    UnkeyClient,
    UnkeyServerError,
    provision,
    reconcile,
)
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator
from unkey_secrets.testing.emulator.transport import EmulatorTransport

DAY = 86400
MARKER = "unkey_secrets_op"


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
