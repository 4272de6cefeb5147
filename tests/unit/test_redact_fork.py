"""The confinement guard's registry lock after a fork: a child never inherits it held."""

from __future__ import annotations

import os
import threading

import pytest

from unkey_secrets import _redact
from unkey_secrets._secret import Secret


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_while_another_thread_holds_the_lock_leaves_the_child_a_free_one() -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with _redact._lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: the registry must take its lock at once
            ok = _redact._lock.acquire(timeout=2)
            if ok:
                _redact._lock.release()
                with _redact.confined(Secret("canary_fork_0123456789abcdef")):
                    pass
            os._exit(0 if ok else 3)
    finally:
        release.set()
        holder.join()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child found the registry lock held"
