# unkey-secrets writer: stores keys, moves aliases and rotates, and cannot read a stored key back.
#
# Assumes the KV v2 mount "secret" and the default templates (unkey/{api_id}/{key_id},
# unkey/{api_id}/by-name/{alias} and unkey/rotated-from/{api_id}/{key_id}); change "secret"
# and "unkey/" to match your settings.
#
# The store decides everything from metadata (ownership marker, key_id, current version), so
# the key and alias data paths need no "read": a leaked writer token cannot read the keys it
# wrote. Rotation records hold ids, states and times only, never a key; rotate reads them.

# Write a key or an alias (create-only with cas=0; an alias moves with cas=<version>).
path "secret/data/unkey/*" {
  capabilities = ["create", "update"]
}

# Rotation records: read to resume a rotation or answer a re-run; written with cas.
path "secret/data/unkey/rotated-from/*" {
  capabilities = ["read", "create", "update"]
}

# Read and set the ownership marker in custom_metadata; no "delete", no "patch".
path "secret/metadata/unkey/*" {
  capabilities = ["read", "create", "update"]
}

# Let the writer check, before asking Unkey for a key, that it may write these paths (the
# store's preflight; Vault's "default" policy grants it too). The mount's KV version is read
# from sys/internal/ui/mounts/secret, which any token with access under the mount may read.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Keep the token alive through a long job (bulk, rotate-due): look up its lease and renew it
# ahead of its expiry. Vault's "default" policy grants both; listed for tokens made without it.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
