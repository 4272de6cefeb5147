"""Naming an error in another error's message, and chaining it, without leaking its text."""

from __future__ import annotations

from .._errors import UnkeySecretsError

__all__ = ["describe_error", "safe_cause"]


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` for our own errors, the class name alone for anything else.

    Our errors never carry a key or a credential; a foreign one (an SDK's, a plugin store's)
    may echo its input, so only its class is named.
    """
    if isinstance(exc, UnkeySecretsError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def safe_cause(exc: BaseException) -> BaseException | None:
    """``exc`` if it may be chained as a ``__cause__`` (ours), else None (foreign: not chained)."""
    return exc if isinstance(exc, UnkeySecretsError) else None
