"""The Secrets Manager store's boto3 clients: the credential chain, and a role to assume.

:class:`AwsSession` holds one credential source, from which it builds a ``secretsmanager``
client per region (so the clients of a :class:`~.failover.RegionFailoverStore` share it):

* without a role, botocore's default chain (or the AWS config files' ``profile``), resolved by
  botocore as for any boto3 client;
* with an :class:`AssumeRole`, that role's temporary credentials, obtained by STS AssumeRole
  with the chain's credentials and renewed by botocore's own refreshable credentials
  (``AssumeRoleCredentialFetcher`` behind ``DeferredRefreshableCredentials``, as botocore does
  for a profile's ``role_arn``): nothing is asked of STS until the first request; then a
  request made within the *advisory* window before the credentials expire renews them (one
  thread renews, the others go on with the current ones), and within the *mandatory* window
  every request waits for the renewal. The windows are botocore's (15 and 10 minutes) for a
  session of an hour or more, and a third and a quarter of a shorter one (300 s and 225 s for
  900 s), so a short session is still used most of its life. The credentials are kept in
  memory only (no file cache).

Which role is assumed: the one given (``role_arn`` here, ``UNKEY_SECRETS_AWS_ROLE_ARN``, the
CLI's ``--role-arn``), never ``AWS_ROLE_ARN``. botocore reads ``AWS_ROLE_ARN`` and
``AWS_ROLE_SESSION_NAME`` only with ``AWS_WEB_IDENTITY_TOKEN_FILE`` (EKS IRSA, web identity);
without the token file it ignores them, and so do we. When the chain's credentials already
are the role given (its web identity role, or its profile's ``role_arn``), it is not assumed
a second time: the chain's credentials are used as they are.

boto3 and botocore are imported when a session is built, never when this module is imported.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..._config import setting_given
from ..._errors import (
    ConfigurationError,
    InvalidInputError,
    StoreAccessError,
    StoreError,
    StoreUnavailableError,
)
from ..._redact import hold
from ..._validate import require_tls_unless_loopback
from .errors import STORE, error_code
from .settings import DEFAULT_TIMEOUT_SECONDS

__all__ = [
    "DEFAULT_ROLE_SESSION_NAME",
    "MAX_DURATION_SECONDS",
    "METHOD",
    "MIN_DURATION_SECONDS",
    "AssumeRole",
    "AwsSession",
    "check_duration",
    "check_external_id",
    "check_role_arn",
    "check_session_name",
    "refresh_windows",
]

_log = logging.getLogger("unkey_secrets.stores.aws")

#: The RoleSessionName sent when none is given: what CloudTrail shows after ``assumed-role/ROLE/``.
DEFAULT_ROLE_SESSION_NAME = "unkey-secrets"
#: STS's bounds on DurationSeconds, in seconds (15 minutes, 12 hours). A role's own
#: ``MaxSessionDuration`` may be lower, and a role assumed from a role is held to 1 hour.
MIN_DURATION_SECONDS = 900
MAX_DURATION_SECONDS = 43_200
#: The session STS grants when DurationSeconds is not sent, in seconds.
_STS_DEFAULT_DURATION = 3600
#: botocore's refresh windows, in seconds before expiry: advisory (one thread renews) and
#: mandatory (every request waits for the renewal).
_ADVISORY_SECONDS = 15 * 60
_MANDATORY_SECONDS = 10 * 60
#: botocore's default connection pool size.
_DEFAULT_MAX_CONNECTIONS = 10
#: The credential method our refreshable credentials report (``credentials.method``).
METHOD = "unkey-secrets-assume-role"

# STS's rules: an IAM role ARN (20-2048 characters, the role's path and name of
# [\w+=,.@-]); a RoleSessionName of 2-64 of [\w+=,.@-]; an ExternalId of 2-1224 of
# [\w+=,.@:/-].
_ROLE_ARN = re.compile(r"arn:aws(-[a-z]+)*:iam::\d{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}")
_SESSION_NAME = re.compile(r"[\w+=,.@-]{2,64}", re.ASCII)
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)


def check_role_arn(value: str) -> str:
    """Return ``value`` if it is an IAM role ARN (``arn:aws:iam::123456789012:role/name``).

    Raises ValueError saying what is expected, never quoting ``value``.
    """
    if not isinstance(value, str) or len(value) > 2048 or not _ROLE_ARN.fullmatch(value):
        raise ValueError(
            "expected an IAM role ARN such as arn:aws:iam::123456789012:role/unkey-reader"
        )
    return value


def check_session_name(value: str) -> str:
    """Return ``value`` if STS accepts it as a RoleSessionName (2-64 of ``[A-Za-z0-9_+=,.@-]``)."""
    if not isinstance(value, str) or not _SESSION_NAME.fullmatch(value):
        raise ValueError("expected 2-64 characters of letters, digits and _+=,.@-")
    return value


def check_external_id(value: str) -> str:
    """Return ``value`` if STS accepts it as an ExternalId (2-1224 of ``[A-Za-z0-9_+=,.@:/-]``).

    The error never quotes the value.
    """
    if not isinstance(value, str) or not _EXTERNAL_ID.fullmatch(value):
        raise ValueError("expected 2-1224 characters of letters, digits and _+=,.@:/-")
    return value


def check_duration(value: int) -> int:
    """Return ``value`` if it is a whole number of seconds from 900 to 43200."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not MIN_DURATION_SECONDS <= value <= MAX_DURATION_SECONDS
    ):
        raise ValueError(
            f"expected whole seconds from {MIN_DURATION_SECONDS} to {MAX_DURATION_SECONDS}"
        )
    return value


