"""Keep a Vault token alive for as long as a job runs, as Vault Agent's auto-auth does.

A store built from settings holds one :class:`AutoAuth`. Once two thirds of the token's lease
have passed, the token is renewed (``auth/token/renew-self``); a token that cannot be renewed
(not renewable, at its ``max_ttl``, or refused) is replaced by logging in again with the
configured auth method (AppRole, Kubernetes, JWT, AWS IAM, TLS certificate). This happens on a
background daemon thread (one per store, named ``unkey-secrets-vault-token``, idle between
renewals), so a job that goes quiet for longer than its token's TTL (a slow Unkey, a long sleep
between two calls) still finds it alive, and before each request as well
(:meth:`AutoAuth.ensure`), in case the thread was late. The thread ends when the store is
garbage-collected or its token can no longer be extended. When Vault refuses a request anyway
(401/403),
:meth:`AutoAuth.refused` asks Vault whether the token is still alive (``lookup-self``): a live
token was refused by its policy, which no login changes, so the refusal is raised; a dead one
(the job sat idle past its expiry, or it was revoked) is replaced by one new login and the
request is sent again: a refused request was never carried out, so sending it again is safe,
``cas`` writes included. A job's length therefore never depends on the role's token TTL.
Logins that fail are tried again with a growing pause (5 s doubling to 5 min), and meanwhile a
refusal raises the last login's error at once instead of logging in again.

With the ``token`` method (``VAULT_TOKEN`` or ``~/.vault-token``) there is no way to log in
again: the token's lease is looked up (``auth/token/lookup-self``) at the first request, and a
renewable token is renewed ahead of its expiry until its ``max_ttl`` (a failed renewal is
tried again every 5 s while the token lives); a token with no expiry (a root token, ``ttl`` 0)
costs nothing more. After a refusal, ``~/.vault-token`` is read again: a token a Vault Agent
sink or ``vault login`` put there since is taken up and the request sent again.

With the ``agent`` method the app holds no token at all: the Vault Agent or Proxy at
``VAULT_AGENT_ADDR`` adds its auto-auth token to each request it forwards, and renews it or logs
in again itself. Nothing is looked up, renewed or logged in here (no thread either), and a
refusal is raised as it is: no call of ours could change the agent's token.

Nothing here logs or raises a token: each new one is held (:func:`unkey_secrets._redact.hold`)
by :func:`~unkey_secrets.stores.vault.auth.login`; renewing keeps the same token.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..._errors import UnkeySecretsError
from .auth import Lease, lease_of, login, read_token

if TYPE_CHECKING:
    import hvac

    from .settings import VaultSettings

__all__ = ["MAX_BACKOFF", "RENEW_AFTER", "RETRY_AFTER", "AutoAuth"]

_log = logging.getLogger("unkey_secrets.stores.vault")

#: The fraction of a lease that passes before the token is renewed (Vault Agent renews at
#: about two thirds, leaving a third of the lease for the renewal or a new login to succeed).
RENEW_AFTER = 2 / 3

#: Seconds before a renewal, lookup or login that failed is tried again (a login's pause
#: doubles after each failure, up to :data:`MAX_BACKOFF`).
RETRY_AFTER = 5.0

#: The longest pause, in seconds, between two failed logins.
MAX_BACKOFF = 300.0

# Every AutoAuth alive, so a forked child can reset what the fork left behind.
_instances: weakref.WeakSet[AutoAuth] = weakref.WeakSet()


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
        #: Whether the token is the agent's (a Vault Agent or Proxy adds it): nothing to keep.
        self.through_agent = settings.auth_method == "agent"
        #: Whether a refused token can be replaced by logging in (every method but token and
        #: agent).
        self.can_login = settings.auth_method not in ("token", "agent")
        self.renewals = 0
        self.logins = 0
        self._lock = threading.Lock()
        # When the next renewal (or lookup, or login) is due, in clock seconds; None: never.
        self._due: float | None = None
        self._expires: float | None = None
        self._renewable = False
        # The longest lease seen (seconds): a renewal answering less is capped by max_ttl.
        self._lease_ttl = 0.0
        self._lookup_pending = False
        # Wakes the watcher thread when the schedule changes or this object is collected.
        self._wake = threading.Event()
        self._watching = False
        # After a failed login: no new attempt before this clock time; the error it raised
        # (its class and message: a fresh copy is raised, never the same object twice).
        self._pause = RETRY_AFTER
        self._blocked_until: float | None = None
        self._login_failure: tuple[type[UnkeySecretsError], str, dict[str, object]] | None = None
        _instances.add(self)

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        settings = getattr(self, "settings", None)
        return (
            f"AutoAuth(method={getattr(settings, 'auth_method', None)!r}, "
            f"renewals={getattr(self, 'renewals', None)}, logins={getattr(self, 'logins', None)})"
        )

    def start(self) -> None:
        """Log in (every method but token and agent), or plan a lookup of the token's lease.

        With the agent method, nothing: the agent keeps its own token. Raises what
        :func:`~unkey_secrets.stores.vault.auth.login` raises.
        """
        if self.through_agent:
            return
        if self.can_login:
            self._logged_in(self._login())
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
        if due is None:
            return
        if not self._watching:
            self._watch_again()  # in a forked child, whose parent's thread did not come along
        if self.clock() < due:
            return
        # Another thread renewing: go on with the current token, which has a third left.
        self._refresh_if_due(blocking=False)

    def _watch_again(self) -> None:
        if self._lock.acquire(blocking=False):
            try:
                if self._due is not None and not self._watching:
                    self._watch()
            finally:
                self._lock.release()

    def _refresh_if_due(self, *, blocking: bool) -> None:
        if not self._lock.acquire(blocking=blocking):
            return
        try:
            due = self._due
            if due is not None and self.clock() >= due:
                self._refresh()
        finally:
            self._lock.release()

    def refused(self, token: str | None) -> bool:
        """Vault refused a request sent with ``token`` (401/403): True to send it again.

        True when the token has been replaced: by another thread already, by a new login when
        Vault says ``token`` is no longer alive, or (token method) by a different token now in
        ``~/.vault-token``. False when the token is alive (its policy refused the request: no
        login changes that) or cannot be replaced. Raises the login's error when logging in
        fails (a revoked secret_id, a role removed): that is the reason the request failed;
        within the pause after a failed login, that error is raised again without a new try.
        With the agent method, always False at once: the token is the agent's to replace.
        """
        if self.through_agent:
            return False
        with self._lock:
            if self.client.adapter.token != token:
                return True
            if self._alive():
                return False
            if not self.can_login:
                return self._reread_token_file(token)
            blocked = self._blocked_until
            if blocked is not None and self.clock() < blocked and self._login_failure:
                kind, message, members = self._login_failure
                raise kind(message, **members)
            _log.info("Vault refused the token; logging in again (%s)", self.settings.auth_method)
            self._logged_in(self._login())
            return True

    def _alive(self) -> bool:
        """Whether Vault still knows the client's token (lookup-self answers 200)."""
        import requests
        from hvac import exceptions as hve

        try:
            self.client.auth.token.lookup_self()
        except (hve.Forbidden, hve.Unauthorized):
            return False
        except (hve.VaultError, requests.exceptions.RequestException, ValueError):
            return False  # unknown: logging in again is the way forward
        except Exception:  # noqa: BLE001 (the transport policy's breaches, and the like)
            return False
        return True

    def _reread_token_file(self, token: str | None) -> bool:
        fresh = read_token(self.settings)
        if fresh is None or fresh == token:
            return False
        _log.info("Vault refused the token; using the new one in ~/.vault-token")
        self.client.token = fresh
        self._lookup_pending = True
        self._due = self.clock()
        self._expires = None
        return True

    def _login(self) -> Lease | None:
        """:func:`login`, with the pause after a failure recorded (raised as login raises)."""
        failure: UnkeySecretsError | None = None
        try:
            lease = login(self.client, self.settings)
        except UnkeySecretsError as exc:
            failure = exc
        if failure is None:
            self._pause, self._blocked_until, self._login_failure = RETRY_AFTER, None, None
            return lease
        members = {
            name: getattr(failure, name)
            for name in ("store", "location")
            if getattr(failure, name, None) is not None
        }
        self._login_failure = (type(failure), str(failure), members)
        self._blocked_until = self.clock() + self._pause
        self._pause = min(self._pause * 2, MAX_BACKOFF)
        raise failure

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
        renewal_failed = False
        if self._renewable:
            lease = self._ask("renew", lambda: self.client.auth.token.renew_self(), "auth")
            if lease is not None and self._extends(lease, now):
                self.renewals += 1
                self._schedule(lease, now)
                return
            renewal_failed = lease is None
        if self.can_login:
            blocked = self._blocked_until
            if blocked is not None and now < blocked:
                self._due = blocked
                return
            try:
                self._logged_in(self._login())
            except UnkeySecretsError as exc:
                _log.warning(
                    "could not log in to Vault ahead of the token's expiry (%s); trying again "
                    "in %.0f s",
                    type(exc).__name__,
                    (self._blocked_until or now) - now,
                )
                self._due = self._blocked_until
            return
        expires = self._expires
        if renewal_failed and expires is not None and now < expires:
            # Vault unreachable or busy: the token still lives, so try again while it does.
            self._due = now + min(RETRY_AFTER, max((expires - now) / 2, 0.05))
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
        # Renewal at max_ttl answers with what is left: no later expiry, so log in instead. A
        # renewal giving the whole lease again is no such answer, however early it came.
        if lease.ttl == 0 or self._expires is None or lease.ttl >= self._lease_ttl:
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
        self._lease_ttl = max(self._lease_ttl, lease.ttl)
        self._due = now + lease.ttl * RENEW_AFTER
        self._watch()

    def _watch(self) -> None:
        if self._watching:
            self._wake.set()
            return
        self._watching = True
        wake = self._wake
        # The thread holds a weak reference only: a store dropped by its owner stops it.
        weakref.finalize(self, wake.set)
        threading.Thread(
            target=_watcher, args=(weakref.ref(self), wake), name=_THREAD, daemon=True
        ).start()


