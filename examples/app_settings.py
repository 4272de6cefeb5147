"""An app whose settings load its Unkey keys from Vault and Secrets Manager, and follow rotations.

What it shows:

* a pydantic-settings ``Settings`` class with one key in Vault and one in AWS Secrets Manager,
  each declared by its alias (``Annotated[SecretStr, UnkeyKey(api_id=..., alias=...)]``) and
  filled through ``settings_customise_sources``; the fields are ``SecretStr`` and their
  ``.info`` gives key_id, version and expiry without the plaintext;
* the app reading Vault with a token that holds only the shipped reader policy
  (``policies/vault-reader.hcl``), configured the standard way (``VAULT_ADDR``,
  ``VAULT_TOKEN``, ``AWS_ENDPOINT_URL``, ``AWS_REGION``);
* a long-running loop calling a protected endpoint (one that checks the caller's key with
  Unkey's ``keys.verifyKey``) while an operator rotates the Vault key: the app's cached key
  (``max_age`` 1 s) picks the new key up, an ``on_change`` callback reports it, and no call
  fails, because the old key stays valid for the rotation's grace period. On a 401 the app
  would call ``refresh()`` and retry once.

Run it from the project root: ``.venv/bin/python examples/app_settings.py``. It starts an
OpenBao dev server, a moto server and the Unkey emulator on free loopback ports and stops them
on the way out; it prints key_ids, versions and verdicts, never a key. Exit status 0 when the
app followed the rotation without a failed call.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from unkey_secrets import Secret, UnkeyClient, provision, rotate
from unkey_secrets.config import (
    KeyInfo,
    KeyReader,
    UnkeyKey,
    UnkeySecretsManagerSource,
    UnkeySecretStr,
    UnkeyVaultSource,
    key_info,
)
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

READER_POLICY = Path(__file__).resolve().parents[1] / "policies" / "vault-reader.hcl"
MAX_AGE = 1.0  # seconds; well inside the 5-minute grace period used below


def say(label: str, text: str) -> None:
    """Print one aligned line of the example's report."""
    print(f"  {label:<26} {text}", flush=True)


def settings_class(api_id: str, vault: KeyReader, aws: KeyReader) -> type[BaseSettings]:
    """The app's Settings (in a real app, a module-level class with its api_id written in)."""

    class Settings(BaseSettings):
        billing_key: Annotated[
            UnkeySecretStr, UnkeyKey(api_id=api_id, alias="billing", store="vault")
        ]
        reports_key: Annotated[SecretStr, UnkeyKey(api_id=api_id, alias="reports", store="aws")]
        service_name: str = "example-app"

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            # Shared readers: the long-running part below reads through the same caches.
            return (
                init_settings,
                env_settings,
                UnkeyVaultSource(settings_cls, vault),
                UnkeySecretsManagerSource(settings_cls, aws),
            )

    return Settings


def main() -> int:
    """Run the example; exit status 0 when the app followed the rotation without a failure."""
    print("Starting the local stack (OpenBao dev server, moto server, Unkey emulator)...")
    with (
        OpenBaoServer() as bao,
        MotoServer() as moto,
        EmulatorServer() as emulator_server,
        UnkeyClient(emulator_server.root_key, base_url=emulator_server.url) as unkey,
    ):
        api_id = unkey.create_api("app-settings")

        print("\n1. The operator issues two keys: one into Vault, one into Secrets Manager")
        writer_vault = VaultStore(bao.client())
        writer_aws = SecretsManagerStore(moto.client("secretsmanager"))
        billing = provision(unkey, writer_vault, api_id, alias="billing", prefix="app")
        reports = provision(unkey, writer_aws, api_id, alias="reports", prefix="app")
        say("billing (Vault)", billing.key_id)
        say("reports (Secrets Manager)", reports.key_id)

        # The app's environment: a Vault token holding only the reader policy, and the
        # standard AWS settings (moto accepts any credentials).
        bao.write_policy("unkey-reader", READER_POLICY.read_text())
        os.environ.update(
            VAULT_ADDR=bao.url,
            VAULT_TOKEN=bao.create_token("unkey-reader", ttl="10m"),
            AWS_ENDPOINT_URL=moto.url,
            AWS_REGION=moto.region,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 (moto's dummy credentials)
        )

        def protected_endpoint(presented: Secret) -> str:
            """The API the app calls: it lets a request in if Unkey says its key is valid."""
            verdict = unkey.verify_key(presented)
            return "200" if verdict.valid else f"401 {verdict.code}"

        print("\n2. The app starts: its Settings load both keys (reader policy only)")
        vault = KeyReader.vault(max_age=MAX_AGE)  # VAULT_ADDR, VAULT_TOKEN
        aws = KeyReader.secrets_manager(max_age=MAX_AGE)  # AWS_* and the credential chain
        settings_cls = settings_class(api_id, vault, aws)
        settings: Any = settings_cls()
        billing_info: KeyInfo = settings.billing_key.info  # typed UnkeySecretStr
        reports_info = key_info(settings.reports_key)  # typed plain SecretStr
        assert reports_info is not None
        say("billing_key", f"{billing_info.key_id} (Vault version {billing_info.version})")
        say("reports_key", f"{reports_info.key_id} (from {reports_info.store})")
        say("settings repr", repr(settings)[:72] + "...")
        for name in ("billing_key", "reports_key"):
            answer = protected_endpoint(Secret(getattr(settings, name).get_secret_value()))
            say("protected endpoint", f"with {name} -> {answer}")

        print("\n3. The app serves requests while the operator rotates the Vault key")
        current = vault.for_field(settings_cls, "billing_key")
        picked_up: list[tuple[str, float]] = []
        current.on_change(
            lambda old, new: picked_up.append((f"{old.key_id} -> {new.key_id}", time.monotonic()))
        )
        calls, failures, used = 0, 0, set()
        rotated_key_id, rotated_at = None, 0.0
        started = time.monotonic()
        while time.monotonic() - started < 3 * MAX_AGE + 1:
            if rotated_key_id is None and time.monotonic() - started > 0.5:
                rotated = rotate(
                    unkey,
                    writer_vault,
                    api_id,
                    alias="billing",
                    grace_period=dt.timedelta(minutes=5),
                )
                rotated_key_id, rotated_at = rotated.key_id, time.monotonic()
                say("operator rotated", f"{rotated.original_key_id} -> {rotated.key_id}")
            key = current.get()
            answer = protected_endpoint(key.secret)
            if answer != "200":
                # A 401: the key may have just been rotated out; read it again and retry once.
                key = current.refresh()
                answer = protected_endpoint(key.secret)
            calls += 1
            used.add(key.key_id)
            failures += answer != "200"
            time.sleep(0.02)
        for change, at in picked_up:
            say("app picked it up", f"{change}, {at - rotated_at:.2f} s after the rotation")
        say("calls made", f"{calls}, failed: {failures}, keys used: {len(used)}")
        followed = current.info().key_id == rotated_key_id

    ok = followed and failures == 0 and len(used) == 2 and len(picked_up) == 1
    print("\nDone: servers stopped." if ok else "\nFAILED: the app did not follow the rotation.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
