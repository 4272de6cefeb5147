import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from unkey_secrets import InvalidInputError, Secret
from unkey_secrets._redact import confined, hold
from unkey_secrets._validate import (
    PathTemplate,
    find_unsafe_char,
    needs_unkey_confirmation,
    require_tls_unless_loopback,
    untrusted_text,
    validate_alias,
    validate_api_id,
    validate_external_id,
    validate_key_id,
    validate_key_plaintext,
)

KEY = "prod_3ZkValidateCanary8uVq2Lr7Wm1Nx"


# Ids as Unkey makes them (today's 9 random characters, an older id's 22, the spec's examples)
# and as tests and callers write them (short, with more underscores).
REAL_KEY_IDS = [
    "key_3fG9aK1pQ",
    "key_2cGKbMxRyIzhCxo1Idjz8q",
    "key_1234567890abcdef",
    "key_abc123",
    "key_not_found",
    "abc",
    "key_" + "A" * 251,
]
REAL_API_IDS = ["api_3fG9aK1pQxYz", "api_2cGKbMxRjIzhCxo1IdjH3a", "api_123", "abc", "a_1"]


@pytest.mark.parametrize("good", REAL_KEY_IDS)
def test_valid_key_ids_pass(good: str) -> None:
    assert validate_key_id(good) == good


@pytest.mark.parametrize("good", REAL_API_IDS)
def test_valid_api_ids_pass(good: str) -> None:
    assert validate_api_id(good) == good


def test_the_emulators_ids_pass() -> None:
    from unkey_secrets.testing.emulator import Emulator

    emulator = Emulator()
    api_id = emulator.create_api("ids")
    assert validate_api_id(api_id) == api_id
    for _ in range(50):
        answer = emulator.handle(
            "/v2/keys.createKey",
            {"Authorization": f"Bearer {emulator.root_key}"},
            json.dumps({"apiId": api_id}).encode(),
        )
        assert answer is not None
        key_id = json.loads(answer[2])["data"]["keyId"]
        assert validate_key_id(key_id) == key_id
        assert not needs_unkey_confirmation(key_id)


@pytest.mark.parametrize(
    "bad", ["", "ab", "A" * 256, "key-1", "../x", "key/1", "key 1", "key\n1", "ключ", None, 12]
)
def test_invalid_key_ids_fail_without_echo(bad: object) -> None:
    with pytest.raises(InvalidInputError) as raised:
        validate_key_id(bad)
    assert raised.value.field == "key_id"
    if isinstance(bad, str) and len(bad) > 3:
        assert bad not in str(raised.value)


# Keys as Unkey makes them: base58 of 16 or more bytes, behind a prefix or not.
KEYS = [
    KEY,
    "3ZkValidateCanary8uVq2Lr7Wm1Nx",
    "sk_live_3ZkValidateCanary8uVq2Lr",
    "api_live_3ZkValidateCanary8uVq2",
    "A" * 255,
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    ("check", "field"), [(validate_key_id, "key_id"), (validate_api_id, "api_id")]
)
def test_a_key_passed_as_an_id_is_refused_without_echo(
    key: str, check: Callable[[object], str], field: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        check(key)
    assert raised.value.field == field
    assert "key's shape" in raised.value.problem
    assert key not in str(raised.value)
    assert key[-12:] not in repr(raised.value)


def test_the_field_is_the_callers() -> None:
    with pytest.raises(InvalidInputError) as raised:
        validate_key_id(KEY, "--key-id")
    assert raised.value.field == "--key-id"


def test_a_value_held_or_in_flight_is_refused_whatever_its_shape() -> None:
    # Id-shaped (no long run), so only the confinement registry can tell.
    in_flight = "tok_a1b2_c3d4_e5f6"
    assert validate_key_id(in_flight) == in_flight
    with confined(Secret(in_flight)):
        with pytest.raises(InvalidInputError) as raised:
            validate_key_id(in_flight)
        with pytest.raises(InvalidInputError):
            validate_api_id(in_flight)
    assert "holds as a key or a credential" in raised.value.problem
    assert in_flight not in str(raised.value)
    held = "cred_9z8y_7x6w_5v4u"
    hold(held)
    with pytest.raises(InvalidInputError, match="holds as a key or a credential"):
        validate_key_id(held)


@pytest.mark.parametrize(
    ("key_id", "needed"),
    [
        ("key_3fG9aK1pQ", False),
        ("key_abc123", False),
        ("key_not_found", False),
        ("key_2cGKbMxRyIzhCxo1Idjz8q", True),
        ("key_" + "3ZkValidateCanary8uVq2Lr7Wm1Nx", True),
    ],
)
def test_an_id_with_a_keys_random_run_needs_unkey_to_confirm_it(key_id: str, needed: bool) -> None:
    assert needs_unkey_confirmation(validate_key_id(key_id)) is needed


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
        template.render({"api_id": "api_1", "key_id": "key_" + "k" * 26})


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


# -- a key's plaintext: one rule wherever a key enters ----------------------------------------


@pytest.mark.parametrize(
    "good", [KEY, "3ZkValidate8uVq2", "p_" + "A" * 510, "unkey_2cGKbMxRyIzhCxo1Idjz8q"]
)
def test_key_shaped_plaintexts_pass(good: str) -> None:
    secret = Secret(good)
    assert validate_key_plaintext(secret, "key_abc123") is secret


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (KEY + "\x00", f"got {len(KEY) + 1} characters"),
        ("k" * 50_000, "got 50000 characters"),
        ("3ZkValidate8uVq", "got 15 characters"),
        ("", "got 0 characters"),
        (KEY + "\n", f"got {len(KEY) + 1} characters"),
        (KEY[:20] + " " + KEY[20:], f"got {len(KEY) + 1} characters"),
        (KEY + "\u200b", f"got {len(KEY) + 1} characters"),
        ('{"keyId":"key_abc123","key":"' + KEY + '"}', "characters"),
        ("prod_key_abc123_3ZkValidate8uVq2", "contains the key_id"),
    ],
)
def test_other_plaintexts_are_refused_by_length_only(bad: str, problem: str) -> None:
    with pytest.raises(InvalidInputError) as raised:
        validate_key_plaintext(Secret(bad), "key_abc123")
    assert raised.value.field == "key"
    assert problem in raised.value.problem
    assert "16-512 characters of [A-Za-z0-9_]" in str(raised.value) or "key_id" in problem
    if len(bad) >= 8:
        assert bad not in str(raised.value)
        assert bad[:8] not in str(raised.value)


