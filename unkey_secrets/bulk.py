"""Provision many keys from a file: bounded concurrency, rate limits honoured, resumable.

:func:`provision_many` runs :func:`~unkey_secrets.provision` for each :class:`BulkLine` on a
bounded pool of threads and yields one :class:`LineResult` per line, in the order lines finish.
It reads its input lazily and keeps at most ``2 * concurrency`` lines in flight, so memory does
not grow with the number of lines. :func:`read_lines` streams a CSV or JSON-lines file into
lines; :func:`check_file` validates a whole file, streaming, before anything is sent.

What a line is, and when it counts as done (a re-run skips it, and never makes a second key):

* a line with an ``alias`` is done when the alias names a key (``provision`` refuses a taken
  alias before it calls Unkey);
* a line with an ``externalId`` and no alias is done when Unkey holds a key with that
  externalId (``apis.listKeys``, filtered by it) that this store holds too, stored without an
  alias;
* a line with both also looks for a key with that externalId stored for its alias: an earlier
  run that stored the key but did not move the alias (or, in safe mode, did not enable the key)
  is finished, not repeated;
* a line with an alias and no externalId whose alias is free looks for a key stored for its
  alias that no alias names (an earlier run killed before the alias move): the API's keys
  without an externalId are listed once per run, and those made with the line's name and meta
  are looked up in the store's metadata; one found is finished, not repeated;
* a line with neither is refused: it could not be recognised on a re-run.

A key an earlier run left half done (stored but disabled in safe mode, or stored but its alias
not moved) is finished only once it is older than ``adopt_after`` (default 10 minutes, by
Unkey's ``createdAt``): a younger one may belong to a run still working on it, and the line
fails with :class:`LineInProgressError` (run it again later). A caller that knows no other run
is alive (``exclusive=True``; the ``bulk`` command, which holds its file's lock) finishes it at
once. The alias move is conditional (only if the alias does not exist yet): an alias naming
another key is never moved. A key for
the line's externalId that carries this store's provision marker, that the store does not hold,
that is disabled and older than ``adopt_after`` was never enabled: it is deleted, and the
line's ``actions`` say so. Enabled or stored keys are never deleted.

Not safe to run twice at once over the same lines: :func:`provision_many` claims a line only
within its own process (no cross-process claim), so two runs over the same externalId-only
lines can each make a key. The ``bulk`` command holds an advisory lock on its input file for
that reason; a caller of the library must not start two runs over the same lines either.

Limits checked before anything is sent: a line over 1 MB (Unkey's request limit), and a
``meta`` over 10 KB once serialized, are refused.

Two lines naming the same alias (or externalId) never run at the same time; the later one
finds the earlier one's key. Rate limits: a 429 from Unkey, on any call and whatever its
``Retry-After``, pauses every worker for that long and sends the same call again: a 429 means
Unkey applied nothing (createKey included), so the line goes on where it was. Secrets
Manager's write quota is shared by all workers through a token bucket per quota group (default
50 requests/s each), applied to the store's botocore client for the run. A line that fails for
a transient reason after the flow settled Unkey's side (nothing left behind) is tried again;
any other failure is reported in its result and the other lines go on.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import csv
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

from ._errors import (
    AmbiguousOutcomeError,
    CompensatedError,
    FlowError,
    InvalidInputError,
    RotationConflictError,
    StoreConflictError,
    StoreError,
    StoreUnavailableError,
    UnkeyAmbiguousError,
    UnkeyRateLimitedError,
    UnkeySecretsError,
    UnkeyServerError,
    UnkeyTransportError,
)
from ._models import IssuedKey, KeyEntry
from ._validate import validate_alias, validate_api_id, validate_external_id
from .flows import ProvisionResult, RetryPolicy, finish_half_done, provision
from .rotation.core import MARKER_META_KEY, PENDING_META_KEY
from .stores.base import SecretStore
from .telemetry.tracing import flow
from .unkey import UnkeyClient
from .unkey.backoff import Backoff
from .unkey.models import KeyInfo
from .unkey.options import (
    check_meta,
    check_permissions,
    check_prefix,
    check_roles,
    check_text,
    check_timestamp,
)
from .unkey.wire import Answer, Operation, Wire

__all__ = [
    "ADOPT_AFTER",
    "AWS_WRITE_QUOTA",
    "DONE",
    "MAX_LINE_BYTES",
    "MAX_META_BYTES",
    "BulkInputError",
    "BulkLine",
    "Format",
    "LineInProgressError",
    "LineResult",
    "Status",
    "TokenBucket",
    "check_file",
    "parse_line",
    "provision_many",
    "read_lines",
]

logger = logging.getLogger("unkey_secrets.bulk")

#: Secrets Manager's default quota for each group of write operations, requests per second.
AWS_WRITE_QUOTA = 50.0
#: A line over this many bytes is refused before anything is sent (Unkey's request limit).
MAX_LINE_BYTES = 1024 * 1024
#: A ``meta`` over this many bytes (serialized as JSON) is refused before anything is sent.
MAX_META_BYTES = 10 * 1024
#: Seconds after its creation (Unkey's ``createdAt``) before a half-done key is taken for an
#: earlier, dead run's and finished (or, never enabled and unstored, deleted) by this one.
ADOPT_AFTER = 600.0
#: Secrets Manager write operations, by the quota they count against (AWS's published quotas:
#: CreateSecret, DeleteSecret, and one combined rate for the operations that change a secret).
_AWS_WRITE_GROUPS = {
    "CreateSecret": "create",
    "DeleteSecret": "delete",
    "PutSecretValue": "update",
    "UpdateSecret": "update",
    "UpdateSecretVersionStage": "update",
    "RestoreSecret": "update",
    "RotateSecret": "update",
    "ReplicateSecretToRegion": "update",
    "RemoveRegionsFromReplication": "update",
}

#: A line's outcome. Done: ``created`` (this run made the key), ``exists`` (an earlier run
#: did; nothing was sent to Unkey but the look-up and any clean-up listed in ``actions``),
#: ``completed`` (an earlier run stored the key and this run finished it: enabled it and/or
#: moved its alias). Not done: ``failed``.
Status = Literal["created", "exists", "completed", "failed"]
DONE: frozenset[str] = frozenset({"created", "exists", "completed"})

_FIELDS = {
    "api": "api_id",
    "api_id": "api_id",
    "apiId": "api_id",
    "alias": "alias",
    "name": "name",
    "externalId": "external_id",
    "external_id": "external_id",
    "prefix": "prefix",
    "meta": "meta",
    "expires": "expires",
    "permissions": "permissions",
    "roles": "roles",
}


class BulkInputError(InvalidInputError):
    """A line of the input is not a valid key description; ``line`` is its number (1-based)."""

    def __init__(self, line: int, field: str, problem: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {field}", problem)


class LineInProgressError(UnkeySecretsError):
    """A key for the line is half done and too young to be an earlier, dead run's: run later."""


