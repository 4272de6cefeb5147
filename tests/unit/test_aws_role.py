"""A role to assume: validation, settings names, botocore's refreshable credentials, errors.

STS answers through botocore's Stubber; Secrets Manager through a ``before-send`` hook that
records the request's Authorization header (signed with the credentials in use) and answers
as the service would, so no request leaves the process.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from tests.unit._aws_client import make_client
from unkey_secrets import (
    ConfigurationError,
    InvalidInputError,
    KeyRef,
    StoreAccessError,
    StoreUnavailableError,
)
from unkey_secrets.settings import AwsSettings, load_settings
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.client import AssumeRole, AwsSession, refresh_windows

ROLE = "arn:aws:iam::111122223333:role/unkey-reader"
EXTERNAL_ID = "ext-canary-5f2a9c"
SERVER_TEXT = "sts-message-canary-91c4"
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "UNKEY_SECRETS_AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDCHAINCHAINCHAIN1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "chain-secret")
    monkeypatch.setenv("AWS_REGION", "us-east-1")


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("role_arn", "arn:aws:iam::1111:role/short-account"),
        ("role_arn", "arn:aws:iam::111122223333:user/not-a-role"),
        ("role_arn", "arn:aws:sts::111122223333:assumed-role/r/s"),
        ("role_arn", "just-a-name"),
        ("duration_seconds", 899),
        ("duration_seconds", 43_201),
        ("duration_seconds", True),
        ("role_session_name", "x"),
        ("role_session_name", "has space"),
        ("role_session_name", "n" * 65),
        ("external_id", "x"),
        ("external_id", "has space " + EXTERNAL_ID),
        ("external_id", "e" * 1225),
    ],
)
def test_bad_role_values_are_refused_without_echoing_them(field: str, value: Any) -> None:
    arguments: dict[str, Any] = {"role_arn": ROLE, field: value}
    with pytest.raises(InvalidInputError) as raised:
        AssumeRole(**arguments)
    assert field in str(raised.value)
    if isinstance(value, str) and len(value) > 3:
        assert value not in str(raised.value)


def test_good_role_values() -> None:
    role = AssumeRole(
        role_arn="arn:aws-us-gov:iam::111122223333:role/team/path/unkey-reader",
        external_id="a:b/c=d+e@f.g-h_i,j",
        role_session_name="svc@host.1",
        duration_seconds=900,
    )
    assert role.assume_role_arguments() == {
        "RoleSessionName": "svc@host.1",
        "ExternalId": "a:b/c=d+e@f.g-h_i,j",
        "DurationSeconds": 900,
    }
    assert EXTERNAL_ID not in repr(AssumeRole(ROLE, external_id=EXTERNAL_ID))
    assert AssumeRole(ROLE).assume_role_arguments() == {"RoleSessionName": "unkey-secrets"}


def test_refresh_windows_leave_a_short_session_most_of_its_life() -> None:
    assert refresh_windows(None) == (900, 600)  # STS's default hour: botocore's own windows
    assert refresh_windows(43_200) == (900, 600)
    assert refresh_windows(900) == (300, 225)
    assert refresh_windows(1800) == (600, 450)


def test_settings_read_our_names_and_not_aws_role_arn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::999999999999:role/web-identity")
    monkeypatch.setenv("AWS_ROLE_SESSION_NAME", "web-identity-session")
    assert AwsSettings().role_arn is None
    assert AwsSettings().role_session_name is None
    monkeypatch.setenv("UNKEY_SECRETS_AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_EXTERNAL_ID", EXTERNAL_ID)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_ROLE_SESSION_NAME", "billing-svc")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_DURATION_SECONDS", "1800")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "https://sts.eu-west-1.amazonaws.com")
    monkeypatch.setenv("UNKEY_SECRETS_AWS_READ_REGIONS", "eu-west-1, eu-central-1")
    settings = AwsSettings()
    assert settings.role_arn == ROLE
    assert settings.external_id == EXTERNAL_ID
    assert settings.role_session_name == "billing-svc"
    assert settings.duration_seconds == 1800
    assert settings.sts_endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    assert settings.read_regions == ("eu-west-1", "eu-central-1")
    assert EXTERNAL_ID not in repr(settings)
    monkeypatch.setenv("UNKEY_SECRETS_AWS_READ_REGIONS", '["us-east-2"]')
    assert AwsSettings().read_regions == ("us-east-2",)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("UNKEY_SECRETS_AWS_ROLE_ARN", "arn:aws:iam::canary:role/x"),
        ("UNKEY_SECRETS_AWS_EXTERNAL_ID", "has space canary"),
        ("UNKEY_SECRETS_AWS_ROLE_SESSION_NAME", "has space canary"),
        ("UNKEY_SECRETS_AWS_DURATION_SECONDS", "60"),
        ("UNKEY_SECRETS_AWS_READ_REGIONS", "eu-west-1,canary"),
        ("UNKEY_SECRETS_AWS_READ_REGIONS", "eu-west-1,eu-west-1"),
        ("AWS_ENDPOINT_URL_STS", "http://sts.canary.example.test"),
    ],
)
def test_bad_role_settings_are_configuration_errors(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=variable) as raised:
        load_settings(AwsSettings)
    assert "canary" not in str(raised.value)


def test_role_options_without_a_role_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="external_id"):
        SecretsManagerStore(region="us-east-1", external_id=EXTERNAL_ID)
    with pytest.raises(InvalidInputError, match="duration_seconds"):
        SecretsManagerStore(settings=AwsSettings(region="us-east-1", duration_seconds=900))


def test_a_role_with_a_client_passed_in_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="client passed in"):
        SecretsManagerStore(make_client(), role_arn=ROLE)
    with pytest.raises(ConfigurationError, match="client passed in"):
        SecretsManagerStore(make_client(), settings=AwsSettings(role_arn=ROLE))


def test_no_credentials_to_assume_the_role_with(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    # No instance metadata to ask either: a request to it fails at once.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(ConfigurationError, match="no AWS credentials to assume"):
        SecretsManagerStore(region="us-east-1", role_arn=ROLE)


def test_a_plain_http_sts_endpoint_to_a_remote_host_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(InvalidInputError, match="sts_endpoint_url"):
        SecretsManagerStore(
            region="us-east-1", role_arn=ROLE, sts_endpoint_url="http://sts.example.test"
        )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://sm.example.test")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://203.0.113.5:8080")
    with pytest.raises(ConfigurationError, match="STS endpoint") as raised:
        SecretsManagerStore(region="us-east-1", role_arn=ROLE)
    assert "203.0.113.5" not in str(raised.value)


# -- the credentials in use -----------------------------------------------------------------


def _credentials(number: int, expires: dt.datetime) -> dict[str, Any]:
    return {
        "Credentials": {
            "AccessKeyId": f"ASIAROLEKEY{number:09d}",
            "SecretAccessKey": f"role-secret-{number}",
            "SessionToken": f"role-token-{number}",
            "Expiration": expires,
        },
        "AssumedRoleUser": {
            "AssumedRoleId": "AROAEXAMPLE:unkey-secrets",
            "Arn": "arn:aws:sts::111122223333:assumed-role/unkey-reader/unkey-secrets",
        },
    }


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


class _StubbedSts(AwsSession):
    """The role's STS clients answer from ``answers`` (botocore's Stubber), in order."""

    answers: list[tuple[str, Any]]
    requests: list[dict[str, Any]]

    def _sts_creator(self, service_name: str, **kwargs: Any) -> Any:
        client = super()._sts_creator(service_name, **kwargs)
        self.requests.append(kwargs)
        stubber = Stubber(client)
        kind, answer = self.answers.pop(0)
        expected = {"RoleArn": ROLE, **self.role.assume_role_arguments()} if self.role else None
        if kind == "ok":
            stubber.add_response("assume_role", answer, expected)
        else:
            stubber.add_client_error(
                "assume_role",
                service_error_code=kind,
                service_message=SERVER_TEXT,
                http_status_code=answer,
                expected_params=expected,
            )
        stubber.activate()
        return client


def _session(role: AssumeRole, answers: list[tuple[str, Any]], clock: _Clock) -> _StubbedSts:
    session = _StubbedSts.__new__(_StubbedSts)
    session.answers = answers
    session.requests = []
    AwsSession.__init__(
        session,
        role=role,
        region="us-east-1",
        sts_endpoint_url="https://sts.us-east-1.amazonaws.com",
        time_fetcher=clock,
    )
    return session


class _Recorder:
    """A before-send hook: records the key id each request was signed with, answers not found."""

    def __init__(self) -> None:
        self.key_ids: list[str] = []
        self.tokens: list[str | None] = []

    def __call__(self, request: Any, **kwargs: Any) -> AWSResponse:
        authorization = request.headers["Authorization"].decode()
        self.key_ids.append(authorization.split("Credential=")[1].split("/")[0])
        token = request.headers.get("X-Amz-Security-Token")
        self.tokens.append(token.decode() if token is not None else None)
        body = json.dumps({"__type": "ResourceNotFoundException", "message": "nope"}).encode()
        return AWSResponse(request.url, 400, {}, _Raw(body))


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


def _store(session: AwsSession, recorder: _Recorder) -> SecretsManagerStore:
    client = session.client("us-east-1", endpoint_url="https://sm.example.test")
    client.meta.events.register("before-send.secrets-manager", recorder)
    return SecretsManagerStore(client, preflight=False)


def _read(store: SecretsManagerStore) -> None:
    assert store.read_rotation(api_id="api_1", key_id="key_1") is None


def test_requests_are_signed_with_the_role_and_renewed_before_expiry() -> None:
    clock = _Clock()
    role = AssumeRole(ROLE, external_id=EXTERNAL_ID, duration_seconds=900)
    expires = T0 + dt.timedelta(seconds=900)
    answers = [
        ("ok", _credentials(1, expires)),
        ("ok", _credentials(2, expires + dt.timedelta(seconds=700))),
    ]
    session = _session(role, answers, clock)
    recorder = _Recorder()
    store = _store(session, recorder)
    assert session.requests == [], "nothing is asked of STS before the first request"
    _read(store)
    clock.now = T0 + dt.timedelta(seconds=590)  # 310 s left: outside the 300 s window
    _read(store)
    clock.now = T0 + dt.timedelta(seconds=700)  # 200 s left: inside it
    _read(store)
    _read(store)
    assert recorder.key_ids == [
        "ASIAROLEKEY000000001",
        "ASIAROLEKEY000000001",
        "ASIAROLEKEY000000002",
        "ASIAROLEKEY000000002",
    ]
    assert recorder.tokens == ["role-token-1", "role-token-1", "role-token-2", "role-token-2"]
    # Each AssumeRole was signed with the chain's credentials.
    assert [r["aws_access_key_id"] for r in session.requests] == ["AKIDCHAINCHAINCHAIN1"] * 2
    assert answers == []


def test_an_advisory_refresh_that_fails_keeps_the_current_credentials(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    role = AssumeRole(ROLE, duration_seconds=3600)
    expires = T0 + dt.timedelta(seconds=3600)
    answers = [
        ("ok", _credentials(1, expires)),
        ("Throttling", 400),
        ("ok", _credentials(3, expires + dt.timedelta(seconds=3600))),
    ]
    session = _session(role, answers, clock)
    recorder = _Recorder()
    store = _store(session, recorder)
    _read(store)
    clock.now = expires - dt.timedelta(seconds=800)  # advisory (900 s) but not mandatory (600)
    with caplog.at_level(logging.WARNING):
        _read(store)
    clock.now = expires - dt.timedelta(seconds=500)  # mandatory: renewed before signing
    _read(store)
    assert recorder.key_ids == ["ASIAROLEKEY000000001"] * 2 + ["ASIAROLEKEY000000003"]
    assert SERVER_TEXT not in caplog.text
    assert "role-secret" not in caplog.text


@pytest.mark.parametrize(
    ("code", "status", "error", "hint"),
    [
        ("AccessDenied", 403, StoreAccessError, "trust policy"),
        ("ValidationError", 400, StoreAccessError, "maximum session duration"),
        ("ExpiredToken", 400, StoreAccessError, "expired"),
        ("Throttling", 400, StoreUnavailableError, "renewed"),
        ("InternalFailure", 500, StoreUnavailableError, "renewed"),
    ],
)
def test_a_failed_assume_role_is_our_error_without_aws_text(
    code: str, status: int, error: type[Exception], hint: str
) -> None:
    role = AssumeRole(ROLE, external_id=EXTERNAL_ID)
    session = _session(role, [(code, status)], _Clock())
    recorder = _Recorder()
    store = _store(session, recorder)
    with pytest.raises(error) as raised:
        _read(store)
    text = str(raised.value)
    assert ROLE in text
    assert code in text
    assert hint in text
    assert SERVER_TEXT not in text
    assert EXTERNAL_ID not in text
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    assert recorder.key_ids == [], "nothing was sent to Secrets Manager"


def test_credentials_sts_returns_already_expired_are_our_error_not_a_runtime_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # This machine's clock ahead of STS's by more than the session: botocore finds the fresh
    # credentials expired and raised a bare RuntimeError out of the store.
    clock = _Clock()
    role = AssumeRole(ROLE, duration_seconds=900)
    past = T0 - dt.timedelta(seconds=1)
    session = _session(role, [("ok", _credentials(n, past)) for n in range(4)], clock)
    recorder = _Recorder()
    store = _store(session, recorder)
    with caplog.at_level(logging.WARNING):
        with pytest.raises(StoreAccessError, match="clock") as raised:
            _read(store)
        outcomes = store.get_many([KeyRef(api_id="api_1", alias=a) for a in ("a", "b")])
    assert ROLE in str(raised.value)
    assert raised.value.__cause__ is None
    assert all(isinstance(o, StoreAccessError) for o in outcomes)
    assert recorder.key_ids == [], "nothing was sent with expired credentials"
    assert "role-secret" not in caplog.text
    assert "role-token" not in caplog.text


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [("Throttling", 400, StoreUnavailableError), ("AccessDenied", 403, StoreAccessError)],
)
def test_a_batch_whose_role_cannot_be_assumed_asks_sts_once_per_call_not_per_name(
    code: str, status: int, error: type[Exception]
) -> None:
    # Each name read alone after the batch failed asked STS again: 42 AssumeRole calls for 40
    # keys while STS throttled (a warm-up of 10,000 keys: 10,500).
    role = AssumeRole(ROLE)
    session = _session(role, [(code, status) for _ in range(60)], _Clock())
    recorder = _Recorder()
    store = _store(session, recorder)
    refs = [KeyRef(api_id="api_1", alias=f"svc{n}") for n in range(40)]
    outcomes = store.get_many(refs)
    assert all(isinstance(o, error) for o in outcomes), {type(o).__name__ for o in outcomes}
    assert len({id(o) for o in outcomes}) == len(outcomes), "each ref its own error object"
    assert all(ROLE in str(o) and SERVER_TEXT not in str(o) for o in outcomes)
    assert len(session.requests) <= 2, "one AssumeRole per BatchGetSecretValue call"
    assert recorder.key_ids == []


def test_the_chains_own_web_identity_role_is_not_assumed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_ROLE_ARN", ROLE)
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    session = AwsSession(role=AssumeRole(ROLE), region="us-east-1")
    assert session.core is session._chain
    # Another role is assumed with the web identity role's credentials.
    other = AwsSession(
        role=AssumeRole("arn:aws:iam::444455556666:role/secrets-reader"), region="us-east-1"
    )
    assert other.core is not other._chain


def test_a_profile_with_the_role_is_not_assumed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    config = tmp_path / "config"
    config.write_text(
        f"[profile reader]\nrole_arn = {ROLE}\nsource_profile = base\n"
        "[profile base]\naws_access_key_id = AKIDBASE\naws_secret_access_key = base\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    session = AwsSession(profile="reader", role=AssumeRole(ROLE), region="us-east-1")
    assert session.core is session._chain
