"""Expiry ahead of time in the CLI: list and verify --expiring-within, doctor's keys.expiring.

``main`` runs in-process against the Unkey emulator (in-process transport) and an
:class:`InMemoryStore`, through the app's two seams, as tests/unit/test_cli_ops.py does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from typing import Any

import pytest

from unkey_secrets import IssuedKey, StoreAccessError, UnkeyClient, provision, rotate
from unkey_secrets.cli import app as cli
from unkey_secrets.rotation.core import ROTATED_TO_META_KEY
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator
from unkey_secrets.testing.emulator.transport import EmulatorTransport

DAY = 86400
WEEK_MS = 7 * DAY * 1000


class World:
    """The emulator, one API, the store, and a client for the test's own calls."""

    def __init__(self) -> None:
        self.emulator = Emulator()
        self.store = InMemoryStore()
        self.api = self.emulator.create_api("expiry")

    def client(self) -> UnkeyClient:
        return UnkeyClient(
            self.emulator.root_key,
            base_url="http://127.0.0.1",
            transport=EmulatorTransport(self.emulator),
            sleep=lambda _: None,
        )

    def provision(self, alias: str | None, *, in_days: float | None) -> str:
        """A key stored (for ``alias``), ending ``in_days`` days from now (None: never)."""
        options: dict[str, Any] = {}
        if in_days is not None:
            options["expires"] = int((time.time() + in_days * DAY) * 1000)
        with self.client() as unkey:
            return provision(unkey, self.store, self.api, alias=alias, **options).key_id

    def rotate(self, alias: str) -> tuple[str, str]:
        """Rotate ``alias`` with the default 24 h grace period: (old key_id, new key_id)."""
        with self.client() as unkey:
            done = rotate(unkey, self.store, self.api, alias=alias)
        assert done.original_key_id is not None
        return done.original_key_id, done.key_id

    def point(self, alias: str, key_id: str) -> None:
        """Point ``alias`` at the stored key ``key_id``, as an operator's write would."""
        stored = self.store.get(api_id=self.api, key_id=key_id)
        issued = IssuedKey(
            key_id=stored.key_id, secret=stored.secret, api_id=self.api, expires=stored.expires
        )
        self.store.set_current(issued, alias=alias)

    def key(self, key_id: str) -> Any:
        with self.client() as unkey:
            return unkey.get_key(key_id)


