"""Every bad input is refused before any request, names its field and never echoes its value."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.unit._unkey_fake import ROOT_KEY, FakeUnkey, make_client
from unkey_secrets import InvalidInputError, Secret
from unkey_secrets.unkey import Credits, Ratelimit, UnkeyClient

CANARY = "sk_live_ValidationCanary1234567890"

Call = Callable[[UnkeyClient], Any]


def _deep(depth: int) -> dict[str, Any]:
    # Nested past the interpreter's recursion limit: json.dumps raises RecursionError on it.
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


BAD_CALLS: list[tuple[str, str, Call]] = [
    ("api_id", "api_id", lambda c: c.create_key(CANARY + "!")),
    ("api_id short", "api_id", lambda c: c.create_key("ab")),
    ("prefix long", "prefix", lambda c: c.create_key("api_1", prefix="p" * 17)),
    ("prefix chars", "prefix", lambda c: c.create_key("api_1", prefix="a-b")),
    ("prefix empty", "prefix", lambda c: c.create_key("api_1", prefix="")),
    ("name empty", "name", lambda c: c.create_key("api_1", name="")),
    ("name long", "name", lambda c: c.create_key("api_1", name=CANARY * 10)),
    ("byte_length low", "byte_length", lambda c: c.create_key("api_1", byte_length=15)),
    ("byte_length high", "byte_length", lambda c: c.create_key("api_1", byte_length=256)),
    ("byte_length bool", "byte_length", lambda c: c.create_key("api_1", byte_length=True)),
    ("external_id", "external_id", lambda c: c.create_key("api_1", external_id=CANARY + " x")),
    ("meta type", "meta", lambda c: c.create_key("api_1", meta=[("a", 1)])),
    ("meta size", "meta", lambda c: c.create_key("api_1", meta={str(i): i for i in range(101)})),
    ("meta key", "meta", lambda c: c.create_key("api_1", meta={1: "a"})),
    ("meta object", "meta", lambda c: c.create_key("api_1", meta={"a": object()})),
    ("meta nan", "meta", lambda c: c.create_key("api_1", meta={"a": math.nan})),
    ("meta deep", "meta", lambda c: c.create_key("api_1", meta=_deep(100_000))),
    ("meta secret", "meta", lambda c: c.create_key("api_1", meta={"a": Secret(CANARY)})),
    ("expires neg", "expires", lambda c: c.create_key("api_1", expires=-1)),
    ("expires 2100", "expires", lambda c: c.create_key("api_1", expires=4_102_444_800_001)),
    ("expires str", "expires", lambda c: c.create_key("api_1", expires=CANARY)),
    (
        "expires naive",
        "expires",
        lambda c: c.create_key("api_1", expires=dt.datetime(2030, 1, 1)),
    ),
    ("credits none", "credits.remaining", lambda c: c.create_key("api_1", credits=Credits(None))),
    ("credits neg", "credits.remaining", lambda c: c.create_key("api_1", credits=Credits(-1))),
    ("credits type", "credits", lambda c: c.create_key("api_1", credits=5)),
    (
        "credits member",
        "credits",
        lambda c: c.create_key("api_1", credits={"remaining": 1, CANARY: 1}),
    ),
    (
        "credits interval",
        "credits.refill_interval",
        lambda c: c.create_key("api_1", credits=Credits(1, "weekly", 1)),
    ),
    (
        "credits amount",
        "credits.refill_amount",
        lambda c: c.create_key("api_1", credits=Credits(1, "daily", 0)),
    ),
    (
        "credits day daily",
        "credits.refill_day",
        lambda c: c.create_key("api_1", credits=Credits(1, "daily", 1, 5)),
    ),
    (
        "credits day 32",
        "credits.refill_day",
        lambda c: c.create_key("api_1", credits=Credits(1, "monthly", 1, 32)),
    ),
    ("ratelimits type", "ratelimits", lambda c: c.create_key("api_1", ratelimits="r")),
    (
        "ratelimits many",
        "ratelimits",
        lambda c: c.create_key("api_1", ratelimits=[Ratelimit("abc", 1, 1000)] * 51),
    ),
    (
        "ratelimit name",
        "ratelimits.name",
        lambda c: c.create_key("api_1", ratelimits=[Ratelimit("ab", 1, 1000)]),
    ),
    (
        "ratelimit duration",
        "ratelimits.duration",
        lambda c: c.create_key("api_1", ratelimits=[{"name": "abc", "limit": 1, "duration": 999}]),
    ),
    (
        "ratelimit missing",
        "ratelimits.limit",
        lambda c: c.create_key("api_1", ratelimits=[{"name": "abc", "duration": 1000}]),
    ),
    ("enabled", "enabled", lambda c: c.create_key("api_1", enabled="yes")),
    ("recoverable", "recoverable", lambda c: c.create_key("api_1", recoverable=1)),
    ("roles str", "roles", lambda c: c.create_key("api_1", roles="admin")),
    ("roles empty item", "roles", lambda c: c.create_key("api_1", roles=[""])),
    ("permissions", "permissions", lambda c: c.create_key("api_1", permissions=[CANARY + " x"])),
    ("permissions many", "permissions", lambda c: c.create_key("api_1", permissions=["a"] * 1001)),
    (
        "reroll key_id",
        "key_id",
        lambda c: c.reroll_key(CANARY + "-", expiration_ms=0, api_id="a_1"),
    ),
    (
        "reroll expiration",
        "expiration_ms",
        lambda c: c.reroll_key("key_1", expiration_ms=-1, api_id="api_1"),
    ),
    (
        "reroll expiration big",
        "expiration_ms",
        lambda c: c.reroll_key("key_1", expiration_ms=4_102_444_800_001, api_id="api_1"),
    ),
    (
        "reroll api_id",
        "api_id",
        lambda c: c.reroll_key("key_1", expiration_ms=0, api_id="a/b"),
    ),
    ("verify empty", "key", lambda c: c.verify_key("")),
    ("verify long", "key", lambda c: c.verify_key("k" * 513)),
    ("verify type", "key", lambda c: c.verify_key(b"bytes")),
    ("verify tags", "tags", lambda c: c.verify_key(CANARY, tags=["t"] * 21)),
    ("verify cost", "credits_cost", lambda c: c.verify_key(CANARY, credits_cost=-1)),
    ("verify perms", "permissions", lambda c: c.verify_key(CANARY, permissions="")),
    (
        "verify ratelimits",
        "ratelimits.name",
        lambda c: c.verify_key(CANARY, ratelimits=[{"name": "x"}]),
    ),
    ("get key_id", "key_id", lambda c: c.get_key(CANARY + ".")),
    ("get decrypt", "decrypt", lambda c: c.get_key("key_1", decrypt="yes")),
    ("update key_id", "key_id", lambda c: c.update_key("k", enabled=True)),
    ("update nothing", "changes", lambda c: c.update_key("key_1")),
    ("update enabled None", "enabled", lambda c: c.update_key("key_1", enabled=None)),
    ("update roles None", "roles", lambda c: c.update_key("key_1", roles=None)),
    ("update ratelimits None", "ratelimits", lambda c: c.update_key("key_1", ratelimits=None)),
    ("update perms None", "permissions", lambda c: c.update_key("key_1", permissions=None)),
    ("update name", "name", lambda c: c.update_key("key_1", name="")),
    ("update meta", "meta", lambda c: c.update_key("key_1", meta="x")),
    ("delete key_id", "key_id", lambda c: c.delete_key(CANARY + ".")),
    ("delete permanent", "permanent", lambda c: c.delete_key("key_1", permanent="true")),
    ("list api_id", "api_id", lambda c: c.list_keys("")),
    ("list limit 0", "limit", lambda c: c.list_keys("api_1", limit=0)),
    ("list limit 101", "limit", lambda c: c.list_keys("api_1", limit=101)),
    ("list external_id", "external_id", lambda c: c.list_keys("api_1", external_id="a b")),
    (
        "list revalidate",
        "revalidate_keys_cache",
        lambda c: c.list_keys("api_1", revalidate_keys_cache=None),
    ),
    ("create_api name", "name", lambda c: c.create_api("ab")),
    ("get_api", "api_id", lambda c: c.get_api("a")),
]


@pytest.mark.parametrize(
    ("field", "call"), [(f, c) for _, f, c in BAD_CALLS], ids=[i for i, _, _ in BAD_CALLS]
)
def test_bad_input_is_refused_before_any_request(field: str, call: Call) -> None:
    fake = FakeUnkey()
    with make_client(fake) as client, pytest.raises(InvalidInputError) as raised:
        call(client)
    assert raised.value.field == field
    assert fake.requests == []
    assert CANARY not in str(raised.value)
    assert raised.value.__context__ is None or CANARY not in str(raised.value.__context__)


# -- free text: control, bidi and zero-width characters are refused everywhere ----------------

UNSAFE = {
    "nul": ("\x00", "U+0000"),
    "newline": ("\n", "U+000A"),
    "rtl-override": ("\u202e", "U+202E"),
    "zero-width-space": ("\u200b", "U+200B"),
}

TEXT_OPTIONS: dict[str, tuple[str, Callable[[UnkeyClient, str], Any]]] = {
    "create name": ("name", lambda c, t: c.create_key("api_1", name=t)),
    "update name": ("name", lambda c, t: c.update_key("key_1", name=t)),
    "create_api name": ("name", lambda c, t: c.create_api(t)),
    "ratelimit name": (
        "ratelimits.name",
        lambda c, t: c.create_key("api_1", ratelimits=[Ratelimit(t, 1, 1000)]),
    ),
    "update ratelimit name": (
        "ratelimits.name",
        lambda c, t: c.update_key("key_1", ratelimits=[{"name": t, "limit": 1, "duration": 1000}]),
    ),
    "verify ratelimit name": (
        "ratelimits.name",
        lambda c, t: c.verify_key(CANARY, ratelimits=[{"name": t}]),
    ),
    "roles": ("roles", lambda c, t: c.create_key("api_1", roles=[t])),
    "tags": ("tags", lambda c, t: c.verify_key(CANARY, tags=[t])),
    "permission query": ("permissions", lambda c, t: c.verify_key(CANARY, permissions=t)),
    "meta key": ("meta", lambda c, t: c.create_key("api_1", meta={t: 1})),
    "update meta key": ("meta", lambda c, t: c.update_key("key_1", meta={t: 1})),
}


@pytest.mark.parametrize(("char", "code"), UNSAFE.values(), ids=UNSAFE.keys())
@pytest.mark.parametrize(("field", "call"), TEXT_OPTIONS.values(), ids=TEXT_OPTIONS.keys())
def test_free_text_with_unsafe_characters_is_refused_without_echo(
    char: str, code: str, field: str, call: Callable[[UnkeyClient, str], Any]
) -> None:
    text = "svc" + CANARY + char + "name"
    fake = FakeUnkey()
    with make_client(fake) as client, pytest.raises(InvalidInputError) as raised:
        call(client, text)
    assert raised.value.field == field
    assert fake.requests == []
    message = str(raised.value)
    assert "control, bidi or zero-width" in message
    assert f"found {code} at position {len('svc' + CANARY)}" in message
    assert CANARY not in message


@pytest.mark.parametrize("name", ["billing service", "Zahlungsdienst für Kunden", "サービス"])
def test_ordinary_names_are_sent(name: str) -> None:
    from tests.unit._unkey_fake import issued

    fake = FakeUnkey(issued())
    with make_client(fake) as client:
        client.create_key("api_1", name=name, meta={"Besitzer": name})
    assert fake.bodies[0]["name"] == name


# -- the client's own settings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://api.unkey.com",
        "http://10.0.0.1:8080",
        "http://192.168.1.5",
        "http://localhost.evil.test",
        "http://[::2]:80",
        "http://127.0.0.1.nip.io",
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused(url: str) -> None:
    with pytest.raises(InvalidInputError, match="loopback") as raised:
        UnkeyClient(ROOT_KEY, base_url=url)
    assert raised.value.field == "base_url"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8787",
        "http://127.9.9.9",
        "http://[::1]:8787/",
        "http://localhost:1",
        "https://api.unkey.com",
        "https://unkey.internal.example/prefix",
    ],
)
def test_https_and_loopback_http_are_accepted(url: str) -> None:
    UnkeyClient(ROOT_KEY, base_url=url).close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.unkey.com",
        "api.unkey.com",
        "https://",
        "https://host:99999",
        "https://user:pw_" + CANARY + "@api.unkey.com",
        "https://api.unkey.com?x=1",
        "https://api.unkey.com#frag",
        42,
    ],
)
def test_malformed_base_urls_are_refused_without_echo(url: object) -> None:
    with pytest.raises(InvalidInputError) as raised:
        UnkeyClient(ROOT_KEY, base_url=url)  # type: ignore[arg-type]
    assert raised.value.field == "base_url"
    assert CANARY not in str(raised.value)


@pytest.mark.parametrize("root_key", ["", "has space", "new\nline", "ключ", 123, None])
def test_bad_root_keys_are_refused_without_echo(root_key: object) -> None:
    with pytest.raises(InvalidInputError) as raised:
        UnkeyClient(root_key)  # type: ignore[arg-type]
    assert raised.value.field == "root_key"
    if isinstance(root_key, str) and root_key:
        assert root_key not in str(raised.value)


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("timeout", 0),
        ("timeout", -1.0),
        ("timeout", "10"),
        ("max_retries", -1),
        ("max_retries", 11),
        ("max_retries", 1.5),
        ("backoff", -0.1),
        ("backoff", math.nan),
        ("max_backoff", -1),
        ("user_agent", "bad\nagent"),
        ("sleep", "not callable"),
    ],
)
def test_bad_client_options_are_refused(option: str, value: object) -> None:
    with pytest.raises(InvalidInputError) as raised:
        UnkeyClient(ROOT_KEY, **{option: value})
    assert raised.value.field == option


def test_transport_and_http_client_together_are_refused() -> None:
    with httpx.Client() as http, pytest.raises(InvalidInputError):
        UnkeyClient(ROOT_KEY, transport=httpx.MockTransport(FakeUnkey()), http_client=http)


def test_a_root_key_may_be_given_as_a_secret() -> None:
    fake = FakeUnkey(httpx.Response(200, json={"meta": {"requestId": "r"}, "data": {}}))
    client = UnkeyClient(
        Secret(ROOT_KEY), base_url="https://unkey.test", transport=httpx.MockTransport(fake)
    )
    client.delete_key("key_abc123")
    assert fake.requests[0].headers["authorization"] == f"Bearer {ROOT_KEY}"


def test_the_client_offers_no_way_to_turn_tls_verification_off() -> None:
    import inspect

    assert "verify" not in inspect.signature(UnkeyClient).parameters
    client = UnkeyClient(ROOT_KEY)
    # httpx keeps verification in the transport's SSL context.
    pool = client._wire.http._transport._pool  # type: ignore[attr-defined]
    import ssl

    assert pool._ssl_context.verify_mode == ssl.CERT_REQUIRED
    client.close()
