variable "policies_dir" {
  description = "Folder holding vault-writer.hcl and vault-reader.hcl; null for this repository's policies/ (the files its OpenBao tests prove)."
  type        = string
  default     = null
}

variable "writer_policy_name" {
  description = "Name of the writer policy: stores keys, moves aliases and rotates; cannot read a stored key back."
  type        = string
  default     = "unkey-secrets-writer"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,128}$", var.writer_policy_name))
    error_message = "writer_policy_name must be 1-128 letters, digits, '_', '.' or '-'."
  }
}

variable "reader_policy_name" {
  description = "Name of the reader policy: reads keys and aliases."
  type        = string
  default     = "unkey-secrets-reader"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,128}$", var.reader_policy_name))
    error_message = "reader_policy_name must be 1-128 letters, digits, '_', '.' or '-'."
  }
}

variable "approle" {
  description = "AppRole roles for a writer and a reader (e.g. CI and a service), on an AppRole auth backend already mounted at `backend`. Null for none. Secret IDs are never made here (they would sit in state): issue them with `vault write -wrap-ttl=... -f auth/<backend>/role/<name>/secret-id`."
  type = object({
    backend               = optional(string, "approle")
    writer_role_name      = optional(string, "unkey-secrets-writer")
    reader_role_name      = optional(string, "unkey-secrets-reader")
    token_ttl             = optional(number, 900)
    token_max_ttl         = optional(number, 3600)
    secret_id_ttl         = optional(number, 86400)
    secret_id_num_uses    = optional(number, 1)
    token_bound_cidrs     = optional(list(string), [])
    secret_id_bound_cidrs = optional(list(string), [])
  })
  default = null

  validation {
    condition     = var.approle == null || try(var.approle.token_ttl > 0 && var.approle.token_max_ttl >= var.approle.token_ttl && var.approle.secret_id_ttl >= 0 && var.approle.secret_id_num_uses >= 0, false)
    error_message = "approle needs token_ttl > 0, token_max_ttl >= token_ttl, and secret_id_ttl and secret_id_num_uses >= 0."
  }
}

variable "kubernetes" {
  description = "Kubernetes auth roles for a writer and a reader, bound to service accounts, on a Kubernetes auth backend already mounted at `backend`. Leave writer or reader null to skip that role; null for none."
  type = object({
    backend   = optional(string, "kubernetes")
    token_ttl = optional(number, 900)
    audience  = optional(string)
    writer = optional(object({
      role_name        = optional(string, "unkey-secrets-writer")
      service_accounts = list(string)
      namespaces       = list(string)
    }))
    reader = optional(object({
      role_name        = optional(string, "unkey-secrets-reader")
      service_accounts = list(string)
      namespaces       = list(string)
    }))
  })
  default = null

  validation {
    condition = var.kubernetes == null || alltrue([
      for role in [try(var.kubernetes.writer, null), try(var.kubernetes.reader, null)] :
      role == null || try(length(role.service_accounts) > 0 && length(role.namespaces) > 0 && !contains(role.service_accounts, "*") && !contains(role.namespaces, "*"), false)
    ])
    error_message = "Each kubernetes role needs named service accounts and namespaces (no \"*\")."
  }
}
