"""What one ``unkey-secrets`` invocation costs, against ``python -c pass`` and the bare imports.

Each figure is the median wall time of RUNS fresh processes (after one warm-up each, so no
scenario pays for compiling bytecode): the interpreter alone, ``import boto3, hvac, httpx``
(what any script using the stores' SDKs pays), ``unkey-secrets --help``, and one
``unkey-secrets --store vault provision`` against the local OpenBao and the Unkey emulator.
A shell loop over ``provision`` pays the last figure per key; ``bulk`` pays it once.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from unkey_secrets.testing.emulator import EmulatorServer
from unkey_secrets.testing.openbao import OpenBaoServer

RUNS = int(os.environ.get("BENCH_RUNS", "9"))


def _median_ms(argv: list[str], env: dict[str, str]) -> float:
    subprocess.run(argv, env=env, capture_output=True, check=True, timeout=120)
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True, timeout=120)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> int:
    """Print the table; always succeeds (a benchmark reports, it does not judge)."""
    script = str(Path(sys.executable).with_name("unkey-secrets"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "UNKEY_"))}
    with OpenBaoServer() as bao, EmulatorServer() as server:
        api_id = server.emulator.create_api("startup")
        env = {
            **base,
            "VAULT_ADDR": bao.url,
            "VAULT_TOKEN": bao.root_token,
            "UNKEY_ROOT_KEY": server.root_key,
            "UNKEY_BASE_URL": server.url,
        }
        counter = iter(range(10_000))
        scenarios = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import boto3, hvac, httpx": [sys.executable, "-c", "import boto3, hvac, httpx"],
            "unkey-secrets --help": [script, "--help"],
        }
        results = {name: _median_ms(argv, env) for name, argv in scenarios.items()}

        # A new alias each run: provision refuses a taken one.
        samples = []
        for _ in range(RUNS + 1):
            argv = [script, "--store", "vault", "provision", "--api-id", api_id, "--alias"]
            argv.append(f"s{next(counter)}")
            started = time.perf_counter()
            subprocess.run(argv, env=env, capture_output=True, check=True, timeout=120)
            samples.append((time.perf_counter() - started) * 1000)
        results["unkey-secrets provision (vault)"] = statistics.median(samples[1:])
    bare, sdks = results["python -c pass"], results["import boto3, hvac, httpx"]
    print(f"{'':<32} {'median ms':>9} | {'vs python':>9} | {'vs SDK imports':>14}  [{RUNS} runs]")
    for name, ms in results.items():
        print(f"{name:<32} {ms:>9.1f} | {ms / bare:>8.1f}x | {ms / sdks:>13.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
