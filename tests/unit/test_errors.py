"""The exception tree behaves like Python objects: every error pickles, copies, crosses a Pool."""

from __future__ import annotations

import copy
import multiprocessing
import pickle
from collections.abc import Callable

import pytest

import unkey_secrets
from unkey_secrets import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
    ConfigurationError,
    DeletedVersionError,
    FlowError,
    InvalidInputError,
    NotOwnedError,
    RotationConflictError,
    RotationStepError,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoredValueError,
    StoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    UnkeyAmbiguousError,
    UnkeyAPIError,
    UnkeyAuthError,
    UnkeyError,
    UnkeyNotFoundError,
    UnkeyRateLimitedError,
    UnkeyResponseError,
    UnkeySecretsError,
    UnkeyServerError,
    UnkeyTransportError,
)

PLAINTEXT = "prod_3ZkErrorsCanary8uVq2Lr7Wm1Nx"


def _api(cls: type[UnkeyAPIError]) -> Callable[[], UnkeySecretsError]:
    return lambda: cls(
        operation="keys.getKey",
        status=404,
        error_type="https://unkey.com/docs/errors/unkey/data/key_not_found",
        title="Not Found",
        detail="the key does not exist",
        request_id="req_2c9a0jf23l4k34",
    )


def _flow(cls: type[FlowError]) -> Callable[[], UnkeySecretsError]:
    return lambda: cls(
        "storing key key_abc failed (StoreUnavailableError); deleted key key_abc in Unkey",
        key_id="key_abc",
        original_key_id="key_old",
        actions=("deleted key key_abc in Unkey",),
    )


def _store(cls: type[StoreError]) -> Callable[[], UnkeySecretsError]:
    return lambda: cls(
        "nothing is stored at unkey/api_1/key_abc", store="vault", location="unkey/api_1/key_abc"
    )


def _unkey(cls: type[UnkeyError]) -> Callable[[], UnkeySecretsError]:
    return lambda: cls("keys.createKey could not reach Unkey", operation="keys.createKey")


#: One realistic instance of every error class the package exports.
EXAMPLES: dict[type[UnkeySecretsError], Callable[[], UnkeySecretsError]] = {
    UnkeySecretsError: lambda: UnkeySecretsError("something failed"),
    InvalidInputError: lambda: InvalidInputError("key_id", "expected 3-255 characters"),
    ConfigurationError: lambda: ConfigurationError("UNKEY_ROOT_KEY is not set"),
    StoreNotFoundError: lambda: StoreNotFoundError("vualt", ["aws", "vault"]),
    UnkeyError: _unkey(UnkeyError),
    UnkeyAPIError: _api(UnkeyAPIError),
    UnkeyAuthError: _api(UnkeyAuthError),
    UnkeyNotFoundError: _api(UnkeyNotFoundError),
    UnkeyRateLimitedError: lambda: UnkeyRateLimitedError(
        operation="keys.verifyKey",
        status=429,
        error_type="https://unkey.com/docs/errors/user/too_many_requests",
        title="Too Many Requests",
        detail="slow down",
        request_id="req_429",
        retry_after=1.5,
    ),
    UnkeyServerError: _api(UnkeyServerError),
    UnkeyTransportError: _unkey(UnkeyTransportError),
    UnkeyAmbiguousError: _unkey(UnkeyAmbiguousError),
    UnkeyResponseError: lambda: UnkeyResponseError(
        "keys.createKey answered key key_abc with a plaintext that is not an Unkey key",
        operation="keys.createKey",
        key_id="key_abc",
    ),
    StoreError: _store(StoreError),
    StoreConflictError: _store(StoreConflictError),
    NotOwnedError: _store(NotOwnedError),
    SecretNotFoundError: _store(SecretNotFoundError),
    DeletedVersionError: lambda: DeletedVersionError(
        "the current version 3 of secret/unkey/api_1/by-name/svc was deleted",
        store="vault",
        location="secret/unkey/api_1/by-name/svc",
        version=3,
        deleted_at="2026-12-07T04:05:56Z",
        key_id="key_abc",
    ),
    StoreAccessError: _store(StoreAccessError),
    StoreUnavailableError: _store(StoreUnavailableError),
    StoredValueError: _store(StoredValueError),
    FlowError: _flow(FlowError),
    CompensatedError: _flow(CompensatedError),
    AmbiguousOutcomeError: _flow(AmbiguousOutcomeError),
    CompensationFailedError: _flow(CompensationFailedError),
    RotationConflictError: _flow(RotationConflictError),
    RotationStepError: lambda: RotationStepError(
        "setSecret failed", step="setSecret", secret="arn:aws:secretsmanager:eu-west-1:1:secret:x"
    ),
}

