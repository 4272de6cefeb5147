"""Fuzz every input we accept: each one works or raises our documented error, leaks nothing.

Inputs: key_id, api_id, names, path templates (validated before any I/O, so a store that fails
the test when touched proves nothing was written), Unkey answers (through httpx.MockTransport)
and stored values (parse_key_fields). The canary rides in the key's place every time.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unkey_secrets import (
    IssuedKey,
    Secret,
    StoredKey,
    StoredLocation,
    UnkeyClient,
    UnkeyError,
    UnkeySecretsError,
    capture,
)
from unkey_secrets._models import KeyEntry
from unkey_secrets._payload import parse_key_fields
from unkey_secrets.stores.base import SecretStore

from ._canary import new_canary

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CANARY = new_canary()
text = st.text(max_size=80) | st.sampled_from(["key_abc123", "api_abc123", "svc", "", "../x"])
idlike = st.from_regex(r"[A-Za-z0-9_]{0,300}", fullmatch=True)


def attempt(call: Callable[[], object], expected: type[BaseException]) -> object:
    """Run ``call``: return what it returned, or the ``expected`` error it raised."""
    try:
        return call()
    except expected as exc:
        return exc


def everything_about(exc: BaseException) -> str:
    rendered = traceback.TracebackException.from_exception(exc, capture_locals=False)
    return "\n".join([str(exc), repr(exc), repr(exc.args), repr(vars(exc)), *rendered.format()])


class Untouchable(SecretStore):
    """A store that fails the test if any write or read reaches it."""

    name = "untouchable"
    writes: list[str]

    def __init__(self, **templates: str) -> None:
        super().__init__(**templates)
        self.writes = []

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        self.writes.append(path)
        return StoredLocation(store=self.name, location=path, key_id=key.key_id, version="1")

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: object
    ) -> StoredLocation:
        self.writes.append(path)
        return StoredLocation(store=self.name, location=path, key_id=key.key_id, version="1")

    def _get(self, path: str) -> StoredKey:
        raise AssertionError("read")

    def _get_current(self, path: str) -> StoredKey:
        raise AssertionError("read")

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        raise AssertionError("read")


@FUZZ
@given(key_id=text | idlike, api_id=text | idlike, alias=st.none() | text)
def test_capture_inputs(key_id: str, api_id: str, alias: str | None) -> None:
    store = Untouchable()
    call = lambda: capture(store, api_id=api_id, key_id=key_id, key=CANARY, alias=alias)  # noqa: E731
    outcome = attempt(call, UnkeySecretsError)
    if isinstance(outcome, UnkeySecretsError):
        assert CANARY not in everything_about(outcome)
        assert store.writes == []  # invalid input writes nothing


@FUZZ
@given(key_template=text, alias_template=text)
def test_path_templates(key_template: str, alias_template: str) -> None:
    key = IssuedKey(key_id="key_abc123", secret=Secret(CANARY), api_id="api_abc123")

    def call() -> object:
        return Untouchable(key_template=key_template, alias_template=alias_template).put(key)

    outcome = attempt(call, UnkeySecretsError)
    assert CANARY not in (everything_about(outcome) if isinstance(outcome, Exception) else "")


scalar = st.none() | st.booleans() | st.integers() | st.text(max_size=20)


def nested(leaf: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=10,
    )


#: Any JSON value with the canary among its leaves; ``public`` never holds it (an id's place).
json_value = nested(scalar | st.just(CANARY))
public = nested(scalar)


def answers() -> st.SearchStrategy[bytes]:
    good = {"meta": {"requestId": "req_1"}, "data": {"keyId": "key_abc123", "key": CANARY}}
    data = st.fixed_dictionaries({"keyId": public, "key": st.just(CANARY)})
    shaped = st.fixed_dictionaries({"meta": json_value, "data": data})
    whole = json.dumps(good).encode()
    return (
        shaped.map(lambda d: json.dumps(d).encode())
        | json_value.map(lambda d: json.dumps(d).encode())
        | st.integers(0, len(whole)).map(lambda n: whole[:n])
        | st.binary(max_size=40).map(lambda b: whole + b)
    )


@FUZZ
@given(body=answers(), status=st.sampled_from([200, 201, 400, 401, 404, 429, 500, 502]))
def test_unkey_answers(body: bytes, status: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    with UnkeyClient(
        "unkey_root", base_url="http://127.0.0.1:9", transport=transport, max_retries=0
    ) as client:
        outcome = attempt(lambda: client.create_key("api_abc123"), UnkeyError)
    if isinstance(outcome, UnkeyError):
        assert CANARY not in everything_about(outcome)
    else:
        assert isinstance(outcome, IssuedKey)
        assert CANARY not in repr(outcome)
        assert outcome.secret.reveal() == CANARY


@FUZZ
@given(
    data=st.dictionaries(st.sampled_from(["format", "key_id", "api_id", "name", "x"]), public).map(
        lambda d: {**d, "key": CANARY}
    )
    | json_value
)
def test_stored_values(data: Any) -> None:
    call = lambda: parse_key_fields(data, store="fuzz", location="unkey/api_x/key_x")  # noqa: E731
    outcome = attempt(call, UnkeySecretsError)
    if isinstance(outcome, UnkeySecretsError):
        assert CANARY not in everything_about(outcome)
    else:
        assert CANARY not in repr(outcome)


@pytest.mark.parametrize("size", [1, 4096, 70_000])
def test_over_long_key_is_refused_or_stored_without_echo(size: int) -> None:
    store = Untouchable()
    key = (CANARY * (size // len(CANARY) + 1))[:size]
    call = lambda: capture(store, api_id="api_abc123", key_id="key_abc123", key=key)  # noqa: E731
    outcome = attempt(call, UnkeySecretsError)
    text = everything_about(outcome) if isinstance(outcome, Exception) else repr(outcome)
    assert CANARY[7:] not in text
