# Alerts on the rotation of the secrets rotated-key made: EventBridge rules on Secrets Manager's
# rotation events for exactly those secrets, CloudWatch alarms on the rotation function and on
# each key's age, an SNS topic for both, an event log and a dashboard. Every piece is optional.
#
# A module of its own, not part of rotation-lambda: the rules match the secrets' full ARNs, which
# exist only once the secrets do, and the secrets' rotation needs the function first. Matching by
# name instead (a prefix "<name>-") would also match another secret whose name starts with ours
# and a hyphen.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # A topic is made (with create_sns_topic) only when something would publish to it.
  publishes = anytrue([
    var.failure_events_enabled,
    var.success_events_enabled && var.success_events_to_sns,
    var.errors_alarm_enabled,
    var.throttles_alarm_enabled,
    var.duration_alarm_enabled,
    var.key_age_alarm_enabled,
  ])
  create_topic = var.create_sns_topic && local.publishes
  topic_arn    = local.create_topic ? aws_sns_topic.this[0].arn : var.sns_topic_arn

  # The ARNs in a fixed order, cut into groups of secrets_per_rule: one rule per group, so no
  # pattern passes EventBridge's size limit. The group count is known at plan time (it depends
  # on the number of secrets, not on their ARNs).
  rule_groups = range(ceil(length(var.secrets) / var.secrets_per_rule))
  arn_groups  = chunklist(sort([for secret in values(var.secrets) : secret.arn]), var.secrets_per_rule)
  group_name  = { for index in local.rule_groups : index => index == 0 ? "" : "-${index + 1}" }

  # Secrets Manager reports a rotation's outcome as a CloudTrail service event: detail-type
  # "AWS Service Event via CloudTrail", the secret's full ARN in detail.additionalEventData.SecretId
  # (RotateSecret itself is an "AWS API Call via CloudTrail" event, which these do not match).
  failure_patterns = {
    for index in local.rule_groups : index => jsonencode({
      source        = ["aws.secretsmanager"]
      "detail-type" = ["AWS Service Event via CloudTrail"]
      detail = {
        eventSource         = ["secretsmanager.amazonaws.com"]
        eventName           = var.failure_event_names
        additionalEventData = { SecretId = local.arn_groups[index] }
      }
    })
  }
  success_patterns = {
    for index in local.rule_groups : index => jsonencode({
      source        = ["aws.secretsmanager"]
      "detail-type" = ["AWS Service Event via CloudTrail"]
      detail = {
        eventSource         = ["secretsmanager.amazonaws.com"]
        eventName           = ["RotationSucceeded"]
        additionalEventData = { SecretId = local.arn_groups[index] }
      }
    })
  }

  failure_rules = var.failure_events_enabled ? local.rule_groups : []
  success_rules = var.success_events_enabled ? local.rule_groups : []
  # The rules that send to the topic: the topic's policy admits these and no others.
  rule_arns = concat(
    [for rule in aws_cloudwatch_event_rule.failed : rule.arn],
    var.success_events_to_sns ? [for rule in aws_cloudwatch_event_rule.succeeded : rule.arn] : [],
  )

  event_log_name = "/aws/events/${var.name_prefix}-rotations"

  alarm_actions = [local.topic_arn]
  ok_actions    = var.ok_actions_enabled ? [local.topic_arn] : []

  key_age_thresholds = {
    for name, secret in var.secrets : name => (
      secret.max_key_age_seconds != null ? secret.max_key_age_seconds :
      secret.rotation_interval_seconds != null ? secret.rotation_interval_seconds + var.key_age_margin_seconds : null
    )
  }
}

################################################################################
# The topic, and who may publish to it
################################################################################

