"""Translate botocore failures into the unkey-secrets exception tree, without their text.

A :class:`botocore.exceptions.ClientError` carries the server's message, and
:class:`botocore.exceptions.ParamValidationError` can quote request parameters, SecretString
included. Neither text is copied into our errors and neither exception is chained: messages name
the operation, the error code and the secret name only.

:func:`check_client_endpoint` refuses a client that would send values without TLS, whichever
setting gave it its endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from ..._errors import (
    ConfigurationError,
    InvalidInputError,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoredValueError,
    StoreError,
    StoreUnavailableError,
    UnkeySecretsError,
)
from ..._validate import require_tls_unless_loopback

__all__ = [
    "ENDPOINT_SETTINGS",
    "STORE",
    "ResourceExistsError",
    "botocore_errors",
    "call",
    "check_client_endpoint",
    "error_code",
    "translate",
]

STORE = "aws"
_T = TypeVar("_T")

_ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "UnauthorizedOperation",
        "DecryptionFailure",
        "EncryptionFailure",
        "KMSAccessDenied",
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


#: Where a boto3 client's Secrets Manager endpoint can come from, named in the refusal.
ENDPOINT_SETTINGS = (
    "the Secrets Manager endpoint (endpoint_url, AWS_ENDPOINT_URL, "
    "AWS_ENDPOINT_URL_SECRETS_MANAGER or endpoint_url in the AWS config file)"
)


def check_client_endpoint(client: Any) -> None:
    """Raise :class:`~unkey_secrets.ConfigurationError` unless ``client`` talks TLS.

    boto3 takes its endpoint from the arguments, the environment or the config file; whichever
    it was, the values we send (the plaintext key) must not travel as plain http to anything
    but a loopback host. Checked once the client is built, before any request. The URL is not
    quoted (it may carry credentials). A client without a string ``meta.endpoint_url`` (a test
    double) is not checked.
    """
    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", None)
    if not isinstance(endpoint, str):
        return
    try:
        require_tls_unless_loopback(endpoint, ENDPOINT_SETTINGS)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


class ResourceExistsError(StoreConflictError):
    """Secrets Manager's ResourceExistsException; the store resolves it by describing the secret."""