_THREAD = "unkey-secrets-vault-token"


def _watcher(ref: weakref.ref[AutoAuth], wake: threading.Event) -> None:
    """Renew (or log in) when each lease is two thirds gone, until nothing more is due."""
    while True:
        auth = ref()
        if auth is None:
            return
        with auth._lock:
            # Under the lock, so a lease scheduled meanwhile finds no watcher and starts one.
            due = auth._due
            if due is None:
                auth._watching = False
                return
        wait = due - auth.clock()
        del auth  # not held while waiting: the store may be collected meanwhile
        if wait > 0:
            wake.wait(wait)
            wake.clear()
            continue
        auth = ref()
        if auth is None:
            return
        try:
            auth._refresh_if_due(blocking=True)
        except Exception as exc:  # noqa: BLE001 (never end the thread with a traceback)
            # Only the class: an exception may hold a request, token header included.
            _log.warning("Vault token renewal failed (%s)", type(exc).__name__)
            auth._due = auth.clock() + RETRY_AFTER
        del auth


def _after_fork_in_child() -> None:
    # The parent's renewal thread does not exist in the child, and a lock it held stays held:
    # start afresh; the child's next request (ensure) starts a renewal thread of its own.
    for auth in list(_instances):
        auth._lock = threading.Lock()
        auth._wake = threading.Event()
        auth._watching = False
        # Connections kept alive are shared with the parent: two processes talking on one
        # socket mix their answers. The child's copies are closed (the parent's stay open).
        session = getattr(getattr(auth.client, "adapter", None), "session", None)
        if session is not None:
            session.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
