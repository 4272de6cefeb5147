"""The main job, end to end, on a local stack: `make demo`.

Starts an OpenBao dev server, a moto server and the Unkey emulator on free loopback ports, then:
creates a key and stores it in Vault, creates one and stores it in Secrets Manager, rotates the
first, and reads each back the way an app would. It prints key_ids, locations and versions,
never a plaintext, and stops the servers on the way out.
"""

from __future__ import annotations

import datetime as dt
import sys
import time

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

SERVICE = "billing-service"


def say(label: str, text: str) -> None:
    """Print one aligned line of the demo's report."""
    print(f"  {label:<22} {text}", flush=True)


def read_back(title: str, store: SecretStore, unkey: UnkeyClient, api_id: str) -> str:
    """Load the current key as an app would, verify it with Unkey, and return its key_id."""
    started = time.perf_counter()
    current = store.get_current(api_id=api_id, alias=SERVICE)
    elapsed = (time.perf_counter() - started) * 1000
    verdict = unkey.verify_key(current.secret)
    say(f"{title} reads", f"{current.key_id} from {current.location} ({elapsed:.1f} ms)")
    say("  Unkey says", f"{verdict.code} (valid={verdict.valid})")
    return current.key_id


def main() -> int:
    """Run the demo; exit status 0 when every step did what it should."""
    print("Starting the local stack (OpenBao dev server, moto server, Unkey emulator)...")
    with OpenBaoServer() as bao, MotoServer() as moto, EmulatorServer() as emulator_server:
        say("OpenBao", bao.url)
        say("moto (Secrets Manager)", moto.url)
        say("Unkey emulator", emulator_server.url)
        with UnkeyClient(emulator_server.root_key, base_url=emulator_server.url) as unkey:
            api_id = unkey.create_api("demo")
            say("Unkey API", api_id)
            vault = VaultStore(bao.client())
            aws = SecretsManagerStore(moto.client("secretsmanager"))

            print(
                "\n1. Create a key and store it in Vault (safe mode: created disabled, stored, "
                "then enabled)"
            )
            first = provision(
                unkey,
                vault,
                api_id,
                alias=SERVICE,
                name=SERVICE,
                prefix="demo",
                external_id="tenant_42",
            )
            say("key_id", first.key_id)
            say("stored at", f"{first.location.location} (version {first.location.version})")
            assert first.current is not None
            say("alias", f"{first.current.location} -> {first.key_id}")

            print("\n2. Create a key and store it in AWS Secrets Manager")
            second = provision(unkey, aws, api_id, alias=SERVICE, name=SERVICE, prefix="live")
            say("key_id", second.key_id)
            say("stored at", second.location.location)
            say("version", second.location.version)

            print(f"\n3. Rotate the Vault key by its alias {SERVICE} (1 hour grace period)")
            rotated = rotate(
                unkey, vault, api_id, alias=SERVICE, grace_period=dt.timedelta(hours=1)
            )
            say("old key_id", f"{rotated.original_key_id} (valid for {rotated.grace_period})")
            say("new key_id", rotated.key_id)
            say("stored at", f"{rotated.location.location} (version {rotated.location.version})")
            again = rotate(unkey, vault, api_id, first.key_id, alias=SERVICE)
            say("same call again", f"{again.outcome}: still {again.key_id}, nothing rerolled")

            print("\n4. Read each back the way an app would")
            vault_current = read_back("Vault app", vault, unkey, api_id)
            aws_current = read_back("AWS app", aws, unkey, api_id)

            ok = vault_current == rotated.key_id and aws_current == second.key_id
    print("\nDone: servers stopped." if ok else "\nFAILED: a reader did not get the current key.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