def _aws_message(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    message = error.get("Message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else ""


#: An AWS error code's shape (``ResourceNotFoundException``, ``Throttling``, moto's ``403``).
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def error_code(exc: BaseException) -> str | None:
    """Return the error code of a ``ClientError`` (or anything shaped like one), else None.

    The code is the server's text, and our errors quote it: one that is not shaped like an
    AWS error code (too long, line breaks, any other text a broken or hostile endpoint may
    answer) counts as none.
    """
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    error = response.get("Error")
    if not isinstance(error, dict):
        return None
    code = error.get("Code")
    return code if isinstance(code, str) and _CODE.fullmatch(code) else None


def botocore_errors() -> tuple[type[BaseException], ...]:
    """Return botocore's two roots, ``(BotoCoreError, ClientError)``, importing them now.

    Raises :class:`~unkey_secrets.ConfigurationError` when botocore is not installed.
    """
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        raise ConfigurationError(
            "the AWS Secrets Manager store needs boto3: pip install 'unkey-secrets[aws]'"
        ) from None
    return (BotoCoreError, ClientError)


def call(method: Callable[..., _T], *, operation: str, location: str, **params: Any) -> _T:
    """Return ``method(**params)``; a botocore error becomes :func:`translate`'s error.

    The translated error is raised outside the ``except`` block, so the botocore error is
    neither its cause nor its context (a ConnectionClosedError keeps the request, and its body
    holds the SecretString). An answer botocore cannot decode is a
    :class:`~unkey_secrets.StoredValueError` for a read and a lost answer
    (:class:`~unkey_secrets.StoreUnavailableError`) for a write. Any other exception passes
    through as it is. botocore is imported only when something was raised.
    """
    failure: UnkeySecretsError
    try:
        return method(**params)
    except botocore_errors() as exc:
        failure = translate(exc, operation=operation, location=location)
    except (ValueError, RecursionError, MemoryError) as exc:
        # botocore could not decode the answer (a byte that is not UTF-8, JSON nested too
        # deep): its error holds the whole body, a SecretString included. Only the class goes.
        failure = _undecodable(type(exc).__name__, operation=operation, location=location)
    raise failure


def _undecodable(kind: str, *, operation: str, location: str) -> UnkeySecretsError:
    from ...transport.policy import changes_state

    what = f"the answer to {operation} on {location} could not be decoded ({kind})"
    if changes_state(operation):
        # Sent, and perhaps carried out: a lost answer, which the flows settle by reading back.
        return StoreUnavailableError(
            f"{what}, so the answer is lost; the write may have been carried out",
            store=STORE,
            location=location,
        )
    return StoredValueError(what, store=STORE, location=location)


def _status(exc: BaseException) -> int | None:
    response: Any = getattr(exc, "response", None)
    try:
        status = response["ResponseMetadata"]["HTTPStatusCode"]
    except (TypeError, KeyError):
        return None
    return status if isinstance(status, int) else None


def translate(exc: BaseException, *, operation: str, location: str) -> UnkeySecretsError:
    """Return the error to raise for botocore's ``exc`` during ``operation`` on ``location``.

    The result never quotes ``exc``: raise it with ``from None`` (or outside the ``except``).
    """
    from botocore import exceptions as bce

    from ...transport.policy import TransportBreachError, lost_answer

    where = f"{operation} on {location}"
    if isinstance(exc, TransportBreachError):
        # The request may have been carried out: its answer is lost, as with a dropped
        # connection, and the flows settle it the same way (read back, never guessed).
        return StoreUnavailableError(
            lost_answer(where, operation, exc),
            store=STORE,
            location=location,
        )
    if isinstance(exc, bce.ClientError):
        code = error_code(exc) or "Unknown"
        status = _status(exc)
        message = f"Secrets Manager refused {where}: {code}"
        if code == "ResourceNotFoundException":
            return SecretNotFoundError(
                f"no secret at {location} ({operation}: {code})", store=STORE, location=location
            )
        if code == "ResourceExistsException":
            return ResourceExistsError(message, store=STORE, location=location)
        if code == "InvalidParameterException" and operation == "UpdateSecretVersionStage":
            # The label is not on the version named as holding it: the secret moved meanwhile.
            return StoreConflictError(message, store=STORE, location=location)
        if code == "InvalidRequestException":
            if "scheduled for deletion" in _aws_message(exc):
                # AWS's own words, which never quote a value: say what to do about it.
                return StoreConflictError(
                    f"{location} is scheduled for deletion ({operation}: {code}): restore it "
                    f"(aws secretsmanager restore-secret --secret-id {location}) or wait until "
                    "its recovery window ends, then run again",
                    store=STORE,
                    location=location,
                )
            # E.g. a version stage is not where we expected it: the target is in a state we
            # will not write over.
            return StoreConflictError(message, store=STORE, location=location)
        if code in _ACCESS_CODES or status in (401, 403):
            return StoreAccessError(message, store=STORE, location=location)
        if code in _UNAVAILABLE_CODES or (status is not None and (status == 429 or status >= 500)):
            return StoreUnavailableError(message, store=STORE, location=location)
        return StoreError(message, store=STORE, location=location)
    if isinstance(exc, bce.ParamValidationError):
        # Its text can quote parameter values, the plaintext among them.
        return InvalidInputError("request", f"botocore refused the parameters of {where}")
    if isinstance(exc, bce.SSLError):
        return StoreError(f"TLS failure during {where}", store=STORE, location=location)
    if isinstance(exc, bce.ReadTimeoutError):
        return StoreUnavailableError(
            f"no answer to {where} in time; the request may have been carried out, and "
            "repeating it is safe (the write is idempotent)",
            store=STORE,
            location=location,
        )
    if isinstance(exc, (bce.ConnectionError, bce.HTTPClientError)):
        return StoreUnavailableError(
            f"could not reach Secrets Manager for {where} ({type(exc).__name__})",
            store=STORE,
            location=location,
        )
    if isinstance(
        exc,
        (
            bce.NoCredentialsError,
            bce.PartialCredentialsError,
            bce.CredentialRetrievalError,
            bce.TokenRetrievalError,
        ),
    ):
        return StoreAccessError(
            f"no usable AWS credentials for {where} ({type(exc).__name__})",
            store=STORE,
            location=location,
        )
    return StoreError(
        f"botocore failed during {where} ({type(exc).__name__})", store=STORE, location=location
    )
