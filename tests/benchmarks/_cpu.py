"""Where a client's CPU goes: a sampling profile by library, and moto in a process of its own.

:class:`CpuSampler` samples the main thread's stack on the process's CPU clock (``SIGPROF``
from ``setitimer(ITIMER_PROF)``: a sample every so much CPU, user and system, none while the
process waits on a socket), and charges each sample to the library that owns the innermost
frame. Standard-library frames are charged to the code that called them (``json`` called by
us is ours), except ``http.client`` and its ``email`` header parser, which stand on their own,
and a socket send or receive, which is charged to ``socket I/O`` (the system call, whoever
makes it). Unlike cProfile it adds no cost per function call, so the shares are those of an
unprofiled run; the cost is a signal every few milliseconds of CPU.

:class:`RemoteMoto` runs ``python -m unkey_secrets.testing.moto`` in a child process, so the
CPU moto spends answering is never counted as the client's (``MotoServer`` serves from a thread
of the process that starts it).
"""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import sysconfig
import time
from types import FrameType, TracebackType
from typing import Any

#: The CPU between two samples, in seconds (the kernel rounds it up to its tick).
INTERVAL = 0.001
_SITE = os.sep + "site-packages" + os.sep
_OURS = os.sep + "unkey_secrets" + os.sep
_STDLIB = sysconfig.get_paths()["stdlib"] + os.sep
#: Innermost frames that are a socket send or receive (the system call under them).
_SOCKET_FRAMES = frozenset(
    {
        "DeadlineSocket.sendall",
        "DeadlineSocket.send",
        "DeadlineSocket.recv",
        "DeadlineSocket.recv_into",
        "DeadlineStream.read",
        "DeadlineStream.write",
        "SocketIO.readinto",
        "SyncStream.read",
        "SyncStream.write",
    }
)


def owner(filename: str) -> str | None:
    """The library a frame of ``filename`` belongs to; None for the standard library."""
    if _SITE in filename:
        return filename.split(_SITE, 1)[1].split(os.sep, 1)[0]
    if _OURS in filename:
        return "unkey_secrets"
    if filename.startswith(_STDLIB):
        rest = filename[len(_STDLIB) :]
        if rest.startswith(("http" + os.sep + "client", "email" + os.sep)):
            return "http.client"
        return None
    return None  # <frozen ...>, <string>: the standard library's own


class CpuSampler:
    """``with CpuSampler() as sampler:`` samples the main thread while inside; then read it.

    ``shares()`` is each library's part of the samples; ``cpu`` the process CPU seconds spent
    inside (user + system), ``system`` the system part.
    """

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self.counts: collections.Counter[str] = collections.Counter()
        self.cpu = 0.0
        self.system = 0.0
        self._previous: Any = None
        self._started: os.times_result | None = None

    def _sample(self, signum: int, frame: FrameType | None) -> None:
        if frame is not None:
            self.counts[_charge(frame)] += 1

    def __enter__(self) -> CpuSampler:
        self._previous = signal.signal(signal.SIGPROF, self._sample)
        self._started = os.times()
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        ended = os.times()
        signal.signal(signal.SIGPROF, self._previous)
        assert self._started is not None
        self.system = ended.system - self._started.system
        self.cpu = ended.user - self._started.user + self.system

    def shares(self) -> list[tuple[str, float]]:
        """(library, share of the samples), largest first."""
        total = sum(self.counts.values()) or 1
        return [(name, count / total) for name, count in self.counts.most_common()]


def _charge(frame: FrameType) -> str:
    code = frame.f_code
    if getattr(code, "co_qualname", code.co_name) in _SOCKET_FRAMES:
        return "socket I/O"
    current: FrameType | None = frame
    while current is not None:
        found = owner(current.f_code.co_filename)
        if found is not None:
            return found
        current = current.f_back
    return "other"


class RemoteMoto:
    """``with RemoteMoto() as moto:`` moto's server in a child process; ``moto.client(...)``."""

    region = "us-east-1"

    def __init__(self) -> None:
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> RemoteMoto:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "unkey_secrets.testing.moto", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        found = re.search(r"http://\S+", self._process.stdout.readline())
        if found is None:
            self._process.terminate()
            raise RuntimeError("moto's server did not start")
        self.url = found.group(0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=30)

    def client(self, service: str) -> Any:
        """A boto3 client for ``service`` on this server (as ``MotoServer.client`` builds it)."""
        from unkey_secrets.testing.moto import MotoServer

        # MotoServer.client reads only the URL and the region: a server object not started
        # here hands out clients for the child's server.
        stand_in = MotoServer(region=self.region)
        stand_in.url = self.url
        return stand_in.client(service)


def cpu_seconds() -> float:
    """This process's CPU time so far (every thread, user and system)."""
    return time.process_time()
