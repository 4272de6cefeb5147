"""UnkeyKeySource names a field as pydantic-settings' own sources do (aliases, prefixes, nesting).

Each test builds a settings class whose UnkeyKey field is named one of the ways pydantic and
pydantic-settings allow, and checks both halves: a field no earlier source gave is read from the
store once and lands where pydantic validates it (never rejected as an extra input); a field an
earlier source gave under any of its names is not read at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import AliasChoices, AliasGenerator, AliasPath, BaseModel, Field, SecretStr
from pydantic.alias_generators import to_camel
from pydantic.dataclasses import dataclass as pydantic_dataclass
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from unkey_secrets import ConfigurationError, StoredKey
from unkey_secrets.config import (
    CachedKey,
    KeyInfo,
    KeyNotFoundError,
    KeyReader,
    UnkeyKey,
    UnkeyKeySource,
    UnkeySecretStr,
)
from unkey_secrets.testing import InMemoryStore
from unkey_secrets.testing.contract import canary_key

API = "api_names"
BILLING = UnkeyKey(api_id=API, alias="billing")
REPORTS = UnkeyKey(api_id=API, alias="reports")


@pytest.fixture
def store() -> InMemoryStore:
    store = InMemoryStore()
    for alias in ("billing", "reports"):
        key = canary_key(api_id=API, alias=alias)
        store.put(key)
        store.set_current(key, alias=alias)
    return store


@pytest.fixture
def reader(store: InMemoryStore) -> KeyReader:
    return KeyReader(store, max_age=60)


@pytest.fixture
def billing(reader: KeyReader) -> CachedKey:
    """The cached alias behind BILLING: ``.reads`` counts the source's reads of the store."""
    return reader.key(api_id=API, alias="billing")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The names these tests give in the environment, in every case the tests use.
    for name in (
        "BILLING_KEY",
        "billing",
        "billing_key",
        "Billing_Key",
        "BILLING",
        "BILLINGKEY",
        "KEYS",
    ):
        monkeypatch.delenv(name, raising=False)


def _ours_last(reader: KeyReader) -> Any:
    """A ``settings_customise_sources`` with the usual sources first and ours after them."""

    def customise(
        cls: type[BaseSettings], /, settings_cls: type[BaseSettings], **sources: Any
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            sources["init_settings"],
            sources["env_settings"],
            sources["dotenv_settings"],
            UnkeyKeySource(settings_cls, reader),
        )

    return classmethod(customise)


def _load(settings_cls: type[BaseSettings], **given: Any) -> Any:
    """``settings_cls(**given)``: the fields the sources fill are not the checker's business."""
    return settings_cls(**given)


def _read(cached: CachedKey) -> str:
    """The plaintext the store holds for the alias (a read of the cache, not of the store)."""
    return cached.get().secret.reveal()


def _assert_from_store(value: object, cached: CachedKey) -> None:
    """``value`` is the key ``cached`` read from the store, in one read."""
    assert isinstance(value, UnkeySecretStr)
    assert value.info is not None
    assert cached.reads == 1
    assert value.info.key_id == cached.get().key_id
    assert value.get_secret_value() == _read(cached)


def _assert_given(value: object, expected: str, billing: CachedKey) -> None:
    assert isinstance(value, SecretStr)
    assert value.get_secret_value() == expected
    assert billing.reads == 0


# -- validation_alias: AliasChoices ---------------------------------------------------------


def _choices_settings(
    reader: KeyReader, config: SettingsConfigDict | None = None
) -> type[BaseSettings]:
    class Settings(BaseSettings):
        model_config = config or SettingsConfigDict()
        billing_key: Annotated[SecretStr, BILLING] = Field(
            validation_alias=AliasChoices("BILLING_KEY", "billing")
        )
        settings_customise_sources = _ours_last(reader)

    return Settings


def test_alias_choices_field_is_read_and_filled_under_its_first_choice(
    reader: KeyReader, billing: CachedKey
) -> None:
    settings_cls = _choices_settings(reader)
    settings = _load(settings_cls)
    _assert_from_store(settings.billing_key, billing)
    source = UnkeyKeySource(settings_cls, reader)
    assert list(source()) == ["BILLING_KEY"]


@pytest.mark.parametrize("name", ["BILLING_KEY", "billing"])
def test_alias_choices_field_given_in_the_environment_under_any_choice_is_not_read(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "from-env")
    settings = _load(_choices_settings(reader))
    _assert_given(settings.billing_key, "from-env", billing)


