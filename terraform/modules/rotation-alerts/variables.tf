################################################################################
# What is watched
################################################################################

variable "name_prefix" {
  description = "Prefix of every name the module makes: the topic <prefix>-rotation-alerts, the rules <prefix>-rotation-failed and <prefix>-rotation-succeeded, the alarms <prefix>-rotation-errors (-throttles, -duration) and <prefix>-key-age-<key>, the dashboard <prefix>-rotation."
  type        = string
  default     = "unkey-secrets"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name_prefix))
    error_message = "name_prefix must be 1-40 letters, digits, hyphens or underscores (EventBridge rule names take 64 characters)."
  }
}

variable "function_name" {
  description = "Name of the rotation function (rotation-lambda's function_name output): the dimension of the Errors, Throttles and Duration alarms."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be a Lambda function name: 1-64 letters, digits, hyphens or underscores."
  }
}

variable "function_timeout_seconds" {
  description = "The function's timeout in seconds (rotation-lambda's timeout output): the Duration alarm fires at duration_alarm_threshold_percent of it."
  type        = number

  validation {
    condition     = var.function_timeout_seconds >= 1 && var.function_timeout_seconds <= 900 && floor(var.function_timeout_seconds) == var.function_timeout_seconds
    error_message = "function_timeout_seconds must be a whole number of seconds between 1 and 900."
  }
}