resource "aws_sns_topic" "this" {
  count = local.create_topic ? 1 : 0

  name              = "${var.name_prefix}-rotation-alerts"
  kms_master_key_id = var.sns_kms_master_key_id
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  count = local.publishes ? 1 : 0

  lifecycle {
    precondition {
      condition     = var.create_sns_topic || var.sns_topic_arn != null
      error_message = "create_sns_topic = false needs sns_topic_arn: the topic the failure events and alarms go to."
    }
  }

  # What the default topic policy gives the owning account, which a policy set here replaces.
  statement {
    sid    = "TheAccountManagesTheTopic"
    effect = "Allow"
    actions = [
      "sns:AddPermission",
      "sns:DeleteTopic",
      "sns:GetTopicAttributes",
      "sns:ListSubscriptionsByTopic",
      "sns:Publish",
      "sns:RemovePermission",
      "sns:SetTopicAttributes",
      "sns:Subscribe",
    ]
    resources = [local.topic_arn]

    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }

  # Only this module's rules: no other rule can publish through this statement.
  dynamic "statement" {
    for_each = length(local.rule_arns) > 0 ? [1] : []

    content {
      sid       = "EventBridgePublishesRotationEvents"
      effect    = "Allow"
      actions   = ["sns:Publish"]
      resources = [local.topic_arn]

      principals {
        type        = "Service"
        identifiers = ["events.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "aws:SourceArn"
        values   = sort(local.rule_arns)
      }
    }
  }

  statement {
    sid       = "CloudWatchPublishesRotationAlarms"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = [local.topic_arn]

    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name_prefix}-*"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  count = local.create_topic ? 1 : 0

  arn    = aws_sns_topic.this[0].arn
  policy = data.aws_iam_policy_document.topic[0].json
}

################################################################################
# The event log (what the dashboard's table reads)
################################################################################

resource "aws_cloudwatch_log_group" "events" {
  count = var.event_log_enabled ? 1 : 0

  name              = local.event_log_name
  retention_in_days = var.event_log_retention_in_days
  tags              = var.tags
}

data "aws_iam_policy_document" "event_log" {
  count = var.event_log_enabled ? 1 : 0

  statement {
    sid       = "EventBridgeWritesRotationEvents"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.events[0].arn}:*"]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com", "delivery.logs.amazonaws.com"]
    }
  }
}

# CloudWatch Logs takes 10 resource policies per region: this module uses one.
resource "aws_cloudwatch_log_resource_policy" "events" {
  count = var.event_log_enabled ? 1 : 0

  policy_name     = "${var.name_prefix}-rotation-events"
  policy_document = data.aws_iam_policy_document.event_log[0].json
}

################################################################################
# EventBridge rules: failures (alerts) and successes (dashboards), our secrets only
################################################################################

resource "aws_cloudwatch_event_rule" "failed" {
  for_each = toset([for index in local.failure_rules : tostring(index)])

  name          = "${var.name_prefix}-rotation-failed${local.group_name[tonumber(each.key)]}"
  description   = "A rotation of an unkey-secrets key failed or was abandoned (${join(", ", var.failure_event_names)})"
  event_pattern = local.failure_patterns[tonumber(each.key)]
  tags          = var.tags

  lifecycle {
    precondition {
      condition     = length(local.failure_patterns[tonumber(each.key)]) <= var.event_pattern_max_length
      error_message = "The pattern of ${var.name_prefix}-rotation-failed${local.group_name[tonumber(each.key)]} is ${length(local.failure_patterns[tonumber(each.key)])} characters, more than event_pattern_max_length (${var.event_pattern_max_length}): lower secrets_per_rule (${var.secrets_per_rule})."
    }
  }
}

resource "aws_cloudwatch_event_target" "failed_to_sns" {
  for_each = aws_cloudwatch_event_rule.failed

  rule      = each.value.name
  target_id = "sns"
  arn       = local.topic_arn

  # The topic's policy admits the rule before the first event can come.
  depends_on = [aws_sns_topic_policy.this]
}

resource "aws_cloudwatch_event_target" "failed_to_log" {
  for_each = var.event_log_enabled ? aws_cloudwatch_event_rule.failed : {}

  rule      = each.value.name
  target_id = "event-log"
  arn       = aws_cloudwatch_log_group.events[0].arn

  depends_on = [aws_cloudwatch_log_resource_policy.events]
}

resource "aws_cloudwatch_event_rule" "succeeded" {
  for_each = toset([for index in local.success_rules : tostring(index)])

  name          = "${var.name_prefix}-rotation-succeeded${local.group_name[tonumber(each.key)]}"
  description   = "A rotation of an unkey-secrets key succeeded (RotationSucceeded)"
  event_pattern = local.success_patterns[tonumber(each.key)]
  tags          = var.tags

  lifecycle {
    precondition {
      condition     = var.event_log_enabled || var.success_events_to_sns
      error_message = "success_events_enabled needs somewhere to send the events: event_log_enabled or success_events_to_sns."
    }

    precondition {
      condition     = length(local.success_patterns[tonumber(each.key)]) <= var.event_pattern_max_length
      error_message = "The pattern of ${var.name_prefix}-rotation-succeeded${local.group_name[tonumber(each.key)]} is ${length(local.success_patterns[tonumber(each.key)])} characters, more than event_pattern_max_length (${var.event_pattern_max_length}): lower secrets_per_rule (${var.secrets_per_rule})."
    }
  }
}

