"""terraform/: formatted, valid against the offline aws provider, documented, and strict on input.

The hashicorp/vault provider is not in the mirror, so terraform/vault gets `fmt` and the checks
below that need no provider; its policies are the files the OpenBao tests prove.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from unkey_secrets.stores import DEFAULT_ALIAS_TEMPLATE

from ._terraform import AWS_DIRS, ROOT, TERRAFORM_DIR, Terraform

pytestmark = pytest.mark.terraform

MODULES = ("modules/rotation-lambda", "modules/rotated-key", "modules/rotation-alerts", "vault")
ALL_DIRS = (*MODULES, "examples/complete")

_BLOCK = re.compile(r'^(variable|output) "([^"]+)" \{$(.*?)^\}$', re.M | re.S)


def blocks(folder: Path, kind: str) -> dict[str, str]:
    """name => body of every ``variable`` or ``output`` block in ``folder``."""
    found: dict[str, str] = {}
    for path in sorted(folder.glob("*.tf")):
        for block_kind, name, body in _BLOCK.findall(path.read_text()):
            if block_kind == kind:
                found[name] = body
    return found


# A secret name of the shape unkey/<api_id>/<name>: not the alias a reader reads
# (unkey/<api_id>/by-name/<alias>) nor a key's own secret (unkey/<api_id>/key_...).
_NOT_AN_ALIAS = re.compile(r"unkey/api_\w+/(?!by-name/|key_)[\w.-]+")


def test_rotated_secrets_are_named_by_the_readers_alias_template() -> None:
    """A secret the rotation function manages is read by KeyReader(api_id, alias) with default
    settings: the example's names default to the stores' alias template, and no usage or guide
    names a rotated secret another way."""
    body = blocks(TERRAFORM_DIR / "examples" / "complete", "variable")["alias_template"]
    default = re.search(r'^\s*default\s*=\s*"([^"]*)"', body, re.M)
    assert default is not None
    assert default.group(1) == DEFAULT_ALIAS_TEMPLATE
    pages = [*TERRAFORM_DIR.rglob("*.md"), *TERRAFORM_DIR.rglob("*.tf")]
    pages += [ROOT / "docs" / "guides" / "scheduled-rotation.md", ROOT / "docs" / "alerts.md"]
    found = [
        f"{page.relative_to(ROOT)}: {match}"
        for page in pages
        for match in _NOT_AN_ALIAS.findall(page.read_text())
    ]
    assert found == []


def test_fmt_check_recursive(terraform: Terraform) -> None:
    done = terraform.run(["fmt", "-check", "-recursive", "-diff", "-no-color"], TERRAFORM_DIR)
    assert done.stdout == ""


@pytest.mark.parametrize("folder", AWS_DIRS)
def test_init_and_validate_against_the_offline_mirror(
    terraform: Terraform, tf_tree: Path, folder: str
) -> None:
    answer = terraform.json(["validate", "-json", "-no-color"], tf_tree / folder)
    assert answer["valid"], answer["diagnostics"]
    assert answer["warning_count"] == 0, answer["diagnostics"]
    lock = (tf_tree / folder / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock


@pytest.mark.parametrize("folder", ALL_DIRS)
def test_each_module_follows_the_conventions(folder: str) -> None:
    path = TERRAFORM_DIR / folder
    for name in ("versions.tf", "variables.tf", "outputs.tf", "main.tf", "README.md"):
        assert (path / name).is_file(), f"{folder}/{name}"
    assert "required_providers" in (path / "versions.tf").read_text()
    readme = (path / "README.md").read_text()
    variables, outputs = blocks(path, "variable"), blocks(path, "output")
    assert variables
    assert outputs
    for kind, found in (("variable", variables), ("output", outputs)):
        for name, body in found.items():
            assert re.search(r"^\s*description\s*=\s*\"\S", body, re.M), f"{kind} {name}"
            assert f"`{name}`" in readme, f"{folder}/README.md does not list {kind} {name}"
    assert "```hcl" in readme, "a copy-pasteable usage"


@pytest.mark.parametrize("folder", MODULES)
def test_each_input_with_a_shape_is_validated(folder: str) -> None:
    """Inputs that are names, ids, ARNs or bounded numbers carry a validation block."""
    free = {"description", "tags", "policy_name_prefix", "verify_permissions", "log_kms_key_arn"}
    free |= {"role_permissions_boundary", "rotate_immediately", "force_overwrite_replica_secret"}
    free |= {"block_public_policy", "kms_key_id", "policies_dir", "token_policies_extra"}
    free |= {"sns_kms_master_key_id"}  # a key id, ARN, alias name or alias ARN
    for name, body in blocks(TERRAFORM_DIR / folder, "variable").items():
        if name in free or re.search(r"^\s*type\s*=\s*bool$", body, re.M):
            continue
        assert "validation {" in body, f"{folder}: variable {name} has no validation"


def test_the_vault_module_loads_the_shipped_policy_files() -> None:
    """The vault_policy resources read policies/vault-*.hcl: the files OpenBao proves."""
    main = (TERRAFORM_DIR / "vault" / "main.tf").read_text()
    variables = blocks(TERRAFORM_DIR / "vault", "variable")
    for role in ("writer", "reader"):
        assert f'file("${{local.policies_dir}}/vault-{role}.hcl")' in main
    assert "null" in variables["policies_dir"]
    assert '"${path.module}/../../policies"' in main
    assert (TERRAFORM_DIR / "vault" / "../../policies/vault-writer.hcl").resolve() == (
        ROOT / "policies" / "vault-writer.hcl"
    )
    # No credential is ever made by Terraform (it would sit in state).
    for kind in ("vault_approle_auth_backend_role_secret_id", "vault_token", "vault_generic"):
        assert kind not in main


def test_no_module_writes_a_secret_value_or_takes_a_root_key() -> None:
    """A secret version written by Terraform would sit in its state: there is none."""
    for path in TERRAFORM_DIR.rglob("*.tf"):
        text = path.read_text()
        assert not re.search(r'resource\s+"aws_secretsmanager_secret_version"', text), path
        assert not re.search(r"\bUNKEY_ROOT_KEY\b", text), path
        assert "UNKEY_ALLOW_ROOT_KEY_ENV" not in text, path


BAD_CALLS = """
module "root_key_as_a_value" {
  source              = "../modules/rotation-lambda"
  package_path        = "lambda.zip"
  runtime             = "python3.12"
  secret_names        = ["unkey/api_123/billing"]
  root_key_secret_arn = "unkey_3ZaBcDeFgHiJkLmNoPqRsT"
}

