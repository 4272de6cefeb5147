"""A Vault store keeps its token alive for as long as a job runs (issue 16, item 1).

Against the real OpenBao: AppRole roles and tokens with lifetimes of a few seconds, so that a
job of a few seconds outlives them several times. Before this, a store logged in once and a
job failed with 403 as soon as the role's token TTL ran out.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from unkey_secrets import StoreAccessError, provision
from unkey_secrets.config import KeyReader
from unkey_secrets.stores.vault import VaultStore
from unkey_secrets.stores.vault.settings import VaultSettings
from unkey_secrets.testing.contract import canary_key, random_id
from unkey_secrets.testing.openbao import OpenBaoServer
from unkey_secrets.unkey import UnkeyClient

POLICIES = Path(__file__).resolve().parents[2] / "policies"
AUTH_MOUNT = "t-auto-auth"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Vault settings or token file of the machine running the tests."""
    import os

    for name in list(os.environ):
        if name.startswith(("VAULT_", "UNKEY_SECRETS_VAULT_", "BAO_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture(scope="module")
def root(openbao_server: OpenBaoServer) -> Any:
    client = openbao_server.client()
    client.sys.enable_auth_method("approle", path=AUTH_MOUNT)
    openbao_server.write_policy("auto-writer", (POLICIES / "vault-writer.hcl").read_text())
    openbao_server.write_policy("auto-reader", (POLICIES / "vault-reader.hcl").read_text())
    # Full access under the mount, for the reader test, which reads what it stored.
    openbao_server.write_policy(
        "auto-all", 'path "secret/*" { capabilities = ["create", "read", "update"] }'
    )
    return client


def role(root: Any, name: str, *, ttl: str, max_ttl: str = "1h", **extra: Any) -> dict[str, str]:
    """An AppRole role whose tokens live ``ttl``; its role_id and a secret_id.

    Tokens carry the writer policy only (no ``default`` policy), so the writer policy alone
    must let a token renew itself.
    """
    extra.setdefault("token_policies", ["auto-writer"])
    root.auth.approle.create_or_update_approle(
        name,
        token_ttl=ttl,
        token_max_ttl=max_ttl,
        token_no_default_policy=True,
        mount_point=AUTH_MOUNT,
        **extra,
    )
    role_id = root.auth.approle.read_role_id(name, mount_point=AUTH_MOUNT)["data"]["role_id"]
    secret = root.auth.approle.generate_secret_id(name, mount_point=AUTH_MOUNT)
    return {"role_id": role_id, "secret_id": secret["data"]["secret_id"]}


def approle_settings(server: OpenBaoServer, credentials: dict[str, str]) -> VaultSettings:
    return VaultSettings(
        addr=server.url,
        auth_method="approle",
        auth_mount=AUTH_MOUNT,
        role_id=SecretStr(credentials["role_id"]),
        secret_id=SecretStr(credentials["secret_id"]),
    )


class Seen:
    """Every Vault answer the store's session received: (method, path, status)."""

    def __init__(self, store: VaultStore) -> None:
        self.answers: list[tuple[str, str, int]] = []

        def record(response: Any, *args: Any, **kwargs: Any) -> None:
            path = response.request.path_url.split("/v1/", 1)[1]
            self.answers.append((response.request.method, path, response.status_code))

        store.client.adapter.session.hooks["response"].append(record)

    def refused(self) -> list[str]:
        return [path for _, path, status in self.answers if status in (401, 403)]

    def token_calls(self) -> list[str]:
        return [path for _, path, _ in self.answers if path.startswith("auth/")]


def keep_working(store: VaultStore, seconds: float, every: float = 0.3) -> int:
    """Store a new key every ``every`` seconds for ``seconds``; the number stored."""
    stored = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert store.put(canary_key()).created
        stored += 1
        time.sleep(every)
    return stored


# -- the input ----------------------------------------------------------------------


def test_provision_after_the_approle_token_expired_logs_in_again(
    openbao_server: OpenBaoServer,
    root: Any,
    monkeypatch: pytest.MonkeyPatch,
    unkey_client: UnkeyClient,
    unkey_api_id: str,
) -> None:
    # AppRole with 4 s tokens, configured through the environment only: provision, 5 s, provision.
    credentials = role(root, "four-seconds", ttl="4s")
    monkeypatch.setenv("VAULT_ADDR", openbao_server.url)
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_METHOD", "approle")
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_AUTH_MOUNT", AUTH_MOUNT)
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_ROLE_ID", credentials["role_id"])
    monkeypatch.setenv("UNKEY_SECRETS_VAULT_SECRET_ID", credentials["secret_id"])
    store = VaultStore.from_settings()
    first = provision(unkey_client, store, api_id=unkey_api_id, alias=random_id("svc"))
    time.sleep(5)
    second = provision(unkey_client, store, api_id=unkey_api_id, alias=random_id("svc"))
    assert first.current is not None
    assert second.current is not None
    assert second.key_id != first.key_id


# -- renewing ahead of expiry ---------------------------------------------------------------


# Renewals run at two thirds of a lease; on a loaded machine one may come late, and the store
# then logs in again (a role) or fails (a token). Leases here are long enough (3 s) that a
# renewal has a whole second to be made.


def test_a_renewable_approle_token_is_renewed(openbao_server: OpenBaoServer, root: Any) -> None:
    store = VaultStore(settings=approle_settings(openbao_server, role(root, "r3", ttl="3s")))
    assert keep_working(store, 7.0) >= 15
    assert store.auto_auth is not None
    assert store.auto_auth.renewals >= 2


def test_a_token_at_its_max_ttl_is_replaced_by_a_new_login(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    credentials = role(root, "capped", ttl="2s", max_ttl="3s")
    store = VaultStore(settings=approle_settings(openbao_server, credentials))
    assert keep_working(store, 6.0, every=0.2) >= 20
    assert store.auto_auth is not None
    assert store.auto_auth.logins >= 2


def test_a_renewable_vault_token_outlives_a_quiet_spell_of_twice_its_ttl(
    openbao_server: OpenBaoServer, root: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No request for 7 s: only the renewal thread keeps a 3 s token alive; a token, unlike a
    # role, cannot be had again by logging in.
    monkeypatch.setenv("VAULT_ADDR", openbao_server.url)
    monkeypatch.setenv("VAULT_TOKEN", openbao_server.create_token("auto-writer", ttl="3s"))
    store = VaultStore.from_settings()
    seen = Seen(store)
    store.put(canary_key())
    time.sleep(7)
    assert keep_working(store, 2.0) >= 4
    assert store.auto_auth is not None
    assert store.auto_auth.renewals >= 2
    assert seen.token_calls()[0] == "auth/token/lookup-self"


def test_the_renewal_thread_ends_with_its_store(openbao_server: OpenBaoServer, root: Any) -> None:
    import gc
    import threading

    def watchers() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "unkey-secrets-vault-token"}

    before = watchers()
    store = VaultStore(settings=approle_settings(openbao_server, role(root, "gone", ttl="30s")))
    (thread,) = watchers() - before
    del store
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_a_token_without_expiry_costs_one_lookup(openbao_server: OpenBaoServer) -> None:
    store = VaultStore(
        settings=VaultSettings(addr=openbao_server.url, token=SecretStr(openbao_server.root_token))
    )
    seen = Seen(store)
    for _ in range(5):
        store.put(canary_key())
    assert seen.token_calls() == ["auth/token/lookup-self"]


def test_a_token_that_cannot_be_renewed_is_left_to_expire_quietly(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    answer = root.auth.token.create(
        policies=["auto-writer"], no_default_policy=True, ttl="1s", renewable=False
    )
    settings = VaultSettings(
        addr=openbao_server.url, token=SecretStr(answer["auth"]["client_token"])
    )
    store = VaultStore(settings=settings, preflight=False)
    seen = Seen(store)
    store.put(canary_key())
    time.sleep(1.5)
    with pytest.raises(StoreAccessError, match="check the token"):
        store.put(canary_key())
    # A lookup at the first request, then none and no renewal until the refusal, whose
    # lookup tells an expired token from a policy denial.
    assert seen.token_calls() == ["auth/token/lookup-self", "auth/token/lookup-self"]


# -- after a refusal ------------------------------------------------------------------------


def test_a_revoked_token_is_replaced_and_the_refused_write_sent_once_more(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    store = VaultStore(settings=approle_settings(openbao_server, role(root, "r10m", ttl="10m")))
    seen = Seen(store)
    store.put(canary_key())
    root.auth.token.revoke(store.client.adapter.token)
    key = canary_key()
    assert store.put(key).created
    path = store.key_location(api_id=key.api_id, key_id=key.key_id)
    assert seen.refused() == [f"{store.mount}/data/{path}", "auth/token/lookup-self"]
    metadata = root.secrets.kv.v2.read_secret_metadata(path=path, mount_point=store.mount)
    assert metadata["data"]["current_version"] == 1, "the refused write was never carried out"
    assert store.auto_auth is not None
    assert store.auto_auth.logins == 2


def test_a_refusal_by_policy_costs_no_login_and_is_raised(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    # The token is alive (lookup-self answers): its policy refused the write, which no login
    # changes. Logging in for each refusal left a live token behind each time and used up a
    # secret_id's uses.
    credentials = role(root, "no-writes", ttl="10m", token_policies=["auto-reader"])
    store = VaultStore(settings=approle_settings(openbao_server, credentials), preflight=False)
    seen = Seen(store)
    for _ in range(4):
        with pytest.raises(StoreAccessError, match="check the token and its policy"):
            store.put(canary_key())
    assert store.auto_auth is not None
    assert store.auto_auth.logins == 1
    assert len(seen.refused()) == 4


def test_logins_that_keep_failing_are_paused_not_repeated_per_request(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    credentials = role(root, "one-use-each", ttl="10m", secret_id_num_uses=1)
    store = VaultStore(settings=approle_settings(openbao_server, credentials))
    seen = Seen(store)
    root.auth.token.revoke(store.client.adapter.token)
    for _ in range(5):
        with pytest.raises(StoreAccessError, match="refused the approle login"):
            store.put(canary_key())
    logins = [path for path in seen.token_calls() if path.endswith("/login")]
    assert len(logins) == 1, "one login tried; the pause answers the next four at once"


def test_a_renewable_token_whose_renewal_failed_is_renewed_later(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    # Vault unreachable at the renewal (here: the renewal refused once by a dropped session):
    # the token still lives, so its renewal is tried again rather than given up for good.
    token = openbao_server.create_token("auto-writer", ttl="4s")
    store = VaultStore(settings=VaultSettings(addr=openbao_server.url, token=SecretStr(token)))
    store.put(canary_key())
    auto_auth = store.auto_auth
    assert auto_auth is not None
    real = store.client.auth.token.renew_self
    failures = []

    def renew_fails_once(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise requests.exceptions.ConnectionError("Vault unreachable")
        return real(*args, **kwargs)

    store.client.auth.token.renew_self = renew_fails_once  # type: ignore[method-assign]
    assert keep_working(store, 7.0) >= 10
    assert failures == [1]
    assert auto_auth.renewals >= 1


def test_a_token_file_replaced_after_a_refusal_is_taken_up(
    openbao_server: OpenBaoServer, root: Any, tmp_path: Path
) -> None:
    # A Vault Agent file sink (or vault login) writes a new token to ~/.vault-token.
    token_file = tmp_path / ".vault-token"
    token_file.write_text(openbao_server.create_token("auto-writer", ttl="10m"))
    store = VaultStore(settings=VaultSettings(addr=openbao_server.url))
    store.put(canary_key())
    root.auth.token.revoke(store.client.adapter.token)
    token_file.write_text(openbao_server.create_token("auto-writer", ttl="10m"))
    assert store.put(canary_key()).created


def test_a_forked_child_renews_its_token_itself(
    openbao_server: OpenBaoServer, root: Any, tmp_path: Path
) -> None:
    import gc
    import os

    # A token (no login to fall back on), renewed by the parent until the fork; then the
    # parent drops its store, so only a renewal thread of the child's own keeps it alive.
    token = openbao_server.create_token("auto-writer", ttl="5s")
    store = VaultStore(settings=VaultSettings(addr=openbao_server.url, token=SecretStr(token)))
    store.put(canary_key())
    report = tmp_path / "child.txt"
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            # Quiet for longer than the token lives: only a renewal thread keeps it.
            store.put(canary_key())
            time.sleep(8)
            code = 0 if store.put(canary_key()).created else 1
        except BaseException as exc:  # noqa: BLE001 (reported to the parent, by class)
            report.write_text(f"{type(exc).__name__}: {exc}")
        finally:
            os._exit(code)
    del store
    gc.collect()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, report.read_text() if report.exists() else ""


def test_a_login_refused_after_a_refusal_raises_the_login_error(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    credentials = role(root, "one-use", ttl="10m", secret_id_num_uses=1)
    store = VaultStore(settings=approle_settings(openbao_server, credentials))
    root.auth.token.revoke(store.client.adapter.token)
    with pytest.raises(StoreAccessError, match="refused the approle login") as raised:
        store.put(canary_key())
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


# -- the reader -----------------------------------------------------------------------------


def test_a_reader_keeps_reading_past_its_token_ttl(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    credentials = role(root, "reader", ttl="2s", token_policies=["auto-all", "auto-reader"])
    settings = approle_settings(openbao_server, credentials)
    writer = VaultStore(openbao_server.client())
    key = canary_key()
    writer.put(key)
    reader = KeyReader.vault(settings, max_age=0)
    ends = time.monotonic() + 5.0
    reads = 0
    while time.monotonic() < ends:
        assert reader.get(api_id=key.api_id, key_id=key.key_id).key_id == key.key_id
        reads += 1
        time.sleep(0.3)
    assert reads >= 10
    store = reader.store
    assert isinstance(store, VaultStore)
    assert store.auto_auth is not None
    assert store.auto_auth.renewals >= 2


def test_threads_sharing_a_store_through_an_expiry_all_succeed(
    openbao_server: OpenBaoServer, root: Any
) -> None:
    many_threads = 8
    from concurrent.futures import ThreadPoolExecutor

    store = VaultStore(settings=approle_settings(openbao_server, role(root, "t1", ttl="1s")))
    time.sleep(1.2)  # the first token is gone: every thread meets the expiry at once

    def work(_: int) -> bool:
        return store.put(canary_key()).created

    with ThreadPoolExecutor(many_threads) as pool:
        assert all(pool.map(work, range(many_threads * 4)))
    assert store.auto_auth is not None
    assert store.auto_auth.logins <= 3
