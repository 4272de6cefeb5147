"""Batch reads for :class:`~unkey_secrets.stores.aws.SecretsManagerStore`: ``BatchGetSecretValue``.

:func:`read_many` is the store's :meth:`~unkey_secrets.SecretStore.get_many`: the secret names
of the refs (each once) go in calls of at most :data:`MAX_BATCH` names (``SecretIdList``: 1-20
in the service model and the API reference), run at once up to ``concurrency`` (and the
client's connection pool). A call answers each name in ``SecretValues`` (the AWSCURRENT
version, in GetSecretValue's shape) or in ``Errors`` (``SecretId``, ``ErrorCode``,
``Message``); a ``NextToken`` is followed. Each value is decoded by :func:`decode`, the same
function a single read uses, and then checked for its ref by the base class
(:meth:`~unkey_secrets.SecretStore._check_read`), so a batch read returns exactly the key or the
error class :meth:`~unkey_secrets.SecretStore.get` or
:meth:`~unkey_secrets.SecretStore.get_current` would have given. An ``Errors`` entry becomes
the error its code becomes for a single read (:func:`~unkey_secrets.stores.aws.errors.translate`:
ResourceNotFoundException a :class:`~unkey_secrets.SecretNotFoundError`, DecryptionFailure
and AccessDeniedException a :class:`~unkey_secrets.StoreAccessError`...), never quoting the
entry's message.

When the call itself fails:

* refused (``AccessDeniedException``, or a 403 without an AWS error code: a reader policy
  without ``secretsmanager:BatchGetSecretValue``) or unsupported (an endpoint that does not know the
  operation, a client without ``batch_get_secret_value``): every ref is read alone
  (GetSecretValue), and so is every later :meth:`get_many` of this store object; logged once,
  at WARNING, on ``unkey_secrets.stores.aws``;
* with an error that belongs to one secret (ResourceNotFoundException, InvalidRequestException,
  InvalidParameterException, DecryptionFailure, ValidationException) or an answer that cannot be
  decoded: that call's names are read alone, each getting its own answer;
* otherwise (throttling, a 5xx, a lost connection, expired credentials, a breach of the
  transport policy): each of its refs gets the error a single read would have raised, with
  its own location;
* before it was sent, because the client's credentials could not be had (a role whose
  AssumeRole is refused, throttled or unreachable): each of its refs gets that error, and no
  name is read alone (which would ask STS once per name).

A name the answers leave out is read alone too. Every call goes through the store's client,
so the transport policy (a deadline per request, a byte budget per answer:
:mod:`unkey_secrets.transport.botocore`) applies to each as to every other request.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from ..._errors import StoredValueError, StoreError, UnkeySecretsError
from ..._models import KeyRef, StoredKey
from ...telemetry.tracing import store_call
from ..base import SecretStore
from .errors import STORE, botocore_errors, call, error_code, translate
from .secrets import parse_stored_key

if TYPE_CHECKING:
    from .store import SecretsManagerStore

__all__ = ["MAX_BATCH", "OPERATION", "decode", "pool_size", "read_many"]

#: The most names one BatchGetSecretValue takes (``SecretIdList``, 1-20).
MAX_BATCH = 20
#: The API operation, as errors and spans name it.
OPERATION = "BatchGetSecretValue"
# Pages followed for one call's names: each page answers at least one name, or the rest are
# read alone.
_MAX_PAGES = MAX_BATCH + 1
# The whole call refused: the caller's policy does not allow BatchGetSecretValue.
_REFUSED = frozenset({"AccessDeniedException", "AccessDenied"})
# The endpoint does not know the operation.
_UNSUPPORTED = frozenset(
    {
        "UnknownOperationException",
        "UnknownOperation",
        "InvalidAction",
        "NotImplemented",
        "NotImplementedException",
        "UnsupportedOperation",
    }
)
# Errors of the whole call that one of its secrets caused: its names are read alone.
_ONE_BY_ONE = frozenset(
    {
        "ResourceNotFoundException",
        "InvalidRequestException",
        "InvalidParameterException",
        "DecryptionFailure",
        "ValidationException",
    }
)
_ARN_RESOURCE = ":secret:"
# AWS appends "-" and six characters to a secret's name to make its ARN.
_ARN_SUFFIX = 7

_log = logging.getLogger("unkey_secrets.stores.aws")
_lock = threading.Lock()

_Outcome = StoredKey | StoreError


def decode(answer: Mapping[str, Any], name: str) -> StoredKey:
    """The key in a GetSecretValue answer (or a ``SecretValues`` entry) read from ``name``.

    Raises :class:`~unkey_secrets.StoredValueError`, without quoting the value, when the answer
    holds no SecretString or its value is not an unkey-secrets key.
    """
    stored = parse_stored_key(answer, name)
    if stored is None:
        location = str(answer.get("ARN") or name)
        raise StoredValueError(
            f"value at {location} is not an unkey-secrets key: no SecretString",
            store=STORE,
            location=location,
        )
    return stored


def pool_size(client: Any) -> int | None:
    """The size of a botocore client's connection pool (``max_pool_connections``), if known."""
    config = getattr(getattr(client, "meta", None), "config", None)
    size = getattr(config, "max_pool_connections", None)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def read_many(
    store: SecretsManagerStore, refs: list[KeyRef], concurrency: int
) -> list[StoredKey | StoreError]:
    """``store``'s :meth:`~unkey_secrets.SecretStore.get_many` of ``refs`` (validated), in order.

    Returns, for each ref, its :class:`~unkey_secrets.StoredKey` or the
    :class:`~unkey_secrets.StoreError` a single read of it would have raised. Costs
    ``ceil(names / 20)`` BatchGetSecretValue calls (one per 20 distinct names), plus one
    GetSecretValue per name read alone (see the module).
    """
    batched = getattr(store.client, "batch_get_secret_value", None)
    if store._batch_off is None and not callable(batched):
        _turn_off(store, "the client has no batch_get_secret_value")
    if store._batch_off is not None:
        return SecretStore._get_many(store, refs, concurrency)
    names = list(dict.fromkeys(store._ref_location(ref) for ref in refs))
    chunks = [names[i : i + MAX_BATCH] for i in range(0, len(names), MAX_BATCH)]
    workers = min(concurrency, len(chunks), store._max_parallel_reads() or concurrency)
    answered: dict[str, _Outcome] = {}
    if workers <= 1:
        for chunk in chunks:
            answered.update(_read_chunk(store, chunk))
    else:
        # Each call runs in a copy of the caller's context: its deadline and current span.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, _read_chunk, store, chunk)
                for chunk in chunks
            ]
            for future in futures:
                answered.update(future.result())
    alone = [ref for ref in refs if store._ref_location(ref) not in answered]
    read_alone = iter(SecretStore._get_many(store, alone, concurrency) if alone else ())
    results: list[StoredKey | StoreError] = []
    given: set[str] = set()
    for ref in refs:
        name = store._ref_location(ref)
        outcome = answered.get(name)
        if outcome is None:
            results.append(next(read_alone))
        elif isinstance(outcome, StoreError):
            # Two refs of one name each get their own error object.
            results.append(copy.copy(outcome) if name in given else outcome)
        else:
            try:
                results.append(store._check_read(ref, name, outcome))
            except StoredValueError as exc:
                results.append(exc)
        given.add(name)
    return results