module "root_key_in_the_environment" {
  source                = "../modules/rotation-lambda"
  package_path          = "lambda.zip"
  runtime               = "python3.12"
  secret_names          = ["unkey/api_123/billing"]
  root_key_secret_arn   = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:root-key-AbCdEf"
  environment_variables = { UNKEY_ROOT_KEY = "unkey_3ZaBcDeFgHiJkLmNoPqRsT" }
  grace_period_seconds  = 60
}

module "root_key_arn_with_a_wildcard" {
  source              = "../modules/rotation-lambda"
  package_path        = "lambda.zip"
  runtime             = "python3.12"
  secret_names        = ["unkey/api_123/billing"]
  root_key_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:*"
}

module "root_key_arn_with_a_single_character_wildcard" {
  source              = "../modules/rotation-lambda"
  package_path        = "lambda.zip"
  runtime             = "python3.12"
  secret_names        = ["unkey/api_123/billing"]
  root_key_secret_arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:root-key-??????"
}

module "two_schedules" {
  source              = "../modules/rotated-key"
  name                = "unkey/api_123/billing"
  api_id              = "api_123"
  rotation_lambda_arn = "arn:aws:lambda:eu-west-1:111122223333:function:unkey-secrets-rotation"
  rotation_rules      = { automatically_after_days = 30, schedule_expression = "rate(10 days)" }
  tags                = { managed-by = "someone-else" }
}

module "alerts_on_a_partial_arn" {
  source                   = "../modules/rotation-alerts"
  function_name            = "unkey-secrets-rotation"
  function_timeout_seconds = 60
  secrets = {
    billing = { arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:unkey/api_123/billing" }
  }
  failure_event_names      = ["RotationStarted"]
}
"""


def test_bad_inputs_are_refused_with_their_reason(terraform: Terraform, tf_tree: Path) -> None:
    folder = tf_tree / "bad-inputs"
    folder.mkdir(exist_ok=True)
    (folder / "main.tf").write_text(BAD_CALLS)
    terraform.run(["init", "-input=false", "-no-color"], folder)
    done = terraform.run(["validate", "-json", "-no-color"], folder, check=False)
    answer = json.loads(done.stdout)
    assert not answer["valid"]
    errors = " | ".join(d["summary"] + ": " + d.get("detail", "") for d in answer["diagnostics"])
    for expected in (
        "root_key_secret_arn must be a Secrets Manager secret ARN",
        "environment_variables must not set UNKEY_*",
        "grace_period_seconds must be a whole number of seconds, at least 300",
        "rotation_rules needs exactly one of automatically_after_days and schedule_expression",
        "tags must not set managed-by or unkey-api-id",
        "each secrets[*].arn must be a full Secrets Manager secret ARN",
        "failure_event_names must be a non-empty list of RotationFailed, RotationAbandoned",
    ):
        assert expected in errors
    wildcard = "root_key_secret_arn must name one secret: no wildcard (* or ?)"
    assert errors.count(wildcard) == 2  # secret:* and secret:root-key-??????
