################################################################################
# The function
################################################################################

variable "function_name" {
  description = "Name of the rotation function (also names its role and its log group /aws/lambda/<name>)."
  type        = string
  default     = "unkey-secrets-rotation"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be 1-64 letters, digits, hyphens or underscores."
  }
}

variable "description" {
  description = "Description of the function."
  type        = string
  default     = "Rotates Unkey API keys stored in Secrets Manager (unkey-secrets)"
}

variable "package_path" {
  description = "Path to the deployment package built by `make lambda-zip` (build/lambda.zip)."
  type        = string

  validation {
    condition     = endswith(var.package_path, ".zip")
    error_message = "package_path must name the .zip that `make lambda-zip` builds."
  }
}

variable "runtime" {
  description = "Lambda runtime: the Python that built the package, e.g. python3.12. Null (the default) takes the one `make lambda-zip` recorded beside the package (<package_path>.runtime); a runtime given must match that record, or plan fails: the package's .pyc files serve that Python only (another runtime compiles every module on each cold start) and its dependencies were chosen by that Python's environment markers."
  type        = string
  default     = null

  validation {
    condition     = var.runtime == null || can(regex("^python3\\.[0-9]+$", coalesce(var.runtime, "-")))
    error_message = "runtime must be a Python runtime such as python3.12."
  }
}

variable "architectures" {
  description = "Instruction set of the function: [\"x86_64\"] or [\"arm64\"] (the package is pure Python)."
  type        = list(string)
  default     = ["x86_64"]

  validation {
    condition     = length(var.architectures) == 1 && contains(["x86_64", "arm64"], var.architectures[0])
    error_message = "architectures must be [\"x86_64\"] or [\"arm64\"]."
  }
}

variable "memory_size" {
  description = "Memory of the function in MB."
  type        = number
  default     = 256

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240
    error_message = "memory_size must be between 128 and 10240 MB."
  }
}

variable "timeout" {
  description = "Seconds one rotation step may run. A step makes at most a few Unkey calls of unkey_timeout_seconds each."
  type        = number
  default     = 60

  validation {
    condition     = var.timeout >= 10 && var.timeout <= 900
    error_message = "timeout must be between 10 and 900 seconds."
  }
}

variable "reserved_concurrent_executions" {
  description = "Reserved concurrency of the function; -1 for none (the default), 0 to stop it from running."
  type        = number
  default     = -1

  validation {
    condition     = var.reserved_concurrent_executions >= -1 && floor(var.reserved_concurrent_executions) == var.reserved_concurrent_executions
    error_message = "reserved_concurrent_executions must be a whole number, -1 or more."
  }
}

