"""A deployment step: one Unkey key per tenant, stored in Vault under an alias per tenant.

What it shows: ``provision(..., alias=...)`` in a script that runs on every deploy. The first run
issues a key for each tenant in the list and points the alias ``tenant-<name>`` at it
(``secret/unkey/<api_id>/by-name/tenant-<name>``); running it again changes nothing: a tenant
whose alias exists already is skipped (``store.alias_exists``, a metadata read, no key), and
an alias another run created meanwhile is refused by ``provision`` itself
(``RotationConflictError``, before Unkey is called) and reported the same way. It prints
key_ids and locations, never a key. Exit status 0 when every tenant has its key, 1 otherwise.

How to run it, against the local stack (docs/guides/testing.md, "The whole stack by hand") or a
real one::

    export UNKEY_ROOT_KEY=... UNKEY_BASE_URL=http://127.0.0.1:8787
    export VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=root
    python examples/deploy_provision.py --api-id api_123                 # the default tenants
    python examples/deploy_provision.py --api-id api_123 --tenant acme --tenant globex

The Vault token needs the writer policy (``policies/``): it never reads a key.
"""

from __future__ import annotations

import argparse
import os
import sys

from unkey_secrets import (
    RotationConflictError,
    SecretStore,
    UnkeyClient,
    UnkeySecretsError,
    provision,
)
from unkey_secrets.stores.vault import VaultStore

#: The tenants a deploy makes sure of; in a real project, your tenant registry.
TENANTS = ["acme", "globex", "initech"]


def alias_for(tenant: str) -> str:
    """The reader-facing name of a tenant's key."""
    return f"tenant-{tenant}"


def ensure_key(unkey: UnkeyClient, store: SecretStore, api_id: str, tenant: str) -> bool:
    """Give ``tenant`` a key unless its alias exists; return True if one was issued."""
    alias = alias_for(tenant)
    if store.alias_exists(api_id=api_id, alias=alias):
        print(f"{tenant}: alias {alias} exists, nothing to do")
        return False
    try:
        result = provision(unkey, store, api_id, alias=alias, external_id=tenant, prefix="live")
    except RotationConflictError:
        # Another deploy created the alias between our check and our call; nothing was sent.
        print(f"{tenant}: alias {alias} was just created by another run, nothing to do")
        return False
    assert result.current is not None
    print(f"{tenant}: issued key {result.key_id}, alias {alias} -> {result.current.location}")
    return True


def main(argv: list[str] | None = None) -> int:
    """Provision each tenant's key; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--api-id", default=os.environ.get("UNKEY_API_ID"), help="the Unkey API (UNKEY_API_ID)"
    )
    parser.add_argument(
        "--tenant", action="append", dest="tenants", help="a tenant (repeatable; default: TENANTS)"
    )
    args = parser.parse_args(argv)
    if not args.api_id:
        parser.error("--api-id (or UNKEY_API_ID) is required")
    failed = 0
    issued = 0
    with UnkeyClient.from_settings() as unkey:
        store = VaultStore.from_settings()
        for tenant in args.tenants or TENANTS:
            try:
                issued += ensure_key(unkey, store, args.api_id, tenant)
            except UnkeySecretsError as exc:  # the message says what was undone; never a key
                print(f"{tenant}: FAILED: {exc}", file=sys.stderr)
                failed += 1
    print(f"done: {issued} issued, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
