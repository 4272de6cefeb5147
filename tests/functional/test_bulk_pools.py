"""``bulk`` sizes the connection pools to its ``--concurrency``: no connection is thrown away.

urllib3 (hvac's and botocore's HTTP client) keeps 10 connections per host by default; with
more threads than that, each request beyond the pool opens a connection and discards it
afterwards ("Connection pool is full, discarding connection"), a TCP (and, in production, TLS)
handshake per request. Run against OpenBao, moto and the Unkey emulator, at the concurrency
users pick and at the most the command accepts.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from tests.unit.test_bulk_cli import main
from unkey_secrets.cli.bulk import MAX_CONCURRENCY
from unkey_secrets.testing.emulator import EmulatorServer

DISCARDED = "Connection pool is full"


@pytest.mark.parametrize("concurrency", [16, MAX_CONCURRENCY])
@pytest.mark.parametrize("store_name", ["vault", "aws"])
def test_bulk_keeps_every_connection_it_opens(
    store_name: str,
    concurrency: int,
    tmp_path: Path,
    unkey_env: dict[str, str],
    vault_env: dict[str, str],
    aws_env: dict[str, str],
    unkey_emulator_server: EmulatorServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api_id = unkey_env["UNKEY_API_ID"]
    count = concurrency + concurrency // 2
    path = tmp_path / "keys.csv"
    path.write_text(
        "api,alias,externalId\n" + "".join(f"{api_id},p{i},t{i}\n" for i in range(count))
    )
    argv = ["--json", "--store", store_name, "bulk", str(path)]
    # Secrets Manager's write quota is AWS's; moto has none to keep to.
    argv += ["--concurrency", str(concurrency), "--store-writes-per-second", "10000"]
    out = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="urllib3.connectionpool"):
        assert main(argv, out, io.StringIO()) == 0, out.getvalue()[-2000:]
    assert f'"created": {count}' in out.getvalue()
    discarded = [r for r in caplog.records if DISCARDED in r.getMessage()]
    assert not discarded, f"{len(discarded)} connections discarded at concurrency {concurrency}"
