"""moto's Secrets Manager, answering as AWS does where moto as shipped does not.

:func:`create_app` is what :class:`~unkey_secrets.testing.moto.MotoServer` serves: moto's own
application for every service, except that Secrets Manager requests go to
:class:`AwsSecretsManagerResponse`. It works on moto's own state (the same secrets
``moto.mock_aws`` and moto's other services see) and changes no moto class, so moto used any
other way in the same process keeps its own behaviour.

What it corrects, each as the AWS API reference documents it:

* GetSecretValue without ``VersionId`` or ``VersionStage`` reads the version labelled AWSCURRENT
  now (moto reads the one that was current when a value was last written, even after
  UpdateSecretVersionStage moved AWSCURRENT); a ``VersionStage`` not on ``VersionId`` is a 400.
* PutSecretValue with a ``ClientRequestToken`` whose version holds a value is ignored when the
  value is the same and refused (ResourceExistsException) when it is not, AWSPENDING or not (moto
  overwrites a pending version and moves its labels); only the valueless version RotateSecret
  labelled AWSPENDING takes a value. AWSCURRENT moving puts AWSPREVIOUS on the version holding
  AWSCURRENT now, and no other label of that version is touched (moto resets them).
* UpdateSecretVersionStage moves AWSCURRENT onto a secret that has none (moto fails with a 500),
  refuses to move any label attached elsewhere without ``RemoveFromVersionId`` (moto checks only
  AWSCURRENT, and leaves other labels on two versions) and changes nothing when it refuses (moto
  takes the label off ``RemoveFromVersionId`` before it finds ``MoveToVersionId`` unknown).
* DescribeSecret's ``VersionIdsToStages`` lists labelled versions only; ListSecretVersionIds
  lists versions holding a value, unlabelled ones only with ``IncludeDeprecated``, and answers
  the secret's ARN (moto lists every version and answers the name).
* CreateSecret repeated with the token and value of an existing version is ignored and answers
  that version (moto answers the current one, and adds a version when the token names a pending
  one); a name scheduled for deletion is InvalidRequestException (moto: ResourceExistsException).
* Every write and read of a secret scheduled for deletion is InvalidRequestException (moto
  writes); a value over 65,536 bytes and a name outside ``[A-Za-z0-9/_+=.@-]`` are
  ValidationException (moto takes them).
* CreateSecret and PutSecretValue with both SecretString and SecretBinary are
  InvalidParameterException (moto stores both); a SecretBinary that is not base64 is
  SerializationException, a 400 (moto fails with a 500).
* BatchGetSecretValue by ``SecretIdList`` reads each secret as GetSecretValue above (its
  AWSCURRENT version now) and answers a secret without a value there in ``Errors`` (moto fails
  the whole call with ResourceNotFoundException); more than 20 ids is ValidationException
  (moto takes any number). ``Filters`` go to moto as they are.

Not corrected: RotateSecret (moto invokes the rotation function itself, which it can only do
through docker), and the calls neither the store nor the rotation Lambda nor the readers make.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

from moto.core.exceptions import JsonRESTError
from moto.moto_server.werkzeug_app import create_backend_app
from moto.secretsmanager.exceptions import (
    InvalidParameterException,
    InvalidRequestException,
    OperationNotPermittedOnReplica,
    ResourceExistsException,
    ResourceNotFoundException,
    SecretNotFoundException,
    ValidationException,
)
from moto.secretsmanager.models import FakeSecret, ReplicaSecret
from moto.secretsmanager.responses import SecretsManagerResponse

__all__ = ["AwsSecretsManagerResponse", "create_app"]

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
AWSPREVIOUS = "AWSPREVIOUS"
#: SecretString and SecretBinary: "Length Constraints: Maximum length of 65536" (bytes).
MAX_VALUE_BYTES = 65_536
#: BatchGetSecretValue's SecretIdList: "Array Members: Minimum number of 1 item. Maximum number
#: of 20 items."
MAX_BATCH = 20
_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")
_MARKED_DELETED = (
    "You can't perform this operation on the secret because it was marked for deletion."
)

Version = dict[str, Any]


def create_app(service: str) -> Any:
    """The Flask application moto serves ``service`` with; Secrets Manager's answers as AWS's."""
    from moto.core.utils import convert_to_flask_response

    app = create_backend_app(service)  # type: ignore[arg-type]
    if service == "secretsmanager":
        stock = f"{SecretsManagerResponse.__name__}.dispatch"
        ours = convert_to_flask_response(AwsSecretsManagerResponse.dispatch)
        for endpoint in list(app.view_functions):
            if endpoint.startswith(stock):
                app.view_functions[endpoint] = ours
    return app


class AwsSecretsManagerResponse(SecretsManagerResponse):
    """moto's Secrets Manager request handler, with AWS's answers for the calls it overrides."""

    # -- reads -----------------------------------------------------------------------------------

    def get_secret_value(self) -> str:
        """GetSecretValue: the version ``VersionId`` names, else the one ``VersionStage`` labels."""
        return self._read(
            self._get_param("SecretId"),
            self._get_param("VersionId"),
            self._get_param("VersionStage"),
        )

    def _read(self, secret_id: Any, version_id: Any, stage: Any) -> str:
        """GetSecretValue's answer for ``secret_id`` (JSON), or the error it raises."""
        secret = self._live(secret_id)
        if version_id:
            version = secret.versions.get(version_id)
            if version is not None and stage and stage not in version["version_stages"]:
                # moto's own error for this answers 404; AWS's InvalidRequestException is a 400.
                raise InvalidRequestException(
                    "You provided a VersionStage that is not associated to the provided VersionId."
                )
            what = f"VersionId: {version_id}"
        else:
            stage = stage or AWSCURRENT
            version = _holder(secret, stage)
            what = f"staging label: {stage}"
        if version is None or not _has_value(version):
            raise ResourceNotFoundException(
                f"Secrets Manager can't find the specified secret value for {what}"
            )
        answer: dict[str, Any] = {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version["version_id"],
            "VersionStages": list(version["version_stages"]),
            "CreatedDate": version["createdate"],
        }
        for field, member in (("secret_string", "SecretString"), ("secret_binary", "SecretBinary")):
            if field in version:
                answer[member] = version[field]
        return json.dumps(answer)

    def batch_get_secret_value(self) -> str:
        """BatchGetSecretValue: each of ``SecretIdList`` as GetSecretValue reads it, or an error.

        Every id is answered, in order, in ``SecretValues`` (GetSecretValue's answer without a
        version selector) or in ``Errors`` (``SecretId``, ``ErrorCode``, ``Message``); one page.
        """
        ids = self._get_param("SecretIdList")
        if not ids or self._get_param("Filters"):
            return str(super().batch_get_secret_value())
        if len(ids) > MAX_BATCH:
            raise ValidationException(
                "1 validation error detected: Value at 'secretIdList' failed to satisfy "
                f"constraint: Member must have length less than or equal to {MAX_BATCH}"
            )
        if self._get_param("MaxResults") is not None:
            raise InvalidParameterException(
                "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' "
                "is provided."
            )
        values: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for secret_id in ids:
            try:
                values.append(json.loads(self._read(secret_id, None, None)))
            except JsonRESTError as exc:
                errors.append(
                    {"SecretId": secret_id, "ErrorCode": exc.error_type, "Message": exc.message}
                )
        return json.dumps({"SecretValues": values, "Errors": errors})

    def describe_secret(self) -> str:
        """DescribeSecret, with ``VersionIdsToStages`` holding labelled versions only."""
        answer: dict[str, Any] = json.loads(super().describe_secret())
        for member in ("VersionIdsToStages", "SecretVersionsToStages"):
            labelled = {v: s for v, s in (answer.pop(member, None) or {}).items() if s}
            if labelled:
                answer[member] = labelled
        return json.dumps(answer)

    def list_secret_version_ids(self) -> str:
        """ListSecretVersionIds: versions with a value; unlabelled ones if IncludeDeprecated."""
        secret = self._existing(self._get_param("SecretId"))
        deprecated = bool(self._get_param("IncludeDeprecated", if_none=False))
        versions = [
            {
                "VersionId": version["version_id"],
                "VersionStages": list(version["version_stages"]),
                "CreatedDate": version["createdate"],
            }
            for version in secret.versions.values()
            if _has_value(version) and (version["version_stages"] or deprecated)
        ]
        return json.dumps({"ARN": secret.arn, "Name": secret.name, "Versions": versions})

    # -- writes ----------------------------------------------------------------------------------

    def create_secret(self) -> str:
        """CreateSecret: moto makes a new name; on a name in use, a repeat alone is accepted.

        A repeat (the token and value of an existing version) is ignored and answered as the
        first time; anything else on a name in use is refused.
        """
        name = self._get_param("Name")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationException(
                "Invalid name. Must be a valid name containing alphanumeric characters, or any "
                "of the following: -/_+=.@"
            )
        text, binary = self._value()
        if name not in self.backend.secrets:
            answer: str = super().create_secret()
            return answer
        secret = self.backend.secrets[name]
        if isinstance(secret, ReplicaSecret):
            raise OperationNotPermittedOnReplica()
        if secret.is_deleted():
            raise InvalidRequestException(
                "You can't create this secret because a secret with this name is already "
                "scheduled for deletion."
            )
        token = self._get_param("ClientRequestToken")
        version = secret.versions.get(token) if token else None
        if version is None:
            raise ResourceExistsException(
                f"The operation failed because the secret {name} already exists."
            )
        _check_repeat(secret, version, text, binary)
        return json.dumps({"ARN": secret.arn, "Name": secret.name, "VersionId": token})

    def put_secret_value(self) -> str:
        """PutSecretValue: a new version (or the valueless one RotateSecret made), then labels."""
        secret = self._writable(self._get_param("SecretId", if_none=""))
        text, binary = self._value()
        if text is None and binary is None:
            raise InvalidRequestException("You must provide either SecretString or SecretBinary.")
        stages = self._get_param("VersionStages", if_none=[AWSCURRENT])
        stages = list(dict.fromkeys(stages if isinstance(stages, list) else [stages]))
        token = _token(self._get_param("ClientRequestToken"))
        version = secret.versions.get(token)
        # The one version a value goes into afterwards is the one RotateSecret labelled
        # AWSPENDING ("Secrets Manager creates an AWSPENDING version ID before creating the new
        # secret version"); any other existing token is a repeat, or refused.
        if version is not None and (
            _has_value(version) or AWSPENDING not in version["version_stages"]
        ):
            _check_repeat(secret, version, text, binary)
            return _version_answer(secret, version)
        if not secret.versions and AWSCURRENT not in stages:
            # "If this operation creates the first version for the secret, then Secrets Manager
            # automatically attaches the staging label AWSCURRENT to it."
            stages.append(AWSCURRENT)
        if version is None:
            version = {"createdate": int(time.time()), "version_id": token, "version_stages": []}
            secret.versions[token] = version
        if text is not None:
            version["secret_string"] = text
        if binary is not None:
            version["secret_binary"] = binary
        for stage in stages:
            _attach(secret, stage, version)
        _changed(secret)
        return _version_answer(secret, version)

    def update_secret_version_stage(self) -> str:
        """UpdateSecretVersionStage: every check first, then the move; a refusal changes nothing."""
        secret = self._writable(self._get_param("SecretId"))
        stage = self._get_param("VersionStage")
        remove_from = self._get_param("RemoveFromVersionId")
        move_to = self._get_param("MoveToVersionId")
        for version_id in (remove_from, move_to):
            if version_id and version_id not in secret.versions:
                raise InvalidParameterException(f"Not a valid version: {version_id}")
        holder = _holder(secret, stage)
        if remove_from and (holder is None or holder["version_id"] != remove_from):
            raise InvalidParameterException(
                f"Version stage {stage} not found in version {remove_from}"
            )
        if move_to:
            target = secret.versions[move_to]
            if holder is not None and holder is not target and not remove_from:
                raise InvalidParameterException(
                    f"The parameter RemoveFromVersionId can't be empty. Staging label {stage} is "
                    f"currently attached to version {holder['version_id']}, so you must "
                    "explicitly reference that version in RemoveFromVersionId."
                )
            _attach(secret, stage, target)
        elif holder is not None and remove_from:
            holder["version_stages"].remove(stage)
            if stage == AWSCURRENT:
                _attach(secret, AWSPREVIOUS, holder)
        _changed(secret)
        return json.dumps({"ARN": secret.arn, "Name": secret.name})

    # -- helpers ---------------------------------------------------------------------------------

    def _existing(self, secret_id: Any) -> FakeSecret | ReplicaSecret:
        if not isinstance(secret_id, str) or secret_id not in self.backend.secrets:
            raise SecretNotFoundException()
        return self.backend.secrets[secret_id]

    def _live(self, secret_id: Any) -> FakeSecret | ReplicaSecret:
        secret = self._existing(secret_id)
        if secret.is_deleted():
            raise InvalidRequestException(_MARKED_DELETED)
        return secret

    def _writable(self, secret_id: Any) -> FakeSecret:
        secret = self._live(secret_id)
        if isinstance(secret, ReplicaSecret):
            raise OperationNotPermittedOnReplica()
        return secret

    def _value(self) -> tuple[str | None, str | None]:
        """The request's SecretString and SecretBinary (base64, as sent), after AWS's checks.

        Both given: InvalidParameterException ("You must include SecretBinary or SecretString,
        but not both"). A SecretBinary that is not base64 (only a raw HTTP client can send one):
        SerializationException, the 400 AWS's JSON protocol answers a malformed member with.
        Either over 65,536 bytes: ValidationException.
        """
        text = self._get_param("SecretString")
        binary = self._get_param("SecretBinary")
        if text is not None and binary is not None:
            raise InvalidParameterException(
                "You can't specify both a binary secret value and a string secret value in the "
                "same secret."
            )
        size = 0
        if binary is not None:
            try:
                size = len(base64.b64decode(binary, validate=True))
            except (TypeError, ValueError):  # binascii.Error is a ValueError
                raise JsonRESTError(
                    "SerializationException", "SecretBinary is not a base64-encoded string."
                ) from None
        sizes = (
            ("secretString", len(text.encode("utf-8")) if isinstance(text, str) else 0),
            ("secretBinary", size),
        )
        for member, size in sizes:
            if size > MAX_VALUE_BYTES:
                raise ValidationException(
                    f"1 validation error detected: Value at '{member}' failed to satisfy "
                    f"constraint: Member must have length less than or equal to {MAX_VALUE_BYTES}"
                )
        return text, binary