resource "aws_cloudwatch_event_target" "succeeded_to_log" {
  for_each = var.event_log_enabled ? aws_cloudwatch_event_rule.succeeded : {}

  rule      = each.value.name
  target_id = "event-log"
  arn       = aws_cloudwatch_log_group.events[0].arn

  depends_on = [aws_cloudwatch_log_resource_policy.events]
}

resource "aws_cloudwatch_event_target" "succeeded_to_sns" {
  for_each = var.success_events_to_sns ? aws_cloudwatch_event_rule.succeeded : {}

  rule      = each.value.name
  target_id = "sns"
  arn       = local.topic_arn

  depends_on = [aws_sns_topic_policy.this]
}

################################################################################
# Alarms on the function
################################################################################

resource "aws_cloudwatch_metric_alarm" "errors" {
  count = var.errors_alarm_enabled ? 1 : 0

  alarm_name          = "${var.name_prefix}-rotation-errors"
  alarm_description   = "The rotation function ${var.function_name} failed ${var.errors_alarm_threshold} time(s) or more in ${var.alarm_period_seconds} s: a rotation step failed and Secrets Manager will retry it. Its log group /aws/lambda/${var.function_name} says which step and why."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.errors_alarm_threshold
  # No invocation, no error: most periods have no data at all.
  treat_missing_data = "notBreaching"
  alarm_actions      = local.alarm_actions
  ok_actions         = local.ok_actions
  tags               = var.tags
}

resource "aws_cloudwatch_metric_alarm" "throttles" {
  count = var.throttles_alarm_enabled ? 1 : 0

  alarm_name          = "${var.name_prefix}-rotation-throttles"
  alarm_description   = "The rotation function ${var.function_name} was throttled ${var.throttles_alarm_threshold} time(s) or more in ${var.alarm_period_seconds} s: its reserved concurrency (or the account's) is too low, and the rotation step did not run."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Sum"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = var.throttles_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.ok_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "duration" {
  count = var.duration_alarm_enabled ? 1 : 0

  alarm_name          = "${var.name_prefix}-rotation-duration"
  alarm_description   = "A step of the rotation function ${var.function_name} ran longer than ${var.duration_alarm_threshold_percent}% of its ${var.function_timeout_seconds} s timeout: Unkey or Secrets Manager is slow, and a step that reaches the timeout is killed."
  namespace           = "AWS/Lambda"
  metric_name         = "Duration"
  dimensions          = { FunctionName = var.function_name }
  statistic           = "Maximum"
  period              = var.alarm_period_seconds
  evaluation_periods  = var.alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  # Duration is in milliseconds.
  threshold          = var.function_timeout_seconds * 1000 * var.duration_alarm_threshold_percent / 100
  treat_missing_data = "notBreaching"
  alarm_actions      = local.alarm_actions
  ok_actions         = local.ok_actions
  tags               = var.tags
}

################################################################################
# Rotation overdue: each key's age, as the function publishes it
################################################################################

# The function writes UnkeySecrets/CurrentKeyAgeSeconds (unit Seconds, one dimension: SecretId,
# the secret's ARN) in CloudWatch's embedded metric format at every testSecret and finishSecret.
# No unit is set here: an alarm with a unit ignores data published without one.
resource "aws_cloudwatch_metric_alarm" "key_age" {
  for_each = var.key_age_alarm_enabled ? var.secrets : {}

  alarm_name          = "${var.name_prefix}-key-age-${each.key}"
  alarm_description   = "The current key of ${each.key} (${each.value.arn}) was older than ${coalesce(local.key_age_thresholds[each.key], 0)} s when the rotation function last ran: its rotation is overdue. Look for RotationFailed events and the function's errors."
  namespace           = "UnkeySecrets"
  metric_name         = "CurrentKeyAgeSeconds"
  dimensions          = { SecretId = each.value.arn }
  statistic           = "Maximum"
  period              = var.key_age_alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = coalesce(local.key_age_thresholds[each.key], 0)
  treat_missing_data  = var.key_age_treat_missing_data
  alarm_actions       = local.alarm_actions
  ok_actions          = local.ok_actions
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = local.key_age_thresholds[each.key] != null
      error_message = "secrets[\"${each.key}\"] needs rotation_interval_seconds or max_key_age_seconds for its key-age alarm (a cron schedule has no fixed interval): set one, or key_age_alarm_enabled = false."
    }
  }
}