@pytest.mark.parametrize("name", ["BILLING_KEY", "billing"])
def test_alias_choices_field_given_to_init_under_any_choice_is_not_read(
    reader: KeyReader, billing: CachedKey, name: str
) -> None:
    settings = _load(_choices_settings(reader), **{name: "from-init"})
    _assert_given(settings.billing_key, "from-init", billing)


def test_alias_choices_field_given_in_a_dotenv_file_is_not_read(
    reader: KeyReader, billing: CachedKey, tmp_path: Path
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("billing=from-dotenv\n")
    settings = _load(_choices_settings(reader, SettingsConfigDict(env_file=dotenv)))
    _assert_given(settings.billing_key, "from-dotenv", billing)


# -- validation_alias: AliasPath ------------------------------------------------------------


def _path_settings(reader: KeyReader, alias: AliasPath | AliasChoices) -> type[BaseSettings]:
    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, BILLING] = Field(validation_alias=alias)
        settings_customise_sources = _ours_last(reader)

    return Settings


def test_alias_path_field_is_filled_inside_its_path(reader: KeyReader, billing: CachedKey) -> None:
    settings_cls = _path_settings(reader, AliasPath("KEYS", "billing"))
    settings = _load(settings_cls)
    _assert_from_store(settings.billing_key, billing)
    assert set(UnkeyKeySource(settings_cls, reader)()["KEYS"]) == {"billing"}


