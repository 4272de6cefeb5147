import copy
import json
import pickle

import pytest

from unkey_secrets import Secret

PLAINTEXT = "prod_3ZkQ8canaryCANARYcanary"


@pytest.fixture
def secret() -> Secret:
    return Secret(PLAINTEXT)


@pytest.mark.parametrize(
    "render",
    [repr, str, ascii, lambda s: f"{s}", lambda s: f"{s!r}", lambda s: f"{s:>40}", "{}".format],
)
def test_renderings_never_show_the_plaintext(secret: Secret, render) -> None:
    assert PLAINTEXT not in render(secret)
    assert "**********" in render(secret)


def test_reveal_is_the_only_way_in(secret: Secret) -> None:
    assert secret.reveal() == PLAINTEXT
    assert not hasattr(secret, "__dict__")
    assert PLAINTEXT not in repr(vars(type(secret)))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_is_refused(secret: Secret, protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret, protocol=protocol)


def test_pickling_a_container_is_refused(secret: Secret) -> None:
    with pytest.raises(TypeError):
        pickle.dumps({"nested": [secret]})


def test_json_encoding_fails_without_the_value(secret: Secret) -> None:
    with pytest.raises(TypeError) as raised:
        json.dumps({"key": secret})
    assert PLAINTEXT not in str(raised.value)


def test_copies_are_the_same_immutable_object(secret: Secret) -> None:
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"k": secret})["k"] is secret
    with pytest.raises(AttributeError):
        secret.value = "other"  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        del secret._plaintext


def test_equality_compares_plaintexts(secret: Secret) -> None:
    assert secret == Secret(PLAINTEXT)
    assert secret != Secret(PLAINTEXT + "x")
    assert secret != PLAINTEXT
    assert hash(secret) == hash(Secret("anything else"))


def test_wrapping_a_secret_keeps_its_value(secret: Secret) -> None:
    assert Secret(secret).reveal() == PLAINTEXT  # type: ignore[arg-type]


def test_only_strings_are_held() -> None:
    with pytest.raises(TypeError) as raised:
        Secret(b"bytes-key")  # type: ignore[arg-type]
    assert "bytes-key" not in str(raised.value)


def test_truthiness_follows_emptiness() -> None:
    assert Secret("x")
    assert not Secret("")


@pytest.mark.parametrize("hook", ["__getstate__", "__getnewargs__", "__getnewargs_ex__"])
def test_the_pickle_hooks_serialisers_call_directly_are_refused(secret: Secret, hook: str) -> None:
    # Python 3.11's object.__getstate__ would return (None, {'_plaintext': ...}).
    with pytest.raises(TypeError, match="cannot be pickled") as raised:
        getattr(secret, hook)()
    assert PLAINTEXT not in str(raised.value)


def test_the_issues_getstate_example_is_refused() -> None:
    with pytest.raises(TypeError):
        Secret("k").__getstate__()


def test_setstate_cannot_plant_a_plaintext(secret: Secret) -> None:
    with pytest.raises(TypeError):
        secret.__setstate__((None, {"_plaintext": "other"}))
    assert secret.reveal() == PLAINTEXT


@pytest.mark.parametrize("protocol", [0, 1])
def test_copyreg_reduce_for_old_protocols_is_refused(secret: Secret, protocol: int) -> None:
    import copyreg

    with pytest.raises(TypeError):
        copyreg._reduce_ex(secret, protocol)  # type: ignore[attr-defined]
