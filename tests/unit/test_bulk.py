"""provision_many and the bulk input, in-process: the emulator over a transport, a memory store."""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from unkey_secrets import IssuedKey, NotOwnedError, StoreUnavailableError, UnkeyClient
from unkey_secrets.bulk import (
    ADOPT_AFTER,
    MAX_LINE_BYTES,
    MAX_META_BYTES,
    BulkInputError,
    BulkLine,
    LineInProgressError,
    LineResult,
    TokenBucket,
    check_file,
    parse_line,
    provision_many,
    read_lines,
)
from unkey_secrets.flows import RetryPolicy
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport

NO_WAIT = RetryPolicy(sleep=lambda _: None)
MARKER = "unkey_secrets_op"


def later() -> float:
    """A wall clock past the adoption threshold: what an earlier run left counts as dead."""
    return time.time() + ADOPT_AFTER + 60


class FakeTime:
    """A clock that only moves when something sleeps; thread-safe."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds


@pytest.fixture
def emulator() -> Emulator:
    return Emulator()


@pytest.fixture
def api_id(emulator: Emulator) -> str:
    return emulator.create_api("bulk")


@pytest.fixture
def unkey(emulator: Emulator) -> Iterator[UnkeyClient]:
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=EmulatorTransport(emulator),
        sleep=lambda _: None,
    ) as client:
        yield client


def run(
    unkey: UnkeyClient, store: InMemoryStore, lines: list[BulkLine], **options: object
) -> list[LineResult]:
    fake = FakeTime()
    options.setdefault("retry", NO_WAIT)
    options.setdefault("concurrency", 4)
    results = list(
        provision_many(
            unkey,
            store,
            lines,
            sleep=fake.sleep,
            clock=fake.clock,
            **options,  # type: ignore[arg-type]
        )
    )
    return sorted(results, key=lambda r: r.line)


def alias_lines(api_id: str, count: int, **fields: object) -> list[BulkLine]:
    return [BulkLine(number=i + 1, api_id=api_id, alias=f"svc{i}", **fields) for i in range(count)]  # type: ignore[arg-type]


def live_keys(emulator: Emulator, api_id: str) -> list[str]:
    return [k.key_id for k in emulator.keys(api_id) if not k.deleted]


# -- input ------------------------------------------------------------------------------------


def test_parse_line_reads_every_field() -> None:
    line = parse_line(
        3,
        {
            "api": "api_123",
            "alias": "billing",
            "externalId": "tenant_1",
            "name": "Billing",
            "prefix": "live",
            "meta": '{"team": "pay"}',
            "expires": "4102444799000",
            "permissions": "a.read b.write",
            "roles": "",
        },
    )
    assert line == BulkLine(
        number=3,
        api_id="api_123",
        alias="billing",
        external_id="tenant_1",
        name="Billing",
        prefix="live",
        meta={"team": "pay"},
        expires=4102444799000,
        permissions=("a.read", "b.write"),
    )
    assert line.identity == ("api_123", "alias", "billing")
    assert line.create_options()["permissions"] == ["a.read", "b.write"]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"alias": "x"}, "api"),
        ({"api": "api_123"}, "alias"),
        ({"api": "api_123", "alias": "x", "colour": "red"}, "column"),
        ({"api": "api_123", "alias": "no/slash"}, "alias"),
        ({"api": "api_123", "alias": "x", "meta": "{not json"}, "meta"),
        ({"api": "api_123", "alias": "x", "meta": "[1]"}, "meta"),
        ({"api": "api_123", "alias": "x", "meta": {"unkey_secrets_op": "1"}}, "meta"),
        ({"api": "api_123", "alias": "x", "expires": "soon"}, "expires"),
        ({"api": "api_123", "alias": "x", "prefix": "has space"}, "prefix"),
        ({"api": "api_123", "externalId": "bad id"}, "external_id"),
    ],
)
def test_parse_line_refuses(record: dict[str, object], field: str) -> None:
    with pytest.raises(BulkInputError) as caught:
        parse_line(7, record)
    assert caught.value.line == 7
    assert caught.value.field == f"line 7: {field}"


def test_errors_never_quote_the_value() -> None:
    with pytest.raises(BulkInputError) as caught:
        parse_line(1, {"api": "api_123", "alias": "x", "meta": "{secret_value"})
    assert "secret_value" not in str(caught.value)


def test_read_lines_streams_csv_and_json_lines(tmp_path: Path) -> None:
    csv_file = tmp_path / "keys.csv"
    csv_file.write_text('api,alias,meta\napi_123,a,"{""x"": 1}"\n\napi_123,b,\n')
    jsonl = tmp_path / "keys.txt"
    jsonl.write_text('{"api": "api_123", "externalId": "t1"}\n\n{"api": "api_123", "alias": "c"}\n')
    assert [(x.number, x.alias, x.meta) for x in read_lines(csv_file)] == [
        (2, "a", {"x": 1}),
        (4, "b", None),
    ]
    assert [(x.number, x.external_id) for x in read_lines(jsonl)] == [(1, "t1"), (3, None)]


def test_check_file_counts_and_collects_every_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text(
        '{"api": "api_123", "alias": "a"}\nnot json\n[1]\n{"api": "api_123"}\n'
        '{"api": "api_123", "alias": "b"}\n'
    )
    count, errors = check_file(path)
    assert count == 2
    assert [e.line for e in errors] == [2, 3, 4]
    with pytest.raises(BulkInputError):
        list(read_lines(path))


def test_check_file_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="cannot be read"):
        check_file(tmp_path / "nope.csv")


# -- the token bucket ---------------------------------------------------------------------------


def test_token_bucket_holds_the_rate_across_threads() -> None:
    fake = FakeTime()
    bucket = TokenBucket(50, burst=5, clock=fake.clock, sleep=lambda _: None)
    waits = [bucket.acquire() for _ in range(105)]
    # 5 saved up, then each token is due 1/50 s after the one before.
    assert waits[:5] == [0.0] * 5
    assert waits[104] == pytest.approx(100 / 50)


def test_token_bucket_refills_with_time() -> None:
    fake = FakeTime()
    bucket = TokenBucket(10, burst=1, clock=fake.clock, sleep=fake.sleep)
    for _ in range(20):
        bucket.acquire()
    assert fake.now - 1000.0 == pytest.approx(1.9)


# -- provision_many -----------------------------------------------------------------------------


def test_every_line_is_provisioned_once_and_a_rerun_skips_them(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = alias_lines(api_id, 30) + [
        BulkLine(number=100 + i, api_id=api_id, external_id=f"tenant{i}") for i in range(10)
    ]
    first = run(unkey, store, lines, concurrency=8)
    assert Counter(r.status for r in first) == {"created": 40}
    assert all(r.key_id and r.location for r in first)
    again = run(unkey, store, lines, concurrency=8)
    assert Counter(r.status for r in again) == {"exists": 40}
    assert len(live_keys(emulator, api_id)) == 40
    for key in emulator.keys(api_id):
        assert key.enabled
        assert "unkey_secrets_op" not in (key.meta or {})


def test_lines_naming_the_same_alias_make_one_key(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = [BulkLine(number=i, api_id=api_id, alias="same") for i in range(1, 9)]
    results = run(unkey, store, lines, concurrency=8)
    assert Counter(r.status for r in results) == {"created": 1, "exists": 7}
    assert len(live_keys(emulator, api_id)) == 1


def test_a_429_holds_every_worker_for_retry_after_and_fails_nothing(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    emulator.faults.fail_next("keys.createKey", times=6, status=429)  # Retry-After: 1
    fake = FakeTime()
    results = list(
        provision_many(
            unkey,
            store,
            alias_lines(api_id, 12),
            concurrency=4,
            retry=NO_WAIT,
            sleep=fake.sleep,
            clock=fake.clock,
        )
    )
    assert Counter(r.status for r in results) == {"created": 12}
    assert sum(r.attempts for r in results) == 12  # a 429 is not an attempt
    assert fake.slept
    assert max(fake.slept) <= 1.0
    assert len(live_keys(emulator, api_id)) == 12


def test_a_store_outage_mid_file_is_ridden_out(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    # Longer than the flow's own 4 attempts: the flow compensates, bulk runs the line again.
    store.fail_next("put", StoreUnavailableError("down", store="memory"), times=6)
    results = run(unkey, store, alias_lines(api_id, 10), concurrency=1)
    assert Counter(r.status for r in results) == {"created": 10}
    assert max(r.attempts for r in results) == 2
    assert len(live_keys(emulator, api_id)) == 10


def test_a_failed_line_does_not_stop_the_others(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    store.fail_next("put", NotOwnedError("not ours", store="memory"))
    results = run(unkey, store, alias_lines(api_id, 5), concurrency=1)
    assert Counter(r.status for r in results) == {"created": 4, "failed": 1}
    failed = next(r for r in results if r.status == "failed")
    assert failed.error == "CompensatedError"
    assert failed.message
    assert "deleted key" in failed.message
    assert failed.attempts == 1  # not worth retrying
    assert len(live_keys(emulator, api_id)) == 4
    again = run(unkey, store, alias_lines(api_id, 5), concurrency=1)
    assert Counter(r.status for r in again) == {"exists": 4, "created": 1}
    assert len(live_keys(emulator, api_id)) == 5


def test_a_key_left_disabled_is_enabled_by_the_rerun(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = [BulkLine(number=1, api_id=api_id, external_id="tenant_a", meta={"team": "x"})]
    emulator.faults.fail_next("keys.updateKey", times=10, status=500)
    first = run(unkey, store, lines)
    assert first[0].status == "failed"
    assert first[0].key_id is not None
    assert not emulator.key(first[0].key_id).enabled
    emulator.faults.clear()
    # Too young: another run may still be working on it. Left as it is.
    busy = run(unkey, store, lines)
    assert busy[0].status == "failed"
    assert busy[0].error == "LineInProgressError"
    assert not emulator.key(first[0].key_id).enabled
    again = run(unkey, store, lines, wall_clock=later)
    assert again[0].status == "completed"
    assert again[0].key_id == first[0].key_id
    assert again[0].actions == (f"enabled key {first[0].key_id}",)
    key = emulator.key(first[0].key_id)
    assert key.enabled
    assert key.meta == {"team": "x"}
    assert live_keys(emulator, api_id) == [first[0].key_id]
    assert run(unkey, store, lines)[0].status == "exists"


def test_an_alias_left_unmoved_is_moved_by_the_rerun(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = [BulkLine(number=1, api_id=api_id, alias="billing", external_id="tenant_b")]
    store.fail_next("set_current", StoreUnavailableError("down", store="memory"), times=4)
    first = run(unkey, store, lines)
    assert first[0].status == "failed"
    assert first[0].key_id is not None
    assert not store.alias_exists(api_id=api_id, alias="billing")
    assert run(unkey, store, lines)[0].error == "LineInProgressError"
    assert not store.alias_exists(api_id=api_id, alias="billing")
    again = run(unkey, store, lines, wall_clock=later)
    assert again[0].status == "completed"
    assert store.get_current(api_id=api_id, alias="billing").key_id == first[0].key_id
    assert live_keys(emulator, api_id) == [first[0].key_id]


def test_a_key_disabled_on_purpose_is_left_alone(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = [BulkLine(number=1, api_id=api_id, external_id="tenant_c")]
    key_id = run(unkey, store, lines)[0].key_id
    assert key_id is not None
    unkey.update_key(key_id, enabled=False)
    assert run(unkey, store, lines)[0].status == "exists"
    assert not emulator.key(key_id).enabled


def test_input_is_read_lazily_with_a_bounded_window(api_id: str, unkey: UnkeyClient) -> None:
    pulled = 0

    def lines() -> Iterator[BulkLine]:
        nonlocal pulled
        for number in itertools.count(1):
            pulled += 1
            yield BulkLine(number=number, api_id=api_id, alias=f"a{number}")

    results = provision_many(unkey, InMemoryStore(), lines(), concurrency=2, retry=NO_WAIT)
    for _ in range(5):
        next(results)
    assert pulled <= 5 + 2 * 2 + 1
    results.close()  # type: ignore[attr-defined]


def test_results_hold_no_plaintext(emulator: Emulator, api_id: str, unkey: UnkeyClient) -> None:
    store = InMemoryStore()
    results = run(unkey, store, alias_lines(api_id, 3))
    text = json.dumps([r.__dict__ for r in results], default=str)
    for key in emulator.keys(api_id):
        assert key.start not in text or len(key.start) < 8
    for result in results:
        assert result.key_id is not None
        secret = store.get(api_id=api_id, key_id=result.key_id).secret.reveal()
        assert secret not in text


# -- concurrent runs, leftovers ---------------------------------------------------------------


class BlockingStore(InMemoryStore):
    """Holds the first alias move until released: a run caught in the middle of a line."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self._held = False

    def set_current(self, key: IssuedKey, **options: object) -> object:  # type: ignore[override]
        if not self._held:
            self._held = True
            self.entered.set()
            assert self.release.wait(10)
        return super().set_current(key, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["safe", "fast"])