def refresh_windows(duration_seconds: int | None) -> tuple[int, int]:
    """The (advisory, mandatory) refresh windows, in seconds before expiry, for a session.

    botocore's own (900 s and 600 s) for a session of an hour or more (STS's default when no
    duration is given); a third and a quarter of a shorter one.
    """
    duration = duration_seconds or _STS_DEFAULT_DURATION
    return min(_ADVISORY_SECONDS, duration // 3), min(_MANDATORY_SECONDS, duration // 4)


@dataclass(frozen=True)
class AssumeRole:
    """A role to assume with STS AssumeRole, named as in the AWS config files' profiles.

    ``role_arn`` is the IAM role (``arn:aws:iam::123456789012:role/name``); ``external_id``
    the ExternalId its trust policy asks for (``sts:ExternalId``; not shown in the repr);
    ``role_session_name`` the session's name in CloudTrail (default ``unkey-secrets``);
    ``duration_seconds`` the session's length, 900-43200 seconds (None: STS's default, an
    hour; the role's ``MaxSessionDuration`` must allow it). Each is checked when built:
    :class:`~unkey_secrets.InvalidInputError` names the field, never its value.
    """

    role_arn: str
    external_id: str | None = field(default=None, repr=False)
    role_session_name: str | None = None
    duration_seconds: int | None = None

    def __post_init__(self) -> None:
        checks: list[tuple[str, object, Callable[[Any], object]]] = [
            ("role_arn", self.role_arn, check_role_arn),
            ("external_id", self.external_id, check_external_id),
            ("role_session_name", self.role_session_name, check_session_name),
            ("duration_seconds", self.duration_seconds, check_duration),
        ]
        for name, value, check in checks:
            if value is None and name != "role_arn":
                continue
            try:
                check(value)
            except ValueError as exc:
                raise InvalidInputError(name, str(exc)) from None

    @property
    def session_name(self) -> str:
        """The RoleSessionName sent: ``role_session_name``, or ``unkey-secrets``."""
        return self.role_session_name or DEFAULT_ROLE_SESSION_NAME

    def assume_role_arguments(self) -> dict[str, Any]:
        """The AssumeRole parameters besides RoleArn (botocore's fetcher adds that one)."""
        arguments: dict[str, Any] = {"RoleSessionName": self.session_name}
        if self.external_id is not None:
            arguments["ExternalId"] = self.external_id
        if self.duration_seconds is not None:
            arguments["DurationSeconds"] = self.duration_seconds
        return arguments


class _NoCache(dict):  # type: ignore[type-arg]
    """botocore's fetcher cache, kept empty: the refreshable credentials are the one copy."""

    def __contains__(self, key: object) -> bool:
        return False

    def __setitem__(self, key: Any, value: Any) -> None:
        return None


def _local_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _expired_at(fetched: Any, now: dt.datetime) -> str | None:
    """The expiry of credentials ``fetched`` by botocore's fetcher if ``now`` is past it, else None.

    None too when the expiry cannot be read (botocore then judges it as it does).
    """
    from botocore.utils import parse_timestamp

    text = fetched.get("expiry_time") if isinstance(fetched, dict) else None
    if not isinstance(text, str):
        return None
    try:
        expiry = parse_timestamp(text)
        passed = expiry <= now
    except (ValueError, TypeError, OverflowError):
        return None
    return expiry.isoformat() if passed else None


def _configuration_error(exc: BaseException) -> ConfigurationError:
    """The ConfigurationError for botocore's error while building a session or client."""
    from botocore.exceptions import NoRegionError, ProfileNotFound

    if isinstance(exc, ProfileNotFound):
        profile = exc.kwargs.get("profile")
        given = setting_given("profile", "AWS_PROFILE, or the profile setting")
        return ConfigurationError(
            f"the AWS profile {profile!r} is not in the AWS config or credentials file: fix "
            f"the profile given ({given}), or unset it to use the default credential chain"
        )
    if isinstance(exc, NoRegionError):
        return ConfigurationError(
            "no AWS region: set AWS_REGION or AWS_DEFAULT_REGION (or pass region=...) for the "
            "Secrets Manager store"
        )
    return ConfigurationError(
        f"the AWS configuration could not be loaded ({type(exc).__name__}): check the "
        "profile and the AWS config files"
    )


def _retries_configured(core: Any) -> bool:
    """Whether AWS_MAX_ATTEMPTS / AWS_RETRY_MODE or the profile's config set the retries."""
    if os.environ.get("AWS_MAX_ATTEMPTS") or os.environ.get("AWS_RETRY_MODE"):
        return True
    scoped = core.get_scoped_config()
    return any(scoped.get(name) is not None for name in ("max_attempts", "retry_mode"))


def _config(core: Any, max_connections: int | None, timeout: float) -> Any:
    from botocore.config import Config

    options: dict[str, Any] = {
        "max_pool_connections": max_connections or _DEFAULT_MAX_CONNECTIONS,
        # The deadline (apply_policy) bounds the whole request; each part stays within it.
        "connect_timeout": timeout,
        "read_timeout": timeout,
    }
    if not _retries_configured(core):
        # One retry layer: the flows retry a failed put or alias move (RetryPolicy), and a
        # failover reader moves on to the next region, so botocore sends each request once.
        # AWS_MAX_ATTEMPTS / AWS_RETRY_MODE (or the config file's) still win.
        options["retries"] = {"mode": "standard", "total_max_attempts": 1}
    return Config(**options)


def _region_of_chain(region: str | None) -> str | None:
    # botocore reads AWS_DEFAULT_REGION only; AWS_REGION (what Lambda and the SDKs of other
    # languages set) is honoured here, and wins, as in AwsSettings.
    return region or os.environ.get("AWS_REGION") or None


def _chain_role(core: Any, method: str | None) -> str | None:
    """The role the chain's credentials already are, when botocore assumed one for them.

    botocore's web identity provider reads ``AWS_ROLE_ARN`` first, then the profile's
    ``role_arn``; its assume-role provider, the profile's ``role_arn``.
    """
    if method == "assume-role-with-web-identity":
        return os.environ.get("AWS_ROLE_ARN") or core.get_scoped_config().get("role_arn")
    if method == "assume-role":
        role = core.get_scoped_config().get("role_arn")
        return role if isinstance(role, str) else None
    return None


def _assume_role_failure(exc: BaseException, role: AssumeRole) -> StoreError:
    """Our error for botocore's failure to assume ``role`` (no AWS text, no credential)."""
    from botocore.exceptions import ClientError

    from ...transport.policy import TransportBreachError

    where = f"STS AssumeRole of {role.role_arn}"
    if isinstance(exc, ClientError):
        code = error_code(exc) or "Unknown"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("Throttling", "ThrottlingException") or (
            isinstance(status, int) and (status == 429 or status >= 500)
        ):
            return StoreUnavailableError(
                f"{where} failed ({code}); the credentials could not be renewed",
                store=STORE,
                location=role.role_arn,
            )
        hint = {
            "AccessDenied": "the caller needs sts:AssumeRole on the role, and the role's "
            "trust policy must allow the caller (and the ExternalId given, if it asks for one)",
            "ValidationError": "check duration_seconds against the role's maximum session "
            "duration (a role assumed from a role: at most 3600)",
            "RegionDisabledException": "activate STS in this region, or use another region",
            "ExpiredToken": "the credentials the role is assumed with have expired",
        }.get(code, "check the role and the credentials it is assumed with")
        return StoreAccessError(
            f"{where} was refused ({code}): {hint}", store=STORE, location=role.role_arn
        )
    if isinstance(exc, TransportBreachError):
        return StoreUnavailableError(
            f"{where} got no answer in time ({type(exc).__name__})",
            store=STORE,
            location=role.role_arn,
        )
    from botocore.exceptions import (
        ConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, (ConnectionError, HTTPClientError, ReadTimeoutError)):
        return StoreUnavailableError(
            f"could not reach STS for {where} ({type(exc).__name__})",
            store=STORE,
            location=role.role_arn,
        )
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return StoreAccessError(
            f"no AWS credentials to make the {where} with ({type(exc).__name__}): the "
            "default chain or the profile must give some",
            store=STORE,
            location=role.role_arn,
        )
    return StoreError(f"{where} failed ({type(exc).__name__})", store=STORE, location=role.role_arn)


class AwsSession:
    """One AWS credential source, and the ``secretsmanager`` clients built from it.

    ``profile`` is a profile of the AWS config files (None: ``AWS_PROFILE``, else the default
    chain). ``role`` is a role to assume with those credentials; its STS client uses
    ``region`` (else ``AWS_REGION``/``AWS_DEFAULT_REGION``), ``sts_endpoint_url`` (else
    botocore's: ``AWS_ENDPOINT_URL_STS``, ``AWS_ENDPOINT_URL``, the config file, the regional
    STS endpoint), ``timeout`` seconds per request and the transport policy of every client
    of the store (https unless loopback, a deadline, a byte budget). ``time_fetcher`` (aware
    datetimes) is the clock botocore compares the credentials' expiry with: for tests.

    Building it resolves the chain's credentials when a role is given (no request to STS).
    Raises :class:`~unkey_secrets.ConfigurationError` for an unknown profile, no region, no
    credentials to assume the role with, or a plain-http STS endpoint to a remote host, and
    :class:`~unkey_secrets.InvalidInputError` for a bad endpoint URL. When the role is used,
    a refused AssumeRole raises :class:`~unkey_secrets.StoreAccessError` from the request that
    needed the credentials, an unreachable or throttled STS
    :class:`~unkey_secrets.StoreUnavailableError`; neither quotes AWS's text or a credential.
    """

    def __init__(
        self,
        *,
        profile: str | None = None,
        role: AssumeRole | None = None,
        region: str | None = None,
        sts_endpoint_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        time_fetcher: Callable[[], dt.datetime] | None = None,
    ) -> None:
        try:
            import boto3  # noqa: F401 (the extra's presence, checked before anything else)
            import botocore.session  # noqa: F401
        except ImportError:
            raise ConfigurationError(
                "the AWS Secrets Manager store needs boto3: pip install 'unkey-secrets[aws]'"
            ) from None
        self.profile = profile
        self.role = role
        self.timeout = timeout
        self._sts_region = _region_of_chain(region)
        self._sts_endpoint_url = sts_endpoint_url or None
        self._time_fetcher = time_fetcher or _local_now
        if self._sts_endpoint_url is not None:
            from .settings import check_endpoint_url

            try:
                check_endpoint_url(self._sts_endpoint_url)
            except ValueError as exc:
                raise InvalidInputError("sts_endpoint_url", str(exc)) from None
        # A profile given explicitly (a setting, the CLI's --profile) wins over AWS_PROFILE,
        # which botocore reads itself when none is given.
        self._chain = self._new_core()
        #: The botocore session the Secrets Manager clients are made from.
        self.core = self._chain if role is None else self._role_core(role)

    def _new_core(self) -> Any:
        import botocore.session

        if self.profile:
            return botocore.session.Session(profile=self.profile)
        return botocore.session.get_session()

    def _role_core(self, role: AssumeRole) -> Any:
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            CredentialProvider,
            CredentialResolver,
            DeferredRefreshableCredentials,
        )
        from botocore.exceptions import BotoCoreError

        failure: ConfigurationError
        try:
            source = self._chain.get_credentials()
            method = getattr(source, "method", None)
            held = _chain_role(self._chain, method) if source is not None else None
        except BotoCoreError as exc:
            failure = _configuration_error(exc)
            raise failure from None
        if source is None:
            raise ConfigurationError(
                f"no AWS credentials to assume {role.role_arn} with: the default chain "
                "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance or task "
                "role, web identity) or the profile setting must give some"
            )
        if held == role.role_arn:
            _log.info(
                "the AWS credential chain already holds %s (%s); it is not assumed again",
                role.role_arn,
                method,
            )
            return self._chain
        # The ExternalId is kept out of every log record (botocore logs each request's body at
        # DEBUG), as it is kept out of reprs and errors.
        hold(role.external_id)
        # An STS client is built now, without a request: its endpoint is checked up front.
        self._sts_client(None)
        fetcher = AssumeRoleCredentialFetcher(
            client_creator=self._sts_creator,
            source_credentials=source,
            role_arn=role.role_arn,
            extra_args=role.assume_role_arguments(),
            cache=_NoCache(),
        )

        def fetch() -> dict[str, Any]:
            problem: StoreError
            try:
                fetched = fetcher.fetch_credentials()
            except StoreError:
                raise
            except Exception as exc:  # noqa: BLE001 (botocore's, translated without its text)
                problem = _assume_role_failure(exc, role)
            else:
                expired = _expired_at(fetched, self._time_fetcher())
                if expired is None:
                    return fetched
                # botocore would raise a bare RuntimeError for these, which no caller of a
                # store expects (a reader would neither serve its cached key nor say why).
                problem = StoreAccessError(
                    f"STS AssumeRole of {role.role_arn} returned credentials that expire at "
                    f"{expired}, which this machine's clock has already passed: check the "
                    "clock (NTP), or the STS endpoint",
                    store=STORE,
                    location=role.role_arn,
                )
            # Outside the handler: botocore's error (AWS's text) is neither cause nor context.
            raise problem

        advisory, mandatory = refresh_windows(role.duration_seconds)

        class RoleCredentials(DeferredRefreshableCredentials):
            # botocore's RefreshableCredentials takes these windows as advisory_timeout and
            # mandatory_timeout; its deferred variant keeps the class's, so they are set here.
            _advisory_refresh_timeout: int
            _mandatory_refresh_timeout: int

        credentials = RoleCredentials(
            refresh_using=fetch, method=METHOD, time_fetcher=self._time_fetcher
        )
        credentials._advisory_refresh_timeout = advisory
        credentials._mandatory_refresh_timeout = mandatory

        class RoleProvider(CredentialProvider):
            METHOD = METHOD
            CANONICAL_NAME = None

            def load(self) -> Any:
                return credentials

        core = self._new_core()
        core.register_component("credential_provider", CredentialResolver([RoleProvider()]))
        return core

    def _sts_creator(self, service_name: str, **kwargs: Any) -> Any:
        """The fetcher's client_creator: an STS client, held to the transport policy."""
        return self._sts_client(kwargs)

    def _sts_client(self, keys: dict[str, Any] | None) -> Any:
        """An STS client with ``keys`` (botocore's credential keywords; None: the chain's)."""
        from botocore.exceptions import NoRegionError, ProfileNotFound

        from ...transport.botocore import apply_policy

        failure: ConfigurationError
        try:
            client = self._chain.create_client(
                "sts",
                region_name=self._sts_region,
                endpoint_url=self._sts_endpoint_url,
                config=_config(self._chain, None, self.timeout),
                **(keys or {}),
            )
        except (ProfileNotFound, NoRegionError) as exc:
            failure = _configuration_error(exc)
        else:
            endpoint = getattr(client.meta, "endpoint_url", None)
            if isinstance(endpoint, str):
                try:
                    require_tls_unless_loopback(endpoint, _STS_ENDPOINT_SETTINGS)
                except ValueError as exc:
                    raise ConfigurationError(str(exc)) from None
            apply_policy(client, deadline=self.timeout)
            return client
        raise failure

    def client(
        self,
        region: str | None = None,
        *,
        endpoint_url: str | None = None,
        max_connections: int | None = None,
        timeout: float | None = None,
    ) -> Any:
        """A boto3 ``secretsmanager`` client in ``region`` with this session's credentials.

        ``region`` None: ``AWS_REGION``, else botocore's (``AWS_DEFAULT_REGION``, the profile).
        ``endpoint_url`` None: botocore's (``AWS_ENDPOINT_URL_SECRETS_MANAGER``,
        ``AWS_ENDPOINT_URL``, the config file, AWS's regional endpoint). ``max_connections``
        sizes the pool (botocore keeps 10); ``timeout`` (seconds, default the session's) is
        the client's connect and read timeout. botocore's retries are off (one attempt) unless
        AWS_MAX_ATTEMPTS, AWS_RETRY_MODE or the profile set them. The transport policy is
        applied by the store, not here. Raises :class:`~unkey_secrets.ConfigurationError` for
        an unknown profile or no region.
        """
        import boto3
        from botocore.exceptions import NoRegionError, ProfileNotFound

        failure: ConfigurationError
        try:
            session = boto3.session.Session(
                botocore_session=self.core, region_name=_region_of_chain(region)
            )
            config = _config(self.core, max_connections, timeout or self.timeout)
            return session.client("secretsmanager", endpoint_url=endpoint_url, config=config)
        except (ProfileNotFound, NoRegionError) as exc:
            failure = _configuration_error(exc)
        # Raised outside the except block: botocore's error is not chained.
        raise failure


#: Where the STS client's endpoint can come from, named when it is refused.
_STS_ENDPOINT_SETTINGS = (
    "the STS endpoint (sts_endpoint_url, AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL or "
    "endpoint_url in the AWS config file)"
)
