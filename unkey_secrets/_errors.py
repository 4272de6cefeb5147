"""The one exception tree of unkey-secrets.

Every error we raise derives from :class:`UnkeySecretsError`::

    UnkeySecretsError
    ├── InvalidInputError            bad id, name, template or option; nothing was sent
    ├── ConfigurationError           settings missing or inconsistent, extra not installed
    │   └── StoreNotFoundError       no store registered under that name
    ├── UnkeyError                   anything that went wrong talking to Unkey
    │   ├── UnkeyAPIError            Unkey's error envelope (status, error_type, request_id)
    │   │   ├── UnkeyAuthError           401 / 403
    │   │   ├── UnkeyNotFoundError       404
    │   │   ├── UnkeyRateLimitedError    429 (retry_after)
    │   │   └── UnkeyServerError         5xx
    │   ├── UnkeyTransportError      the request never reached Unkey (or, for a read, no answer)
    │   │   └── UnkeyAmbiguousError  a write was sent and may have been carried out, unanswered
    │   └── UnkeyResponseError       the answer was not the documented shape
    ├── StoreError                   anything that went wrong talking to a secret store
    │   ├── StoreConflictError       the target exists and holds something else
    │   ├── NotOwnedError            the target exists and was not created by unkey-secrets
    │   ├── SecretNotFoundError      nothing is stored at the location read
    │   ├── DeletedVersionError      the location's current version was deleted or destroyed
    │   ├── StoreAccessError         the store refused our credentials or permissions
    │   ├── StoreUnavailableError    transient: connection, throttling, 5xx (worth retrying)
    │   └── StoredValueError         a stored value is not in the documented shape
    ├── RotationStepError            a rotation Lambda step failed; Secrets Manager retries it
    └── FlowError                    a flow could not finish; says what happened to the key in Unkey
        ├── CompensatedError         the store write failed and Unkey was put back (key deleted,
        │                            expiry restored); nothing valid is left behind
        ├── AmbiguousOutcomeError    Unkey may have acted; the flow found out and says what it found
        ├── CompensationFailedError  the store write failed and undoing it failed too; names the
        │                            key_id an operator must revoke
        └── RotationConflictError    another run owns this rotation, or the alias is taken;
                                     nothing was changed

No exception in this tree ever carries a plaintext key: messages are built from key_ids, paths,
status codes and error types only, and foreign exceptions that could hold a body are chained with
``from None`` or replaced by a summary (see :mod:`unkey_secrets._redact`). Text Unkey sent (an
error envelope's type, title, detail and requestId) is untrusted: it passes through
:func:`unkey_secrets._validate.untrusted_text`, which masks anything shaped like a key and every
value being confined, before it reaches a message or an attribute.

Every error pickles with its message and attributes (``copy`` and ``multiprocessing`` rely on
it: a worker's exception that cannot be unpickled hangs a ``Pool``), without calling
``__init__`` again.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AmbiguousOutcomeError",
    "CompensatedError",
    "CompensationFailedError",
    "ConfigurationError",
    "DeletedVersionError",
    "FlowError",
    "InvalidInputError",
    "NotOwnedError",
    "RotationConflictError",
    "RotationStepError",
    "SecretNotFoundError",
    "StoreAccessError",
    "StoreConflictError",
    "StoreError",
    "StoreNotFoundError",
    "StoreUnavailableError",
    "StoredValueError",
    "UnkeyAPIError",
    "UnkeyAmbiguousError",
    "UnkeyAuthError",
    "UnkeyError",
    "UnkeyNotFoundError",
    "UnkeyRateLimitedError",
    "UnkeyResponseError",
    "UnkeySecretsError",
    "UnkeyServerError",
    "UnkeyTransportError",
]


def _restore(cls: type[UnkeySecretsError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    """Rebuild a pickled error from its args and attributes, without running ``__init__``.

    Our errors take keyword-only arguments, so the default ``cls(*args)`` cannot rebuild them.
    """
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class UnkeySecretsError(Exception):
    """Base class of every error raised by unkey-secrets."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Attributes (and __notes__) live in __dict__; the traceback and chain are not kept,
        # as for any pickled exception.
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class InvalidInputError(UnkeySecretsError, ValueError):
    """An argument failed validation before any I/O; nothing was sent or written.

    ``field`` names the offending argument (``"key_id"``, ``"path_template"``...).
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid {field}: {problem}")


class ConfigurationError(UnkeySecretsError):
    """Settings are missing or inconsistent, or an optional extra is not installed."""


class StoreNotFoundError(ConfigurationError, LookupError):
    """No secret store is registered under the requested name."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        listed = ", ".join(sorted(available)) or "none"
        super().__init__(f"no secret store named {name!r}; installed stores: {listed}")


