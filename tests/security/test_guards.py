"""Each guard of unkey_secrets._redact on its own: it does its job and changes nothing else."""

from __future__ import annotations

import copy
import datetime as dt
import http.client
import json
import logging
import logging.handlers
import pickle
import queue
import secrets
import subprocess
import sys
import threading
from typing import Any

import pytest

from unkey_secrets import ConfigurationError, IssuedKey, Secret, _redact
from unkey_secrets._payload import key_fields
from unkey_secrets._redact import MASK, MaskedDict, MaskedText, confined, install_guards, scrub

from ._canary import new_canary


def issued(canary: str) -> IssuedKey:
    return IssuedKey(
        key_id="key_" + secrets.token_hex(8),
        secret=Secret(canary),
        api_id="api_" + secrets.token_hex(8),
        issued_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    )


def test_in_flight_plaintext_is_masked_in_every_spelling() -> None:
    canary = new_canary() + '"\\é'
    install_guards()
    logger = logging.getLogger("guards.spellings")
    out: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: out.append(f"{logging.Formatter().format(r)} {r.__dict__!r}")  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        with confined(Secret(canary)):
            body = json.dumps({"SecretString": json.dumps({"k": canary})}).encode()
            logger.debug("raw %s", canary)
            logger.debug("repr %r", canary)
            logger.debug("body %s", body)
            logger.debug("params %s", {"body": body})
            try:
                raise ValueError(canary)
            except ValueError:
                logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(out)
    random_part = canary[7:31]
    assert random_part not in text
    assert text.count(MASK) >= 5


def test_queued_record_is_clean_after_confinement() -> None:
    canary = new_canary()
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    logger = logging.getLogger("guards.queue.child")
    handler = logging.handlers.QueueHandler(q)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        install_guards()
        with confined(Secret(canary)):
            logger.debug("sending %s", canary)
    finally:
        logger.removeHandler(handler)
    record = q.get_nowait()
    assert canary not in logging.Formatter().format(record)


def test_known_shapes_are_masked_without_anything_in_flight() -> None:
    canary = new_canary()
    botocore_body = repr(json.dumps({"SecretString": json.dumps({"key": canary})}).encode())
    sdk_repr = f"V2KeysCreateKeyResponseData(key_id='key_1', key='{canary}')"
    unkey_json = json.dumps({"data": {"keyId": "key_1", "key": canary}})
    decrypted = json.dumps({"data": {"keyId": "key_1", "plaintext": canary}})
    for text in (botocore_body, sdk_repr, unkey_json, decrypted, f"'SecretString': '{canary}'"):
        assert canary[7:] not in scrub(text), text
    plain = "provisioned key_id=key_1 api_id=api_1"
    assert scrub(plain) is plain


def test_install_guards_keeps_levels_handlers_and_chains_the_factory() -> None:
    root = logging.getLogger()
    before = (root.level, list(root.handlers), logging.getLogger("botocore").level)
    seen: list[str] = []
    previous = logging.getLogRecordFactory()

    def users_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        seen.append(record.name)
        return record

    logging.setLogRecordFactory(users_factory)
    try:
        install_guards()
        install_guards()
        assert (root.level, list(root.handlers), logging.getLogger("botocore").level) == before
        canary = new_canary()
        with confined(Secret(canary)):
            record = logging.getLogger("guards.chain").makeRecord(
                "guards.chain", logging.INFO, __file__, 1, "%s", (canary,), None
            )
        assert seen[-1] == "guards.chain"  # the user's factory still runs
        assert canary not in record.getMessage()  # and so does ours, in front of it
    finally:
        logging.setLogRecordFactory(previous)
        install_guards()


def test_confined_registry_is_refcounted_across_threads() -> None:
    canary = new_canary()
    secret = Secret(canary)
    barrier = threading.Barrier(8)

    def worker() -> None:
        with confined(secret):
            barrier.wait()
            assert scrub(canary) == MASK

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert canary not in _redact._needles
    assert scrub(canary) == canary


def test_http_client_debuglevel_refuses_the_write(
    capfd: pytest.CaptureFixture[str], openbao_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from unkey_secrets.stores.vault import VaultStore

    canary = new_canary()
    store = VaultStore(openbao_server.client())
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    with pytest.raises(ConfigurationError, match="debuglevel"):
        store.put(issued(canary))
    out, err = capfd.readouterr()
    assert canary not in out + err


def test_masked_dict_hides_values_but_serialises() -> None:
    canary = new_canary()
    fields = key_fields(issued(canary))
    assert isinstance(fields, MaskedDict)
    for text in (repr(fields), str(fields), f"{fields}", repr(copy.copy(fields))):
        assert canary not in text
    assert canary not in repr(copy.deepcopy(fields))
    assert json.loads(json.dumps(fields))["key"] == canary
    with pytest.raises(TypeError):
        pickle.dumps(fields)


def test_masked_text_hides_its_repr_only() -> None:
    canary = new_canary()
    text = MaskedText(json.dumps({"key": canary}))
    assert canary not in repr(text)
    assert canary not in repr({"SecretString": text})
    assert canary in str(text)
    assert json.loads(text)["key"] == canary
    assert canary in json.dumps({"SecretString": text})
    with pytest.raises(TypeError):
        pickle.dumps(text)


def test_live_stack_during_a_vault_write_shows_no_plaintext(openbao_server: Any) -> None:
    """What a sampling profiler or an error reporter sees while the write is under way."""
    from unkey_secrets.stores.vault import VaultStore

    canary = new_canary()
    client = openbao_server.client()
    seen: list[str] = []
    real = client.secrets.kv.v2.create_or_update_secret

    def spy(*args: Any, **kwargs: Any) -> Any:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_globals.get("__name__", "").startswith("unkey_secrets"):
                seen.extend(f"{k}={v!r}" for k, v in frame.f_locals.items())
            frame = frame.f_back
        return real(*args, **kwargs)

    client.secrets.kv.v2.create_or_update_secret = spy
    VaultStore(client).put(issued(canary))
    assert seen
    assert not [line for line in seen if canary in line]


def test_errors_leaving_a_store_carry_no_frame_locals() -> None:
    import traceback

    from unkey_secrets.stores.base import SecretStore

    canary = new_canary()

    class Exploding(SecretStore):
        name = "exploding"

        def _put(self, key: IssuedKey, path: str) -> Any:
            value = json.dumps({"key": key.secret.reveal()})  # what a careless backend holds
            raise RuntimeError(f"write of {len(value)} bytes failed")

        def _set_current(self, key: IssuedKey, path: str, alias: str, expected: Any) -> Any:
            raise NotImplementedError

        def _get(self, path: str) -> Any:
            raise NotImplementedError

        def _get_current(self, path: str) -> Any:
            raise NotImplementedError

        def _key_entry(self, path: str, api_id: str, key_id: str) -> Any:
            raise NotImplementedError

    with pytest.raises(RuntimeError) as caught:
        Exploding().put(issued(canary))
    error = caught.value
    assert error.__traceback__ is not None
    # From the store's entry point down; the test's own frame is the caller's business.
    rendered = traceback.TracebackException(
        type(error), error, error.__traceback__.tb_next, capture_locals=True
    )
    assert canary not in "".join(rendered.format())


def test_disable_core_dumps() -> None:
    code = (
        "import resource; from unkey_secrets._redact import disable_core_dumps; "
        "assert disable_core_dumps(); print(resource.getrlimit(resource.RLIMIT_CORE))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "(0, 0)"