variable "secrets" {
  description = "The rotated secrets, key name => { arn, rotation_interval_seconds, max_key_age_seconds }: arn is the secret's full ARN (rotated-key's secret_arn output), which the rules match exactly; rotation_interval_seconds is its schedule (rotated-key's rotation_interval_seconds output; null for a cron schedule); max_key_age_seconds overrides the key-age alarm's threshold (default: rotation_interval_seconds + key_age_margin_seconds). Names are the map's keys so the plan knows them before the secrets exist."
  type = map(object({
    arn                       = string
    rotation_interval_seconds = optional(number)
    max_key_age_seconds       = optional(number)
  }))

  validation {
    condition     = length(var.secrets) > 0 && alltrue([for name in keys(var.secrets) : can(regex("^[A-Za-z0-9_-]{1,40}$", name))])
    error_message = "secrets must name at least one secret, each key 1-40 letters, digits, hyphens or underscores (it names the key-age alarm)."
  }

  validation {
    condition     = alltrue([for secret in values(var.secrets) : can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$", secret.arn))])
    error_message = "each secrets[*].arn must be a full Secrets Manager secret ARN (ending in the hyphen and six characters AWS adds): the rules match it exactly."
  }

  validation {
    condition     = alltrue([for secret in values(var.secrets) : secret.rotation_interval_seconds == null || try(secret.rotation_interval_seconds >= 3600, false)])
    error_message = "each secrets[*].rotation_interval_seconds must be at least 3600 (Secrets Manager rotates at most every 4 hours) or null."
  }

  validation {
    condition     = alltrue([for secret in values(var.secrets) : secret.max_key_age_seconds == null || try(secret.max_key_age_seconds >= 3600 && floor(secret.max_key_age_seconds) == secret.max_key_age_seconds, false)])
    error_message = "each secrets[*].max_key_age_seconds must be a whole number of seconds, at least 3600, or null."
  }
}

variable "tags" {
  description = "Tags for every resource of the module that takes them."
  type        = map(string)
  default     = {}
}

################################################################################
# Where alerts go
################################################################################

variable "create_sns_topic" {
  description = "Make the topic <prefix>-rotation-alerts, with a policy letting this module's rules and alarms publish (only when something publishes: a failure rule, success_events_to_sns or an alarm). false to use sns_topic_arn."
  type        = bool
  default     = true
}

variable "sns_topic_arn" {
  description = "With create_sns_topic = false, the SNS topic to send the failure events and the alarms to. It keeps its own policy: add the statements of the topic_policy_json output to it."
  type        = string
  default     = null

  validation {
    condition     = var.sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$", coalesce(var.sns_topic_arn, "-")))
    error_message = "sns_topic_arn must be an SNS topic ARN."
  }
}

variable "sns_kms_master_key_id" {
  description = "KMS key (id, ARN or alias) to encrypt the topic the module makes; its key policy must let events.amazonaws.com and cloudwatch.amazonaws.com use it (kms:GenerateDataKey*, kms:Decrypt). null for none: the AWS managed alias/aws/sns key cannot be used, since its policy admits neither."
  type        = string
  default     = null
}

variable "ok_actions_enabled" {
  description = "Also notify the topic when an alarm returns to OK."
  type        = bool
  default     = true
}

################################################################################
# EventBridge rules on Secrets Manager's rotation events
################################################################################

variable "failure_events_enabled" {
  description = "Make the rule <prefix>-rotation-failed: Secrets Manager's failure events (failure_event_names) for these secrets only, sent to the topic (and to the event log)."
  type        = bool
  default     = true
}

variable "failure_event_names" {
  description = "The eventName values of Secrets Manager's rotation events (detail-type \"AWS Service Event via CloudTrail\") that count as a failure. RotationAbandoned means a value was written by hand while a rotation was pending (the rotation's key was dropped); TestRotationFailed a RotateSecret without RotateImmediately whose testSecret failed."
  type        = list(string)
  default     = ["RotationFailed", "RotationAbandoned", "TestRotationFailed"]

  validation {
    condition     = length(var.failure_event_names) > 0 && alltrue([for name in var.failure_event_names : contains(["RotationFailed", "RotationAbandoned", "TestRotationFailed"], name)])
    error_message = "failure_event_names must be a non-empty list of RotationFailed, RotationAbandoned and TestRotationFailed."
  }
}

variable "success_events_enabled" {
  description = "Make the rule <prefix>-rotation-succeeded: RotationSucceeded for these secrets, sent to the event log (dashboards) and, with success_events_to_sns, to the topic."
  type        = bool
  default     = true
}

variable "success_events_to_sns" {
  description = "Send the success events to the topic too (a message per rotation)."
  type        = bool
  default     = false
}

variable "event_log_enabled" {
  description = "Keep the matched events in the log group /aws/events/<prefix>-rotations (with a CloudWatch Logs resource policy letting EventBridge write there): the history the dashboard's table reads."
  type        = bool
  default     = true
}

variable "event_log_retention_in_days" {
  description = "Retention of the event log, in days (0 keeps events forever)."
  type        = number
  default     = 90

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.event_log_retention_in_days)
    error_message = "event_log_retention_in_days must be one of the values CloudWatch Logs accepts (0, 1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

variable "secrets_per_rule" {
  description = "At most this many secret ARNs in one rule's pattern; more secrets make more rules (<prefix>-rotation-failed-2, ...). EventBridge takes patterns of 2048 characters unless its quota was raised: a plan that would pass event_pattern_max_length stops with the rule's name."
  type        = number
  default     = 10

  validation {
    condition     = var.secrets_per_rule >= 1 && var.secrets_per_rule <= 100 && floor(var.secrets_per_rule) == var.secrets_per_rule
    error_message = "secrets_per_rule must be a whole number between 1 and 100."
  }
}

variable "event_pattern_max_length" {
  description = "The longest event pattern EventBridge takes in this account, in characters: 2048 by default, up to 4096 with a quota increase."
  type        = number
  default     = 2048

  validation {
    condition     = var.event_pattern_max_length >= 2048 && var.event_pattern_max_length <= 4096 && floor(var.event_pattern_max_length) == var.event_pattern_max_length
    error_message = "event_pattern_max_length must be a whole number between 2048 and 4096."
  }
}

################################################################################
# CloudWatch alarms on the function
################################################################################

variable "errors_alarm_enabled" {
  description = "Alarm <prefix>-rotation-errors: the function's Errors (Sum) reach errors_alarm_threshold in a period. A failing step fails the rotation; Secrets Manager retries it."
  type        = bool
  default     = true
}

variable "errors_alarm_threshold" {
  description = "Errors (Sum per period) that raise the errors alarm."
  type        = number
  default     = 1

  validation {
    condition     = var.errors_alarm_threshold >= 1 && floor(var.errors_alarm_threshold) == var.errors_alarm_threshold
    error_message = "errors_alarm_threshold must be a whole number, at least 1."
  }
}

variable "throttles_alarm_enabled" {
  description = "Alarm <prefix>-rotation-throttles: the function's Throttles (Sum) reach throttles_alarm_threshold in a period (reserved concurrency too low, or the account's limit)."
  type        = bool
  default     = true
}

variable "throttles_alarm_threshold" {
  description = "Throttles (Sum per period) that raise the throttles alarm."
  type        = number
  default     = 1

  validation {
    condition     = var.throttles_alarm_threshold >= 1 && floor(var.throttles_alarm_threshold) == var.throttles_alarm_threshold
    error_message = "throttles_alarm_threshold must be a whole number, at least 1."
  }
}

variable "duration_alarm_enabled" {
  description = "Alarm <prefix>-rotation-duration: the function's longest Duration in a period passes duration_alarm_threshold_percent of its timeout (Unkey slow, or a step near being killed)."
  type        = bool
  default     = true
}

variable "duration_alarm_threshold_percent" {
  description = "Percent of the function's timeout that the Duration (Maximum, milliseconds) must pass to raise the duration alarm."
  type        = number
  default     = 80

  validation {
    condition     = var.duration_alarm_threshold_percent >= 10 && var.duration_alarm_threshold_percent <= 100
    error_message = "duration_alarm_threshold_percent must be between 10 and 100."
  }
}

variable "alarm_period_seconds" {
  description = "Period of the function's alarms, in seconds."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_period_seconds >= 60 && var.alarm_period_seconds <= 86400 && var.alarm_period_seconds % 60 == 0
    error_message = "alarm_period_seconds must be a multiple of 60 between 60 and 86400."
  }
}

variable "alarm_evaluation_periods" {
  description = "Periods the function's alarms look at; one breaching period raises them. Period times periods must stay within a day for periods under an hour (CloudWatch's limit)."
  type        = number
  default     = 1

  validation {
    condition     = var.alarm_evaluation_periods >= 1 && floor(var.alarm_evaluation_periods) == var.alarm_evaluation_periods
    error_message = "alarm_evaluation_periods must be a whole number, at least 1."
  }
}

################################################################################
# The key-age ("rotation overdue") alarms
################################################################################

variable "key_age_alarm_enabled" {
  description = "Alarm <prefix>-key-age-<key> per secret on UnkeySecrets/CurrentKeyAgeSeconds (dimension SecretId = the secret's ARN), which the function publishes at testSecret and finishSecret: the Maximum in a period passes the secret's max age."
  type        = bool
  default     = true
}

variable "key_age_margin_seconds" {
  description = "Added to each secret's rotation_interval_seconds to make its max key age. A scheduled rotation lands anywhere in its day (or its duration window), so a healthy key reaches up to a day past its interval: the default of two days raises the alarm only for a rotation more than a day late."
  type        = number
  default     = 172800

  validation {
    condition     = var.key_age_margin_seconds >= 0 && floor(var.key_age_margin_seconds) == var.key_age_margin_seconds
    error_message = "key_age_margin_seconds must be a whole number of seconds, 0 or more."
  }
}

variable "key_age_alarm_period_seconds" {
  description = "Period of the key-age alarms, in seconds: how long an alarm raised by one late data point stays in ALARM."
  type        = number
  default     = 3600

  validation {
    condition     = var.key_age_alarm_period_seconds >= 60 && var.key_age_alarm_period_seconds <= 86400 && var.key_age_alarm_period_seconds % 60 == 0
    error_message = "key_age_alarm_period_seconds must be a multiple of 60 between 60 and 86400."
  }
}

variable "key_age_treat_missing_data" {
  description = "What a key-age alarm makes of a period with no data point. notBreaching (the default): the function publishes the age only when it runs, so most periods have none; breaching suits only schedules shorter than the alarm's window (a day): then a period with no rotation raises it."
  type        = string
  default     = "notBreaching"

  validation {
    condition     = contains(["notBreaching", "breaching", "ignore", "missing"], var.key_age_treat_missing_data)
    error_message = "key_age_treat_missing_data must be notBreaching, breaching, ignore or missing."
  }
}

################################################################################
# Dashboard
################################################################################

variable "dashboard_enabled" {
  description = "Make the CloudWatch dashboard <prefix>-rotation: rotations succeeded and failed (the rules' TriggeredRules), the function's invocations, errors, throttles and duration against its timeout, each key's age against its threshold, its failed steps and swept keys (UnkeySecrets), and the latest rotation events from the event log."
  type        = bool
  default     = true
}
