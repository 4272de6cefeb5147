data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id

  # Known before the function and the secrets exist, so the role's policy can name them without
  # a cycle. AWS makes a secret's ARN from its name, a hyphen and six random characters.
  function_arn = "arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${var.function_name}"
  secret_arns  = [for name in sort(distinct(var.secret_names)) : "arn:${local.partition}:secretsmanager:${local.region}:${local.account_id}:secret:${name}-??????"]
  handler      = "unkey_secrets.aws_lambda.handler"

  # The runtime `make lambda-zip` built the package for, which it records beside it
  # (<package>.runtime): the default runtime, and what a runtime given must match.
  runtime_file     = "${var.package_path}.runtime"
  recorded_runtime = fileexists(local.runtime_file) ? trimspace(file(local.runtime_file)) : null
  runtime          = var.runtime != null ? var.runtime : local.recorded_runtime

  # The documented UNKEY_* variables (docs/reference/environment.md); unset ones are left out, so the
  # handler's own defaults apply. The root key is named by its secret's ARN, never passed.
  unkey_environment = {
    for name, value in {
      UNKEY_ROOT_KEY_SECRET_ID    = var.root_key_secret_arn
      UNKEY_BASE_URL              = var.unkey_base_url
      UNKEY_TIMEOUT               = tostring(var.unkey_timeout_seconds)
      UNKEY_GRACE_PERIOD_SECONDS  = tostring(var.grace_period_seconds)
      UNKEY_ROTATION_HOLD_SECONDS = var.rotation_hold_seconds == null ? null : tostring(max(var.rotation_hold_seconds, var.grace_period_seconds))
      UNKEY_API_ID                = var.api_id
      UNKEY_VERIFY_PERMISSIONS    = var.verify_permissions
      UNKEY_KEY_PREFIX            = var.key_prefix
      UNKEY_KEY_NAME              = var.key_name
      UNKEY_EXTERNAL_ID           = var.external_id
    } : name => value if value != null
  }
}

################################################################################
# Permissions: exactly what the handler calls, on exactly these resources
################################################################################

data "aws_iam_policy_document" "assume_role" {
  statement {
    sid     = "LambdaAssumesThisRole"
    effect  = "Allow"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "this" {
  # The rotation steps, on the managed secrets only, and only while a secret's rotation names
  # this function (as policies/aws-rotation-lambda.json does).
  statement {
    sid    = "RotateTheManagedSecrets"
    effect = "Allow"
    actions = [
      "secretsmanager:DescribeSecret",
      "secretsmanager:GetSecretValue",
      "secretsmanager:PutSecretValue",
      "secretsmanager:UpdateSecretVersionStage",
    ]
    resources = local.secret_arns

    condition {
      test     = "StringEquals"
      variable = "secretsmanager:resource/AllowRotationLambdaArn"
      values   = [local.function_arn]
    }
  }

  statement {
    sid       = "ReadTheUnkeyRootKey"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.root_key_secret_arn]
  }

  dynamic "statement" {
    for_each = length(var.kms_key_arns) > 0 ? [1] : []

    content {
      sid       = "UseTheSecretsKmsKeysThroughSecretsManager"
      effect    = "Allow"
      actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
      resources = var.kms_key_arns

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = ["secretsmanager.${local.region}.amazonaws.com"]
      }
    }
  }

  # The log group exists (below), so the function needs no logs:CreateLogGroup.
  statement {
    sid       = "WriteItsOwnLogs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  # What Lambda needs to attach the function to the VPC (AWSLambdaVPCAccessExecutionRole's
  # network actions, which take no resource-level restriction).
  dynamic "statement" {
    for_each = var.vpc_config == null ? [] : [1]

    content {
      sid    = "AttachToTheVpc"
      effect = "Allow"
      actions = [
        "ec2:AssignPrivateIpAddresses",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:UnassignPrivateIpAddresses",
      ]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = var.function_name
  path                 = var.role_path
  description          = "Role of the unkey-secrets rotation function ${var.function_name}"
  assume_role_policy   = data.aws_iam_policy_document.assume_role.json
  permissions_boundary = var.role_permissions_boundary
  tags                 = var.tags
}

resource "aws_iam_role_policy" "this" {
  name   = "rotate-unkey-keys"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

################################################################################
# Logs
################################################################################

resource "aws_cloudwatch_log_group" "this" {
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.log_retention_in_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

################################################################################
# The function, and Secrets Manager's permission to invoke it
################################################################################

resource "aws_lambda_function" "this" {
  function_name                  = var.function_name
  description                    = var.description
  role                           = aws_iam_role.this.arn
  handler                        = local.handler
  runtime                        = local.runtime
  architectures                  = var.architectures
  filename                       = var.package_path
  source_code_hash               = filebase64sha256(var.package_path)
  memory_size                    = var.memory_size
  timeout                        = var.timeout
  reserved_concurrent_executions = var.reserved_concurrent_executions

  environment {
    variables = merge(var.environment_variables, local.unkey_environment)
  }

  dynamic "vpc_config" {
    for_each = var.vpc_config == null ? [] : [var.vpc_config]

    content {
      subnet_ids         = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  tags = var.tags

  # The role may do its work, and the log group has its retention, before the first call.
  depends_on = [aws_iam_role_policy.this, aws_cloudwatch_log_group.this]

  lifecycle {
    precondition {
      condition     = local.runtime != null
      error_message = "runtime: none given, and no ${local.runtime_file} beside the package (make lambda-zip writes it): pass the Lambda runtime of the Python that built the package, such as python3.12."
    }

    # The package's .pyc files serve that Python only, and its dependencies were chosen by that
    # Python's environment markers.
    precondition {
      condition     = local.recorded_runtime == null || local.runtime == local.recorded_runtime
      error_message = "runtime ${coalesce(local.runtime, "-")} is not the one the package was built for (${coalesce(local.recorded_runtime, "-")}, in ${local.runtime_file}): run make lambda-zip with the Python of the runtime you deploy, or drop runtime to deploy the one it was built for."
    }
  }
}

# Without this, Secrets Manager cannot invoke the function and the first rotation fails.
# Scoped to this account: no other account's secret can make Secrets Manager call it.
resource "aws_lambda_permission" "secretsmanager" {
  statement_id   = "AllowSecretsManagerToInvoke"
  action         = "lambda:InvokeFunction"
  function_name  = aws_lambda_function.this.function_name
  principal      = "secretsmanager.amazonaws.com"
  source_account = local.account_id
}
