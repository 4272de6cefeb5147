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


# -- Unkey's own text is untrusted: a key it quotes never reaches an error ----------------------

#: A key Unkey could quote that this process never confined (another tenant's, a reroll's).
FOREIGN_KEY = "sk_live_4fGhQuotedByServer9pLmN2xR"


def _quoting(status: int, where: str, headers: dict[str, str] | None = None) -> Reply:
    texts = {
        "title": "Bad Request",
        "detail": "some detail",
        "type_": "https://unkey.com/docs/errors/unkey/data/key_not_found",
        "request_id": "req_1",
    }
    texts[where] = f"the key {FOREIGN_KEY} was not accepted"
    return error(status, headers=headers, **texts)


@pytest.mark.parametrize("where", ["title", "detail", "type_", "request_id"])
@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 429, 500, 503])
def test_a_key_quoted_anywhere_in_an_error_envelope_is_masked(
    status: int, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeUnkey(_quoting(status, where, {"Retry-After": "1"}))
    with make_client(fake, max_retries=0) as client, pytest.raises(UnkeyError) as raised:
        client.get_key("key_abc123")
    texts = exception_texts(raised.value)
    assert FOREIGN_KEY not in texts
    assert FOREIGN_KEY[:12] not in texts
    assert "the key ********** was not accepted" in texts
    assert FOREIGN_KEY not in log_text(caplog.records)


def test_the_issues_detail_quoting_a_key_is_masked_on_create() -> None:
    fake = FakeUnkey(error(400, detail=f"key {FOREIGN_KEY} already exists"))
    with make_client(fake) as client, pytest.raises(UnkeyError) as raised:
        client.create_key("api_123")
    assert str(raised.value) == (
        "keys.createKey failed with 400 Some Title: key ********** already exists "
        "(type=https://unkey.com/docs/errors/unkey/some_error, requestId=req_err)"
    )


def test_a_rate_limited_error_masks_its_text_and_keeps_retry_after() -> None:
    from unkey_secrets import UnkeyRateLimitedError

    reply = error(429, title=FOREIGN_KEY, detail=FOREIGN_KEY, headers={"Retry-After": "30"})
    fake = FakeUnkey(reply)
    with make_client(fake, max_retries=0) as client, pytest.raises(UnkeyRateLimitedError) as raised:
        client.get_key("key_abc123")
    assert (raised.value.title, raised.value.detail) == ("**********", "**********")
    assert raised.value.retry_after == 30


def test_control_and_bidi_characters_in_server_text_are_replaced() -> None:
    fake = FakeUnkey(error(400, detail="bad\nFAKE LOG LINE\u202e\x1b[31m"))
    with make_client(fake) as client, pytest.raises(UnkeyError) as raised:
        client.create_key("api_123")
    assert raised.value.detail == "bad\ufffdFAKE LOG LINE\ufffd\ufffd[31m"  # type: ignore[attr-defined]


def test_an_error_built_directly_from_server_text_is_masked_too() -> None:
    from unkey_secrets import UnkeyAPIError

    error_ = UnkeyAPIError(
        operation="keys.getKey",
        status=400,
        error_type=FOREIGN_KEY,
        title=FOREIGN_KEY,
        detail=f"detail {FOREIGN_KEY}",
        request_id=FOREIGN_KEY,
    )
    assert FOREIGN_KEY not in exception_texts(error_)
    assert error_.request_id == "**********"
