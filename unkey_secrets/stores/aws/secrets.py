"""The Secrets Manager calls a rotation makes, over a boto3 client, with errors translated.

botocore is imported only when an error has to be classified, so importing this module stays
cheap. Values read here are parsed straight into :class:`~unkey_secrets.StoredKey` (the key is
masked) and no error text ever quotes a value: Secrets Manager's own messages name versions and
labels only, and a malformed value is reported by :func:`~unkey_secrets._payload.parse_key_json`
without its content.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..._errors import (
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ..._models import StoredKey
from ..._payload import parse_key_json
from ..._redact import MaskedText

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "RotationSecrets",
    "SecretState",
    "error_code",
    "translate_error",
]

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
_STORE = "aws"
_T = TypeVar("_T")

_ACCESS = frozenset({"AccessDeniedException", "UnrecognizedClientException", "KMSAccessDenied"})
_TRANSIENT = frozenset(
    {"ThrottlingException", "InternalServiceError", "InternalFailure", "ServiceUnavailable"}
)
_NOT_FOUND = frozenset({"ResourceNotFoundException"})
_CONFLICT = frozenset({"ResourceExistsException"})


@dataclass(frozen=True)
class SecretState:
    """What DescribeSecret says about the secret: its ARN, rotation flag, labels and tags."""

    arn: str
    name: str
    rotation_enabled: bool
    versions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def stages(self, version_id: str) -> tuple[str, ...] | None:
        """Return the labels on ``version_id``, or None when the secret has no such version."""
        return self.versions.get(version_id)

    def holder_of(self, stage: str) -> str | None:
        """Return the version that carries ``stage``, if any."""
        for version_id, stages in self.versions.items():
            if stage in stages:
                return version_id
        return None


class RotationSecrets:
    """The handful of Secrets Manager operations the rotation protocol needs."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe(self, secret_id: str) -> SecretState:
        """DescribeSecret: rotation flag, version labels and tags."""
        answer = self._call(
            "DescribeSecret", secret_id, self.client.describe_secret, SecretId=secret_id
        )
        return SecretState(
            arn=str(answer.get("ARN", secret_id)),
            name=str(answer.get("Name", secret_id)),
            rotation_enabled=bool(answer.get("RotationEnabled", False)),
            versions={
                str(version): tuple(str(stage) for stage in stages)
                for version, stages in (answer.get("VersionIdsToStages") or {}).items()
            },
            tags={str(t.get("Key")): str(t.get("Value")) for t in answer.get("Tags") or ()},
        )

    def read_version(self, arn: str, version_id: str) -> StoredKey | None:
        """The key stored in ``version_id``, or None when that version holds no value yet."""
        return self._read(arn, VersionId=version_id)

    def read_stage(self, arn: str, stage: str) -> StoredKey | None:
        """The key stored in the version labelled ``stage``, or None when there is none."""
        return self._read(arn, VersionStage=stage)

    def put_pending(self, arn: str, token: str, value: str) -> None:
        """PutSecretValue as AWSPENDING with the rotation's token as its VersionId."""
        self._call(
            "PutSecretValue",
            arn,
            self.client.put_secret_value,
            SecretId=arn,
            ClientRequestToken=token,
            SecretString=MaskedText(value),
            VersionStages=[AWSPENDING],
        )

    def move_stage(
        self, arn: str, stage: str, *, to_version: str | None, from_version: str | None
    ) -> None:
        """UpdateSecretVersionStage: move (or, without ``to_version``, remove) ``stage``."""
        options = {"SecretId": arn, "VersionStage": stage}
        if to_version is not None:
            options["MoveToVersionId"] = to_version
        if from_version is not None:
            options["RemoveFromVersionId"] = from_version
        self._call(
            "UpdateSecretVersionStage", arn, self.client.update_secret_version_stage, **options
        )

    def _read(self, arn: str, **selector: str) -> StoredKey | None:
        try:
            answer = self._call(
                "GetSecretValue", arn, self.client.get_secret_value, SecretId=arn, **selector
            )
        except SecretNotFoundError:
            return None
        text = answer.get("SecretString")
        version = answer.get("VersionId")
        if not isinstance(text, str):
            return None
        return parse_key_json(
            text, store=_STORE, location=arn, version=version if isinstance(version, str) else None
        )

    def _call(
        self, operation: str, arn: str, method: Callable[..., _T], *args: Any, **kwargs: Any
    ) -> _T:
        translated: StoreError | None
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            translated = translate_error(exc, operation, arn)
            if translated is None:
                raise
        # Raised outside the handler, so the botocore error is neither cause nor context: a
        # ConnectionClosedError keeps the request, and its body holds the SecretString.
        raise translated


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError``, or None for anything else."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict) and isinstance(error.get("Code"), str):
            return str(error["Code"])
    return None


def translate_error(exc: Exception, operation: str, arn: str) -> StoreError | None:
    """Map a botocore error to the store error tree; None for errors that are not botocore's."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError):
        # Connection refused, timeouts: no answer, the call may or may not have landed.
        return StoreUnavailableError(
            f"{operation} on {arn} got no answer ({type(exc).__name__})",
            store=_STORE,
            location=arn,
        )
    if not isinstance(exc, ClientError):
        return None
    code = error_code(exc) or "Unknown"
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    message = f"{operation} on {arn} failed: {code}"
    cls: type[StoreError]
    if code in _NOT_FOUND:
        cls = SecretNotFoundError
    elif code in _CONFLICT:
        cls = StoreConflictError
    elif code in _ACCESS:
        cls = StoreAccessError
    elif code in _TRANSIENT or (isinstance(status, int) and status >= 500):
        cls = StoreUnavailableError
    else:
        cls = StoreError
    return cls(message, store=_STORE, location=arn)
