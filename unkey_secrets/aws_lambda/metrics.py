"""The rotation function's metrics, in CloudWatch's embedded metric format (EMF).

Each step writes one EMF document, a single line of JSON, to standard output: in Lambda,
CloudWatch Logs stores the line in the function's log group and extracts the metrics from it,
with no API call and no permission beyond writing logs. The metrics, all in the namespace
:data:`NAMESPACE`:

* ``StepInvocations`` (Count, always 1), dimensions ``SecretId``, ``Step``, ``Outcome``: every
  step.
* ``StepDuration`` (Milliseconds), dimensions ``SecretId``, ``Step``: every step, the handler's
  wall time for it (a second run after a refused root key included).
* ``KeysSwept`` (Count), dimension ``SecretId``: every step, the leftover keys it deleted.
* ``CurrentKeyAgeSeconds`` (Seconds), dimension ``SecretId``: testSecret and finishSecret, when
  the key AWSCURRENT holds is known.

``SecretId`` is the rotation event's ``SecretId`` as Secrets Manager sends it: the secret's full
ARN. ``Outcome`` is ``succeeded`` or ``failed``; the step's own outcome (``rerolled``,
``finished``, ``error``...) is the document's ``StepOutcome`` member, a property rather than a
dimension, so each secret has at most eight ``StepInvocations`` series. A document holds no key,
no credential and no error text: besides the dimensions and the values it carries only the
rotation's ``ClientRequestToken`` and ``StepOutcome``.

``CurrentKeyAgeSeconds`` is the age of the key the secret's AWSCURRENT holds when the step
ends (now minus its stored ``issued_at``): at testSecret the key being replaced, at a finished
finishSecret the new one. The key-age alarm of the Terraform module ``rotation-alerts`` is
built on exactly this: namespace ``UnkeySecrets``, metric ``CurrentKeyAgeSeconds``, the one
dimension ``SecretId`` (the ARN), unit Seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass

__all__ = [
    "NAMESPACE",
    "StepMetrics",
    "key_age",
]

#: The CloudWatch namespace of every metric the rotation function writes.
NAMESPACE = "UnkeySecrets"

# CloudWatch's limit on a dimension value: an ARN is far below it, but an event made by hand
# may name anything; a document with an invalid dimension would be dropped whole.
_MAX_DIMENSION_VALUE = 1024
_STEP = ("SecretId", "Step", "Outcome")
_STEP_ONLY = ("SecretId", "Step")
_SECRET = ("SecretId",)


@dataclass(frozen=True)
class StepMetrics:
    """What one step measured; :meth:`document` renders it as an EMF document.

    ``secret_id`` is the event's ``SecretId`` (the dimension), ``step`` one of Secrets
    Manager's four, ``failed`` whether the step raised, ``outcome`` the step's own outcome
    (``rerolled``, ``error``...), ``duration`` its wall time in seconds, ``keys_swept`` the
    number of leftover keys it deleted, ``current_key_age`` the age in seconds of the key
    AWSCURRENT holds (None when unknown or not measured at this step) and ``timestamp`` the
    time it ended, in Unix seconds.
    """

    secret_id: str
    step: str
    client_request_token: str
    failed: bool
    outcome: str | None
    duration: float
    keys_swept: int
    current_key_age: float | None
    timestamp: float

    def publishable(self) -> bool:
        """Whether ``secret_id`` is a value CloudWatch accepts as a dimension.

        1-1024 ASCII characters, at least one of them not whitespace, none a control character.
        """
        value = self.secret_id
        return (
            0 < len(value) <= _MAX_DIMENSION_VALUE
            and value.isascii()
            and value.isprintable()
            and not value.isspace()
        )

    def document(self) -> dict[str, object]:
        """The EMF document: ``_aws`` metadata, dimension and metric members at the top level."""
        directives: list[dict[str, object]] = [
            _directive(_STEP, ("StepInvocations", "Count")),
            _directive(_STEP_ONLY, ("StepDuration", "Milliseconds")),
            _directive(_SECRET, ("KeysSwept", "Count"))
            if self.current_key_age is None
            else _directive(_SECRET, ("KeysSwept", "Count"), ("CurrentKeyAgeSeconds", "Seconds")),
        ]
        document: dict[str, object] = {
            "_aws": {"Timestamp": int(self.timestamp * 1000), "CloudWatchMetrics": directives},
            "SecretId": self.secret_id,
            "Step": self.step,
            "Outcome": "failed" if self.failed else "succeeded",
            "StepInvocations": 1,
            "StepDuration": round(self.duration * 1000, 3),
            "KeysSwept": self.keys_swept,
            "ClientRequestToken": self.client_request_token,
        }
        if self.current_key_age is not None:
            document["CurrentKeyAgeSeconds"] = round(self.current_key_age, 3)
        if self.outcome is not None:
            document["StepOutcome"] = self.outcome
        return document

    def line(self) -> str:
        """The document as one line of JSON (no newline), as CloudWatch Logs expects it.

        Raises ValueError for a value that is not finite (JSON has no NaN).
        """
        return json.dumps(self.document(), separators=(",", ":"), allow_nan=False)


def _directive(dimensions: tuple[str, ...], *metrics: tuple[str, str]) -> dict[str, object]:
    # One dimension set per directive: each metric is written under exactly the set it names.
    return {
        "Namespace": NAMESPACE,
        "Dimensions": [list(dimensions)],
        "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
    }


def key_age(issued_at: str | None, now: float) -> float | None:
    """Seconds from ``issued_at`` (ISO 8601, as stored) to ``now`` (Unix seconds), at least 0.

    None when ``issued_at`` is missing or not a timestamp (a value another writer stored);
    a time without an offset is taken as UTC.
    """
    if not isinstance(issued_at, str) or not issued_at:
        return None
    # fromisoformat before 3.11 does not read a trailing Z.
    text = issued_at[:-1] + "+00:00" if issued_at.endswith(("Z", "z")) else issued_at
    try:
        issued = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if issued.tzinfo is None:
        issued = issued.replace(tzinfo=dt.timezone.utc)
    age = now - issued.timestamp()
    return max(age, 0.0) if math.isfinite(age) else None
