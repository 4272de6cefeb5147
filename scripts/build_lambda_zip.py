"""Build the rotation Lambda's deployment package, byte for byte reproducibly.

Usage: ``python scripts/build_lambda_zip.py build/lambda.zip``

The package holds ``unkey_secrets`` (without its ``testing`` kit) and httpx with the
distributions it requires, copied from the running environment, each with its ``.dist-info``.
boto3 is left out: the Lambda runtime provides it. Every ``.py`` is shipped with an
unchecked-hash ``.pyc`` for this interpreter (Lambda's ``/var/task`` is read-only, so without
them every cold start compiles from source). Entries are sorted and stamped 1980-01-01 with fixed
permissions, so the same environment always gives the same bytes.

Beside the package it writes ``<package>.runtime``: the Lambda runtime of this interpreter
(``python3.11``). The rotation-lambda Terraform module deploys with that runtime, and refuses at
plan a ``runtime`` that names another.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import py_compile
import sys
import tempfile
import zipfile
from importlib.metadata import Distribution, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_REQUIREMENTS = ("httpx",)
EXCLUDED_PARTS = {"__pycache__", "testing"}
FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _closure(names: tuple[str, ...]) -> list[Distribution]:
    """The distributions ``names`` need at run time (no extras), in a stable order."""
    seen: dict[str, Distribution] = {}
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        dist = distribution(name)
        seen[name] = dist
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return [seen[name] for name in sorted(seen)]


def _files(dist: Distribution) -> dict[str, Path]:
    """Archive name -> file on disk for everything ``dist`` installed into site-packages."""
    out: dict[str, Path] = {}
    for entry in dist.files or ():
        parts = Path(str(entry)).parts
        if parts[0] == ".." or EXCLUDED_PARTS & set(parts) or str(entry).endswith(".pyc"):
            continue
        out["/".join(parts)] = Path(str(dist.locate_file(entry)))
    return out


def _project_files() -> dict[str, Path]:
    package = ROOT / "unkey_secrets"
    return {
        path.relative_to(ROOT).as_posix(): path
        for path in package.rglob("*")
        if path.is_file()
        and not EXCLUDED_PARTS & set(path.relative_to(ROOT).parts)
        and path.suffix in (".py", ".typed")
    }


def _compiled(name: str, source: Path, workdir: Path) -> tuple[str, bytes]:
    """The ``__pycache__`` entry for ``name``: deterministic (hash-based, archive-relative)."""
    target = workdir / "out.pyc"
    py_compile.compile(
        str(source),
        cfile=str(target),
        dfile=name,
        doraise=True,
        invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
    )
    cached = Path(importlib.util.cache_from_source(name))
    return cached.as_posix(), target.read_bytes()


def runtime_file(output: Path) -> Path:
    """Where the Lambda runtime the package at ``output`` was built for is recorded."""
    return output.with_name(output.name + ".runtime")


def build(output: Path) -> str:
    """Write the package to ``output`` and return its sha256; record its runtime beside it."""
    entries: dict[str, bytes] = {}
    sources = _project_files()
    for dist in _closure(RUNTIME_REQUIREMENTS):
        sources.update(_files(dist))
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in sources.items():
            data = path.read_bytes()
            entries[name] = data
            if name.endswith(".py"):
                cached, code = _compiled(name, path, Path(tmp))
                entries[cached] = code
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, entries[name], zipfile.ZIP_DEFLATED, 9)
    output.parent.mkdir(parents=True, exist_ok=True)
    data = buffer.getvalue()
    output.write_bytes(data)
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    runtime_file(output).write_text(runtime + "\n")
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Build, then print the path, size, file count and sha256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?", default=ROOT / "build" / "lambda.zip")
    args = parser.parse_args(argv)
    digest = build(args.output)
    with zipfile.ZipFile(args.output) as archive:
        count = len(archive.namelist())
    size = args.output.stat().st_size
    print(
        f"{args.output}: {size} bytes ({size / 1024:.0f} KiB), {count} entries, "
        f"python {sys.version_info.major}.{sys.version_info.minor}, sha256 {digest}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