class UnkeyError(UnkeySecretsError):
    """Something went wrong talking to the Unkey API.

    ``operation`` is the API operation (``"keys.createKey"``).
    """

    def __init__(self, message: str, *, operation: str) -> None:
        self.operation = operation
        super().__init__(message)


class UnkeyAPIError(UnkeyError):
    """Unkey answered with its error envelope.

    Carries the HTTP ``status``, Unkey's ``error_type`` URI, ``title``, ``detail`` and the
    ``request_id`` to quote to Unkey support.
    """

    def __init__(
        self,
        *,
        operation: str,
        status: int,
        error_type: str,
        title: str,
        detail: str,
        request_id: str | None,
    ) -> None:
        from ._validate import untrusted_request_id, untrusted_text

        # Unkey's words are untrusted: whoever builds this error, they are masked here.
        error_type, title, detail = (untrusted_text(t) for t in (error_type, title, detail))
        if request_id is not None:
            request_id = untrusted_request_id(request_id)
        self.status = status
        self.error_type = error_type
        self.title = title
        self.detail = detail
        self.request_id = request_id
        super().__init__(
            f"{operation} failed with {status} {title}: {detail} "
            f"(type={error_type}, requestId={request_id})",
            operation=operation,
        )


class UnkeyAuthError(UnkeyAPIError):
    """The root key is missing, unknown (401) or lacks a permission (403)."""


class UnkeyNotFoundError(UnkeyAPIError):
    """The key or API does not exist, or (createKey) the root key may not see it."""


