"""Validate Kubernetes manifests offline: core kinds and the operators' custom resources.

Core kinds (Deployment, CronJob, ConfigMap, ...) are checked by ``kubernetes-validate`` against
the Kubernetes OpenAPI schemas it ships, in strict mode (an unknown field is an error, as with
``kubectl apply --validate=strict``), for each version in :data:`KUBERNETES_VERSIONS`.

No package index ships the operators' CRDs, so the custom resources are checked against schemas
derived here from the CRDs the operators publish, field by field, for the fields the examples
use: External Secrets Operator's ``external-secrets.io/v1`` (the only version it has served
since 0.17; ``v1beta1`` is refused) and Vault Secrets Operator's ``secrets.hashicorp.com/v1beta1``.
Types, enums, patterns and required members are the CRDs'; ``metadata`` is Kubernetes'
ObjectMeta. Unlike the CRDs, every object here refuses members it does not list, so a misspelt
field fails instead of being pruned by the API server; a real field missing here fails too,
until it is added with its type from the CRD.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml
from kubernetes_validate.utils import latest_version, major_minor
from referencing import Registry, Resource

__all__ = [
    "KUBERNETES_VERSIONS",
    "ManifestError",
    "custom_resource_kinds",
    "go_duration_seconds",
    "load_documents",
    "validate_document",
]

#: The oldest Kubernetes the examples promise to apply to, and the newest with shipped schemas.
KUBERNETES_VERSIONS = ("1.30", major_minor(latest_version()))

_DEFINITIONS = "https://kubernetes.io/api/_definitions.json"
_OBJECT_META = {"$ref": f"{_DEFINITIONS}#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
# Kubernetes object names (RFC 1123 subdomains), as the ESO CRD writes them.
_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 253,
    "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
}
_SECRET_KEY = {"type": "string", "minLength": 1, "maxLength": 253, "pattern": r"^[-._a-zA-Z0-9]+$"}
_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_STRING_MAP = {"type": "object", "additionalProperties": _STRING}
_STRINGS = {"type": "array", "items": _STRING}
# Go's time.ParseDuration, which ESO applies to refreshInterval ("0" turns refreshing off).
_GO_DURATION = {"type": "string", "pattern": r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$"}


class ManifestError(AssertionError):
    """A manifest document that does not validate; the message names the file, kind and field."""


def _object(properties: Mapping[str, Any], *required: str, **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": dict(properties),
        "additionalProperties": False,
    }
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


def _enum(*values: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(values)}


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _object(
        {
            "apiVersion": {"const": api_version},
            "kind": {"const": kind},
            "metadata": _OBJECT_META,
            "spec": spec,
        },
        "apiVersion",
        "kind",
        "metadata",
        "spec",
    )


# -- External Secrets Operator, external-secrets.io/v1 ------------------------------------------

_ESO = "external-secrets.io/v1"
_SECRET_KEY_SELECTOR = _object(
    {"name": _NAME, "namespace": _STRING, "key": _SECRET_KEY}, "name", "key"
)
_SERVICE_ACCOUNT_SELECTOR = _object(
    {"name": _NAME, "namespace": _STRING, "audiences": _STRINGS}, "name"
)
_VAULT_PROVIDER = _object(
    {
        "server": _STRING,
        "path": _STRING,
        "version": _enum("v1", "v2"),
        "namespace": _STRING,
        "auth": _object(
            {
                "tokenSecretRef": _SECRET_KEY_SELECTOR,
                "kubernetes": _object(
                    {
                        "mountPath": _STRING,
                        "role": _STRING,
                        "serviceAccountRef": _SERVICE_ACCOUNT_SELECTOR,
                        "secretRef": _SECRET_KEY_SELECTOR,
                    },
                    "role",
                ),
                "appRole": _object(
                    {
                        "path": _STRING,
                        "roleId": _STRING,
                        "roleRef": _SECRET_KEY_SELECTOR,
                        "secretRef": _SECRET_KEY_SELECTOR,
                    },
                    "path",
                    "secretRef",
                ),
            }
        ),
    },
    "server",
)
_AWS_PROVIDER = _object(
    {
        "service": _enum("SecretsManager", "ParameterStore"),
        "region": _STRING,
        "role": _STRING,
        "auth": _object(
            {
                "jwt": _object({"serviceAccountRef": _SERVICE_ACCOUNT_SELECTOR}),
                "secretRef": _object(
                    {
                        "accessKeyIDSecretRef": _SECRET_KEY_SELECTOR,
                        "secretAccessKeySecretRef": _SECRET_KEY_SELECTOR,
                        "sessionTokenSecretRef": _SECRET_KEY_SELECTOR,
                    }
                ),
            }
        ),
    },
    "service",
    "region",
)
_SECRET_STORE = _resource(
    _ESO,
    "SecretStore",
    _object(
        {
            "provider": _object(
                {"vault": _VAULT_PROVIDER, "aws": _AWS_PROVIDER},
                minProperties=1,
                maxProperties=1,
            ),
            "refreshInterval": {"type": "integer"},
        },
        "provider",
    ),
)
_REMOTE_REF = _object(
    {
        "key": _STRING,
        "property": _STRING,
        "version": _STRING,
        "conversionStrategy": _enum("Default", "Unicode"),
        "decodingStrategy": _enum("Auto", "Base64", "Base64URL", "None"),
        "metadataPolicy": _enum("None", "Fetch"),
    },
    "key",
)
_EXTERNAL_SECRET = _resource(
    _ESO,
    "ExternalSecret",
    _object(
        {
            "refreshInterval": _GO_DURATION,
            "refreshPolicy": _enum("CreatedOnce", "Periodic", "OnChange"),
            "secretStoreRef": _object(
                {"kind": _enum("SecretStore", "ClusterSecretStore"), "name": _NAME}
            ),
            "target": _object(
                {
                    "name": _NAME,
                    "creationPolicy": _enum("Owner", "Orphan", "Merge", "None"),
                    "deletionPolicy": _enum("Delete", "Merge", "Retain"),
                    "immutable": _BOOL,
                    "template": _object(
                        {
                            "type": _STRING,
                            "engineVersion": _enum("v2"),
                            "mergePolicy": _enum("Replace", "Merge"),
                            "metadata": _object(
                                {"annotations": _STRING_MAP, "labels": _STRING_MAP}
                            ),
                            "data": _STRING_MAP,
                        }
                    ),
                }
            ),
            "data": {
                "type": "array",
                "items": _object(
                    {"secretKey": _SECRET_KEY, "remoteRef": _REMOTE_REF},
                    "secretKey",
                    "remoteRef",
                ),
            },
        },
    ),
)

# -- Vault Secrets Operator, secrets.hashicorp.com/v1beta1 --------------------------------------

_VSO = "secrets.hashicorp.com/v1beta1"
_VAULT_CONNECTION = _resource(
    _VSO,
    "VaultConnection",
    _object(
        {
            "address": _STRING,
            "caCertSecretRef": _STRING,
            "headers": _STRING_MAP,
            "skipTLSVerify": _BOOL,
            "tlsServerName": _STRING,
        },
        "address",
    ),
)
_TOKEN_EXPIRATION = {"type": "integer", "minimum": 600}
_VAULT_AUTH = _resource(
    _VSO,
    "VaultAuth",
    _object(
        {
            "vaultConnectionRef": _STRING,
            "method": _enum("kubernetes", "jwt", "appRole", "aws", "gcp"),
            "mount": _STRING,
            "namespace": _STRING,
            "allowedNamespaces": _STRINGS,
            "headers": _STRING_MAP,
            "params": _STRING_MAP,
            "kubernetes": _object(
                {
                    "role": _STRING,
                    "serviceAccount": _STRING,
                    "audiences": _STRINGS,
                    "tokenExpirationSeconds": _TOKEN_EXPIRATION,
                }
            ),
            "jwt": _object(
                {
                    "role": _STRING,
                    "secretRef": _STRING,
                    "serviceAccount": _STRING,
                    "audiences": _STRINGS,
                    "tokenExpirationSeconds": _TOKEN_EXPIRATION,
                }
            ),
            "appRole": _object({"roleId": _STRING, "secretRef": _STRING}),
        }
    ),
)
_VAULT_STATIC_SECRET = _resource(
    _VSO,
    "VaultStaticSecret",
    _object(
        {
            "vaultAuthRef": _STRING,
            "namespace": _STRING,
            "mount": _STRING,
            "path": _STRING,
            "type": _enum("kv-v1", "kv-v2"),
            "version": {"type": "integer", "minimum": 0},
            "refreshAfter": {"type": "string", "pattern": r"^([0-9]+(\.[0-9]+)?(s|m|h))$"},
            "hmacSecretData": _BOOL,
            "syncConfig": _object({"instantUpdates": _BOOL}),
            "destination": _object(
                {
                    "name": _STRING,
                    "create": _BOOL,
                    "overwrite": _BOOL,
                    "type": _STRING,
                    "labels": _STRING_MAP,
                    "annotations": _STRING_MAP,
                    "transformation": _object(
                        {
                            "excludeRaw": _BOOL,
                            "excludes": _STRINGS,
                            "includes": _STRINGS,
                            "templates": {
                                "type": "object",
                                "additionalProperties": _object(
                                    {"name": _STRING, "text": _STRING}, "text"
                                ),
                            },
                        }
                    ),
                },
                "name",
            ),
            "rolloutRestartTargets": {
                "type": "array",
                "items": _object(
                    {
                        "kind": _enum("Deployment", "DaemonSet", "StatefulSet", "argo.Rollout"),
                        "name": _STRING,
                    },
                    "kind",
                    "name",
                ),
            },
        },
        "destination",
        "mount",
        "path",
        "type",
    ),
)

_CUSTOM: dict[tuple[str, str], dict[str, Any]] = {
    (schema["properties"]["apiVersion"]["const"], schema["properties"]["kind"]["const"]): schema
    for schema in (
        _SECRET_STORE,
        _EXTERNAL_SECRET,
        _VAULT_CONNECTION,
        _VAULT_AUTH,
        _VAULT_STATIC_SECRET,
    )
}
# Versions the operators publish but no longer serve: an apply fails with "no matches for kind".
_NOT_SERVED = {
    "external-secrets.io/v1beta1": "External Secrets Operator serves only external-secrets.io/v1 "
    "since 0.17",
    "external-secrets.io/v1alpha1": "External Secrets Operator serves only "
    "external-secrets.io/v1 since 0.17",
}


def custom_resource_kinds() -> list[tuple[str, str]]:
    """The (apiVersion, kind) pairs with a derived schema here."""
    return sorted(_CUSTOM)


@cache
def _registry(version: str) -> Registry:
    # kubernetes-validate's definitions, for metadata (ObjectMeta) in the custom resources.
    schema_dir = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    definitions = json.loads(
        (schema_dir / f"v{version}.0-local-strict" / "_definitions.json").read_text()
    )
    return Resource.from_contents(definitions) @ Registry()


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def validate_document(doc: Mapping[str, Any], *, source: str, version: str) -> None:
    """Validate one manifest document against Kubernetes ``version`` (``"1.30"``).

    Raises :class:`ManifestError` naming ``source``, the kind and the failing field when the
    document does not validate or when no schema is known for its apiVersion and kind.
    """
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    what = f"{source}: {kind} {(doc.get('metadata') or {}).get('name')!r} ({api_version})"
    if api_version in _NOT_SERVED:
        raise ManifestError(f"{what}: {_NOT_SERVED[api_version]}")
    schema = _CUSTOM.get((str(api_version), str(kind)))
    if schema is not None:
        validator = jsonschema.Draft202012Validator(schema, registry=_registry(version))
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            raise ManifestError(f"{what}: {_where(errors[0])}: {errors[0].message}")
        return
    if "." in str(api_version).split("/")[0] and not str(api_version).split("/")[0].endswith(
        ".k8s.io"
    ):
        raise ManifestError(
            f"{what}: no schema for this custom resource in tests/_k8s_manifests.py"
        )
    try:
        kubernetes_validate.validate(dict(doc), version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise ManifestError(f"{what}: {_where(exc)}: {exc.message}") from None
    except kubernetes_validate.SchemaNotFoundError as exc:
        raise ManifestError(f"{what}: {exc.message}") from None


def load_documents(path: Path) -> Iterator[dict[str, Any]]:
    """The non-empty YAML documents of ``path``; each must be a mapping."""
    for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"{path}: document {index} is a {type(doc).__name__}, not a map")
        yield doc


_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def go_duration_seconds(text: str) -> float:
    """Seconds in a Go duration (``"5m"``, ``"1h30m"``, ``"0"``), as ESO, VSO and HCL write them.

    Raises ValueError for anything else.
    """
    if text == "0":
        return 0.0
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
