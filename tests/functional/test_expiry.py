"""Expiry ahead of time against the stack: OpenBao, moto server and the Unkey emulator.

The CLI runs as the console script (list and verify --expiring-within, doctor's keys.expiring);
the reader reads through a real store. Keys get their ``expires`` from provision's option, and
a rotation through the real store gives the old key its grace-period end.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import warnings
from typing import Any

import pytest
from pydantic import SecretStr

from unkey_secrets import SecretStore, UnkeyClient, provision, rotate
from unkey_secrets.config import KeyExpiringWarning, KeyReader
from unkey_secrets.rotation.core import ROTATED_TO_META_KEY
from unkey_secrets.settings import VaultSettings
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

from ._cli_harness import json_lines, run_cli

pytestmark = pytest.mark.functional

DAY = 86400


def _in_days(days: float) -> int:
    return int((time.time() + days * DAY) * 1000)


def _split(stdout: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    *items, summary = json_lines(stdout)
    assert summary["summary"] is True
    return items, summary


def test_list_verify_and_doctor_find_the_current_key_that_expires(
    kind: str,
    env: dict[str, str],
    target: SecretStore,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    api = unkey_api_id
    soon = provision(unkey_client, target, api, alias="soon", expires=_in_days(2)).key_id
    provision(unkey_client, target, api, alias="later", expires=_in_days(30))
    provision(unkey_client, target, api, alias="svc")
    rotated = rotate(unkey_client, target, api, alias="svc", grace_period=dt.timedelta(hours=24))
    old = rotated.original_key_id
    assert old is not None
    cut = unkey_client.get_key(old)
    assert cut.expires is not None
    assert cut.expires <= _in_days(1.01)  # it ends with its grace period
    assert (cut.meta or {})[ROTATED_TO_META_KEY] == rotated.key_id
    plaintexts = [target.get(api_id=api, key_id=k).secret.reveal() for k in (soon, old)]
    common = ["--store", kind]

    listed = run_cli(["--json", *common, "list", "--api-id", api, "--expiring-within", "7d"], env)
    assert listed.returncode == 3, listed.stderr
    items, summary = _split(listed.stdout)
    ((item),) = items
    assert (item["key_id"], item["alias"], item["alias_names_it"]) == (soon, "soon", True)
    assert item["expires"] == unkey_client.get_key(soon).expires
    assert item["expires_at"].endswith("+00:00")
    assert 2 * DAY - 120 <= item["expires_in_seconds"] <= 2 * DAY
    assert (summary["count"], summary["ok"], summary["expiring_within_seconds"]) == (
        1,
        False,
        7 * DAY,
    )
    targets = ["--alias", "soon", "--alias", "later", "--key-id", old]
    verified = run_cli(
        ["--json", *common, "verify", "--api-id", api, *targets, "--expiring-within", "7d"], env
    )
    assert verified.returncode == 3, verified.stderr
    items, summary = _split(verified.stdout)
    by_key = {i["key_id"]: i for i in items}
    assert by_key[soon]["expiring"] is True
    assert "--alias soon --replace" in by_key[soon]["problem"]
    assert by_key[old]["expiring"] is False  # the rotation's old key ends as it should
    assert (summary["problems"], summary["expiring"]) == (1, 1)

    doctor = run_cli(["--json", *common, "doctor", "--api-id", api], env)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    (check,) = [i for i in json_lines(doctor.stdout) if i.get("check") == "keys.expiring"]
    assert check["result"] == "warning"
    assert f"key {soon} (alias soon)" in check["detail"]
    assert old not in check["detail"]

    for done in (listed, verified, doctor):
        for plaintext in plaintexts:
            assert plaintext not in done.stdout + done.stderr


@pytest.fixture(params=["vault", "aws"])
def reader_and_store(
    request: pytest.FixtureRequest, openbao_server: OpenBaoServer, moto_server: MotoServer
) -> tuple[KeyReader, SecretStore]:
    """A reader of a real store, and the store the test provisions into."""
    from unkey_secrets.stores.aws import SecretsManagerStore
    from unkey_secrets.stores.vault import VaultStore

    if request.param == "vault":
        settings = VaultSettings(
            addr=openbao_server.url, token=SecretStr(openbao_server.root_token)
        )
        return KeyReader.vault(settings, max_age=0), VaultStore(openbao_server.client())
    client = moto_server.client("secretsmanager")
    return KeyReader.secrets_manager(client=client, max_age=0), SecretsManagerStore(client)


def test_the_reader_warns_once_of_the_key_it_serves_ending_soon(
    reader_and_store: tuple[KeyReader, SecretStore],
    unkey_client: UnkeyClient,
    unkey_api_id: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader, store = reader_and_store
    key = provision(unkey_client, store, unkey_api_id, alias="billing", expires=_in_days(3))
    plaintext = store.get(api_id=unkey_api_id, key_id=key.key_id).secret.reveal()
    caplog.set_level(logging.WARNING, logger="unkey_secrets.config")
    cached = reader.key(api_id=unkey_api_id, alias="billing")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for _ in range(3):  # max_age=0: three reads of the store, one warning
            assert cached.get().key_id == key.key_id
    assert cached.reads == 3
    texts = [str(w.message) for w in record if issubclass(w.category, KeyExpiringWarning)]
    assert len(texts) == 1
    assert key.key_id in texts[0]
    assert "in 2d 23h" in texts[0] or "in 3d 0h" in texts[0]
    assert plaintext not in texts[0]
    logged = [r.getMessage() for r in caplog.records if r.name == "unkey_secrets.config"]
    assert logged == texts
    # A key with no end is served without a word.
    provision(unkey_client, store, unkey_api_id, alias="forever")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reader.get(api_id=unkey_api_id, alias="forever")