def test_only_a_secret_is_checked() -> None:
    with pytest.raises(InvalidInputError) as raised:
        validate_key_plaintext(KEY, "key_abc123")  # type: ignore[arg-type]
    assert KEY not in str(raised.value)


# -- free text: control, bidi and zero-width characters ----------------------------------------


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("svc\x00", 3),
        ("svc\nforged log line", 3),
        ("svc\r", 3),
        ("\u202egnp.exe", 0),
        ("svc\u200bname", 3),
        ("svc\u2066x\u2069", 3),
        ("svc\ufeff", 3),
        ("svc\x7f", 3),
        ("svc\x85", 3),
        ("svc\u2028", 3),
        ("svc\u00ad", 3),
    ],
)
def test_unsafe_characters_are_found(text: str, index: int) -> None:
    assert find_unsafe_char(text) == index


@pytest.mark.parametrize("text", ["svc", "Zahlungsdienst für Kunden", "サービス", "a b-c.d", ""])
def test_ordinary_text_has_no_unsafe_character(text: str) -> None:
    assert find_unsafe_char(text) is None


# -- text a server sent ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        "3ZkValidate8uVq2L",  # no prefix
        "a_b_" + "Z" * 16,  # prefix chain
        "0123456789abcdef",  # hex, 16
    ],
)
def test_key_shaped_runs_are_masked(key: str) -> None:
    text = untrusted_text(f"key '{key}' is not valid; see docs")
    assert key not in text
    assert text == "key '**********' is not valid; see docs"


@pytest.mark.parametrize(
    "text",
    [
        "https://unkey.com/docs/errors/unkey/data/key_not_found",
        "The key key_2cGKbMx was not found.",
        "requestId req_2c9a0jf23l4k34",
        "Zahlungsdienst für Kunden",
    ],
)
def test_ordinary_server_text_is_kept(text: str) -> None:
    assert untrusted_text(text) == text


def test_hidden_values_and_their_json_forms_are_masked() -> None:
    root = 'unk"ey root'
    text = untrusted_text('got unk\\"ey root and unk"ey root', hide=(root,))
    assert text == "got ********** and **********"


def test_a_confined_value_is_masked_even_if_not_key_shaped() -> None:
    short = "s3cr3t-v@lue"
    with confined(Secret(short)):
        assert untrusted_text(f"you sent {short}") == "you sent **********"


def test_unsafe_characters_are_replaced_and_text_is_cut() -> None:
    assert untrusted_text("line\nforged\u202e\x00") == "line\ufffdforged\ufffd\ufffd"
    assert len(untrusted_text("too long " * 1000)) == 500
    assert untrusted_text("a b", limit=1) == "a"
    assert untrusted_text(42) == ""  # type: ignore[arg-type]


def test_a_key_cut_in_two_by_the_first_cut_is_masked_not_shown_in_part() -> None:
    # A long confined value shrinks to a mask, pulling the text after it under the limit: the
    # part of a key the first cut (limit + 8192) leaves must not show as a short, unmasked run.
    confined_value = "H" * 8_600
    text = confined_value + "." * 82 + KEY
    with confined(Secret(confined_value)):
        cut = untrusted_text(text)
    assert cut == "**********" + "." * 82 + "**********"
    assert KEY[:5] not in cut


def test_masking_is_linear_on_hostile_input() -> None:
    import time

    started = time.perf_counter()
    untrusted_text("a_" * 100_000)
    untrusted_text(("a" * 15 + "_") * 10_000)
    assert time.perf_counter() - started < 1.0