@dataclass(frozen=True)
class BulkLine:
    """One key to provision: the API, how it is recognised (alias, externalId), its options."""

    number: int
    api_id: str
    alias: str | None = None
    external_id: str | None = None
    name: str | None = None
    prefix: str | None = None
    meta: Mapping[str, Any] | None = field(default=None, repr=False)
    expires: int | None = None
    permissions: tuple[str, ...] | None = None
    roles: tuple[str, ...] | None = None

    @property
    def identity(self) -> tuple[str, str, str]:
        """What recognises the line on a re-run: the alias, or else the externalId."""
        if self.alias is not None:
            return (self.api_id, "alias", self.alias)
        assert self.external_id is not None
        return (self.api_id, "external_id", self.external_id)

    def create_options(self) -> dict[str, Any]:
        """The options :func:`~unkey_secrets.provision` passes to ``keys.createKey``."""
        options: dict[str, Any] = {}
        for name in ("name", "external_id", "prefix", "meta", "expires"):
            value = getattr(self, name)
            if value is not None:
                options[name] = dict(value) if name == "meta" else value
        if self.permissions is not None:
            options["permissions"] = list(self.permissions)
        if self.roles is not None:
            options["roles"] = list(self.roles)
        return options


@dataclass(frozen=True)
class LineResult:
    """What happened to one line: no plaintext, safe to print."""

    line: int
    api_id: str
    alias: str | None
    external_id: str | None
    status: Status
    key_id: str | None = None
    location: str | None = None
    #: For a failure: the error's class name, its message (ours never hold a key) and, for a
    #: flow error, what was done to the key in Unkey.
    error: str | None = None
    message: str | None = None
    actions: tuple[str, ...] = ()
    #: How many times the line ran (transient failures and 429s run it again).
    attempts: int = 1

    @property
    def done(self) -> bool:
        """Whether the line's key exists and is stored (this run or an earlier one)."""
        return self.status in DONE


# -- input ----------------------------------------------------------------------------------


def parse_line(number: int, record: Mapping[str, Any], *, api_id: str | None = None) -> BulkLine:
    """Build a :class:`BulkLine` from one record (a CSV row or a JSON object); validate it all.

    Empty CSV cells count as absent. In CSV, ``meta`` is a JSON object and ``permissions`` and
    ``roles`` are space-separated; ``expires`` is Unix milliseconds. ``api_id`` is the API of a
    record that names none (its ``api`` field wins; the ``bulk`` command's ``--api-id``).
    Errors name the line and the field, never the value.
    """
    if _size(record) > MAX_LINE_BYTES:
        raise BulkInputError(number, "line", f"is over {MAX_LINE_BYTES} bytes (Unkey's limit)")
    values: dict[str, Any] = {}
    for raw_name, value in record.items():
        if raw_name is None:  # csv: more cells than the header has names
            raise BulkInputError(number, "row", "has more cells than the header has columns")
        name = _FIELDS.get(str(raw_name).strip())
        if name is None:
            raise BulkInputError(
                number,
                "column",
                f"unknown field {str(raw_name)[:40]!r} (known: {', '.join(sorted(_FIELDS))})",
            )
        if value is None or value == "":
            continue
        if name in values:
            raise BulkInputError(number, name, "given twice")
        values[name] = value
    if api_id is not None:
        values.setdefault("api_id", api_id)
    try:
        return _build_line(number, values)
    except BulkInputError:
        raise
    except InvalidInputError as exc:
        raise BulkInputError(number, exc.field, exc.problem) from None


