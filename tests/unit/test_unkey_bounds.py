"""Every Unkey call is bounded: a deadline per attempt, a byte budget per answer.

Over real loopback sockets: a server trickling its status line or its body, an endless chunked
body, a gzip bomb, a 100 MB body. A breach is a lost answer: retried for an idempotent call
(each attempt within its deadline), ambiguous for one that makes a key.
"""

from __future__ import annotations

import functools
import gzip
import json
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.unit._answer_servers import (
    AnswerServer,
    Connection,
    body_trickle,
    endless_chunked,
    fixed,
    gzip_bomb,
    status_trickle,
)
from tests.unit._unkey_fake import (
    PLAINTEXT,
    ROOT_KEY,
    FakeUnkey,
    exception_texts,
    issued,
    make_client,
    ok,
)
from unkey_secrets import UnkeyAmbiguousError, UnkeyResponseError, UnkeyTransportError
from unkey_secrets.unkey import UnkeyClient

#: What an attempt may take past its deadline: scheduling, the close, a loaded CI machine.
SLACK = 0.75
MIB = 1 << 20
KEY = {"keyId": "key_abc123", "start": "pk_x", "createdAt": 1, "enabled": True}


@functools.lru_cache(maxsize=1)
def bomb() -> bytes:
    """1 MB of gzip that inflates to 1 GiB."""
    return gzip_bomb(1024)


def client_for(server: AnswerServer, **options: Any) -> UnkeyClient:
    sleeps: list[float] = []
    return UnkeyClient(ROOT_KEY, base_url=server.url, sleep=sleeps.append, **options)


def timed(call: Callable[[], object]) -> tuple[BaseException, float]:
    """Run ``call``, which must raise; return the error and the seconds it took."""
    started = time.monotonic()
    try:
        call()
    except Exception as exc:  # noqa: BLE001 (the test inspects whatever came out)
        return exc, time.monotonic() - started
    raise AssertionError("the call returned")


# -- the deadline, at the sockets -----------------------------------------------------------------


def test_a_status_line_trickled_forever_ends_at_the_deadline() -> None:
    # One byte every 50 ms never trips a 1 s read timeout; only a deadline ends it.
    with AnswerServer(status_trickle(0.05, for_seconds=8)) as server:
        client = client_for(server, timeout=1, max_retries=0)
        error, took = timed(lambda: client.verify_key("some_key_to_verify"))
    assert type(error) is UnkeyTransportError
    assert "1 s deadline" in str(error)
    assert took < 1 + SLACK


def test_a_body_trickled_forever_ends_at_the_deadline() -> None:
    with AnswerServer(body_trickle(0.05, for_seconds=8)) as server:
        client = client_for(server, timeout=1, max_retries=0)
        error, took = timed(lambda: client.get_key("key_abc123"))
    assert type(error) is UnkeyTransportError
    assert "1 s deadline" in str(error)
    assert took < 1 + SLACK


def test_a_create_whose_answer_trickles_is_ambiguous_at_the_deadline_and_sent_once() -> None:
    with AnswerServer(body_trickle(0.05, for_seconds=8)) as server:
        client = client_for(server, timeout=1, max_retries=3)
        error, took = timed(lambda: client.create_key("api_123"))
        assert len(server.connections) == 1
    assert type(error) is UnkeyAmbiguousError
    assert "deadline" in str(error)
    assert took < 1 + SLACK


@pytest.mark.parametrize("answer", [status_trickle, body_trickle], ids=["status", "body"])
def test_retries_are_bounded_by_attempts_times_the_deadline(
    answer: Callable[[float, float], Callable[..., None]],
) -> None:
    deadline, attempts = 0.5, 3
    with AnswerServer(answer(0.05, 8)) as server:
        client = client_for(server, timeout=deadline, max_retries=attempts - 1)
        error, took = timed(lambda: client.get_key("key_abc123"))
        server.close()
        connections = list(server.connections)
    assert type(error) is UnkeyTransportError
    assert f"after {attempts} attempts" in str(error)
    assert len(connections) == attempts
    # Backoff waits are recorded, not slept, so the whole call is its attempts.
    assert took < attempts * deadline + SLACK
    for connection in connections:
        assert connection.closed is not None
        assert connection.closed - connection.opened < deadline + SLACK


