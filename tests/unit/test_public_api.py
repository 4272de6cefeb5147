import unkey_secrets

EXPECTED = {
    "AmbiguousOutcomeError",
    "CompensatedError",
    "CompensationFailedError",
    "ConfigurationError",
    "FlowError",
    "InvalidInputError",
    "IssuedKey",
    "NotOwnedError",
    "ProvisionResult",
    "RetryPolicy",
    "RotationResult",
    "RotationStepError",
    "Secret",
    "SecretNotFoundError",
    "SecretStore",
    "StoreAccessError",
    "StoreConflictError",
    "StoreError",
    "StoreNotFoundError",
    "StoreUnavailableError",
    "StoredKey",
    "StoredLocation",
    "StoredValueError",
    "UnkeyAPIError",
    "UnkeyAmbiguousError",
    "UnkeyAuthError",
    "UnkeyClient",
    "UnkeyError",
    "UnkeyNotFoundError",
    "UnkeyRateLimitedError",
    "UnkeyResponseError",
    "UnkeySecretsError",
    "UnkeyServerError",
    "UnkeyTransportError",
    "__version__",
    "available_stores",
    "capture",
    "load_store",
    "provision",
    "rotate",
}


def test_all_is_pinned() -> None:
    assert set(unkey_secrets.__all__) == EXPECTED
    for name in unkey_secrets.__all__:
        assert hasattr(unkey_secrets, name), name


def test_every_public_thing_has_a_docstring() -> None:
    for name in unkey_secrets.__all__:
        if name == "__version__":
            continue
        assert getattr(unkey_secrets, name).__doc__, name


def test_every_error_derives_from_the_root() -> None:
    for name in unkey_secrets.__all__:
        obj = getattr(unkey_secrets, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, unkey_secrets.UnkeySecretsError), name


def test_importing_the_package_pulls_in_no_store_sdk() -> None:
    import subprocess
    import sys

    code = (
        "import sys, unkey_secrets; "
        "print(sorted(m for m in ('hvac', 'boto3', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
