"""The scheduled-rotation guide's Terraform snippet plans as written, beside a checkout.

The guide puts its snippet beside a checkout of this repository at ``./unkey-secrets`` where
``make lambda-zip`` was run: here a copy of terraform/ and the package that script builds (with
the runtime it records beside it), the snippet as the root module, planned against moto server
with the offline provider mirror.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.docs._blocks import blocks_of
from unkey_secrets.stores import DEFAULT_ALIAS_TEMPLATE
from unkey_secrets.testing.moto import MotoServer

from ._terraform import ROOT, Terraform, copy_tree, moto_provider

pytestmark = pytest.mark.terraform

GUIDE = ROOT / "docs" / "guides" / "scheduled-rotation.md"


def _snippet() -> str:
    """The guide's hcl block that deploys the function and the keys."""
    (block,) = [
        b
        for b in blocks_of(GUIDE)
        if b.language == "hcl" and 'module "rotation_lambda"' in b.source
    ]
    return block.source


def _build_package(target: Path) -> None:
    """What `make lambda-zip` builds, with the same script, for this interpreter."""
    spec = importlib.util.spec_from_file_location(
        "_build_lambda_zip", ROOT / "scripts" / "build_lambda_zip.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    target.parent.mkdir(parents=True, exist_ok=True)
    module.build(target)


def _planned(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The values of every planned resource of type ``kind``, in any module."""
    found: list[dict[str, Any]] = []

    def walk(module: dict[str, Any]) -> None:
        found.extend(r["values"] for r in module.get("resources", []) if r["type"] == kind)
        for child in module.get("child_modules", []):
            walk(child)

    walk(plan["planned_values"]["root_module"])
    return found


def test_the_guides_snippet_plans_beside_a_checkout(
    terraform: Terraform, aws_mirror: Path, moto_server: MotoServer, tmp_path: Path
) -> None:
    work = tmp_path / "deploy"
    checkout = work / "unkey-secrets"
    copy_tree(checkout)
    _build_package(checkout / "build" / "lambda.zip")
    (work / "main.tf").write_text(_snippet())
    (work / "provider.tf").write_text(moto_provider(moto_server.url, moto_server.region))
    terraform.run(["init", "-input=false", "-no-color"], work)
    terraform.run(["plan", "-input=false", "-no-color", "-out=tfplan"], work)
    plan = terraform.json(["show", "-json", "tfplan"], work)

    # Each rotated secret is named as the readers' default alias template names its alias.
    names = {values["name"] for values in _planned(plan, "aws_secretsmanager_secret")}
    expected = {
        DEFAULT_ALIAS_TEMPLATE.format(api_id=api_id, alias=alias)
        for alias, api_id in (("billing", "api_123"), ("search", "api_456"))
    }
    assert names == {"unkey/root-key", *expected}
    (function,) = _planned(plan, "aws_lambda_function")
    assert function["filename"].endswith("unkey-secrets/build/lambda.zip")
    # The runtime make lambda-zip recorded beside the package, not one the snippet names.
    recorded = (checkout / "build" / "lambda.zip.runtime").read_text().strip()
    assert recorded == f"python{sys.version_info.major}.{sys.version_info.minor}"
    assert function["runtime"] == recorded

    # A runtime given that is not the package's fails the plan, saying why.
    (work / "override.tf").write_text('module "rotation_lambda" {\n  runtime = "python3.0"\n}\n')
    refused = terraform.run(["plan", "-input=false", "-no-color"], work, check=False)
    assert refused.returncode != 0
    assert "is not the one the package was built for (" in " ".join(refused.stderr.split())
    # So does no runtime at all, with no record beside the package.
    (work / "override.tf").unlink()
    (checkout / "build" / "lambda.zip.runtime").unlink()
    refused = terraform.run(["plan", "-input=false", "-no-color"], work, check=False)
    assert refused.returncode != 0
    assert "runtime: none given" in " ".join(refused.stderr.split())
