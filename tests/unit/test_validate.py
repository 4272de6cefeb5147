import pytest
from hypothesis import given
from hypothesis import strategies as st

from unkey_secrets import InvalidInputError
from unkey_secrets._validate import (
    PathTemplate,
    require_tls_unless_loopback,
    validate_alias,
    validate_api_id,
    validate_external_id,
    validate_key_id,
)


@pytest.mark.parametrize("good", ["key_123", "key_2cGKbMxRyIzhCxo1Idjz8q", "abc", "A" * 255])
def test_valid_key_ids_pass(good: str) -> None:
    assert validate_key_id(good) == good
    assert validate_api_id(good) == good


@pytest.mark.parametrize(
    "bad", ["", "ab", "A" * 256, "key-1", "../x", "key/1", "key 1", "key\n1", "ключ", None, 12]
)
def test_invalid_key_ids_fail_without_echo(bad: object) -> None:
    with pytest.raises(InvalidInputError) as raised:
        validate_key_id(bad)
    assert raised.value.field == "key_id"
    if isinstance(bad, str) and len(bad) > 3:
        assert bad not in str(raised.value)


def test_external_id_and_alias_rules() -> None:
    assert validate_external_id("tenant.42-x_y") == "tenant.42-x_y"
    assert validate_alias("billing-service.v2") == "billing-service.v2"
    for bad in ["", ".", "..", "-x", ".hidden", "a/b", "a b"]:
        with pytest.raises(InvalidInputError):
            validate_alias(bad)
    with pytest.raises(InvalidInputError):
        validate_external_id("a/b")


def test_default_template_renders_inside_its_prefix() -> None:
    template = PathTemplate("unkey/{api_id}/{key_id}")
    assert template.prefix == "unkey/"
    assert template.fields == {"api_id", "key_id"}
    assert template.render({"api_id": "api_1", "key_id": "key_1"}) == "unkey/api_1/key_1"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("", "non-empty"),
        ("/abs/{key_id}", "start or end"),
        ("unkey/{key_id}/", "start or end"),
        ("unkey//{key_id}", "empty"),
        ("unkey/../{key_id}", "'..'"),
        ("unkey/{secret}/{key_id}", "unknown field"),
        ("unkey/{key_id!r}", "no format spec"),
        ("unkey/{key_id:>10}", "no format spec"),
        ("unkey/{api_id}", "must contain"),
        ("unkey/{key_id", "not a valid template"),
        ("un key/{key_id}", "outside"),
        ("unkey/{0}/{key_id}", "unknown field"),
        ("unkey/{api_id}/by-name/{name}", "uses {name}: use {alias}"),
        ("unkey/{name}/{key_id}", "uses {name}: use {alias}"),
        ("unkey/{external_id}/{key_id}", "uses {external_id}"),
        ("unkey/{api_id}/{external_id}-{alias}", "uses {external_id}"),
    ],
)
def test_bad_templates_are_refused_when_made(template: str, problem: str) -> None:
    with pytest.raises(InvalidInputError, match="path_template") as raised:
        PathTemplate(template)
    assert problem in str(raised.value)


def test_render_refuses_missing_and_invalid_values() -> None:
    template = PathTemplate("t/{api_id}/{key_id}")
    with pytest.raises(InvalidInputError, match="api_id"):
        template.render({"key_id": "key_1"})
    with pytest.raises(InvalidInputError, match="key_id"):
        template.render({"api_id": "api_1", "key_id": ".."})


def test_render_enforces_the_length_limit() -> None:
    template = PathTemplate("p/{api_id}/{key_id}", max_length=20)
    with pytest.raises(InvalidInputError, match="over 20"):
        template.render({"api_id": "api_1", "key_id": "k" * 30})


@given(
    api_id=st.text(min_size=0, max_size=40),
    key_id=st.text(min_size=0, max_size=40),
)
def test_no_rendering_ever_leaves_the_prefix(api_id: str, key_id: str) -> None:
    template = PathTemplate("unkey/{api_id}/{key_id}")
    try:
        path = template.render({"api_id": api_id, "key_id": key_id})
    except InvalidInputError:
        return
    assert path.startswith("unkey/")
    assert path.count("/") == 2
    assert ".." not in path.split("/")


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://vault.example:8200", True),
        ("http://127.0.0.1:8200", True),
        ("http://127.9.9.9", True),
        ("http://[::1]:5000", True),
        ("http://localhost", True),
        ("http://10.0.0.1:8200", False),
        ("http://localhost.example.com", False),
        ("http://vault.example", False),
        ("ftp://127.0.0.1", False),
        ("https://", False),
    ],
)
def test_plain_http_is_for_loopback_only(url: str, accepted: bool) -> None:
    if accepted:
        assert require_tls_unless_loopback(url, "addr") == url
    else:
        with pytest.raises(ValueError, match="addr must be https"):
            require_tls_unless_loopback(url, "addr")
