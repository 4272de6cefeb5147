# unkey-secrets reader: an app that loads its key by key_id or through its stable alias.
#
# Assumes the KV v2 mount "secret" and the default templates; narrow "unkey/*" to one API
# (unkey/api_123/*) or one alias and its keys where you can. Readers need no metadata access.

path "secret/data/unkey/*" {
  capabilities = ["read"]
}
