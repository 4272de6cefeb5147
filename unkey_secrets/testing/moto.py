"""A real moto server (Secrets Manager, IAM, STS, KMS, Lambda) on a free loopback port.

Clients it hands out carry dummy credentials and the server's endpoint explicitly, and read no
AWS profile or config file, so tests neither depend on nor touch the caller's AWS setup.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

__all__ = [
    "DUMMY_ACCESS_KEY_ID",
    "DUMMY_SECRET_ACCESS_KEY",
    "MotoServer",
]

#: The dummy credentials moto accepts while IAM is not enforced.
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto's documented dummy value


def _quiet_server_class() -> Any:
    """``ThreadedMotoServer`` whose request handler does not print a line per request."""
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    class QuietHandler(MotoRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            """Stay quiet: the test output is ours, not the server's."""

    class QuietServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)
            lock = threading.Lock()

            def one_at_a_time(environ: Any, start_response: Any) -> list[bytes]:
                # Connections are still served concurrently, but moto's in-memory backends are
                # not thread-safe (a dict changing size under iteration answers 500), where AWS
                # is: each request is handled whole, one at a time.
                with lock:
                    return list(app(environ, start_response))

            self._server = make_server(
                self._ip_address, self._port, one_at_a_time, True, request_handler=QuietHandler
            )
            self._server_ready_event.set()
            self._server.serve_forever()

    return QuietServer


class MotoServer:
    """moto's ``ThreadedMotoServer`` on 127.0.0.1, as a context manager.

    ``url`` is the endpoint to pass as ``endpoint_url``; :meth:`client` builds a boto3 client for
    it; :meth:`reset` wipes every backend; :meth:`enforce_iam` makes moto check IAM policies.
    """

    region: str = "us-east-1"

    def __init__(self, *, region: str = "us-east-1") -> None:
        self.region = region
        self.url = ""
        self._server: Any = None

    def start(self) -> None:
        """Start the server on a free loopback port (returns when it accepts connections)."""
        if self._server is not None:
            return
        # Port 0: the server binds a free port itself, so no other process can take it between
        # choosing and binding.
        server = _quiet_server_class()(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self.url = f"http://{host}:{port}"

    def stop(self) -> None:
        """Stop the server."""
        if self._server is not None:
            self._server.stop()
            self._server = None

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
        override ``aws_access_key_id``/``aws_secret_access_key``/``config``); no profile or
        config file is read and the environment is left unchanged.
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
        return session.client(service, endpoint_url=self.url, **kwargs)

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
        host, port = self._server.get_host_and_port()
        connection = http.client.HTTPConnection(host, port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers={"Content-Type": "text/plain"})
            response = connection.getresponse()
            answer = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"moto answered {response.status} to POST {path}")
        return answer
