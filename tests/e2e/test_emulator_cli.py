"""``python -m unkey_secrets.testing.emulator``, run as a newcomer would, in a fresh process."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys

from unkey_secrets import UnkeyClient

COMMAND = [sys.executable, "-m", "unkey_secrets.testing.emulator"]
OPTIONS = [
    "--host",
    "--port",
    "--root-key",
    "--api",
    "--list-cache-seconds",
    "--rate-limit",
    "--allow-non-loopback",
]


def test_help_explains_every_option() -> None:
    done = subprocess.run(
        [*COMMAND, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    options = done.stdout.split("options:", 1)[1]
    # Each entry: its names, then its help on the same line or on the indented lines below.
    entries = re.split(r"\n  (?=-)", "\n" + options.strip("\n"))
    described = {}
    for entry in filter(None, (e.strip() for e in entries)):
        names = re.findall(r"(?<![\w-])--[a-z-]+", entry.split("  ", 1)[0])
        text = entry.split("  ", 1)[1].strip() if "  " in entry else ""
        for name in names:
            described[name] = text
    for option in OPTIONS:
        assert len(described.get(option, "")) > 10, (option, done.stdout)


def test_prints_url_root_key_and_apis_and_serves_until_sigterm() -> None:
    process = subprocess.Popen(
        [*COMMAND, "--root-key", "unkey_e2e_local", "--api", "demo", "--api", "other"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline().rstrip("\n") for _ in range(4)]
        url = re.fullmatch(r"Unkey emulator listening on (http://127\.0\.0\.1:\d+)", lines[0])
        assert url, lines
        api = re.fullmatch(r"api demo (api_\w+)", lines[1])
        assert api, lines
        assert re.fullmatch(r"api other api_\w+", lines[2]), lines
        assert lines[3] == "root key unkey_e2e_local"
        with UnkeyClient("unkey_e2e_local", base_url=url.group(1)) as unkey:
            issued = unkey.create_key(api.group(1))
            assert unkey.verify_key(issued.secret).valid
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert err == ""


def test_a_taken_port_is_one_error_line_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*COMMAND, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: cannot listen on 127.0.0.1 port {port}: Address already in use"
    ]


def test_bad_options_are_usage_errors_without_a_traceback() -> None:
    everywhere = "0.0.0.0"  # noqa: S104 - refused without --allow-non-loopback
    for argv in (["--port", "70000"], ["--port", "x"], ["--host", everywhere]):
        done = subprocess.run(
            [*COMMAND, *argv], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, argv
        assert "Traceback" not in done.stderr
        assert done.stderr.splitlines()[-1].startswith("python -m unkey_secrets.testing.emulator:")
