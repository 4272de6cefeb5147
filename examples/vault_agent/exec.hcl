# Vault Agent (or OpenBao's `bao agent`) as the app's process supervisor: the app gets its Unkey
# key in an environment variable, and is restarted when a rotation moves the alias.
#
# What it shows: each env_template reads the alias unkey/<api_id>/by-name/<alias>, which holds the
# current key (one read, read permission on that path only: policies/vault-reader.hcl). The agent
# waits until every env_template has rendered, then starts exec.command with UNKEY_API_KEY (the
# key) and UNKEY_KEY_ID (its key_id, safe to log) added to its environment. It reads the alias
# again every static_secret_render_interval; when a rotation has moved it, the agent stops the app
# with restart_stop_signal and starts it again with the new key. The rotation's grace period
# (24 h by default) keeps the old key valid until then.
#
# How to run it: give it an auth file (auth-token-file.hcl here; in a pod, the kubernetes method:
# examples/kubernetes/vault-agent-exec.yaml carries this file and one), replace api_123 and
# billing with your API id and alias and the command with your app's, then
#
#   export VAULT_ADDR=http://127.0.0.1:8200        # BAO_ADDR for bao agent
#   vault agent -config=auth-token-file.hcl -config=exec.hcl
#
# The agent exits with the app's exit code when the app exits on its own.
# tests/e2e/test_k8s_restarts.py runs this file with the real `bao agent` through a rotation.

template_config {
  # How often a secret without a lease (KV v2) is read again: the longest a rotation goes unseen.
  # Keep it well inside the rotation's grace period.
  static_secret_render_interval = "5m"
  # With Vault out of reach the agent keeps the app running on the key it has (valid for the
  # grace period) rather than exiting, which would stop the app too.
  exit_on_retry_failure = false
}

env_template "UNKEY_API_KEY" {
  contents             = "{{ with secret \"secret/data/unkey/api_123/by-name/billing\" }}{{ .Data.data.key }}{{ end }}"
  error_on_missing_key = true
}

env_template "UNKEY_KEY_ID" {
  contents             = "{{ with secret \"secret/data/unkey/api_123/by-name/billing\" }}{{ .Data.data.key_id }}{{ end }}"
  error_on_missing_key = true
}

exec {
  command                   = ["/app/billing-api", "--port", "8080"]
  restart_on_secret_changes = "always"
  # What the app gets to finish its requests before it is started again with the new key.
  restart_stop_signal = "SIGTERM"
}