def test_the_deadline_holds_for_a_callers_client_between_chunks() -> None:
    # A caller's client checks its own per-read timeouts only; the body is read by us.
    def trickle() -> Iterator[bytes]:
        for _ in range(80):
            pause.wait(0.05)  # never set: the pace of the trickle
            yield b" "

    pause = threading.Event()
    transport = httpx.MockTransport(
        lambda request: httpx.Response(200, content=trickle(), request=request)
    )
    with httpx.Client(transport=transport) as http:
        client = UnkeyClient(
            ROOT_KEY, base_url="https://unkey.test", http_client=http, timeout=1, max_retries=0
        )
        error, took = timed(lambda: client.get_key("key_abc123"))
    assert type(error) is UnkeyTransportError
    assert "deadline" in str(error)
    assert took < 1 + SLACK


# -- the byte budget ------------------------------------------------------------------------------


def test_an_endless_chunked_answer_stops_at_the_byte_budget() -> None:
    with AnswerServer(endless_chunked(most=512 * MIB)) as server:
        client = client_for(server, max_retries=0, max_answer_bytes=MIB)
        error, _ = timed(lambda: client.get_key("key_abc123"))
        server.close()
        (connection,) = server.connections
    assert type(error) is UnkeyTransportError
    assert "1048576 byte budget" in str(error)
    # What the kernel's buffers took before we hung up, not the 512 MiB it had to send.
    assert connection.sent < 64 * MIB


def test_the_default_budget_is_16_mib() -> None:
    with AnswerServer(endless_chunked(most=512 * MIB)) as server:
        client = client_for(server, max_retries=0)
        error, _ = timed(lambda: client.get_key("key_abc123"))
    assert "16777216 byte budget" in str(error)


