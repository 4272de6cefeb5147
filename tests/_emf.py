"""CloudWatch's embedded metric format (EMF), checked as its specification states it.

The specification (Amazon CloudWatch User Guide, "Specification: Embedded metric format"):
the log event is one JSON object and nothing else; the root holds ``_aws``, an object with
``Timestamp`` (an integer, milliseconds since the epoch) and ``CloudWatchMetrics``, an array of
MetricDirectives. A directive has exactly ``Namespace`` (a string of 1-255), ``Dimensions`` (an
array of DimensionSets, each an array of at most 30 dimension keys) and ``Metrics`` (at most 100
MetricDefinitions: ``Name``, optional ``Unit`` from CloudWatch's units, optional
``StorageResolution`` 1 or 60); objects the specification defines carry no other member. Every
reference is a member of the root (never nested): a dimension's value is a string, a metric's a
number or an array of at most 100 numbers. CloudWatch further takes dimension values of 1-1024
ASCII characters, not all whitespace and no control character, and timestamps from two weeks
back to two hours ahead.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema

UNITS = (
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
)

_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["_aws"],
    "properties": {
        "_aws": {
            "type": "object",
            "required": ["Timestamp", "CloudWatchMetrics"],
            "properties": {
                "Timestamp": {"type": "integer", "minimum": 0},
                "CloudWatchMetrics": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["Namespace", "Dimensions", "Metrics"],
                        "additionalProperties": False,
                        "properties": {
                            "Namespace": {**_NAME, "pattern": r"^[A-Za-z0-9._#:/-]+$"},
                            "Dimensions": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"type": "array", "maxItems": 30, "items": _NAME},
                            },
                            "Metrics": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 100,
                                "items": {
                                    "type": "object",
                                    "required": ["Name"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "Name": _NAME,
                                        "Unit": {"enum": list(UNITS)},
                                        "StorageResolution": {"enum": [1, 60]},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}

_TWO_WEEKS_MS = 14 * 86_400_000
_TWO_HOURS_MS = 2 * 3_600_000


@dataclass(frozen=True)
class Datum:
    """One value CloudWatch extracts from a document: what an alarm or a query names."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    unit: str
    value: float


def validate(line: str, *, now: float | None = None) -> dict[str, Any]:
    """Parse one log line as an EMF document and check it; returns the document.

    Raises AssertionError (or jsonschema's ValidationError) naming the first rule broken.
    ``now`` (Unix seconds, default the clock) is what the timestamp is checked against.
    """
    assert "\n" not in line, "an EMF document is one line"
    assert line == line.strip(), "an EMF document has nothing around it"
    document = json.loads(line)
    jsonschema.validate(document, SCHEMA)
    root_keys = set(document) - {"_aws"}
    stamp = document["_aws"]["Timestamp"]
    reference = int((time.time() if now is None else now) * 1000)
    assert reference - _TWO_WEEKS_MS <= stamp <= reference + _TWO_HOURS_MS, "Timestamp out of range"
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for dimension_set in directive["Dimensions"]:
            for key in dimension_set:
                assert key in root_keys, f"dimension {key!r} is no member of the root"
                value = document[key]
                assert isinstance(value, str), f"dimension {key!r} is not a string"
                assert 1 <= len(value) <= 1024, f"dimension {key!r} has {len(value)} characters"
                assert value.isascii(), f"dimension {key!r} is not ASCII"
                assert not value.isspace(), f"dimension {key!r} is only whitespace"
                assert value.isprintable(), f"dimension {key!r} has a control character"
        for definition in directive["Metrics"]:
            name = definition["Name"]
            assert name in root_keys, f"metric {name!r} is no member of the root"
            value = document[name]
            values = value if isinstance(value, list) else [value]
            assert len(values) <= 100, f"metric {name!r} has more than 100 values"
            for number in values:
                assert isinstance(number, (int, float)), f"metric {name!r} is not a number"
                assert not isinstance(number, bool), f"metric {name!r} is a boolean"
                assert math.isfinite(number), f"metric {name!r} is not finite"
    assert len(line.encode()) <= 256 * 1024, "larger than a CloudWatch Logs event"
    return dict(document)


def documents(output: str, *, now: float | None = None) -> list[dict[str, Any]]:
    """Every EMF document among ``output``'s lines (those naming ``_aws``), each validated."""
    return [validate(line, now=now) for line in output.splitlines() if '"_aws"' in line]


def data(document: dict[str, Any]) -> list[Datum]:
    """The values CloudWatch extracts: one per metric, per dimension set of its directive."""
    out = []
    for directive in document["_aws"]["CloudWatchMetrics"]:
        for definition in directive["Metrics"]:
            for dimension_set in directive["Dimensions"]:
                out.append(
                    Datum(
                        directive["Namespace"],
                        definition["Name"],
                        tuple(sorted((key, document[key]) for key in dimension_set)),
                        definition.get("Unit", "None"),
                        document[definition["Name"]],
                    )
                )
    return out


def find(items: Iterable[Datum], name: str) -> list[Datum]:
    """The data named ``name``."""
    return [d for d in items if d.name == name]
