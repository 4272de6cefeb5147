# unkey-secrets writer: stores keys and moves aliases, and cannot read a stored key back.
#
# Assumes the KV v2 mount "secret" and the default templates (unkey/{api_id}/{key_id} and
# unkey/{api_id}/by-name/{name}); change "secret" and "unkey/" to match your settings.
#
# The store decides everything from metadata (ownership marker, key_id, current version), so
# the data paths need no "read": a leaked writer token cannot read the keys it wrote.

# Write a key or an alias (create-only with cas=0; an alias moves with cas=<version>).
path "secret/data/unkey/*" {
  capabilities = ["create", "update"]
}

# Read and set the ownership marker in custom_metadata; no "delete", no "patch".
path "secret/metadata/unkey/*" {
  capabilities = ["read", "create", "update"]
}
