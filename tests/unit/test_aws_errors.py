"""botocore failures become our errors, without the server's text or the plaintext."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore import exceptions as bce
from botocore.stub import Stubber

from tests.unit._aws_client import make_client
from unkey_secrets import (
    InvalidInputError,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from unkey_secrets.stores.aws import SecretsManagerStore
from unkey_secrets.stores.aws.errors import translate
from unkey_secrets.stores.aws.secrets import RotationSecrets, translate_error
from unkey_secrets.testing.contract import canary_key

SERVER_TEXT = "server-message-canary-7d1f"
VALUE_CANARY = "value-canary-3b9e"


@pytest.fixture
def stubbed() -> Iterator[tuple[SecretsManagerStore, Stubber]]:
    client = make_client()
    with Stubber(client) as stubber:
        yield SecretsManagerStore(client), stubber


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("AccessDeniedException", 400, StoreAccessError),
        ("UnrecognizedClientException", 400, StoreAccessError),
        ("InvalidSignatureException", 400, StoreAccessError),
        ("ExpiredTokenException", 400, StoreAccessError),
        ("DecryptionFailure", 400, StoreAccessError),
        ("EncryptionFailure", 400, StoreAccessError),
        ("403", 403, StoreAccessError),  # moto's IAM denial: an XML body, no JSON code
        ("ThrottlingException", 400, StoreUnavailableError),
        ("LimitExceededException", 400, StoreUnavailableError),
        ("InternalServiceError", 500, StoreUnavailableError),
        ("ServiceUnavailable", 503, StoreUnavailableError),
        ("SomethingNew", 502, StoreUnavailableError),
        ("ResourceNotFoundException", 400, SecretNotFoundError),
        ("InvalidRequestException", 400, StoreConflictError),
        ("InvalidParameterException", 400, StoreError),
    ],
)
def test_client_error_codes(
    stubbed: tuple[SecretsManagerStore, Stubber],
    code: str,
    status: int,
    expected: type[Exception],
) -> None:
    store, stubber = stubbed
    key = canary_key()
    stubber.add_client_error(
        "get_secret_value",
        service_error_code=code,
        service_message=f"{SERVER_TEXT} {key.secret.reveal()}",
        http_status_code=status,
    )
    with pytest.raises(expected) as raised:
        store.get(api_id=key.api_id, key_id=key.key_id)
    error = raised.value
    assert type(error) is expected
    name = f"unkey/{key.api_id}/{key.key_id}"
    assert code in str(error)
    assert name in str(error)
    assert error.location == name
    assert error.store == "aws"
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for leaked in (SERVER_TEXT, key.secret.reveal()):
        assert leaked not in rendered
        assert leaked not in repr(error.args)
    assert error.__cause__ is None
    assert error.__context__ is None


def test_a_param_validation_error_never_shows_its_values() -> None:
    client = make_client()
    key = canary_key()

    def spoil(params: dict[str, Any], **_: Any) -> None:
        # Make botocore's own validation fail on the parameter that holds the plaintext.
        params["SecretString"] = [params["SecretString"]]

    client.meta.events.register("provide-client-params.secretsmanager.CreateSecret", spoil)
    with Stubber(client) as stubber:
        stubber.add_response("create_secret", {"ARN": "arn:aws:secretsmanager:x", "Name": "n"})
        store = SecretsManagerStore(client)
        with pytest.raises(InvalidInputError) as raised:
            store.put(key)
    error = raised.value
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    assert key.secret.reveal() not in rendered
    assert "CreateSecret" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None


def test_botocore_really_would_have_shown_the_value() -> None:
    # The reason for the test above: the untranslated error carries the parameter value.
    client = make_client()
    with pytest.raises(bce.ParamValidationError) as raised:
        client.create_secret(Name="n", SecretString=["canary-value-in-report"])  # type: ignore[arg-type]
    assert "canary-value-in-report" in str(raised.value)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), StoreUnavailableError),
        (bce.ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"), StoreUnavailableError),
        (bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), StoreUnavailableError),
        (
            bce.ConnectionClosedError(endpoint_url="http://127.0.0.1:9"),
            StoreUnavailableError,
        ),
        (bce.NoCredentialsError(), StoreAccessError),
        (bce.SSLError(endpoint_url="https://x", error="bad cert"), StoreError),
    ],
)
def test_transport_errors(error: Exception, expected: type[Exception]) -> None:
    class Failing:
        meta = None

        def describe_secret(self, **_: Any) -> Any:
            raise error

        def create_secret(self, **_: Any) -> Any:
            raise error

    store = SecretsManagerStore(Failing())
    with pytest.raises(expected) as raised:
        store.put(canary_key())
    assert type(raised.value) is expected
    assert raised.value.__context__ is None


def test_a_read_timeout_says_the_write_may_have_happened() -> None:
    class Failing:
        def create_secret(self, **_: Any) -> Any:
            raise bce.ReadTimeoutError(endpoint_url="http://127.0.0.1:9")

    with pytest.raises(StoreUnavailableError, match="may have been carried out"):
        SecretsManagerStore(Failing()).put(canary_key())


def _client_error(code: str, status: int = 400) -> Exception:
    return bce.ClientError(
        {
            "Error": {"Code": code, "Message": f"{SERVER_TEXT} {VALUE_CANARY}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "AnyOperation",
    )


#: The errors the store and the rotation Lambda once classified apart, and one they agreed on.
COMMON_ERRORS: list[tuple[str, Callable[[], Exception], type[Exception]]] = [
    ("NoCredentialsError", bce.NoCredentialsError, StoreAccessError),
    (
        "ParamValidationError",
        lambda: bce.ParamValidationError(report=f"Invalid type for SecretString: {VALUE_CANARY}"),
        InvalidInputError,
    ),
    ("ExpiredTokenException", lambda: _client_error("ExpiredTokenException"), StoreAccessError),
    ("DecryptionFailure", lambda: _client_error("DecryptionFailure"), StoreAccessError),
    (
        "InvalidRequestException",
        lambda: _client_error("InvalidRequestException"),
        StoreConflictError,
    ),
    (
        "TooManyRequestsException",
        lambda: _client_error("TooManyRequestsException"),
        StoreUnavailableError,
    ),
    ("AccessDeniedException", lambda: _client_error("AccessDeniedException"), StoreAccessError),
]


class _Raising:
    """A Secrets Manager client double whose every call raises a fresh ``make()``."""

    meta = None

    def __init__(self, make: Callable[[], Exception]) -> None:
        self.make = make

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def method(**_: Any) -> Any:
            raise self.make()

        return method


def _assert_clean(error: BaseException) -> None:
    rendered = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    for leaked in (SERVER_TEXT, VALUE_CANARY):
        assert leaked not in rendered
        assert leaked not in repr(error.args)
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.mark.parametrize(
    ("make", "expected"),
    [pytest.param(make, expected, id=name) for name, make, expected in COMMON_ERRORS],
)
def test_the_store_and_the_lambda_classify_alike(
    make: Callable[[], Exception], expected: type[Exception]
) -> None:
    key = canary_key()
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:unkey/x-AbCdEf"
    assert type(translate(make(), operation="GetSecretValue", location=arn)) is expected

    with pytest.raises(expected) as by_store:
        SecretsManagerStore(_Raising(make)).get(api_id=key.api_id, key_id=key.key_id)
    with pytest.raises(expected) as by_lambda:
        RotationSecrets(_Raising(make)).put_pending(arn, "t" * 32, f'{{"k":"{VALUE_CANARY}"}}')

    assert type(by_store.value) is type(by_lambda.value) is expected
    for error in (by_store.value, by_lambda.value):
        _assert_clean(error)
    assert type(translate_error(make(), "GetSecretValue", arn)) is expected
    assert translate_error(ValueError(VALUE_CANARY), "GetSecretValue", arn) is None
