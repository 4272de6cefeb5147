variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"
}

variable "name_prefix" {
  description = "Prefix of the names that are not a key's: the root key's secret <prefix>-root-key, the function <prefix>-secrets-rotation, the alerts <prefix>-..."
  type        = string
  default     = "unkey"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits, hyphens or underscores."
  }
}

variable "alias_template" {
  description = "Name of each key's secret: {api_id} and {alias} (the key's name in keys) filled in. The default is the readers' default alias template, so KeyReader and the settings sources read the key by its alias with no setting; with another, give readers the same as UNKEY_SECRETS_AWS_ALIAS_TEMPLATE."
  type        = string
  default     = "unkey/{api_id}/by-name/{alias}"

  validation {
    condition     = strcontains(var.alias_template, "{api_id}") && strcontains(var.alias_template, "{alias}")
    error_message = "alias_template must hold {api_id} and {alias}, as the readers' UNKEY_SECRETS_AWS_ALIAS_TEMPLATE does."
  }
}

variable "package_path" {
  description = "The package `make lambda-zip` built."
  type        = string
  default     = "../../../build/lambda.zip"
}

variable "runtime" {
  description = "Lambda runtime of the Python that ran `make lambda-zip` (python 3.11 -> python3.11); null (the default) takes the one it recorded beside the package. A runtime that differs from that record fails at plan (see the module's runtime input)."
  type        = string
  default     = null

  validation {
    condition     = var.runtime == null || can(regex("^python3\\.[0-9]+$", coalesce(var.runtime, "-")))
    error_message = "runtime must be the Lambda runtime of the Python that ran `make lambda-zip`, such as python3.12."
  }
}

variable "unkey_base_url" {
  description = "Where Unkey's API is."
  type        = string
  default     = "https://api.unkey.com"
}

variable "keys" {
  description = "The keys to manage: name => Unkey API id and rotation schedule."
  type = map(object({
    api_id                   = string
    automatically_after_days = optional(number)
    schedule_expression      = optional(string)
  }))
  default = {
    billing = { api_id = "api_billing", automatically_after_days = 30 }
    search  = { api_id = "api_search", schedule_expression = "rate(10 days)" }
  }
}

variable "recovery_window_in_days" {
  description = "Days a deleted secret can be restored (0 deletes at once)."
  type        = number
  default     = 7
}

variable "tags" {
  description = "Tags for everything."
  type        = map(string)
  default     = { project = "unkey-secrets-example" }
}

variable "alerts_enabled" {
  description = "Add the rotation-alerts module: failure events to an SNS topic, alarms on the function and on each key's age, an event log and a dashboard."
  type        = bool
  default     = true
}

variable "alert_email" {
  description = "An address to subscribe to the alerts topic (SNS e-mails a confirmation link first); null for none."
  type        = string
  default     = null

  validation {
    condition     = var.alert_email == null || can(regex("^[^@\\s]+@[^@\\s]+$", coalesce(var.alert_email, "-")))
    error_message = "alert_email must be an e-mail address."
  }
}
