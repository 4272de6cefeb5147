output "rotation_lambda_arn" {
  description = "The function's ARN, available once Secrets Manager may invoke it: pass it to rotated-key's rotation_lambda_arn."
  value       = aws_lambda_function.this.arn

  depends_on = [aws_lambda_permission.secretsmanager, aws_iam_role_policy.this]
}

output "function_arn" {
  description = "ARN of the rotation function."
  value       = aws_lambda_function.this.arn
}

output "function_name" {
  description = "Name of the rotation function."
  value       = aws_lambda_function.this.function_name
}

output "handler" {
  description = "The handler string of the function."
  value       = aws_lambda_function.this.handler
}

output "role_arn" {
  description = "ARN of the function's IAM role."
  value       = aws_iam_role.this.arn
}

output "role_name" {
  description = "Name of the function's IAM role."
  value       = aws_iam_role.this.name
}

output "policy_json" {
  description = "The role's inline policy document (what the function may do)."
  value       = data.aws_iam_policy_document.this.json
}

output "secret_arn_patterns" {
  description = "The secrets the function may rotate, as the ARN patterns its policy names."
  value       = local.secret_arns
}

output "log_group_name" {
  description = "Name of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "log_group_arn" {
  description = "ARN of the function's CloudWatch log group."
  value       = aws_cloudwatch_log_group.this.arn
}

output "environment_variable_names" {
  description = "Names of the environment variables the function gets (their values are ids and settings, never a key)."
  value       = sort(keys(aws_lambda_function.this.environment[0].variables))
}

output "timeout" {
  description = "The function's timeout in seconds (rotation-alerts' function_timeout_seconds)."
  value       = aws_lambda_function.this.timeout
}
