"""provision, rotate and capture against the real OpenBao, moto server and the Unkey emulator."""

from __future__ import annotations

import datetime as dt
import time

import hvac
import pytest

from unkey_secrets import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
    ConfigurationError,
    FlowError,
    InvalidInputError,
    IssuedKey,
    RetryPolicy,
    SecretStore,
    StoredKey,
    StoredLocation,
    StoreUnavailableError,
    UnkeyClient,
    capture,
    provision,
    rotate,
)
from unkey_secrets._models import AliasState, KeyEntry
from unkey_secrets.flows import MARKER_META_KEY
from unkey_secrets.rotation.record import RotationRecord
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.testing.emulator import Emulator, EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer


class Recorder:
    """A sleep that records the delays it was asked for instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


class FlakyStore(SecretStore):
    """A real store that answers 'unavailable' to its first ``failures`` writes."""

    def __init__(self, inner: SecretStore, failures: int) -> None:
        super().__init__()
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.failures = failures

    def _fail_first(self) -> None:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailableError("injected outage", store=self.name)

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        self._fail_first()
        return self.inner._put(key, path)

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | object | None
    ) -> StoredLocation:
        self._fail_first()
        return self.inner._set_current(key, path, alias, expected)  # type: ignore[arg-type]

    def _get(self, path: str) -> StoredKey:
        return self.inner._get(path)

    def _get_current(self, path: str) -> StoredKey:
        return self.inner._get_current(path)

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        return self.inner._key_entry(path, api_id, key_id)

    def _alias_state(self, path: str, api_id: str, alias: str) -> AliasState | None:
        return self.inner._alias_state(path, api_id, alias)

    def _read_rotation(self, path: str) -> RotationRecord | None:
        return self.inner._read_rotation(path)

    def _write_rotation(self, record: RotationRecord, path: str) -> None:
        self.inner._write_rotation(record, path)

    def _check_writable(self) -> None:
        self.inner._check_writable()


@pytest.fixture(params=["vault", "aws"])
def unreachable_store(request: pytest.FixtureRequest, dead_port: int) -> SecretStore:
    """A real store pointed at a loopback port where nothing listens.

    Its live preflight is off: it stands for a store that went down after it was checked, so
    the flows' compensation is what these tests see.
    """
    return _dead_store(request.param, dead_port, preflight=False)


def _dead_store(kind: str, dead_port: int, *, preflight: bool) -> SecretStore:
    url = f"http://127.0.0.1:{dead_port}"
    if kind == "vault":
        return VaultStore(hvac.Client(url=url, token="unused", timeout=2), preflight=preflight)
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "secretsmanager",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    return SecretsManagerStore(client, preflight=preflight)


def fast_retry(recorder: Recorder | None = None) -> RetryPolicy:
    return RetryPolicy(attempts=3, backoff=0.01, sleep=recorder or Recorder())


def verify(unkey: UnkeyClient, stored: StoredKey) -> str:
    return unkey.verify_key(stored.secret).code


# provision -------------------------------------------------------------------------------------


def test_provision_safe_mode_stores_then_enables(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    before = unkey_emulator.calls.copy()
    result = provision(
        unkey_client, store, unkey_api_id, alias="svc", name="svc", meta={"team": "billing"}
    )
    assert result.mode == "safe"
    assert result.location.created
    stored = store.get(api_id=unkey_api_id, key_id=result.key_id)
    assert verify(unkey_client, stored) == "VALID"
    assert store.get_current(api_id=unkey_api_id, alias="svc").key_id == result.key_id
    emulated = unkey_emulator.key(result.key_id)
    assert emulated.enabled
    assert emulated.meta == {"team": "billing"}, "the marker is removed when the key is enabled"
    calls = unkey_emulator.calls - before
    assert calls["keys.createKey"] == 1
    assert calls["keys.updateKey"] == 1


def test_provision_fast_mode_makes_one_unkey_call(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    before = unkey_emulator.calls.copy()
    result = provision(unkey_client, store, unkey_api_id, mode="fast", prefix="live")
    assert (unkey_emulator.calls - before) == {"keys.createKey": 1}
    stored = store.get(api_id=unkey_api_id, key_id=result.key_id)
    assert stored.secret.reveal().startswith("live_")
    assert verify(unkey_client, stored) == "VALID"


def test_provision_retries_a_transient_store_failure(
    unkey_client: UnkeyClient, unkey_api_id: str, vault_store: VaultStore
) -> None:
    recorder = Recorder()
    flaky = FlakyStore(vault_store, failures=2)
    result = provision(unkey_client, flaky, unkey_api_id, retry=fast_retry(recorder))
    assert len(recorder.delays) == 2
    assert vault_store.get(api_id=unkey_api_id, key_id=result.key_id).key_id == result.key_id


def test_provision_deletes_the_key_when_the_store_stays_down(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    unreachable_store: SecretStore,
) -> None:
    recorder = Recorder()
    with pytest.raises(CompensatedError) as raised:
        provision(unkey_client, unreachable_store, unkey_api_id, retry=fast_retry(recorder))
    error = raised.value
    # The write was retried (2 delays), then the store was asked, with retries, whether it
    # landed (2 more): it could not say, and a key no alias names yet is deleted.
    assert len(recorder.delays) == 4, "the write and the read-back were retried"
    assert error.key_id is not None
    assert f"deleted key {error.key_id}" in str(error)
    assert "could not say whether the write landed" in str(error)
    assert unkey_emulator.key(error.key_id).deleted
    assert isinstance(error.__cause__, StoreUnavailableError)


def test_failed_compensation_names_the_key_and_leaves_it_disabled(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    unreachable_store: SecretStore,
) -> None:
    unkey_emulator.faults.fail_next("keys.deleteKey", times=10, status=500)
    with pytest.raises(CompensationFailedError) as raised:
        provision(unkey_client, unreachable_store, unkey_api_id, retry=fast_retry())
    key_id = raised.value.key_id
    assert key_id is not None
    assert f"Revoke key {key_id}" in str(raised.value)
    emulated = unkey_emulator.key(key_id)
    assert not emulated.deleted
    assert not emulated.enabled, "safe mode: the unstored key was never enabled"


def test_fast_mode_compensation_deletes_the_enabled_key(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    unreachable_store: SecretStore,
) -> None:
    with pytest.raises(CompensatedError) as raised:
        provision(unkey_client, unreachable_store, unkey_api_id, mode="fast", retry=fast_retry())
    assert raised.value.key_id is not None
    assert unkey_emulator.key(raised.value.key_id).deleted


def test_lost_create_answer_is_found_and_deleted(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    unkey_emulator.faults.drop_after_action("keys.createKey")
    with pytest.raises(AmbiguousOutcomeError) as raised:
        provision(unkey_client, store, unkey_api_id, external_id="tenant_lost")
    key_id = raised.value.key_id
    assert key_id is not None
    assert unkey_emulator.key(key_id).deleted
    live = [k for k in unkey_emulator.keys(unkey_api_id) if not k.deleted]
    assert live == []


def test_create_that_failed_server_side_is_settled_as_not_done(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    unkey_emulator.faults.fail_next("keys.createKey", status=500)
    with pytest.raises(AmbiguousOutcomeError) as raised:
        provision(unkey_client, store, unkey_api_id)
    assert raised.value.key_id is None
    assert "Unkey had not acted" in str(raised.value)
    assert unkey_emulator.keys(unkey_api_id) == []


def test_unsettled_lost_create_names_the_marker(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    unkey_emulator.faults.drop_after_action("keys.createKey")
    unkey_emulator.faults.fail_next("apis.listKeys", times=10, status=503)
    with pytest.raises(CompensationFailedError) as raised:
        provision(unkey_client, store, unkey_api_id)
    assert MARKER_META_KEY in str(raised.value)
    (orphan,) = unkey_emulator.keys(unkey_api_id)
    assert not orphan.enabled, "safe mode: the unfound key is disabled, so not valid"


def test_enable_failure_leaves_the_key_stored_and_disabled(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    unkey_emulator.faults.fail_next("keys.updateKey", times=10, status=500)
    with pytest.raises(FlowError) as raised:
        provision(unkey_client, store, unkey_api_id)
    key_id = raised.value.key_id
    assert key_id is not None
    assert store.get(api_id=unkey_api_id, key_id=key_id).key_id == key_id
    assert not unkey_emulator.key(key_id).enabled


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"api_id": "../etc"}, "api_id"),
        ({"alias": "../x"}, "alias"),
        ({"mode": "quick"}, "mode"),
        ({"enabled": True}, "enabled"),
    ],
)
def test_bad_provision_input_calls_nothing(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    vault_store: VaultStore,
    kwargs: dict[str, object],
    field: str,
) -> None:
    before = unkey_emulator.calls.copy()
    args = {"api_id": unkey_api_id, **kwargs}
    with pytest.raises(InvalidInputError) as raised:
        provision(unkey_client, vault_store, **args)  # type: ignore[arg-type]
    assert raised.value.field == field
    assert unkey_emulator.calls == before


# rotate ----------------------------------------------------------------------------------------


def test_rotate_stores_the_new_key_and_keeps_the_old_one_valid(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    first = provision(unkey_client, store, unkey_api_id, alias="svc", external_id="tenant_r")
    started_ms = time.time() * 1000
    result = rotate(
        unkey_client,
        store,
        unkey_api_id,
        first.key_id,
        alias="svc",
        grace_period=dt.timedelta(hours=1),
    )
    assert result.original_key_id == first.key_id
    assert result.key_id != first.key_id
    current = store.get_current(api_id=unkey_api_id, alias="svc")
    assert current.key_id == result.key_id
    assert verify(unkey_client, current) == "VALID"
    old = store.get(api_id=unkey_api_id, key_id=first.key_id)
    assert verify(unkey_client, old) == "VALID", "the original is valid for its grace period"
    expires = unkey_emulator.key(first.key_id).expires
    assert expires is not None
    assert started_ms + 3_600_000 <= expires <= started_ms + 3_600_000 + 61_000 + 5_000
    assert store.get(api_id=unkey_api_id, key_id=result.key_id).rerolled_from == first.key_id


def test_rotate_refuses_a_grace_shorter_than_reader_caches(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    first = provision(unkey_client, store, unkey_api_id)
    before = unkey_emulator.calls.copy()
    with pytest.raises(InvalidInputError, match="grace_period"):
        rotate(unkey_client, store, unkey_api_id, first.key_id, grace_period=dt.timedelta(0))
    assert unkey_emulator.calls == before
    revoked = rotate(
        unkey_client,
        store,
        unkey_api_id,
        first.key_id,
        grace_period=dt.timedelta(0),
        allow_short_grace=True,
    )
    old = store.get(api_id=unkey_api_id, key_id=first.key_id)
    assert verify(unkey_client, old) == "EXPIRED"
    assert revoked.key_id != first.key_id


def test_failed_rotation_restores_the_original_and_deletes_the_new_key(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    first = provision(unkey_client, store, unkey_api_id, meta={"team": "billing"})
    with pytest.raises(CompensatedError) as raised:
        rotate(unkey_client, FlakyStore(store, 100), unkey_api_id, first.key_id, retry=fast_retry())
    error = raised.value
    assert error.original_key_id == first.key_id
    assert error.key_id is not None
    assert unkey_emulator.key(error.key_id).deleted
    assert unkey_emulator.key(first.key_id).expires is None, "expiry put back to 'never'"
    assert unkey_emulator.key(first.key_id).meta == {"team": "billing"}, "meta put back"
    old = store.get(api_id=unkey_api_id, key_id=first.key_id)
    assert verify(unkey_client, old) == "VALID"
    # The rotation was given up, so the same call starts afresh at once and succeeds.
    record = store.read_rotation(api_id=unkey_api_id, key_id=first.key_id)
    assert record is not None
    assert record.state == "released"
    again = rotate(unkey_client, store, unkey_api_id, first.key_id)
    assert again.outcome == "resumed"
    assert store.get(api_id=unkey_api_id, key_id=again.key_id).rerolled_from == first.key_id


@pytest.mark.parametrize("kind", ["vault", "aws"])
@pytest.mark.parametrize("flow", ["provision", "rotate"])
def test_a_store_that_cannot_be_reached_is_found_before_unkey_is_called(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    vault_store: VaultStore,
    dead_port: int,
    kind: str,
    flow: str,
) -> None:
    first = provision(unkey_client, vault_store, unkey_api_id)
    dead = _dead_store(kind, dead_port, preflight=True)
    before = unkey_emulator.calls.copy()
    call = {
        "rotate": lambda: rotate(unkey_client, dead, unkey_api_id, first.key_id),
        "provision": lambda: provision(unkey_client, dead, unkey_api_id),
    }[flow]
    with pytest.raises(ConfigurationError):
        call()
    assert unkey_emulator.calls == before, "nothing sent to Unkey"


def test_lost_reroll_answer_is_undone(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    first = provision(unkey_client, store, unkey_api_id, external_id="tenant_x")
    unkey_emulator.faults.drop_after_action("keys.rerollKey")
    with pytest.raises(AmbiguousOutcomeError) as raised:
        rotate(unkey_client, store, unkey_api_id, first.key_id)
    new_id = raised.value.key_id
    assert new_id is not None
    assert new_id != first.key_id
    assert unkey_emulator.key(new_id).deleted
    assert unkey_emulator.key(first.key_id).expires is None
    live = [k.key_id for k in unkey_emulator.keys(unkey_api_id) if not k.deleted]
    assert live == [first.key_id]


# capture ---------------------------------------------------------------------------------------


@pytest.fixture
def sdk(unkey_emulator_server: EmulatorServer):  # type: ignore[no-untyped-def]
    from unkey.py import Unkey
    from unkey.py.utils import RetryConfig

    with Unkey(
        root_key=unkey_emulator_server.root_key,
        server_url=unkey_emulator_server.url,
        retry_config=RetryConfig("none", None, False),
    ) as client:
        yield client


@pytest.mark.parametrize("shape", ["response", "data", "dict", "kwargs"])
def test_capture_accepts_what_the_official_sdk_returns(
    sdk, unkey_client: UnkeyClient, unkey_api_id: str, store: SecretStore, shape: str
) -> None:
    res = sdk.keys.create_key(api_id=unkey_api_id, prefix="sdk")
    if shape == "response":
        location = capture(store, res, api_id=unkey_api_id)
    elif shape == "data":
        location = capture(store, res.data, api_id=unkey_api_id)
    elif shape == "dict":
        location = capture(store, res.model_dump(by_alias=True), api_id=unkey_api_id)
    else:
        location = capture(store, api_id=unkey_api_id, key_id=res.data.key_id, key=res.data.key)
    assert location.key_id == res.data.key_id
    stored = store.get(api_id=unkey_api_id, key_id=res.data.key_id)
    assert stored.secret.reveal() == res.data.key
    assert verify(unkey_client, stored) == "VALID"


def test_capture_of_an_sdk_reroll_records_the_original(
    sdk, unkey_api_id: str, vault_store: VaultStore
) -> None:
    created = sdk.keys.create_key(api_id=unkey_api_id)
    rerolled = sdk.keys.reroll_key(key_id=created.data.key_id, expiration=3_600_000)
    capture(vault_store, rerolled, api_id=unkey_api_id, rerolled_from=created.data.key_id)
    stored = vault_store.get(api_id=unkey_api_id, key_id=rerolled.data.key_id)
    assert stored.rerolled_from == created.data.key_id


@pytest.mark.parametrize(
    "response",
    [
        {"data": {"keyId": "key_abc123"}},
        {"data": {"key": "sk_PLAINTEXTcanary"}},
        {"data": {"keyId": "key_abc123", "key": 1234}},
        {"data": {"keyId": "../../x", "key": "sk_PLAINTEXTcanary"}},
        "sk_PLAINTEXTcanary",
        {"keyId": "key_abc123", "key": ""},
    ],
)
def test_capture_refuses_bad_shapes_without_echo(
    response: object, unkey_api_id: str, vault_store: VaultStore
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        capture(vault_store, response, api_id=unkey_api_id)
    assert "PLAINTEXTcanary" not in str(raised.value)
    assert "PLAINTEXTcanary" not in repr(raised.value.args)


def test_capture_with_a_client_deletes_what_it_cannot_store(
    sdk,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    unreachable_store: SecretStore,
) -> None:
    res = sdk.keys.create_key(api_id=unkey_api_id)
    with pytest.raises(CompensatedError):
        capture(unreachable_store, res, api_id=unkey_api_id, unkey=unkey_client, retry=fast_retry())
    assert unkey_emulator.key(res.data.key_id).deleted


def test_capture_without_a_client_names_the_key_to_revoke(
    sdk, unkey_emulator: Emulator, unkey_api_id: str, unreachable_store: SecretStore
) -> None:
    res = sdk.keys.create_key(api_id=unkey_api_id)
    with pytest.raises(FlowError) as raised:
        capture(unreachable_store, res, api_id=unkey_api_id, retry=fast_retry())
    assert res.data.key_id in str(raised.value)
    assert res.data.key not in str(raised.value)
    assert not unkey_emulator.key(res.data.key_id).deleted


def test_moto_and_openbao_fixtures_are_loopback(
    moto_server: MotoServer, unkey_emulator_server: EmulatorServer
) -> None:
    assert moto_server.url.startswith("http://127.0.0.1:")
    assert unkey_emulator_server.url.startswith("http://127.0.0.1:")


# review fixes: hold, recovery, preflight, wrong api, non-store failures ----------------------

KILLED_ROTATION = """
import sys
from unkey_secrets import UnkeyClient, rotate
from unkey_secrets.stores.vault import VaultStore
import hvac