def _build_line(number: int, values: dict[str, Any]) -> BulkLine:
    if "api_id" not in values:
        raise BulkInputError(
            number, "api", "is required: name the API on the line, or give a default (--api-id)"
        )
    api_id = validate_api_id(values["api_id"], "api")
    alias = values.get("alias")
    external_id = values.get("external_id")
    if alias is None and external_id is None:
        raise BulkInputError(
            number, "alias", "give an alias or an externalId, so a re-run can recognise the line"
        )
    meta = values.get("meta")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except (ValueError, RecursionError):
            raise BulkInputError(number, "meta", "is not valid JSON") from None
    if meta is not None:
        if not isinstance(meta, dict):
            raise BulkInputError(number, "meta", "must be a JSON object")
        meta = check_meta(meta)
        if _size(meta) > MAX_META_BYTES:
            raise BulkInputError(number, "meta", f"is over {MAX_META_BYTES} bytes as JSON")
        if any(str(k).startswith("unkey_secrets_") for k in meta):
            raise BulkInputError(number, "meta", "members starting 'unkey_secrets_' are ours")
    expires = values.get("expires")
    if isinstance(expires, str):
        if not expires.strip().isdigit():
            raise BulkInputError(number, "expires", "must be Unix milliseconds")
        expires = int(expires)
    return BulkLine(
        number=number,
        api_id=api_id,
        alias=None if alias is None else validate_alias(alias),
        external_id=None if external_id is None else validate_external_id(external_id),
        name=None if values.get("name") is None else check_text(values["name"], "name", 1, 255),
        prefix=None if values.get("prefix") is None else check_prefix(values["prefix"]),
        meta=meta,
        expires=None if expires is None else check_timestamp(expires, "expires"),
        permissions=_strings(values.get("permissions"), check_permissions),
        roles=_strings(values.get("roles"), check_roles),
    )


def _size(value: object) -> int:
    """Bytes of ``value`` as compact JSON (a string: its UTF-8 bytes); huge if unserializable."""
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (ValueError, TypeError, RecursionError):
        return MAX_LINE_BYTES + 1
    return len(text.encode("utf-8", "surrogatepass"))


def _strings(value: object, check: Callable[[object], list[str]]) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split()
    return tuple(check(value))


Format = Literal["csv", "jsonl"]


def _detect_format(path: Path, first: str) -> Format:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    return "jsonl" if first.lstrip().startswith("{") else "csv"


def read_lines(
    path: str | Path, *, format: Format | None = None, api_id: str | None = None
) -> Iterator[BulkLine]:
    """Stream the lines of a CSV (with a header) or JSON-lines file, one at a time.

    The format comes from ``format``, else the extension (``.csv``; ``.jsonl``, ``.ndjson``,
    ``.json``), else the first character (``{``: JSON lines). ``api_id`` is the API of a line
    that names none (a line's ``api`` wins). Blank lines are skipped; a line that is not valid
    raises :class:`BulkInputError` naming its number.
    """
    default = _default_api(api_id)
    for parsed in _records(Path(path), format, default):
        if isinstance(parsed, BulkInputError):
            raise parsed
        yield parsed


def _default_api(api_id: str | None) -> str | None:
    """The default API, checked once before the file is opened (an error names ``api_id``)."""
    return None if api_id is None else validate_api_id(api_id)


def _records(
    path: Path, format: Format | None, api_id: str | None
) -> Iterator[BulkLine | BulkInputError]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.readline()
        handle.seek(0)
        kind = format or _detect_format(path, first)
        if kind == "csv":
            yield from _csv_lines(handle, api_id)
        elif kind == "jsonl":
            yield from _json_lines(handle, api_id)
        else:
            raise InvalidInputError("format", "expected 'csv' or 'jsonl'")


def _parsed(
    number: int, record: Mapping[str, Any], api_id: str | None
) -> BulkLine | BulkInputError:
    try:
        return parse_line(number, record, api_id=api_id)
    except BulkInputError as exc:
        return exc


def _csv_lines(handle: TextIO, api_id: str | None) -> Iterator[BulkLine | BulkInputError]:
    reader = csv.DictReader(handle)
    if not reader.fieldnames:
        return
    for row in reader:
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue
        yield _parsed(reader.line_num, row, api_id)


def _json_lines(handle: TextIO, api_id: str | None) -> Iterator[BulkLine | BulkInputError]:
    number = 0
    while True:
        text = handle.readline(MAX_LINE_BYTES + 2)  # never more than that in memory
        if not text:
            return
        number += 1
        ended = text.endswith(("\n", "\r"))
        if not ended and len(text) > MAX_LINE_BYTES:
            while True:  # skip the rest of the oversized line
                rest = handle.readline(65536)
                if not rest or rest.endswith(("\n", "\r")):
                    break
        if _size(text.rstrip("\r\n")) > MAX_LINE_BYTES:
            yield BulkInputError(number, "line", f"is over {MAX_LINE_BYTES} bytes (Unkey's limit)")
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except (ValueError, RecursionError):
            yield BulkInputError(number, "line", "is not valid JSON")
            continue
        if not isinstance(record, dict):
            yield BulkInputError(number, "line", "must be a JSON object")
            continue
        yield _parsed(number, record, api_id)


