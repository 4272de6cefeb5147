"""An httpx transport that hands each request to an in-process :class:`Emulator`: no socket.

``UnkeyClient(root_key, base_url="http://127.0.0.1", transport=EmulatorTransport(emulator))``
talks to the emulator at function-call speed, so flow tests run at unit speed, with the same
request and response schemas, semantics and fault injection as over HTTP. A dropped connection
(fault injection) becomes :class:`httpx.RemoteProtocolError`, as it would on the wire.
"""

from __future__ import annotations

import httpx

from .server import Emulator

__all__ = ["EmulatorTransport"]


class EmulatorTransport(httpx.BaseTransport):
    """Answer every request with ``emulator.handle``; only ``POST /v2/...`` routes exist."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Run the request through the emulator and return its answer."""
        if request.method != "POST":
            return httpx.Response(405, request=request)
        answer = self.emulator.handle(
            request.url.raw_path.decode(), request.headers, request.read()
        )
        if answer is None:
            raise httpx.RemoteProtocolError("connection dropped by the emulator", request=request)
        status, headers, body = answer
        return httpx.Response(status, headers=headers, content=body, request=request)
