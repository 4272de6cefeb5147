"""terraform/modules/rotation-alerts planned against moto: many secrets, a topic of yours, nothing.

The complete example applies the module with its defaults (test_complete_example.py). Here its
other shapes are planned (``terraform plan`` against the session's moto server, for the data
sources) and the plan is read back: 23 secrets split across rules that each stay under
EventBridge's pattern limit, every secret in exactly one rule, a key-age threshold per secret;
a topic given by ARN takes every message and no topic is made; every piece turned off makes
nothing at all; a plan that cannot work stops with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from unkey_secrets.testing.moto import MotoServer

from ._terraform import Terraform, moto_provider

# One worker runs the whole file under `--dist loadgroup`: its tests share one terraform run
# (a module-scoped fixture), which a second worker would otherwise run again.
pytestmark = [pytest.mark.terraform, pytest.mark.xdist_group("terraform-rotation-alerts")]

ACCOUNT = "123456789012"
REGION = "us-east-1"
OWN_TOPIC = f"arn:aws:sns:{REGION}:{ACCOUNT}:platform-alerts"
DAY = 86400
MARGIN = 2 * DAY


def _arn(name: str) -> str:
    return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-AbCdEf"


#: 23 keys: a schedule of (i + 1) days each, key05 with its own max age, key07 on cron().
MANY: dict[str, dict[str, Any]] = {
    f"key{i:02d}": {
        "arn": _arn(f"unkey/api_many/key{i:02d}"),
        "rotation_interval_seconds": (i + 1) * DAY,
    }
    for i in range(23)
}
MANY["key05"]["max_key_age_seconds"] = 3 * DAY
MANY["key07"] = {"arn": MANY["key07"]["arn"], "max_key_age_seconds": 40 * DAY}


def _secrets(value: dict[str, Any]) -> str:
    return f"jsondecode({json.dumps(json.dumps(value))})"


def _root(source: Path) -> str:
    one = {"billing": {"arn": _arn("unkey/api_own/billing"), "rotation_interval_seconds": DAY}}
    return f"""
module "many" {{
  source                   = "{source}"
  name_prefix              = "many"
  function_name            = "many-rotation"
  function_timeout_seconds = 120
  secrets                  = {_secrets(MANY)}
}}

module "own_topic" {{
  source                   = "{source}"
  name_prefix              = "own"
  function_name            = "own-rotation"
  function_timeout_seconds = 60
  secrets                  = {_secrets(one)}
  create_sns_topic         = false
  sns_topic_arn            = "{OWN_TOPIC}"
  success_events_enabled   = false
  event_log_enabled        = false
  duration_alarm_enabled   = false
  key_age_alarm_enabled    = false
  dashboard_enabled        = false
  ok_actions_enabled       = false
}}

module "nothing" {{
  source                   = "{source}"
  name_prefix              = "nothing"
  function_name            = "nothing-rotation"
  function_timeout_seconds = 60
  secrets                  = {_secrets(one)}
  failure_events_enabled   = false
  success_events_enabled   = false
  event_log_enabled        = false
  errors_alarm_enabled     = false
  throttles_alarm_enabled  = false
  duration_alarm_enabled   = false
  key_age_alarm_enabled    = false
  dashboard_enabled        = false
}}

output "nothing_topic_arn" {{
  value = module.nothing.sns_topic_arn
}}

