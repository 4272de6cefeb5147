"""examples/kubernetes/: the CronJob that runs ``rotate-due`` parses, and so does its command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from unkey_secrets.cli import app as cli
from unkey_secrets.settings import VaultSettings

MANIFEST = (
    Path(__file__).resolve().parents[2] / "examples" / "kubernetes" / "rotate-due-cronjob.yaml"
)


def documents() -> dict[str, dict[str, Any]]:
    docs = [doc for doc in yaml.safe_load_all(MANIFEST.read_text()) if doc]
    return {doc["kind"]: doc for doc in docs}


def container() -> dict[str, Any]:
    job = documents()["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (only,) = job["containers"]
    return dict(only)


def test_the_cronjob_is_scheduled_and_never_overlaps() -> None:
    cron = documents()["CronJob"]
    assert cron["apiVersion"] == "batch/v1"
    assert len(cron["spec"]["schedule"].split()) == 5
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == documents()["ServiceAccount"]["metadata"]["name"]


def test_it_runs_the_console_script_whatever_the_image_entrypoint() -> None:
    """`command` names the CLI: with `args` alone the image's ENTRYPOINT would run them."""
    assert container()["command"] == ["unkey-secrets"]
    pyproject = (MANIFEST.parents[2] / "pyproject.toml").read_text()
    assert '\nunkey-secrets = "unkey_secrets.cli:run"\n' in pyproject


def test_its_instructions_keep_the_root_key_off_command_lines() -> None:
    """The root key goes into the Kubernetes Secret from stdin, never as an argument."""
    header = MANIFEST.read_text()
    assert "--from-literal" not in header
    assert "read -rs ROOT_KEY" in header
    assert "--from-file=root-key=/dev/stdin" in header


def test_its_command_line_is_one_the_cli_accepts() -> None:
    args = cli.build_parser().parse_args(container()["args"])
    assert args.command == "rotate-due"
    assert args.store == "vault"
    assert args.json is True
    assert args.older_than == 30 * 86400
    assert args.grace_period == 86400
    # The aliases file is the ConfigMap's key, mounted where the command reads it.
    mount = container()["volumeMounts"][0]["mountPath"]
    assert args.aliases_file.startswith(mount + "/")
    name = Path(args.aliases_file).name
    assert name in documents()["ConfigMap"]["data"]


def test_its_environment_is_what_the_settings_read() -> None:
    env = {item["name"]: item for item in container()["env"]}
    # The root key comes from a Secret, never a literal in the manifest.
    assert "secretKeyRef" in env["UNKEY_ROOT_KEY"]["valueFrom"]
    assert "value" not in env["UNKEY_ROOT_KEY"]
    literal = {name: item["value"] for name, item in env.items() if "value" in item}
    settings = VaultSettings.model_validate(
        {
            "addr": literal["VAULT_ADDR"],
            "auth_method": literal["UNKEY_SECRETS_VAULT_AUTH_METHOD"],
            "role": literal["UNKEY_SECRETS_VAULT_ROLE"],
        }
    )
    assert settings.auth_method == "kubernetes"
    assert settings.addr is not None
    assert settings.addr.startswith("https://")