################################################################################
# Dashboard
################################################################################

locals {
  failure_rule_names = [for rule in aws_cloudwatch_event_rule.failed : rule.name]
  success_rule_names = [for rule in aws_cloudwatch_event_rule.succeeded : rule.name]

  rotation_metrics = concat(
    [for name in local.success_rule_names : ["AWS/Events", "TriggeredRules", "RuleName", name, { label = "succeeded (${name})" }]],
    [for name in local.failure_rule_names : ["AWS/Events", "TriggeredRules", "RuleName", name, { label = "failed (${name})", color = "#d62728" }]],
  )
  key_age_annotations = [
    for name in sort(keys(var.secrets)) : { label = "${name} overdue", value = local.key_age_thresholds[name] }
    if local.key_age_thresholds[name] != null
  ]

  # Widgets on a 24-column grid, each 6 high; a widget with nothing to show is left out (an
  # empty metrics list is refused).
  dashboard_widgets = concat(
    [for widget in [{
      type   = "metric"
      x      = 0
      y      = 0
      width  = 12
      height = 6
      properties = {
        title   = "Rotations (rules triggered)"
        region  = local.region
        view    = "timeSeries"
        stat    = "Sum"
        period  = 3600
        metrics = local.rotation_metrics
      }
    }] : widget if length(local.rotation_metrics) > 0],
    [{
      type   = "metric"
      x      = 12
      y      = 0
      width  = 12
      height = 6
      properties = {
        title  = "Rotation function ${var.function_name}"
        region = local.region
        view   = "timeSeries"
        period = 300
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", var.function_name, { stat = "Sum" }],
          ["AWS/Lambda", "Errors", "FunctionName", var.function_name, { stat = "Sum", color = "#d62728" }],
          ["AWS/Lambda", "Throttles", "FunctionName", var.function_name, { stat = "Sum" }],
          ["AWS/Lambda", "Duration", "FunctionName", var.function_name, { stat = "Maximum", yAxis = "right" }],
        ]
        annotations = {
          horizontal = [{ label = "timeout (ms)", value = var.function_timeout_seconds * 1000, yAxis = "right" }]
        }
      }
    }],
    [{
      type   = "metric"
      x      = 0
      y      = 6
      width  = 24
      height = 6
      properties = merge(
        {
          title   = "Age of each current key (s) when the function ran"
          region  = local.region
          view    = "timeSeries"
          stat    = "Maximum"
          period  = 86400
          metrics = [for name in sort(keys(var.secrets)) : ["UnkeySecrets", "CurrentKeyAgeSeconds", "SecretId", var.secrets[name].arn, { label = name }]]
        },
        { for name, value in { annotations = { horizontal = local.key_age_annotations } } : name => value if length(local.key_age_annotations) > 0 },
      )
    }],
    [{
      type   = "metric"
      x      = 0
      y      = 12
      width  = 24
      height = 6
      properties = {
        # The function's other metrics (docs/lambda-metrics.md), for every secret it rotates
        # in this account and region: a SEARCH takes no list of hundreds of ARNs.
        title  = "Rotation steps (UnkeySecrets)"
        region = local.region
        view   = "timeSeries"
        period = 3600
        metrics = [
          [{ id = "failed", label = "failed steps", expression = "SEARCH('{UnkeySecrets,SecretId,Step,Outcome} MetricName=\"StepInvocations\" Outcome=\"failed\"', 'Sum', 3600)" }],
          [{ id = "swept", label = "keys swept", expression = "SEARCH('{UnkeySecrets,SecretId} MetricName=\"KeysSwept\"', 'Sum', 3600)" }],
        ]
      }
    }],
    [for widget in [{
      type   = "log"
      x      = 0
      y      = 18
      width  = 24
      height = 6
      properties = {
        title  = "Latest rotation events"
        region = local.region
        view   = "table"
        query  = "SOURCE '${local.event_log_name}' | fields @timestamp, detail.eventName, detail.additionalEventData.SecretId, detail.errorMessage | sort @timestamp desc | limit 50"
      }
    }] : widget if var.event_log_enabled],
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.dashboard_enabled ? 1 : 0

  dashboard_name = "${var.name_prefix}-rotation"
  dashboard_body = jsonencode({ widgets = local.dashboard_widgets })
}
