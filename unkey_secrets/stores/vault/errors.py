"""Import hvac lazily and translate its failures into the unkey-secrets exception tree.

hvac's exceptions carry Vault's ``errors`` list and the response text, and a ``requests``
exception holds the prepared request, body included. Vault does not echo written data in its
errors, but none of that is copied into our errors and nothing is chained: messages name the
operation, the location, the HTTP status and the failure's class only.
"""

from __future__ import annotations

from types import ModuleType

from ..._errors import (
    ConfigurationError,
    SecretNotFoundError,
    StoreAccessError,
    StoreError,
    StoreUnavailableError,
)

__all__ = [
    "AGENT_REFUSAL_HINT",
    "STORE",
    "error_texts",
    "is_cas_mismatch",
    "is_missing",
    "require_hvac",
    "tls_hint",
    "translate",
]

STORE = "vault"

_STATUS = {
    "InvalidRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "InvalidPath": 404,
    "UnsupportedOperation": 405,
    "PreconditionFailed": 412,
    "RateLimitExceeded": 429,
    "InternalServerError": 500,
    "VaultNotInitialized": 501,
    "BadGateway": 502,
    "VaultDown": 503,
}


def require_hvac() -> ModuleType:
    """Return the ``hvac`` module, or raise ConfigurationError naming the extra to install."""
    try:
        import hvac
    except ImportError:
        raise ConfigurationError(
            "the Vault store needs hvac: pip install 'unkey-secrets[vault]'"
        ) from None
    return hvac


def _errors(exc: BaseException) -> list[str]:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list):
        return [e for e in errors if isinstance(e, str)]
    return []


def error_texts(exc: BaseException) -> list[str]:
    """The ``errors`` strings of an hvac exception (Vault's own words; never shown to users)."""
    return _errors(exc)


def is_cas_mismatch(exc: BaseException) -> bool:
    """True if ``exc`` is Vault refusing a KV v2 write whose ``cas`` did not match."""
    from hvac import exceptions as hve

    return isinstance(exc, hve.InvalidRequest) and any("check-and-set" in e for e in _errors(exc))


def is_missing(exc: BaseException) -> bool:
    """True if ``exc`` is a plain 404: nothing stored there (not an unknown mount or route)."""
    from hvac import exceptions as hve

    # KV answers a missing secret with an empty errors list; an unknown mount or route comes
    # with an explanation ("no handler for route ..."), which is a configuration problem.
    return isinstance(exc, hve.InvalidPath) and not _errors(exc)


#: What to check when a request sent through a Vault Agent or Proxy (no token of ours) is
#: refused.
AGENT_REFUSAL_HINT = (
    "the app sends no token through VAULT_AGENT_ADDR: check the Vault Agent's or Proxy's "
    "auto-auth (its method and role, and that its token carries the policy) and that its "
    "api_proxy sets use_auto_auth_token"
)


#: OpenSSL's reasons for a server refusing the client's certificate, or the lack of one.
_CLIENT_CERT_REFUSED = (
    "CERTIFICATE_REQUIRED",
    "BAD_CERTIFICATE",
    "UNKNOWN_CA",
    "CERTIFICATE_UNKNOWN",
    "UNSUPPORTED_CERTIFICATE",
    "CERTIFICATE_EXPIRED",
    "CERTIFICATE_REVOKED",
    "HANDSHAKE_FAILURE",
)


def tls_hint(exc: BaseException) -> str:
    """What to check after the TLS failure ``exc`` (a requests or ssl error); never its text.

    A server refusing our client certificate, or asking for one we did not send, points at
    ``VAULT_CLIENT_CERT``/``VAULT_CLIENT_KEY``; one whose own certificate we do not trust at
    ``VAULT_CACERT``.
    """
    text = str(exc).upper()
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "the server's certificate is not trusted: see VAULT_CACERT or VAULT_CAPATH"
    if any(reason in text for reason in _CLIENT_CERT_REFUSED):
        return (
            "the server refused the TLS client certificate, or wants one: set "
            "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY to a certificate its listener trusts"
        )
    return (
        "certificate not trusted? see VAULT_CACERT; a listener that requires a client "
        "certificate: VAULT_CLIENT_CERT and VAULT_CLIENT_KEY"
    )


def translate(
    exc: BaseException, *, operation: str, location: str, agent: bool = False
) -> StoreError:
    """Return the error to raise for ``exc`` during ``operation`` on ``location``.

    ``agent``: the request went through a Vault Agent or Proxy adding its auto-auth token, so a
    refusal names the agent's auto-auth (:data:`AGENT_REFUSAL_HINT`) as the thing to check.
    The result never quotes ``exc``: raise it outside the ``except`` block (or ``from None``).
    """
    import requests
    from hvac import exceptions as hve

    from ...transport.policy import TransportBreachError, lost_answer
    from ...transport.requests import RedirectRefusedError

    where = f"{operation} on {location}"
    if isinstance(exc, TransportBreachError):
        # The request may have been carried out: its answer is lost, as with a dropped
        # connection, and the flows settle it the same way (read back, never guessed).
        return StoreUnavailableError(
            lost_answer(where, operation, exc),
            store=STORE,
            location=location,
        )
    if isinstance(exc, RedirectRefusedError):
        return StoreError(
            f"Vault answered {where} with a redirect ({exc.status}), which is never followed "
            "(it would replay the token and the body to another address): point VAULT_ADDR at "
            "the active node or its load balancer",
            store=STORE,
            location=location,
        )
    if isinstance(exc, hve.VaultError):
        name = type(exc).__name__
        status = _STATUS.get(name)
        shown = f"{status} {name}" if status else name
        if isinstance(exc, (hve.Forbidden, hve.Unauthorized)):
            hint = (
                AGENT_REFUSAL_HINT
                if agent
                else "check the token and its policy; a token may have expired"
            )
            return StoreAccessError(
                f"Vault refused {where}: {shown} ({hint})",
                store=STORE,
                location=location,
            )
        if isinstance(exc, hve.InvalidPath):
            if is_missing(exc):
                return SecretNotFoundError(
                    f"nothing stored at {location} ({operation}: 404)",
                    store=STORE,
                    location=location,
                )
            return StoreError(
                f"Vault has no such route for {where}: 404 (is the KV mount and version right?)",
                store=STORE,
                location=location,
            )
        if isinstance(
            exc,
            (
                hve.InternalServerError,
                hve.VaultDown,
                hve.BadGateway,
                hve.RateLimitExceeded,
                hve.VaultNotInitialized,
            ),
        ):
            return StoreUnavailableError(
                f"Vault could not serve {where}: {shown}",
                store=STORE,
                location=location,
                reason="sealed" if isinstance(exc, hve.VaultDown) else None,
            )
        return StoreError(f"Vault refused {where}: {shown}", store=STORE, location=location)
    if isinstance(exc, requests.exceptions.SSLError):
        return StoreError(
            f"TLS failure during {where} ({tls_hint(exc)})", store=STORE, location=location
        )
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return StoreUnavailableError(
            f"no answer to {where} in time; the request may have been carried out, and "
            "repeating it is safe (the write is idempotent)",
            store=STORE,
            location=location,
        )
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        # No connection was made (a ReadTimeout, an answer that never came, is handled above).
        reached = "the Vault Agent or Proxy" if agent else "Vault"
        return StoreUnavailableError(
            f"could not reach {reached} for {where} ({type(exc).__name__})",
            store=STORE,
            location=location,
            reason="unreachable",
        )
    return StoreError(
        f"request to Vault failed during {where} ({type(exc).__name__})",
        store=STORE,
        location=location,
    )
