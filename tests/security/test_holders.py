"""What generic serialisers and introspection reach in a holder: never the plaintext.

``dataclasses.asdict``, ``vars``, a walk of ``__slots__`` and ``__dict__`` (what jsonpickle and
its like do), ``getattr`` over ``dir()`` and copies, over a :class:`Secret` and over a
:class:`StoredKey` read from a value with members this version does not know.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import pickle
from typing import Any

import pytest

from unkey_secrets import Secret, _secret
from unkey_secrets._payload import key_fields, parse_key_json
from unkey_secrets.testing.contract import canary_key

from ._canary import needles, new_canary

_LEAVES = (str, bytes, int, float, bool, type(None))


def reachable(root: object, *, depth: int = 8) -> list[str]:
    """Every text a generic serialiser could reach from ``root``, as ``repr`` of each leaf.

    Walks containers, ``__dict__``, every ``__slots__`` member of the class and its bases and
    every non-dunder attribute ``dir()`` names (properties included), never calling a method.
    """
    found: list[str] = []
    seen: set[int] = set()
    pending: list[tuple[object, int]] = [(root, 0)]
    while pending:
        value, level = pending.pop()
        if id(value) in seen or level > depth:
            continue
        seen.add(id(value))
        found.append(repr(value))
        if isinstance(value, _LEAVES):
            continue
        children: list[object] = []
        if isinstance(value, dict):
            children += [*value.keys(), *value.values()]
        elif isinstance(value, (list, tuple, set, frozenset)):
            children += list(value)
        if isinstance(value, type) or callable(value):
            continue
        children += list(getattr(value, "__dict__", {}).values())
        for cls in type(value).__mro__:
            slots = vars(cls).get("__slots__", ())
            for name in (slots,) if isinstance(slots, str) else slots:
                if name not in ("__weakref__", "__dict__"):
                    children.append(getattr(value, name, None))
        for name in dir(value):
            if name.startswith("__"):
                continue
            attribute = getattr(value, name, None)
            if not callable(attribute):
                children.append(attribute)
        pending.extend((child, level + 1) for child in children)
    return found


def leaks(canary: str, texts: list[str]) -> list[str]:
    """The texts holding ``canary`` raw or JSON-escaped (or either half of it)."""
    hunted = [*needles(canary), json.dumps(canary)[1:-1]]
    return [text for text in texts if any(needle in text for needle in hunted)]


def test_the_walker_finds_a_plaintext_held_in_a_slot() -> None:
    """The walk below is load-bearing: a holder keeping its value in a slot is caught."""

    class Slotted:
        __slots__ = ("_plaintext",)

        def __init__(self, value: str) -> None:
            self._plaintext = value

        def __repr__(self) -> str:
            return "Slotted('**********')"

    canary = new_canary()
    assert leaks(canary, reachable(Slotted(canary)))
    assert leaks(canary, reachable({"extra": {"previous_key": canary}}))


def test_a_secret_holds_its_plaintext_where_no_walk_reaches() -> None:
    canary = new_canary()
    secret = Secret(canary)
    assert not hasattr(secret, "__dict__")
    assert not leaks(canary, reachable(secret))
    assert not leaks(canary, reachable([secret, {"key": secret}, (secret,)]))
    assert not leaks(canary, [repr(gc.get_referents(secret))])
    assert secret.reveal() == canary


def test_a_secret_keeps_equality_hashing_copies_and_immutability() -> None:
    canary = new_canary()
    secret = Secret(canary)
    assert secret == Secret(canary)
    assert secret != Secret(canary + "x")
    assert hash(secret) == hash(Secret("something else entirely"))
    assert copy.copy(secret) is secret
    assert copy.deepcopy(secret) is secret
    with pytest.raises(AttributeError):
        Secret.__init__(secret, "another plaintext")
    assert secret.reveal() == canary
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


def test_a_collected_secret_leaves_nothing_behind() -> None:
    # Judged by these Secrets' own entries, not the table's size: other threads of the process
    # (servers, readers) make and drop Secrets meanwhile.
    values = [new_canary() for _ in range(50)]
    secrets = [Secret(value) for value in values]
    held = [entry[1] for entry in list(_secret._plaintexts.values())]
    assert set(values) <= set(held)
    del secrets
    gc.collect()
    assert not set(values) & {entry[1] for entry in list(_secret._plaintexts.values())}


def test_a_secret_never_given_a_value_reveals_nothing() -> None:
    bare = object.__new__(Secret)
    assert repr(bare) == "Secret('**********')"
    with pytest.raises(ValueError, match="never given a plaintext"):
        bare.reveal()


def _stored_with_unknown_members(canary: str) -> tuple[Any, str]:
    key = canary_key()
    data = {
        **key_fields(key),
        "previous_key": canary,
        f"x{canary}": "named after the key",
    }
    stored = parse_key_json(json.dumps(data), store="memory", location="unkey/api/key")
    return stored, key.secret.reveal()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(lambda s: [repr(dataclasses.asdict(s))], id="asdict"),
        pytest.param(lambda s: [repr(dataclasses.astuple(s))], id="astuple"),
        pytest.param(lambda s: [repr(vars(s))], id="vars"),
        pytest.param(lambda s: [repr(s), str(s)], id="repr"),
        pytest.param(lambda s: reachable(copy.copy(s)), id="copy"),
        pytest.param(lambda s: reachable(copy.deepcopy(s)), id="deepcopy"),
        pytest.param(lambda s: reachable(dataclasses.replace(s)), id="replace"),
        pytest.param(reachable, id="walk"),
    ],
)
def test_unknown_stored_members_never_surface_as_values(path: Any) -> None:
    canary = new_canary()
    stored, key_canary = _stored_with_unknown_members(canary)
    texts = path(stored)
    assert texts
    assert not leaks(canary, texts)
    assert not leaks(key_canary, texts)
    assert stored.extra == ("?", "previous_key")  # by name, and a name that is no name as "?"
    assert stored.secret.reveal() == key_canary


def test_a_rotation_record_keeps_no_unknown_member() -> None:
    # The stored JSON may carry members we never wrote (an operator's, a newer version's); a
    # record read from it has none of them, through asdict or vars.
    from unkey_secrets.rotation.record import ROTATION_FORMAT, parse_rotation_fields

    planted = "sk_" + "Q" * 24
    record = parse_rotation_fields(
        {
            "format": ROTATION_FORMAT,
            "revision": 1,
            "rotation": "r1",
            "api_id": "api_holders",
            "from_key_id": "key_holders1",
            "state": "released",
            "planted": planted,
        },
        store="memory",
        location="memory/r1",
    )
    assert planted not in repr(dataclasses.asdict(record))
    assert "extra" not in {f.name for f in dataclasses.fields(record)}
