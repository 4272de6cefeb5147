# Vault Agent auto-auth from a token file, to run exec.hcl on a workstation or a VM:
#
#   vault agent -config=auth-token-file.hcl -config=exec.hcl
#
# Put a token with the reader policy (policies/vault-reader.hcl) and Vault's default policy (with
# which the agent looks its token up) in ./vault-token. In a pod use the kubernetes method instead
# (examples/kubernetes/vault-agent-exec.yaml).

auto_auth {
  method "token_file" {
    config = {
      token_file_path = "./vault-token"
    }
  }
}