def _token(token: Any) -> str:
    """The new version's id: the request's ClientRequestToken (SDKs always send one)."""
    if not token:
        return str(uuid.uuid4())
    if not isinstance(token, str) or not 32 <= len(token) <= 64:
        raise InvalidParameterException("ClientRequestToken must be 32-64 characters long.")
    return token


def _has_value(version: Version) -> bool:
    return "secret_string" in version or "secret_binary" in version


def _holder(secret: FakeSecret | ReplicaSecret, stage: str) -> Version | None:
    for version in secret.versions.values():
        if stage in version["version_stages"]:
            return version
    return None


def _attach(secret: FakeSecret, stage: str, version: Version) -> None:
    """Put ``stage`` on ``version``, off any other; AWSCURRENT leaving one puts AWSPREVIOUS there.

    Only the label named moves: the version AWSCURRENT leaves keeps its other labels.
    """
    left = _holder(secret, stage)
    if left is not None and left is not version:
        left["version_stages"].remove(stage)
    else:
        left = None
    if stage not in version["version_stages"]:
        version["version_stages"].append(stage)
    if stage == AWSCURRENT:
        if left is not None:
            _attach(secret, AWSPREVIOUS, left)
        # moto's other calls (UpdateSecret, RotateSecret, moto.mock_aws on the same state) take
        # the current version from here.
        secret.set_default_version_id(version["version_id"])


def _check_repeat(
    secret: FakeSecret | ReplicaSecret, version: Version, text: str | None, binary: str | None
) -> None:
    """Refuse a token whose version holds another value (the value is never quoted)."""
    if version.get("secret_string") != text or version.get("secret_binary") != binary:
        raise ResourceExistsException(
            f"You can't use ClientRequestToken {version['version_id']} because that value is "
            f"already in use for a version of secret {secret.arn}."
        )


def _version_answer(secret: FakeSecret, version: Version) -> str:
    return json.dumps(
        {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version["version_id"],
            "VersionStages": list(version["version_stages"]),
        }
    )


def _changed(secret: FakeSecret) -> None:
    secret.last_changed_date = int(time.time())
