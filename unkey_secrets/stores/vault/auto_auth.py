"""Keep a Vault token alive for as long as a job runs, as Vault Agent's auto-auth does.

A store built from settings holds one :class:`AutoAuth`. Before each request
(:meth:`AutoAuth.ensure`), once two thirds of the token's lease have passed, the token is
renewed (``auth/token/renew-self``); a token that cannot be renewed (not renewable, at its
``max_ttl``, or refused) is replaced by logging in again with the configured auth method
(AppRole, Kubernetes, JWT, AWS IAM). When Vault refuses a request anyway (401/403: the job
sat idle past the token's expiry, or the token was revoked), :meth:`AutoAuth.refused` logs in
again once and the request is sent again: a refused request was never carried out, so sending
it again is safe, ``cas`` writes included. A job's length therefore never depends on the
role's token TTL.

With the ``token`` method (``VAULT_TOKEN`` or ``~/.vault-token``) there is no way to log in
again: the token's lease is looked up (``auth/token/lookup-self``) at the first request, and a
renewable token is renewed ahead of its expiry until its ``max_ttl``; a token with no expiry
(a root token, ``ttl`` 0) costs nothing more.

Nothing here logs or raises a token: each new one is held (:func:`unkey_secrets._redact.hold`)
by :func:`~unkey_secrets.stores.vault.auth.login`; renewing keeps the same token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._errors import StoreError
from .auth import Lease, lease_of, login

if TYPE_CHECKING:
    import hvac

    from .settings import VaultSettings

__all__ = ["RENEW_AFTER", "RETRY_AFTER", "AutoAuth"]

_log = logging.getLogger("unkey_secrets.stores.vault")

#: The fraction of a lease that passes before the token is renewed (Vault Agent renews at
#: about two thirds, leaving a third of the lease for the renewal or a new login to succeed).
RENEW_AFTER = 2 / 3

#: Seconds before a renewal, lookup or login that failed ahead of expiry is tried again.
RETRY_AFTER = 5.0


class AutoAuth:
    """The token lifecycle of one hvac client: renew ahead of expiry, log in again on refusal.

    ``client`` is the hvac client whose ``adapter.token`` is kept valid; ``settings`` say how
    to log in (:attr:`VaultSettings.auth_method`). ``clock`` is monotonic seconds (for tests).
    Thread-safe: one renewal or login at a time; other threads keep sending requests with the
    current token (still valid: renewals start with a third of the lease left) while it runs.

    ``renewals`` and ``logins`` count what was done since :meth:`start` (the first login
    included).
    """

    def __init__(
        self,
        client: hvac.Client,
        settings: VaultSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.settings = settings
        self.clock = clock
        #: Whether a refused token can be replaced by logging in (every method but token).
        self.can_login = settings.auth_method != "token"
        self.renewals = 0
        self.logins = 0
        self._lock = threading.Lock()
        # When the next renewal (or lookup, or login) is due, in clock seconds; None: never.
        self._due: float | None = None
        self._expires: float | None = None
        self._renewable = False
        self._lookup_pending = False

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        settings = getattr(self, "settings", None)
        return (
            f"AutoAuth(method={getattr(settings, 'auth_method', None)!r}, "
            f"renewals={getattr(self, 'renewals', None)}, logins={getattr(self, 'logins', None)})"
        )

    def start(self) -> None:
        """Log in (every method but token), or plan a lookup of the token's lease.

        Raises what :func:`~unkey_secrets.stores.vault.auth.login` raises.
        """
        if self.can_login:
            self._logged_in(login(self.client, self.settings))
        else:
            # Looked up at the first request, not now: building a store stays free of I/O.
            self._lookup_pending = True
            self._due = float("-inf")

    def ensure(self) -> None:
        """Renew the token, or log in again, if its lease is two thirds gone; else nothing.

        Called before each request; costs a clock read when nothing is due. A renewal or login
        that fails here is not raised: the current token may still serve, and if it does not,
        the request's refusal reaches :meth:`refused`.
        """
        due = self._due
        if due is None or self.clock() < due:
            return
        # Another thread renewing: go on with the current token, which has a third left.
        if not self._lock.acquire(blocking=False):
            return
        try:
            due = self._due
            if due is not None and self.clock() >= due:
                self._refresh()
        finally:
            self._lock.release()

    def refused(self, token: str | None) -> bool:
        """Vault refused a request sent with ``token`` (401/403): True to send it again.

        Logs in again, unless another thread has replaced ``token`` already. False for the
        token method (nothing to log in with). Raises the login's error when logging in fails
        (a revoked secret_id, a role removed): that is the reason the request failed.
        """
        if not self.can_login:
            return False
        with self._lock:
            if self.client.adapter.token != token:
                return True
            _log.info("Vault refused the token; logging in again (%s)", self.settings.auth_method)
            self._logged_in(login(self.client, self.settings))
            return True

    # -- under the lock --------------------------------------------------------------------

    def _refresh(self) -> None:
        now = self.clock()
        if self._lookup_pending:
            self._lookup_pending = False
            lease = self._ask("lookup", lambda: self.client.auth.token.lookup_self(), "data")
            if lease is None:
                self._due = now + RETRY_AFTER
                self._lookup_pending = True
            else:
                self._schedule(lease, now)
            return
        if self._renewable:
            lease = self._ask("renew", lambda: self.client.auth.token.renew_self(), "auth")
            if lease is not None and self._extends(lease, now):
                self.renewals += 1
                self._schedule(lease, now)
                return
        if self.can_login:
            try:
                self._logged_in(login(self.client, self.settings))
            except StoreError as exc:
                _log.warning(
                    "could not log in to Vault ahead of the token's expiry (%s); trying again "
                    "in %.0f s",
                    type(exc).__name__,
                    RETRY_AFTER,
                )
                self._due = now + RETRY_AFTER
            return
        # A token at its max_ttl (or not renewable): it serves until it expires, and no call
        # of ours can lengthen it.
        _log.info("the Vault token cannot be renewed further; it expires with its lease")
        self._due = None

    def _ask(self, what: str, call: Callable[[], object], section: str) -> Lease | None:
        import requests
        from hvac import exceptions as hve

        failure: str | None = None
        try:
            answer = call()
        except (hve.VaultError, requests.exceptions.RequestException, ValueError) as exc:
            failure, answer = type(exc).__name__, None
        except Exception as exc:  # noqa: BLE001 (the transport policy's breaches, and the like)
            failure, answer = type(exc).__name__, None
        if failure is not None:
            # Only the class: the exception holds the request, token header included.
            _log.debug("Vault token %s failed (%s)", what, failure)
            return None
        return lease_of(answer, section=section)

    def _extends(self, lease: Lease, now: float) -> bool:
        # Renewal at max_ttl answers with what is left: no later expiry, so log in instead.
        if lease.ttl == 0 or self._expires is None:
            return True
        return now + lease.ttl > self._expires + 1.0

    def _logged_in(self, lease: Lease | None) -> None:
        self.logins += 1
        now = self.clock()
        if lease is None:
            # No lease in the answer: look it up at the next request rather than guess.
            self._lookup_pending = True
            self._due = now
            self._expires = None
            return
        self._schedule(lease, now)

    def _schedule(self, lease: Lease, now: float) -> None:
        self._renewable = lease.renewable
        if lease.ttl == 0:
            self._due = self._expires = None
            return
        self._expires = now + lease.ttl
        self._due = now + lease.ttl * RENEW_AFTER
