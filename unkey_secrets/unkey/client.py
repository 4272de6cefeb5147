"""Unkey v2 API client over httpx: create, reroll, verify, get, update, delete and list keys.

Deadlines. ``timeout`` (seconds) is the deadline of one attempt: connecting, sending and
receiving the whole answer (status line, headers and body, however slowly it trickles) end
within it, not merely each socket read. With the client's own HTTP client this holds at every
socket operation; with a caller's ``http_client``, its per-operation timeouts hold and the
deadline is checked between the chunks of the body. A call is sent at most
``max_retries + 1`` times, so it ends within ``(max_retries + 1) * timeout`` plus the backoff
waits (each at most ``max_backoff``).

Byte budget. An answer may hold at most ``max_answer_bytes`` bytes (16 MiB by default),
counted after decompression (gzip and deflate, the encodings the requests accept): inflating
stops one byte past it, however small the compressed body, and a declared Content-Length over
it is refused before a byte of the body is read.

Retries. ``keys.createKey``, ``keys.rerollKey`` and ``apis.createApi`` are never retried: each
call makes something new. The other calls are idempotent and are retried up to ``max_retries``
times on 429, 5xx, transport errors and lost answers (a deadline or budget breach), with
exponential backoff and full jitter; a 429's Retry-After is honoured, and one longer than
``max_backoff`` is raised instead of waited out. An error a caller's HTTP client or its hooks
raise (``raise_for_status`` in a response hook) is not retried.

Errors. Unkey's error envelope becomes an :class:`~unkey_secrets.UnkeyAPIError` subclass by
status. A body that is not the documented shape becomes :class:`~unkey_secrets.UnkeyResponseError`
and is never quoted. An answer lost after the request may have been sent (a timeout, a deadline
or budget breach, a dropped connection, an error from the caller's HTTP client) is an
:class:`~unkey_secrets.UnkeyTransportError`; for a call that changes state it is an
:class:`~unkey_secrets.UnkeyAmbiguousError`, as are a 2xx we cannot read and a 5xx without
Unkey's envelope (as a gateway sends), so the flows look for what it made. No exception of the
HTTP client escapes, chained or not. No error, log record or repr carries the root key or a
plaintext key.
"""

from __future__ import annotations

import enum
import functools
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

import httpx

from .._errors import ConfigurationError, InvalidInputError, UnkeyResponseError, UnkeyServerError
from .._models import IssuedKey
from .._redact import confined, guarded, hold
from .._secret import Secret
from .._validate import (
    _describe,
    validate_api_id,
    validate_external_id,
    validate_key_id,
    validate_key_plaintext,
)
from ..telemetry.audit import current_purpose
from ..telemetry.tracing import unkey_call
from ..transport.httpx import build_client, check_given_client, deadline_seconds
from ..transport.policy import DEFAULT_MAX_ANSWER_BYTES
from .backoff import Backoff
from .models import (
    ApiInfo,
    Credits,
    KeyInfo,
    Ratelimit,
    Reader,
    VerifyResult,
    read_key_info,
    read_verify_result,
)
from .options import (
    MAX_TIMESTAMP_MS,
    check_bool,
    check_byte_length,
    check_credits,
    check_int,
    check_meta,
    check_permission_query,
    check_permissions,
    check_prefix,
    check_ratelimits,
    check_roles,
    check_tags,
    check_text,
    check_timestamp,
    check_verify_ratelimits,
)
from .wire import Answer, Operation, Wire, ambiguous, check_base_url

if TYPE_CHECKING:
    from ..telemetry.tracing import Observed
    from .settings import UnkeySettings

__all__ = [
    "UNSET",
    "UnkeyClient",
]


#: The constructor options that are also settings: from_settings loads them as overrides.
#: (The root key is not one: it comes from the settings, never beside them.)
_SETTINGS: Final = ("base_url", "timeout", "max_retries")