def check_file(
    path: str | Path,
    *,
    format: Format | None = None,
    max_errors: int = 20,
    api_id: str | None = None,
) -> tuple[int, list[BulkInputError]]:
    """Validate every line of a file, streaming; return the number of lines and the errors.

    Keeps the first ``max_errors`` errors (and counts every valid line). ``api_id`` is the API
    of a line that names none, as :func:`read_lines` takes it. A file that cannot be read at
    all raises :class:`~unkey_secrets.InvalidInputError`.
    """
    count, errors = 0, list[BulkInputError]()
    default = _default_api(api_id)
    try:
        for parsed in _records(Path(path), format, default):
            if isinstance(parsed, BulkInputError):
                if len(errors) < max_errors:
                    errors.append(parsed)
            else:
                count += 1
    except OSError as exc:
        raise InvalidInputError("file", f"cannot be read ({type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise InvalidInputError("file", "is not UTF-8 text") from None
    except csv.Error:
        raise InvalidInputError("file", "is not valid CSV") from None
    return count, errors


# -- rate limits ----------------------------------------------------------------------------


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

    :meth:`acquire` takes a token, sleeping until one is due; waiters are served in the order
    they asked (each reserves the next token, so the rate holds however many threads share it).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise InvalidInputError("rate", "must be a positive number of requests a second")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, rate / 10))
        if self.burst < 1:
            raise InvalidInputError("burst", "must be at least 1")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._last = clock()

    def acquire(self) -> float:
        """Take one token; return how long it waited (seconds)."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1
            wait_for = 0.0 if self._tokens >= 0 else -self._tokens / self.rate
        if wait_for:
            self._sleep(wait_for)
        return wait_for


@contextlib.contextmanager
def _aws_write_throttle(store: SecretStore, rate: float | None) -> Iterator[None]:
    """Hold Secrets Manager writes to ``rate`` per quota group, for the store's botocore client.

    A store without a botocore client (Vault, a plugin) is not throttled here.
    """
    events = getattr(getattr(getattr(store, "client", None), "meta", None), "events", None)
    if rate is None or events is None or getattr(store, "name", None) != "aws":
        yield
        return
    buckets = {group: TokenBucket(rate) for group in set(_AWS_WRITE_GROUPS.values())}

    def before_call(model: Any = None, **_: Any) -> None:
        group = _AWS_WRITE_GROUPS.get(getattr(model, "name", ""))
        if group is not None:
            buckets[group].acquire()

    unique_id = f"unkey-secrets-bulk-{uuid.uuid4().hex}"
    events.register("before-call.secrets-manager", before_call, unique_id=unique_id)
    try:
        yield
    finally:
        events.unregister("before-call.secrets-manager", unique_id=unique_id)


class _Gate:
    """Where every worker waits while Unkey has asked us (429 Retry-After) to hold off."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)

    def wait(self) -> None:
        while True:
            with self._lock:
                remaining = self._until - self._clock()
            if remaining <= 0:
                return
            self._sleep(remaining)


class _GatedWire(Wire):
    """The run's Unkey wire: every call waits at the shared gate, and a 429 holds it.

    A 429 is Unkey refusing the request before acting on it, whichever the call (createKey
    included) and whatever its Retry-After: nothing was applied, so the same call is sent again
    once the gate opens, and the flow above never sees it. Every worker waits at the gate, so
    the pause is shared, not paid by each in turn. The client's own 429 retries (which sleep
    one thread only, and give up on a Retry-After over its backoff cap) are turned off here.
    At most ``max_waits`` waits per line (:meth:`start_line`); the next 429 is raised.
    """

    def __init__(self, inner: Wire, gate: _Gate, max_waits: int) -> None:
        super().__init__(
            inner.http,
            base_url=inner.base_url,
            root_key=inner.root_key,
            user_agent=inner.user_agent,
            timeout=inner.timeout,
            backoff=inner.backoff,
            sleep=inner.sleep,
            max_answer_bytes=inner.max_answer_bytes,
        )
        self.gate = gate
        self.max_waits = max_waits
        self._line = threading.local()

    def start_line(self) -> None:
        """Give the calling worker's next line its own budget of waits."""
        self._line.waits = 0

    @property
    def waits(self) -> int:
        """How many 429s the calling worker's line has waited out."""
        return int(getattr(self._line, "waits", 0))

    def call(self, op: Operation, body: dict[str, Any], hide: tuple[str, ...] = ()) -> Answer:
        while True:
            self.gate.wait()
            try:
                return super().call(op, body, hide)
            except UnkeyRateLimitedError as exc:
                waits = self.waits + 1
                if waits > self.max_waits:
                    raise
                self._line.waits = waits
                pause = exc.retry_after if exc.retry_after is not None else 1.0
                logger.info("%s: Unkey rate limit, all workers wait %.1f s", op.name, pause)
                self.gate.hold(pause)

    def _should_retry(self, op: Operation, status: int, retries: int) -> bool:
        # 429s are waited out at the gate (above), by every worker at once.
        return status != 429 and super()._should_retry(op, status, retries)


def _gated(unkey: UnkeyClient, gate: _Gate, max_waits: int) -> tuple[UnkeyClient, _GatedWire]:
    """A copy of ``unkey`` for the run, sharing its connections, whose calls pass the gate."""
    gated = copy.copy(unkey)
    wire = _GatedWire(unkey._wire, gate, max_waits)
    gated._wire = wire
    gated._owns_client = False  # the caller's client owns the connections and closes them
    return gated, wire


