"""Trace and kill the library's rotation: every Unkey request and every store call.

A :class:`Tracer` labels each outgoing call (``unkey.keys.rerollKey``, ``aws.PutSecretValue
rotation``, ``vault.POST data alias``) and can kill the process before or after call ``i`` by
raising :class:`Killed`, a ``BaseException``. Once killed, every later call raises too: the
process is dead, so no compensation can reach Unkey or the store. :func:`dead_owner` makes the
killed run's rotation record name a process that has exited, as a killed process's would.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from unkey_secrets.rotation.record import Owner


class Killed(BaseException):
    """The process died here (SIGKILL, OOM): nothing after this line runs."""


def _kind(name: str) -> str:
    if "rotated-from" in name:
        return "rotation"
    if "/by-name/" in name:
        return "alias"
    return "key"


@dataclass
class Tracer:
    """Counts every outgoing call and kills the process at a chosen one."""

    kill_at: tuple[int, str] | None = None  # (call index, "before" | "after")
    calls: list[str] = field(default_factory=list)
    dead: bool = False
    #: (index or label, phase) -> action run at that point (may block, inject faults...).
    on_call: dict[tuple[int | str, str], Callable[[], None]] = field(default_factory=dict)
    #: (label, phase, n) -> action run at the n-th call so labelled (1 is the first). Calls
    #: made at once come in any order, so their indexes differ from run to run; this does not.
    on_nth: dict[tuple[str, str, int], Callable[[], None]] = field(default_factory=dict)
    _local: threading.local = field(default_factory=threading.local)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def before(self, label: str) -> None:
        if self.dead:
            raise Killed(f"dead: {label} never sent")
        self.calls.append(label)
        index = len(self.calls) - 1
        self._local.index = index
        self._fire(index, label, "before")
        if self.kill_at == (index, "before"):
            self.dead = True
            raise Killed(f"killed before call {index} ({label})")

    def after(self, label: str) -> None:
        if self.dead:
            raise Killed(f"dead: the answer to {label} was never read")
        index = getattr(self._local, "index", len(self.calls) - 1)
        self._fire(index, label, "after")
        if self.kill_at == (index, "after"):
            self.dead = True
            raise Killed(f"killed after call {index} ({label})")

    def _fire(self, index: int, label: str, phase: str) -> None:
        for key in ((index, phase), (label, phase)):
            action = self.on_call.pop(key, None)
            if action is not None:
                action()
        with self._lock:
            seen = self._seen[label, phase] = self._seen.get((label, phase), 0) + 1
            nth = self.on_nth.pop((label, phase, seen), None)
        if nth is not None:
            nth()

    def unkey_calls(self) -> list[str]:
        return [c for c in self.calls if c.startswith("unkey.")]

    def store_calls(self) -> list[str]:
        return [c for c in self.calls if not c.startswith("unkey.")]

    # -- wiring ------------------------------------------------------------------------------

    def httpx_client(self) -> httpx.Client:
        def request(req: httpx.Request) -> None:
            self.before("unkey." + req.url.path.rsplit("/", 1)[-1])

        def response(res: httpx.Response) -> None:
            self.after("unkey." + res.request.url.path.rsplit("/", 1)[-1])

        return httpx.Client(event_hooks={"request": [request], "response": [response]})


class BotoTap:
    """botocore event hooks on one Secrets Manager client, reporting to ``tracer``."""

    def __init__(self, client: Any) -> None:
        self.tracer: Tracer | None = None
        client.meta.events.register("before-call.secrets-manager", self._before)
        client.meta.events.register("after-call.secrets-manager", self._after)

    @staticmethod
    def _label(model: Any, params: Any) -> str:
        name = ""
        body = params.get("body") if isinstance(params, dict) else None
        with contextlib.suppress(TypeError, ValueError):
            decoded = json.loads(body) if isinstance(body, (bytes, str)) and body else {}
            name = str(decoded.get("SecretId") or decoded.get("Name") or "")
        return f"aws.{model.name} {_kind(name)}"

    def _before(self, model: Any, params: Any = None, context: Any = None, **_: Any) -> None:
        label = self._label(model, params)
        if isinstance(context, dict):
            context["trace_label"] = label
        if self.tracer is not None:
            self.tracer.before(label)

    def _after(self, model: Any, context: Any = None, **_: Any) -> None:
        label = context.get("trace_label") if isinstance(context, dict) else None
        if self.tracer is not None:
            self.tracer.after(label or f"aws.{model.name}")


class VaultTap:
    """Wraps an hvac client's ``adapter.request`` on the instance, reporting to ``tracer``."""

    def __init__(self, client: Any) -> None:
        self.tracer: Tracer | None = None
        adapter = client.adapter
        original = adapter.request

        def request(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            parts = url.split("/")
            kind = "metadata" if "metadata" in parts else "data" if "data" in parts else url
            label = f"vault.{method.upper()} {kind} {_kind(url)}"
            tracer = self.tracer
            if tracer is not None:
                tracer.before(label)
            try:
                answer = original(method, url, *args, **kwargs)
            except Exception:
                if tracer is not None:
                    tracer.after(label)
                raise
            if tracer is not None:
                tracer.after(label)
            return answer

        adapter.request = request


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


@contextlib.contextmanager
def dead_owner(monkeypatch: pytest.MonkeyPatch, pid: int) -> Iterator[None]:
    """While inside, the rotation's owner is process ``pid`` on this host (one that died)."""

    def me(cls: type[Owner], now_ms: int) -> Owner:
        return cls(secrets.token_hex(8), socket.gethostname(), pid, now_ms)

    with monkeypatch.context() as patch:
        patch.setattr(Owner, "me", classmethod(me))
        yield
