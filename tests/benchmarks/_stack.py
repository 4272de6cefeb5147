"""An Unkey emulator in a process of its own, answering every call after an injected delay.

Run in a subprocess, so the emulator's work never competes with the client being measured for
this interpreter's GIL; the client then pays only its own CPU. ``python -m
tests.benchmarks._stack DELAY_MS`` prints ``url root_key`` on one line, serves until stdin
closes. Each API the benchmark needs is made over HTTP (``apis.createApi``).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping
from types import TracebackType

from unkey_secrets.testing.emulator import Emulator, EmulatorServer, Response


class DelayedEmulator(Emulator):
    """Every request waits ``delay`` seconds before it is answered, as a distant API would."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def handle(self, path: str, headers: Mapping[str, str], body: bytes) -> Response | None:
        if self.delay:
            time.sleep(self.delay)
        return super().handle(path, headers, body)


class RemoteEmulator:
    """``with RemoteEmulator(0.02) as (url, root_key):`` an emulator in a child process."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> tuple[str, str]:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.benchmarks._stack", str(self.delay * 1000)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        url, root_key = self._process.stdout.readline().split()
        return url, root_key

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=30)


def main() -> None:
    delay = float(sys.argv[1]) / 1000
    with EmulatorServer(DelayedEmulator(delay)) as server:
        print(server.url, server.root_key, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
