output "sns_topic_arn" {
  description = "The topic the failure events and the alarms go to (the one made here, or sns_topic_arn): subscribe your pager, chat or e-mail to it. null when nothing publishes."
  value       = local.topic_arn
}

output "topic_policy_json" {
  description = "The topic policy letting this module's rules and alarms publish (set on the topic the module makes; add its statements to a topic given by sns_topic_arn). null when nothing publishes."
  value       = local.publishes ? data.aws_iam_policy_document.topic[0].json : null
}

output "failure_rule_names" {
  description = "Names of the rules matching rotation failures of these secrets (one per secrets_per_rule secrets)."
  value       = [for rule in aws_cloudwatch_event_rule.failed : rule.name]
}

output "failure_rule_arns" {
  description = "ARNs of the failure rules."
  value       = [for rule in aws_cloudwatch_event_rule.failed : rule.arn]
}

output "success_rule_names" {
  description = "Names of the rules matching RotationSucceeded of these secrets."
  value       = [for rule in aws_cloudwatch_event_rule.succeeded : rule.name]
}

output "success_rule_arns" {
  description = "ARNs of the success rules."
  value       = [for rule in aws_cloudwatch_event_rule.succeeded : rule.arn]
}

output "failure_event_patterns" {
  description = "The failure rules' event patterns (JSON), in the order of failure_rule_names."
  value       = [for rule in aws_cloudwatch_event_rule.failed : rule.event_pattern]
}

output "success_event_patterns" {
  description = "The success rules' event patterns (JSON), in the order of success_rule_names."
  value       = [for rule in aws_cloudwatch_event_rule.succeeded : rule.event_pattern]
}

output "event_log_group_name" {
  description = "The log group that keeps the matched rotation events (null without event_log_enabled)."
  value       = var.event_log_enabled ? aws_cloudwatch_log_group.events[0].name : null
}

output "function_alarm_names" {
  description = "Names of the alarms on the function: errors, throttles, duration => name (enabled ones only)."
  value = merge(
    { for alarm in aws_cloudwatch_metric_alarm.errors : "errors" => alarm.alarm_name },
    { for alarm in aws_cloudwatch_metric_alarm.throttles : "throttles" => alarm.alarm_name },
    { for alarm in aws_cloudwatch_metric_alarm.duration : "duration" => alarm.alarm_name },
  )
}

output "key_age_alarm_names" {
  description = "Key name => name of its key-age (rotation overdue) alarm."
  value       = { for name, alarm in aws_cloudwatch_metric_alarm.key_age : name => alarm.alarm_name }
}

output "key_age_thresholds_seconds" {
  description = "Key name => the age in seconds past which its key-age alarm fires."
  value       = { for name, alarm in aws_cloudwatch_metric_alarm.key_age : name => alarm.threshold }
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null without dashboard_enabled)."
  value       = var.dashboard_enabled ? aws_cloudwatch_dashboard.this[0].dashboard_name : null
}
