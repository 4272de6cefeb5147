"""Build an hvac client from :class:`VaultSettings` and log it in.

Auth methods: ``token`` (``VAULT_TOKEN``, else ``~/.vault-token`` as the vault CLI does),
``approle`` (role_id + secret_id), ``kubernetes`` (role + the service account JWT), ``jwt``
(role + a JWT given directly or read from a file), ``aws`` (role; a signed
``sts:GetCallerIdentity`` request made with credentials from botocore's standard chain),
``cert`` (the TLS client certificate of ``VAULT_CLIENT_CERT``/``VAULT_CLIENT_KEY``, an optional
role name) and ``agent`` (no token: a Vault Agent or Proxy at ``VAULT_AGENT_ADDR`` adds its
auto-auth token to each request it forwards).
Credentials are never logged or put in an error message: each one is held
(:func:`unkey_secrets._redact.hold`) as soon as it is read, so every log record and every line
``http.client`` debug output prints has it masked, and a login refuses to start while
``http.client`` debug output is on. :func:`login` and :func:`read_token` are boundaries
(:func:`unkey_secrets._redact.guarded`): whatever ends them (a refused login, an answer that
is no login answer, a ``KeyboardInterrupt`` mid-request) leaves no frame it unwound through
with a role_id, a secret_id, a JWT or a token in its locals; our own errors are raised
outside ``except`` blocks, so none is chained to hvac's or requests' (which hold the body).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..._errors import ConfigurationError, StoreAccessError, StoreError, UnkeySecretsError
from ..._redact import check_http_debug, guarded, hold
from .errors import STORE, require_hvac, translate
from .settings import VaultSettings

if TYPE_CHECKING:
    import hvac
    import requests

__all__ = [
    "KUBERNETES_JWT_PATH",
    "Lease",
    "build_client",
    "check_client_cert",
    "lease_of",
    "login",
    "read_token",
]

#: Where Kubernetes mounts a pod's service account token.
KUBERNETES_JWT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

_DEFAULT_MOUNTS = {
    "approle": "approle",
    "kubernetes": "kubernetes",
    "jwt": "jwt",
    "aws": "aws",
    "cert": "cert",
}

#: The methods that never log in: the token is given (token) or added by an agent (agent).
_NO_LOGIN = frozenset({"token", "agent"})


class Lease(NamedTuple):
    """How long a Vault token lives, and whether it may be renewed.

    ``ttl``: seconds from when it was read (0: no expiry); ``renewable``: whether
    ``auth/token/renew-self`` may extend it.
    """

    ttl: float
    renewable: bool


def lease_of(answer: object, *, section: str) -> Lease | None:
    """The :class:`Lease` in a Vault answer; None when it has none.

    A login or renew answer has it under ``section="auth"`` (``lease_duration``), a
    ``lookup-self`` answer under ``section="data"`` (``ttl``).
    """
    body = answer.get(section) if isinstance(answer, Mapping) else None
    if not isinstance(body, Mapping):
        return None
    ttl = body.get("lease_duration" if section == "auth" else "ttl")
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl < 0:
        return None
    if ttl == 0 and section == "data" and body.get("expire_time"):
        # lookup-self rounds down: a token in its last second reads ttl 0, like one that never
        # expires, but it has an expire_time. Renew it now rather than take it for immortal.
        return Lease(_LAST_SECOND, body.get("renewable") is True)
    return Lease(float(ttl), body.get("renewable") is True)


#: The lease given to a token that lookup-self says ends within the second.
_LAST_SECOND = 0.001


@guarded
def read_token(settings: VaultSettings) -> str | None:
    """Return ``VAULT_TOKEN``, else the token the vault CLI saved in ``~/.vault-token``.

    None when neither is set (or the file cannot be read).
    """
    if settings.token is not None and settings.token.get_secret_value():
        hold(settings.token)
        return settings.token.get_secret_value()
    try:
        saved = (Path.home() / ".vault-token").read_text(encoding="utf-8").strip()
    except (OSError, RuntimeError, UnicodeDecodeError):
        return None
    hold(saved)
    return saved or None


def check_client_cert(settings: VaultSettings) -> tuple[str, str] | None:
    """The ``(certificate, key)`` files to present on every TLS connection; None when unset.

    Both files are loaded now, as a TLS connection would load them, so a missing or unreadable
    file, a file that is no PEM certificate or key, an encrypted key (nothing would supply
    its passphrase) or a key that does not match the certificate is a
    :class:`~unkey_secrets.ConfigurationError` at start, naming the variable and the path, never
    a file's contents.
    """
    cert, key = settings.client_cert, settings.client_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigurationError(
            "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together: set both or neither"
        )
    for variable, path in (("VAULT_CLIENT_CERT", cert), ("VAULT_CLIENT_KEY", key)):
        if _path_shown(path) is None:
            raise ConfigurationError(
                f"{variable} holds what looks like the PEM text itself (or its base64), not the "
                f"path of a file: write it to a file and set {variable} to that file's path"
            )
        problem: str | None = None
        try:
            with open(path, "rb"):
                pass
        except (OSError, ValueError) as exc:
            problem = type(exc).__name__
        if problem is not None:
            # Raised outside the except block: nothing is chained.
            raise ConfigurationError(f"{variable} names {path}, which cannot be read ({problem})")
    import ssl

    failure: str | None = None
    try:
        ssl.create_default_context().load_cert_chain(cert, key, password=_no_passphrase)
    except (ssl.SSLError, OSError, ValueError) as exc:
        failure = type(exc).__name__
    if failure is not None:
        raise ConfigurationError(
            f"VAULT_CLIENT_CERT ({cert}) and VAULT_CLIENT_KEY ({key}) do not load as a PEM "
            f"certificate and its matching, unencrypted private key ({failure})"
        )
    return cert, key


#: A path longer than this is taken for a file's contents (Linux's PATH_MAX is 4096).
_MAX_PATH = 4096
#: A run of base64 this long, and nothing else, is taken for a key or certificate encoded so.
_BASE64 = re.compile(r"[A-Za-z0-9+/=]{64,}")


def _path_shown(value: str) -> str | None:
    """``value`` if an error may quote it as a file's path; None if it may be the key itself.

    A client key given as its contents (the PEM text, or its base64 as a Kubernetes secret
    holds it) rather than the path of a file is never quoted: it is the private key.
    """
    if (
        len(value) > _MAX_PATH
        or "-----" in value
        or any(ord(char) < 32 or ord(char) == 127 for char in value)
        or _BASE64.fullmatch(value.strip())
    ):
        return None
    return value


def _no_passphrase() -> bytes:
    # An encrypted key fails to load rather than prompting on the terminal for a passphrase.
    return b""


def build_client(
    settings: VaultSettings, *, session: requests.Session | None = None
) -> hvac.Client:
    """Return an hvac client for ``settings`` (not yet logged in unless the method is token).

    Requests go to :attr:`VaultSettings.address` (``VAULT_AGENT_ADDR`` when set, else
    ``VAULT_ADDR``). The client is held to the transport policy
    (:mod:`unkey_secrets.transport.requests`): TLS is always verified (``VAULT_CACERT`` or
    ``VAULT_CAPATH`` name a private CA, else ``REQUESTS_CA_BUNDLE``), redirects are never
    followed (a request body is never replayed to another address), each request ends within
    ``settings.timeout`` seconds, whole answer included, and an answer is at most
    :data:`~unkey_secrets.transport.DEFAULT_MAX_ANSWER_BYTES`. The client certificate of
    ``VAULT_CLIENT_CERT``/``VAULT_CLIENT_KEY``, when set, is checked now
    (:func:`check_client_cert`) and presented on every TLS connection. Proxies
    (``HTTPS_PROXY``, ``NO_PROXY``: none for plain http) and the CA bundle are read from the
    environment now, once. A ``session`` passed in keeps its own proxies and environment
    settings; the policy's adapter is mounted on it. With the ``agent`` method the client has
    no token: the agent adds its own.
    """
    hvac_module = require_hvac()
    from ...transport.requests import apply_policy, build_session

    url = settings.address
    if not url:
        raise ConfigurationError(
            "neither VAULT_ADDR nor VAULT_AGENT_ADDR is set: where is Vault (or its agent)?"
        )
    cert = check_client_cert(settings)
    verify: bool | str = settings.cacert or settings.capath or True
    if session is None:
        session = build_session(url, verify=verify, cert=cert)
    else:
        session.verify = verify
        if cert is not None:
            session.cert = cert
        apply_policy(session)
    # hvac prefers the session's verify over its own argument: pass what the session holds.
    verify = session.verify
    token = read_token(settings) if settings.auth_method == "token" else None
    if settings.auth_method == "token" and token is None:
        raise ConfigurationError("no Vault token: set VAULT_TOKEN or log in with the vault CLI")
    client: hvac.Client = hvac_module.Client(
        url=url,
        # An empty string, not None: hvac would otherwise read VAULT_TOKEN and ~/.vault-token.
        token=token or "",
        cert=cert,
        verify=verify,
        timeout=settings.timeout,
        namespace=settings.namespace,
        session=session,
        allow_redirects=False,
    )
    return client


@guarded
def login(client: hvac.Client, settings: VaultSettings) -> Lease | None:
    """Log ``client`` in with the method ``settings.auth_method`` names (token, agent: no login).

    Returns the new token's :class:`Lease` (None for the token and agent methods, or when
    Vault's answer does not say).

    Raises :class:`~unkey_secrets.ConfigurationError` for a missing credential or role,
    :class:`~unkey_secrets.StoreAccessError` when Vault refuses the login or answers it
    without a token we can read (``{"auth": null}``, ``{}``, JSON too deeply nested), and the
    errors of :func:`~unkey_secrets.stores.vault.errors.translate` when Vault cannot be reached
    or breaks the transport policy. None of them is chained or quotes the answer.
    """
    method = settings.auth_method
    if method in _NO_LOGIN:
        return None
    mount = settings.auth_mount or _DEFAULT_MOUNTS[method]
    location = f"auth/{mount}/login"
    # The login body carries the credential: refuse before it is built, not only before a write.
    check_http_debug()
    import requests
    from hvac import exceptions as hve

    error: StoreError | None = None
    answer: object = None
    try:
        answer = _LOGINS[method](client, settings, mount)
    except UnkeySecretsError:
        raise  # ours, worded without a credential
    except (hve.VaultError, requests.exceptions.RequestException) as exc:
        error = _login_error(exc, method=method, location=location)
    except (LookupError, TypeError, AttributeError, ValueError, RecursionError) as exc:
        # hvac reads answer["auth"]["client_token"]: an answer that is no login answer
        # ({"auth": null}, {}, JSON nested too deeply) fails there, not as a VaultError.
        error = StoreAccessError(
            f"Vault answered the {method} login at {location} without a token we can read "
            f"({type(exc).__name__})",
            store=STORE,
            location=location,
        )
    except Exception as exc:  # noqa: BLE001 (the transport policy's breaches, and the like)
        error = translate(exc, operation=f"{method} login", location=location)
    if error is not None:
        # Raised outside the except block: nothing (request body included) is chained.
        raise error
    if not client.adapter.token:
        raise StoreAccessError(
            f"{method} login at {location} returned no token", store=STORE, location=location
        )
    # The token Vault issued is a credential too, sent with every later request.
    hold(client.adapter.token)
    return lease_of(answer, section="auth")


def _login_error(exc: Exception, *, method: str, location: str) -> StoreError:
    from hvac import exceptions as hve

    if isinstance(exc, (hve.InvalidRequest, hve.InvalidPath)):
        # Vault answers bad credentials or an unknown role with 400 (sometimes 404 for an
        # unknown mount): either way the login was refused.
        return StoreAccessError(
            f"Vault refused the {method} login at {location} ({type(exc).__name__})",
            store=STORE,
            location=location,
        )
    return translate(exc, operation=f"{method} login", location=location)


def _require(value: str | None, what: str, method: str) -> str:
    if not value:
        raise ConfigurationError(f"Vault {method} auth needs {what}")
    return value


def _read_jwt(settings: VaultSettings, method: str, default_path: str | None) -> str:
    if settings.jwt is not None and settings.jwt.get_secret_value():
        hold(settings.jwt)
        return settings.jwt.get_secret_value()
    path = settings.jwt_path or default_path
    if path is None:
        raise ConfigurationError(
            f"Vault {method} auth needs UNKEY_SECRETS_VAULT_JWT or UNKEY_SECRETS_VAULT_JWT_PATH"
        )
    failure: str | None = None
    try:
        jwt = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        failure = type(exc).__name__
    if failure is not None:
        # Raised outside the except block: the read's error is not its context.
        raise ConfigurationError(
            f"cannot read the JWT for Vault {method} auth from {path} ({failure})"
        )
    if not jwt:
        raise ConfigurationError(f"the JWT file {path} for Vault {method} auth is empty")
    hold(jwt)
    return jwt


def _approle(client: hvac.Client, settings: VaultSettings, mount: str) -> Any:
    role_id = _require(
        settings.role_id.get_secret_value() if settings.role_id else None,
        "UNKEY_SECRETS_VAULT_ROLE_ID",
        "approle",
    )
    secret_id = settings.secret_id.get_secret_value() if settings.secret_id else None
    # With bind_secret_id off, the role_id alone logs in: it is held as a credential too.
    hold(role_id, secret_id)
    return client.auth.approle.login(role_id=role_id, secret_id=secret_id, mount_point=mount)


def _kubernetes(client: hvac.Client, settings: VaultSettings, mount: str) -> Any:
    role = _require(settings.role, "UNKEY_SECRETS_VAULT_ROLE", "kubernetes")
    jwt = _read_jwt(settings, "kubernetes", KUBERNETES_JWT_PATH)
    return client.auth.kubernetes.login(role=role, jwt=jwt, mount_point=mount)


def _jwt(client: hvac.Client, settings: VaultSettings, mount: str) -> Any:
    role = _require(settings.role, "UNKEY_SECRETS_VAULT_ROLE", "jwt")
    jwt = _read_jwt(settings, "jwt", None)
    return client.auth.jwt.jwt_login(role=role, jwt=jwt, path=mount)


def _aws(client: hvac.Client, settings: VaultSettings, mount: str) -> Any:
    try:
        import botocore.session
    except ImportError:
        raise ConfigurationError(
            "Vault aws auth needs botocore: pip install 'unkey-secrets[aws]'"
        ) from None
    from botocore.exceptions import BotoCoreError

    failure: str | None = None
    try:
        credentials = botocore.session.get_session().get_credentials()
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    except BotoCoreError as exc:
        failure, frozen = type(exc).__name__, None
    if frozen is None:
        raise StoreAccessError(
            f"Vault aws auth found no usable AWS credentials ({failure or 'none in the chain'})",
            store=STORE,
            location=f"auth/{mount}/login",
        )
    hold(frozen.secret_key, frozen.token)
    return client.auth.aws.iam_login(
        access_key=frozen.access_key,
        secret_key=frozen.secret_key,
        session_token=frozen.token,
        header_value=settings.aws_server_id,
        role=settings.role,
        mount_point=mount,
    )


def _cert(client: hvac.Client, settings: VaultSettings, mount: str) -> Any:
    # The TLS client certificate is the credential: its private key never leaves the TLS
    # handshake, and the body names the role only (without one, Vault tries every role).
    cert = check_client_cert(settings)
    if cert is None:
        raise ConfigurationError(
            "Vault cert auth logs in with the TLS client certificate: set VAULT_CLIENT_CERT and "
            "VAULT_CLIENT_KEY"
        )
    return client.auth.cert.login(
        name=settings.role or "", cert_pem=cert[0], key_pem=cert[1], mount_point=mount
    )


_LOGINS: dict[str, Callable[[hvac.Client, VaultSettings, str], Any]] = {
    "approle": _approle,
    "kubernetes": _kubernetes,
    "jwt": _jwt,
    "aws": _aws,
    "cert": _cert,
}