def test_a_concurrent_run_never_adopts_a_key_another_run_is_working_on(
    emulator: Emulator, api_id: str, unkey: UnkeyClient, mode: str
) -> None:
    store = BlockingStore()
    lines = [BulkLine(number=1, api_id=api_id, alias="billing", external_id="tenant_r")]
    first: list[LineResult] = []
    worker = threading.Thread(target=lambda: first.extend(run(unkey, store, lines, mode=mode)))
    worker.start()
    try:
        assert store.entered.wait(10)
        # Run B meets A's key stored for the alias, alias not moved yet: it must not touch it.
        second = run(unkey, store, lines, mode=mode)
    finally:
        store.release.set()
        worker.join(10)
    assert second[0].status == "failed"
    assert second[0].error == "LineInProgressError"
    assert first[0].status == "created"
    current = store.get_current(api_id=api_id, alias="billing")
    assert current.key_id == first[0].key_id
    assert emulator.key(first[0].key_id).enabled
    assert live_keys(emulator, api_id) == [first[0].key_id]
    assert run(unkey, store, lines)[0].status == "exists"


def test_two_runs_in_threads_leave_every_alias_on_an_enabled_key(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = [
        BulkLine(number=i, api_id=api_id, alias=f"svc{i}", external_id=f"t{i}")
        for i in range(1, 21)
    ]
    results: list[list[LineResult]] = [[], []]
    threads = [
        threading.Thread(target=lambda i=i: results[i].extend(run(unkey, store, lines)))
        for i in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for line in lines:
        assert line.alias is not None
        current = store.get_current(api_id=api_id, alias=line.alias)
        assert emulator.key(current.key_id).enabled, line


def test_an_old_key_is_adopted_only_if_the_alias_is_still_free(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = [BulkLine(number=1, api_id=api_id, alias="billing", external_id="tenant_m")]
    store.fail_next("set_current", StoreUnavailableError("down", store="memory"), times=4)
    left = run(unkey, store, lines)[0].key_id
    assert left is not None
    # Someone else points the alias at another key between our look-up and our move.
    other = run(unkey, store, [BulkLine(number=1, api_id=api_id, alias="other")])[0].key_id
    assert other is not None
    real_exists = store.alias_exists
    store.alias_exists = lambda **kw: False  # type: ignore[method-assign]
    original = store.get(api_id=api_id, key_id=other)
    issued = IssuedKey(
        key_id=original.key_id,
        secret=original.secret,
        api_id=api_id,
        alias="billing",
    )
    store.set_current(issued, alias="billing", expected=None)
    result = run(unkey, store, lines, wall_clock=later)[0]
    store.alias_exists = real_exists  # type: ignore[method-assign]
    assert result.status == "failed"
    assert result.error == "StoreConflictError"
    assert store.get_current(api_id=api_id, alias="billing").key_id == other


def test_a_disabled_unstored_key_left_by_a_killed_run_is_deleted_once_old(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    marker = f"op_memory_{secrets.token_hex(12)}"
    leftover = unkey.create_key(
        api_id, external_id="tenant_k", enabled=False, meta={MARKER: marker}
    ).key_id
    # Not ours to delete: enabled, another store's marker, a rotation's token, no marker.
    kept = [
        unkey.create_key(api_id, external_id="tenant_k", meta={MARKER: marker}).key_id,
        unkey.create_key(
            api_id, external_id="tenant_k", enabled=False, meta={MARKER: "op_vault_" + "a" * 24}
        ).key_id,
        unkey.create_key(
            api_id, external_id="tenant_k", enabled=False, meta={MARKER: "rot_memory_ab12"}
        ).key_id,
        unkey.create_key(api_id, external_id="tenant_k", enabled=False).key_id,
    ]
    lines = [BulkLine(number=1, api_id=api_id, alias="svc", external_id="tenant_k")]
    first = run(unkey, store, lines)[0]  # too young: may be a run in progress; left alone
    assert first.status == "created"
    assert first.actions == ()
    assert leftover in live_keys(emulator, api_id)
    again = run(unkey, store, lines, wall_clock=later)[0]
    assert again.status == "exists"
    assert len(again.actions) == 1
    assert leftover in again.actions[0]
    assert "deleted" in again.actions[0]
    live = live_keys(emulator, api_id)
    assert leftover not in live
    assert set(kept) | {first.key_id} == set(live)
    assert run(unkey, store, lines, wall_clock=later)[0].actions == ()


def test_each_listed_key_is_looked_at_once_however_many_lines(
    emulator: Emulator, api_id: str, unkey: UnkeyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Client CPU per line in bulk: a fast run over alias-only lines into an API holding many
    # keys without an externalId used to strip every listed key's meta again for every line.
    store = InMemoryStore()
    left_over = [BulkLine(number=1, api_id=api_id, alias="svc7", meta={"team": "x"})]
    store.fail_next("set_current", StoreUnavailableError("down", store="memory"), times=4)
    half_done = run(unkey, store, left_over, mode="fast")[0]
    assert half_done.status == "failed"
    assert half_done.key_id is not None
    others = [unkey.create_key(api_id).key_id for _ in range(40)]
    unkey.create_key(api_id, meta={"team": "x"})  # same meta, stored for no alias
    disabled = unkey.create_key(api_id, enabled=False).key_id  # disabled by someone
    import unkey_secrets.bulk as bulk

    stripped: list[object] = []
    real_user_meta = bulk._user_meta

    def counted(meta: object) -> dict[str, object]:
        stripped.append(meta)
        return real_user_meta(meta)  # type: ignore[arg-type]

    monkeypatch.setattr(bulk, "_user_meta", counted)
    reads: Counter[str] = Counter()
    real_key_entry = store.key_entry

    def key_entry(**options: str) -> object:
        reads[options["key_id"]] += 1
        return real_key_entry(**options)

    monkeypatch.setattr(store, "key_entry", key_entry)
    lines = [
        BulkLine(number=i, api_id=api_id, alias=f"svc{i}", meta={"team": "x"} if i == 7 else None)
        for i in range(1, 31)
    ]
    results = run(unkey, store, lines, mode="fast", concurrency=1, wall_clock=later)
    by_alias = {r.alias: r for r in results}
    assert by_alias["svc7"].status == "completed"
    assert by_alias["svc7"].key_id == half_done.key_id
    assert Counter(r.status for r in results) == {"created": 29, "completed": 1}
    assert store.get_current(api_id=api_id, alias="svc7").key_id == half_done.key_id
    # Every listed key is read from the store at most once, the disabled one never.
    assert max(reads.values()) == 1
    assert disabled not in reads
    assert set(others) <= set(reads)
    # Each listed key's meta is stripped once (44 listed), not once per line (30 x 44).
    assert len(stripped) <= 44 + len(lines)


def test_a_disabled_stored_key_with_a_rotation_token_is_not_enabled(
    emulator: Emulator, api_id: str, unkey: UnkeyClient
) -> None:
    store = InMemoryStore()
    lines = [BulkLine(number=1, api_id=api_id, external_id="tenant_t")]
    key_id = run(unkey, store, lines)[0].key_id
    assert key_id is not None
    unkey.update_key(key_id, enabled=False, meta={MARKER: "rot_memory_" + "b" * 24})
    assert run(unkey, store, lines, wall_clock=later)[0].status == "exists"
    assert not emulator.key(key_id).enabled


def test_limits_are_checked_before_anything_is_sent(tmp_path: Path) -> None:
    meta = {"blob": "x" * (MAX_META_BYTES + 1)}
    with pytest.raises(BulkInputError, match="meta"):
        parse_line(1, {"api": "api_123", "alias": "a", "meta": meta})
    parse_line(1, {"api": "api_123", "alias": "a", "meta": {"blob": "x" * 1000}})
    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        handle.write(json.dumps({"api": "api_123", "alias": "ok"}) + "\n")
        handle.write(json.dumps({"api": "api_123", "alias": "m", "meta": meta}) + "\n")
        big = {"api": "api_123", "alias": "b", "name": "n" * (MAX_LINE_BYTES + 10)}
        handle.write(json.dumps(big) + "\n")
        handle.write(json.dumps({"api": "api_123", "alias": "last"}) + "\n")
    count, errors = check_file(path)
    assert count == 2
    assert [e.field for e in errors] == ["line 2: meta", "line 3: line"]
    csv_path = tmp_path / "big.csv"
    csv_path.write_text('api,alias,meta\napi_123,a,"' + json.dumps(meta).replace('"', '""') + '"\n')
    count, errors = check_file(csv_path)
    assert (count, [e.field for e in errors]) == (0, ["line 2: meta"])


def test_in_progress_error_is_exported() -> None:
    assert issubclass(LineInProgressError, Exception)
