"""A createKey answer lost to the byte budget is settled by the flows like any lost answer.

The emulator acts on the create (the key exists), then its answer is replaced by a gzip bomb
or an endless body. The client must give the flow an ambiguous outcome, not run out of memory,
so the flow looks for the key it made and deletes it: no enabled key is left that nobody holds.
"""

from __future__ import annotations

import functools
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Literal

import httpx
import pytest

from tests.unit._answer_servers import gzip_bomb
from unkey_secrets import AmbiguousOutcomeError, UnkeyAmbiguousError, provision
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.emulator import Emulator, EmulatorTransport
from unkey_secrets.unkey import UnkeyClient

MIB = 1 << 20


@functools.lru_cache(maxsize=1)
def bomb() -> bytes:
    """1 MB of gzip that inflates to 1 GiB."""
    return gzip_bomb(1024)


class Endless(httpx.SyncByteStream):
    """A body that never ends: MiB after MiB of JSON-ish bytes.

    Past ``most`` bytes it raises MemoryError, as the allocator would sooner or later on any
    machine; a client that reads that far has already failed the test.
    """

    def __init__(self, most: int = 512 * MIB) -> None:
        self.most = most

    def __iter__(self) -> Iterator[bytes]:
        block = b" " * MIB
        for _ in range(self.most // MIB):
            yield block
        raise MemoryError


def gzip_bomb_answer(request: httpx.Request) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    return httpx.Response(200, stream=httpx.ByteStream(bomb()), headers=headers, request=request)


def endless_answer(request: httpx.Request) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    return httpx.Response(200, stream=Endless(), headers=headers, request=request)


class PoisonedCreate(httpx.BaseTransport):
    """The emulator acts on every call; the first createKey's answer is replaced by ``poison``."""

    def __init__(self, emulator: Emulator, poison: Callable[[httpx.Request], httpx.Response]):
        self.inner = EmulatorTransport(emulator)
        self.poison = poison
        self.poisoned = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.inner.handle_request(request)
        if request.url.path == "/v2/keys.createKey" and not self.poisoned:
            self.poisoned += 1
            return self.poison(request)
        return answer


@pytest.mark.parametrize("mode", ["safe", "fast"])
@pytest.mark.parametrize(
    "poison", [gzip_bomb_answer, endless_answer], ids=["gzip-bomb", "endless-body"]
)
def test_provision_settles_a_create_whose_answer_breaks_the_budget(
    mode: Literal["safe", "fast"], poison: Callable[[httpx.Request], httpx.Response]
) -> None:
    emulator = Emulator()
    api_id = emulator.create_api()
    transport = PoisonedCreate(emulator, poison)
    store = InMemoryStore()
    with UnkeyClient(
        emulator.root_key,
        base_url="http://127.0.0.1",
        transport=transport,
        sleep=lambda _: None,
    ) as unkey:
        tracemalloc.start()
        try:
            with pytest.raises(AmbiguousOutcomeError) as raised:
                provision(unkey, store, api_id, mode=mode)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert transport.poisoned == 1
    cause = raised.value.__cause__
    assert isinstance(cause, UnkeyAmbiguousError)
    assert "byte budget" in str(cause)
    # The flow found the key its lost create made, and deleted it.
    (made,) = emulator.keys(api_id)
    assert raised.value.key_id == made.key_id
    assert made.deleted
    assert [k for k in emulator.keys(api_id) if k.enabled and not k.deleted] == []
    assert store.calls == []
    # The default 16 MiB budget and one inflated piece, not the answer's 1 GiB or 512 MiB.
    assert peak < 32 * MIB
