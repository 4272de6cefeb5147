"""The Secrets Manager calls a rotation makes, and how their answers are read.

The stage names and the parsers of DescribeSecret's and GetSecretValue's answers here are the
ones :class:`~unkey_secrets.stores.aws.SecretsManagerStore` uses too, and every call goes through
:func:`~unkey_secrets.stores.aws.errors.call`, the store's own error translation.

botocore is imported only when an error has to be classified, so importing this module stays
cheap. Values read here are parsed straight into :class:`~unkey_secrets.StoredKey` (the key is
masked) and no error text ever quotes a value: Secrets Manager's own messages name versions and
labels only, and a malformed value is reported by :func:`~unkey_secrets._payload.parse_key_json`
without its content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..._errors import SecretNotFoundError, UnkeySecretsError
from ..._models import StoredKey
from ..._payload import parse_key_json
from ..._redact import MaskedText
from .errors import STORE, botocore_errors, call, translate
from .errors import error_code as error_code

__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "RotationSecrets",
    "SecretState",
    "parse_secret_state",
    "parse_stored_key",
    "parse_tags",
    "translate_error",
]

#: The version stages Secrets Manager's rotation protocol uses.
AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"


@dataclass(frozen=True)
class SecretState:
    """What DescribeSecret says about the secret: its ARN, rotation flag, labels and tags."""

    arn: str
    name: str
    rotation_enabled: bool
    versions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    #: Whether the secret is scheduled for deletion (DescribeSecret's ``DeletedDate``).
    deleted: bool = False

    def stages(self, version_id: str) -> tuple[str, ...] | None:
        """Return the labels on ``version_id``, or None when the secret has no such version."""
        return self.versions.get(version_id)

    def holder_of(self, stage: str) -> str | None:
        """Return the version that carries ``stage``, if any."""
        for version_id, stages in self.versions.items():
            if stage in stages:
                return version_id
        return None


def parse_tags(answer: Mapping[str, Any]) -> dict[str, str]:
    """The ``Tags`` list of a DescribeSecret answer as ``{Key: Value}``."""
    return {
        str(tag.get("Key")): str(tag.get("Value"))
        for tag in answer.get("Tags") or ()
        if isinstance(tag, Mapping)
    }


def parse_secret_state(answer: Mapping[str, Any], secret_id: str) -> SecretState:
    """A DescribeSecret answer for ``secret_id`` as a :class:`SecretState`."""
    return SecretState(
        arn=str(answer.get("ARN", secret_id)),
        name=str(answer.get("Name", secret_id)),
        rotation_enabled=bool(answer.get("RotationEnabled", False)),
        versions={
            str(version): tuple(str(stage) for stage in stages or ())
            for version, stages in (answer.get("VersionIdsToStages") or {}).items()
        },
        tags=parse_tags(answer),
        deleted=answer.get("DeletedDate") is not None,
    )


def parse_stored_key(answer: Mapping[str, Any], secret_id: str) -> StoredKey | None:
    """The key in a GetSecretValue answer; None when it holds no SecretString.

    A value that is not an unkey-secrets key raises
    :class:`~unkey_secrets.StoredValueError` without quoting it.
    """
    text = answer.get("SecretString")
    if not isinstance(text, str):
        return None
    version = answer.get("VersionId")
    return parse_key_json(
        text,
        store=STORE,
        location=str(answer.get("ARN") or secret_id),
        version=version if isinstance(version, str) else None,
    )


class RotationSecrets:
    """The handful of Secrets Manager operations the rotation protocol needs."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def describe(self, secret_id: str) -> SecretState:
        """DescribeSecret: rotation flag, version labels and tags."""
        answer = call(
            self.client.describe_secret,
            operation="DescribeSecret",
            location=secret_id,
            SecretId=secret_id,
        )
        return parse_secret_state(answer, secret_id)

    def read_version(self, arn: str, version_id: str) -> StoredKey | None:
        """The key stored in ``version_id``, or None when that version holds no value yet."""
        return self._read(arn, VersionId=version_id)

    def read_stage(self, arn: str, stage: str) -> StoredKey | None:
        """The key stored in the version labelled ``stage``, or None when there is none."""
        return self._read(arn, VersionStage=stage)

    def put_pending(self, arn: str, token: str, value: str) -> None:
        """PutSecretValue as AWSPENDING with the rotation's token as its VersionId."""
        call(
            self.client.put_secret_value,
            operation="PutSecretValue",
            location=arn,
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
        call(
            self.client.update_secret_version_stage,
            operation="UpdateSecretVersionStage",
            location=arn,
            **options,
        )

    def _read(self, arn: str, **selector: str) -> StoredKey | None:
        try:
            answer = call(
                self.client.get_secret_value,
                operation="GetSecretValue",
                location=arn,
                SecretId=arn,
                **selector,
            )
        except SecretNotFoundError:
            return None
        return parse_stored_key(answer, arn)


def translate_error(exc: Exception, operation: str, arn: str) -> UnkeySecretsError | None:
    """:func:`~unkey_secrets.stores.aws.errors.translate` for a botocore error, else None."""
    if not isinstance(exc, botocore_errors()):
        return None
    return translate(exc, operation=operation, location=arn)