output "nothing_topic_policy" {{
  value = module.nothing.topic_policy_json
}}
"""


def _workdir(tf: Terraform, root: Path, name: str, moto: MotoServer, config: str) -> Path:
    workdir = root / name
    workdir.mkdir()
    (workdir / "main.tf").write_text(config)
    (workdir / "provider.tf").write_text(moto_provider(moto.url, REGION))
    tf.run(["init", "-input=false", "-no-color"], workdir)
    return workdir


@pytest.fixture(scope="module")
def planned(
    terraform: Terraform,
    tf_tree: Path,
    moto_server: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """The plan of the three calls, as `terraform show -json` gives it."""
    assert moto_server.region == REGION
    source = tf_tree / "modules" / "rotation-alerts"
    workdir = _workdir(
        terraform, tmp_path_factory.mktemp("alerts"), "plan", moto_server, _root(source)
    )
    terraform.run(["plan", "-input=false", "-no-color", "-out=plan.out"], workdir)
    return terraform.json(["show", "-json", "-no-color", "plan.out"], workdir)  # type: ignore[no-any-return]


def _resources(plan: dict[str, Any], module: str) -> dict[str, dict[str, Any]]:
    """address within the module => planned values, managed resources only."""
    for child in plan["planned_values"]["root_module"].get("child_modules", []):
        if child["address"] == f"module.{module}":
            return {
                r["address"].removeprefix(f"module.{module}."): r.get("values", {})
                for r in child.get("resources", [])
                if r["mode"] == "managed"
            }
    return {}


def _of_type(resources: dict[str, dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {a: v for a, v in resources.items() if a.startswith(f"{kind}.")}


def test_many_secrets_are_split_across_rules_each_within_eventbridges_limit(
    planned: dict[str, Any],
) -> None:
    resources = _resources(planned, "many")
    arns = sorted(secret["arn"] for secret in MANY.values())
    for kind, event_names in (
        ("failed", ["RotationFailed", "RotationAbandoned", "TestRotationFailed"]),
        ("succeeded", ["RotationSucceeded"]),
    ):
        rules = _of_type(resources, "aws_cloudwatch_event_rule")
        rules = {
            a: v for a, v in rules.items() if a.startswith(f"aws_cloudwatch_event_rule.{kind}[")
        }
        names = sorted(v["name"] for v in rules.values())
        assert names == [
            f"many-rotation-{kind}",
            f"many-rotation-{kind}-2",
            f"many-rotation-{kind}-3",
        ]
        matched: list[str] = []
        for rule in rules.values():
            pattern = rule["event_pattern"]
            assert len(pattern) <= 2048, (rule["name"], len(pattern))
            parsed = json.loads(pattern)
            assert parsed["source"] == ["aws.secretsmanager"]
            assert parsed["detail-type"] == ["AWS Service Event via CloudTrail"]
            assert parsed["detail"]["eventSource"] == ["secretsmanager.amazonaws.com"]
            assert parsed["detail"]["eventName"] == event_names
            ids = parsed["detail"]["additionalEventData"]["SecretId"]
            assert 1 <= len(ids) <= 10
            matched += ids
        assert sorted(matched) == arns, "every secret in exactly one rule"
    targets = _of_type(resources, "aws_cloudwatch_event_target")
    assert sum(1 for a in targets if a.startswith("aws_cloudwatch_event_target.failed_to_sns")) == 3
    assert sum(1 for a in targets if a.startswith("aws_cloudwatch_event_target.failed_to_log")) == 3
    assert (
        sum(1 for a in targets if a.startswith("aws_cloudwatch_event_target.succeeded_to_log")) == 3
    )
    assert not any(a.startswith("aws_cloudwatch_event_target.succeeded_to_sns") for a in targets)


def test_each_key_age_threshold_is_its_schedule_plus_the_margin_or_its_own(
    planned: dict[str, Any],
) -> None:
    alarms = _of_type(_resources(planned, "many"), "aws_cloudwatch_metric_alarm")
    key_age = {v["alarm_name"]: v for a, v in alarms.items() if "key_age" in a}
    assert len(key_age) == 23
    for name, secret in MANY.items():
        alarm = key_age[f"many-key-age-{name}"]
        expected = secret.get("max_key_age_seconds") or secret["rotation_interval_seconds"] + MARGIN
        assert alarm["threshold"] == expected, name
        assert alarm["dimensions"] == {"SecretId": secret["arn"]}
        assert (alarm["namespace"], alarm["metric_name"]) == (
            "UnkeySecrets",
            "CurrentKeyAgeSeconds",
        )
    assert key_age["many-key-age-key05"]["threshold"] == 3 * DAY, "its own max age wins"
    assert key_age["many-key-age-key07"]["threshold"] == 40 * DAY, "cron: its own max age"
    duration = {v["alarm_name"]: v for v in alarms.values()}["many-rotation-duration"]
    assert duration["threshold"] == 96_000, "80 % of 120 s, in ms"


def test_a_topic_of_yours_gets_everything_and_none_is_made(planned: dict[str, Any]) -> None:
    resources = _resources(planned, "own_topic")
    kinds = sorted({a.split(".")[0] for a in resources})
    assert kinds == [
        "aws_cloudwatch_event_rule",
        "aws_cloudwatch_event_target",
        "aws_cloudwatch_metric_alarm",
    ]
    [rule] = _of_type(resources, "aws_cloudwatch_event_rule").values()
    assert rule["name"] == "own-rotation-failed"
    [target] = _of_type(resources, "aws_cloudwatch_event_target").values()
    assert target["arn"] == OWN_TOPIC
    alarms = _of_type(resources, "aws_cloudwatch_metric_alarm").values()
    assert sorted(a["alarm_name"] for a in alarms) == [
        "own-rotation-errors",
        "own-rotation-throttles",
    ]
    for alarm in alarms:
        assert alarm["alarm_actions"] == [OWN_TOPIC]
        assert alarm["ok_actions"] in ([], None), "ok_actions_enabled = false"


def test_every_piece_off_makes_nothing(planned: dict[str, Any]) -> None:
    assert _resources(planned, "nothing") == {}
    outputs = planned["planned_values"]["outputs"]
    assert outputs["nothing_topic_arn"]["value"] is None, "nothing would publish: no topic"
    assert outputs["nothing_topic_policy"]["value"] is None


def test_a_plan_that_cannot_work_stops_with_the_reason(
    terraform: Terraform,
    tf_tree: Path,
    moto_server: MotoServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    source = tf_tree / "modules" / "rotation-alerts"
    # Secret names of 300 characters: ten of them make a pattern far over 2048 characters.
    long_names = {
        f"key{i}": {"arn": _arn(f"unkey/{'x' * 290}/key{i}"), "rotation_interval_seconds": DAY}
        for i in range(10)
    }
    cron = {"billing": {"arn": _arn("unkey/api_cron/billing")}}
    config = f"""
