# The shipped Vault policies, loaded from the same HCL files the OpenBao tests prove, and the
# optional AppRole and Kubernetes roles that log a writer or a reader in with one of them.
# Nothing here makes a credential: AppRole secret IDs and tokens would sit in Terraform state.

locals {
  policies_dir = coalesce(var.policies_dir, "${path.module}/../../policies")

  k8s_roles = var.kubernetes == null ? {} : {
    for kind, role in {
      writer = try(var.kubernetes.writer, null)
      reader = try(var.kubernetes.reader, null)
    } : kind => role if role != null
  }
  policy_of = {
    writer = vault_policy.writer.name
    reader = vault_policy.reader.name
  }
}

resource "vault_policy" "writer" {
  name   = var.writer_policy_name
  policy = file("${local.policies_dir}/vault-writer.hcl")
}

resource "vault_policy" "reader" {
  name   = var.reader_policy_name
  policy = file("${local.policies_dir}/vault-reader.hcl")
}

################################################################################
# AppRole (the backend is yours; the roles are ours)
################################################################################

resource "vault_approle_auth_backend_role" "this" {
  for_each = var.approle == null ? {} : {
    writer = var.approle.writer_role_name
    reader = var.approle.reader_role_name
  }

  backend               = var.approle.backend
  role_name             = each.value
  token_policies        = [local.policy_of[each.key]]
  token_ttl             = var.approle.token_ttl
  token_max_ttl         = var.approle.token_max_ttl
  token_bound_cidrs     = var.approle.token_bound_cidrs
  secret_id_ttl         = var.approle.secret_id_ttl
  secret_id_num_uses    = var.approle.secret_id_num_uses
  secret_id_bound_cidrs = var.approle.secret_id_bound_cidrs
  bind_secret_id        = true
}

################################################################################
# Kubernetes
################################################################################

resource "vault_kubernetes_auth_backend_role" "this" {
  for_each = local.k8s_roles

  backend                          = var.kubernetes.backend
  role_name                        = each.value.role_name
  bound_service_account_names      = each.value.service_accounts
  bound_service_account_namespaces = each.value.namespaces
  audience                         = var.kubernetes.audience
  token_policies                   = [local.policy_of[each.key]]
  token_ttl                        = var.kubernetes.token_ttl
}
