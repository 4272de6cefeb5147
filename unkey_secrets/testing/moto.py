"""A real moto server (Secrets Manager, IAM, STS, KMS, Lambda) on a free loopback port.

Its Secrets Manager answers as AWS does for every call the store, the rotation Lambda and the
readers make, where moto as shipped does not (the list is in
``unkey_secrets/testing/_moto_secretsmanager.py``): after UpdateSecretVersionStage moves
AWSCURRENT, for instance, GetSecretValue without a stage reads the new version. moto's own
classes are left unchanged, so ``moto.mock_aws`` in the same process behaves as moto does.

Clients it hands out carry dummy credentials and the server's endpoint explicitly, and read no
AWS profile or config file, so tests neither depend on nor touch the caller's AWS setup.

``python -m unkey_secrets.testing.moto --port 5000`` runs the same server until Ctrl-C.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

__all__ = [
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_SECRET_ACCESS_KEY",
    "MotoServer",
    "main",
]

#: The dummy credentials moto accepts while IAM is not enforced.
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto's documented dummy value


def _serve(host: str, port: int) -> Any:
    """Bind ``host:port`` and return werkzeug's server for moto's application, not yet serving.

    The application is quiet, with AWS's Secrets Manager. A port that cannot be bound raises
    ``OSError`` (the socket is bound here: werkzeug's own bind exits the process on failure).
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler
    from werkzeug.serving import make_server

    from ._moto_secretsmanager import create_app

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            """Stay quiet: the test output is ours, not the server's."""

    app = DomainDispatcherApplication(create_app)
    lock = threading.Lock()

    def one_at_a_time(environ: Any, start_response: Any) -> list[bytes]:
        # Connections are still served concurrently, but moto's in-memory backends are not
        # thread-safe (a dict changing size under iteration answers 500), where AWS is: each
        # request is handled whole, one at a time.
        with lock:
            return list(app(environ, start_response))

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        bound = int(listener.getsockname()[1])
        # werkzeug takes a duplicate of the descriptor: ours is closed either way.
        return make_server(
            host, bound, one_at_a_time, True, request_handler=QuietHandler, fd=listener.fileno()
        )
    finally:
        listener.close()


class MotoServer:
    """moto's server on 127.0.0.1, in a thread of this process, as a context manager.

    ``url`` is the endpoint to pass as ``endpoint_url``; :meth:`client` builds a boto3 client for
    it; :meth:`reset` wipes every backend; :meth:`enforce_iam` makes moto check IAM policies.
    ``port`` 0 (the default) takes a free port. Its Secrets Manager answers as AWS does where
    moto as shipped does not (see the module's description).
    """

    region: str = "us-east-1"

    def __init__(self, *, region: str = "us-east-1", port: int = 0) -> None:
        self.region = region
        self.port = port
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving (returns when it accepts connections).

        Raises ``OSError`` when the port cannot be bound (taken, or not permitted).
        """
        if self._server is not None:
            return
        # Port 0: the socket binds a free port itself, so no other process can take it between
        # choosing and binding.
        server = _serve("127.0.0.1", self.port)
        thread = threading.Thread(target=server.serve_forever, name="moto-server", daemon=True)
        thread.start()
        self._server, self._thread = server, thread
        self.port = int(server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server and close its socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join()
            self._server, self._thread = None, None

    def __enter__(self) -> MotoServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self, service: str, **kwargs: Any) -> Any:
        """Return a boto3 client for ``service`` on this server.

        Dummy credentials, the region and the endpoint are passed explicitly (``kwargs`` may
        override ``aws_access_key_id``/``aws_secret_access_key``/``endpoint_url``/``config``); no
        profile or config file is read and the environment is left unchanged.
        """
        import boto3
        import botocore.session

        # Ignore AWS_PROFILE and the caller's config and credentials files.
        core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
        core.set_config_variable("config_file", os.devnull)
        core.set_config_variable("credentials_file", os.devnull)
        # Typed as Any: the service name is a runtime string, not one of the stubs' literals.
        session: Any = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=kwargs.pop("aws_access_key_id", DUMMY_ACCESS_KEY_ID),
            aws_secret_access_key=kwargs.pop("aws_secret_access_key", DUMMY_SECRET_ACCESS_KEY),
            aws_session_token=kwargs.pop("aws_session_token", None),
            region_name=kwargs.pop("region_name", self.region),
        )
        return session.client(service, endpoint_url=kwargs.pop("endpoint_url", self.url), **kwargs)

    def reset(self) -> None:
        """Delete everything in every moto backend (POST ``/moto-api/reset``)."""
        self._post("/moto-api/reset", b"")

    @contextmanager
    def enforce_iam(self) -> Iterator[None]:
        """Make moto authenticate and authorise every request with IAM while inside the block.

        The setting is process-wide in moto, so it is restored on exit even if the block fails.
        Inside, only credentials of IAM users created on this server are accepted.
        """
        answer = self._post("/moto-api/reset-auth", b"0")
        previous = str(json.loads(answer)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"])
        try:
            yield
        finally:
            self._post("/moto-api/reset-auth", previous.encode())

    def _post(self, path: str, body: bytes) -> bytes:
        if self._server is None:
            raise RuntimeError("the moto server is not running; call start() first")
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "text/plain"})
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"moto answered {response.status} to POST {path}")
        return answer


def _port(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a port number, 0 to 65535") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("expected a port number, 0 to 65535")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the server on 127.0.0.1 until SIGINT or SIGTERM; print its URL.

    A port that cannot be bound (taken, or not permitted) is one ``error:`` line on stderr and
    exit status 2, as is a bad option.
    """
    parser = argparse.ArgumentParser(
        prog="python -m unkey_secrets.testing.moto",
        description="Run moto's server (Secrets Manager answering as AWS does, IAM, STS, KMS, "
        "Lambda) on 127.0.0.1 until Ctrl-C or SIGTERM. Its state lives in memory only; any "
        "credentials are accepted.",
    )
    parser.add_argument(
        "--port", type=_port, default=5000, help="port to listen on (default 5000; 0: a free port)"
    )
    args = parser.parse_args(argv)
    server = MotoServer(port=args.port)
    try:
        server.start()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        sys.stderr.write(f"error: cannot listen on 127.0.0.1 port {args.port}: {reason}\n")
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        sys.stdout.write(f"moto server listening on {server.url}\n")
        sys.stdout.flush()
        while not stop.wait(0.2):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
