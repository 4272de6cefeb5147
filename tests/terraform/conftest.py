"""Terraform test fixtures: the binary, the offline mirror, an initialised copy of terraform/.

Each fixture that needs something this machine may lack skips with a reason saying how to get
it. Every terraform call has a timeout (:data:`~tests.terraform._terraform.TIMEOUT`).
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ._terraform import AWS_DIRS, INSTALL_HINT, MIRROR_HINT, Terraform, copy_tree, find_mirror

_RUNS: list[Terraform] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "terraform: runs the terraform CLI offline (the provider mirror only), some against moto",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """With -v, how long the terraform commands took."""
    if terminalreporter.config.option.verbose <= 0:
        return
    timings = [t for tf in _RUNS for t in tf.timings]
    if not timings:
        return
    terminalreporter.section("terraform commands")
    for name, seconds in timings:
        terminalreporter.write_line(f"{seconds:6.1f} s  {name}")
    terminalreporter.write_line(f"{sum(s for _, s in timings):6.1f} s  in all")


@pytest.fixture(scope="session")
def terraform(tmp_path_factory: pytest.TempPathFactory) -> Terraform:
    """The terraform CLI with an offline configuration (the mirror, if there is one)."""
    binary = shutil.which("terraform")
    if binary is None:
        pytest.skip(f"terraform is not on PATH: {INSTALL_HINT}")
    tf = Terraform(binary, tmp_path_factory.mktemp("terraform-home"), find_mirror())
    _RUNS.append(tf)
    return tf


@pytest.fixture(scope="session")
def aws_mirror(terraform: Terraform) -> Path:
    """The offline mirror of hashicorp/aws."""
    if terraform.mirror is None:
        pytest.skip(f"no offline mirror of the hashicorp/aws provider: {MIRROR_HINT}")
    return terraform.mirror


@pytest.fixture(scope="session")
def tf_tree(
    terraform: Terraform, aws_mirror: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of terraform/ with every AWS module and the example initialised, once a session."""
    tree = copy_tree(tmp_path_factory.mktemp("tf-tree"))
    with ThreadPoolExecutor(len(AWS_DIRS)) as pool:
        done = pool.map(
            lambda d: terraform.run(["init", "-input=false", "-no-color"], tree / d), AWS_DIRS
        )
        list(done)  # re-raise the first failure
    return tree
