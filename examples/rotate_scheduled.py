"""Scheduled rotation of Vault-held keys by alias: what a cron job or a Kubernetes CronJob runs.

What it shows: ``rotate(unkey, store, api_id, alias=..., grace_period=...)`` over a list of
aliases. Each rotation rerolls the key the alias names, stores the new key, moves the alias,
and keeps the old key valid for the grace period, so readers that cached it (Vault Agent,
External Secrets, an app's own cache) have time to pick up the new one. One alias failing does
not stop the others; the exit status is 1 if any failed, for the scheduler to alert on.

It is safe to run again after a failure, or after being killed: ``rotate`` finishes a rotation
an earlier run left unfinished (outcome ``resumed``), and an alias whose key is younger than
``--min-age`` (it was rotated, or issued, by an earlier run today) is skipped, so a re-run only
does what is left. The age is read from Unkey (``keys.getKey``), the key behind the alias from
the alias's metadata (``store.alias_state``): no key is read. It prints key_ids, never a key.

How to run it (the variables as in docs/guides/deployment-scripts.md; the token needs the writer
policy)::

    export UNKEY_ROOT_KEY=... UNKEY_BASE_URL=... VAULT_ADDR=... VAULT_TOKEN=...
    python examples/rotate_scheduled.py --api-id api_123 --alias billing --alias tenant-acme
    python examples/rotate_scheduled.py --api-id api_123 --alias billing --grace-period 3600
    # keys younger than --min-age (default 3600 s) are skipped: to rotate one just issued,
    python examples/rotate_scheduled.py --api-id api_123 --alias billing --min-age 0

As a Kubernetes CronJob, run the same command daily (``schedule: "0 3 * * *"``,
``concurrencyPolicy: Forbid``, ``restartPolicy: OnFailure``): two runs at once are safe too,
since only one rotation of a key can win, but there is no point in racing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time

from unkey_secrets import SecretStore, UnkeyClient, UnkeySecretsError, rotate
from unkey_secrets.stores.vault import VaultStore


def rotate_one(
    unkey: UnkeyClient,
    store: SecretStore,
    api_id: str,
    alias: str,
    *,
    grace: dt.timedelta,
    min_age: dt.timedelta,
) -> str:
    """Rotate the key ``alias`` names unless it is younger than ``min_age``; say what was done."""
    state = store.alias_state(api_id=api_id, alias=alias)
    if state is None:
        raise LookupError(f"alias {alias} of API {api_id} does not exist: provision it first")
    if min_age > dt.timedelta(0):
        age_ms = time.time() * 1000 - unkey.get_key(state.key_id).created_at
        if age_ms < min_age.total_seconds() * 1000:
            return f"{alias}: key {state.key_id} is {age_ms / 1000:.0f} s old, not rotated"
    result = rotate(unkey, store, api_id, alias=alias, grace_period=grace)
    until = dt.datetime.fromtimestamp((result.original_expires or 0) / 1000, dt.timezone.utc)
    shown = until.isoformat(timespec="seconds") if result.original_expires else "its expiry"
    return (
        f"{alias}: {result.outcome} key {result.original_key_id} -> {result.key_id} "
        f"(the old key stays valid until {shown})"
    )


def main(argv: list[str] | None = None) -> int:
    """Rotate every alias given; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--api-id", default=os.environ.get("UNKEY_API_ID"), help="the Unkey API (UNKEY_API_ID)"
    )
    parser.add_argument(
        "--alias", action="append", dest="aliases", required=True, help="repeatable"
    )
    parser.add_argument(
        "--grace-period",
        type=int,
        default=86400,
        metavar="SECONDS",
        help="how long the old key stays valid (default 86400)",
    )
    parser.add_argument(
        "--min-age",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="skip an alias whose key is younger than this (default 3600; 0: always rotate)",
    )
    args = parser.parse_args(argv)
    if not args.api_id:
        parser.error("--api-id (or UNKEY_API_ID) is required")
    grace = dt.timedelta(seconds=args.grace_period)
    min_age = dt.timedelta(seconds=args.min_age)
    failed = 0
    with UnkeyClient.from_settings() as unkey:
        store = VaultStore.from_settings()
        for alias in args.aliases:
            try:
                print(rotate_one(unkey, store, args.api_id, alias, grace=grace, min_age=min_age))
            except (UnkeySecretsError, LookupError) as exc:  # key_ids and what was undone
                print(f"{alias}: FAILED: {exc}", file=sys.stderr)
                failed += 1
    print(f"done: {len(args.aliases) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