class _Leftovers:
    """Keys an earlier run may have left half done for an alias-only line, listed once a run.

    Such a key has no externalId to find it by: the API's keys without one are listed once per
    run (on the first alias-only line whose alias is free) and kept; a line's candidates are
    those with its name and meta, whose store entry (read once, cached) names its alias. Keys
    this run makes are not listed: a line never adopts a key of its own run.

    Each listed key is looked at once, not once per line: its meta is stripped of ours when
    the API is listed, a key disabled by someone (no provision marker of this store) is set
    aside then, and once its store entry is read (by the first line of its name and meta) it
    is found by the alias the entry names. A line's cost does not grow with the API's keys.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listed: dict[str, _Listing] = {}
        self._entries: dict[str, KeyEntry | None] = {}

    def find(
        self, unkey: UnkeyClient, store: SecretStore, line: BulkLine
    ) -> list[tuple[KeyInfo, KeyEntry]]:
        """The listed keys that are stored here for ``line``'s alias and made like it.

        In the API's listing order; a key's store entry is read by the first line that needs
        it, as before, however many lines follow.
        """
        with self._lock:  # one listing per API and run: the other workers wait for it
            listing = self._listed.get(line.api_id)
            if listing is None:
                listing = _Listing(
                    info
                    for info in unkey.list_keys(line.api_id, revalidate_keys_cache=True)
                    if info.external_id is None
                    # A disabled key without this store's provision marker was disabled by
                    # someone: never a line's to finish.
                    and (
                        info.enabled
                        or _is_provision_marker((info.meta or {}).get(MARKER_META_KEY), store.name)
                    )
                )
                self._listed[line.api_id] = listing
            meta = dict(line.meta or {})
            due = listing.unread_like(line.name, meta)
        found: dict[int, tuple[KeyInfo, KeyEntry]] = {}
        for position, info in due:
            with self._lock:
                known = info.key_id in self._entries
                entry = self._entries.get(info.key_id)
            if not known:
                entry = store.key_entry(api_id=line.api_id, key_id=info.key_id)
                with self._lock:
                    self._entries[info.key_id] = entry
            with self._lock:
                listing.read(position, entry)
            if entry is not None and entry.alias == line.alias:
                found[position] = (info, entry)
        with self._lock:
            # Those read already, by this line or an earlier one (or another worker).
            for position, info, entry in listing.stored_like(line.alias, line.name, meta):
                found.setdefault(position, (info, entry))
        return [found[position] for position in sorted(found)]


class _Listing:
    """One API's listed keys: those whose store entry is not read yet, and those stored.

    A key is known by its position in the listing. Not thread-safe: :class:`_Leftovers` holds
    its lock around every call.
    """

    def __init__(self, keys: Iterable[KeyInfo]) -> None:
        #: Not read yet: position -> (key, its meta without ours), in listing order.
        self._unread: dict[int, tuple[KeyInfo, dict[str, Any]]] = {
            position: (info, _user_meta(info.meta)) for position, info in enumerate(keys)
        }
        #: Read and stored: the alias the entry names -> (position, key, meta, entry).
        self._stored: dict[str | None, list[tuple[int, KeyInfo, dict[str, Any], KeyEntry]]] = {}

    def unread_like(self, name: str | None, meta: dict[str, Any]) -> list[tuple[int, KeyInfo]]:
        """The keys not read yet made with ``name`` and ``meta``, in listing order."""
        return [
            (position, info)
            for position, (info, user_meta) in self._unread.items()
            if info.name == name and user_meta == meta
        ]

    def read(self, position: int, entry: KeyEntry | None) -> None:
        """The key at ``position`` was read: ``entry`` is its store entry (None: not stored)."""
        taken = self._unread.pop(position, None)
        if taken is not None and entry is not None:
            info, user_meta = taken
            self._stored.setdefault(entry.alias, []).append((position, info, user_meta, entry))

    def stored_like(
        self, alias: str | None, name: str | None, meta: dict[str, Any]
    ) -> list[tuple[int, KeyInfo, KeyEntry]]:
        """The keys read and stored for ``alias`` made with ``name`` and ``meta``."""
        return [
            (position, info, entry)
            for position, info, user_meta, entry in self._stored.get(alias, ())
            if info.name == name and user_meta == meta
        ]


def _user_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """A key's meta without our own members (a create's marker)."""
    return {k: v for k, v in (meta or {}).items() if not str(k).startswith("unkey_secrets_")}


class _Claims:
    """Identities (alias or externalId) being worked on: one line per identity at a time."""

    def __init__(self) -> None:
        self._busy: set[tuple[str, str, str]] = set()
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, identity: tuple[str, str, str]) -> Iterator[None]:
        with self._changed:
            while identity in self._busy:
                self._changed.wait()
            self._busy.add(identity)
        try:
            yield
        finally:
            with self._changed:
                self._busy.discard(identity)
                self._changed.notify_all()


# -- the work -------------------------------------------------------------------------------


class _Found:
    """A key an earlier run made for a line, and whether it still needs finishing."""

    def __init__(self, key_id: str, enable: bool, move_alias: bool, age: float) -> None:
        self.key_id = key_id
        self.enable = enable
        self.move_alias = move_alias
        #: Seconds since Unkey created the key (by this host's clock).
        self.age = age


@dataclass
class _Runner:
    unkey: UnkeyClient
    store: SecretStore
    mode: Literal["safe", "fast"]
    retry: RetryPolicy
    attempts: int
    max_rate_limit_waits: int
    backoff: Backoff
    gate: _Gate
    claims: _Claims
    sleep: Callable[[float], None]
    adopt_after: float
    wall_clock: Callable[[], float]
    wire: _GatedWire
    leftovers: _Leftovers

    def run(self, line: BulkLine) -> LineResult:
        with flow("bulk.line", api_id=line.api_id, alias=line.alias, line=line.number) as scope:
            result = self._line(line)
            scope.set(key_id=result.key_id, status=result.status, attempts=result.attempts)
            if result.error is not None:
                scope.failed(result.error)
            return result

    def _line(self, line: BulkLine) -> LineResult:
        actions: list[str] = []  # what this run did besides the line's own key (clean-ups)
        self.wire.start_line()
        try:
            with self.claims.hold(line.identity):
                return self._run(line, actions)
        except Exception as exc:  # noqa: BLE001 (a line's failure never stops the others)
            return _failed(line, exc, 1, actions)

    def _run(self, line: BulkLine, actions: list[str]) -> LineResult:
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._once(line, attempt, actions)
            except Exception as exc:  # noqa: BLE001 (classified below, reported otherwise)
                # 429s were waited out at the gate (see _GatedWire); one that reaches here
                # used up the line's waits and fails it, as any error not worth retrying.
                if attempt >= self.attempts or not _worth_retrying(exc):
                    return _failed(line, exc, attempt, actions)
                delay = self.backoff.delay(attempt - 1)
                logger.info(
                    "line %d: %s, trying again in %.2f s", line.number, type(exc).__name__, delay
                )
                self.sleep(delay)

    def _taken(self, line: BulkLine, attempt: int, actions: list[str]) -> LineResult:
        """The line's alias names a key: done, or a safe-mode key a dead run left disabled."""
        assert line.alias is not None
        done = finish_half_done(
            self.unkey, self.store, line.api_id, line.alias, self.retry, self.mode
        )
        if done is None:
            return _result(line, "exists", attempt, actions=actions)
        actions.append(f"enabled key {done.key_id}, left disabled by an earlier run")
        return _result(
            line,
            "completed",
            attempt,
            key_id=done.key_id,
            location=done.location.location,
            actions=actions,
        )

    def _once(self, line: BulkLine, attempt: int, actions: list[str]) -> LineResult:
        if line.external_id is not None:
            found = self._find(line, actions)
            if line.alias is not None and self.store.alias_exists(
                api_id=line.api_id, alias=line.alias
            ):
                return self._taken(line, attempt, actions)
            if found is not None:
                return self._finish(line, found, attempt, actions)
        elif line.alias is not None:
            if self.store.alias_exists(api_id=line.api_id, alias=line.alias):
                return self._taken(line, attempt, actions)
            # Only fast mode can leave a valid key stored for the alias that no alias names
            # (killed between its store write and its alias move): safe mode moves a new alias
            # before enabling the key, so what it leaves there is disabled, or named by the
            # alias (finished by _taken). Safe mode skips the API's listing this needs.
            found = self._find_by_alias(line) if self.mode == "fast" else None
            if found is not None:
                return self._finish(line, found, attempt, actions)
        try:
            result = provision(
                self.unkey,
                self.store,
                line.api_id,
                alias=line.alias,
                mode=self.mode,
                retry=self.retry,
                **line.create_options(),
            )
        except RotationConflictError as exc:
            if exc.key_id is None and exc.original_key_id is None:  # the alias names a key
                return _result(line, "exists", attempt, actions=actions)
            raise
        return _created(line, result, attempt, actions)

    def _find(self, line: BulkLine, actions: list[str]) -> _Found | None:
        """A key an earlier run made for this line and stored here, if there is one.

        On the way, deletes what a dead run left that was never enabled nor stored.
        """
        assert line.external_id is not None
        found: _Found | None = None
        now_ms = self.wall_clock() * 1000
        for info in self.unkey.list_keys(
            line.api_id, external_id=line.external_id, revalidate_keys_cache=True
        ):
            marker = (info.meta or {}).get(MARKER_META_KEY)
            age = max(0.0, (now_ms - info.created_at) / 1000)
            entry = self.store.key_entry(api_id=line.api_id, key_id=info.key_id)
            if entry is None:
                self._clean_up(line, info.key_id, info.enabled, marker, age, actions)
                continue
            if found is not None or entry.alias != line.alias:
                continue
            # Safe mode strips its marker when it enables the key: a disabled key that still
            # carries a provision marker was never enabled. A key disabled later (without it),
            # or by a rotation (its token), is left alone.
            unfinished = not info.enabled and _is_provision_marker(marker) and _pending(info)
            found = _Found(
                info.key_id, enable=unfinished, move_alias=line.alias is not None, age=age
            )
        return found

    def _find_by_alias(self, line: BulkLine) -> _Found | None:
        """A key an earlier run made for an alias-only line and stored, alias not moved yet.

        Killed between the enable and the alias move, or between the store write and the
        enable, a run leaves a key stored for the alias that no alias names: it is the line's
        key (adopting it is what keeps the line at one live key), found by listing the API
        once a run (:class:`_Leftovers`). An enabled one is preferred, then the oldest.
        """
        # A disabled key without safe mode's pending mark was disabled on purpose: not ours
        # to enable.
        candidates = [
            c
            for c in self.leftovers.find(self.unkey, self.store, line)
            if c[0].enabled or _pending(c[0])
        ]
        if not candidates:
            return None
        info, _ = min(candidates, key=lambda c: (not c[0].enabled, c[0].created_at))
        age = max(0.0, (self.wall_clock() * 1000 - info.created_at) / 1000)
        return _Found(info.key_id, enable=not info.enabled, move_alias=True, age=age)

    def _clean_up(
        self,
        line: BulkLine,
        key_id: str,
        enabled: bool,
        marker: object,
        age: float,
        actions: list[str],
    ) -> None:
        """Delete a key a dead run made for the line and never enabled nor stored."""
        if enabled or not _is_provision_marker(marker, self.store.name):
            return  # not ours, or someone may use it
        if age < self.adopt_after:
            logger.info(
                "line %d: key_id=%s (disabled, not stored, %.0f s old) may belong to a run in "
                "progress: left alone",
                line.number,
                key_id,
                age,
            )
            return
        self.unkey.delete_key(key_id)
        actions.append(
            f"deleted key {key_id}: an earlier run made it, never enabled it, never stored it"
        )
        logger.info("line %d: deleted key_id=%s left by an earlier run", line.number, key_id)

    def _finish(
        self, line: BulkLine, found: _Found, attempt: int, actions: list[str]
    ) -> LineResult:
        """Finish what an earlier, dead run left: enable the key, point the alias at it."""
        if not found.enable and not found.move_alias:
            return _result(line, "exists", attempt, key_id=found.key_id, actions=actions)
        if found.age < self.adopt_after:
            raise LineInProgressError(
                f"key {found.key_id} for this line was made {found.age:.0f} s ago and is not "
                f"finished: another run may still be working on it; run again after "
                f"{self.adopt_after:.0f} s to finish it"
            )
        if found.enable:
            self.unkey.update_key(found.key_id, enabled=True, meta=dict(line.meta or {}) or None)
            actions.append(f"enabled key {found.key_id}")
        location = None
        if found.move_alias and line.alias is not None:
            # The alias holds a copy of the key's value: read it back (a reader's permission).
            stored = self.store.get(api_id=line.api_id, key_id=found.key_id)
            issued = IssuedKey(
                key_id=stored.key_id,
                secret=stored.secret,
                api_id=stored.api_id,
                name=stored.name,
                external_id=stored.external_id,
                prefix=stored.prefix,
                expires=stored.expires,
                rerolled_from=stored.rerolled_from,
                issued_at=_parse_time(stored.issued_at),
                alias=line.alias,
            )
            del stored
            try:
                # Only if the alias does not exist yet: an alias naming a key is never moved.
                moved = self.retry.run(
                    lambda: self.store.set_current(issued, alias=line.alias or "", expected=None)
                )
            except StoreConflictError:
                state = self.store.alias_state(api_id=line.api_id, alias=line.alias)
                if state is None or state.key_id != found.key_id:
                    raise
                location = self.store.describe_location(
                    api_id=line.api_id, key_id=found.key_id, alias=line.alias
                ).location
            else:
                location = moved.location
            actions.append(f"pointed alias {line.alias} at key {found.key_id}")
        logger.info("line %d: finished key_id=%s left by an earlier run", line.number, found.key_id)
        return _result(
            line, "completed", attempt, key_id=found.key_id, location=location, actions=actions
        )


