"""Cold start of the rotation Lambda against a bare ``import boto3, httpx``, in the same run.

Each figure is the median of fresh subprocesses: wall time of the imports (and, for "ready",
of making the clients the first invocation needs) and the growth of the peak RSS
(``VmHWM`` in ``/proc/self/status``) over the interpreter's own. Printed as ratios; the goal is
at most 1.25x. The bare baseline never makes a client, so "ready vs bare import" is shown for
the record while "ready vs ready" compares like with like.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

RUNS = int(os.environ.get("BENCH_RUNS", "9"))
GOAL = 1.25

# Peak RSS is read from VmHWM, the high-water mark of this process's own memory map, which a
# new program starts afresh: getrusage's ru_maxrss is kept across execve, so a child started
# by a large parent (the flows benchmark's servers) would report the parent's peak.
_PROBE = """
import json, time
def peak_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")
rss0 = peak_kib()
t0 = time.perf_counter()
{code}
elapsed = time.perf_counter() - t0
rss = peak_kib() - rss0
print(json.dumps({{"ms": elapsed * 1000, "kib": rss}}))
"""

SCENARIOS = {
    "bare import": "import boto3, httpx",
    "handler import": "import unkey_secrets.aws_lambda",
    "bare ready": ("import boto3, httpx\nboto3.client('secretsmanager')\nhttpx.Client()"),
    "handler ready": ("import unkey_secrets.aws_lambda as m\nm._RUNTIME.rotator()"),
}

_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "UNKEY_ALLOW_ROOT_KEY_ENV": "true",
    "UNKEY_ROOT_KEY": "unkey_bench_only",
}


def _measure(code: str) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "UNKEY_"))}
    env.update(_ENV)
    times, memory = [], []
    for _ in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-c", _PROBE.format(code=code)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            timeout=120,
        )
        sample = json.loads(done.stdout)
        times.append(sample["ms"])
        memory.append(sample["kib"])
    return statistics.median(times), statistics.median(memory)


def main() -> int:
    # Warm the bytecode caches first, so no scenario pays for compiling.
    for code in SCENARIOS.values():
        _measure(code)
    results = {name: _measure(code) for name, code in SCENARIOS.items()}
    print(f"median of {RUNS} fresh processes")
    for name, (ms, kib) in results.items():
        print(f"  {name:<15} {ms:8.1f} ms   peak RSS +{kib / 1024:6.1f} MiB")
    pairs = [
        ("handler import", "bare import"),
        ("handler ready", "bare ready"),
        ("handler ready", "bare import"),
    ]
    for ours, base in pairs:
        t = results[ours][0] / results[base][0]
        m = results[ours][1] / max(results[base][1], 1)
        verdict = "ok" if max(t, m) <= GOAL else f"over {GOAL}x"
        print(f"  {ours} / {base}: time {t:.2f}x, memory {m:.2f}x ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