class _Caught:
    """A botocore error the whole call raised, kept to be translated for each of its names."""

    __slots__ = ("code", "error", "forbidden")

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.code = error_code(error)
        response = getattr(error, "response", None)
        meta = response.get("ResponseMetadata") if isinstance(response, Mapping) else None
        status = meta.get("HTTPStatusCode") if isinstance(meta, Mapping) else None
        #: A 403 without an error code of AWS's (moto answers its IAM refusal so: the code
        #: botocore reads is "403"): the operation was refused.
        self.forbidden = status == 403 and (self.code is None or self.code.isdigit())

    def translated(self, name: str) -> UnkeySecretsError:
        return translate(self.error, operation=OPERATION, location=name)


def _sender(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method``, answering a botocore error it raises as a :class:`_Caught` instead."""

    def send(**params: Any) -> Any:
        try:
            return method(**params)
        except botocore_errors() as exc:
            return _Caught(exc)

    return send


def _read_chunk(store: SecretsManagerStore, names: list[str]) -> dict[str, _Outcome]:
    """The outcome of each of ``names`` (at most :data:`MAX_BATCH`) that the batch answered.

    A name left out is to be read alone.
    """
    answered: dict[str, _Outcome] = {}
    send = _sender(store.client.batch_get_secret_value)
    token: str | None = None
    for _ in range(_MAX_PAGES):
        params: dict[str, Any] = {"SecretIdList": names}
        if token is not None:
            params["NextToken"] = token
        caught: _Caught | None = None
        try:
            with store_call(store.name, "get_many", keys=len(names)):
                reply = call(send, operation=OPERATION, location=names[0], **params)
                if isinstance(reply, _Caught):
                    caught = reply
                    raise reply.translated(names[0])  # the span records the failure
        except UnkeySecretsError as exc:
            if caught is not None:
                _whole_call_failed(store, caught, names, answered)
            elif isinstance(exc, StoreError) and not isinstance(exc, StoredValueError):
                # Raised before anything was sent: the client's credentials could not be had
                # (the role's AssumeRole refused, throttled, unreachable). A read alone would
                # ask for them again, once per name: each name gets this error instead.
                for name in names:
                    answered.setdefault(name, copy.copy(exc))
            # Otherwise an answer that cannot be decoded: each name is read alone.
            return answered
        _take(reply, names, answered)
        next_token = reply.get("NextToken") if isinstance(reply, Mapping) else None
        if len(answered) == len(names) or not isinstance(next_token, str) or not next_token:
            break
        token = next_token
    return answered


def _whole_call_failed(
    store: SecretsManagerStore, caught: _Caught, names: list[str], answered: dict[str, _Outcome]
) -> None:
    if caught.code in _REFUSED:
        _turn_off(store, f"AWS refused {OPERATION} ({caught.code})")
    elif caught.forbidden:
        _turn_off(store, f"AWS refused {OPERATION} (HTTP 403)")
    elif caught.code in _UNSUPPORTED:
        _turn_off(store, f"the endpoint does not support {OPERATION} ({caught.code})")
    elif caught.code not in _ONE_BY_ONE:
        for name in names:
            error = caught.translated(name)
            if isinstance(error, StoreError) and name not in answered:
                answered[name] = error


def _take(reply: Any, names: list[str], answered: dict[str, _Outcome]) -> None:
    """Record the outcome of each name ``reply`` (one page) answers."""
    if not isinstance(reply, Mapping):
        return
    wanted = set(names)
    for entry in reply.get("SecretValues") or ():
        if not isinstance(entry, Mapping):
            continue
        name = _name_of(entry.get("Name"), wanted) or _name_of(entry.get("ARN"), wanted)
        if name is None or name in answered:
            continue
        try:
            answered[name] = decode(entry, name)
        except StoreError as exc:
            answered[name] = exc
    for entry in reply.get("Errors") or ():
        if not isinstance(entry, Mapping):
            continue
        name = _name_of(entry.get("SecretId"), wanted)
        if name is None or name in answered:
            continue
        answered[name] = _entry_error(entry, name)


def _name_of(secret_id: object, wanted: set[str]) -> str | None:
    """Which of ``wanted`` ``secret_id`` (a name, or an ARN) names; None if none."""
    if not isinstance(secret_id, str):
        return None
    if secret_id in wanted:
        return secret_id
    if secret_id.startswith("arn:") and _ARN_RESOURCE in secret_id:
        named = secret_id.split(_ARN_RESOURCE, 1)[1]
        for candidate in (named, named[:-_ARN_SUFFIX]):
            if candidate in wanted:
                return candidate
    return None


def _entry_error(entry: Mapping[str, Any], name: str) -> StoreError:
    """The error a single read of ``name`` raises for the ``Errors`` entry's code."""
    from botocore.exceptions import ClientError

    code = entry.get("ErrorCode")
    message = entry.get("Message")
    # The message is read only as translate reads a single read's (a deletion is named as
    # such); it is never quoted.
    response: Any = {
        "Error": {
            "Code": code if isinstance(code, str) and code else "Unknown",
            "Message": message if isinstance(message, str) else "",
        }
    }
    error = translate(
        ClientError(response, OPERATION),
        operation=f"GetSecretValue in {OPERATION}",
        location=name,
    )
    if isinstance(error, StoreError):
        return error
    return StoreError(  # pragma: no cover - translate answers a ClientError with a StoreError
        f"Secrets Manager refused GetSecretValue in {OPERATION} on {name}",
        store=STORE,
        location=name,
    )


def _turn_off(store: SecretsManagerStore, reason: str) -> None:
    """Read every ref alone from now on, for this store object; said once."""
    with _lock:
        if store._batch_off is not None:
            return
        store._batch_off = reason
    _log.warning(
        "Secrets Manager batch reads are off for this store object (%s): each key is read "
        "with its own GetSecretValue from now on; allow secretsmanager:BatchGetSecretValue "
        'on Resource "*" (as policies/aws-reader.json does) to read up to %d keys per call',
        reason,
        MAX_BATCH,
    )
