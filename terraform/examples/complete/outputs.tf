output "function_arn" {
  description = "ARN of the rotation function."
  value       = module.rotation_lambda.function_arn
}

output "role_name" {
  description = "Name of the function's IAM role."
  value       = module.rotation_lambda.role_name
}

output "log_group_name" {
  description = "The function's log group."
  value       = module.rotation_lambda.log_group_name
}

output "root_key_secret_arn" {
  description = "Put the Unkey root key here (once, outside Terraform)."
  value       = aws_secretsmanager_secret.root_key.arn
}

output "kms_key_arn" {
  description = "The KMS key of the secrets."
  value       = aws_kms_key.secrets.arn
}

output "secret_arns" {
  description = "Key name => ARN of its secret."
  value       = { for name, key in module.keys : name => key.secret_arn }
}

output "secret_names" {
  description = "Key name => name of its secret (what readers load)."
  value       = { for name, key in module.keys : name => key.secret_name }
}

output "alerts_topic_arn" {
  description = "The SNS topic rotation failures and alarms go to (null without alerts_enabled)."
  value       = var.alerts_enabled ? module.alerts[0].sns_topic_arn : null
}

output "alert_rule_names" {
  description = "The EventBridge rules: failed => names, succeeded => names (empty without alerts_enabled)."
  value = var.alerts_enabled ? {
    failed    = module.alerts[0].failure_rule_names
    succeeded = module.alerts[0].success_rule_names
  } : { failed = [], succeeded = [] }
}

output "alarm_names" {
  description = "The alarms: errors, throttles, duration and key-age-<key> => name (empty without alerts_enabled)."
  value = var.alerts_enabled ? merge(
    module.alerts[0].function_alarm_names,
    { for name, alarm in module.alerts[0].key_age_alarm_names : "key-age-${name}" => alarm },
  ) : {}
}

output "event_log_group_name" {
  description = "The log group keeping the rotation events (null without alerts_enabled)."
  value       = var.alerts_enabled ? module.alerts[0].event_log_group_name : null
}

output "dashboard_name" {
  description = "The CloudWatch dashboard of the rotations (null without alerts_enabled)."
  value       = var.alerts_enabled ? module.alerts[0].dashboard_name : null
}