variable "vpc_config" {
  description = "Run the function in a VPC: subnet and security group ids. The subnets need a route to Secrets Manager (a VPC endpoint or NAT) and to Unkey (NAT). Adds the network-interface permissions Lambda needs there."
  type = object({
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  default = null

  validation {
    condition     = var.vpc_config == null || (length(try(var.vpc_config.subnet_ids, [])) > 0 && length(try(var.vpc_config.security_group_ids, [])) > 0)
    error_message = "vpc_config needs at least one subnet id and one security group id."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the function's log group, in days (0 keeps logs forever)."
  type        = number
  default     = 30

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of the values CloudWatch Logs accepts (0, 1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key ARN to encrypt the log group with (its key policy must let CloudWatch Logs use it); null for the default encryption."
  type        = string
  default     = null
}

variable "role_path" {
  description = "Path of the function's IAM role."
  type        = string
  default     = "/"

  validation {
    condition     = can(regex("^/([\\x21-\\x7E]*/)?$", var.role_path))
    error_message = "role_path must start and end with /."
  }
}

variable "role_permissions_boundary" {
  description = "ARN of a permissions boundary for the function's IAM role."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags for every resource of the module."
  type        = map(string)
  default     = {}
}

################################################################################
# What it may touch
################################################################################

variable "secret_names" {
  description = "Names of the secrets this function rotates, in this account and region (the `secret_name` outputs of rotated-key, or the names you give it). It may read and write exactly these (arn:...:secret:<name>-??????, the ARN AWS gives each), and only while their rotation names this function. Names, not ARNs, so one plan can create the secrets and the function that rotates them."
  type        = list(string)

  validation {
    condition     = length(var.secret_names) > 0 && alltrue([for name in var.secret_names : can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", name))])
    error_message = "secret_names must be a non-empty list of secret names (1-512 letters, digits or /_+=.@-)."
  }
}

variable "root_key_secret_arn" {
  description = "ARN of the secret holding the Unkey root key (the string, or {\"root_key\": \"...\"}). The function gets GetSecretValue on it and its ARN in UNKEY_ROOT_KEY_SECRET_ID; the key itself never passes through Terraform."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.root_key_secret_arn))
    error_message = "root_key_secret_arn must be a Secrets Manager secret ARN (the root key is never an input)."
  }

  # The ARN goes into the policy's Resource as it is: `secret:*` would grant GetSecretValue on
  # every secret of the account.
  validation {
    condition     = !can(regex("[*?]", var.root_key_secret_arn))
    error_message = "root_key_secret_arn must name one secret: no wildcard (* or ?), which would grant GetSecretValue on other secrets."
  }
}

variable "kms_key_arns" {
  description = "ARNs of the customer managed KMS keys that encrypt the rotated secrets or the root-key secret. The function may use them through Secrets Manager only (kms:Decrypt, kms:GenerateDataKey). Empty for the AWS managed key."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.kms_key_arns : can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", arn))])
    error_message = "kms_key_arns must hold KMS key ARNs (arn:aws:kms:<region>:<account>:key/<id>), not aliases."
  }
}

################################################################################
# The handler's settings (the UNKEY_* environment variables)
################################################################################

variable "unkey_base_url" {
  description = "UNKEY_BASE_URL: where Unkey's API is."
  type        = string
  default     = "https://api.unkey.com"

  validation {
    condition     = can(regex("^https://[^/]+", var.unkey_base_url)) || can(regex("^http://(127\\.0\\.0\\.1|localhost|\\[::1\\])(:[0-9]+)?/?$", var.unkey_base_url))
    error_message = "unkey_base_url must be https:// (plain http only to a loopback host, for tests)."
  }
}

variable "unkey_timeout_seconds" {
  description = "UNKEY_TIMEOUT: seconds per Unkey request."
  type        = number
  default     = 10

  validation {
    condition     = var.unkey_timeout_seconds >= 1 && floor(var.unkey_timeout_seconds) == var.unkey_timeout_seconds
    error_message = "unkey_timeout_seconds must be a whole number of seconds, at least 1."
  }
}

variable "grace_period_seconds" {
  description = "UNKEY_GRACE_PERIOD_SECONDS: how long the rotated-out key stays valid after finishSecret. Longer than your readers' cache (5 min to 1 h)."
  type        = number
  default     = 86400

  validation {
    condition     = var.grace_period_seconds >= 300 && floor(var.grace_period_seconds) == var.grace_period_seconds
    error_message = "grace_period_seconds must be a whole number of seconds, at least 300."
  }
}

variable "rotation_hold_seconds" {
  description = "UNKEY_ROTATION_HOLD_SECONDS: the original key's expiry while a rotation that died mid-way waits for its retry (null: the handler's 30 days). At least grace_period_seconds."
  type        = number
  default     = null

  validation {
    condition     = var.rotation_hold_seconds == null || try(var.rotation_hold_seconds >= 300 && floor(var.rotation_hold_seconds) == var.rotation_hold_seconds, false)
    error_message = "rotation_hold_seconds must be a whole number of seconds, at least 300 (and at least grace_period_seconds)."
  }
}

variable "api_id" {
  description = "UNKEY_API_ID: the only Unkey API whose keys this function rotates. Null to let each secret name its API with its unkey-api-id tag (rotated-key sets it)."
  type        = string
  default     = null

  validation {
    condition     = var.api_id == null || can(regex("^[A-Za-z0-9_]{3,255}$", var.api_id))
    error_message = "api_id must be 3-255 letters, digits or underscores (api_...)."
  }
}

variable "verify_permissions" {
  description = "UNKEY_VERIFY_PERMISSIONS: a permission query the new key must pass in testSecret, e.g. \"billing.read AND billing.write\"."
  type        = string
  default     = null
}

variable "key_prefix" {
  description = "UNKEY_KEY_PREFIX: prefix of a first key (created when a secret has no value yet); rerolls copy the original's."
  type        = string
  default     = null

  validation {
    condition     = var.key_prefix == null || can(regex("^[A-Za-z0-9_]{1,16}$", var.key_prefix))
    error_message = "key_prefix must be 1-16 letters, digits or underscores."
  }
}

variable "key_name" {
  description = "UNKEY_KEY_NAME: name of a first key; rerolls copy the original's."
  type        = string
  default     = null

  validation {
    condition     = var.key_name == null || try(length(var.key_name) >= 1 && length(var.key_name) <= 255, false)
    error_message = "key_name must be 1-255 characters."
  }
}

variable "external_id" {
  description = "UNKEY_EXTERNAL_ID: externalId of a first key; rerolls copy the original's."
  type        = string
  default     = null

  validation {
    condition     = var.external_id == null || can(regex("^[A-Za-z0-9_.-]{1,255}$", var.external_id))
    error_message = "external_id must be 1-255 letters, digits, '_', '.' or '-'."
  }
}

variable "environment_variables" {
  description = "More environment variables for the function (AWS_LAMBDA_LOG_LEVEL, say). UNKEY_* are set by this module's own inputs only: a root key can never be passed as a value."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.environment_variables) : !startswith(upper(name), "UNKEY_")])
    error_message = "environment_variables must not set UNKEY_* variables: use this module's inputs (the root key only ever by secret ARN)."
  }
}
