"""unkey-secrets: Unkey API keys, straight into Vault or AWS Secrets Manager.

A key Unkey creates or rerolls is written to the store under its key_id and never reaches disk,
logs or error text. Start with :func:`provision`, :func:`rotate` and :func:`capture`
(:func:`reconcile` finds what Unkey and a store disagree on); stores are loaded by name with
:func:`load_store` (``"vault"``, ``"aws"``, or a plugin's).

The errors and :class:`Secret` are imported with the package; everything else on first use
(PEP 562), so a program that needs one part (the command line's ``--help``, a reader) does not
pay for the Unkey client's HTTP stack or the flows.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    AmbiguousOutcomeError,
    CompensatedError,
    CompensationFailedError,
    ConfigurationError,
    DeletedVersionError,
    FlowError,
    InvalidInputError,
    NotOwnedError,
    RotationConflictError,
    RotationStepError,
    SecretNotFoundError,
    StoreAccessError,
    StoreConflictError,
    StoredValueError,
    StoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    UnkeyAmbiguousError,
    UnkeyAPIError,
    UnkeyAuthError,
    UnkeyError,
    UnkeyNotFoundError,
    UnkeyRateLimitedError,
    UnkeyResponseError,
    UnkeySecretsError,
    UnkeyServerError,
    UnkeyTransportError,
)
from ._redact import install_guards
from ._secret import Secret

if TYPE_CHECKING:
    from ._models import AliasState, IssuedKey, KeyEntry, KeyRef, StoredKey, StoredLocation
    from ._reconcile import ReconcileFinding, ReconcileReport, reconcile
    from .flows import ProvisionResult, RetryPolicy, capture, provision, rotate
    from .rotation.protocol import RotationResult
    from .rotation.record import RotationRecord
    from .stores import SecretStore, available_stores, load_store
    from .unkey import UnkeyClient

__version__ = "0.1.0"

# Installed on import: some leaks (the official SDK's debug log of a createKey answer) happen
# before any of our functions runs. It changes no level, handler or formatter.
install_guards()

__all__ = [
    "AliasState",
    "AmbiguousOutcomeError",
    "CompensatedError",
    "CompensationFailedError",
    "ConfigurationError",
    "DeletedVersionError",
    "FlowError",
    "InvalidInputError",
    "IssuedKey",
    "KeyEntry",
    "KeyRef",
    "NotOwnedError",
    "ProvisionResult",
    "ReconcileFinding",
    "ReconcileReport",
    "RetryPolicy",
    "RotationConflictError",
    "RotationRecord",
    "RotationResult",
    "RotationStepError",
    "Secret",
    "SecretNotFoundError",
    "SecretStore",
    "StoreAccessError",
    "StoreConflictError",
    "StoreError",
    "StoreNotFoundError",
    "StoreUnavailableError",
    "StoredKey",
    "StoredLocation",
    "StoredValueError",
    "UnkeyAPIError",
    "UnkeyAmbiguousError",
    "UnkeyAuthError",
    "UnkeyClient",
    "UnkeyError",
    "UnkeyNotFoundError",
    "UnkeyRateLimitedError",
    "UnkeyResponseError",
    "UnkeySecretsError",
    "UnkeyServerError",
    "UnkeyTransportError",
    "__version__",
    "available_stores",
    "capture",
    "install_guards",
    "load_store",
    "provision",
    "reconcile",
    "rotate",
]

#: name -> the module (under this package) that defines it, imported on first use.
_LAZY = {
    **dict.fromkeys(
        ("AliasState", "IssuedKey", "KeyEntry", "KeyRef", "StoredKey", "StoredLocation"), "_models"
    ),
    **dict.fromkeys(("ReconcileFinding", "ReconcileReport", "reconcile"), "_reconcile"),
    **dict.fromkeys(("ProvisionResult", "RetryPolicy", "capture", "provision", "rotate"), "flows"),
    "RotationResult": "rotation.protocol",
    "RotationRecord": "rotation.record",
    **dict.fromkeys(("SecretStore", "available_stores", "load_store"), "stores"),
    "UnkeyClient": "unkey",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
