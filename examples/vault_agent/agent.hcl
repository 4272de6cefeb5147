# Vault Agent (or OpenBao's `bao agent`): keep an app's Unkey key in a file, rerendered whenever
# a rotation moves the alias.
#
# What it shows: the alias unkey/<api_id>/by-name/<alias> holds the current key, so the template
# (billing-api-key.ctmpl) reads it in one read, with read permission on that one path only
# (policies/ has a reader policy). The agent re-reads it (lease-less KV v2 secrets every 5 minutes
# by default, see template_config) and rewrites the file after each rotation; the rotation's grace
# period (24 h by default) covers the gap.
#
# How to run it: put a token with the reader policy (and Vault's default policy, with which the
# agent looks its token up) in ./vault-token, or swap the auto_auth method for kubernetes,
# approle, ...; set the server address, and start the agent from this folder:
#
#   export VAULT_ADDR=http://127.0.0.1:8200        # BAO_ADDR for bao agent
#   vault agent -config=agent.hcl                  # or: .venv/bin/bao agent -config=agent.hcl
#
# Replace api_123 and billing in the template with your API id and alias.
# tests/e2e/test_example_readers.py renders this template with the real `bao agent`.

auto_auth {
  method "token_file" {
    config = {
      token_file_path = "./vault-token"
    }
  }
}

template_config {
  # How often a secret without a lease (KV v2) is read again; well inside the grace period.
  static_secret_render_interval = "5m"
  exit_on_retry_failure         = true
}

template {
  source      = "./billing-api-key.ctmpl"
  destination = "/run/secrets/billing-api-key"
  perms       = "0400"
}
