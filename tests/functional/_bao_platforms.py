"""OpenBao as platforms run it, on loopback: a TLS-enabled server, and ``bao agent``/``bao proxy``.

:class:`TlsOpenBao` is ``bao server -dev`` (in memory, unsealed, KV v2 at ``secret/``) with two
more listeners from a config file: ``tls_url`` (TLS with the test's own server certificate; a
client certificate is asked for but optional, as the cert auth method needs) and ``mtls_url``
(TLS that requires a client certificate issued by the test's CA:
``tls_require_and_verify_client_cert``). The dev listener (plain http) is for setting the server
up with the root token.

:class:`BaoDaemon` runs ``bao agent`` or ``bao proxy`` with a config file and waits until its
listener forwards a request with its auto-auth token (``auth/token/lookup-self`` sent without a
token answers 200).

Each process gets a minimal environment (no ``VAULT_*``/``BAO_*`` setting of the caller) and its
output goes to a pipe, of which the last lines are kept to explain a failure.
"""

from __future__ import annotations

import collections
import http.client
import os
import secrets
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING

from tests._pki import Authority, Issued
from unkey_secrets.testing.openbao import find_bao

if TYPE_CHECKING:
    import hvac

HOST = "127.0.0.1"
#: How long a server, agent or proxy may take to come up on a loaded machine, in seconds.
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class _Process:
    """A ``bao`` subcommand whose output is drained into the last 60 lines."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.output: collections.deque[str] = collections.deque(maxlen=60)
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={"PATH": os.environ.get("PATH", os.defpath), "HOME": str(cwd), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.process.stdout is not None
        self._drainer = threading.Thread(
            target=self._drain, args=(self.process.stdout,), daemon=True
        )
        self._drainer.start()

    def _drain(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.output.append(line.decode("utf-8", "replace").rstrip())
        stream.close()

    def wait_until(self, ready: object, what: str) -> None:
        """Poll ``ready()`` until it is true; RuntimeError if the process ends or time runs out."""
        assert callable(ready)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if ready():
                return
            try:
                # Waiting on the process is the pause between polls, and notices an exit at once.
                self.process.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                continue
            break
        self.stop()
        raise RuntimeError(f"{what} did not come up; its last output:\n" + "\n".join(self.output))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._drainer.join(5)


def _answers(port: int, path: str, *, context: ssl.SSLContext | None = None) -> bool:
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection(HOST, port, timeout=2, context=context)
        if context is not None
        else http.client.HTTPConnection(HOST, port, timeout=2)
    )
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


class TlsOpenBao:
    """``bao server -dev`` plus a TLS listener and a client-certificate-only TLS listener.

    ``folder`` holds the config file; ``authority`` issues the server certificate and is the
    CA client certificates must come from on ``mtls_url``. ``ca`` is the CA file to trust.
    """

    def __init__(self, folder: Path, authority: Authority) -> None:
        self.folder = folder
        self.authority = authority
        self.ca = authority.cert
        self.server_cert: Issued = authority.server("openbao")
        self.root_token = secrets.token_hex(16)
        self.url = self.tls_url = self.mtls_url = ""
        self._process: _Process | None = None

    def __enter__(self) -> TlsOpenBao:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        failure: RuntimeError | None = None
        for _ in range(3):  # a port taken meanwhile: try others
            try:
                self._launch(free_port(), free_port(), free_port())
                return
            except RuntimeError as exc:
                failure = exc
        assert failure is not None
        raise failure

    def _launch(self, dev: int, tls: int, mtls: int) -> None:
        cert, key = self.server_cert.cert, self.server_cert.key
        config = self.folder / "listeners.hcl"
        config.write_text(
            f'listener "tcp" {{\n'
            f'  address       = "{HOST}:{tls}"\n'
            f'  tls_cert_file = "{cert}"\n'
            f'  tls_key_file  = "{key}"\n'
            f"}}\n"
            f'listener "tcp" {{\n'
            f'  address                            = "{HOST}:{mtls}"\n'
            f'  tls_cert_file                      = "{cert}"\n'
            f'  tls_key_file                       = "{key}"\n'
            f'  tls_client_ca_file                 = "{self.ca}"\n'
            f"  tls_require_and_verify_client_cert = true\n"
            f"}}\n"
        )
        process = _Process(
            [
                find_bao(),
                "server",
                "-dev",
                "-dev-no-store-token",
                f"-dev-listen-address={HOST}:{dev}",
                f"-config={config}",
            ],
            cwd=self.folder,
            env={"BAO_DEV_ROOT_TOKEN_ID": self.root_token},
        )
        self._process = process
        context = ssl.create_default_context(cafile=str(self.ca))
        process.wait_until(
            lambda: (
                _answers(dev, "/v1/sys/health") and _answers(tls, "/v1/sys/health", context=context)
            ),
            "the TLS-enabled OpenBao",
        )
        self.url = f"http://{HOST}:{dev}"
        self.tls_url = f"https://{HOST}:{tls}"
        self.mtls_url = f"https://{HOST}:{mtls}"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    def client(self, token: str | None = None) -> hvac.Client:
        """An hvac client on the dev listener with ``token`` (default: the root token)."""
        import hvac

        client: hvac.Client = hvac.Client(
            url=self.url, token=token if token is not None else self.root_token, timeout=10
        )
        return client


class BaoDaemon:
    """``bao agent`` or ``bao proxy`` (``kind``) run with ``config`` (HCL text) from ``folder``.

    The config's listener must be ``tcp`` on ``HOST:port`` without TLS, with an api_proxy that
    uses the auto-auth token: ``url`` is where the app sends its requests.
    """

    def __init__(self, kind: str, folder: Path, config: str, *, port: int) -> None:
        self.kind = kind
        self.folder = folder
        self.port = port
        self.url = f"http://{HOST}:{port}"
        (folder / f"{kind}.hcl").write_text(config)
        self._process: _Process | None = None

    def __enter__(self) -> BaoDaemon:
        process = _Process([find_bao(), self.kind, f"-config={self.kind}.hcl"], cwd=self.folder)
        self._process = process
        # Up once a request without a token is forwarded with the auto-auth token.
        process.wait_until(
            lambda: _answers(self.port, "/v1/auth/token/lookup-self"), f"bao {self.kind}"
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.stop()

    @property
    def output(self) -> str:
        """The last lines the agent or proxy printed."""
        return "\n".join(self._process.output) if self._process is not None else ""
