"""Reading a Vault token's lease from login, renew and lookup-self answers."""

from __future__ import annotations

from typing import Any

import pytest

from unkey_secrets.stores.vault.auth import Lease, lease_of


@pytest.mark.parametrize(
    ("answer", "section", "lease"),
    [
        ({"auth": {"lease_duration": 4, "renewable": True}}, "auth", Lease(4.0, True)),
        ({"auth": {"lease_duration": 0, "renewable": False}}, "auth", Lease(0.0, False)),
        (
            {"data": {"ttl": 3600, "renewable": True, "expire_time": "2026-12-07T10:00:00Z"}},
            "data",
            Lease(3600.0, True),
        ),
        # A root token: no expiry at all.
        ({"data": {"ttl": 0, "renewable": False, "expire_time": None}}, "data", Lease(0.0, False)),
        ({"auth": None}, "auth", None),
        ({"data": {"ttl": True}}, "data", None),
        ({"data": {"ttl": -1}}, "data", None),
        ({"data": {"ttl": "60"}}, "data", None),
        ([], "data", None),
    ],
)
def test_lease_of(answer: Any, section: str, lease: Lease | None) -> None:
    assert lease_of(answer, section=section) == lease


def test_a_token_in_its_last_second_is_not_taken_for_one_that_never_expires() -> None:
    # lookup-self rounds the ttl down: 0.8 s left reads 0, as a root token does; only
    # expire_time tells them apart. Taken for immortal, it was never renewed and died.
    answer = {"data": {"ttl": 0, "renewable": True, "expire_time": "2026-12-07T10:00:00Z"}}
    lease = lease_of(answer, section="data")
    assert lease is not None
    assert 0 < lease.ttl < 1
    assert lease.renewable
