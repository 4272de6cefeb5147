"""AWS Secrets Manager store: one secret per key_id, and stable names whose AWSCURRENT is the key.

Layout (default templates)::

    unkey/{api_id}/{key_id}         one secret per key, never changed after it is created
    unkey/{api_id}/by-name/{alias}  an alias; its AWSCURRENT version holds the current key's
                                    full value, AWSPREVIOUS the key before it
    unkey/rotated-from/{api_id}/{key_id}
                                    the record of the rotation of key_id (no plaintext); each
                                    revision n is the version uuid5(name#n)

Every version we write has ``VersionId = version_id_for(key_id)``, so a write is idempotent
(Secrets Manager ignores a repeated ClientRequestToken with the same value) and a reader can tell
which key a version holds without reading it. Secrets we create carry the tag
``managed-by=unkey-secrets``; we never write to a secret without it.

boto3 is imported only when a default client is built, never when this module is imported.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from ..._concurrent import first_failure, together
from ..._config import load_settings, setting_given, setting_to_give
from ..._errors import (
    ConfigurationError,
    InvalidInputError,
    NotOwnedError,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
)
from ..._models import AliasState, IssuedKey, KeyEntry, KeyRef, StoredKey, StoredLocation
from ..._payload import MANAGED_BY, key_fields, load_stored_json
from ..._redact import MaskedText, guarded
from ..._validate import validate_key_id
from .._recent import RECENT_KEYS, Recent, RecentSet
from ..base import (
    _STAND_IN_KEY_ID,
    DEFAULT_ALIAS_TEMPLATE,
    DEFAULT_KEY_TEMPLATE,
    DEFAULT_ROTATION_TEMPLATE,
    SecretStore,
    _Unchecked,
)
from . import batch
from .client import AssumeRole, AwsSession
from .errors import ResourceExistsError, botocore_errors, call, check_client_endpoint
from .secrets import AWSCURRENT, RotationSecrets, SecretState
from .settings import DEFAULT_TIMEOUT_SECONDS, AwsSettings, check_endpoint_url, check_region

if TYPE_CHECKING:
    from ...rotation.record import RotationRecord

__all__ = [
    "MAX_VALUE_BYTES",
    "TAG_ALIAS",
    "TAG_API_ID",
    "TAG_KEY_ID",
    "TAG_KIND",
    "TAG_MANAGED_BY",
    "TAG_REROLLED_FROM",
    "VERSION_NAMESPACE",
    "SecretsManagerStore",
    "validate_secret_name",
    "version_id_for",
]

#: The uuid5 namespace of our version ids: ``uuid5(NAMESPACE_URL, "unkey-secrets:aws:version-id")``,
#: that is ``579ee899-1078-5449-b0a4-cfa83c96ca44``.
VERSION_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "unkey-secrets:aws:version-id")
#: Secrets Manager's limit on a SecretString, in bytes.
MAX_VALUE_BYTES = 65_536
#: Tag keys on the secrets we create.
TAG_MANAGED_BY = "managed-by"
TAG_KIND = "unkey-kind"
TAG_KEY_ID = "unkey-key-id"
TAG_API_ID = "unkey-api-id"
TAG_ALIAS = "unkey-alias"
TAG_REROLLED_FROM = "unkey-rerolled-from"
_RESERVED_TAGS = frozenset(
    {TAG_MANAGED_BY, TAG_KIND, TAG_KEY_ID, TAG_API_ID, TAG_ALIAS, TAG_REROLLED_FROM}
)
_MAX_TAGS = 50
_KIND_KEY = "key"
_KIND_CURRENT = "current"
_KIND_ROTATION = "rotation"
#: The label a conditional alias move puts its version under before moving AWSCURRENT onto it.
_MOVING = "UNKEYMOVING"

_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@\-]{1,512}")
# AWS appends "-" and six random letters or digits to make a secret's ARN; a name that already
# ends that way makes a partial ARN ambiguous, so AWS advises against it.
_ARN_SUFFIX_LIKE = re.compile(r".*-[A-Za-z0-9]{6}")
_TAG_KEY = re.compile(r"[\w .:/=+\-@]{1,128}")
_TAG_VALUE = re.compile(r"[\w .:/=+\-@]{0,256}")


def version_id_for(key_id: str) -> str:
    """Return the ClientRequestToken / VersionId under which ``key_id``'s value is written.

    It is ``str(uuid.uuid5(VERSION_NAMESPACE, key_id))`` (36 characters, inside Secrets Manager's
    32-64), so any reader can compute it, and it never changes for a key_id.
    """
    return str(uuid.uuid5(VERSION_NAMESPACE, validate_key_id(key_id)))


def validate_secret_name(name: str, field: str = "path") -> str:
    """Return ``name`` if Secrets Manager accepts it as a secret name, else raise.

    1-512 characters of ``[A-Za-z0-9/_+=.@-]``, not ending in ``-`` and six letters or digits
    (which AWS confuses with the random suffix it adds to make the ARN).
    """
    if not _SECRET_NAME.fullmatch(name):
        raise InvalidInputError(
            field, f"{name!r} is not a Secrets Manager name (1-512 of [A-Za-z0-9/_+=.@-])"
        )
    if _ARN_SUFFIX_LIKE.fullmatch(name):
        raise InvalidInputError(
            field,
            f"{name!r} ends in '-' and six letters or digits, which AWS reads as an ARN suffix",
        )
    return name


def _tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _check_user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    clean: dict[str, str] = {}
    for key, value in tags.items():
        if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
            raise InvalidInputError("tags", f"tag key {key!r} is not 1-128 allowed characters")
        if not isinstance(value, str) or not _TAG_VALUE.fullmatch(value):
            raise InvalidInputError("tags", f"value of tag {key!r} is not 0-256 allowed characters")
        if key.lower().startswith("aws:"):
            raise InvalidInputError("tags", f"tag key {key!r} uses the reserved prefix 'aws:'")
        if key in _RESERVED_TAGS:
            raise InvalidInputError("tags", f"tag key {key!r} is set by unkey-secrets itself")
        clean[key] = value
    if len(clean) + len(_RESERVED_TAGS) > _MAX_TAGS:
        raise InvalidInputError(
            "tags", f"at most {_MAX_TAGS - len(_RESERVED_TAGS)} tags besides our own"
        )
    return clean


def _role(
    role_arn: str | None,
    external_id: str | None,
    role_session_name: str | None,
    duration_seconds: int | None,
) -> AssumeRole | None:
    """The role to assume, or None; the other three alone are refused (no role to use them)."""
    if role_arn is None:
        given = [
            name
            for name, value in (
                ("external_id", external_id),
                ("role_session_name", role_session_name),
                ("duration_seconds", duration_seconds),
            )
            if value is not None
        ]
        if given:
            raise InvalidInputError(
                setting_given(given[0]),
                f"applies to a role to assume: give {setting_to_give('role_arn')} too",
            )
        return None
    return AssumeRole(
        role_arn=role_arn,
        external_id=external_id,
        role_session_name=role_session_name,
        duration_seconds=duration_seconds,
    )


def _operation(method: str) -> str:
    return "".join(part.title() for part in method.split("_"))


class SecretsManagerStore(SecretStore):
    """Keys in AWS Secrets Manager, one secret per key_id, created only, tagged as ours.

    Pass a boto3 ``secretsmanager`` client, or let the store build one from the standard
    credential chain (``region``, ``endpoint_url`` and ``profile`` as given; boto3 also honours
    ``AWS_ENDPOINT_URL`` and ``AWS_PROFILE``) with botocore's "standard" retry mode.
    ``kms_key_id``, ``tags``, ``replica_regions`` and ``description`` apply to every secret
    the store creates. With ``settings``, each option left at its default is taken from the
    settings.

    ``check_writable`` (which the flows call before Unkey) is a live preflight, once per store
    object and secret name: credentials resolve and the endpoint answers a DescribeSecret of a
    name under the key template (not found is the expected answer); anything else raises
    :class:`~unkey_secrets.ConfigurationError` saying what to fix. A new key costs one
    CreateSecret (tagged, with the key_id's ClientRequestToken); DescribeSecret follows only
    when the name is taken, or when this object already tried to create it (a retry, or a
    repeat: a repeated CreateSecret with the same token and value succeeds silently, so the
    describe tells a no-op from a creation). The client built here sends each request once
    (``total_max_attempts=1``): the flows' RetryPolicy is the one retry layer, as for Vault.
    An alias's state is read with DescribeSecret and GetSecretValue at once; a conditional move
    adds the new version under a label of its own (:meth:`prepare_move` does that while the
    key is being stored), then moves AWSCURRENT from the version read.
    ``preflight=False`` skips the live part of the preflight. ``max_connections`` sizes its
    connection pool (botocore keeps 10): set it to the number
    of threads sharing the store. A client passed in keeps its own configuration.

    **A role to assume.** With ``role_arn`` (and ``external_id``, ``role_session_name``,
    ``duration_seconds`` in seconds, 900-43200; or the settings' ``UNKEY_SECRETS_AWS_ROLE_ARN``
    and its kin), the client built here signs with that role's temporary credentials, got by
    STS AssumeRole with the chain's (or ``profile``'s) credentials and renewed by botocore
    before they expire (:mod:`unkey_secrets.stores.aws.client`); ``sts_endpoint_url`` (or
    ``AWS_ENDPOINT_URL_STS``) is the STS endpoint. Nothing is asked of STS until the first
    request. A bad value raises :class:`~unkey_secrets.InvalidInputError` naming the field,
    never the value; a role with a client passed in, :class:`~unkey_secrets.ConfigurationError`.
    A refused AssumeRole raises :class:`~unkey_secrets.StoreAccessError` from the request that
    needed the credentials.

    **Transport.** Every request ends within its deadline, connect to the last byte of the
    answer, however slowly the answer comes: ``timeout`` seconds (default 30, or the
    settings'), or for a client passed in without ``timeout``, its ``connect_timeout +
    read_timeout``. An answer is at most :data:`~unkey_secrets.transport.DEFAULT_MAX_ANSWER_BYTES`
    and a plain-http endpoint never goes through a proxy (see
    :mod:`unkey_secrets.transport.botocore`: the client's HTTP session is replaced, its
    configuration kept). A request that breaks the deadline or the budget has lost its answer:
    it raises :class:`~unkey_secrets.StoreUnavailableError`, as a dropped connection does.

    The writer needs CreateSecret, PutSecretValue, DescribeSecret, TagResource and
    UpdateSecretVersionStage, never GetSecretValue (see ``policies/aws-writer.json``). Tags are
    only ever set by CreateSecret (which needs TagResource for them); the policy allows no
    tagging of an existing secret, and only our four tag keys: add the keys of ``tags`` to its
    two ``aws:TagKeys`` lists. A client whose endpoint is plain http to anything but a loopback
    host is refused, whether built here or passed in.
    """

    name = "aws"

    @guarded
    def __init__(
        self,
        client: Any | None = None,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        alias_template: str = DEFAULT_ALIAS_TEMPLATE,
        rotation_template: str = DEFAULT_ROTATION_TEMPLATE,
        kms_key_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        replica_regions: Sequence[str] = (),
        description: str | None = None,
        settings: AwsSettings | None = None,
        max_connections: int | None = None,
        preflight: bool = True,
        profile: str | None = None,
        timeout: float | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
        role_session_name: str | None = None,
        duration_seconds: int | None = None,
        sts_endpoint_url: str | None = None,
    ) -> None:
        # A timeout given here bounds a client passed in too; the settings' only one built here.
        explicit_timeout = timeout
        # What check_writable verified already, and the names this object tried to create
        # (bounded: the most recent RECENT_KEYS of each; a forgotten one costs a DescribeSecret
        # or a preflight again, and a repeat of the very same write long after its first
        # attempt reports created=True, the value stored being the same).
        self._checked: RecentSet[str] = RecentSet(RECENT_KEYS)
        self._attempted: RecentSet[str] = RecentSet(RECENT_KEYS)
        # The revision this object last wrote of each rotation record: the next revision of
        # one needs no DescribeSecret first. And the aliases whose next version prepare_move
        # added (alias name -> its VersionId, the one it moves from): the move then only moves
        # AWSCURRENT (taken by that move). Both bounded, as above.
        self._written: Recent[str, int] = Recent(RECENT_KEYS)
        self._prepared: Recent[str, tuple[str, str]] = Recent(RECENT_KEYS)
        #: Whether check_writable asks Secrets Manager (once per name); False skips the call.
        self.preflight = preflight
        if settings is not None:
            max_connections = max_connections or settings.max_connections
            region = region or settings.region
            endpoint_url = endpoint_url or settings.endpoint_url
            if key_template == DEFAULT_KEY_TEMPLATE:
                key_template = settings.key_template
            if alias_template == DEFAULT_ALIAS_TEMPLATE:
                alias_template = settings.alias_template
            if rotation_template == DEFAULT_ROTATION_TEMPLATE:
                rotation_template = settings.rotation_template
            kms_key_id = kms_key_id or settings.kms_key_id
            tags = tags if tags is not None else settings.tags
            replica_regions = replica_regions or settings.replica_regions
            description = description or settings.description
            profile = profile or settings.profile
            timeout = timeout or settings.timeout
            role_arn = role_arn or settings.role_arn
            external_id = external_id or settings.external_id
            role_session_name = role_session_name or settings.role_session_name
            duration_seconds = duration_seconds or settings.duration_seconds
            sts_endpoint_url = sts_endpoint_url or settings.sts_endpoint_url
        role = _role(role_arn, external_id, role_session_name, duration_seconds)
        if role is not None and client is not None:
            raise ConfigurationError(
                "role_arn applies to the client the store builds: a client passed in brings its "
                "own credentials (build it from a role session, or pass no client)"
            )
        super().__init__(
            key_template=key_template,
            alias_template=alias_template,
            rotation_template=rotation_template,
        )
        # Refuse templates whose every rendering would break the AWS name rules.
        validate_secret_name(self.key_template.template.format_map(_STAND_INS), "key_template")
        validate_secret_name(self.alias_template.template.format_map(_STAND_INS), "alias_template")
        validate_secret_name(
            self.rotation_template.template.format_map(_STAND_INS), "rotation_template"
        )
        if endpoint_url:
            try:
                check_endpoint_url(endpoint_url)
            except ValueError as exc:
                raise InvalidInputError("endpoint_url", str(exc)) from None
        if max_connections is not None and (
            not isinstance(max_connections, int) or max_connections < 1
        ):
            raise InvalidInputError("max_connections", "must be a positive number")
        if timeout is not None and (
            not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0
        ):
            raise InvalidInputError("timeout", "must be a positive number of seconds")
        if kms_key_id is not None and not (0 < len(kms_key_id) <= 2048):
            raise InvalidInputError("kms_key_id", "must be 1-2048 characters")
        if description is not None and len(description) > 2048:
            raise InvalidInputError("description", "must be at most 2048 characters")
        if isinstance(replica_regions, str):
            raise InvalidInputError("replica_regions", "expected a sequence of region names")
        for replica in replica_regions:
            try:
                check_region(replica)
            except ValueError:
                raise InvalidInputError(
                    "replica_regions", f"{replica!r} is not a region name"
                ) from None
        self.kms_key_id = kms_key_id
        self.tags = _check_user_tags(tags or {})
        self.replica_regions = tuple(replica_regions)
        self.description = description
        botocore_errors()  # without botocore, refuse now rather than at the first failure
        built = client is None
        deadline = timeout or DEFAULT_TIMEOUT_SECONDS
        if client is None:
            session = AwsSession(
                profile=profile,
                role=role,
                region=region,
                sts_endpoint_url=sts_endpoint_url,
                timeout=deadline,
            )
            client = session.client(
                region, endpoint_url=endpoint_url, max_connections=max_connections
            )
        self._client = client
        #: The role the client built here assumes (None: the chain's or the given client's own
        #: credentials); the reader's errors name it, as the account read.
        self.role_arn = role.role_arn if role is not None else None
        self._secrets = RotationSecrets(self._client)
        # Whoever built the client, the values travel over it: refuse plain http to a remote
        # host (e.g. from AWS_ENDPOINT_URL) before any request, and hold it to the transport
        # policy (a deadline per request, a byte budget per answer, no proxy for plain http).
        check_client_endpoint(self._client)
        from ...transport.botocore import apply_policy

        apply_policy(self._client, deadline=deadline if built else explicit_timeout)

    @classmethod
    @guarded
    def from_settings(
        cls, settings: AwsSettings | None = None, **overrides: Any
    ) -> SecretsManagerStore:
        """Build a store from :class:`AwsSettings`, or load them with ``overrides``.

        Without ``settings``, they are loaded by :func:`~unkey_secrets.settings.load_settings`:
        each override (an :class:`AwsSettings` field: ``region``, ``endpoint_url``,
        ``profile``...) wins over its environment variable, which wins over the default.
        ``overrides`` with ``settings`` raise :class:`~unkey_secrets.ConfigurationError`, as
        does a bad setting (naming it, never its value).
        """
        if settings is None:
            settings = load_settings(AwsSettings, **overrides)
        elif overrides:
            raise ConfigurationError("pass settings or overrides, not both")
        return cls(settings=settings)

    @property
    def client(self) -> Any:
        """The boto3 ``secretsmanager`` client in use."""
        return self._client

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        client = getattr(self, "_client", None)
        region = getattr(getattr(client, "meta", None), "region_name", None)
        key = getattr(getattr(self, "key_template", None), "template", None)
        alias = getattr(getattr(self, "alias_template", None), "template", None)
        return (
            f"{type(self).__name__}(key_template={key!r}, alias_template={alias!r}, "
            f"region={region!r})"
        )

    # -- preflight ------------------------------------------------------------------------------

    def _check_location(self, location: str) -> None:
        """Refuse a rendered location that is not a Secrets Manager name (no I/O)."""
        validate_secret_name(location)

    @guarded
    def check_writable(self, *, api_id: str, alias: str | None = None) -> None:
        """Raise before Unkey is called if this store could not write a key of ``api_id``.

        Besides the checks without I/O (every rendered name is a valid Secrets Manager name,
        so an alias such as ``web-server`` is refused here), a live preflight, once per store
        object and name: credentials resolve, and DescribeSecret of the key's name (a stand-in
        key_id) answers, normally "not found". Failures raise
        :class:`~unkey_secrets.ConfigurationError` saying what to fix.
        """
        super().check_writable(api_id=api_id, alias=alias)
        probe = self.key_location(api_id=api_id, key_id=_STAND_IN_KEY_ID)
        if self.preflight and probe not in self._checked:
            self._probe(probe)
            self._checked.add(probe)

    def _probe(self, name: str) -> None:
        failure: ConfigurationError
        try:
            self._secrets.describe(name)
            return
        except SecretNotFoundError:
            return
        except StoreAccessError as exc:
            failure = ConfigurationError(
                f"AWS refused DescribeSecret on {name} ({_reason(exc)}): check the credentials "
                "(AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the role) and that the "
                "writer policy policies/aws-writer.json is attached"
            )
        except StoreUnavailableError as exc:
            failure = ConfigurationError(
                f"could not reach Secrets Manager ({_reason(exc)}): check AWS_ENDPOINT_URL "
                "and the region (AWS_REGION)"
            )
        except StoreError as exc:
            failure = ConfigurationError(
                f"Secrets Manager did not answer the preflight as expected ({_reason(exc)})"
            )
        raise failure

    # -- writes ---------------------------------------------------------------------------------

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        name = validate_secret_name(path)
        value = self._encode(key)
        token = version_id_for(key.key_id)
        tags = {
            TAG_MANAGED_BY: MANAGED_BY,
            TAG_KIND: _KIND_KEY,
            TAG_KEY_ID: key.key_id,
            TAG_API_ID: key.api_id,
            **({TAG_ALIAS: key.alias} if key.alias else {}),
            **({TAG_REROLLED_FROM: key.rerolled_from} if key.rerolled_from else {}),
        }
        # Create first: a taken name answers ResourceExistsException, and only then is it
        # described. A repeated CreateSecret with the same token and value succeeds silently,
        # so a name this object already tried is described first (a retry or a repeat must
        # say created=False, not claim the creation twice).
        existing = self._describe(name) if name in self._attempted else None
        if existing is None:
            self._attempted.add(name)
            answer = self._create(name, token, value, tags)
            if answer is not None:
                return self._location(answer["ARN"], key, token, created=True)
            existing = self._describe_after_conflict(name)
        self._check_owned(existing, name)
        tagged_key_id = existing.tags.get(TAG_KEY_ID)
        if tagged_key_id != key.key_id:
            raise StoreConflictError(
                f"{name} already holds another key ({TAG_KEY_ID}={tagged_key_id!r})",
                store=self.name,
                location=name,
            )
        if AWSCURRENT not in (existing.stages(token) or ()):
            raise StoreConflictError(
                f"{name} is tagged for key {key.key_id} but its {AWSCURRENT} version is not ours",
                store=self.name,
                location=name,
            )
        return self._location(existing.arn, key, token, created=False)

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | _Unchecked | None
    ) -> StoredLocation:
        secret = validate_secret_name(path)
        key = dataclasses.replace(key, alias=alias)
        value = self._encode(key)
        token = version_id_for(key.key_id)
        if isinstance(expected, AliasState):
            return self._move_from(secret, key, token, value, expected)
        existing = self._describe(secret)
        if existing is None:
            tags = {TAG_MANAGED_BY: MANAGED_BY, TAG_KIND: _KIND_CURRENT, TAG_API_ID: key.api_id}
            answer = self._create(secret, token, value, tags)
            if answer is not None:
                return self._location(answer["ARN"], key, token, created=True, alias=alias)
            existing = self._describe_after_conflict(secret)
        self._check_owned(existing, secret)
        if existing.tags.get(TAG_KIND) != _KIND_CURRENT:
            raise StoreConflictError(
                f"{secret} holds a key of its own, not an alias",
                store=self.name,
                location=secret,
            )
        if AWSCURRENT in (existing.stages(token) or ()):
            return self._location(existing.arn, key, token, created=False, alias=alias)
        current = existing.holder_of(AWSCURRENT)
        if expected is None and current is not None:
            raise StoreConflictError(
                f"alias {secret} names a key already", store=self.name, location=secret
            )
        if existing.stages(token) is None and self._put_current(secret, token, value):
            return self._location(existing.arn, key, token, created=True, alias=alias)
        # Our version of this key is already there (e.g. going back to an earlier key): move
        # AWSCURRENT onto it; Secrets Manager moves AWSPREVIOUS to the version it leaves.
        params: dict[str, Any] = {
            "SecretId": secret,
            "VersionStage": AWSCURRENT,
            "MoveToVersionId": token,
        }
        if current is not None:
            params["RemoveFromVersionId"] = current
        self._call("update_secret_version_stage", secret, **params)
        return self._location(existing.arn, key, token, created=True, alias=alias)

    def _prepare_move(self, key: IssuedKey, path: str, alias: str, expected: AliasState) -> None:
        secret = validate_secret_name(path)
        key = dataclasses.replace(key, alias=alias)
        token = version_id_for(key.key_id)
        if expected.revision == token:
            return
        self._stage(secret, token, self._encode(key))
        self._prepared.set(secret, (token, expected.revision))

    def _stage(self, secret: str, token: str, value: str) -> None:
        """Add ``value`` as the alias's version ``token``, under a label of its own.

        Readers read AWSCURRENT: nothing they see changes. A version of this key already there
        (an earlier move, or this one prepared) is kept as it is.
        """
        with contextlib.suppress(ResourceExistsError):
            self._call(
                "put_secret_value",
                secret,
                SecretId=secret,
                ClientRequestToken=token,
                SecretString=value,
                VersionStages=[_MOVING],
            )

    def _move_from(
        self, secret: str, key: IssuedKey, token: str, value: str, expected: AliasState
    ) -> StoredLocation:
        """Move AWSCURRENT from ``expected.revision`` to ``key``'s version, or fail if it moved.

        The version is added under a label of its own first (unless :meth:`prepare_move` did
        it already); moving AWSCURRENT names the version that must hold it, so a concurrent
        move makes this one fail.
        """
        if expected.revision != token:
            if self._prepared.pop(secret) != (token, expected.revision):
                self._stage(secret, token, value)
            try:
                answer = self._call(
                    "update_secret_version_stage",
                    secret,
                    SecretId=secret,
                    VersionStage=AWSCURRENT,
                    MoveToVersionId=token,
                    RemoveFromVersionId=expected.revision,
                )
            except StoreConflictError:
                # Our own earlier move (its answer was lost) is a move done; anything else lost.
                existing = self._describe(secret)
                if existing is None or AWSCURRENT not in (existing.stages(token) or ()):
                    raise
                return self._location(existing.arn, key, token, created=False, alias=expected.alias)
        else:
            # The state read named this key: the alias must still be at that version.
            existing = self._describe(secret)
            if existing is None or AWSCURRENT not in (existing.stages(token) or ()):
                raise StoreConflictError(
                    f"alias {secret} was moved by someone else meanwhile; read it and retry",
                    store=self.name,
                    location=secret,
                )
            return self._location(existing.arn, key, token, created=False, alias=expected.alias)
        return self._location(answer["ARN"], key, token, created=True, alias=expected.alias)

    def _alias_exists(self, path: str, api_id: str, alias: str) -> bool:
        # DescribeSecret alone: the writer reads no value.
        return self._alias_version(path) is not None

    def _alias_version(self, path: str) -> str | None:
        """The VersionId holding AWSCURRENT on the alias at ``path``; None if there is none."""
        existing = self._alias_secret(path)
        return existing.holder_of(AWSCURRENT) if existing is not None else None

    def _alias_secret(self, path: str) -> SecretState | None:
        """DescribeSecret of the alias at ``path`` (ours, and an alias); None if there is none."""
        secret = validate_secret_name(path)
        existing = self._describe(secret)
        if existing is None:
            return None
        self._check_owned(existing, secret)
        if existing.tags.get(TAG_KIND) != _KIND_CURRENT:
            raise StoreConflictError(
                f"{secret} holds a key of its own, not an alias", store=self.name, location=secret
            )
        return existing

    def _alias_state(self, path: str, api_id: str, alias: str) -> AliasState | None:
        secret = validate_secret_name(path)
        # The tags and labels (DescribeSecret) and the current value (GetSecretValue of
        # AWSCURRENT, which names its VersionId) are read at once. The describe decides first,
        # as if it had been made first: a secret that is not ours, or no alias, is never
        # answered from the value read beside it.
        described, read = together(lambda: self._alias_secret(path), lambda: self._read(secret))
        failure = first_failure([described, read])
        if failure is not None and not isinstance(failure, Exception):
            raise failure
        existing: SecretState | None = described.get()
        current = existing.holder_of(AWSCURRENT) if existing is not None else None
        if existing is None or current is None:
            return None
        stored: StoredKey = read.get()
        return AliasState(
            alias=alias,
            api_id=api_id,
            key_id=stored.key_id,
            rerolled_from=stored.rerolled_from,
            # The version the value came from: a move names it (if the alias moved between
            # the two reads, the value's own version is the one this state describes).
            revision=stored.version or current,
            rotation_enabled=existing.rotation_enabled,
        )

    def _read_rotation(self, path: str) -> RotationRecord | None:
        from ...rotation.record import parse_rotation_fields

        name = validate_secret_name(path)
        try:
            response = self._call("get_secret_value", name, SecretId=name, VersionStage=AWSCURRENT)
        except SecretNotFoundError:
            return None
        text = response.get("SecretString")
        location = str(response.get("ARN") or name)
        data = load_stored_json(text, store=self.name, location=location)
        return parse_rotation_fields(data, store=self.name, location=location)

    def _write_rotation(self, record: RotationRecord, path: str) -> None:
        name = validate_secret_name(path)
        value = json.dumps(record.fields(), separators=(",", ":"), sort_keys=True)
        # One VersionId per revision: a second writer of the same revision is refused.
        token = str(uuid.uuid5(VERSION_NAMESPACE, f"{name}#{record.revision}"))
        try:
            if record.revision == 1:
                tags = {
                    TAG_MANAGED_BY: MANAGED_BY,
                    TAG_KIND: _KIND_ROTATION,
                    TAG_KEY_ID: record.from_key_id,
                    TAG_API_ID: record.api_id,
                }
                if self._create(name, token, value, tags) is None:
                    raise ResourceExistsError(f"{name} exists", store=self.name, location=name)
            else:
                # A revision follows the one this object wrote last: no DescribeSecret first.
                # Each revision has a VersionId of its own, so a writer that moved the record
                # on since holds this revision's VersionId with another value, and
                # PutSecretValue refuses it (ResourceExistsException); the same value again is
                # our own write, retried after its answer was lost (a no-op). Any other
                # revision is checked against the record's AWSCURRENT first.
                if self._written.get(name) != record.revision - 1:
                    self._check_revision(name, record.revision)
                self._call(
                    "put_secret_value",
                    name,
                    SecretId=name,
                    ClientRequestToken=token,
                    SecretString=value,
                )
        except ResourceExistsError:
            raise StoreConflictError(
                f"rotation record {name} was written by another run meanwhile",
                store=self.name,
                location=name,
            ) from None
        self._written.set(name, record.revision)

    def _check_revision(self, name: str, revision: int) -> None:
        """Raise StoreConflictError unless ``name``'s AWSCURRENT is revision ``revision - 1``.

        Revision ``revision`` itself is accepted too (a retry of a write whose answer was lost):
        its PutSecretValue is then a no-op with the same value, or refused with another one.
        """
        existing = self._describe(name)
        if existing is not None:
            self._check_owned(existing, name)
        current = existing.holder_of(AWSCURRENT) if existing is not None else None
        allowed = {
            str(uuid.uuid5(VERSION_NAMESPACE, f"{name}#{n}")) for n in (revision - 1, revision)
        }
        if current not in allowed:
            raise StoreConflictError(
                f"rotation record {name} is not at revision {revision - 1}: another run wrote it "
                "meanwhile",
                store=self.name,
                location=name,
            )

    def _put_current(self, secret: str, token: str, value: str) -> bool:
        """Add our version as AWSCURRENT; False if a version with our token already exists."""
        try:
            response = self._call(
                "put_secret_value",
                secret,
                SecretId=secret,
                ClientRequestToken=token,
                SecretString=value,
                VersionStages=[AWSCURRENT],
            )
        except ResourceExistsError:
            return False
        # A repeated token with the same value is ignored without moving any label.
        return AWSCURRENT in (response.get("VersionStages") or [AWSCURRENT])

    # -- reads ----------------------------------------------------------------------------------

    def _get(self, path: str) -> StoredKey:
        return self._read(validate_secret_name(path))

    def _get_current(self, path: str) -> StoredKey:
        return self._read(validate_secret_name(path))

    def _read(self, name: str, **selector: str) -> StoredKey:
        selector = selector or {"VersionStage": AWSCURRENT}
        response = self._call("get_secret_value", name, SecretId=name, **selector)
        # Decoded as a batch read decodes each of its values.
        return batch.decode(response, name)

    #: Why batch reads are off for this store object (BatchGetSecretValue refused or not
    #: supported); None while they are on.
    _batch_off: str | None = None

    def _get_many(self, refs: list[KeyRef], concurrency: int) -> list[StoredKey | StoreError]:
        """BatchGetSecretValue, 20 names a call (:func:`~.batch.read_many`)."""
        return batch.read_many(self, refs, concurrency)

    def _max_parallel_reads(self) -> int | None:
        return batch.pool_size(self._client)

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        """What DescribeSecret alone (no value read) says about the key stored at ``path``.

        A key we stored: the secret is tagged ours as a key's secret, its ``unkey-key-id`` tag
        names ``key_id``, and the version named after that key_id carries AWSCURRENT. A secret
        scheduled for deletion still counts: it can be restored with the key in it.
        """
        name = validate_secret_name(path)
        existing = self._describe(name)
        if existing is None:
            return None
        tags = existing.tags
        if (
            tags.get(TAG_MANAGED_BY) != MANAGED_BY
            or tags.get(TAG_KIND) != _KIND_KEY
            or tags.get(TAG_KEY_ID) != key_id
            or tags.get(TAG_API_ID) != api_id
        ):
            return None
        if AWSCURRENT not in (existing.stages(version_id_for(key_id)) or ()):
            return None
        return KeyEntry(
            api_id=api_id,
            key_id=key_id,
            alias=tags.get(TAG_ALIAS) or None,
            rerolled_from=tags.get(TAG_REROLLED_FROM) or None,
        )

    # -- helpers --------------------------------------------------------------------------------

    def _encode(self, key: IssuedKey) -> str:
        value = MaskedText(json.dumps(key_fields(key), separators=(",", ":")))
        size = len(value.encode("utf-8"))
        if size > MAX_VALUE_BYTES:
            raise InvalidInputError(
                "key", f"the stored value would be {size} bytes, over {MAX_VALUE_BYTES:,}"
            )
        return value

    def _create(
        self, name: str, token: str, value: str, tags: Mapping[str, str]
    ) -> dict[str, Any] | None:
        """Create ``name``; return the answer, or None if something already holds the name."""
        params: dict[str, Any] = {
            "Name": name,
            "ClientRequestToken": token,
            "SecretString": value,
            "Tags": _tag_list({**tags, **self.tags}),
        }
        if self.kms_key_id is not None:
            params["KmsKeyId"] = self.kms_key_id
        if self.description is not None:
            params["Description"] = self.description
        if self.replica_regions:
            params["AddReplicaRegions"] = [{"Region": r} for r in self.replica_regions]
        try:
            return self._call("create_secret", name, **params)
        except ResourceExistsError:
            return None

    def _describe(self, name: str) -> SecretState | None:
        """Describe ``name`` (metadata and tags, never the value); None if it does not exist."""
        try:
            return self._secrets.describe(name)
        except SecretNotFoundError:
            return None

    def _describe_after_conflict(self, name: str) -> SecretState:
        existing = self._describe(name)
        if existing is None:
            raise StoreConflictError(
                f"{name} was reported to exist but cannot be found; it changed under us",
                store=self.name,
                location=name,
            )
        return existing

    def _check_owned(self, existing: SecretState, name: str) -> None:
        if existing.deleted:
            raise StoreConflictError(
                f"{name} is scheduled for deletion; restore or purge it first",
                store=self.name,
                location=name,
            )
        if existing.tags.get(TAG_MANAGED_BY) != MANAGED_BY:
            raise NotOwnedError(
                f"{name} exists and was not created by unkey-secrets "
                f"(no tag {TAG_MANAGED_BY}={MANAGED_BY}); it is left as it is",
                store=self.name,
                location=name,
            )

    def _location(
        self,
        arn: str,
        key: IssuedKey,
        token: str,
        *,
        created: bool,
        alias: str | None = None,
    ) -> StoredLocation:
        return StoredLocation(
            store=self.name,
            location=arn,
            key_id=key.key_id,
            version=token,
            created=created,
            alias=alias,
        )

    def _call(self, method: str, location: str, **params: Any) -> dict[str, Any]:
        """Call ``method`` on the client, translating botocore errors without their text."""
        answer = call(
            getattr(self._client, method), operation=_operation(method), location=location, **params
        )
        return cast("dict[str, Any]", answer)


_STAND_INS = {"api_id": "api_x", "key_id": "key_x", "alias": "x"}


def _reason(exc: StoreError) -> str:
    """The error code or failure class our message named, after its ``:`` or in brackets."""
    text = str(exc)
    if "(" in text and text.endswith(")"):
        return text[text.rindex("(") + 1 : -1]
    return text.rsplit(": ", 1)[-1]
