"""No plaintext key and no root key in any exception, repr or log record from the client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.unit._unkey_fake import (
    PLAINTEXT,
    ROOT_KEY,
    FakeUnkey,
    Reply,
    error,
    exception_texts,
    fail,
    issued,
    make_client,
    ok,
    raw,
)
from unkey_secrets import UnkeyError
from unkey_secrets.unkey import UnkeyClient

SECRETS = (PLAINTEXT, ROOT_KEY)
WHOLE = b'{"meta":{"requestId":"req_1"},"data":{"keyId":"key_abc123","key":"' + PLAINTEXT.encode()


def assert_clean(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text
        # Half a key is still a leak.
        assert secret[: len(secret) // 2] not in text


def log_text(records: list[logging.LogRecord]) -> str:
    return "\n".join(
        f"{r.getMessage()} {r.args!r} {r.exc_text or ''} {r.__dict__!r}" for r in records
    )


CREATE_FAILURES: dict[str, Reply] = {
    # JSON cut off in the middle of the key, as a dropped connection would leave it.
    "cut-in-key": raw(200, WHOLE[: len(WHOLE) - 10]),
    "cut-after-key": raw(200, WHOLE + b'"'),
    "trailing-garbage": raw(200, WHOLE + b'"}}garbage'),
    "bad-key-id": ok({"keyId": "key id!", "key": PLAINTEXT}),
    "key-not-str": ok({"keyId": "key_abc123", "key": [PLAINTEXT]}),
    "no-data": raw(200, b'{"meta":{},"dat":{"key":"' + PLAINTEXT.encode() + b'"}}'),
    "error-with-key": raw(400, b'{"oops":"' + PLAINTEXT.encode() + b'"}'),
    "gateway-with-key": raw(502, b"<html>" + PLAINTEXT.encode() + b"</html>", "text/html"),
    # A create that fails issues no key; the root key is the one secret an error could echo.
    "envelope-echoing-root-key": error(400, title=f"bad {ROOT_KEY}", detail=f"{ROOT_KEY}!"),
    "read-timeout": fail(httpx.ReadTimeout),
    "connect-error": fail(httpx.ConnectError),
}


@pytest.mark.parametrize("reply", CREATE_FAILURES.values(), ids=CREATE_FAILURES.keys())
def test_create_key_failures_never_carry_a_key(
    reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeUnkey(reply)
    with make_client(fake) as client, pytest.raises(UnkeyError) as raised:
        client.create_key("api_123")
    assert_clean(exception_texts(raised.value))
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    assert_clean(log_text(caplog.records))


def test_an_envelope_echoing_the_root_key_is_masked() -> None:
    fake = FakeUnkey(error(401, title="Unauthorized", detail=f"root key {ROOT_KEY} is unknown"))
    with make_client(fake) as client, pytest.raises(UnkeyError) as raised:
        client.create_key("api_123")
    assert "root key ********** is unknown" in str(raised.value)


VERIFY_FAILURES: dict[str, Reply] = {
    "read-timeout": fail(httpx.ReadTimeout),
    "connect-error": fail(httpx.ConnectError),
    "protocol": fail(httpx.RemoteProtocolError),
    "echo-400": error(400, detail=f"key {PLAINTEXT} is malformed"),
    "echo-bare": raw(400, PLAINTEXT.encode(), "text/plain"),
    "cut": raw(200, b'{"meta":{},"data":{"valid":true,"code":"' + PLAINTEXT.encode()),
    "shape": ok({"valid": PLAINTEXT, "code": "VALID"}),
}


@pytest.mark.parametrize("reply", VERIFY_FAILURES.values(), ids=VERIFY_FAILURES.keys())
def test_verify_key_failures_never_carry_the_key(
    reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeUnkey(reply)
    with make_client(fake, max_retries=0) as client, pytest.raises(UnkeyError) as raised:
        client.verify_key(PLAINTEXT)
    assert_clean(exception_texts(raised.value))
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    assert_clean(log_text(caplog.records))


def test_get_key_with_a_malformed_decrypted_answer_never_carries_the_key() -> None:
    data = {"keyId": "key_abc123", "start": "x", "createdAt": "bad", "plaintext": PLAINTEXT}
    fake = FakeUnkey(ok(data))
    with make_client(fake) as client, pytest.raises(UnkeyError) as raised:
        client.get_key("key_abc123", decrypt=True)
    assert_clean(exception_texts(raised.value))


SUCCESSES: dict[str, tuple[Callable[[UnkeyClient], Any], Reply]] = {
    "create": (lambda c: c.create_key("api_123"), issued()),
    "reroll": (lambda c: c.reroll_key("key_old123", expiration_ms=0, api_id="api_1"), issued()),
    "verify": (lambda c: c.verify_key(PLAINTEXT), ok({"valid": True, "code": "VALID"})),
    "get-decrypt": (
        lambda c: c.get_key("key_abc123", decrypt=True),
        ok(
            {
                "keyId": "key_abc123",
                "start": "x",
                "createdAt": 1,
                "enabled": True,
                "plaintext": PLAINTEXT,
            }
        ),
    ),
}


@pytest.mark.parametrize(("call", "reply"), SUCCESSES.values(), ids=SUCCESSES.keys())
def test_results_and_logs_of_successful_calls_show_no_key(
    call: Callable[[UnkeyClient], Any], reply: Reply, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeUnkey(reply)
    with make_client(fake) as client:
        result = call(client)
    assert_clean(repr(result))
    assert_clean(str(result))
    assert_clean(log_text(caplog.records))


def test_the_client_logs_operation_status_request_id_and_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="unkey_secrets.unkey")
    fake = FakeUnkey(error(503, request_id="req_first"), ok({}), issued())
    with make_client(fake) as client:
        client.delete_key("key_abc123")
        client.create_key("api_123")
    messages = [r.getMessage() for r in caplog.records if r.name == "unkey_secrets.unkey"]
    assert any("keys.deleteKey answered 503 requestId=req_first in" in m for m in messages)
    assert any("keys.deleteKey retry 1/3" in m for m in messages)
    assert any("keys.createKey answered 200 requestId=req_issue in" in m for m in messages)
    assert_clean(log_text(caplog.records))


def test_the_client_repr_hides_the_root_key() -> None:
    client = UnkeyClient(ROOT_KEY, base_url="https://unkey.test")
    assert repr(client) == "UnkeyClient(base_url='https://unkey.test')"
    assert_clean(repr(client))
    assert_clean(str(client))
    assert_clean(repr(vars(client)))
    assert_clean(repr(client._wire))
    assert_clean(repr(vars(client._wire)))
    client.close()


def test_the_root_key_is_not_kept_in_the_http_clients_default_headers() -> None:
    client = UnkeyClient(ROOT_KEY)
    assert "authorization" not in client._wire.http.headers
    client.close()
