variable "name" {
  description = "Name of the secret: the alias readers read, unkey/<api_id>/by-name/<alias> under their default alias template (e.g. unkey/api_123/by-name/billing; another naming needs UNKEY_SECRETS_AWS_ALIAS_TEMPLATE on the readers). Readers load the current key from it (AWSCURRENT)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9/_+=.@-]{1,512}$", var.name)) && !can(regex("-[A-Za-z0-9]{6}$", var.name))
    error_message = "name must be 1-512 letters, digits or /_+=.@- and must not end in a hyphen and six characters (that makes partial ARNs ambiguous)."
  }
}

variable "description" {
  description = "Description of the secret."
  type        = string
  default     = "An Unkey API key, rotated by unkey-secrets"
}

variable "api_id" {
  description = "The Unkey API the key belongs to. Tagged unkey-api-id on the secret: the rotation function creates the first key there, and refuses a key of another API."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{3,255}$", var.api_id))
    error_message = "api_id must be 3-255 letters, digits or underscores (api_...)."
  }
}

variable "rotation_lambda_arn" {
  description = "ARN of the rotation function (rotation-lambda's rotation_lambda_arn output)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9$_-]+)?$", var.rotation_lambda_arn))
    error_message = "rotation_lambda_arn must be a Lambda function ARN."
  }
}

variable "rotation_rules" {
  description = "When to rotate: automatically_after_days (1-1000) or a schedule_expression (rate(...) or cron(...)), not both; duration is the rotation window (e.g. \"3h\")."
  type = object({
    automatically_after_days = optional(number)
    schedule_expression      = optional(string)
    duration                 = optional(string)
  })
  default = { automatically_after_days = 30 }

  validation {
    condition     = (var.rotation_rules.automatically_after_days == null) != (var.rotation_rules.schedule_expression == null)
    error_message = "rotation_rules needs exactly one of automatically_after_days and schedule_expression."
  }

  validation {
    condition     = var.rotation_rules.automatically_after_days == null || try(var.rotation_rules.automatically_after_days >= 1 && var.rotation_rules.automatically_after_days <= 1000, false)
    error_message = "rotation_rules.automatically_after_days must be between 1 and 1000."
  }

  validation {
    condition     = var.rotation_rules.schedule_expression == null || can(regex("^(rate|cron)\\(.+\\)$", coalesce(var.rotation_rules.schedule_expression, "-")))
    error_message = "rotation_rules.schedule_expression must be rate(...) or cron(...)."
  }

  validation {
    condition     = var.rotation_rules.duration == null || can(regex("^[0-9]+h$", coalesce(var.rotation_rules.duration, "-")))
    error_message = "rotation_rules.duration must be whole hours, such as \"3h\"."
  }
}

variable "rotate_immediately" {
  description = "Rotate when the rotation is set up (true) or wait for the schedule (false). The secret has no value until its first rotation creates the first key, so keep true unless its readers can wait."
  type        = bool
  default     = true
}

variable "kms_key_id" {
  description = "ARN of the customer managed KMS key that encrypts the secret (pass it to rotation-lambda's kms_key_arns too); null for the AWS managed key."
  type        = string
  default     = null
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can be restored: 0 (delete at once) or 7-30."
  type        = number
  default     = 30

  validation {
    condition     = var.recovery_window_in_days == 0 || (var.recovery_window_in_days >= 7 && var.recovery_window_in_days <= 30)
    error_message = "recovery_window_in_days must be 0 or between 7 and 30."
  }
}

variable "replicas" {
  description = "Regions to replicate the secret to, each with an optional KMS key there. Rotation writes the primary; Secrets Manager copies every version."
  type = list(object({
    region     = string
    kms_key_id = optional(string)
  }))
  default = []

  validation {
    condition     = length(distinct([for replica in var.replicas : replica.region])) == length(var.replicas)
    error_message = "replicas must name each region once."
  }
}

variable "force_overwrite_replica_secret" {
  description = "Overwrite a secret of the same name in a replica region."
  type        = bool
  default     = false
}

variable "policy" {
  description = "Resource policy (JSON) of the secret, e.g. which roles may read it; null for none. It must not deny the rotation function."
  type        = string
  default     = null

  validation {
    condition     = var.policy == null || can(jsondecode(var.policy))
    error_message = "policy must be a JSON policy document."
  }
}

variable "block_public_policy" {
  description = "Refuse a resource policy that would grant access to everyone."
  type        = bool
  default     = true
}

variable "tags" {
  description = "More tags for the secret. managed-by and unkey-api-id are set by the module."
  type        = map(string)
  default     = {}

  validation {
    condition     = !contains(keys(var.tags), "managed-by") && !contains(keys(var.tags), "unkey-api-id")
    error_message = "tags must not set managed-by or unkey-api-id: the module sets them."
  }
}
