"""The transport policy on requests (the HTTP client under hvac).

:class:`PolicyAdapter` carries every request of a session it is mounted on (:func:`apply_policy`
mounts it on every prefix, of our sessions and of a caller's alike):

* each request runs under a **deadline** (:mod:`.policy`): its timeout in seconds (a
  ``(connect, read)`` pair: their sum) bounds the whole request (connect, send and every byte of
  the answer), and each socket operation gets at most what is left of it;
* the answer is read in full within that deadline and counted, **after decompression**, into a
  **byte budget** (``max_answer_bytes``, :data:`~.policy.DEFAULT_MAX_ANSWER_BYTES` by default);
* a **redirect is never followed**: it would replay the Vault token and the request body (a key's
  plaintext) to another address. The 3xx answer ends the request with
  :class:`RedirectRefusedError`, whatever ``allow_redirects`` the caller passed;
* a **plain-http** target never goes through a proxy, whatever the session or the environment
  say: the proxy would carry tokens and keys off the machine in clear.

A breach raises :class:`RequestsDeadlineExceededError` or :class:`RequestsAnswerTooLargeError`:
both are requests exceptions (so every ``except requests.RequestException`` handles them) and
:class:`~.policy.TransportBreachError` (a lost answer: the request may have acted).

:func:`build_session` makes our own sessions: proxies and the CA bundle are resolved from the
environment once, when it is built, never per request. :func:`apply_policy` does the same for a
session that trusts the environment (hvac's own, a caller's): it is turned to ``trust_env=False``
and its adapter answers from the variables as they stood then (:class:`FrozenEnvironment`),
with requests' rules (a proxy named by the request or the session wins; ``NO_PROXY`` exempts a
host; ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` stand for ``verify=True``), so no request reads
a variable again. A variable changed later is seen by a session built (or given) later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import DEFAULT_POOLSIZE, HTTPAdapter
from requests.utils import select_proxy
from urllib3.util import Timeout

from .._redact import hold_environment
from ._urllib3 import POOL_CLASSES
from .policy import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerTooLargeError,
    Budget,
    DeadlineExceededError,
    ProxyEnvironment,
    deadline,
    proxy_for,
)

__all__ = [
    "DEFAULT_DEADLINE_SECONDS",
    "FrozenEnvironment",
    "PolicyAdapter",
    "RedirectRefusedError",
    "RequestsAnswerTooLargeError",
    "RequestsDeadlineExceededError",
    "apply_policy",
    "build_session",
    "deadline_seconds",
]

#: The deadline of a request sent without a timeout, in seconds (hvac's own default timeout).
DEFAULT_DEADLINE_SECONDS = 30.0
#: How much of an answer is read at a time, in bytes (decompressed).
_CHUNK = 64 * 1024


class RequestsDeadlineExceededError(requests.exceptions.Timeout, DeadlineExceededError):
    """The request outlived its deadline: the answer is lost (the request may have acted)."""

    def __init__(self, seconds: float) -> None:
        DeadlineExceededError.__init__(self, seconds)
        self.response = None
        self.request = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seconds,))


class RequestsAnswerTooLargeError(requests.exceptions.RequestException, AnswerTooLargeError):
    """The answer grew past the byte budget: it is lost (the request may have acted)."""

    def __init__(self, limit: int) -> None:
        AnswerTooLargeError.__init__(self, limit)
        self.response = None
        self.request = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit,))


class RedirectRefusedError(requests.exceptions.RequestException):
    """The server answered with a redirect, which is never followed.

    ``status`` is the answer's HTTP status. The target of the redirect is not kept.
    """

    def __init__(self, status: int) -> None:
        super().__init__(
            f"the server answered {status}, a redirect; redirects are never followed (they would "
            "replay the credentials and the body to another address)"
        )
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status,))


def deadline_seconds(timeout: Any, default: float = DEFAULT_DEADLINE_SECONDS) -> float:
    """The deadline, in seconds, of a request sent with requests' ``timeout`` argument.

    A number is the deadline; a ``(connect, read)`` pair or a urllib3 ``Timeout`` gives the sum
    of its parts (its ``total`` if set); a missing part, or no timeout at all, counts as
    ``default``.
    """
    if isinstance(timeout, Timeout):
        if isinstance(timeout.total, (int, float)):
            return float(timeout.total)
        parts: tuple[Any, ...] = (timeout.connect_timeout, timeout.read_timeout)
    elif isinstance(timeout, tuple):
        parts = timeout
    else:
        parts = (timeout,)
    return float(sum(p if isinstance(p, (int, float)) and p > 0 else default for p in parts))


class FrozenEnvironment:
    """What requests would read from the environment per request, read once.

    ``proxies``: the proxy variables (:class:`~.policy.ProxyEnvironment`); ``ca_bundle``:
    ``REQUESTS_CA_BUNDLE``, else ``CURL_CA_BUNDLE`` (None when neither is set).
    """

    __slots__ = ("ca_bundle", "proxies")

    def __init__(self, proxies: ProxyEnvironment, ca_bundle: str | None) -> None:
        self.proxies = proxies
        self.ca_bundle = ca_bundle

    @classmethod
    def read(cls) -> FrozenEnvironment:
        """The variables as they are now."""
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        return cls(ProxyEnvironment.read(), bundle or None)

    def __repr__(self) -> str:
        if not hasattr(self, "proxies"):  # half-built (rendered with frame locals)
            return "FrozenEnvironment()"
        return f"FrozenEnvironment({self.proxies!r}, ca_bundle={self.ca_bundle!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.proxies, self.ca_bundle))

    def settle(
        self, url: str, proxies: Mapping[str, str], verify: Any
    ) -> tuple[Mapping[str, str], Any]:
        """The proxies and ``verify`` of an https request to ``url``, as requests settles them.

        A proxy the request or the session names for ``url`` wins; else the variables' one
        (none for a host ``NO_PROXY`` exempts). ``verify=True`` becomes the CA bundle variable.
        """
        if not select_proxy(url, dict(proxies)):
            proxy = self.proxies.proxy_for(url)
            if proxy:
                proxies = {**proxies, "https": proxy}
        if verify is True and self.ca_bundle:
            verify = self.ca_bundle
        return proxies, verify


class PolicyAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` holding each request to the transport policy (see the module).

    ``pool_maxsize`` is the connections kept per host; ``max_answer_bytes`` the byte budget of
    one answer (decompressed); ``default_deadline`` the deadline, in seconds, of a request sent
    without a timeout. Requests are sent once (no retries at this layer: the flows retry).
    ``environment``, for a session that trusted the environment (see :func:`apply_policy`), is
    what it would have read per request, read once: an https request's proxy and CA bundle
    come from it.
    """

    # What pickling keeps (as HTTPAdapter's own list does).
    __attrs__: list[str] = [  # noqa: RUF012
        *HTTPAdapter.__attrs__,
        "max_answer_bytes",
        "default_deadline",
        "environment",
    ]

    def __init__(
        self,
        *,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        default_deadline: float = DEFAULT_DEADLINE_SECONDS,
        environment: FrozenEnvironment | None = None,
    ) -> None:
        Budget(max_answer_bytes)  # refuses a budget that is not a positive whole number
        if not default_deadline > 0:
            raise ValueError("a deadline is a positive number of seconds")
        self.max_answer_bytes = max_answer_bytes
        self.default_deadline = float(default_deadline)
        self.environment = environment
        super().__init__(pool_maxsize=pool_maxsize, max_retries=0)

    @property
    def pool_maxsize(self) -> int:
        """Connections kept per host."""
        return self._pool_maxsize

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        """Make the pool manager, its pools' connections bounded by the deadline in force."""
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(POOL_CLASSES)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The manager for ``proxy``, its pools' connections bounded by the deadline in force."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(POOL_CLASSES)
        return manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send ``request`` and read its whole answer, within its deadline and byte budget.

        Raises :class:`RequestsDeadlineExceededError`, :class:`RequestsAnswerTooLargeError`,
        :class:`RedirectRefusedError`, or what ``HTTPAdapter.send`` raises. ``stream`` is
        ignored: the answer is always read here, where the deadline and the budget hold.
        """
        if urlsplit(request.url or "").scheme != "https":
            # Plain http is for loopback only: a proxy would carry it off the machine in clear.
            proxies = {}
        elif self.environment is not None:
            proxies, verify = self.environment.settle(request.url or "", proxies or {}, verify)
        with deadline(deadline_seconds(timeout, self.default_deadline)) as current:
            response: requests.Response | None = None
            failure: Exception | None = None
            try:
                response = super().send(
                    request,
                    stream=True,
                    timeout=timeout,
                    verify=verify,
                    cert=cert,
                    proxies=dict(proxies or {}),
                )
                if response.is_redirect:
                    failure = RedirectRefusedError(response.status_code)
                else:
                    _read(response, Budget(self.max_answer_bytes))
            except AnswerTooLargeError as exc:
                failure = RequestsAnswerTooLargeError(exc.limit)
            except requests.exceptions.RequestException:
                if current.remaining() > 0:
                    _close(response)
                    raise
                failure = RequestsDeadlineExceededError(current.seconds)
            except BaseException:
                _close(response)
                raise
            if failure is not None:
                _close(response)
                # Raised outside the except block: nothing of the request is chained.
                raise failure
        assert response is not None
        return response


def _close(response: requests.Response | None) -> None:
    # A half-read answer's connection is closed, never handed to the next request.
    if response is not None:
        response.close()


def _read(response: requests.Response, budget: Budget) -> None:
    """Read the whole answer (decoded) into ``response``, counting it into ``budget``."""
    headers = response.headers
    length = headers.get("Content-Length", "")
    if length.isdigit() and not headers.get("Content-Encoding") and int(length) > budget.limit:
        raise AnswerTooLargeError(budget.limit)  # refused before a byte of it is read
    chunks: list[bytes] = []
    try:
        for chunk in response.iter_content(_CHUNK):
            budget.add(len(chunk))
            chunks.append(chunk)
    except BaseException:
        # A traceback's frame locals never show a partial answer (it may hold a key).
        chunks.clear()
        raise
    response._content = b"".join(chunks)


def apply_policy(
    session: requests.Session,
    *,
    pool_maxsize: int | None = None,
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
) -> None:
    """Mount a :class:`PolicyAdapter` on every prefix of ``session``, replacing its adapters.

    The prefixes are ``http://``, ``https://`` and any the caller mounted (a longer prefix would
    otherwise win over ours for the URLs it matches).

    A prefix already carrying a :class:`PolicyAdapter` of the same budget (and of
    ``pool_maxsize``, when given) keeps it. ``pool_maxsize`` defaults to requests' 10
    connections per host. The session's own settings (verify, cert, proxies for https) are left
    as they are. A session that trusts the environment (``trust_env``, requests' default) has
    it read now, once (:class:`FrozenEnvironment`: proxies, ``NO_PROXY``, the CA bundle
    variables), and ``trust_env`` turned off: requests would otherwise read the proxy variables
    twice per request; ``~/.netrc`` is no longer consulted. The credentials the environment
    names are held (:func:`~unkey_secrets._redact.hold_environment`).
    """
    hold_environment()
    environment = next(
        (a.environment for a in session.adapters.values() if isinstance(a, PolicyAdapter)),
        None,
    )
    if session.trust_env:
        environment = FrozenEnvironment.read()
        session.trust_env = False
    prefixes = {*session.adapters, "https://", "http://"}
    adapter: PolicyAdapter | None = None
    for prefix in prefixes:
        current = session.adapters.get(prefix)
        if (
            isinstance(current, PolicyAdapter)
            and current.max_answer_bytes == max_answer_bytes
            and (pool_maxsize is None or current.pool_maxsize == pool_maxsize)
            and current.environment is environment
        ):
            continue
        if adapter is None:
            adapter = PolicyAdapter(
                pool_maxsize=pool_maxsize or DEFAULT_POOLSIZE,
                max_answer_bytes=max_answer_bytes,
                environment=environment,
            )
        session.mount(prefix, adapter)


def build_session(
    url: str,
    *,
    verify: bool | str = True,
    cert: tuple[str, str] | None = None,
    pool_maxsize: int | None = None,
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
) -> requests.Session:
    """A session for requests to ``url`` under the policy, its settings resolved now, once.

    Proxies: :func:`~.policy.proxy_for` (none for plain http). CA bundle: ``verify`` when it
    names one, else ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` (as requests reads them), else
    the default trust store. ``cert``: a ``(certificate, key)`` pair of PEM files presented
    on every TLS connection (a client certificate). Nothing is read from the environment per
    request afterwards (``trust_env`` is off: no proxy variable, CA variable or ``.netrc`` is
    consulted again). The credentials the environment names are held
    (:func:`~unkey_secrets._redact.hold_environment`).
    """
    session = requests.Session()
    session.trust_env = False
    proxy = proxy_for(url)
    session.proxies = {"https": proxy} if proxy else {}
    if verify is True:
        verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.verify = verify
    if cert is not None:
        session.cert = cert
    session.max_redirects = 0
    apply_policy(session, pool_maxsize=pool_maxsize, max_answer_bytes=max_answer_bytes)
    return session
