"""The audit log's file and its one-line message, where they meet what is not a plain file.

A FIFO (a SIEM agent's named pipe) with no reader is refused at once instead of blocking the
command forever; with a reader it gets the events. A handler whose file could not be opened
leaves nothing behind that fails at exit. The one-line message of an event stays one line
whatever a store's answer put in a location. The real servers: tests/functional.
"""

from __future__ import annotations

import io
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from unkey_secrets._errors import ConfigurationError
from unkey_secrets.cli.app import main
from unkey_secrets.telemetry import AUDIT_LOGGER, AuditLogHandler
from unkey_secrets.telemetry.audit import emit


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("named pipes are POSIX")
    path = tmp_path / "audit.pipe"
    os.mkfifo(path, 0o600)
    return path


def _open_in_thread(path: Path) -> tuple[threading.Thread, list[object]]:
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(AuditLogHandler(path))
        except ConfigurationError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_fifo_nobody_reads_is_refused_at_once(fifo: Path) -> None:
    thread, outcome = _open_in_thread(fifo)
    thread.join(timeout=30)
    if thread.is_alive():
        # Blocked in open(): a reader lets it through, so the thread ends with the test.
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        thread.join()
        os.close(reader)
        for made in outcome:
            if isinstance(made, AuditLogHandler):
                made.close()
        pytest.fail("opening an audit log FIFO with no reader blocked")
    (error,) = outcome
    assert isinstance(error, ConfigurationError)
    assert "cannot open the audit log" in str(error)
    assert "no reader" in str(error)


def test_the_command_line_says_so_and_exits_2(
    fifo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    done: list[int] = []
    thread = threading.Thread(
        target=lambda: done.append(main(["--audit-log", str(fifo), "stores"])), daemon=True
    )
    thread.start()
    thread.join(timeout=30)
    if thread.is_alive():
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        thread.join()
        os.close(reader)
        pytest.fail("unkey-secrets --audit-log FIFO blocked with nobody reading the FIFO")
    assert done == [2]
    assert "cannot open the audit log" in capsys.readouterr().err


def test_a_fifo_with_a_reader_gets_each_event_as_a_line(fifo: Path) -> None:
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        handler = AuditLogHandler(fifo)
        logger = logging.getLogger(AUDIT_LOGGER)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            emit("key.deleted", "succeeded", {"key_id": "key_abc123def"})
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
            handler.close()
        # Writes block as on any pipe: the descriptor is not left non-blocking.
        line = os.read(reader, 65536).decode("utf-8")
    finally:
        os.close(reader)
    event = json.loads(line)
    assert line.endswith("\n")
    assert (event["action"], event["key_id"]) == ("key.deleted", "key_abc123def")


def test_a_regular_file_still_opens_blocking_and_0600(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    handler = AuditLogHandler(path)
    try:
        assert handler._fd is not None
        assert os.get_blocking(handler._fd)
    finally:
        handler.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_handler_that_could_not_open_leaves_nothing_failing_at_exit(tmp_path: Path) -> None:
    # The library user keeps the error (and so the half-made handler) until the interpreter
    # ends: logging's shutdown closes every handler it knows, this one included.
    code = textwrap.dedent(
        f"""
        from unkey_secrets._errors import ConfigurationError
        from unkey_secrets.telemetry import AuditLogHandler
        try:
            AuditLogHandler({str(tmp_path)!r})
        except ConfigurationError as exc:
            kept = exc
        print("refused")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout.strip()) == (0, "refused")
    assert done.stderr == ""


def test_the_one_line_message_stays_one_line() -> None:
    # A location comes from a store's answer (an ARN Secrets Manager returned): a newline in
    # it must not forge a second record in a text log, nor an escape sequence reach a terminal.
    logger = logging.getLogger(AUDIT_LOGGER)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    forged = "arn:aws:secretsmanager:x\nunkey_secrets.audit key.deleted succeeded\x1b[2K\r"
    try:
        emit("key.stored", "succeeded", {"key_id": "key_abc123def", "location": forged})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert text.endswith("\n")
    assert "\x1b" not in text
    assert "\r" not in text
    assert text.startswith("unkey_secrets.audit key.stored succeeded key_id=key_abc123def")
