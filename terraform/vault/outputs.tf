output "writer_policy_name" {
  description = "Name of the writer policy."
  value       = vault_policy.writer.name
}

output "reader_policy_name" {
  description = "Name of the reader policy."
  value       = vault_policy.reader.name
}

output "approle_role_names" {
  description = "writer/reader => AppRole role name (empty without approle)."
  value       = { for kind, role in vault_approle_auth_backend_role.this : kind => role.role_name }
}

output "approle_role_ids" {
  description = "writer/reader => AppRole role_id (an identifier, not a credential: a login also needs a secret_id, never made here)."
  value       = { for kind, role in vault_approle_auth_backend_role.this : kind => role.role_id }
}

output "kubernetes_role_names" {
  description = "writer/reader => Kubernetes auth role name (empty without kubernetes)."
  value       = { for kind, role in vault_kubernetes_auth_backend_role.this : kind => role.role_name }
}
