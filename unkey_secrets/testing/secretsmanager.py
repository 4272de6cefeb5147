"""An in-memory, boto3-shaped AWS Secrets Manager client for tests: no network, no moto.

:class:`InMemorySecretsManager` answers the calls this project makes of a ``secretsmanager``
client (the store and the rotation Lambda take it wherever they take a boto3 client) with AWS's
semantics, where moto's differ:

* a ``ClientRequestToken`` becomes the VersionId; repeating it with the same value is a no-op,
  with another value ``ResourceExistsException``, even on an AWSPENDING version (moto
  overwrites a filled AWSPENDING version);
* ``GetSecretValue`` without ``VersionId``/``VersionStage`` reads whichever version carries
  AWSCURRENT now (moto reads the version that was current when it was last written);
* ``UpdateSecretVersionStage`` refuses to move any label attached elsewhere unless
  ``RemoveFromVersionId`` names its holder (moto checks this for AWSCURRENT only), and moves
  AWSCURRENT onto a secret that has none (moto fails); a refused call changes nothing (moto
  takes the label off ``RemoveFromVersionId`` before it finds ``MoveToVersionId`` unknown);
* ``DescribeSecret``'s ``VersionIdsToStages`` lists labelled versions only (moto lists
  deprecated, unlabelled ones too);
* a value over 65,536 bytes and a name outside ``[A-Za-z0-9/_+=.@-]`` are refused with
  ``ValidationException`` (moto accepts them);
* ``BatchGetSecretValue`` answers a secret without an AWSCURRENT value in ``Errors`` (moto
  fails the whole call) and refuses a ``SecretIdList`` of more than 20 (moto takes it).

Requests are checked against botocore's own service model first, as a real client does
(``ParamValidationError`` for a missing or mistyped parameter, or a token under 32 characters),
and a missing ``ClientRequestToken`` is filled with a uuid4, as botocore does. Refusals are
:class:`botocore.exceptions.ClientError` instances of the classes a real client exposes as
``client.exceptions.<Code>``, with AWS's codes and message shapes.

Values are kept as :class:`~unkey_secrets._redact.MaskedText` (bytes for ``SecretBinary``) and
never appear in a repr; nothing here logs. botocore is imported when the first double is built,
not when this module is imported.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._redact import MaskedText

__all__ = [
    "ACCOUNT_ID",
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "MAX_VALUE_BYTES",
    "OPERATIONS",
    "InMemorySecretsManager",
]

#: The account id in the ARNs the double makes unless told otherwise (moto's default too).
ACCOUNT_ID = "123456789012"
#: The staging labels Secrets Manager's rotation protocol uses.
AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
AWSPREVIOUS = "AWSPREVIOUS"
#: Secrets Manager's limit on a SecretString or SecretBinary, in bytes.
MAX_VALUE_BYTES = 65_536

#: The API operations the double implements (the names :attr:`InMemorySecretsManager.calls`
#: records and :meth:`InMemorySecretsManager.fail_next` takes; snake_case method names work too).
OPERATIONS = frozenset(
    {
        "BatchGetSecretValue",
        "CreateSecret",
        "DeleteSecret",
        "DescribeSecret",
        "GetSecretValue",
        "ListSecretVersionIds",
        "PutSecretValue",
        "RestoreSecret",
        "RotateSecret",
        "TagResource",
        "UntagResource",
        "UpdateSecretVersionStage",
    }
)

_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]+")
_MAX_NAME = 512
_MAX_TOKEN = 64
# BatchGetSecretValue's SecretIdList: 1-20 ids.
_MAX_BATCH = 20
_SUFFIX_ALPHABET = string.ascii_letters + string.digits
_SERVER_ERRORS = frozenset({"InternalServiceError", "InternalFailure", "ServiceUnavailable"})
_MARKED_DELETED = (
    "You can't perform this operation on the secret because it was marked for deletion."
)
_NOT_FOUND = "Secrets Manager can't find the specified secret."


@functools.cache
def _botocore() -> tuple[Any, Any]:
    """The Secrets Manager service model and the client exception classes built from it."""
    import botocore.session
    from botocore.errorfactory import ClientExceptionsFactory

    model = botocore.session.get_session().get_service_model("secretsmanager")
    return model, ClientExceptionsFactory().create_client_exceptions(model)


def _api_name(operation: str) -> str:
    name = operation if operation[:1].isupper() else _camel(operation)
    if name not in OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; one of {sorted(OPERATIONS)}")
    return name


def _camel(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))


class _Refusal(Exception):
    """Raised inside an operation; :meth:`InMemorySecretsManager._call` makes it a ClientError."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


