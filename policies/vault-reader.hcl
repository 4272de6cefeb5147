# unkey-secrets reader: an app that loads its key by key_id or through its stable alias.
#
# Assumes the KV v2 mount "secret" and the default templates; narrow "unkey/*" to one API
# (unkey/api_123/*) or one alias and its keys where you can. Readers need no metadata access.

path "secret/data/unkey/*" {
  capabilities = ["read"]
}

# Keep the token alive for the app's life: look up its lease and renew it ahead of its expiry.
# Vault's "default" policy grants both; listed for tokens made without it.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
