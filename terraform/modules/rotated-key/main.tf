# One secret for one Unkey key, and its rotation. There is deliberately no
# aws_secretsmanager_secret_version here: a value written by Terraform would sit in its state.
# The first rotation creates the first key (the handler's bootstrap), and every later one
# rerolls it, all inside the rotation function.

locals {
  # The schedule as seconds between rotations, for alerting on a late one: Secrets Manager's
  # rate() takes hours or days; a cron() schedule has no fixed interval (null).
  rate = try(regex("^rate\\(([0-9]+) (hours?|days?)\\)$", var.rotation_rules.schedule_expression), null)
  rotation_interval_seconds = (
    var.rotation_rules.automatically_after_days != null ? var.rotation_rules.automatically_after_days * 86400 :
    local.rate == null ? null :
    tonumber(local.rate[0]) * (startswith(local.rate[1], "day") ? 86400 : 3600)
  )
}

resource "aws_secretsmanager_secret" "this" {
  name                           = var.name
  description                    = var.description
  kms_key_id                     = var.kms_key_id
  recovery_window_in_days        = var.recovery_window_in_days
  force_overwrite_replica_secret = var.force_overwrite_replica_secret

  dynamic "replica" {
    for_each = var.replicas

    content {
      region     = replica.value.region
      kms_key_id = replica.value.kms_key_id
    }
  }

  tags = merge(var.tags, {
    "managed-by"   = "unkey-secrets"
    "unkey-api-id" = var.api_id
  })
}

resource "aws_secretsmanager_secret_policy" "this" {
  count = var.policy == null ? 0 : 1

  secret_arn          = aws_secretsmanager_secret.this.arn
  policy              = var.policy
  block_public_policy = var.block_public_policy
}

resource "aws_secretsmanager_secret_rotation" "this" {
  secret_id           = aws_secretsmanager_secret.this.id
  rotation_lambda_arn = var.rotation_lambda_arn
  rotate_immediately  = var.rotate_immediately

  rotation_rules {
    automatically_after_days = var.rotation_rules.automatically_after_days
    schedule_expression      = var.rotation_rules.schedule_expression
    duration                 = var.rotation_rules.duration
  }

  # A resource policy that lets readers in is in place before the first key exists.
  depends_on = [aws_secretsmanager_secret_policy.this]
}