def _pending(info: KeyInfo) -> bool:
    """Whether a key carries safe mode's pending mark: created disabled, never enabled."""
    return (info.meta or {}).get(PENDING_META_KEY) == "enable"


def _is_provision_marker(value: object, store_name: str | None = None) -> bool:
    """Whether ``value`` is provision's marker (``op_<store>_<hex>``; older: ``op_<hex>``).

    With ``store_name``: only a marker naming that store (an older one names none: not ours
    to delete). Rotation tokens (``rot_...``, the Lambda's) are never provision markers.
    """
    if not isinstance(value, str) or not value.startswith("op_"):
        return False
    return store_name is None or value.startswith(f"op_{store_name}_")


def _parse_time(text: str | None) -> dt.datetime:
    if text:
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(text)
    return dt.datetime.now(dt.timezone.utc)


def _worth_retrying(exc: BaseException) -> bool:
    """A failure after which nothing of the line is left, and that may pass."""
    if isinstance(exc, AmbiguousOutcomeError):
        return True  # settled: what Unkey made was found and deleted
    if isinstance(exc, CompensatedError):
        return isinstance(exc.__cause__, StoreUnavailableError)
    if isinstance(exc, FlowError):
        return False  # a stored key or an unsettled one: an operator decides
    if isinstance(exc, UnkeyAmbiguousError):
        return False  # raised outside a flow: cannot tell what happened
    return isinstance(exc, (StoreUnavailableError, UnkeyServerError, UnkeyTransportError))