@dataclass
class _Version:
    """One version: its labels and (masked) value; ``None`` for a placeholder RotateSecret made."""

    version_id: str
    stages: list[str]
    created: dt.datetime
    text: MaskedText | None = field(default=None, repr=False)
    binary: bytes | None = field(default=None, repr=False)
    accessed: dt.datetime | None = None

    @property
    def has_value(self) -> bool:
        return self.text is not None or self.binary is not None

    def same_value(self, text: str | None, binary: bytes | None) -> bool:
        mine = None if self.text is None else str(self.text)
        theirs = None if text is None else str(text)
        return mine == theirs and self.binary == binary


@dataclass
class _Secret:
    name: str
    arn: str
    created: dt.datetime
    changed: dt.datetime
    description: str | None = None
    kms_key_id: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    versions: dict[str, _Version] = field(default_factory=dict)
    #: None until rotation was configured (DescribeSecret then omits the rotation fields).
    rotation_enabled: bool | None = None
    rotation_lambda_arn: str | None = None
    rotation_rules: dict[str, Any] = field(default_factory=dict)
    last_rotated: dt.datetime | None = None
    next_rotation: dt.datetime | None = None
    deleted: dt.datetime | None = None
    accessed: dt.datetime | None = None
    replicas: list[dict[str, str]] = field(default_factory=list)

    def holder_of(self, stage: str) -> _Version | None:
        return next((v for v in self.versions.values() if stage in v.stages), None)

    def detach(self, stage: str, keep: _Version | None = None) -> _Version | None:
        """Take ``stage`` off whichever version (other than ``keep``) has it; return that one."""
        holder = self.holder_of(stage)
        if holder is not None and holder is not keep:
            holder.stages.remove(stage)
            return holder
        return None

    def attach(self, stage: str, version: _Version) -> None:
        """Put ``stage`` on ``version``, off any other; moving AWSCURRENT moves AWSPREVIOUS."""
        left = self.detach(stage, keep=version)
        if stage not in version.stages:
            version.stages.append(stage)
        if stage == AWSCURRENT and left is not None:
            self.attach(AWSPREVIOUS, left)


@dataclass
class _Failure:
    error: BaseException
    after: bool


@dataclass(frozen=True)
class _Meta:
    """What ``client.meta`` offers on a real client, as far as a caller here reads it."""

    region_name: str
    service_model: Any
    partition: str = "aws"
    #: None: no endpoint, nothing travels (so no TLS check applies).
    endpoint_url: str | None = None


