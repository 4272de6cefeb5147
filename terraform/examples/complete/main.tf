# Both modules wired together for two keys: one function rotates every key; each key is a
# secret whose first value comes from its first rotation. Nothing here holds a key or the
# root key: put the root key into its secret yourself, once, before the first rotation.

provider "aws" {
  region = var.region
}

locals {
  # Key name (its alias) => its secret's name: the alias template readers read, so
  # KeyReader(api_id, alias) finds the key the function rotates. The function's policy names
  # the secrets by name, so one plan creates both without a cycle.
  secret_names = {
    for name, key in var.keys : name => replace(replace(var.alias_template, "{api_id}", key.api_id), "{alias}", name)
  }
}

# A customer managed key for the secrets; the function may use it through Secrets Manager only.
resource "aws_kms_key" "secrets" {
  description             = "Encrypts the Unkey keys and root key of ${var.name_prefix}"
  deletion_window_in_days = 7
  enable_key_rotation     = true
  tags                    = var.tags
}

# The Unkey root key's secret: Terraform makes the container only. Store the root key once,
# without it reaching your shell history or the process list:
#   read -rs ROOT_KEY && printf %s "$ROOT_KEY" | aws secretsmanager put-secret-value \
#     --secret-id "$(terraform output -raw root_key_secret_arn)" --secret-string file:///dev/stdin
resource "aws_secretsmanager_secret" "root_key" {
  name                    = "${var.name_prefix}-root-key"
  description             = "The Unkey root key the rotation function uses"
  kms_key_id              = aws_kms_key.secrets.arn
  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

module "rotation_lambda" {
  source = "../../modules/rotation-lambda"

  function_name = "${var.name_prefix}-secrets-rotation"
  package_path  = var.package_path
  runtime       = var.runtime

  secret_names        = values(local.secret_names)
  root_key_secret_arn = aws_secretsmanager_secret.root_key.arn
  kms_key_arns        = [aws_kms_key.secrets.arn]

  unkey_base_url       = var.unkey_base_url
  grace_period_seconds = 86400
  key_prefix           = "live"

  log_retention_in_days = 30
  tags                  = var.tags
}

module "keys" {
  source   = "../../modules/rotated-key"
  for_each = var.keys

  name                = local.secret_names[each.key]
  api_id              = each.value.api_id
  rotation_lambda_arn = module.rotation_lambda.rotation_lambda_arn
  kms_key_id          = aws_kms_key.secrets.arn

  rotation_rules = {
    automatically_after_days = each.value.automatically_after_days
    schedule_expression      = each.value.schedule_expression
  }

  recovery_window_in_days = var.recovery_window_in_days
  tags                    = var.tags
}

# Alerts: a failed rotation of any of these secrets reaches the topic (and, with alert_email,
# an inbox) before a reader meets an expired key; the function's errors, throttles and slow
# steps raise alarms there too, and so does a key older than its schedule plus two days.
module "alerts" {
  source = "../../modules/rotation-alerts"
  count  = var.alerts_enabled ? 1 : 0

  name_prefix              = var.name_prefix
  function_name            = module.rotation_lambda.function_name
  function_timeout_seconds = module.rotation_lambda.timeout

  secrets = {
    for name, key in module.keys : name => {
      arn                       = key.secret_arn
      rotation_interval_seconds = key.rotation_interval_seconds
    }
  }

  tags = var.tags
}

resource "aws_sns_topic_subscription" "alert_email" {
  count = var.alerts_enabled && var.alert_email != null ? 1 : 0

  topic_arn = module.alerts[0].sns_topic_arn
  protocol  = "email"
  endpoint  = var.alert_email
}