def test_alias_path_field_given_in_the_environment_is_not_read(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYS", '{"billing": "from-env"}')
    settings = _load(_path_settings(reader, AliasPath("KEYS", "billing")))
    _assert_given(settings.billing_key, "from-env", billing)


def test_alias_path_whose_head_is_given_but_not_the_path_is_read(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another member under the same head: pydantic finds no value at the path, so it is ours.
    monkeypatch.setenv("KEYS", '{"reports": "from-env"}')
    settings = _load(_path_settings(reader, AliasPath("KEYS", "billing")))
    _assert_from_store(settings.billing_key, billing)


def test_alias_path_through_a_list_index_is_read_under_the_first_choice_and_given_by_it(
    store: InMemoryStore, reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_cls = _path_settings(reader, AliasChoices("BILLING_KEY", AliasPath("KEYS", 0)))
    _assert_from_store(_load(settings_cls).billing_key, billing)
    monkeypatch.setenv("KEYS", '["from-env"]')
    fresh = KeyReader(store, max_age=60)
    given = _load(_path_settings(fresh, AliasChoices("BILLING_KEY", AliasPath("KEYS", 0))))
    _assert_given(given.billing_key, "from-env", fresh.key(api_id=API, alias="billing"))


# -- alias, populate_by_name / validate_by_name, validate_by_alias --------------------------


def test_alias_field_given_under_its_name_alone_is_read_when_names_are_not_accepted(
    reader: KeyReader, billing: CachedKey
) -> None:
    # Without populate_by_name pydantic ignores "billing_key" (extra="ignore"): not a name of
    # the field, so the field is still ours to fill.
    class Settings(BaseSettings):
        model_config = SettingsConfigDict(extra="ignore")
        billing_key: Annotated[SecretStr, BILLING] = Field(alias="BILLING")
        settings_customise_sources = _ours_last(reader)

    settings = _load(Settings, billing_key="ignored")
    _assert_from_store(settings.billing_key, billing)
    given = _load(Settings, BILLING="from-init")
    assert given.billing_key.get_secret_value() == "from-init"
    assert billing.reads == 1


@pytest.mark.parametrize(
    "config",
    [SettingsConfigDict(populate_by_name=True), SettingsConfigDict(validate_by_name=True)],
    ids=["populate", "validate"],
)
def test_field_given_by_name_or_by_a_later_choice_is_not_read_when_names_are_accepted(
    reader: KeyReader,
    billing: CachedKey,
    monkeypatch: pytest.MonkeyPatch,
    config: SettingsConfigDict,
) -> None:
    settings_cls = _choices_settings(reader, config)
    by_name = _load(settings_cls, billing_key="by-name")
    _assert_given(by_name.billing_key, "by-name", billing)
    monkeypatch.setenv("billing", "by-choice")
    by_choice = _load(settings_cls)
    _assert_given(by_choice.billing_key, "by-choice", billing)
    monkeypatch.delenv("billing")
    _assert_from_store(_load(settings_cls).billing_key, billing)
    assert list(UnkeyKeySource(settings_cls, reader)()) == ["BILLING_KEY"]


def test_field_is_filled_under_its_name_when_aliases_are_not_validated(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    # extra="ignore": pydantic-settings before 2.16 passes "BILLING" on, which pydantic ignores.
    class Settings(BaseSettings):
        model_config = SettingsConfigDict(validate_by_alias=False, extra="ignore")
        billing_key: Annotated[SecretStr, BILLING] = Field(alias="BILLING")
        settings_customise_sources = _ours_last(reader)

    _assert_from_store(_load(Settings).billing_key, billing)
    assert list(UnkeyKeySource(Settings, reader)()) == ["billing_key"]
    monkeypatch.setenv("BILLING", "an alias pydantic ignores")
    assert _load(Settings).billing_key == billing.secret_str()
    assert billing.reads == 1


# -- alias generators -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("generator", "name", "value"),
    [
        (to_camel, "BILLINGKEY", "from-env"),
        (
            AliasGenerator(validation_alias=lambda name: AliasChoices(to_camel(name), "billing")),
            "billing",
            "from-env",
        ),
        (
            AliasGenerator(validation_alias=lambda name: AliasPath("KEYS", name)),
            "KEYS",
            '{"billing_key": "from-env"}',
        ),
    ],
    ids=["alias", "choices", "path"],
)
def test_alias_generator_names_are_the_fields_names(
    store: InMemoryStore,
    reader: KeyReader,
    billing: CachedKey,
    monkeypatch: pytest.MonkeyPatch,
    generator: Any,
    name: str,
    value: str,
) -> None:
    class Settings(BaseSettings):
        model_config = SettingsConfigDict(alias_generator=generator, extra="ignore")
        billing_key: Annotated[SecretStr, BILLING]
        settings_customise_sources = _ours_last(reader)

    # The generated names replace the field's own, which pydantic (and pydantic-settings'
    # init source, case-insensitive here) ignores.
    _assert_from_store(_load(Settings, billing_key="not a name").billing_key, billing)
    monkeypatch.setenv(name, value)
    fresh = KeyReader(store, max_age=60)

    class Given(Settings):
        settings_customise_sources = _ours_last(fresh)

    _assert_given(_load(Given).billing_key, "from-env", fresh.key(api_id=API, alias="billing"))


# -- case_sensitive -------------------------------------------------------------------------


def test_case_insensitive_environment_name_gives_the_field(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("Billing_Key", "from-env")
    settings = _load(_choices_settings(reader))
    _assert_given(settings.billing_key, "from-env", billing)


def test_case_sensitive_environment_name_of_another_case_leaves_the_field_to_the_store(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("Billing_Key", "not this field's name")
    settings = _load(_choices_settings(reader, SettingsConfigDict(case_sensitive=True)))
    _assert_from_store(settings.billing_key, billing)


# -- nested models, env_nested_delimiter, env_prefix ----------------------------------------


class Keys(BaseModel):
    billing: Annotated[SecretStr, BILLING]
    region: str = "eu"


@pydantic_dataclass
class KeysData:
    billing: Annotated[SecretStr, BILLING]
    region: str = "eu"


def _nested_settings(
    reader: KeyReader, model: type[Any] = Keys, env_prefix: str = ""
) -> type[BaseSettings]:
    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_nested_delimiter="__", env_prefix=env_prefix)
        keys: model  # type: ignore[valid-type]
        settings_customise_sources = _ours_last(reader)

    return Settings


@pytest.mark.parametrize("model", [Keys, KeysData], ids=["model", "dataclass"])
def test_nested_key_field_is_filled_inside_its_model(
    reader: KeyReader, billing: CachedKey, model: type[Any]
) -> None:
    settings = _load(_nested_settings(reader, model))
    _assert_from_store(settings.keys.billing, billing)
    assert settings.keys.region == "eu"


def test_nested_key_field_merges_with_what_the_environment_gives_the_model(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYS__REGION", "us")
    settings = _load(_nested_settings(reader))
    _assert_from_store(settings.keys.billing, billing)
    assert settings.keys.region == "us"


class Pair(BaseModel):
    billing: Annotated[SecretStr, BILLING]
    reports: Annotated[SecretStr, REPORTS]


@pytest.mark.parametrize("name", ["KEYS__BILLING", "keys__Billing"])
def test_nested_key_field_given_in_the_environment_is_not_read_and_its_sibling_is(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "from-env")
    settings = _load(_nested_settings(reader, Pair))
    _assert_given(settings.keys.billing, "from-env", billing)
    _assert_from_store(settings.keys.reports, reader.key(api_id=API, alias="reports"))


def test_nested_key_field_given_to_init_is_not_read(reader: KeyReader, billing: CachedKey) -> None:
    settings_cls = _nested_settings(reader, Pair)
    reports = reader.key(api_id=API, alias="reports")
    partly = _load(settings_cls, keys={"billing": "from-init"})
    _assert_given(partly.keys.billing, "from-init", billing)
    _assert_from_store(partly.keys.reports, reports)
    # A model given whole is pydantic's to validate: nothing inside it is read.
    whole = Pair(billing=SecretStr("from-init"), reports=SecretStr("also given"))
    assert _load(settings_cls, keys=whole).keys is whole
    assert (billing.reads, reports.reads) == (0, 1)


def test_env_prefix_names_a_nested_key_field_only_with_the_prefix(
    store: InMemoryStore, reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYS__BILLING", "without the prefix: not a name of the field")
    settings = _load(_nested_settings(reader, env_prefix="APP_"))
    _assert_from_store(settings.keys.billing, billing)
    monkeypatch.setenv("APP_KEYS__BILLING", "from-env")
    fresh = KeyReader(store, max_age=60)
    given = _load(_nested_settings(fresh, env_prefix="APP_"))
    _assert_given(given.keys.billing, "from-env", fresh.key(api_id=API, alias="billing"))


def test_nested_models_use_their_own_aliases_under_the_outer_fields_given_name(
    reader: KeyReader, billing: CachedKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Aliased(BaseModel):
        billing: Annotated[SecretStr, BILLING] = Field(
            validation_alias=AliasChoices("BILLING", "billing")
        )
        region: str = "eu"

    class Settings(BaseSettings):
        model_config = SettingsConfigDict(env_nested_delimiter="__")
        keys: Aliased = Field(validation_alias=AliasChoices("KEYS", "keys"))
        settings_customise_sources = _ours_last(reader)

    # The environment gives the model under its second name: ours must join it there, or
    # pydantic would take our dict under "KEYS" and lose the region.
    settings = _load(Settings, keys={"region": "us"})
    _assert_from_store(settings.keys.billing, billing)
    assert settings.keys.region == "us"
    assert UnkeyKeySource(Settings, reader)() == {"KEYS": {"BILLING": billing.secret_str()}}
    monkeypatch.setenv("KEYS__billing", "from-env")
    given = _load(Settings)
    assert given.keys.billing.get_secret_value() == "from-env"
    assert billing.reads == 1


def test_optional_nested_model_is_filled_too(reader: KeyReader, billing: CachedKey) -> None:
    class Settings(BaseSettings):
        keys: Keys | None = None
        settings_customise_sources = _ours_last(reader)

    settings = _load(Settings)
    assert settings.keys is not None
    _assert_from_store(settings.keys.billing, billing)


def test_nested_field_errors_name_the_dotted_field(reader: KeyReader) -> None:
    class Missing(BaseModel):
        key: Annotated[SecretStr, UnkeyKey(api_id=API, alias="nowhere")]

    class Settings(BaseSettings):
        keys: Missing
        settings_customise_sources = _ours_last(reader)

    with pytest.raises(KeyNotFoundError) as raised:
        _load(Settings)
    assert raised.value.field == "keys.key"

    class Plain(BaseModel):
        key: Annotated[str, BILLING]

    class Refused(BaseSettings):
        keys: Plain
        settings_customise_sources = _ours_last(reader)

    with pytest.raises(ConfigurationError, match=r"Refused\.keys\.key is marked UnkeyKey"):
        _load(Refused)


# -- declarations no source can fill --------------------------------------------------------


def _refused(settings_cls: type[BaseSettings], billing: CachedKey, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        _load(settings_cls)
    assert billing.reads == 0


def test_two_markers_on_one_field_are_refused(reader: KeyReader, billing: CachedKey) -> None:
    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, BILLING, REPORTS]
        settings_customise_sources = _ours_last(reader)

    _refused(Settings, billing, r"Settings\.billing_key carries 2 UnkeyKey markers")


def test_a_first_name_through_a_list_index_is_refused(
    reader: KeyReader, billing: CachedKey
) -> None:
    settings_cls = _path_settings(reader, AliasPath("KEYS", 0))
    _refused(settings_cls, billing, r"Settings\.billing_key would be filled at 'KEYS\.0'")


def test_two_fields_filled_under_one_name_are_refused(
    reader: KeyReader, billing: CachedKey
) -> None:
    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, BILLING] = Field(validation_alias="KEY")
        reports_key: Annotated[SecretStr, REPORTS] = Field(validation_alias="KEY")
        settings_customise_sources = _ours_last(reader)

    _refused(Settings, billing, r"Settings\.billing_key and Settings\.reports_key .* 'KEY'")


def test_a_field_filled_inside_another_fields_value_is_refused(
    reader: KeyReader, billing: CachedKey
) -> None:
    class Settings(BaseSettings):
        billing_key: Annotated[SecretStr, BILLING] = Field(validation_alias="KEYS")
        reports_key: Annotated[SecretStr, REPORTS] = Field(
            validation_alias=AliasPath("KEYS", "reports")
        )
        settings_customise_sources = _ours_last(reader)

    _refused(Settings, billing, r"Settings\.billing_key and Settings\.reports_key .* 'KEYS'")


@pytest.mark.parametrize("container", ["list", "dict", "union"])
def test_markers_inside_a_list_dict_or_union_of_models_are_refused(
    reader: KeyReader, billing: CachedKey, container: str
) -> None:
    class Other(BaseModel):
        region: str

    annotation: Any = {
        "list": list[Keys],
        "dict": dict[str, Keys],
        "union": Keys | Other,
    }[container]

    class Settings(BaseSettings):
        keys: annotation = None
        settings_customise_sources = _ours_last(reader)

    _refused(Settings, billing, r"Settings\.keys holds UnkeyKey fields inside a list")


def test_a_marker_in_a_list_items_type_is_refused(reader: KeyReader, billing: CachedKey) -> None:
    class Settings(BaseSettings):
        keys: list[Annotated[SecretStr, BILLING]] = []
        settings_customise_sources = _ours_last(reader)

    _refused(Settings, billing, r"Settings\.keys holds UnkeyKey fields")


def test_a_model_that_nests_itself_is_filled_at_its_first_level(
    reader: KeyReader, billing: CachedKey
) -> None:
    class Node(BaseModel):
        key: Annotated[SecretStr, BILLING]
        child: Node | None = None

    class Settings(BaseSettings):
        node: Node
        settings_customise_sources = _ours_last(reader)

    settings = _load(Settings)
    _assert_from_store(settings.node.key, billing)
    assert settings.node.child is None


def test_a_key_info_field_under_an_alias_is_filled(reader: KeyReader, billing: CachedKey) -> None:
    class Settings(BaseSettings):
        billing_info: Annotated[KeyInfo, BILLING] = Field(
            validation_alias=AliasChoices("BILLING_INFO", "info")
        )
        settings_customise_sources = _ours_last(reader)

    info = _load(Settings).billing_info
    assert isinstance(info, KeyInfo)
    assert info.key_id == billing.get().key_id
    assert billing.reads == 1


class _MovesAfterEachRead(InMemoryStore):
    """An alias that a rotation moves to a new key right after each read of it."""

    def _get_current(self, path: str) -> StoredKey:
        stored = super()._get_current(path)
        key = canary_key(api_id=API, alias="billing")
        self.put(key)
        self.set_current(key, alias="billing")
        return stored


def test_a_field_is_one_read_and_its_info_describes_the_key_it_holds() -> None:
    store = _MovesAfterEachRead()
    first = canary_key(api_id=API, alias="billing")
    store.put(first)
    store.set_current(first, alias="billing")
    reader = KeyReader(store, max_age=0)  # every question to the cache is a read

    class Settings(BaseSettings):
        billing_key: Annotated[UnkeySecretStr, BILLING] = Field(validation_alias="BILLING_KEY")
        settings_customise_sources = _ours_last(reader)

    value = _load(Settings).billing_key
    assert reader.key(api_id=API, alias="billing").reads == 1
    assert value.get_secret_value() == first.secret.reveal()
    assert value.info.key_id == first.key_id
