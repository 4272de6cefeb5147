output "secret_arn" {
  description = "ARN of the secret (for readers' policies)."
  value       = aws_secretsmanager_secret.this.arn
}

output "secret_id" {
  description = "Id of the secret (its ARN)."
  value       = aws_secretsmanager_secret.this.id
}

output "secret_name" {
  description = "Name of the secret: what readers load the current key from, and what rotation-lambda's secret_names takes."
  value       = aws_secretsmanager_secret.this.name
}

output "api_id" {
  description = "The Unkey API of the key (the secret's unkey-api-id tag)."
  value       = var.api_id
}

output "rotation_enabled" {
  description = "Whether rotation is on for the secret."
  value       = aws_secretsmanager_secret_rotation.this.rotation_enabled
}

output "rotation_lambda_arn" {
  description = "ARN of the function that rotates the secret."
  value       = aws_secretsmanager_secret_rotation.this.rotation_lambda_arn
}

output "replicas" {
  description = "The secret's replicas: region, kms_key_id, status."
  value       = aws_secretsmanager_secret.this.replica
}

output "rotation_interval_seconds" {
  description = "Seconds between scheduled rotations (automatically_after_days, or a rate(N days|hours) schedule_expression); null for a cron schedule. rotation-alerts' key-age alarm adds its margin to it."
  value       = local.rotation_interval_seconds
}