def _result(
    line: BulkLine,
    status: Status,
    attempts: int,
    *,
    key_id: str | None = None,
    location: str | None = None,
    actions: Iterable[str] = (),
) -> LineResult:
    return LineResult(
        line=line.number,
        api_id=line.api_id,
        alias=line.alias,
        external_id=line.external_id,
        status=status,
        key_id=key_id,
        location=location,
        actions=tuple(actions),
        attempts=attempts,
    )


def _created(
    line: BulkLine, result: ProvisionResult, attempts: int, actions: Iterable[str] = ()
) -> LineResult:
    return _result(
        line,
        "created",
        attempts,
        key_id=result.key_id,
        location=result.location.location,
        actions=actions,
    )


def _failed(
    line: BulkLine, exc: BaseException, attempts: int, done: Iterable[str] = ()
) -> LineResult:
    if isinstance(exc, UnkeySecretsError):
        message = " ".join(str(exc).split())
    else:
        message = f"unexpected {type(exc).__name__}"  # a foreign error may quote its input
    key_id = exc.key_id if isinstance(exc, FlowError) else None
    actions = (*done, *(exc.actions if isinstance(exc, FlowError) else ()))
    location = exc.location if isinstance(exc, StoreError) else None
    return LineResult(
        line=line.number,
        api_id=line.api_id,
        alias=line.alias,
        external_id=line.external_id,
        status="failed",
        key_id=key_id,
        location=location,
        error=type(exc).__name__,
        message=message,
        actions=tuple(actions),
        attempts=attempts,
    )


