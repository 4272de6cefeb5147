"""Failover's pieces without a server: a 429 is a throttle, KeyInfo.region, the errors' words."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from unkey_secrets import SecretNotFoundError, StoreError, StoreUnavailableError
from unkey_secrets._models import StoredKey
from unkey_secrets._secret import Secret
from unkey_secrets.config import KeyInfo
from unkey_secrets.config._model import arn_region
from unkey_secrets.stores.aws.errors import translate
from unkey_secrets.stores.aws.failover import _Attempts


def test_an_http_429_is_a_throttle_whatever_its_code() -> None:
    error = ClientError(
        {"Error": {"Code": "SlowDown"}, "ResponseMetadata": {"HTTPStatusCode": 429}},
        "GetSecretValue",
    )
    translated = translate(error, operation="GetSecretValue", location="unkey/x")
    assert type(translated) is StoreUnavailableError


@pytest.mark.parametrize(
    ("location", "region"),
    [
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:unkey/a/b-AbC123", "eu-west-1"),
        (
            "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:x-AbC123",
            "us-gov-west-1",
        ),
        ("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-AbC123", "cn-north-1"),
        ("unkey/api_1/by-name/billing", None),
        ("secret/data/unkey/api_1/key_1", None),
        ("arn:aws:kms:eu-west-1:123456789012:key/abc", None),
    ],
)
def test_arn_region(location: str, region: str | None) -> None:
    assert arn_region(location) == region


def _stored(location: str) -> StoredKey:
    return StoredKey(key_id="key_1", secret=Secret("x" * 20), api_id="api_1", location=location)


def test_key_info_names_the_region_for_aws_only() -> None:
    arn = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:unkey/api_1/key_1-AbC123"
    assert KeyInfo.from_stored(_stored(arn), store="aws", fetched_at=0.0).region == "eu-central-1"
    assert KeyInfo.from_stored(_stored(arn), store="vault", fetched_at=0.0).region is None
    plain = KeyInfo.from_stored(_stored("unkey/api_1/key_1"), store="aws", fetched_at=0.0)
    assert plain.region is None


def test_the_error_after_every_region() -> None:
    gone = _Attempts()
    gone.failures += [
        ("us-east-1", SecretNotFoundError("no secret at p", store="aws", location="p")),
        ("eu-west-1", SecretNotFoundError("no secret at p", store="aws", location="p")),
    ]
    error: StoreError = gone.error("p")
    assert type(error) is SecretNotFoundError
    assert str(error) == "no secret at p in any region read (us-east-1, eu-west-1)"
    mixed = _Attempts()
    mixed.failures += [
        ("us-east-1", StoreUnavailableError("throttled", store="aws", location="p")),
        ("eu-west-1", SecretNotFoundError("no secret at p", store="aws", location="p")),
    ]
    error = mixed.error("p")
    assert type(error) is StoreUnavailableError
    assert str(error) == "no region served p (us-east-1: throttled; eu-west-1: no secret at p)"
    assert error.location == "p"