module "long_names" {{
  source                   = "{source}"
  name_prefix              = "long"
  function_name            = "long-rotation"
  function_timeout_seconds = 60
  secrets                  = {_secrets(long_names)}
  key_age_alarm_enabled    = false
}}

module "cron_without_max_age" {{
  source                   = "{source}"
  name_prefix              = "cron"
  function_name            = "cron-rotation"
  function_timeout_seconds = 60
  secrets                  = {_secrets(cron)}
}}

module "no_topic" {{
  source                   = "{source}"
  name_prefix              = "notopic"
  function_name            = "notopic-rotation"
  function_timeout_seconds = 60
  secrets                  = {_secrets(cron)}
  create_sns_topic         = false
  key_age_alarm_enabled    = false
}}
"""
    workdir = _workdir(terraform, tmp_path_factory.mktemp("alerts-bad"), "bad", moto_server, config)
    done = terraform.run(["plan", "-input=false", "-no-color"], workdir, check=False)
    assert done.returncode != 0
    errors = " ".join(done.stderr.split())
    assert "The pattern of long-rotation-failed is" in errors
    assert "more than event_pattern_max_length (2048): lower secrets_per_rule (10)" in errors
    assert 'secrets["billing"] needs rotation_interval_seconds or max_key_age_seconds' in errors
    assert "create_sns_topic = false needs sns_topic_arn" in errors
