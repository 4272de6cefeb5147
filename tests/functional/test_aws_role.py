"""A role to assume, on a real moto server: STS AssumeRole, then Secrets Manager as the role.

moto serves each account apart: a request signed with the role's credentials reads and writes
the role's account (111122223333), a request signed with the chain's dummy credentials moto's
default account. So a secret found through the store was read with the role's credentials,
and the key id in each request's Authorization header (recorded by a ``before-send`` hook)
is the one moto's AssumeRole handed out.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from unkey_secrets import SecretNotFoundError
from unkey_secrets.config import KeyReader
from unkey_secrets.settings import AwsSettings
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.client import AssumeRole, AwsSession
from unkey_secrets.testing.contract import canary_key, random_id
from unkey_secrets.testing.moto import MotoServer

ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/unkey-reader"
EXTERNAL_ID = "unkey-ext-7f3a"


def _assumed(session_name: str) -> list[Any]:
    """moto's record of each AssumeRole of ROLE with ``session_name``, oldest first."""
    from moto.sts.models import sts_backends

    roles = sts_backends[ACCOUNT]["aws"].assumed_roles
    return [r for r in roles if r.role_arn == ROLE and r.session_name == session_name]


class _Signatures:
    """A before-send hook recording the access key id each request was signed with."""

    def __init__(self) -> None:
        self.key_ids: list[str] = []

    def __call__(self, request: Any, **kwargs: Any) -> None:
        authorization = request.headers["Authorization"].decode()
        self.key_ids.append(authorization.split("Credential=")[1].split("/")[0])


def test_the_store_reads_and_writes_as_the_role(
    moto_server: MotoServer, aws_env: dict[str, str]
) -> None:
    session_name = random_id("svc")
    store = SecretsManagerStore(
        sts_endpoint_url=moto_server.url,
        role_arn=ROLE,
        external_id=EXTERNAL_ID,
        role_session_name=session_name,
        duration_seconds=900,
    )
    signatures = _Signatures()
    store.client.meta.events.register("before-send.secrets-manager", signatures)
    key = canary_key(alias="billing")
    location = store.put(key)
    store.set_current(key, alias="billing", expected=None)
    assert f":{ACCOUNT}:secret:" in location.location
    assert store.get_current(api_id=key.api_id, alias="billing").key_id == key.key_id
    (assumed,) = _assumed(session_name)
    assert (assumed.external_id, assumed.role_arn) == (EXTERNAL_ID, ROLE)
    assert set(signatures.key_ids) == {assumed.access_key_id}
    assert assumed.access_key_id.startswith("ASIA")
    # The chain's own credentials are another account: the secret is not there.
    with pytest.raises(SecretNotFoundError):
        SecretsManagerStore(moto_server.client("secretsmanager")).get(
            api_id=key.api_id, key_id=key.key_id
        )


def test_a_reader_built_from_settings_reads_as_the_role(
    moto_server: MotoServer, aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    session_name = random_id("svc")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_server.url)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_EXTERNAL_ID", EXTERNAL_ID)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_ROLE_SESSION_NAME", session_name)
    writer = SecretsManagerStore.from_settings()
    key = canary_key(alias="billing")
    writer.put(key)
    writer.set_current(key, alias="billing", expected=None)
    reader = KeyReader.secrets_manager(AwsSettings())
    info = reader.key(api_id=key.api_id, alias="billing").info()
    assert (info.key_id, info.region) == (key.key_id, moto_server.region)
    assert f":{ACCOUNT}:secret:" in info.location
    # One AssumeRole per credential source (the writer's and the reader's), none per request.
    assert len(_assumed(session_name)) == 2


def test_credentials_near_expiry_are_renewed(
    moto_server: MotoServer, aws_env: dict[str, str]
) -> None:
    # moto's credentials expire duration_seconds after the real now; botocore compares the
    # expiry with this clock, moved forward and back by the test.
    offset = dt.timedelta(0)

    def clock() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + offset

    session_name = random_id("svc")
    role = AssumeRole(ROLE, role_session_name=session_name, duration_seconds=900)
    session = AwsSession(role=role, sts_endpoint_url=moto_server.url, time_fetcher=clock)
    store = SecretsManagerStore(session.client(), preflight=False)
    signatures = _Signatures()
    store.client.meta.events.register("before-send.secrets-manager", signatures)

    def read() -> None:
        assert store.read_rotation(api_id="api_1", key_id="key_1") is None

    read()
    offset = dt.timedelta(seconds=500)  # about 400 s left: outside the 300 s window
    read()
    offset = dt.timedelta(seconds=700)  # about 200 s left: renewed before signing
    read()
    offset = dt.timedelta(0)
    read()
    first, second = (r.access_key_id for r in _assumed(session_name))
    assert signatures.key_ids == [first, first, second, second]