class UnkeyRateLimitedError(UnkeyAPIError):
    """Unkey answered 429; ``retry_after`` is the server's hint in seconds, if it sent one."""

    def __init__(
        self,
        *,
        operation: str,
        status: int,
        error_type: str,
        title: str,
        detail: str,
        request_id: str | None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(
            operation=operation,
            status=status,
            error_type=error_type,
            title=title,
            detail=detail,
            request_id=request_id,
        )


class UnkeyServerError(UnkeyAPIError):
    """Unkey answered with a 5xx status."""


class UnkeyTransportError(UnkeyError):
    """No usable answer came back (connection refused, TLS failure, a read that timed out).

    Raised as this class, a write cannot have been carried out; see :class:`UnkeyAmbiguousError`.
    """


class UnkeyAmbiguousError(UnkeyTransportError):
    """A write was sent but no readable answer came back: Unkey may or may not have acted.

    create and reroll are never retried blindly, so the flows settle it by looking for what the
    request made; update and delete raise it only after their retries ran out.
    """


class UnkeyResponseError(UnkeyError):
    """Unkey's answer was not the documented shape; the message never quotes the body.

    ``key_id`` is set when a createKey or rerollKey answer named a new key but its plaintext
    was unusable: that key exists in Unkey and the caller must delete it (the flows do).
    """

    def __init__(self, message: str, *, operation: str, key_id: str | None = None) -> None:
        self.key_id = key_id
        super().__init__(message, operation=operation)


class StoreError(UnkeySecretsError):
    """Something went wrong talking to a secret store.

    ``store`` is the backend name (``"vault"``, ``"aws"``) and ``location`` the path or secret
    name involved, when known.
    """

    def __init__(self, message: str, *, store: str, location: str | None = None) -> None:
        self.store = store
        self.location = location
        super().__init__(message)


class StoreConflictError(StoreError):
    """The target already exists and holds a different key, or changed under us."""


class NotOwnedError(StoreError):
    """The target exists but was not created by unkey-secrets; we never overwrite it."""


class SecretNotFoundError(StoreError, LookupError):
    """Nothing is stored at the location that was read."""


class DeletedVersionError(StoreError):
    """The location's current version was deleted or destroyed; nothing is read from it.

    Not :class:`SecretNotFoundError`: something was stored, and the location's metadata still
    says what (Vault KV v2 keeps a deleted version's metadata; ``bao kv delete`` and
    ``delete_version_after`` delete the current version, ``bao kv destroy`` removes its data).
    ``version`` is that KV version, ``deleted_at`` when it was deleted (RFC 3339, UTC, to the
    second; None for a version destroyed without being deleted first), ``destroyed`` whether
    its data is gone for good, and ``key_id`` the key the metadata names (None when it names
    none). The message names the command that stores a new version there.
    """

    def __init__(
        self,
        message: str,
        *,
        store: str,
        location: str | None = None,
        version: int = 0,
        deleted_at: str | None = None,
        destroyed: bool = False,
        key_id: str | None = None,
    ) -> None:
        super().__init__(message, store=store, location=location)
        self.version = version
        self.deleted_at = deleted_at
        self.destroyed = destroyed
        self.key_id = key_id


class StoreAccessError(StoreError):
    """The store refused our credentials or the operation is not permitted."""


class StoreUnavailableError(StoreError):
    """A transient failure (connection, throttling, server error); the write may be retried.

    ``reason`` says which, when the store knows: ``"unreachable"`` (no connection could be
    made: refused, no route, no name, none in time) or ``"sealed"`` (Vault's 503: sealed, or
    no active node); None otherwise (throttling, another 5xx, an answer that never came).
    """

    def __init__(
        self,
        message: str,
        *,
        store: str,
        location: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.reason = reason
        super().__init__(message, store=store, location=location)


class StoredValueError(StoreError):
    """A stored value is not in the documented shape; the message never quotes the value."""


class FlowError(UnkeySecretsError):
    """A flow could not finish.

    ``key_id`` is the key Unkey issued (or may have issued), ``original_key_id`` the key being
    rotated, if any, and ``actions`` lists, in order, what was done to leave no orphan.
    """

    def __init__(
        self,
        message: str,
        *,
        key_id: str | None,
        original_key_id: str | None = None,
        actions: tuple[str, ...] = (),
    ) -> None:
        self.key_id = key_id
        self.original_key_id = original_key_id
        self.actions = actions
        super().__init__(message)


class CompensatedError(FlowError):
    """The store write failed after Unkey acted, and Unkey was put back as it was."""


class AmbiguousOutcomeError(FlowError):
    """Unkey may have acted without answering; the flow looked and ``actions`` says what it found.

    When it is raised, no valid key is left unstored: a key that was found was deleted (or, for a
    reroll, stored), and ``key_id`` is None when Unkey turned out not to have acted.
    """


class CompensationFailedError(FlowError):
    """The store write failed and undoing the Unkey side failed too.

    An operator must revoke ``key_id`` (and, after a reroll, check ``original_key_id``'s expiry).
    """


class RotationConflictError(FlowError):
    """Another run owns this rotation (or another key owns the alias); nothing was changed.

    Raised before Unkey is called: when a second run finds the rotation record claimed by a
    live run, when the key carries another rotation's marker, or when :func:`provision` finds
    its alias naming a key already (pass ``replace=True`` to move it).
    """


class RotationStepError(UnkeySecretsError):
    """A rotation step could not finish; Secrets Manager will retry the rotation.

    ``step`` is the step, ``secret`` the secret's ARN (or id); the message names key_ids and
    what was undone, never a key.
    """

    def __init__(self, message: str, *, step: str, secret: str) -> None:
        self.step = step
        self.secret = secret
        super().__init__(message)