url, token, unkey_url, root_key, api_id, key_id = sys.argv[1:]

class StopsBeforeStoring(VaultStore):
    def _put(self, key, path):
        print("storing", key.key_id, flush=True)
        sys.stdin.read()  # the parent kills us here, after the reroll, before the write

store = StopsBeforeStoring(hvac.Client(url=url, token=token))
with UnkeyClient(root_key, base_url=unkey_url) as unkey:
    rotate(unkey, store, api_id, key_id)
"""


def rotate_until_killed(
    script: str,
    bao: OpenBaoServer,
    emulator: EmulatorServer,
    api_id: str,
    key_id: str,
) -> str:
    """Run ``rotate`` in a child, SIGKILL it where the script stops; return the new key_id."""
    import subprocess
    import sys

    args = [bao.url, bao.root_token, emulator.url, emulator.root_key, api_id, key_id]
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line.startswith("storing "), line
        return line.split()[1]
    finally:
        child.kill()
        child.wait(timeout=10)


def test_a_rotation_killed_before_storing_strands_no_one_and_is_cleaned_up(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_emulator_server: EmulatorServer,
    unkey_api_id: str,
    vault_store: VaultStore,
    openbao_server,
) -> None:
    first = provision(unkey_client, vault_store, unkey_api_id, alias="svc")
    lost_key_id = rotate_until_killed(
        KILLED_ROTATION, openbao_server, unkey_emulator_server, unkey_api_id, first.key_id
    )

    # Killed after the reroll: the original is on the month-long hold, not its grace period.
    held = unkey_emulator.key(first.key_id).expires
    assert held is not None
    assert held > time.time() * 1000 + 29 * 86_400_000
    assert not unkey_emulator.key(lost_key_id).deleted

    started_ms = time.time() * 1000
    result = rotate(unkey_client, vault_store, unkey_api_id, first.key_id, alias="svc")
    assert unkey_emulator.key(lost_key_id).deleted, "the unstored key of the killed run is gone"
    original = unkey_emulator.key(first.key_id)
    assert original.expires is not None
    assert original.expires <= started_ms + 86_400_000 + 61_000 + 5_000
    assert result.original_expires == original.expires or (
        0 <= original.expires - result.original_expires <= 60_000
    )
    assert "unkey_secrets_op" not in (original.meta or {})
    assert unkey_emulator.key(result.key_id).expires is None, "the new key did not inherit the hold"
    assert vault_store.get_current(api_id=unkey_api_id, alias="svc").key_id == result.key_id


def test_rotate_leaves_no_marker_on_either_key(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    first = provision(unkey_client, store, unkey_api_id, meta={"team": "billing"})
    result = rotate(unkey_client, store, unkey_api_id, first.key_id)
    # The rotated-out key keeps one member for good: the key that replaced it.
    assert unkey_emulator.key(first.key_id).meta == {
        "team": "billing",
        "unkey_secrets_rotated_to": result.key_id,
    }
    assert unkey_emulator.key(result.key_id).meta == {"team": "billing"}


def test_rotate_never_extends_an_earlier_expiry(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    soon = int(time.time() * 1000) + 2 * 3_600_000
    first = provision(unkey_client, store, unkey_api_id, expires=soon)
    result = rotate(unkey_client, store, unkey_api_id, first.key_id)
    assert unkey_emulator.key(first.key_id).expires == soon
    assert result.original_expires == soon


def test_rotate_refuses_a_key_of_another_api(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    first = provision(unkey_client, store, unkey_api_id)
    other_api = unkey_emulator.create_api("other")
    before = unkey_emulator.calls.copy()
    with pytest.raises(InvalidInputError, match="not a key of API"):
        rotate(unkey_client, store, other_api, first.key_id)
    assert (unkey_emulator.calls - before)["keys.rerollKey"] == 0
    assert unkey_emulator.key(first.key_id).expires is None


def test_http_client_debug_output_is_refused_before_unkey_is_called(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    store: SecretStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import http.client

    from unkey_secrets import ConfigurationError

    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    before = unkey_emulator.calls.copy()
    with pytest.raises(ConfigurationError):
        provision(unkey_client, store, unkey_api_id)
    assert unkey_emulator.calls == before


class BrokenStore(FlakyStore):
    """A real store whose writes fail with an error that is not a StoreError."""

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        raise RuntimeError("a bug in a third-party store")


def test_any_store_failure_is_compensated_not_only_store_errors(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, vault_store: VaultStore
) -> None:
    broken = BrokenStore(vault_store, failures=0)
    with pytest.raises(CompensatedError) as raised:
        provision(unkey_client, broken, unkey_api_id, mode="fast")
    assert raised.value.key_id is not None
    assert unkey_emulator.key(raised.value.key_id).deleted
    assert "RuntimeError" in str(raised.value)
    # A foreign exception may echo its input: it is named, never chained.
    assert raised.value.__cause__ is None


def test_interrupted_store_write_is_undone_and_the_interrupt_goes_on(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, vault_store: VaultStore
) -> None:
    class Interrupted(FlakyStore):
        def _put(self, key: IssuedKey, path: str) -> StoredLocation:
            raise KeyboardInterrupt

    first = provision(unkey_client, vault_store, unkey_api_id)
    with pytest.raises(KeyboardInterrupt):
        rotate(unkey_client, Interrupted(vault_store, failures=0), unkey_api_id, first.key_id)
    live = [k for k in unkey_emulator.keys(unkey_api_id) if not k.deleted]
    assert [k.key_id for k in live] == [first.key_id]
    assert unkey_emulator.key(first.key_id).expires is None


def test_capture_of_a_reroll_keeps_the_new_key_when_the_store_fails(
    sdk,
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    unreachable_store: SecretStore,
) -> None:
    created = sdk.keys.create_key(api_id=unkey_api_id)
    rerolled = sdk.keys.reroll_key(key_id=created.data.key_id, expiration=3_600_000)
    with pytest.raises(FlowError) as raised:
        capture(
            unreachable_store,
            rerolled,
            api_id=unkey_api_id,
            rerolled_from=created.data.key_id,
            unkey=unkey_client,
            retry=fast_retry(),
        )
    assert "capture it again" in str(raised.value)
    assert not unkey_emulator.key(rerolled.data.key_id).deleted


def test_a_fast_key_keeps_its_own_expiry_through_a_rotation(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    soon = int(time.time() * 1000) + 3_600_000
    first = provision(unkey_client, store, unkey_api_id, mode="fast", expires=soon)
    result = rotate(unkey_client, store, unkey_api_id, first.key_id)
    assert unkey_emulator.key(first.key_id).expires == soon
    assert unkey_emulator.key(result.key_id).expires == soon


class AliasFails(FlakyStore):
    """Stores keys, but every alias move fails as if its answer were lost."""

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | object | None
    ) -> StoredLocation:
        raise StoreUnavailableError("injected alias outage", store=self.name)


def test_a_failed_alias_move_deletes_nothing(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, vault_store: VaultStore
) -> None:
    with pytest.raises(FlowError, match="moving alias svc") as raised:
        provision(
            unkey_client, AliasFails(vault_store, 0), unkey_api_id, alias="svc", retry=fast_retry()
        )
    key_id = raised.value.key_id
    assert key_id is not None
    assert not unkey_emulator.key(key_id).deleted, "the alias write may have landed"
    # Safe mode enables a key for a new alias only once the alias names it: until then it
    # stays disabled (never a valid key that no alias names).
    assert not unkey_emulator.key(key_id).enabled
    assert vault_store.contains(api_id=unkey_api_id, key_id=key_id)


def test_safe_mode_enables_a_new_alias_key_last_and_the_rerun_finishes_it(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, vault_store: VaultStore
) -> None:
    unkey_emulator.faults.fail_next("keys.updateKey", times=10, status=500)
    with pytest.raises(FlowError, match="names it: run the same call again") as raised:
        provision(unkey_client, vault_store, unkey_api_id, alias="svc")
    key_id = raised.value.key_id
    assert key_id is not None
    assert vault_store.get_current(api_id=unkey_api_id, alias="svc").key_id == key_id
    assert not unkey_emulator.key(key_id).enabled
    unkey_emulator.faults.clear()
    again = provision(unkey_client, vault_store, unkey_api_id, alias="svc")
    assert again.key_id == key_id
    key = unkey_emulator.key(key_id)
    assert key.enabled
    assert not any(name.startswith("unkey_secrets_") for name in key.meta or {})
    # Run once more, the call is refused as any provision onto a taken alias is.
    from unkey_secrets import RotationConflictError

    with pytest.raises(RotationConflictError):
        provision(unkey_client, vault_store, unkey_api_id, alias="svc")


class FailsTidyingAfterStore(FlakyStore):
    """Stores the key, then makes Unkey refuse the updates that finish the rotation."""

    def __init__(self, inner: SecretStore, emulator: Emulator) -> None:
        super().__init__(inner, 0)
        self.emulator = emulator

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        stored = self.inner._put(key, path)
        self.emulator.faults.fail_next("keys.updateKey", times=10, status=500)
        return stored


def test_rotating_the_new_key_after_an_unfinished_rotation_spares_the_original(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, vault_store: VaultStore
) -> None:
    # The original was never stored by us (a dashboard key, say).
    original = unkey_client.create_key(unkey_api_id)
    with pytest.raises(FlowError, match="rotation hold"):
        rotate(
            unkey_client,
            FailsTidyingAfterStore(vault_store, unkey_emulator),
            unkey_api_id,
            original.key_id,
        )
    unkey_emulator.reset_faults()
    (new_id,) = [k.key_id for k in unkey_emulator.keys(unkey_api_id) if k.key_id != original.key_id]
    rotate(unkey_client, vault_store, unkey_api_id, new_id)
    assert not unkey_emulator.key(original.key_id).deleted, "an older key is never a leftover"


KILLED_AFTER_STORING = KILLED_ROTATION.replace(
    """class StopsBeforeStoring(VaultStore):
    def _put(self, key, path):
        print("storing", key.key_id, flush=True)
        sys.stdin.read()  # the parent kills us here, after the reroll, before the write
