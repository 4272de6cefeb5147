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
