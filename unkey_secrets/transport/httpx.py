"""httpx under the transport policy: the clients we build, the clients we are given, answers.

* :func:`build_client` makes the client used when none is given: no environment lookups after
  it is built (``trust_env=False``; the proxy and the CA bundle are resolved once, here), no
  proxy at all for plain http, and sockets that never wait past the request's deadline
  (:class:`~._httpcore.PolicyTransport`).
* :func:`check_given_client` refuses a caller's client that would send plain http through a
  proxy.
* :func:`read_answer` reads an answer's body, decoded here with a bounded inflater, into a
  :class:`~.policy.Budget`, checking the deadline between chunks (a client we were given may
  not check it at its sockets).
"""

from __future__ import annotations

import math
import os
import ssl
import zlib
from urllib.parse import urlsplit

import httpx

from .._errors import ConfigurationError
from .._redact import hold_environment
from .policy import AnswerTooLargeError, Budget, current_deadline, proxy_for

__all__ = [
    "ACCEPT_ENCODING",
    "build_client",
    "check_given_client",
    "deadline_seconds",
    "read_answer",
]

#: The encodings :func:`read_answer` decodes: what a request should accept.
ACCEPT_ENCODING = "gzip, deflate"

#: The most one inflate call produces (bytes): the answer grows by pieces this size at most.
_PIECE = 1 << 20

_PROXY_VARIABLES = {
    "http": ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"),
    "https": ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"),
}


def deadline_seconds(timeout: httpx.Timeout) -> float:
    """The deadline of one request under ``timeout``: the longest of its set values, in seconds.

    Each value still caps its own socket operation. Raises ValueError when no value is a
    finite number of seconds above 0 (a request must be bounded).
    """
    values = [timeout.connect, timeout.read, timeout.write, timeout.pool]
    bounded = [value for value in values if value is not None]
    if not bounded or not all(math.isfinite(value) and value > 0 for value in bounded):
        raise ValueError("expected finite timeouts above 0 seconds, at least one of them set")
    return max(bounded)


def _variables(scheme: str) -> str | None:
    """The proxy variables set for ``scheme`` (``HTTPS_PROXY / ALL_PROXY``), or None."""
    names = [name for name in _PROXY_VARIABLES[scheme] if os.environ.get(name)]
    return " / ".join(names) or None


def build_client(
    base_url: str,
    *,
    timeout: httpx.Timeout,
    transport: httpx.BaseTransport | None = None,
    max_connections: int | None = None,
) -> httpx.Client:
    """Build the httpx client for ``base_url`` (https, or http to a loopback host).

    Without ``transport``, requests go through a :class:`~._httpcore.PolicyTransport`: the
    proxy is :func:`~.policy.proxy_for` ``base_url`` (none for plain http), TLS is verified
    against ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` when set (as httpx reads them), else certifi's
    bundle, both read now (plain http, which never does TLS, loads no bundle); its pool keeps
    ``max_connections`` connections (the threads sharing the client) when that is more than
    httpx's defaults. With ``transport`` (a test double), it carries every request.
    Redirects are not followed. Raises :class:`~unkey_secrets.ConfigurationError` for a proxy
    this transport cannot use (an https:// proxy, whose TLS inside TLS it does not bound; a
    SOCKS proxy without the ``socksio`` package), naming the variable that set it, and for a
    CA bundle variable that names no readable bundle. The credentials the environment names are
    held (:func:`~unkey_secrets._redact.hold_environment`).
    """
    hold_environment()
    if transport is None:
        proxy = proxy_for(base_url)
        if proxy is not None:
            proxy = proxy if "://" in proxy else f"http://{proxy}"
            _check_proxy(proxy, _variables("https") or "the environment")
        from ._httpcore import PolicyTransport

        # Plain http (a loopback emulator) never does TLS: no CA bundle to load for it.
        tls = _ssl_context() if urlsplit(base_url).scheme == "https" else None
        transport = PolicyTransport(ssl_context=tls, proxy=proxy, max_connections=max_connections)
    return httpx.Client(transport=transport, timeout=timeout, trust_env=False)


def _ssl_context() -> ssl.SSLContext:
    """A verifying context as httpx makes it: ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, or certifi."""
    try:
        return httpx.create_ssl_context(trust_env=True)
    except (OSError, ssl.SSLError):
        pass
    variable = "SSL_CERT_FILE" if os.environ.get("SSL_CERT_FILE") else "SSL_CERT_DIR"
    raise ConfigurationError(f"{variable} names no readable bundle of CA certificates")


def _check_proxy(proxy: str, variable: str) -> None:
    scheme = urlsplit(proxy).scheme.lower()
    if scheme == "https":
        raise ConfigurationError(
            f"{variable} names an https:// proxy, which the Unkey client does not support "
            "(TLS inside TLS); use the proxy's http:// address (the tunnel to Unkey is TLS "
            "end to end either way), or pass http_client"
        )
    if scheme in ("socks5", "socks5h"):
        import importlib.util  # here: not a cold-start cost of every import

        if importlib.util.find_spec("socksio") is None:
            raise ConfigurationError(
                f"{variable} names a SOCKS proxy, which needs the socksio package: "
                "pip install 'httpx[socks]'"
            )
    elif scheme != "http":
        raise ConfigurationError(
            f"{variable} names a proxy with the scheme {scheme!r}; expected http:// or socks5://"
        )