EXPORTED = sorted(
    (
        value
        for name in unkey_secrets.__all__
        if isinstance(value := getattr(unkey_secrets, name), type)
        and issubclass(value, UnkeySecretsError)
    ),
    key=lambda cls: cls.__name__,
)


def test_every_exported_error_has_an_example() -> None:
    assert set(EXPORTED) == set(EXAMPLES)


def _round_trip(error: BaseException, protocol: int = pickle.DEFAULT_PROTOCOL) -> BaseException:
    restored: BaseException = pickle.loads(pickle.dumps(error, protocol=protocol))  # noqa: S301 (our own bytes)
    return restored


def _same(restored: BaseException, original: BaseException) -> None:
    assert type(restored) is type(original)
    assert str(restored) == str(original)
    assert restored.args == original.args
    assert vars(restored) == vars(original)


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_error_round_trips_through_pickle(
    cls: type[UnkeySecretsError], protocol: int
) -> None:
    error = EXAMPLES[cls]()
    error.add_note("while provisioning tenant_42")
    restored = _round_trip(error, protocol)
    _same(restored, error)
    assert restored.__notes__ == ["while provisioning tenant_42"]


@pytest.mark.parametrize("cls", EXPORTED, ids=lambda cls: cls.__name__)
def test_every_error_copies(cls: type[UnkeySecretsError]) -> None:
    error = EXAMPLES[cls]()
    _same(copy.copy(error), error)
    _same(copy.deepcopy(error), error)


def test_the_issues_example_round_trips() -> None:
    restored = _round_trip(FlowError("m", key_id="key_abc"))
    assert isinstance(restored, FlowError)
    assert (str(restored), restored.key_id, restored.original_key_id, restored.actions) == (
        "m",
        "key_abc",
        None,
        (),
    )


def test_an_invalid_input_error_keeps_field_and_problem_and_stays_a_value_error() -> None:
    restored = _round_trip(InvalidInputError("name", "too long"))
    assert isinstance(restored, ValueError)
    assert (restored.field, restored.problem, str(restored)) == (
        "name",
        "too long",
        "invalid name: too long",
    )


def test_unpickling_does_not_rerun_init_and_keeps_the_masked_text() -> None:
    error = UnkeyAPIError(
        operation="keys.createKey",
        status=400,
        error_type="https://unkey.com/docs/errors/unkey/application/invalid_input",
        title="Bad Request",
        detail=f"key {PLAINTEXT} is invalid",
        request_id="req_1",
    )
    data = pickle.dumps(error)
    assert PLAINTEXT.encode() not in data
    restored = pickle.loads(data)  # noqa: S301 (our own bytes)
    assert PLAINTEXT not in str(restored)
    assert restored.detail == error.detail == "key ********** is invalid"


def _raise_flow_error() -> None:
    raise FlowError(
        "storing key key_abc failed", key_id="key_abc", actions=("deleted key key_abc in Unkey",)
    )


def test_a_pool_worker_raising_a_flow_error_does_not_hang() -> None:
    # Before errors pickled, the Pool's result thread failed to rebuild the error and .get()
    # waited forever; the timeout turns such a hang into a failure.
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        result = pool.apply_async(_raise_flow_error)
        with pytest.raises(FlowError) as raised:
            result.get(timeout=60)
    assert raised.value.key_id == "key_abc"
    assert raised.value.actions == ("deleted key key_abc in Unkey",)
    assert str(raised.value) == "storing key key_abc failed"
