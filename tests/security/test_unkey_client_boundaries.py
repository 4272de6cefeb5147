"""The Unkey client's boundaries: proxies, a caller's client and hooks, constructors, reprs.

* Plain http never goes through a proxy: a real "proxy" on loopback records what reaches it.
* Whatever a caller's httpx client, hooks or transport raise becomes our own error, holding no
  request or response (so no root key and no key being verified), chained to nothing.
* A failing constructor or settings load leaves no root key in a traceback's locals.
* Every repr in the package's unkey modules works on a half-built object.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import pickle
import ssl
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import certifi
import httpx
import pytest

from tests.unit._answer_servers import AnswerServer, ListeningProxy, fixed
from unkey_secrets import (
    ConfigurationError,
    InvalidInputError,
    UnkeyAmbiguousError,
    UnkeyError,
    UnkeyTransportError,
)
from unkey_secrets.unkey import UnkeyClient, UnkeySettings

# Printable ASCII without spaces, as a root key may be, with characters JSON and repr escape.
ROOT = 'unkey_R00t"Bound\\aryCanary7f3a9c1d2e'
VERIFIED = "prod_3ZkBoundaryVerified8uVq2Lr7Wm1"
FORMS = {ROOT, json.dumps(ROOT)[1:-1], repr(ROOT)[1:-1], "R00t", VERIFIED}
PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)
DELETED = json.dumps({"meta": {"requestId": "req_1"}, "data": {}}).encode()


def assert_clean(text: str) -> None:
    for form in FORMS:
        assert form not in text


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with no proxy variables; the test sets the ones it needs."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def proxy() -> Iterator[ListeningProxy]:
    with ListeningProxy() as listening:
        yield listening


@pytest.fixture
def unkey() -> Iterator[AnswerServer]:
    """A loopback "Unkey" that answers every call with an empty success."""
    with AnswerServer(fixed(200, DELETED)) as server:
        yield server


# -- plain http never through a proxy -------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_our_client_sends_plain_http_straight_to_loopback_whatever_the_proxy_variables(
    variable: str, no_proxies: pytest.MonkeyPatch, proxy: ListeningProxy, unkey: AnswerServer
) -> None:
    no_proxies.setenv(variable, proxy.url)
    with UnkeyClient(ROOT, base_url=unkey.url) as client:
        assert client.delete_key("key_abc123") == "req_1"
    assert proxy.received == []
    (connection,) = unkey.connections
    assert f"Authorization: Bearer {ROOT}".encode() in connection.request


def test_a_given_client_that_trusts_the_proxy_variables_is_refused_for_plain_http(
    no_proxies: pytest.MonkeyPatch, proxy: ListeningProxy, unkey: AnswerServer
) -> None:
    no_proxies.setenv("HTTP_PROXY", proxy.url)
    with httpx.Client() as http, pytest.raises(ConfigurationError) as raised:
        UnkeyClient(ROOT, base_url=unkey.url, http_client=http)
    assert "HTTP_PROXY" in str(raised.value)
    assert "NO_PROXY" in str(raised.value)
    assert_clean(str(raised.value))
    assert proxy.received == []
    assert unkey.connections == []


@pytest.mark.parametrize("how", ["proxy", "mounts"])
def test_a_given_client_with_its_own_proxy_is_refused_for_plain_http(
    how: str, no_proxies: pytest.MonkeyPatch, proxy: ListeningProxy, unkey: AnswerServer
) -> None:
    options: dict[str, Any] = (
        {"proxy": proxy.url}
        if how == "proxy"
        else {"mounts": {"http://127.0.0.1": httpx.HTTPTransport(proxy=proxy.url)}}
    )
    with (
        httpx.Client(trust_env=False, **options) as http,
        pytest.raises(ConfigurationError) as raised,
    ):
        UnkeyClient(ROOT, base_url=unkey.url, http_client=http)
    assert "proxy= or mounts=" in str(raised.value)
    assert proxy.received == []


class _RetryingTransport(httpx.BaseTransport):
    """A wrapper in the shape retry and cache libraries use: the real transport in an attribute."""

    def __init__(self, wrapped: httpx.BaseTransport) -> None:
        self._wrapped = wrapped

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        return self._wrapped.handle_request(request)


@pytest.mark.parametrize("layers", [1, 2])
def test_a_proxy_inside_a_wrapping_transport_is_refused_for_plain_http(
    layers: int, no_proxies: pytest.MonkeyPatch, proxy: ListeningProxy, unkey: AnswerServer
) -> None:
    transport: httpx.BaseTransport = httpx.HTTPTransport(proxy=proxy.url)
    for _ in range(layers):
        transport = _RetryingTransport(transport)
    with (
        httpx.Client(trust_env=False, transport=transport) as http,
        pytest.raises(ConfigurationError) as raised,
    ):
        UnkeyClient(ROOT, base_url=unkey.url, http_client=http)
    assert "proxy= or mounts=" in str(raised.value)
    assert proxy.received == []


def test_a_wrapping_transport_without_a_proxy_is_used(
    no_proxies: pytest.MonkeyPatch, unkey: AnswerServer
) -> None:
    with httpx.Client(trust_env=False, transport=_RetryingTransport(httpx.HTTPTransport())) as http:
        UnkeyClient(ROOT, base_url=unkey.url, http_client=http)


def test_a_given_client_whose_proxy_exempts_loopback_is_used(
    no_proxies: pytest.MonkeyPatch, proxy: ListeningProxy, unkey: AnswerServer
) -> None:
    no_proxies.setenv("HTTP_PROXY", proxy.url)
    no_proxies.setenv("NO_PROXY", "127.0.0.1")
    with httpx.Client() as http, UnkeyClient(ROOT, base_url=unkey.url, http_client=http) as c:
        assert c.delete_key("key_abc123") == "req_1"
    assert proxy.received == []
    assert len(unkey.connections) == 1


def test_a_given_client_may_take_https_through_its_proxy(no_proxies: pytest.MonkeyPatch) -> None:
    with httpx.Client(proxy="http://127.0.0.1:9", trust_env=False) as http:
        UnkeyClient(ROOT, base_url="https://unkey.test", http_client=http).close()


def test_our_client_reads_the_environment_once_and_never_again(
    no_proxies: pytest.MonkeyPatch, proxy: ListeningProxy, unkey: AnswerServer
) -> None:
    with UnkeyClient(ROOT, base_url=unkey.url) as client:
        assert client._wire.http.trust_env is False
        no_proxies.setenv("HTTP_PROXY", proxy.url)
        no_proxies.setenv("ALL_PROXY", proxy.url)
        client.delete_key("key_abc123")
    assert proxy.received == []


def test_an_https_proxy_for_our_client_is_refused_naming_its_variable(
    no_proxies: pytest.MonkeyPatch,
) -> None:
    no_proxies.setenv("HTTPS_PROXY", "https://proxy.corp.test:3128")
    with pytest.raises(ConfigurationError) as raised:
        UnkeyClient(ROOT, base_url="https://unkey.test")
    assert "HTTPS_PROXY" in str(raised.value)
    assert "http://" in str(raised.value)


def test_a_socks_proxy_without_socksio_is_refused_naming_its_variable(
    no_proxies: pytest.MonkeyPatch,
) -> None:
    no_proxies.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    no_proxies.setattr("importlib.util.find_spec", lambda name, *a: None)
    with pytest.raises(ConfigurationError) as raised:
        UnkeyClient(ROOT, base_url="https://unkey.test")
    assert "ALL_PROXY" in str(raised.value)
    assert "socksio" in str(raised.value)


def test_an_http_proxy_for_https_is_kept_with_its_credentials_out_of_the_repr(
    no_proxies: pytest.MonkeyPatch,
) -> None:
    no_proxies.setenv("HTTPS_PROXY", "http://user:s3cretProxyPassw0rd@proxy.corp.test:3128")
    with UnkeyClient(ROOT, base_url="https://unkey.test") as client:
        transport = client._wire.http._transport
        assert transport.proxied  # type: ignore[attr-defined]
        assert "s3cret" not in repr(transport)


def test_the_ca_bundle_variable_is_honoured_once_at_build(
    no_proxies: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bundle = certifi.contents()
    first = bundle[: bundle.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    one = tmp_path / "one-ca.pem"
    one.write_text(first[first.index("-----BEGIN CERTIFICATE-----") :] + "\n")
    no_proxies.setenv("SSL_CERT_FILE", str(one))
    with UnkeyClient(ROOT, base_url="https://unkey.test") as client:
        context = client._wire.http._transport._pool._ssl_context  # type: ignore[attr-defined]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert len(context.get_ca_certs()) == 1


def test_a_ca_bundle_variable_naming_nothing_is_a_configuration_error(
    no_proxies: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    no_proxies.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigurationError, match="SSL_CERT_FILE"):
        UnkeyClient(ROOT, base_url="https://unkey.test")


# -- a caller's client, hooks and transport ------------------------------------------------------


def _server_error(request: httpx.Request) -> httpx.Response:
    return httpx.Response(500, json={"error": "boom"}, request=request)


def _raise_for_status(response: httpx.Response) -> None:
    response.raise_for_status()


def _carrying_the_request(request: httpx.Request) -> httpx.Response:
    raise RuntimeError("transport gave up", request, dict(request.headers), request.content)


CALLERS_FAILURES: dict[str, tuple[dict[str, Any], Callable[[httpx.Request], httpx.Response]]] = {
    "raise_for_status-hook": ({"event_hooks": {"response": [_raise_for_status]}}, _server_error),
    "transport-raising": ({}, _carrying_the_request),
}


@pytest.mark.parametrize(
    ("options", "handler"), CALLERS_FAILURES.values(), ids=CALLERS_FAILURES.keys()
)
@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.verify_key(VERIFIED), UnkeyTransportError),
        (lambda c: c.create_key("api_123"), UnkeyAmbiguousError),
    ],
    ids=["verify_key", "create_key"],
)
def test_what_a_callers_client_raises_becomes_our_error_holding_nothing(
    options: dict[str, Any],
    handler: Callable[[httpx.Request], httpx.Response],
    call: Callable[[UnkeyClient], object],
    expected: type[UnkeyError],
) -> None:
    requests: list[httpx.Request] = []

    def recording(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return handler(request)

    http = httpx.Client(transport=httpx.MockTransport(recording), **options)
    client = UnkeyClient(
        ROOT, base_url="https://unkey.test", http_client=http, sleep=lambda _: None
    )
    with pytest.raises(UnkeyError) as raised:
        call(client)
    error = raised.value
    assert type(error) is expected
    assert error.__cause__ is None
    assert error.__context__ is None
    assert "from the HTTP client" in str(error)
    assert not any(
        isinstance(value, (httpx.Request, httpx.Response)) for value in vars(error).values()
    )
    assert_clean(f"{error!s} {error!r} {error.args!r} {vars(error)!r}")
    rendered = "".join(
        traceback.TracebackException(
            type(error), error, error.__traceback__, capture_locals=True
        ).format()
    )
    assert_clean(rendered)
    pickled = pickle.dumps(error)
    for form in FORMS:
        assert form.encode() not in pickled
    assert type(pickle.loads(pickled)) is expected  # noqa: S301 (our own bytes, just made)
    # Not retried: what the caller's client means by its error is the caller's.
    assert len(requests) == 1
    http.close()


def test_a_status_error_from_a_hook_names_the_status() -> None:
    http = httpx.Client(
        transport=httpx.MockTransport(_server_error),
        event_hooks={"response": [_raise_for_status]},
    )
    client = UnkeyClient(ROOT, base_url="https://unkey.test", http_client=http)
    with pytest.raises(
        UnkeyTransportError, match="HTTPStatusError from the HTTP client on status 500"
    ):
        client.get_key("key_abc123")
    http.close()


# -- constructors and settings leave no root key in a traceback's locals --------------------------


def _proxied_client() -> httpx.Client:
    return httpx.Client(proxy="http://127.0.0.1:9", trust_env=False)


CONSTRUCTOR_FAILURES: dict[str, tuple[Callable[[], object], type[Exception]]] = {
    "bad-base-url": (lambda: UnkeyClient(ROOT, base_url="http://unkey.example"), InvalidInputError),
    "timeout-0": (lambda: UnkeyClient(ROOT, timeout=0), InvalidInputError),
    "timeout-inf": (lambda: UnkeyClient(ROOT, timeout=float("inf")), InvalidInputError),
    "trailing-newline": (lambda: UnkeyClient(ROOT + "\n"), InvalidInputError),
    "max-answer-bytes-0": (lambda: UnkeyClient(ROOT, max_answer_bytes=0), InvalidInputError),
    "proxied-http-client": (
        lambda: UnkeyClient(ROOT, base_url="http://127.0.0.1:9", http_client=_proxied_client()),
        ConfigurationError,
    ),
    "settings-timeout-0": (lambda: UnkeySettings(root_key=ROOT, timeout=0), ValueError),
    "from-settings-bad-base-url": (
        lambda: UnkeyClient.from_settings(
            UnkeySettings(root_key=ROOT), base_url="http://x.example"
        ),
        InvalidInputError,
    ),
    "from-settings-newline": (
        lambda: UnkeyClient.from_settings(UnkeySettings(root_key=ROOT + "\n")),
        InvalidInputError,
    ),
}


def _rendered(call: Callable[[], object], expected: type[Exception]) -> str:
    try:
        call()
    except expected as exc:
        return "".join(
            traceback.TracebackException(
                type(exc), exc, exc.__traceback__, capture_locals=True
            ).format()
        )
    raise AssertionError("no error")


@pytest.mark.parametrize(
    ("call", "expected"), CONSTRUCTOR_FAILURES.values(), ids=CONSTRUCTOR_FAILURES.keys()
)
def test_a_failing_constructor_leaves_no_root_key_in_rendered_locals(
    call: Callable[[], object], expected: type[Exception]
) -> None:
    assert_clean(_rendered(call, expected))


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"UNKEY_TIMEOUT": "0"}, ConfigurationError),
        ({"UNKEY_BASE_URL": "http://unkey.example"}, InvalidInputError),
        ({"UNKEY_ROOT_KEY": ROOT + " "}, InvalidInputError),
    ],
    ids=["timeout-0", "bad-base-url", "trailing-space"],
)
def test_from_settings_failing_on_the_environment_leaves_no_root_key_in_rendered_locals(
    variables: dict[str, str], expected: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UNKEY_ROOT_KEY", ROOT)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert_clean(_rendered(UnkeyClient.from_settings, expected))


# -- reprs of half-built objects -----------------------------------------------------------------


def _classes() -> list[type]:
    from unkey_secrets.transport import _httpcore
    from unkey_secrets.transport import httpx as policy_httpx
    from unkey_secrets.unkey import _repr, backoff, client, models, options, settings, wire

    found: list[type] = []
    for module in (
        client,
        wire,
        models,
        backoff,
        options,
        settings,
        _repr,
        _httpcore,
        policy_httpx,
    ):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__module__ == module.__name__
                and not issubclass(value, (enum.Enum, BaseException))
            ):
                found.append(value)
    return found


def _states(obj: object, attributes: Sequence[tuple[str, object]]) -> Iterator[object]:
    """``obj`` with none of ``attributes`` set, then with each prefix of them set."""
    yield obj
    for name, value in attributes:
        object.__setattr__(obj, name, value)
        yield obj


@pytest.mark.parametrize("cls", _classes(), ids=lambda cls: cls.__qualname__)
def test_every_repr_works_on_a_half_built_object(cls: type) -> None:
    half: object = object.__new__(cls)
    if dataclasses.is_dataclass(cls):
        attributes = [(field.name, "x") for field in dataclasses.fields(cls)]
    else:
        attributes = []
    for state in _states(half, attributes):
        assert_clean(repr(state))


def test_a_client_built_attribute_by_attribute_renders_at_every_step() -> None:
    real = UnkeyClient(ROOT, base_url="https://unkey.test")
    for source in (real, real._wire):
        half = object.__new__(type(source))
        for state in _states(half, list(vars(source).items())):
            assert_clean(repr(state))
    assert_clean(repr(real) + repr(real._wire) + repr(vars(real._wire)))
    real.close()
