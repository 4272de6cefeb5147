"""EventBridge rule targets that are SNS topics, delivered as AWS does, for the in-process moto.

moto's EventBridge matches each rule's pattern on PutEvents and delivers to SQS, CloudWatch Logs
and other buses, but a rule with an SNS target raises ``NotImplementedError`` for every event
it matches, so a failure rule aimed at a topic could not be exercised at all.
:func:`deliver_to_sns` wraps ``Rule.send_to_targets`` through ``monkeypatch``: an event that
matches is published to each SNS target's topic (the whole event as JSON, as EventBridge sends
it when no input transformer is set), then moto's own delivery handles the other targets.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any


def deliver_to_sns(monkeypatch: Any) -> None:
    """Make moto's EventBridge publish matched events to rules' SNS targets."""
    from moto.events import models
    from moto.sns.models import sns_backends

    original: Any = models.Rule.send_to_targets

    def send_to_targets(rule: Any, event: dict[str, Any], transform_input: bool = True) -> None:
        if not rule.event_pattern.matches_event(event):
            return
        topics = [t for t in rule.targets if t["Arn"].split(":")[2] == "sns"]
        for target in topics:
            _, _, _, region, account, _ = target["Arn"].split(":", 5)
            message = dict(event)
            if isinstance(message.get("time"), (int, float)):
                message["time"] = datetime.fromtimestamp(message["time"], tz=timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                )
            message.pop("ingestion-time", None)
            topic = sns_backends[account][region].get_topic(target["Arn"])
            topic.publish(json.dumps(message))
        others = [t for t in rule.targets if t not in topics]
        if not others:
            return
        kept = rule.targets
        rule.targets = others
        try:
            original(rule, event, transform_input)
        finally:
            rule.targets = kept

    monkeypatch.setattr(models.Rule, "send_to_targets", send_to_targets)
