"""What one ``unkey-secrets`` invocation costs, installed the way users install it.

The package is built into a wheel and installed into a fresh virtual environment (``pip
install`` compiles its bytecode); the dependencies are the ones this environment already holds
(reached through a ``.pth`` file, their bytecode compiled as ``pip install`` compiles it), so the
benchmark stays offline. Each figure is the median wall time of RUNS fresh processes, the
scenarios interleaved run by run (after one warm-up each): the interpreter alone, ``import
boto3, hvac, httpx`` (what any script using the stores' SDKs pays), ``unkey-secrets --help``,
and one ``unkey-secrets provision`` into each store: ``--store vault`` against the local
OpenBao, ``--store aws`` against moto's Secrets Manager, both with the Unkey emulator. A shell
loop over ``provision`` pays that figure per key; ``bulk`` pays it once.
Beside the wall time, the CPU time the process used (user + system, from ``getrusage``): on a
machine shared with other work it moves far less from run to run than the wall time does.

Goals, as ratios of the wall time to the SDK imports': ``provision`` (either store) within
1.2x, ``--help`` within 0.5x; each ratio is printed with its goal beside it (``goal <= 1.2x:
met`` or ``MISSED``).
"""

from __future__ import annotations

import compileall
import importlib.util
import os
import resource
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.moto import MotoServer
from unkey_secrets.testing.openbao import OpenBaoServer

RUNS = int(os.environ.get("BENCH_RUNS", "9"))
ROOT = Path(__file__).resolve().parents[2]
SDKS = "import boto3, hvac, httpx"
#: scenario -> the most it may cost, as a ratio to the SDK imports.
GOALS = {
    "unkey-secrets --help": 0.5,
    "unkey-secrets provision (vault)": 1.2,
    "unkey-secrets provision (aws)": 1.2,
}


def _pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet", *args],
        check=True,
        capture_output=True,
        timeout=600,
    )


def install_from_wheel(workdir: Path) -> Path:
    """Build the wheel, install it into a fresh venv under ``workdir``; return its ``bin``.

    The venv has no pip and no dependencies of its own: a ``.pth`` file puts this
    environment's site-packages after its own, so the wheel's ``unkey_secrets`` is the one
    imported and the SDKs are the ones already installed here.
    """
    dist = workdir / "dist"
    # hatchling is the build backend; without it here, pip fetches it into an isolated
    # build environment (from its cache when it has built one before).
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("hatchling") else []
    _pip("wheel", str(ROOT), "--no-deps", *isolation, "-w", str(dist))
    (wheel,) = dist.glob("unkey_secrets-*.whl")

    venv = workdir / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120
    )
    python = venv / "bin" / "python"
    own_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    shared = sysconfig.get_path("purelib")
    # What `pip install` of the dependencies would have compiled (a no-op where it did).
    compileall.compile_dir(shared, quiet=2, workers=0)
    Path(own_site, "_bench_shared_site.pth").write_text(f"{shared}\n")
    # pip compiles the wheel's bytecode as it installs it, as it does for every user.
    _pip("--python", str(python), "install", "--no-deps", "--no-index", str(wheel))
    return venv / "bin"


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """The wall time and the CPU time (user + system) of one run of ``argv``, in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=True, timeout=120)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def main() -> int:
    """Print the table; always succeeds (a benchmark reports, it does not judge)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "UNKEY_"))}
    base.pop("PYTHONPATH", None)
    base.pop("PYTHONDONTWRITEBYTECODE", None)
    with (
        tempfile.TemporaryDirectory(prefix="unkey-bench-") as tmp,
        OpenBaoServer() as bao,
        EmulatorServer() as server,
        MotoServer() as moto,
    ):
        workdir = Path(tmp)
        bindir = install_from_wheel(workdir)
        python, script = str(bindir / "python"), str(bindir / "unkey-secrets")
        api_id = server.emulator.create_api("startup")
        env = {
            **base,
            "VAULT_ADDR": bao.url,
            "VAULT_TOKEN": bao.root_token,
            "UNKEY_ROOT_KEY": server.root_key,
            "UNKEY_BASE_URL": server.url,
            # moto's Secrets Manager, through the standard AWS chain (no profile, no retries).
            "AWS_ENDPOINT_URL": moto.url,
            "AWS_REGION": moto.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_MAX_ATTEMPTS": "1",
        }
        counter = iter(range(1_000_000))

        def provision(store: str) -> Callable[[], list[str]]:
            def argv() -> list[str]:
                # A new alias each run: provision refuses a taken one.
                alias = f"s{next(counter)}"
                return [script, "--store", store, "provision", "--api-id", api_id, "--alias", alias]

            return argv

        scenarios: dict[str, Callable[[], list[str]]] = {
            "python -c pass": lambda: [python, "-c", "pass"],
            SDKS: lambda: [python, "-c", SDKS],
            "unkey-secrets --help": lambda: [script, "--help"],
            "unkey-secrets provision (vault)": provision("vault"),
            "unkey-secrets provision (aws)": provision("aws"),
        }
        walls: dict[str, list[float]] = {name: [] for name in scenarios}
        cpus: dict[str, list[float]] = {name: [] for name in scenarios}
        for round_ in range(RUNS + 1):
            for name, argv in scenarios.items():
                wall, cpu = _time(argv(), env, workdir)
                if round_:  # the first round warms the page cache
                    walls[name].append(wall)
                    cpus[name].append(cpu)
    wall_ms = {name: statistics.median(values) for name, values in walls.items()}
    cpu_ms = {name: statistics.median(values) for name, values in cpus.items()}
    bare, sdks, sdks_cpu = wall_ms["python -c pass"], wall_ms[SDKS], cpu_ms[SDKS]
    print(
        f"{'':<32} {'median ms':>9} | {'vs python':>9} | {'vs SDK imports':>14} | "
        f"{'CPU ms':>7} {'vs SDKs':>7}  [{RUNS} interleaved runs, installed from the wheel]"
    )
    for name, ms in wall_ms.items():
        goal = GOALS.get(name)
        verdict = ""
        if goal is not None:
            verdict = f"  goal <= {goal}x: {'met' if ms / sdks <= goal else 'MISSED'}"
        cpu = cpu_ms[name]
        print(
            f"{name:<32} {ms:>9.1f} | {ms / bare:>8.1f}x | {ms / sdks:>13.2f}x | "
            f"{cpu:>7.1f} {cpu / sdks_cpu:>6.2f}x{verdict}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