class InMemorySecretsManager:
    """A thread-safe in-memory Secrets Manager, called like ``boto3.client("secretsmanager")``.

    Pass it wherever a boto3 Secrets Manager client goes: ``SecretsManagerStore(client)``,
    ``Rotator(client, unkey, config)``. Every operation takes keyword arguments only, with the
    API's parameter names, and answers a dict in boto3's shapes (timestamps as aware
    ``datetime``; ``SecretString`` as a :class:`~unkey_secrets._redact.MaskedText`, a ``str``
    whose repr is masked; ``ResponseMetadata`` included). Errors are ``ClientError`` instances, also
    catchable as ``client.exceptions.<Code>``.

    ``region`` and ``account_id`` go into ARNs
    (``arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random letters or digits>``);
    ``clock`` returns Unix seconds (dates); ``seed`` makes the ARN suffixes and generated tokens
    repeatable.

    Test helpers: :meth:`start_rotation` (what RotateSecret does before it invokes the Lambda),
    :meth:`set_rotation_enabled`, :meth:`fail_next` (raise before or after an operation acts),
    :attr:`calls` (every operation, in order), :meth:`names` and :meth:`versions`.
    """

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account_id: str = ACCOUNT_ID,
        clock: Callable[[], float] = time.time,
        seed: int | None = None,
    ) -> None:
        model, exceptions = _botocore()
        self.region = region
        self.account_id = account_id
        self.clock = clock
        #: ``client.exceptions``: one ClientError subclass per error code of the service.
        self.exceptions: Any = exceptions
        #: ``client.meta``: ``region_name``, ``service_model``, ``partition``, ``endpoint_url``.
        self.meta = _Meta(region_name=region, service_model=model)
        #: Every operation called, by API name (``"PutSecretValue"``), in order; calls refused
        #: by parameter validation are not sent and not recorded, injected failures are.
        self.calls: list[str] = []
        self._lock = threading.RLock()
        self._random = random.Random(seed) if seed is not None else random.SystemRandom()
        self._secrets: dict[str, _Secret] = {}
        self._failures: dict[str, list[_Failure]] = {}

    def __repr__(self) -> str:
        # getattr with defaults: safe on a half-built object (rendered with frame locals).
        return (
            f"{type(self).__name__}(region={getattr(self, 'region', None)!r}, "
            f"secrets={len(getattr(self, '_secrets', ()))}, "
            f"calls={len(getattr(self, 'calls', ()))})"
        )

    # -- test helpers --------------------------------------------------------------------------

    def fail_next(
        self,
        operation: str,
        error: BaseException | str,
        times: int = 1,
        *,
        after: bool = False,
    ) -> None:
        """Make the next ``times`` calls of ``operation`` raise ``error``.

        ``operation`` is an API name (``"PutSecretValue"``) or the method's
        (``"put_secret_value"``). ``error`` is an exception to raise, or an error code
        (``"ThrottlingException"``, ``"InternalServiceError"``...) for a ``ClientError`` of
        that code (HTTP 500 for the service's internal errors, else 400). With ``after=False``
        the call raises before it acts; with ``after=True`` it acts (the write lands) and
        then raises, as when the answer is lost on the way back. Failures queue up in order.
        Parameter validation still comes first.
        """
        name = _api_name(operation)
        if times < 1:
            raise ValueError("times must be at least 1")
        failure = _Failure(
            self._client_error(name, error, "injected") if isinstance(error, str) else error,
            after,
        )
        with self._lock:
            self._failures.setdefault(name, []).extend([failure] * times)

    def start_rotation(self, secret_id: str, token: str | None = None) -> str:
        """Do what RotateSecret does before it invokes the rotation Lambda; return the token.

        Rotation is enabled (every 30 days unless rules were set), AWSPENDING leaves any
        version holding it, and version ``token`` (a new uuid4 if None) gets AWSPENDING and
        no value: the Lambda's createSecret fills it. Unlike :meth:`rotate_secret`, an
        unfinished earlier rotation is abandoned rather than refused (its version keeps its
        value, without label). Not recorded in :attr:`calls`; raises ``ClientError``
        (ResourceNotFoundException, InvalidRequestException) as RotateSecret would.
        """
        with self._lock:
            try:
                secret = self._live(secret_id)
                self._enable_rotation(secret, None, None)
                return self._add_pending(secret, token or self._token())
            except _Refusal as refusal:
                failure = self._client_error("RotateSecret", refusal.code, refusal.message)
            raise failure

    def set_rotation_enabled(self, secret_id: str, enabled: bool) -> None:
        """Set the secret's rotation flag (DescribeSecret's ``RotationEnabled``), nothing else."""
        with self._lock:
            self._find(secret_id).rotation_enabled = enabled

    def names(self) -> list[str]:
        """Every secret's name, sorted (deleted-but-recoverable ones included)."""
        with self._lock:
            return sorted(self._secrets)

    def versions(self, secret_id: str, *, include_deprecated: bool = True) -> dict[str, list[str]]:
        """``{VersionId: [labels]}`` of the secret, unlabelled (deprecated) versions included.

        Values are never returned here. Raises ``KeyError`` for an unknown secret.
        """
        with self._lock:
            secret = self._find(secret_id)
            return {
                v.version_id: list(v.stages)
                for v in secret.versions.values()
                if include_deprecated or v.stages
            }

    def close(self) -> None:
        """Nothing to release (boto3 clients have ``close()``)."""

    # -- the API ---------------------------------------------------------------------------------

    def create_secret(self, **params: Any) -> dict[str, Any]:
        """CreateSecret: make a secret, with a first version if a value is given.

        Parameters: ``Name`` (required), ``ClientRequestToken``, ``SecretString`` or
        ``SecretBinary``, ``Description``, ``KmsKeyId``, ``Tags`` (``[{Key, Value}]``),
        ``AddReplicaRegions``. Answers ``{ARN, Name, VersionId}`` (``VersionId`` only with a value).
        A name in use is ResourceExistsException, unless the token names a version holding the same
        value (a repeat: answered as the first time, nothing changes); a name scheduled for deletion
        is InvalidRequestException.
        """
        return self._call("CreateSecret", params)

    def put_secret_value(self, **params: Any) -> dict[str, Any]:
        """PutSecretValue: add a version (or fill the one RotateSecret made).

        Parameters: ``SecretId``, ``ClientRequestToken`` (becomes the VersionId),
        ``SecretString`` or ``SecretBinary``, ``VersionStages`` (default ``[AWSCURRENT]``).
        Answers ``{ARN, Name, VersionId, VersionStages}``. Each label moves onto the new
        version; AWSCURRENT leaving a version puts AWSPREVIOUS on it; the secret's first
        version gets AWSCURRENT anyway. A token whose version holds the same value is a no-op
        (its labels are answered); another value is ResourceExistsException; a version
        without value (made by RotateSecret) is filled.
        """
        return self._call("PutSecretValue", params)

    def batch_get_secret_value(self, **params: Any) -> dict[str, Any]:
        """BatchGetSecretValue by ``SecretIdList`` (1-20 names or ARNs); one page, no NextToken.

        Answers ``{SecretValues: [...], Errors: [...]}``: each secret's AWSCURRENT version in
        GetSecretValue's shape (``ARN``, ``Name``, ``VersionId``, ``SecretString`` |
        ``SecretBinary``, ``VersionStages``, ``CreatedDate``), in the order asked, or an entry
        ``{SecretId, ErrorCode, Message}`` as asked: ResourceNotFoundException for no such
        secret or no AWSCURRENT value, InvalidRequestException for a secret marked deleted.
        More than 20 ids: ValidationException; ``MaxResults`` without ``Filters``, or both
        ``Filters`` and ``SecretIdList`` or neither: InvalidParameterException; a
        ``NextToken`` (the double never hands one out): InvalidNextTokenException.
        ``Filters`` alone are not implemented (``NotImplementedError``).
        """
        return self._call("BatchGetSecretValue", params)

    def get_secret_value(self, **params: Any) -> dict[str, Any]:
        """GetSecretValue: read one version's value.

        Parameters: ``SecretId``, ``VersionId`` and/or ``VersionStage`` (default: the version
        labelled AWSCURRENT now). Answers ``{ARN, Name, VersionId, SecretString | SecretBinary,
        VersionStages, CreatedDate}``. No such version, label or value: ResourceNotFoundException; a
        ``VersionStage`` not on ``VersionId``, or a secret marked deleted: InvalidRequestException.
        """
        return self._call("GetSecretValue", params)

    def describe_secret(self, **params: Any) -> dict[str, Any]:
        """DescribeSecret: ``SecretId`` (name, ARN or partial ARN). Never returns a value.

        Answers ``ARN``, ``Name``, ``CreatedDate``, ``LastChangedDate``, and when they apply
        ``Description``, ``KmsKeyId``, ``Tags``, ``VersionIdsToStages`` (labelled versions
        only), ``DeletedDate``, ``LastAccessedDate`` (a day), ``ReplicationStatus`` and, once
        rotation was configured, ``RotationEnabled``, ``RotationLambdaARN``,
        ``RotationRules``, ``LastRotatedDate``, ``NextRotationDate``.
        """
        return self._call("DescribeSecret", params)

    def update_secret_version_stage(self, **params: Any) -> dict[str, Any]:
        """UpdateSecretVersionStage: move a label to a version, or remove it from one.

        Parameters: ``SecretId``, ``VersionStage``, ``MoveToVersionId``, ``RemoveFromVersionId``;
        answers ``{ARN, Name}``. A label attached to another version moves only if
        ``RemoveFromVersionId`` names that version, and ``RemoveFromVersionId`` must hold the label:
        else InvalidParameterException, as is an unknown version. Moving (or removing) AWSCURRENT
        puts AWSPREVIOUS on the version it left; onto a secret with no AWSCURRENT it just attaches.
        """
        return self._call("UpdateSecretVersionStage", params)

    def rotate_secret(self, **params: Any) -> dict[str, Any]:
        """RotateSecret, without invoking a Lambda: start a rotation for you to drive.

        Parameters: ``SecretId``, ``ClientRequestToken``, ``RotationLambdaARN``, ``RotationRules``,
        ``RotateImmediately`` (default True). Enables rotation and, when rotating immediately,
        attaches AWSPENDING to a new version ``ClientRequestToken`` with no value; answers ``{ARN,
        Name, VersionId}``. Run the Lambda's steps yourself. No Lambda ARN given or configured, or
        AWSPENDING still on a version that is not AWSCURRENT (an unfinished rotation):
        InvalidRequestException.
        """
        return self._call("RotateSecret", params)

    def delete_secret(self, **params: Any) -> dict[str, Any]:
        """DeleteSecret: mark a secret deleted, or remove it at once.

        Parameters: ``SecretId``, ``RecoveryWindowInDays`` (7-30, default 30) or
        ``ForceDeleteWithoutRecovery``; answers ``{ARN, Name, DeletionDate}``. Without force the
        secret stays, marked deleted (DescribeSecret shows ``DeletedDate``; reads and writes are
        InvalidRequestException) until :meth:`restore_secret`.
        """
        return self._call("DeleteSecret", params)

    def restore_secret(self, **params: Any) -> dict[str, Any]:
        """RestoreSecret: ``SecretId``. Clears the deletion mark; answers ``{ARN, Name}``."""
        return self._call("RestoreSecret", params)

    def tag_resource(self, **params: Any) -> dict[str, Any]:
        """TagResource: ``SecretId``, ``Tags`` (``[{Key, Value}]``, a key's value replaced)."""
        return self._call("TagResource", params)

    def untag_resource(self, **params: Any) -> dict[str, Any]:
        """UntagResource: ``SecretId``, ``TagKeys`` (absent keys ignored)."""
        return self._call("UntagResource", params)

    def list_secret_version_ids(self, **params: Any) -> dict[str, Any]:
        """ListSecretVersionIds: ``SecretId``, ``IncludeDeprecated``. One page, no value.

        Answers ``{ARN, Name, Versions: [{VersionId, VersionStages, CreatedDate,
        LastAccessedDate?}]}``.
        """
        return self._call("ListSecretVersionIds", params)

    # -- dispatch --------------------------------------------------------------------------------

    def _call(self, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import ParamValidationError
        from botocore.validate import ParamValidator

        request = dict(params)
        model = self.meta.service_model.operation_model(operation)
        for member in model.idempotent_members:
            if request.get(member) is None:
                request[member] = str(uuid.uuid4())
        report = ParamValidator().validate(request, model.input_shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())
        failure: BaseException
        with self._lock:
            self.calls.append(operation)
            queued = self._failures.get(operation)
            injected = queued.pop(0) if queued else None
            if injected is not None and not injected.after:
                raise injected.error
            handler = getattr(self, "_" + _snake(operation))
            try:
                answer: dict[str, Any] = handler(**request)
            except _Refusal as refusal:
                failure = self._client_error(operation, refusal.code, refusal.message)
            else:
                if injected is not None:
                    raise injected.error
                answer["ResponseMetadata"] = self._metadata(200)
                return answer
        raise failure

    def _client_error(self, operation: str, code: str, message: str) -> BaseException:
        status = 500 if code in _SERVER_ERRORS else 400
        response = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": self._metadata(status),
            "message": message,
        }
        error_class = self.exceptions.from_code(code)
        return error_class(response, operation)  # type: ignore[no-any-return]

    @staticmethod
    def _metadata(status: int) -> dict[str, Any]:
        request_id = str(uuid.uuid4())
        return {
            "RequestId": request_id,
            "HTTPStatusCode": status,
            "HTTPHeaders": {
                "x-amzn-requestid": request_id,
                "content-type": "application/x-amz-json-1.1",
            },
            "RetryAttempts": 0,
        }

    # -- the operations (lock held; params validated by botocore's model) --------------------------

    def _create_secret(
        self,
        *,
        Name: str,
        ClientRequestToken: str,
        SecretString: str | None = None,
        SecretBinary: bytes | None = None,
        Description: str | None = None,
        KmsKeyId: str | None = None,
        Tags: list[dict[str, str]] | None = None,
        AddReplicaRegions: list[dict[str, str]] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        _check_name(Name)
        _check_token(ClientRequestToken)
        text, binary = _value(SecretString, SecretBinary, required=False)
        existing = self._secrets.get(Name)
        if existing is not None:
            if existing.deleted is not None:
                raise _Refusal(
                    "InvalidRequestException",
                    "You can't create this secret because a secret with this name is already "
                    "scheduled for deletion.",
                )
            version = existing.versions.get(ClientRequestToken)
            if version is None:
                raise _Refusal(
                    "ResourceExistsException",
                    f"The operation failed because the secret {Name} already exists.",
                )
            self._check_repeat(existing, version, text, binary)
            return {"ARN": existing.arn, "Name": existing.name, "VersionId": version.version_id}
        now = self._now()
        secret = _Secret(
            name=Name,
            arn=self._arn(Name),
            created=now,
            changed=now,
            description=Description,
            kms_key_id=KmsKeyId,
            tags=[{"Key": t["Key"], "Value": t["Value"]} for t in Tags or ()],
            replicas=[
                {
                    "Region": r["Region"],
                    "Status": "InSync",
                    "StatusMessage": "Replication succeeded",
                }
                for r in AddReplicaRegions or ()
            ],
        )
        answer: dict[str, Any] = {"ARN": secret.arn, "Name": Name}
        if text is not None or binary is not None:
            secret.versions[ClientRequestToken] = _Version(
                ClientRequestToken, [AWSCURRENT], now, text, binary
            )
            answer["VersionId"] = ClientRequestToken
        if secret.replicas:
            answer["ReplicationStatus"] = [dict(r) for r in secret.replicas]
        self._secrets[Name] = secret
        return answer

    def _put_secret_value(
        self,
        *,
        SecretId: str,
        ClientRequestToken: str,
        SecretString: str | None = None,
        SecretBinary: bytes | None = None,
        VersionStages: list[str] | None = None,
        **_: Any,
    ) -> dict[str, Any]:
        _check_token(ClientRequestToken)
        text, binary = _value(SecretString, SecretBinary, required=True)
        secret = self._live(SecretId)
        version = secret.versions.get(ClientRequestToken)
        if version is not None and version.has_value:
            self._check_repeat(secret, version, text, binary)
            return {
                "ARN": secret.arn,
                "Name": secret.name,
                "VersionId": version.version_id,
                "VersionStages": list(version.stages),
            }
        stages = list(dict.fromkeys(VersionStages if VersionStages is not None else [AWSCURRENT]))
        if not secret.versions and AWSCURRENT not in stages:
            stages.append(AWSCURRENT)
        now = self._now()
        if version is None:
            version = _Version(ClientRequestToken, [], now)
            secret.versions[ClientRequestToken] = version
        version.text, version.binary = text, binary
        for stage in stages:
            secret.attach(stage, version)
        secret.changed = now
        return {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version.version_id,
            "VersionStages": list(version.stages),
        }

    def _get_secret_value(
        self, *, SecretId: str, VersionId: str | None = None, VersionStage: str | None = None
    ) -> dict[str, Any]:
        secret = self._live(SecretId)
        if VersionId is not None:
            version = secret.versions.get(VersionId)
            if version is not None and VersionStage not in (None, *version.stages):
                raise _Refusal(
                    "InvalidRequestException",
                    "You provided a VersionStage that is not associated to the provided VersionId.",
                )
            what = f"VersionId: {VersionId}"
        else:
            stage = VersionStage or AWSCURRENT
            version = secret.holder_of(stage)
            what = f"staging label: {stage}"
        if version is None or not version.has_value:
            raise _Refusal(
                "ResourceNotFoundException",
                f"Secrets Manager can't find the specified secret value for {what}",
            )
        day = self._now().replace(hour=0, minute=0, second=0, microsecond=0)
        version.accessed = secret.accessed = day
        answer: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
        answer["VersionId"] = version.version_id
        if version.text is not None:
            answer["SecretString"] = MaskedText(version.text)
        if version.binary is not None:
            answer["SecretBinary"] = version.binary
        answer["VersionStages"] = list(version.stages)
        answer["CreatedDate"] = version.created
        return answer

    def _batch_get_secret_value(
        self,
        *,
        SecretIdList: list[str] | None = None,
        Filters: list[dict[str, Any]] | None = None,
        MaxResults: int | None = None,
        NextToken: str | None = None,
    ) -> dict[str, Any]:
        if (SecretIdList is None) == (Filters is None):
            raise _Refusal(
                "InvalidParameterException",
                "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
            )
        if MaxResults is not None and Filters is None:
            raise _Refusal(
                "InvalidParameterException",
                "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' "
                "is provided.",
            )
        if NextToken is not None:
            raise _Refusal("InvalidNextTokenException", "The NextToken value is invalid.")
        if SecretIdList is None:
            raise NotImplementedError("BatchGetSecretValue with Filters is not in the double")
        if len(SecretIdList) > _MAX_BATCH:
            raise _Refusal(
                "ValidationException",
                "1 validation error detected: Value at 'secretIdList' failed to satisfy "
                f"constraint: Member must have length less than or equal to {_MAX_BATCH}",
            )
        values: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for secret_id in SecretIdList:
            try:
                answer = self._get_secret_value(SecretId=secret_id)
            except _Refusal as refusal:
                errors.append(
                    {"SecretId": secret_id, "ErrorCode": refusal.code, "Message": refusal.message}
                )
            else:
                values.append(answer)
        return {"SecretValues": values, "Errors": errors}

    def _describe_secret(self, *, SecretId: str) -> dict[str, Any]:
        secret = self._existing(SecretId)
        answer: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
        if secret.description:
            answer["Description"] = secret.description
        if secret.kms_key_id is not None:
            answer["KmsKeyId"] = secret.kms_key_id
        if secret.rotation_enabled is not None:
            answer["RotationEnabled"] = secret.rotation_enabled
            if secret.rotation_lambda_arn:
                answer["RotationLambdaARN"] = secret.rotation_lambda_arn
            answer["RotationRules"] = dict(secret.rotation_rules)
            if secret.last_rotated is not None:
                answer["LastRotatedDate"] = secret.last_rotated
            if secret.next_rotation is not None:
                answer["NextRotationDate"] = secret.next_rotation
        answer["LastChangedDate"] = secret.changed
        if secret.accessed is not None:
            answer["LastAccessedDate"] = secret.accessed
        if secret.deleted is not None:
            answer["DeletedDate"] = secret.deleted
        if secret.tags:
            answer["Tags"] = [dict(t) for t in secret.tags]
        labelled = {v.version_id: list(v.stages) for v in secret.versions.values() if v.stages}
        if labelled:
            answer["VersionIdsToStages"] = labelled
        answer["CreatedDate"] = secret.created
        if secret.replicas:
            answer["ReplicationStatus"] = [dict(r) for r in secret.replicas]
        return answer

    def _update_secret_version_stage(
        self,
        *,
        SecretId: str,
        VersionStage: str,
        RemoveFromVersionId: str | None = None,
        MoveToVersionId: str | None = None,
    ) -> dict[str, Any]:
        secret = self._live(SecretId)
        if RemoveFromVersionId is None and MoveToVersionId is None:
            raise _Refusal(
                "InvalidParameterException",
                "You must specify MoveToVersionId, RemoveFromVersionId, or both.",
            )
        for version_id in (RemoveFromVersionId, MoveToVersionId):
            if version_id is not None and version_id not in secret.versions:
                raise _Refusal("InvalidParameterException", f"Not a valid version: {version_id}")
        holder = secret.holder_of(VersionStage)
        if RemoveFromVersionId is not None and (
            holder is None or holder.version_id != RemoveFromVersionId
        ):
            raise _Refusal(
                "InvalidParameterException",
                f"Version stage {VersionStage} not found in version {RemoveFromVersionId}",
            )
        if MoveToVersionId is None:
            assert holder is not None  # checked above: RemoveFromVersionId holds it
            holder.stages.remove(VersionStage)
            if VersionStage == AWSCURRENT:
                secret.attach(AWSPREVIOUS, holder)
        else:
            target = secret.versions[MoveToVersionId]
            if holder is not None and holder is not target and RemoveFromVersionId is None:
                raise _Refusal(
                    "InvalidParameterException",
                    "The parameter RemoveFromVersionId can't be empty. Staging label "
                    f"{VersionStage} is currently attached to version {holder.version_id}, so "
                    "you must explicitly reference that version in RemoveFromVersionId.",
                )
            secret.attach(VersionStage, target)
        secret.changed = self._now()
        return {"ARN": secret.arn, "Name": secret.name}

    def _rotate_secret(
        self,
        *,
        SecretId: str,
        ClientRequestToken: str,
        RotationLambdaARN: str | None = None,
        RotationRules: dict[str, Any] | None = None,
        RotateImmediately: bool = True,
        **_: Any,
    ) -> dict[str, Any]:
        _check_token(ClientRequestToken)
        secret = self._live(SecretId)
        if not (RotationLambdaARN or secret.rotation_lambda_arn):
            raise _Refusal(
                "InvalidRequestException",
                "No Lambda rotation function ARN is associated with this secret.",
            )
        pending = secret.holder_of(AWSPENDING)
        if pending is not None and AWSCURRENT not in pending.stages:
            raise _Refusal(
                "InvalidRequestException",
                "A previous rotation isn't complete. That rotation will be reattempted.",
            )
        self._enable_rotation(secret, RotationLambdaARN, RotationRules)
        answer: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
        if RotateImmediately:
            answer["VersionId"] = self._add_pending(secret, ClientRequestToken)
        return answer

    def _delete_secret(
        self,
        *,
        SecretId: str,
        RecoveryWindowInDays: int | None = None,
        ForceDeleteWithoutRecovery: bool | None = None,
    ) -> dict[str, Any]:
        if RecoveryWindowInDays is not None and ForceDeleteWithoutRecovery:
            raise _Refusal(
                "InvalidParameterException",
                "You can't use ForceDeleteWithoutRecovery in conjunction with "
                "RecoveryWindowInDays.",
            )
        if RecoveryWindowInDays is not None and not 7 <= RecoveryWindowInDays <= 30:
            raise _Refusal(
                "InvalidParameterException",
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
            )
        secret = self._existing(SecretId)
        now = self._now()
        if ForceDeleteWithoutRecovery:
            del self._secrets[secret.name]
            return {"ARN": secret.arn, "Name": secret.name, "DeletionDate": now}
        if secret.deleted is not None:
            raise _Refusal("InvalidRequestException", _MARKED_DELETED)
        secret.deleted = now + dt.timedelta(days=RecoveryWindowInDays or 30)
        return {"ARN": secret.arn, "Name": secret.name, "DeletionDate": secret.deleted}

    def _restore_secret(self, *, SecretId: str) -> dict[str, Any]:
        secret = self._existing(SecretId)
        secret.deleted = None
        return {"ARN": secret.arn, "Name": secret.name}

    def _tag_resource(self, *, SecretId: str, Tags: list[dict[str, str]]) -> dict[str, Any]:
        secret = self._live(SecretId)
        merged = {t["Key"]: t["Value"] for t in secret.tags}
        merged.update({t["Key"]: t["Value"] for t in Tags})
        secret.tags = [{"Key": k, "Value": v} for k, v in merged.items()]
        return {}

    def _untag_resource(self, *, SecretId: str, TagKeys: list[str]) -> dict[str, Any]:
        secret = self._live(SecretId)
        secret.tags = [t for t in secret.tags if t["Key"] not in set(TagKeys)]
        return {}

    def _list_secret_version_ids(
        self, *, SecretId: str, IncludeDeprecated: bool = False, **_: Any
    ) -> dict[str, Any]:
        secret = self._existing(SecretId)
        versions = []
        for version in secret.versions.values():
            if not (version.stages or IncludeDeprecated):
                continue
            entry: dict[str, Any] = {
                "VersionId": version.version_id,
                "VersionStages": list(version.stages),
            }
            if version.accessed is not None:
                entry["LastAccessedDate"] = version.accessed
            entry["CreatedDate"] = version.created
            versions.append(entry)
        return {"Versions": versions, "ARN": secret.arn, "Name": secret.name}

    # -- helpers (lock held) -----------------------------------------------------------------------

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), tz=dt.timezone.utc)

    def _token(self) -> str:
        return str(uuid.UUID(int=self._random.getrandbits(128), version=4))

    def _arn(self, name: str) -> str:
        suffix = "".join(self._random.choice(_SUFFIX_ALPHABET) for _ in range(6))
        return f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:{name}-{suffix}"

    def _find(self, secret_id: str) -> _Secret:
        """The secret ``secret_id`` names (name, full ARN or ARN without suffix); KeyError."""
        secret = self._secrets.get(secret_id)
        if secret is not None:
            return secret
        prefix = f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:"
        if secret_id.startswith(prefix):
            for secret in self._secrets.values():
                if secret.arn == secret_id:
                    return secret
            partial = self._secrets.get(secret_id[len(prefix) :])
            if partial is not None:
                return partial
        raise KeyError(secret_id)

    def _existing(self, secret_id: str) -> _Secret:
        try:
            return self._find(secret_id)
        except KeyError:
            raise _Refusal("ResourceNotFoundException", _NOT_FOUND) from None

    def _live(self, secret_id: str) -> _Secret:
        secret = self._existing(secret_id)
        if secret.deleted is not None:
            raise _Refusal("InvalidRequestException", _MARKED_DELETED)
        return secret

    @staticmethod
    def _check_repeat(
        secret: _Secret, version: _Version, text: str | None, binary: bytes | None
    ) -> None:
        if not version.same_value(text, binary):
            raise _Refusal(
                "ResourceExistsException",
                f"You can't use ClientRequestToken {version.version_id} because that value is "
                f"already in use for a version of secret {secret.arn}.",
            )

    def _enable_rotation(
        self, secret: _Secret, lambda_arn: str | None, rules: Mapping[str, Any] | None
    ) -> None:
        now = self._now()
        secret.rotation_enabled = True
        if lambda_arn:
            secret.rotation_lambda_arn = lambda_arn
        if rules:
            secret.rotation_rules = dict(rules)
        secret.rotation_rules.setdefault("AutomaticallyAfterDays", 30)
        secret.last_rotated = now
        days = secret.rotation_rules.get("AutomaticallyAfterDays")
        if isinstance(days, int):
            secret.next_rotation = now + dt.timedelta(days=days)

    def _add_pending(self, secret: _Secret, token: str) -> str:
        _check_token(token)
        version = secret.versions.get(token)
        if version is None:
            version = _Version(token, [], self._now())
            secret.versions[token] = version
        secret.attach(AWSPENDING, version)
        return token


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()


