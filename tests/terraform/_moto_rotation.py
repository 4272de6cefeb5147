"""RotateSecret as AWS does it, minus the Lambda invocation, for the in-process moto server.

moto's RotateSecret invokes the rotation function itself, which it can only do through docker:
without it the call fails and the aws provider retries it until its timeout. moto also answers
with ``RotationRules`` holding ``AutomaticallyAfterDays`` only, so a ``schedule_expression``
would show as drift on every plan, and it fails outright on a secret with no version yet (the
module's secrets start that way: the first rotation creates the first key).

:class:`RotateSecretRecorder` replaces it with what AWS does before it invokes the function:
check the function exists and no rotation is in flight, keep the rules, turn rotation on, and
(``RotateImmediately``) add a version labelled AWSPENDING with no value. Instead of invoking the
function it records the event Secrets Manager would send; the test then plays Lambda and runs the
four steps with that event's token.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Invocation:
    """What Secrets Manager would have sent to the function (its first step)."""

    function_arn: str
    secret_arn: str
    token: str


@dataclass
class RotateSecretRecorder:
    """Patch moto's RotateSecret (and DescribeSecret's RotationRules) through ``monkeypatch``."""

    monkeypatch: Any
    invocations: list[Invocation] = field(default_factory=list)

    def install(self) -> RotateSecretRecorder:
        from moto.awslambda.utils import get_backend as lambda_backend
        from moto.secretsmanager import models
        from moto.secretsmanager.exceptions import (
            InvalidRequestException,
            ResourceNotFoundException,
            SecretNotFoundException,
        )

        recorder = self
        rules_of: dict[str, dict[str, Any]] = {}

        def rotate_secret(
            backend: Any,
            secret_id: str,
            client_request_token: str | None = None,
            rotation_lambda_arn: str | None = None,
            rotation_rules: dict[str, Any] | None = None,
            rotate_immediately: bool = True,
        ) -> str:
            if not backend._is_valid_identifier(secret_id):
                raise SecretNotFoundException()
            secret = backend.secrets[secret_id]
            function_arn = rotation_lambda_arn or secret.rotation_lambda_arn
            if not function_arn:
                raise InvalidRequestException("No Lambda rotation function ARN is associated")
            try:
                lambda_backend(backend.account_id, backend.region_name).get_function(function_arn)
            except Exception:  # noqa: BLE001 - moto raises its own error types here
                raise ResourceNotFoundException(
                    f"Resource not found for ARN '{function_arn}'."
                ) from None
            in_flight = [v for v in secret.versions.values() if "AWSPENDING" in v["version_stages"]]
            if any("AWSCURRENT" not in v["version_stages"] for v in in_flight):
                raise InvalidRequestException(
                    "A previous rotation isn't complete. That rotation will be reattempted."
                )
            secret.rotation_lambda_arn = function_arn
            if rotation_rules:
                rules_of[secret.arn] = dict(rotation_rules)
                days = rotation_rules.get("AutomaticallyAfterDays")
                if days:
                    secret.auto_rotate_after_days = int(days)
                    secret.next_rotation_date = int(time.time()) + int(days) * 86400
            secret.rotation_requested = True
            secret.rotation_enabled = True
            answer: dict[str, Any] = {"ARN": secret.arn, "Name": secret.name}
            if rotate_immediately:
                token = client_request_token or str(uuid.uuid4())
                secret.remove_version_stages_from_old_versions(["AWSPENDING"])
                secret.versions[token] = {
                    "createdate": int(time.time()),
                    "version_id": token,
                    "version_stages": ["AWSPENDING"],
                }
                secret.last_rotation_date = int(time.time())
                recorder.invocations.append(Invocation(function_arn, secret.arn, token))
                answer["VersionId"] = token
            # Without RotateImmediately AWS only runs testSecret on the current value to check
            # the setup; the modules' tests always rotate at once, so nothing is recorded here.
            return json.dumps(answer)

        original_to_dict = models.FakeSecret.to_dict

        def to_dict(secret: Any) -> dict[str, Any]:
            answer = original_to_dict(secret)
            rules = rules_of.get(secret.arn)
            if secret.rotation_requested and rules is not None:
                answer["RotationRules"] = rules
            return answer

        self.monkeypatch.setattr(models.SecretsManagerBackend, "rotate_secret", rotate_secret)
        self.monkeypatch.setattr(models.FakeSecret, "to_dict", to_dict)
        return self