""",
    """class StopsBeforeStoring(VaultStore):
    def _set_current(self, key, path, alias, expected):
        super()._set_current(key, path, alias, expected)
        print("storing", key.key_id, flush=True)
        sys.stdin.read()  # killed here: stored and current, not yet finished
""",
).replace(
    "rotate(unkey, store, api_id, key_id)", "rotate(unkey, store, api_id, key_id, alias='svc')"
)


def test_a_rotation_killed_after_storing_is_finished_by_the_next_one(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_emulator_server: EmulatorServer,
    unkey_api_id: str,
    vault_store: VaultStore,
    openbao_server,
) -> None:
    assert KILLED_AFTER_STORING != KILLED_ROTATION
    first = provision(unkey_client, vault_store, unkey_api_id, alias="svc")
    stored_id = rotate_until_killed(
        KILLED_AFTER_STORING, openbao_server, unkey_emulator_server, unkey_api_id, first.key_id
    )
    assert vault_store.get_current(api_id=unkey_api_id, alias="svc").key_id == stored_id

    started_ms = time.time() * 1000
    result = rotate(unkey_client, vault_store, unkey_api_id, first.key_id, alias="svc")
    # The alias named the killed run's key already: it is the rotation's result, adopted.
    assert (result.outcome, result.key_id) == ("resumed", stored_id)
    expires = unkey_emulator.key(first.key_id).expires
    assert expires is not None
    assert expires <= started_ms + 86_400_000 + 61_000 + 5_000
    assert unkey_emulator.key(stored_id).expires is None
    for key_id in (first.key_id, stored_id):
        assert "unkey_secrets_op" not in (unkey_emulator.key(key_id).meta or {})
    assert vault_store.get_current(api_id=unkey_api_id, alias="svc").key_id == result.key_id


def test_an_expired_key_is_not_rotated(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, store: SecretStore
) -> None:
    first = provision(unkey_client, store, unkey_api_id)
    unkey_client.update_key(first.key_id, expires=int(time.time() * 1000) - 1000)
    before = unkey_emulator.calls.copy()
    with pytest.raises(InvalidInputError, match="already expired"):
        rotate(unkey_client, store, unkey_api_id, first.key_id)
    assert (unkey_emulator.calls - before)["keys.rerollKey"] == 0


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ('{"meta":{"requestId":"req_1"},"data":{"keyId":"key_abc123","key":"sk_x"}}', "16-512"),
        ("1234", "16-512"),
        ("sk_" + "a" * 600, "16-512"),
        ("prefix_key_abc123_suffix", "contains the key_id"),
    ],
)
def test_capture_refuses_what_cannot_be_an_unkey_key(
    unkey_api_id: str, vault_store: VaultStore, key: str, problem: str
) -> None:
    with pytest.raises(InvalidInputError, match=problem) as raised:
        capture(vault_store, api_id=unkey_api_id, key_id="key_abc123", key=key)
    assert key not in str(raised.value)
    assert not vault_store.contains(api_id=unkey_api_id, key_id="key_abc123")


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"meta": {"unkey_secrets_op": "x"}}, "meta"),
        ({"meta": {"unkey_secrets_previous_expires": 1}}, "meta"),
        ({"expires": 1_700_000_000}, "expires"),
    ],
)
def test_provision_refuses_reserved_meta_and_past_expiry_before_any_call(
    unkey_client: UnkeyClient,
    unkey_emulator: Emulator,
    unkey_api_id: str,
    vault_store: VaultStore,
    options: dict[str, object],
    field: str,
) -> None:
    before = unkey_emulator.calls.copy()
    with pytest.raises(InvalidInputError) as raised:
        provision(unkey_client, vault_store, unkey_api_id, **options)
    assert raised.value.field == field
    assert unkey_emulator.calls == before


def test_rotate_refuses_a_grace_period_past_unkeys_latest_expiry(
    unkey_client: UnkeyClient, unkey_emulator: Emulator, unkey_api_id: str, vault_store: VaultStore
) -> None:
    first = provision(unkey_client, vault_store, unkey_api_id)
    before = unkey_emulator.calls.copy()
    with pytest.raises(InvalidInputError, match="latest expiry"):
        rotate(
            unkey_client,
            vault_store,
            unkey_api_id,
            first.key_id,
            grace_period=dt.timedelta(days=36500),
        )
    assert unkey_emulator.calls == before
