"""The transport policy on botocore (the HTTP client under boto3's Secrets Manager client).

:func:`apply_policy` gives a botocore client, ours or a caller's, a :class:`PolicySession` as
its HTTP session, before any request:

* each request runs under a **deadline** (:mod:`.policy`): ``deadline`` seconds, by default the
  client's ``connect_timeout + read_timeout`` (botocore's ``Config``); it bounds the whole
  request (connect, send and every byte of the answer), and each socket operation gets at most
  what is left of it;
* the answer is read in full within that deadline and counted into a **byte budget** (botocore
  does not decompress: the bytes received are counted);
* a **plain-http** endpoint never goes through a proxy; for https, the client's own
  ``Config(proxies=...)`` if it set one, else the standard variables, resolved once (here).

botocore follows no redirect for Secrets Manager: a 3xx answer is an error it parses as such.

A breach raises :class:`BotocoreDeadlineExceededError` or :class:`BotocoreAnswerTooLargeError`:
both are botocore errors (``BotoCoreError``, which botocore does not retry) and
:class:`~.policy.TransportBreachError` (a lost answer: the request may have acted).

The session is swapped on the client's endpoint (``client._endpoint.http_session``, the one
place botocore sends from). botocore's public hook, a ``before-send`` handler that returns an
answer, cannot be used: botocore calls every such handler, so a caller's own (moto's
``mock_aws`` stubber, a test's fake answer) would not stop ours from sending for real.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
    AWSPreparedRequest,
    AWSRequest,
    AWSResponse,
)
from botocore.exceptions import (
    BotoCoreError,
    ConnectionClosedError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.httpsession import URLLib3Session
from urllib3.exceptions import HTTPError as URLLib3Error
from urllib3.exceptions import ProtocolError
from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError

from .._redact import hold, hold_environment
from ._urllib3 import DeadlineConnectionMixin
from .policy import (
    DEFAULT_MAX_ANSWER_BYTES,
    AnswerTooLargeError,
    Budget,
    DeadlineExceededError,
    deadline,
    proxy_for,
)

__all__ = [
    "DEFAULT_DEADLINE_SECONDS",
    "BotocoreAnswerTooLargeError",
    "BotocoreDeadlineExceededError",
    "PolicySession",
    "apply_policy",
    "deadline_seconds",
]

#: botocore's own default connect and read timeouts (60 s each) summed, in seconds: the deadline
#: of a client whose Config leaves them unset.
DEFAULT_DEADLINE_SECONDS = 120.0
#: How much of an answer is read at a time, in bytes.
_CHUNK = 64 * 1024


class BotocoreDeadlineExceededError(BotoCoreError, DeadlineExceededError):
    """The request outlived its deadline: the answer is lost (the request may have acted)."""

    fmt = "{message}"

    def __init__(self, seconds: float) -> None:
        DeadlineExceededError.__init__(self, seconds)
        self.kwargs = {"seconds": seconds}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seconds,))


class BotocoreAnswerTooLargeError(BotoCoreError, AnswerTooLargeError):
    """The answer grew past the byte budget: it is lost (the request may have acted)."""

    fmt = "{message}"

    def __init__(self, limit: int) -> None:
        AnswerTooLargeError.__init__(self, limit)
        self.kwargs = {"limit": limit}

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit,))


class _DeadlineAWSHTTPConnection(DeadlineConnectionMixin, AWSHTTPConnection):  # type: ignore[misc]
    """botocore's plain connection, every operation bounded by the deadline in force."""


class _DeadlineAWSHTTPSConnection(DeadlineConnectionMixin, AWSHTTPSConnection):  # type: ignore[misc]
    """botocore's TLS connection, every operation bounded by the deadline in force."""


class _DeadlineAWSHTTPConnectionPool(AWSHTTPConnectionPool):
    ConnectionCls = _DeadlineAWSHTTPConnection


class _DeadlineAWSHTTPSConnectionPool(AWSHTTPSConnectionPool):
    ConnectionCls = _DeadlineAWSHTTPSConnection


class _ReadAnswer(io.BytesIO):
    """An answer read in full, offered as botocore reads a raw urllib3 answer."""

    def stream(self, amt: int = _CHUNK, decode_content: bool | None = None) -> Iterator[bytes]:
        while chunk := self.read(amt):
            yield chunk


def deadline_seconds(config: Any) -> float:
    """The deadline, in seconds, of a client with botocore ``Config`` ``config``.

    ``connect_timeout + read_timeout``; a part left unset (or not positive) counts as
    botocore's default of 60.
    """
    parts = (getattr(config, "connect_timeout", None), getattr(config, "read_timeout", None))
    return float(sum(p if isinstance(p, (int, float)) and p > 0 else 60 for p in parts))


