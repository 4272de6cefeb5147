"""Run the terraform CLI offline: the provider mirror only, no checkpoint, a timeout on every call.

Nothing here reaches the network: the CLI configuration installs ``hashicorp/aws`` from the
filesystem mirror and forbids direct installation, ``CHECKPOINT_DISABLE`` turns the version check
off, and the child's environment is built from scratch (no AWS profile, credentials or endpoint
of the caller's leaks in).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
#: Every terraform call is killed after this many seconds, so nothing can hang CI. Each call
#: starts the aws provider two or three times, some 10-15 s apiece on a 2-core machine: the
#: complete example's apply and destroy take about 100 s alone and more beside a second worker.
TIMEOUT = 300
#: The AWS modules and the example: init + validate each against the mirror.
AWS_DIRS = (
    "modules/rotation-lambda",
    "modules/rotated-key",
    "modules/rotation-alerts",
    "examples/complete",
)

MIRROR_ENV = "UNKEY_SECRETS_TF_MIRROR"
# Where images usually put a filesystem mirror (the folder that holds registry.terraform.io).
_MIRROR_CANDIDATES = (
    "/opt/tf-plugins",
    "/usr/share/terraform/plugins",
    "/usr/local/share/terraform/plugins",
    "~/.terraform.d/plugins",
    "~/.local/share/terraform/plugins",
)

INSTALL_HINT = (
    "install terraform >= 1.5 (https://developer.hashicorp.com/terraform/install); "
    "the CI image has it"
)
MIRROR_HINT = (
    "make an offline mirror of hashicorp/aws once, on a machine with network: "
    "`terraform -chdir=terraform/examples/complete providers mirror DIR`, then set "
    f"{MIRROR_ENV}=DIR (DIR holds registry.terraform.io/hashicorp/aws); the CI image has "
    "one under /opt/tf-plugins"
)


def find_mirror() -> Path | None:
    """The folder holding ``registry.terraform.io/hashicorp/aws``, or None."""
    candidates: list[str] = []
    if os.environ.get(MIRROR_ENV):
        candidates.append(os.environ[MIRROR_ENV])
    candidates.extend(_MIRROR_CANDIDATES)
    for candidate in candidates:
        path = Path(candidate).expanduser()
        if path.name == "registry.terraform.io":
            path = path.parent
        if (path / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return path
    # A shallow look under /opt for images that put it elsewhere.
    opt = Path("/opt")
    if opt.is_dir():
        for found in sorted(opt.glob("*/registry.terraform.io/hashicorp/aws")) + sorted(
            opt.glob("*/*/registry.terraform.io/hashicorp/aws")
        ):
            return found.parents[2]
    return None


def cli_config(mirror: Path) -> str:
    """A CLI configuration that installs providers from ``mirror`` and from nowhere else.

    With a ``filesystem_mirror`` block and no ``direct`` block, terraform never asks a registry.
    """
    return f"""\
provider_installation {{
  filesystem_mirror {{
    path    = {json.dumps(str(mirror))}
    include = ["registry.terraform.io/hashicorp/*"]
  }}
}}
disable_checkpoint = true
"""


def moto_provider(url: str, region: str | None = None) -> str:
    """A provider block pointing every service the modules use at moto.

    Without ``region`` it is an override of a configuration's own provider block (which sets
    the region); with it, a provider block of its own. Fake credentials, no account, metadata
    or region checks: nothing leaves loopback.
    """
    services = (
        "cloudwatch",
        "events",
        "iam",
        "kms",
        "lambda",
        "logs",
        "secretsmanager",
        "sns",
        "sts",
    )
    endpoints = "\n".join(f"    {service} = {json.dumps(url)}" for service in services)
    region_line = "" if region is None else f"  region = {json.dumps(region)}\n"
    return f"""\
provider "aws" {{
{region_line}  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {{
{endpoints}
  }}
}}
"""


class TerraformError(AssertionError):
    """A terraform command failed or timed out; carries its output."""


@dataclass
class Terraform:
    """The terraform binary with an offline environment; every call has a timeout."""

    binary: str
    home: Path
    mirror: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    #: Every command run, with its duration: the report's timings.
    timings: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file = self.home / "terraformrc"
        if self.mirror is not None:
            self.config_file.write_text(cli_config(self.mirror))
        else:
            self.config_file.write_text("disable_checkpoint = true\n")

    def env(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
            "TF_CLI_CONFIG_FILE": str(self.config_file),
            "CHECKPOINT_DISABLE": "1",
            "TF_IN_AUTOMATION": "1",
            "TF_INPUT": "0",
            # No AWS profile, config or credentials file of the caller's.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        env.update(self.extra_env)
        return env

    def run(
        self,
        args: Iterable[str],
        cwd: Path,
        *,
        check: bool = True,
        timeout: float = TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``terraform ARGS`` in ``cwd``; fail (with its output) on error or timeout."""
        argv = [self.binary, *args]
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv,
                cwd=cwd,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise TerraformError(
                f"terraform {' '.join(args)} in {cwd} took more than {timeout} s\n"
                f"stdout:\n{_text(exc.stdout)}\nstderr:\n{_text(exc.stderr)}"
            ) from None
        finally:
            self.timings.append(
                (f"{cwd.name}: terraform {' '.join(args)}", time.monotonic() - started)
            )
        if check and done.returncode != 0:
            raise TerraformError(
                f"terraform {' '.join(args)} in {cwd} exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def json(self, args: Iterable[str], cwd: Path) -> Any:
        return json.loads(self.run(args, cwd).stdout)


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    return data.decode(errors="replace") if isinstance(data, bytes) else data


def copy_tree(target: Path) -> Path:
    """Copy terraform/ (and the policies the vault module loads) to ``target``; return its copy.

    Terraform writes .terraform/ and a lock file into the folder it runs in: the repository's
    own stays clean.
    """
    shutil.copytree(
        TERRAFORM_DIR,
        target / "terraform",
        ignore=shutil.ignore_patterns(".terraform", "*.tfstate*", ".terraform.lock.hcl"),
    )
    shutil.copytree(ROOT / "policies", target / "policies")
    return target / "terraform"