class _Unset(enum.Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: The default of :meth:`UnkeyClient.update_key`'s fields: leave the field as it is.
UNSET: Final = _Unset.UNSET

_CREATE_KEY = Operation("keys.createKey", retried=False, changes_state=True)
_REROLL_KEY = Operation("keys.rerollKey", retried=False, changes_state=True)
_CREATE_API = Operation("apis.createApi", retried=False, changes_state=True)
_UPDATE_KEY = Operation("keys.updateKey", retried=True, changes_state=True)
_DELETE_KEY = Operation("keys.deleteKey", retried=True, changes_state=True)
_VERIFY_KEY = Operation("keys.verifyKey", retried=True, changes_state=False)
_GET_KEY = Operation("keys.getKey", retried=True, changes_state=False)
_LIST_KEYS = Operation("apis.listKeys", retried=True, changes_state=False)
_GET_API = Operation("apis.getApi", retried=True, changes_state=False)
_NULLABLE = frozenset({"name", "external_id", "meta", "expires", "credits"})

_ROOT_KEY = re.compile(r"[!-~]{1,4096}")  # printable ASCII, no spaces: safe in a header
_KEY_ID = re.compile(r"[A-Za-z0-9_]{3,255}")


@functools.lru_cache(maxsize=1)
def _default_user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"unkey-secrets/{version('unkey-secrets')}"
    except PackageNotFoundError:
        return "unkey-secrets"


def _check_float(value: object, field: str, low: float, *, inclusive: bool = True) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
        if number >= low if inclusive else number > low:
            return number  # NaN fails both comparisons
    sign = ">=" if inclusive else ">"
    raise InvalidInputError(field, f"expected a number {sign} {low:g}, got {_describe(value)}")


def _check_timeout(value: object) -> httpx.Timeout:
    """A finite number of seconds > 0, or an httpx.Timeout with finite values > 0 (some set)."""
    if isinstance(value, httpx.Timeout):
        try:
            deadline_seconds(value)
        except ValueError as exc:
            problem = str(exc)
        else:
            return value
        raise InvalidInputError("timeout", problem)
    seconds = _check_float(value, "timeout", 0, inclusive=False)
    if not math.isfinite(seconds):
        raise InvalidInputError("timeout", "expected a finite number of seconds: calls are bounded")
    return httpx.Timeout(seconds)


class UnkeyClient:
    """Unkey v2 client over httpx (sync).

    ``root_key`` is held as a :class:`~unkey_secrets.Secret` and put into an
    ``Authorization: Bearer`` header per request; the client's repr shows ``base_url`` only.
    ``base_url`` must be https, or http to a loopback host (the emulator). TLS certificates are
    always verified.

    ``timeout`` is each attempt's deadline in seconds (> 0, finite): connect, send and the whole
    answer. An ``httpx.Timeout`` caps each socket operation by its own values and sets the
    deadline to the longest of them. ``max_answer_bytes`` is each answer's budget in bytes,
    counted after decompression (default 16 MiB). A call ends within
    ``(max_retries + 1) * timeout`` plus its backoff waits (see the module docstring).

    The client's own HTTP client reads the environment once, here: the proxy for an https
    ``base_url`` (``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; never one for plain http) and
    the CA bundle (``SSL_CERT_FILE``, ``SSL_CERT_DIR``). Pass ``transport`` (e.g.
    ``httpx.MockTransport``) to carry its requests, or a ready ``http_client`` (which the
    caller closes): its redirects are never followed, ``timeout`` applies per request, and the
    byte budget and the deadline are kept while reading each answer. ``sleep`` is what waits
    between retries. ``max_connections`` is the number of threads sharing the client: its own
    HTTP client keeps that many connections open (httpx's defaults, 100 and 20 kept alive, when
    fewer), so none waits for a connection or opens one only to close it.

    Raises :class:`~unkey_secrets.InvalidInputError` for a bad option (naming it, never the
    root key's value) and :class:`~unkey_secrets.ConfigurationError` for an ``http_client``
    that would send plain http through a proxy, or a proxy the client cannot use.
    """

    @guarded
    def __init__(
        self,
        root_key: Secret | str,
        *,
        base_url: str = "https://api.unkey.com",
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        max_answer_bytes: int = DEFAULT_MAX_ANSWER_BYTES,
        transport: httpx.BaseTransport | None = None,
        http_client: httpx.Client | None = None,
        user_agent: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_connections: int | None = None,
    ) -> None:
        if not isinstance(root_key, (str, Secret)):
            raise InvalidInputError(
                "root_key", f"expected a str or Secret, got {_describe(root_key)}"
            )
        secret = root_key if isinstance(root_key, Secret) else Secret(root_key)
        # From here on only the Secret is held: a traceback's locals show its mask.
        del root_key
        # Masked in every log record from now on, whichever library would print it.
        hold(secret)
        if not _ROOT_KEY.fullmatch(secret.reveal()):
            raise InvalidInputError(
                "root_key", "expected 1-4096 printable ASCII characters, no spaces"
            )
        base_url = check_base_url(base_url)
        timeout = _check_timeout(timeout)
        retry_policy = Backoff(
            max_retries=check_int(max_retries, "max_retries", 0, 10),
            base=_check_float(backoff, "backoff", 0),
            cap=_check_float(max_backoff, "max_backoff", 0),
        )
        answer_budget = check_int(max_answer_bytes, "max_answer_bytes", 1)
        if transport is not None and http_client is not None:
            raise InvalidInputError("transport", "pass transport or http_client, not both")
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise InvalidInputError(
                "transport", f"expected an httpx.BaseTransport, got {_describe(transport)}"
            )
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise InvalidInputError(
                "http_client", f"expected an httpx.Client, got {_describe(http_client)}"
            )
        agent = _default_user_agent() if user_agent is None else user_agent
        if not isinstance(agent, str) or not re.fullmatch(r"[ -~]{1,256}", agent):
            raise InvalidInputError("user_agent", "expected 1-256 printable ASCII characters")
        if not callable(sleep):
            raise InvalidInputError("sleep", f"expected a callable, got {_describe(sleep)}")
        if max_connections is not None:
            max_connections = check_int(max_connections, "max_connections", 1, 10_000)
        if http_client is not None:
            check_given_client(http_client, base_url)
        self._owns_client = http_client is None
        self._wire = Wire(
            http_client
            or build_client(
                base_url, timeout=timeout, transport=transport, max_connections=max_connections
            ),
            base_url=base_url,
            root_key=secret,
            user_agent=agent,
            timeout=timeout,
            backoff=retry_policy,
            sleep=sleep,
            max_answer_bytes=answer_budget,
        )

    @classmethod
    @guarded
    def from_settings(cls, settings: UnkeySettings | None = None, **kwargs: Any) -> UnkeyClient:
        """Build a client from :class:`~.settings.UnkeySettings`, loaded when not given.

        Without ``settings``, the members of ``kwargs`` that name a setting (``base_url``,
        ``timeout`` in seconds, ``max_retries``) are its overrides in
        :func:`~unkey_secrets.settings.load_settings`: each wins over its ``UNKEY_*``
        environment variable, which wins over the default. With ``settings``, ``kwargs``
        override them as constructor options. The other ``kwargs`` are the constructor's other
        options. Raises :class:`~unkey_secrets.ConfigurationError` when no root key is set or
        a setting is invalid (naming it, never its value), and what the constructor raises.
        """
        if settings is None:
            from .._config import load_settings
            from .settings import UnkeySettings

            given = {name: kwargs.pop(name) for name in _SETTINGS if name in kwargs}
            settings = load_settings(UnkeySettings, **given)
        if settings.root_key is None:
            raise ConfigurationError("UNKEY_ROOT_KEY is not set; the Unkey client needs a root key")
        options: dict[str, Any] = {
            "base_url": settings.base_url,
            "timeout": settings.timeout,
            "max_retries": settings.max_retries,
            **kwargs,
        }
        return cls(Secret(settings.root_key.get_secret_value()), **options)

    def __repr__(self) -> str:
        # getattr: a half-built client (its __init__ failed) is rendered by error reporters.
        wire = getattr(self, "_wire", None)
        return f"UnkeyClient(base_url={getattr(wire, 'base_url', None)!r})"

    def __enter__(self) -> UnkeyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @guarded
    def close(self) -> None:
        """Close the HTTP client, unless it was passed in (its owner closes it)."""
        if self._owns_client:
            self._wire.http.close()

    # -- keys -----------------------------------------------------------------------------

    @guarded
    def create_key(
        self,
        api_id: str,
        *,
        prefix: str | None = None,
        name: str | None = None,
        byte_length: int | None = None,
        external_id: str | None = None,
        meta: Mapping[str, Any] | None = None,
        expires: int | datetime | None = None,
        credits: Credits | Mapping[str, Any] | None = None,
        ratelimits: Sequence[Ratelimit | Mapping[str, Any]] | None = None,
        enabled: bool | None = None,
        recoverable: bool | None = None,
        roles: Sequence[str] | None = None,
        permissions: Sequence[str] | None = None,
    ) -> IssuedKey:
        """Create a key in ``api_id`` (keys.createKey); never retried.

        Options left None are not sent, so the API's defaults apply. ``expires`` is Unix
        milliseconds or an aware datetime. Raises
        :class:`~unkey_secrets.UnkeyAmbiguousError` when Unkey may have made a key whose
        answer we could not read.
        """
        body: dict[str, Any] = {"apiId": validate_api_id(api_id)}
        if prefix is not None:
            body["prefix"] = check_prefix(prefix)
        if name is not None:
            body["name"] = check_text(name, "name", 1, 255)
        if byte_length is not None:
            body["byteLength"] = check_byte_length(byte_length)
        if external_id is not None:
            body["externalId"] = validate_external_id(external_id)
        if meta is not None:
            body["meta"] = check_meta(meta)
        if roles is not None:
            body["roles"] = check_roles(roles)
        if permissions is not None:
            body["permissions"] = check_permissions(permissions)
        if expires is not None:
            body["expires"] = check_timestamp(expires, "expires")
        if credits is not None:
            body["credits"] = check_credits(credits, allow_unlimited=False)
        if ratelimits is not None:
            body["ratelimits"] = check_ratelimits(ratelimits)
        if enabled is not None:
            body["enabled"] = check_bool(enabled, "enabled")
        if recoverable is not None:
            body["recoverable"] = check_bool(recoverable, "recoverable")
        with unkey_call(
            _CREATE_KEY.name, "key.created", unsure=(UnkeyServerError,), api_id=api_id
        ) as call:
            answer = self._wire.call(_CREATE_KEY, body)
            return _issued(
                _CREATE_KEY,
                answer,
                call,
                api_id=api_id,
                name=name,
                external_id=external_id,
                prefix=prefix,
                expires=body.get("expires"),
            )

    @guarded
    def reroll_key(self, key_id: str, *, expiration_ms: int, api_id: str) -> IssuedKey:
        """Issue a new key copying ``key_id`` (keys.rerollKey); never retried.

        The original expires ``expiration_ms`` from now (0: at once). ``api_id`` is the API the
        key belongs to (Unkey's answer does not say); the result's ``rerolled_from`` is
        ``key_id`` and its ``key_id`` is the new key's.
        """
        body = {
            "keyId": validate_key_id(key_id),
            "expiration": check_int(expiration_ms, "expiration_ms", 0, MAX_TIMESTAMP_MS),
        }
        validate_api_id(api_id)
        with unkey_call(
            _REROLL_KEY.name,
            "key.rotated",
            unsure=(UnkeyServerError,),
            api_id=api_id,
            original_key_id=key_id,
        ) as call:
            answer = self._wire.call(_REROLL_KEY, body)
            return _issued(_REROLL_KEY, answer, call, api_id=api_id, rerolled_from=key_id)

    @guarded
    def verify_key(
        self,
        key: Secret | str,
        *,
        permissions: str | None = None,
        tags: Sequence[str] | None = None,
        credits_cost: int | None = None,
        ratelimits: Sequence[Mapping[str, Any]] | None = None,
    ) -> VerifyResult:
        """Ask Unkey whether ``key`` is valid (keys.verifyKey); the verdict is in ``code``.

        ``permissions`` is a query such as ``"a.read AND b.write"``; ``ratelimits`` are
        mappings of ``name`` and optional ``cost``, ``limit``, ``duration``.
        """
        if not isinstance(key, (str, Secret)):
            raise InvalidInputError("key", f"expected a str or Secret, got {_describe(key)}")
        plaintext = key.reveal() if isinstance(key, Secret) else key
        if not 1 <= len(plaintext) <= 512:
            raise InvalidInputError("key", f"expected 1-512 characters, got {len(plaintext)}")
        body: dict[str, Any] = {"key": plaintext}
        if permissions is not None:
            body["permissions"] = check_permission_query(permissions)
        if tags is not None:
            body["tags"] = check_tags(tags)
        if credits_cost is not None:
            body["credits"] = {"cost": check_int(credits_cost, "credits_cost", 0, 10**12)}
        if ratelimits is not None:
            body["ratelimits"] = check_verify_ratelimits(ratelimits)
        # The span names the operation only: the key is what is being verified.
        with confined(Secret(plaintext)), unkey_call(_VERIFY_KEY.name):
            answer = self._wire.call(_VERIFY_KEY, body, (plaintext,))
        return read_verify_result(Reader(_VERIFY_KEY.name, answer.data))

    @guarded
    def get_key(self, key_id: str, *, decrypt: bool = False) -> KeyInfo:
        """Describe ``key_id`` (keys.getKey); ``decrypt`` adds a recoverable key's plaintext."""
        body: dict[str, Any] = {"keyId": validate_key_id(key_id)}
        if check_bool(decrypt, "decrypt"):
            body["decrypt"] = True
        with unkey_call(_GET_KEY.name, key_id=key_id):
            answer = self._wire.call(_GET_KEY, body)
        return read_key_info(Reader(_GET_KEY.name, answer.data))

    @guarded
    def update_key(
        self,
        key_id: str,
        *,
        name: str | _Unset | None = UNSET,
        external_id: str | _Unset | None = UNSET,
        meta: Mapping[str, Any] | _Unset | None = UNSET,
        expires: int | datetime | _Unset | None = UNSET,
        credits: Credits | Mapping[str, Any] | _Unset | None = UNSET,
        ratelimits: Sequence[Ratelimit | Mapping[str, Any]] | _Unset = UNSET,
        enabled: bool | _Unset = UNSET,
        roles: Sequence[str] | _Unset = UNSET,
        permissions: Sequence[str] | _Unset = UNSET,
    ) -> str:
        """Change ``key_id`` (keys.updateKey) and return Unkey's requestId.

        A field left :data:`UNSET` is unchanged, a value sets it, and None clears it (name,
        external_id, meta, expires; credits=None means unlimited). Roles and permissions
        replace the key's whole list.
        """
        body: dict[str, Any] = {"keyId": validate_key_id(key_id)}
        changes: dict[str, tuple[str, object, Callable[[Any], Any]]] = {
            "name": ("name", name, lambda v: check_text(v, "name", 1, 255)),
            "external_id": ("externalId", external_id, validate_external_id),
            "meta": ("meta", meta, check_meta),
            "expires": ("expires", expires, lambda v: check_timestamp(v, "expires")),
            "credits": ("credits", credits, lambda v: check_credits(v, allow_unlimited=True)),
            "ratelimits": ("ratelimits", ratelimits, check_ratelimits),
            "enabled": ("enabled", enabled, lambda v: check_bool(v, "enabled")),
            "roles": ("roles", roles, check_roles),
            "permissions": ("permissions", permissions, check_permissions),
        }
        for field, (wire, value, check) in changes.items():
            if value is UNSET:
                continue
            if value is None:
                if field not in _NULLABLE:
                    raise InvalidInputError(field, "cannot be cleared; leave it UNSET to keep it")
                body[wire] = None
            else:
                body[wire] = check(value)
        if len(body) == 1:
            raise InvalidInputError("changes", "nothing to update; pass at least one field")
        changed = [field for field, (wire, *_) in changes.items() if wire in body]
        # A new end (null: never) is the event's news; other values are not shown.
        end = {"expires": body["expires"]} if "expires" in body else {}
        with unkey_call(
            _UPDATE_KEY.name, _update_action(body), key_id=key_id, changes=changed, **end
        ) as call:
            request_id = _required_request_id(_UPDATE_KEY, self._wire.call(_UPDATE_KEY, body))
            call.set(request_id=request_id)
        return request_id

    @guarded
    def delete_key(self, key_id: str, *, permanent: bool = False) -> str:
        """Delete ``key_id`` (keys.deleteKey) and return Unkey's requestId.

        ``permanent=True`` also erases the hash and cannot be undone.
        """
        body: dict[str, Any] = {"keyId": validate_key_id(key_id)}
        if check_bool(permanent, "permanent"):
            body["permanent"] = True
        with unkey_call(_DELETE_KEY.name, "key.deleted", key_id=key_id) as call:
            request_id = _required_request_id(_DELETE_KEY, self._wire.call(_DELETE_KEY, body))
            call.set(request_id=request_id)
        return request_id

    @guarded
    def list_keys(
        self,
        api_id: str,
        *,
        external_id: str | None = None,
        limit: int = 100,
        revalidate_keys_cache: bool = False,
    ) -> Iterator[KeyInfo]:
        """Yield every key of ``api_id`` (apis.listKeys), following the cursor page by page.

        ``limit`` is the page size (1-100). Unkey caches this list: pass
        ``revalidate_keys_cache=True`` to see keys created moments ago.
        """
        body: dict[str, Any] = {
            "apiId": validate_api_id(api_id),
            "limit": check_int(limit, "limit", 1, 100),
        }
        if external_id is not None:
            body["externalId"] = validate_external_id(external_id)
        if check_bool(revalidate_keys_cache, "revalidate_keys_cache"):
            body["revalidateKeysCache"] = True
        # Checked above, before the first next(): a generator would defer the checks.
        return self._pages(body)

    def _pages(self, body: dict[str, Any]) -> Iterator[KeyInfo]:
        op = _LIST_KEYS.name
        cursors: set[str] = set()
        while True:
            with unkey_call(_LIST_KEYS.name, api_id=body["apiId"]):
                answer = self._wire.call(_LIST_KEYS, body)
            if not isinstance(answer.data, list):
                raise Reader(op, {}).error("data", "an array")
            for index, item in enumerate(answer.data):
                yield read_key_info(Reader(op, item, f"data[{index}]"))
            page = Reader(op, answer.envelope.get("pagination"), "pagination")
            if not page.required_flag("hasMore"):
                return
            cursor = page.required_text("cursor")
            if cursor in cursors:
                raise UnkeyResponseError(
                    f"{op} sent a cursor it had sent before; stopped to avoid a loop",
                    operation=op,
                )
            cursors.add(cursor)
            body = {**body, "cursor": cursor}

    # -- apis -----------------------------------------------------------------------------

    @guarded
    def create_api(self, name: str) -> str:
        """Create an API (keyspace) named ``name`` (apis.createApi); return its apiId."""
        with unkey_call(_CREATE_API.name):
            answer = self._wire.call(_CREATE_API, {"name": check_text(name, "name", 3, 256)})
        return Reader(_CREATE_API.name, answer.data).required_text("apiId")

    @guarded
    def get_api(self, api_id: str) -> ApiInfo:
        """Describe ``api_id`` (apis.getApi): a cheap check that the root key can see it."""
        with unkey_call(_GET_API.name, api_id=api_id):
            answer = self._wire.call(_GET_API, {"apiId": validate_api_id(api_id)})
        reader = Reader(_GET_API.name, answer.data)
        return ApiInfo(api_id=reader.required_text("id"), name=reader.required_text("name"))


def _required_request_id(op: Operation, answer: Answer) -> str:
    if answer.request_id is None:
        raise Reader(op.name, {}, "meta").error("meta.requestId", "a string")
    return answer.request_id


def _update_action(body: Mapping[str, Any]) -> str:
    """The audit action of an updateKey: enabling or disabling names it, else the purpose."""
    if body.get("enabled") is True:
        return "key.enabled"
    if body.get("enabled") is False:
        return "key.disabled"
    return current_purpose() or "key.updated"


def _issued(op: Operation, answer: Answer, call: Observed, **fields: Any) -> IssuedKey:
    """Build the IssuedKey; an answer without a readable keyId and key is ambiguous.

    A key that breaks the one key rule (``_validate.validate_key_plaintext``) raises
    :class:`~unkey_secrets.UnkeyResponseError` naming the new ``key_id``, which exists in
    Unkey: the caller deletes it (:func:`~unkey_secrets.provision` does). ``call`` (the
    request's observation) learns the new key's id, and that the key exists either way.
    """
    data = answer.data if isinstance(answer.data, dict) else {}
    key_id, key = data.get("keyId"), data.get("key")
    if not (isinstance(key_id, str) and _KEY_ID.fullmatch(key_id) and isinstance(key, str) and key):
        raise ambiguous(op, "answered without a readable keyId and key")
    call.set(key_id=key_id, request_id=answer.request_id)
    secret = Secret(key)
    try:
        validate_key_plaintext(secret, key_id)
    except InvalidInputError as exc:
        problem = exc.problem
    else:
        return IssuedKey(key_id=key_id, secret=secret, request_id=answer.request_id, **fields)
    call.happened()
    # Raised outside the except block: the problem names a length, never the key.
    raise UnkeyResponseError(
        f"{op.name} answered key {key_id} with a plaintext that is not an Unkey key "
        f"({problem}); the key exists in Unkey: delete it",
        operation=op.name,
        key_id=key_id,
    )