class PolicySession(URLLib3Session):
    """botocore's HTTP session, holding each request to the transport policy (see the module).

    ``deadline`` is one request's allowance in seconds; ``max_answer_bytes`` the byte budget of
    one answer. The other arguments are :class:`botocore.httpsession.URLLib3Session`'s.
    """

    def __init__(
        self,
        *,
        deadline: float,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        **kwargs: Any,
    ) -> None:
        Budget(max_answer_bytes)  # refuses a budget that is not a positive whole number
        if not deadline > 0:
            raise ValueError("a deadline is a positive number of seconds")
        super().__init__(**kwargs)
        self.deadline = float(deadline)
        self.max_answer_bytes = max_answer_bytes
        # The pool managers (and the proxy managers made later) share this mapping: their
        # connections become deadline-bounded.
        self._pool_classes_by_scheme.update(  # type: ignore[attr-defined]
            http=_DeadlineAWSHTTPConnectionPool, https=_DeadlineAWSHTTPSConnectionPool
        )

    def send(self, request: AWSRequest | AWSPreparedRequest) -> AWSResponse:
        """Send ``request`` and read its whole answer, within the deadline and the budget.

        Raises :class:`BotocoreDeadlineExceededError`, :class:`BotocoreAnswerTooLargeError`,
        or the botocore errors ``URLLib3Session.send`` raises.
        """
        with deadline(self.deadline) as current:
            streamed = request.stream_output
            # URLLib3Session.send would read the body itself, uncounted: it is read below.
            request.stream_output = True
            response: AWSResponse | None = None
            failure: Exception | None = None
            try:
                response = super().send(request)
                body = _read(response.raw, Budget(self.max_answer_bytes))
            except AnswerTooLargeError as exc:
                failure = BotocoreAnswerTooLargeError(exc.limit)
            except (BotoCoreError, URLLib3Error, OSError) as exc:
                _close(response)
                if current.remaining() > 0:
                    raise _as_botocore(exc, request) from None
                failure = BotocoreDeadlineExceededError(current.seconds)
            except BaseException:
                _close(response)
                raise
            finally:
                request.stream_output = streamed
            if failure is not None:
                _close(response)
                # Raised outside the except block: nothing of the request is chained.
                raise failure
        assert response is not None
        headers: Any = response.headers
        return AWSResponse(response.url, response.status_code, headers, _ReadAnswer(body))


def _as_botocore(exc: Exception, request: AWSRequest | AWSPreparedRequest) -> Exception:
    """``exc`` as URLLib3Session.send reports it (reading the body here raises urllib3's)."""
    if isinstance(exc, BotoCoreError):
        return exc
    url = request.url or ""
    if isinstance(exc, URLLib3ReadTimeoutError):
        return ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, ProtocolError):
        return ConnectionClosedError(error=exc, request=request, endpoint_url=url)
    return HTTPClientError(error=exc)


def _close(response: AWSResponse | None) -> None:
    # A half-read answer's connection is closed, never handed to the next request.
    if response is not None and response.raw is not None:
        response.raw.close()
        release = getattr(response.raw, "release_conn", None)
        if release is not None:
            release()


def _read(raw: Any, budget: Budget) -> bytes:
    """The whole body of the urllib3 answer ``raw`` (as received), counted into ``budget``."""
    length = str(raw.headers.get("Content-Length", ""))
    if length.isdigit() and int(length) > budget.limit:
        raise AnswerTooLargeError(budget.limit)  # refused before a byte of it is read
    chunks: list[bytes] = []
    try:
        for chunk in raw.stream(_CHUNK, decode_content=False):
            budget.add(len(chunk))
            chunks.append(chunk)
    except BaseException:
        # A traceback's frame locals never show a partial answer (it may hold a key).
        chunks.clear()
        raise
    return b"".join(chunks)


def _proxies(endpoint_url: str, configured: Mapping[str, str] | None) -> dict[str, str]:
    if urlsplit(endpoint_url).scheme != "https":
        # Plain http is for loopback only: a proxy would carry it off the machine in clear.
        return {}
    if configured:
        return {k: v for k, v in configured.items() if k == "https"}
    proxy = proxy_for(endpoint_url)
    return {"https": proxy} if proxy else {}


def _hold_credentials(client: Any) -> None:
    """Hold the secret key and session token ``client`` signs with, as they are now.

    Read from the credentials object's attributes, never through its properties: a
    refreshable one would refresh (a request) to answer. Credentials a refresh brings later
    are masked by their shapes (``X-Amz-Security-Token``, ``SessionToken``...).
    """
    signer = getattr(client, "_request_signer", None)
    credentials = getattr(signer, "_credentials", None)
    try:
        members = vars(credentials)
    except TypeError:  # None, or a credentials object without attributes of its own
        return
    hold(
        *(
            members.get(name)
            for name in ("secret_key", "token", "_secret_key", "_token")
            if isinstance(members.get(name), str)
        )
    )


def apply_policy(
    client: Any,
    *,
    deadline: float | None = None,
    max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
) -> bool:
    """Give the botocore ``client`` a :class:`PolicySession`; False if it is not one (a double).

    ``deadline`` is each request's allowance in seconds (default: the client's
    ``connect_timeout + read_timeout``). The client's own configuration is kept: timeouts, pool
    size, client certificate, socket options, TLS verification (``verify``, ``AWS_CA_BUNDLE``
    as the client resolved them) and, for an https endpoint, its ``proxies``/``proxies_config``
    (else the standard variables, read now). A client already under a :class:`PolicySession`
    of the same deadline and budget keeps it. The credentials the client was built with, and
    those the environment names, are held from now on (see :func:`_hold_credentials`).
    """
    from botocore.client import BaseClient

    hold_environment()
    if not isinstance(client, BaseClient):
        return False
    _hold_credentials(client)
    # botocore's stubs leave out most of Config's options and the endpoint.
    config: Any = client.meta.config
    seconds = deadline if deadline is not None else deadline_seconds(config)
    endpoint: Any = getattr(client, "_endpoint")  # noqa: B009
    old = endpoint.http_session
    if (
        isinstance(old, PolicySession)
        and old.deadline == seconds
        and old.max_answer_bytes == max_answer_bytes
    ):
        return True
    endpoint.http_session = PolicySession(
        deadline=seconds,
        max_answer_bytes=max_answer_bytes,
        # Set on the session only, as the client resolved them when it was made.
        verify=getattr(old, "_verify", True),
        socket_options=getattr(old, "_socket_options", None),
        proxies=_proxies(client.meta.endpoint_url, config.proxies),
        proxies_config=config.proxies_config,
        timeout=(config.connect_timeout, config.read_timeout),
        max_pool_connections=config.max_pool_connections,
        client_cert=config.client_cert,
    )
    old.close()
    return True