def test_a_gzip_bomb_is_stopped_after_decompression_within_the_budget() -> None:
    headers = {"Content-Encoding": "gzip"}
    with AnswerServer(fixed(200, bomb(), headers)) as server:
        client = client_for(server, max_retries=0)
        tracemalloc.start()
        try:
            error, _ = timed(lambda: client.get_key("key_abc123"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert type(error) is UnkeyTransportError
    assert "16777216 byte budget" in str(error)
    # The budget, plus one inflated piece and the read buffers: not the bomb's 1 GiB.
    assert peak < 32 * MIB


def test_a_declared_100_mb_answer_is_refused_before_it_is_read() -> None:
    def declared(server: AnswerServer, sock: Any, connection: Connection) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        server.send(sock, connection, head + b"Content-Length: 100000000\r\n\r\n")
        block = b"7" * 65536
        while connection.sent < 100_000_000 and not server.stopping.is_set():
            server.send(sock, connection, block)

    with AnswerServer(declared) as server:
        client = client_for(server, max_retries=0)
        tracemalloc.start()
        try:
            error, _ = timed(lambda: client.get_key("key_abc123"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        server.close()
        (connection,) = server.connections
    assert type(error) is UnkeyTransportError
    assert "byte budget" in str(error)
    assert peak < 8 * MIB
    assert connection.sent < 64 * MIB


def test_a_create_whose_answer_breaks_the_budget_is_ambiguous_and_sent_once() -> None:
    with AnswerServer(fixed(200, bomb(), {"Content-Encoding": "gzip"})) as server:
        client = client_for(server, max_retries=3)
        error, _ = timed(lambda: client.create_key("api_123"))
        assert len(server.connections) == 1
    assert type(error) is UnkeyAmbiguousError
    assert "byte budget" in str(error)


def test_an_idempotent_call_retries_a_budget_breach_then_gives_up() -> None:
    with AnswerServer(endless_chunked(most=512 * MIB)) as server:
        client = client_for(server, max_retries=2, max_answer_bytes=MIB)
        error, _ = timed(lambda: client.get_key("key_abc123"))
        assert len(server.connections) == 3
    assert type(error) is UnkeyTransportError
    assert "after 3 attempts" in str(error)


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def test_an_answer_within_the_budget_is_read_and_decoded() -> None:
    body = json.dumps({"meta": {"requestId": "req_1"}, "data": KEY}).encode()
    for headers, content in [
        ({}, body),
        ({"Content-Encoding": "gzip"}, gzip.compress(body)),
        ({"Content-Encoding": "deflate"}, zlib.compress(body)),
        # Raw deflate, without zlib's wrapper, as some servers send "deflate".
        ({"Content-Encoding": "deflate"}, raw_deflate(body)),
    ]:
        with AnswerServer(fixed(200, content, headers)) as server:
            info = client_for(server, max_answer_bytes=len(body)).get_key("key_abc123")
        assert info.key_id == "key_abc123"


def test_a_corrupt_compressed_answer_is_a_lost_answer() -> None:
    whole = gzip.compress(json.dumps({"meta": {}, "data": KEY}).encode())
    corrupt = whole[:10] + b"\xff" * 20  # the header, then a block of a type that does not exist
    cut = whole[:-12]  # the stream ends before its last block and trailer
    for content in (corrupt, cut):
        # As the bytes came off the wire: httpx.Response(content=...) would decode them itself.
        raw = httpx.ByteStream(content)
        fake = FakeUnkey(httpx.Response(200, stream=raw, headers={"Content-Encoding": "gzip"}))
        with make_client(fake, max_retries=0) as client:
            error, _ = timed(lambda: client.get_key("key_abc123"))
        assert type(error) is UnkeyTransportError
        assert "DecodingError" in str(error)


def test_the_request_asks_only_for_encodings_the_client_decodes() -> None:
    fake = FakeUnkey(ok(KEY))
    with make_client(fake) as client:
        client.get_key("key_abc123")
    assert fake.requests[0].headers["accept-encoding"] == "gzip, deflate"


# -- memory and recursion while reading an answer -------------------------------------------------


def _out_of_memory_midway(request: httpx.Request) -> httpx.Response:
    def body() -> Iterator[bytes]:
        yield b'{"data":'
        raise MemoryError

    return httpx.Response(200, content=body(), request=request)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda c: c.get_key("key_abc123"), UnkeyTransportError),
        (lambda c: c.create_key("api_123"), UnkeyAmbiguousError),
    ],
    ids=["get_key", "create_key"],
)
def test_memory_running_out_while_reading_is_a_lost_answer(
    call: Callable[[UnkeyClient], object], expected: type[Exception]
) -> None:
    fake = FakeUnkey(_out_of_memory_midway, _out_of_memory_midway)
    with make_client(fake, max_retries=1) as client:
        error, _ = timed(lambda: call(client))
    assert type(error) is expected
    assert "out of memory" in str(error)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert len(fake.requests) == 1, "not retried: memory is what ran out"


def test_memory_running_out_while_parsing_is_a_lost_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from unkey_secrets.unkey import wire

    def no_memory(content: bytes) -> object:
        raise MemoryError

    monkeypatch.setattr(wire, "_parse_json", no_memory)
    fake = FakeUnkey(issued())
    with make_client(fake) as client:
        error, _ = timed(lambda: client.create_key("api_123"))
    assert type(error) is UnkeyAmbiguousError
    assert error.__context__ is None


def test_a_deeply_nested_answer_is_unreadable_not_a_recursion_error() -> None:
    nested = b"[" * 200_000 + b"]" * 200_000
    fake = FakeUnkey(httpx.Response(200, content=nested), httpx.Response(200, content=nested))
    with make_client(fake) as client:
        read, _ = timed(lambda: client.get_key("key_abc123"))
        made, _ = timed(lambda: client.create_key("api_123"))
    assert type(read) is UnkeyResponseError
    assert type(made) is UnkeyAmbiguousError


# -- the timeout option ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timeout",
    [float("inf"), httpx.Timeout(None), httpx.Timeout(5, read=float("inf")), httpx.Timeout(0.0)],
    ids=["inf", "no-timeouts", "an-inf-read", "zero"],
)
def test_a_timeout_that_leaves_a_call_unbounded_is_refused(timeout: object) -> None:
    from unkey_secrets import InvalidInputError

    with pytest.raises(InvalidInputError) as raised:
        UnkeyClient(ROOT_KEY, timeout=timeout)  # type: ignore[arg-type]
    assert raised.value.field == "timeout"


def test_an_httpx_timeout_sets_the_deadline_to_its_longest_value() -> None:
    fake = FakeUnkey(ok(KEY))
    timeout = httpx.Timeout(2.0, connect=0.5, read=3.0)
    with make_client(fake, timeout=timeout) as client:
        client.get_key("key_abc123")
        assert client._wire.deadline_seconds == 3.0
    assert fake.requests[0].extensions["timeout"] == timeout.as_dict()


def test_exception_texts_of_a_breach_hold_no_credential() -> None:
    with AnswerServer(body_trickle(0.05, for_seconds=8)) as server:
        client = client_for(server, timeout=0.5, max_retries=0)
        error, _ = timed(lambda: client.verify_key(PLAINTEXT))
    texts = exception_texts(error)
    assert ROOT_KEY not in texts
    assert PLAINTEXT not in texts