def provision_many(
    unkey: UnkeyClient,
    store: SecretStore,
    lines: Iterable[BulkLine],
    *,
    concurrency: int = 4,
    mode: Literal["safe", "fast"] = "safe",
    retry: RetryPolicy | None = None,
    attempts: int = 4,
    max_rate_limit_waits: int = 50,
    store_writes_per_second: float | None = AWS_WRITE_QUOTA,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    adopt_after: float = ADOPT_AFTER,
    wall_clock: Callable[[], float] = time.time,
    exclusive: bool = False,
) -> Iterator[LineResult]:
    """Provision every line on ``concurrency`` threads; yield each line's result as it finishes.

    ``lines`` is consumed lazily (at most ``2 * concurrency`` in flight). A line already done
    (see the module's docstring) is not provisioned again. A line that fails for a transient
    reason that left nothing behind (a store outage the flow compensated, a settled lost answer,
    Unkey unreachable) runs again, up to ``attempts`` times in all, with backoff. A 429 from
    Unkey, on any call, holds every worker for its Retry-After and the same call is sent again
    (nothing was applied); it does not count as an attempt (at most ``max_rate_limit_waits``
    waits per line, then the line fails). Other failures end the line with
    ``status="failed"``; the other lines go on. ``store_writes_per_second`` holds a Secrets
    Manager store's writes (per AWS quota group, across all workers) to that rate; None turns
    it off, and other stores are not throttled. The client and the store are shared by the
    threads: size the store's connection pool (``max_connections``) to ``concurrency``.

    A half-done key left for a line is finished (or, never enabled nor stored, deleted) only
    once it is ``adopt_after`` seconds old by Unkey's ``createdAt`` and ``wall_clock`` (Unix
    seconds); a younger one fails the line with :class:`LineInProgressError`. ``exclusive=True``
    says no other run can be working on these lines (the ``bulk`` command passes it while it
    holds its file's lock): half-done keys are then an earlier, dead run's and are finished at
    once, whatever their age.

    Not safe to run twice at once over the same lines (in two processes, or two calls): lines
    are claimed only within one call, so two runs over the same externalId-only lines can each
    make a key. Serialize runs over the same input (the ``bulk`` command locks its file).

    Closing the iterator early (``break``) waits for the lines in flight and starts no more.
    """
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise InvalidInputError("concurrency", "must be a whole number, at least 1")
    if mode not in ("safe", "fast"):
        raise InvalidInputError("mode", "expected 'safe' or 'fast'")
    if attempts < 1:
        raise InvalidInputError("attempts", "must be at least 1")
    if not adopt_after >= 0:
        raise InvalidInputError("adopt_after", "must be zero or more seconds")
    if store_writes_per_second is not None and not store_writes_per_second > 0:
        raise InvalidInputError("store_writes_per_second", "must be positive, or None")
    gate = _Gate(clock, sleep)
    gated, wire = _gated(unkey, gate, max_rate_limit_waits)
    runner = _Runner(
        unkey=gated,
        store=store,
        mode=mode,
        retry=retry or RetryPolicy(),
        attempts=attempts,
        max_rate_limit_waits=max_rate_limit_waits,
        backoff=Backoff(max_retries=attempts, base=0.5, cap=10.0),
        gate=gate,
        claims=_Claims(),
        sleep=sleep,
        adopt_after=0.0 if exclusive else float(adopt_after),
        wall_clock=wall_clock,
        wire=wire,
        leftovers=_Leftovers(),
    )
    return _drive(runner, store, lines, concurrency, store_writes_per_second)


def _drive(
    runner: _Runner,
    store: SecretStore,
    lines: Iterable[BulkLine],
    concurrency: int,
    rate: float | None,
) -> Iterator[LineResult]:
    window = 2 * concurrency
    source = iter(lines)
    with (
        _aws_write_throttle(store, rate),
        ThreadPoolExecutor(concurrency, thread_name_prefix="unkey-bulk") as pool,
    ):
        pending: set[Future[LineResult]] = set()
        try:
            exhausted = False
            while True:
                while not exhausted and len(pending) < window:
                    line = next(source, None)
                    if line is None:
                        exhausted = True
                    else:
                        # Each line in the caller's context: its span is a child of the caller's.
                        context = contextvars.copy_context()
                        pending.add(pool.submit(context.run, runner.run, line))
                if not pending:
                    return
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
