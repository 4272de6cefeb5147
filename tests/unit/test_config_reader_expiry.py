"""The reader warns ahead of time when the key it serves is about to end (issue 17)."""

from __future__ import annotations

import logging
import warnings

import pytest

from unkey_secrets import InvalidInputError, IssuedKey
from unkey_secrets.config import DEFAULT_EXPIRY_WARNING, KeyExpiringWarning, KeyReader
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key

API = "api_expiry"
DAY = 86400.0


class Clock:
    """A settable clock: monotonic seconds or Unix seconds, as the test needs."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _current(store: InMemoryStore, expires_in: float | None, wall: Clock) -> IssuedKey:
    """A key the alias ``billing`` names, ending ``expires_in`` seconds from ``wall`` (or never)."""
    base = canary_key(api_id=API, alias="billing")
    expires = None if expires_in is None else int((wall.now + expires_in) * 1000)
    key = IssuedKey(
        key_id=base.key_id, secret=base.secret, api_id=API, alias="billing", expires=expires
    )
    store.put(key)
    store.set_current(key, alias="billing")
    return key


def _warnings_of(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, KeyExpiringWarning)]


def test_the_default_threshold_is_seven_days() -> None:
    assert DEFAULT_EXPIRY_WARNING == 7 * DAY
    assert KeyReader(InMemoryStore()).expiry_warning == 7 * DAY


def test_warns_once_per_key_id_naming_the_key_and_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, clock, wall = InMemoryStore(), Clock(1000.0), Clock(1_700_000_000.0)
    key = _current(store, 3 * DAY + 60, wall)
    cached = KeyReader(store, max_age=60, clock=clock, wall_clock=wall).key(
        api_id=API, alias="billing"
    )
    caplog.set_level(logging.WARNING, logger="unkey_secrets.config")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert cached.get().key_id == key.key_id
        for _ in range(3):  # read again after each max_age: no second warning for this key
            clock.now += 61
            cached.get()
    assert cached.reads == 4
    texts = _warnings_of(record)
    assert len(texts) == 1
    text = texts[0]
    assert key.key_id in text
    assert "alias 'billing'" in text
    assert "2023-11-17T22:14:20Z" in text  # 1_700_000_000 + 3 days + 60 s, in RFC 3339
    assert str(int((wall.now + 3 * DAY + 60) * 1000)) in text
    assert "3d 0h" in text
    assert (
        f"unkey-secrets provision --store {store.name} --api-id {API} --alias billing --replace"
        in text
    )
    logged = [r for r in caplog.records if r.name == "unkey_secrets.config"]
    assert [r.getMessage() for r in logged] == [text]
    assert logged[0].levelno == logging.WARNING
    secret = key.secret.reveal()
    assert secret not in text
    assert all(secret not in r.getMessage() for r in caplog.records)


def test_a_new_key_behind_the_alias_is_warned_of_in_its_turn() -> None:
    store, clock, wall = InMemoryStore(), Clock(1000.0), Clock(1_700_000_000.0)
    first = _current(store, 2 * DAY, wall)
    cached = KeyReader(store, max_age=60, clock=clock, wall_clock=wall).key(
        api_id=API, alias="billing"
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cached.get()
        second = _current(store, 5 * DAY, wall)  # replaced, but this one ends too
        clock.now += 61
        assert cached.get().key_id == second.key_id
    texts = _warnings_of(record)
    assert len(texts) == 2
    assert first.key_id in texts[0]
    assert second.key_id in texts[1]


def test_warns_once_the_end_comes_within_the_threshold() -> None:
    """A key read 8 days before its end is warned of at the first read inside 7 days."""
    store, clock, wall = InMemoryStore(), Clock(1000.0), Clock(1_700_000_000.0)
    _current(store, 8 * DAY, wall)
    cached = KeyReader(store, max_age=3600, clock=clock, wall_clock=wall).key(
        api_id=API, alias="billing"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached.get()
        wall.now += DAY - 10  # still 7 days and 10 s to go
        clock.now += 3601
        cached.get()
    wall.now += 20
    clock.now += 3601
    with pytest.warns(KeyExpiringWarning, match=r"in 6d 23h"):
        cached.get()


@pytest.mark.parametrize(
    ("expires_in", "expiry_warning"),
    [
        (None, DEFAULT_EXPIRY_WARNING),  # a key that never ends
        (7 * DAY + 1, DEFAULT_EXPIRY_WARNING),  # ends after the threshold
        (3600.0, 0.0),  # 0 turns the warning off
        (3600.0, 1800.0),  # a shorter threshold of the caller's
    ],
)
def test_no_warning_outside_the_threshold(
    expires_in: float | None, expiry_warning: float, caplog: pytest.LogCaptureFixture
) -> None:
    store, wall = InMemoryStore(), Clock(1_700_000_000.0)
    _current(store, expires_in, wall)
    reader = KeyReader(store, wall_clock=wall, expiry_warning=expiry_warning)
    caplog.set_level(logging.WARNING, logger="unkey_secrets.config")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader.get(api_id=API, alias="billing")
    assert not caplog.records


def test_a_threshold_of_the_callers_own_is_kept(caplog: pytest.LogCaptureFixture) -> None:
    store, wall = InMemoryStore(), Clock(1_700_000_000.0)
    _current(store, 20 * DAY, wall)
    reader = KeyReader(store, wall_clock=wall, expiry_warning=30 * DAY)
    with pytest.warns(KeyExpiringWarning, match=r"in 20d 0h"):
        reader.get(api_id=API, alias="billing")


def test_a_key_read_by_key_id_is_warned_of_too() -> None:
    store, wall = InMemoryStore(), Clock(1_700_000_000.0)
    key = _current(store, 90.0, wall)
    with pytest.warns(KeyExpiringWarning, match=r"in 1m 30s") as record:
        KeyReader(store, wall_clock=wall).get(api_id=API, key_id=key.key_id)
    assert key.key_id in str(record[0].message)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "7d"])
def test_the_threshold_is_a_number_of_seconds(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="expiry_warning"):
        KeyReader(InMemoryStore(), expiry_warning=bad)  # type: ignore[arg-type]