@pytest.fixture(autouse=True)
def no_core_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "disable_core_dumps", lambda: True)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    state = World()
    monkeypatch.setattr(cli, "unkey_from_env", state.client)
    monkeypatch.setattr(cli, "store_from_env", lambda name: state.store)
    return state


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def split(out: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    *items, summary = [json.loads(line) for line in out.splitlines()]
    assert summary["summary"] is True
    return items, summary


def listing(
    capsys: pytest.CaptureFixture[str], world: World, *extra: str
) -> tuple[int, list[dict[str, Any]], dict[str, Any]]:
    code, out, _ = run(capsys, "--json", "--store", "memory", "list", "--api-id", world.api, *extra)
    items, summary = split(out)
    return code, items, summary


def test_list_expiring_within_lists_only_current_keys_that_end_in_the_window(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    soon = world.provision("soon", in_days=2)
    world.provision("later", in_days=30)
    world.provision("never", in_days=None)
    by_id = world.provision(None, in_days=1)  # read by key_id: nothing replaces it either
    # A rotation's old key ends with the grace period (24 h): expected, not reported.
    world.provision("rotated", in_days=None)
    old, new = world.rotate("rotated")
    assert world.key(old).expires is not None
    assert (world.key(old).meta or {})[ROTATED_TO_META_KEY] == new

    code, items, summary = listing(capsys, world)
    assert code == 0  # without the option, list lists and finds nothing
    assert summary["expiring_within_seconds"] is None
    assert old in {i["key_id"] for i in items}

    code, items, summary = listing(capsys, world, "--expiring-within", "7d")
    assert code == 3
    assert {i["key_id"]: i["alias"] for i in items} == {soon: "soon", by_id: None}
    assert (summary["count"], summary["ok"], summary["expiring_within_seconds"]) == (
        2,
        False,
        7 * DAY,
    )
    first = next(i for i in items if i["key_id"] == soon)
    expires = world.key(soon).expires
    assert first["expires"] == expires
    assert first["expires_at"] == dt.datetime.fromtimestamp(
        expires / 1000, tz=dt.timezone.utc
    ).isoformat(timespec="seconds")
    assert 2 * DAY - 60 <= first["expires_in_seconds"] <= 2 * DAY
    assert first["expires_in"] in ("2d", "1d23h")
    assert (first["expiring"], first["ok"], first["status"]) == (True, False, "valid")
    assert first["alias_names_it"] is True
    assert next(i for i in items if i["key_id"] == by_id)["alias_names_it"] is None

    code, items, _ = listing(capsys, world, "--expiring-within", "1d")
    assert code == 3
    assert [i["key_id"] for i in items] == [by_id]
    code, items, summary = listing(capsys, world, "--expiring-within", "3600")
    assert (code, items, summary["count"], summary["ok"]) == (0, [], 0, True)


def test_list_expiring_within_as_text(capsys: pytest.CaptureFixture[str], world: World) -> None:
    soon = world.provision("soon", in_days=3)
    code, out, err = run(
        capsys, "--store", "memory", "list", "--api-id", world.api, "--expiring-within", "7d"
    )
    assert code == 3, err
    line, summary = out.splitlines()
    assert line.startswith(f"{soon}  valid     alias soon  created ")
    assert line.endswith((" (in 3d)", " (in 2d23h)"))
    assert summary == f"1 key(s) expiring within 7d of API {world.api} listed from memory"


def test_an_alias_that_names_a_rotated_out_key_is_still_reported(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    """The alias decides first: a cut key it names (a rotation that died, an alias pointed
    back) is current, whatever its meta says."""
    world.provision("svc", in_days=None)
    old, new = world.rotate("svc")
    # Point the alias back at the old key, which the rotation cut to 24 h.
    world.point("svc", old)
    code, items, _ = listing(capsys, world, "--expiring-within", "7d")
    assert code == 3
    ((item),) = items
    assert (item["key_id"], item["alias"], item["alias_names_it"]) == (old, "svc", True)
    assert new != old


def test_a_key_its_alias_moved_off_without_a_meta_mark_is_not_reported(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    """As the rotation Lambda leaves it: the old key cut, no rotated_to mark, the alias moved."""
    old = world.provision("svc", in_days=1)
    with world.client() as unkey:
        issued = unkey.create_key(world.api)
    replacement = IssuedKey(
        key_id=issued.key_id,
        secret=issued.secret,
        api_id=world.api,
        alias="svc",
        rerolled_from=old,
    )
    world.store.put(replacement)
    world.store.set_current(replacement, alias="svc")
    assert ROTATED_TO_META_KEY not in (world.key(old).meta or {})
    code, items, _ = listing(capsys, world, "--expiring-within", "7d")
    assert (code, items) == (0, [])


def test_an_unreadable_alias_falls_back_to_the_keys_meta(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    soon = world.provision("soon", in_days=2)
    world.provision("rotated", in_days=None)
    old, _ = world.rotate("rotated")
    refused = StoreAccessError("403 on the alias", store="memory")
    world.store.fail_next("alias_state", refused, times=2)
    code, items, _ = listing(capsys, world, "--expiring-within", "7d")
    assert code == 3
    # soon: no mark, so reported, its alias undecided; old: marked rotated_to, so not.
    assert [(i["key_id"], i["alias_names_it"]) for i in items] == [(soon, None)]
    assert old not in {i["key_id"] for i in items}


def test_list_expiring_within_refuses_a_bad_duration(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    code, _, err = run(
        capsys, "--store", "memory", "list", "--api-id", world.api, "--expiring-within", "7x"
    )
    assert code == 2
    assert "--expiring-within" in err
    assert "30m, 24h, 90d" in err


# -- verify ------------------------------------------------------------------------------------


def test_verify_expiring_within_is_a_problem_for_the_current_key(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    soon = world.provision("soon", in_days=2)
    later = world.provision("later", in_days=30)
    argv = ["--json", "--store", "memory", "verify", "--api-id", world.api]
    argv += ["--alias", "soon", "--alias", "later"]

    code, out, err = run(capsys, *argv)
    assert code == 0, err  # without the option, an expiry is information only
    items, summary = split(out)
    assert [i["expiring"] for i in items] == [None, None]
    assert items[0]["expires"] == world.key(soon).expires
    assert items[0]["expires_at"] is not None
    assert summary["expiring"] is None

    code, out, err = run(capsys, *argv, "--expiring-within", "7d")
    assert code == 3, err
    items, summary = split(out)
    by_key = {i["key_id"]: i for i in items}
    assert (by_key[soon]["expiring"], by_key[soon]["ok"], by_key[soon]["valid"]) == (
        True,
        False,
        True,
    )
    problem = by_key[soon]["problem"]
    assert by_key[soon]["expires_at"] in problem
    assert str(by_key[soon]["expires"]) in problem
    assert f"provision --api-id {world.api} --alias soon --replace" in problem
    assert (by_key[later]["expiring"], by_key[later]["ok"]) == (False, True)
    assert (summary["problems"], summary["expiring"], summary["ok"]) == (1, 1, False)
    assert summary["expiring_within_seconds"] == 7 * DAY

    code, out, _ = run(capsys, *argv[1:], "--expiring-within", "7d")
    assert code == 3
    assert f"PROBLEM  alias soon: key {soon} expires at " in out


def test_verify_a_rotated_out_key_by_key_id_is_not_expiring(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    world.provision("svc", in_days=None)
    old, new = world.rotate("svc")
    by_id = world.provision(None, in_days=1)
    argv = ["--json", "--store", "memory", "verify", "--api-id", world.api, "--key-id", old]
    code, out, err = run(capsys, *argv, "--key-id", by_id, "--expiring-within", "7d")
    assert code == 3, err
    items, summary = split(out)
    by_key = {i["key_id"]: i for i in items}
    assert (by_key[old]["expiring"], by_key[old]["ok"]) == (False, True)
    assert by_key[old]["expires_in_seconds"] <= DAY  # it does end: the grace period
    assert by_key[by_id]["expiring"] is True
    assert "provision a new key before then" in by_key[by_id]["problem"]
    assert summary["expiring"] == 1
    assert new not in out


# -- doctor ------------------------------------------------------------------------------------


def doctor(
    capsys: pytest.CaptureFixture[str], world: World, *extra: str
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    code, out, _ = run(
        capsys, "--json", "--store", "memory", "doctor", "--api-id", world.api, *extra
    )
    items, summary = split(out)
    checks = {i["check"]: i for i in items if "check" in i}
    return code, checks["keys.expiring"], summary


def test_doctor_warns_of_current_keys_ending_within_seven_days(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    code, check, _ = doctor(capsys, world)
    assert (code, check["result"], check["ok"]) == (0, "ok", True)
    assert "ends within 7d" in check["detail"]

    soon = world.provision("soon", in_days=2)
    world.provision("later", in_days=8)
    world.provision("rotated", in_days=None)
    old, _ = world.rotate("rotated")
    code, check, summary = doctor(capsys, world)
    assert code == 0  # a warning fails nothing
    assert (check["result"], check["ok"]) == ("warning", True)
    assert summary["warnings"] >= 1
    detail = check["detail"]
    assert f"key {soon} (alias soon) at " in detail
    assert "1 current key(s)" in detail
    assert old not in detail
    assert f"list --api-id {world.api} --expiring-within 7d" in detail

    code, check, _ = doctor(capsys, world, "--expiring-within", "9d")
    assert "2 current key(s)" in check["detail"]
    code, check, _ = doctor(capsys, world, "--expiring-within", "1d")
    assert check["result"] == "ok"


def test_doctor_checks_the_key_an_alias_names_however_it_was_stored(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    by_id = world.provision(None, in_days=2)
    world.point("svc", by_id)
    _, check, _ = doctor(capsys, world, "--alias", "svc")
    assert check["result"] == "warning"
    assert f"key {by_id} (alias svc)" in check["detail"]


def test_doctor_without_a_store_leaves_the_expiry_unchecked(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    _, out, _ = run(capsys, "--json", "doctor", "--api-id", world.api)
    items, _ = split(out)
    (check,) = [i for i in items if i.get("check") == "keys.expiring"]
    assert check["result"] == "unchecked"


def test_an_expires_past_year_9999_is_a_malformed_answer_not_an_unexpected_error(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    # Unkey never answers a time past 2100; one no datetime holds (here ~ year 3.2 million) is
    # refused where the answer is read, as any malformed member is: the command names the
    # member, not 'unexpected ValueError'.
    far = world.provision("far", in_days=None)
    world.provision("other", in_days=None)
    stored = world.emulator._store.keys[far]
    world.emulator._store.keys[far] = dataclasses.replace(stored, expires=10**17)

    argv = ["--json", "--store", "memory", "list", "--api-id", world.api]
    code, out, _ = run(capsys, *argv)
    assert code == 1
    # Whatever was listed before the malformed answer was read (the order follows the random
    # ids) is printed; the last object is the error, and the far key is never listed.
    *listed, record = [json.loads(line) for line in out.splitlines()]
    assert all(item.get("key_id") != far for item in listed)
    assert record["error"] == "UnkeyResponseError"
    assert ".expires is missing or not a Unix time in milliseconds" in record["message"]
    assert str(10**17) not in record["message"]

    argv = ["--json", "--store", "memory", "verify", "--api-id", world.api]
    code, out, err = run(capsys, *argv, "--alias", "far", "--alias", "other")
    assert code == 1
    assert "unexpected" not in out + err
    assert "Unix time in milliseconds" in out