def _check_name(name: str) -> None:
    if len(name) > _MAX_NAME:
        raise _Refusal(
            "ValidationException",
            "1 validation error detected: Value at 'name' failed to satisfy constraint: Member "
            f"must have length less than or equal to {_MAX_NAME}",
        )
    if not _NAME.fullmatch(name):
        raise _Refusal(
            "ValidationException",
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of "
            "the following: -/_+=.@",
        )


def _check_token(token: str) -> None:
    if not 32 <= len(token) <= _MAX_TOKEN:
        raise _Refusal(
            "InvalidParameterException", "ClientRequestToken must be 32-64 characters long."
        )


def _value(
    text: str | None, blob: Any, *, required: bool
) -> tuple[MaskedText | None, bytes | None]:
    """The value of a write, masked, after AWS's checks (never quoted in a message)."""
    if text is not None and blob is not None:
        raise _Refusal(
            "InvalidParameterException",
            "You can't specify both a binary secret value and a string secret value in the "
            "same secret.",
        )
    if required and text is None and blob is None:
        raise _Refusal(
            "InvalidRequestException", "You must provide either SecretString or SecretBinary."
        )
    binary: bytes | None = None
    if blob is not None:
        binary = bytes(blob) if isinstance(blob, (bytes, bytearray)) else bytes(blob.read())
    for member, size in (
        ("secretString", len(text.encode("utf-8")) if text is not None else 0),
        ("secretBinary", len(binary) if binary is not None else 0),
    ):
        if size > MAX_VALUE_BYTES:
            raise _Refusal(
                "ValidationException",
                f"1 validation error detected: Value at '{member}' failed to satisfy "
                f"constraint: Member must have length less than or equal to {MAX_VALUE_BYTES}",
            )
    return (MaskedText(text) if text is not None else None), binary