def check_given_client(client: httpx.Client, base_url: str) -> None:
    """Refuse a caller's ``client`` that would send plain-http ``base_url`` through a proxy.

    A proxy would carry the root key and every plaintext key off the machine in clear. Raises
    :class:`~unkey_secrets.ConfigurationError` naming the variable the proxy came from (for a
    client that trusts the environment), or the client's own proxy setting.
    """
    if urlsplit(base_url).scheme != "http":
        return
    # httpx exposes no public way to ask which transport (direct or a proxy mount) a URL
    # takes; _transport_for_url is the method its send() uses, there in every httpx release.
    route = client._transport_for_url(httpx.URL(base_url))
    if not _proxied(route):
        return
    variables = _variables("http") if client.trust_env else None
    where = variables or "the client's proxy= or mounts= setting"
    raise ConfigurationError(
        f"the given http_client sends {base_url} through a proxy ({where}): plain http would "
        "carry the root key and the keys off the machine in clear; exempt the host "
        "(NO_PROXY), or pass a client without a proxy for it (trust_env=False)"
    )


def _proxied(transport: object, depth: int = 0) -> bool:
    """Whether ``transport`` sends through a proxy (httpx's, ours, or one it wraps).

    A wrapper (a retrying or caching transport) holds the transport it delegates to in an
    attribute whose name no interface fixes: every attribute holding a transport or a
    connection pool is looked into, a few levels deep.
    """
    import httpcore

    from ._httpcore import PolicyTransport

    if isinstance(transport, PolicyTransport):
        return transport.proxied
    if isinstance(transport, (httpcore.HTTPProxy, httpcore.SOCKSProxy)):
        return True
    # An httpx.HTTPTransport keeps its pool in _pool: a proxy pool, or one with a proxy.
    if getattr(transport, "_proxy", None) is not None:
        return True
    if depth >= _WRAPPER_DEPTH:
        return False
    try:
        members = list(vars(transport).values())
    except TypeError:  # no __dict__ (slots only): nothing wrapped that we can see
        return False
    return any(
        _proxied(member, depth + 1)
        for member in members
        if isinstance(member, (httpx.BaseTransport, httpcore.ConnectionPool))
    )


#: How many wrappers deep a given client's transport is looked into for a proxy.
_WRAPPER_DEPTH = 4


class _Decoder:
    """Decodes one Content-Encoding, inflating no more than the budget has room for."""

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        self._inflater: zlib._Decompress | None
        if encoding in ("", "identity"):
            self._inflater = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            # zlib-wrapped, as RFC 9110 says; raw deflate, as some servers send, if that fails.
            self._inflater = zlib.decompressobj()
        else:
            raise httpx.DecodingError(
                f"the answer's content encoding {encoding!r} is not one "
                f"the request accepted ({ACCEPT_ENCODING})"
            )
        self._started = False

    def feed(self, data: bytes, budget: Budget, into: list[bytes]) -> None:
        """Decode ``data`` into ``into``, counting every decoded byte into ``budget``."""
        if self._inflater is None:
            budget.add(len(data))
            into.append(data)
            return
        pending = data
        while pending:
            # One byte past the budget's room is enough to know it is broken; and a piece at a
            # time, so one call never holds much more than the budget in memory.
            room = min(budget.limit - budget.used + 1, _PIECE)
            try:
                out = self._inflater.decompress(pending, room)
            except zlib.error:
                out = None
            if out is None:
                if self._deflate and not self._started:
                    self._deflate = False
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise httpx.DecodingError("the answer's compressed body is corrupt")
            self._started = True
            budget.add(len(out))
            if out:
                into.append(out)
            pending = self._inflater.unconsumed_tail

    def finish(self, budget: Budget, into: list[bytes]) -> None:
        """Decode what the inflater still holds; a compressed body cut short is corrupt."""
        if self._inflater is None:
            return
        out = self._inflater.flush()
        budget.add(len(out))
        if out:
            into.append(out)
        if not self._inflater.eof:
            raise httpx.DecodingError("the answer's compressed body ends before its end")


def read_answer(response: httpx.Response, budget: Budget) -> bytes:
    """Read ``response``'s whole body, decoded, within ``budget`` and the deadline in force.

    The decoded size is what counts: inflating stops one byte past the budget, however small
    the compressed body. Raises :class:`~.policy.AnswerTooLargeError` past the
    budget, :class:`~.policy.DeadlineExceededError` past the deadline, ``httpx.DecodingError``
    for a corrupt body or an encoding the request did not accept (``ACCEPT_ENCODING``), and
    httpx's transport errors as the stream raises them.
    """
    limit = current_deadline()
    if response.is_stream_consumed:
        # A caller's response hook read it already (httpx decoded it): count what it holds.
        budget.add(len(response.content))
        return response.content
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    decoder = _Decoder(encoding)
    declared = response.headers.get("Content-Length", "")
    if encoding in ("", "identity") and declared.isdigit() and int(declared) > budget.limit:
        raise AnswerTooLargeError(budget.limit)  # refused before a byte is read
    parts: list[bytes] = []
    for raw in response.iter_raw():
        decoder.feed(raw, budget, parts)
        if limit is not None:
            limit.check()
    decoder.finish(budget, parts)
    return b"".join(parts)
