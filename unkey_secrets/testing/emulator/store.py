"""The Unkey emulator's state and what each operation does to it (no HTTP, no faults).

Every method takes a validated request body and the caller's :class:`Principal`, and returns
the ``data`` of the success envelope or raises :class:`ApiError`. The caller holds the lock.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .model import (
    ApiError,
    ApiRecord,
    EmulatedKey,
    PermissionQuery,
    QuerySyntaxError,
    base58,
    forbidden,
    new_id,
    not_found_key,
    sha256,
)

__all__ = ["Principal", "Store"]

_API_NOT_FOUND = "The specified API was not found."
_NO_ENCRYPTION = "This API does not support key encryption."


@dataclass(frozen=True)
class Principal:
    """A root key's permissions; ``"*"`` grants everything."""

    permissions: frozenset[str]

    def allows(self, action: str, api_id: str) -> bool:
        """Whether the root key may do ``action`` on ``api_id``."""
        held = self.permissions
        return "*" in held or f"api.*.{action}" in held or f"api.{api_id}.{action}" in held

    def allows_somewhere(self, action: str) -> bool:
        """Whether the root key may do ``action`` on at least one API."""
        suffix = f".{action}"
        return "*" in self.permissions or any(
            p.startswith("api.") and p.endswith(suffix) for p in self.permissions
        )

    def require(self, action: str, api_id: str) -> None:
        """Raise the 403 unless the root key may do ``action`` on ``api_id``."""
        if not self.allows(action, api_id):
            raise forbidden(f"api.*.{action}, api.{api_id}.{action}")


def _minute_ceiling(ms: int) -> int:
    return math.ceil(ms / 60_000) * 60_000


class Store:
    """APIs, keys and identities of one workspace."""

    def __init__(self, now_ms: Callable[[], int], list_cache_seconds: float) -> None:
        self.now_ms = now_ms
        self.list_cache_ms = list_cache_seconds * 1000
        self.apis: dict[str, ApiRecord] = {}
        self.keys: dict[str, EmulatedKey] = {}
        self.by_hash: dict[str, str] = {}
        self.identities: dict[str, str] = {}
        # Unkey keeps recoverable keys encrypted in its own vault; here they stay in memory.
        self._vault: dict[str, str] = {}
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}

    # -- helpers ----------------------------------------------------------------------------

    def add_api(self, name: str, store_encrypted_keys: bool) -> ApiRecord:
        """Create an API record with a fresh id."""
        api_id = new_id("api", 12)
        while api_id in self.apis:
            api_id = new_id("api", 12)
        api = ApiRecord(api_id, name, store_encrypted_keys, created_at=self.now_ms())
        self.apis[api_id] = api
        return api

    def _live_key(self, key_id: str) -> EmulatedKey:
        key = self.keys.get(key_id)
        if key is None or key.deleted:
            raise not_found_key()
        return key

    def _identity(self, external_id: str | None) -> dict[str, Any] | None:
        if external_id is None:
            return None
        if external_id not in self.identities:
            self.identities[external_id] = new_id("id", 16)
        return {"id": self.identities[external_id], "externalId": external_id, "meta": {}}

    def _issue(
        self,
        api: ApiRecord,
        prefix: str | None,
        byte_length: int,
        fields: dict[str, Any],
    ) -> tuple[EmulatedKey, str]:
        secret = base58(secrets.token_bytes(byte_length))
        plaintext = f"{prefix}_{secret}" if prefix else secret
        start = plaintext[: len(prefix) + 1 + 4] if prefix else secret[:4]
        key_id = new_id("key")
        while key_id in self.keys:
            key_id = new_id("key")
        digest = sha256(plaintext)
        key = EmulatedKey(
            key_id=key_id,
            api_id=api.api_id,
            start=start,
            hash=digest,
            created_at=self.now_ms(),
            **fields,
        )
        self.keys[key_id] = key
        self.by_hash[digest] = key_id
        if key.recoverable:
            self._vault[key_id] = plaintext
        if key.external_id is not None:
            self._identity(key.external_id)
        return key, plaintext

    @staticmethod
    def _ratelimits(items: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
        return tuple(
            {
                "id": new_id("rl", 12),
                "name": item["name"],
                "limit": item["limit"],
                "duration": item["duration"],
                "autoApply": item["autoApply"],
            }
            for item in items
        )

    def describe(self, key: EmulatedKey, *, plaintext: bool) -> dict[str, Any]:
        """KeyResponseData for ``key``; ``plaintext`` adds a recoverable key's plaintext."""
        data: dict[str, Any] = {
            "keyId": key.key_id,
            "start": key.start,
            "enabled": key.enabled,
            "createdAt": key.created_at,
        }
        optional = {
            "name": key.name,
            "meta": copy.deepcopy(key.meta),
            "updatedAt": key.updated_at,
            "lastUsedAt": key.last_used_at,
            "expires": key.expires,
            "credits": copy.deepcopy(key.credits),
            "identity": self._identity(key.external_id),
        }
        data.update({name: value for name, value in optional.items() if value is not None})
        data["permissions"] = list(key.permissions)
        data["roles"] = list(key.roles)
        if key.ratelimits:
            data["ratelimits"] = [dict(limit) for limit in key.ratelimits]
        if plaintext and key.key_id in self._vault:
            data["plaintext"] = self._vault[key.key_id]
        return data

    # -- apis -------------------------------------------------------------------------------

    def create_api(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """apis.createApi."""
        if not who.allows("create_api", "*"):
            raise forbidden("api.*.create_api")
        return {"apiId": self.add_api(body["name"], False).api_id}

    def get_api(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """apis.getApi."""
        who.require("read_api", body["apiId"])
        api = self.apis.get(body["apiId"])
        if api is None:
            raise ApiError(404, "err:unkey:data:api_not_found", _API_NOT_FOUND)
        return {"id": api.api_id, "name": api.name}

    def list_keys(self, who: Principal, body: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """apis.listKeys: the page and its pagination object."""
        api_id = body["apiId"]
        who.require("read_key", api_id)
        who.require("read_api", api_id)
        api = self.apis.get(api_id)
        if api is None:
            raise ApiError(404, "err:unkey:data:api_not_found", _API_NOT_FOUND)
        decrypt = body.get("decrypt", False)
        if decrypt:
            who.require("decrypt_key", api_id)
            if not api.store_encrypted_keys:
                raise ApiError(412, "err:unkey:application:precondition_failed", _NO_ENCRYPTION)
        fresh_after = self.now_ms() - self.list_cache_ms
        revalidate = body.get("revalidateKeysCache", False)
        cursor = body.get("cursor")
        matching = sorted(
            (
                key
                for key in self.keys.values()
                if key.api_id == api_id
                and not key.deleted
                and (cursor is None or key.key_id > cursor)
                and ("externalId" not in body or key.external_id == body["externalId"])
                # The cached list does not hold keys made after it was filled.
                and (revalidate or key.created_at <= fresh_after)
            ),
            key=lambda key: key.key_id,
        )
        limit = body.get("limit", 100)
        page = matching[:limit]
        pagination: dict[str, Any] = {"hasMore": len(matching) > limit}
        if pagination["hasMore"]:
            pagination["cursor"] = page[-1].key_id
        return [self.describe(key, plaintext=decrypt) for key in page], pagination

    # -- keys -------------------------------------------------------------------------------

    def create_key(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """keys.createKey; a missing permission looks like a missing API."""
        api_id = body["apiId"]
        recoverable = body.get("recoverable", False)
        api = self.apis.get(api_id)
        allowed = who.allows("create_key", api_id) and (
            not recoverable or who.allows("encrypt_key", api_id)
        )
        if api is None or not allowed:
            raise ApiError(404, "err:unkey:data:api_not_found", _API_NOT_FOUND)
        if recoverable and not api.store_encrypted_keys:
            raise ApiError(412, "err:unkey:application:precondition_failed", _NO_ENCRYPTION)
        credits = body.get("credits")
        fields = {
            "name": body.get("name"),
            "meta": body.get("meta"),
            "external_id": body.get("externalId"),
            "enabled": body.get("enabled", True),
            "expires": body.get("expires"),
            "permissions": tuple(dict.fromkeys(body.get("permissions", ()))),
            "roles": tuple(dict.fromkeys(body.get("roles", ()))),
            "credits": copy.deepcopy(credits),
            "ratelimits": self._ratelimits(body.get("ratelimits", [])),
            "recoverable": recoverable,
        }
        prefix = body.get("prefix", api.default_prefix)
        length = body.get("byteLength") or api.default_bytes
        key, plaintext = self._issue(api, prefix, length, fields)
        return {"keyId": key.key_id, "key": plaintext}

    def reroll_key(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """keys.rerollKey: a new key copying the original, whose expiry moves."""
        original = self._live_key(body["keyId"])
        who.require("create_key", original.api_id)
        if original.recoverable:
            who.require("encrypt_key", original.api_id)
        api = self.apis[original.api_id]
        prefix = original.start.split("_", 1)[0] if "_" in original.start else api.default_prefix
        fields = {
            "name": original.name,
            "meta": copy.deepcopy(original.meta),
            "external_id": original.external_id,
            "enabled": original.enabled,
            "expires": original.expires,
            "permissions": original.permissions,
            "roles": original.roles,
            "credits": copy.deepcopy(original.credits),
            "ratelimits": self._ratelimits(list(original.ratelimits)),
            "recoverable": original.recoverable,
            "rerolled_from": original.key_id,
        }
        key, plaintext = self._issue(api, prefix, api.default_bytes, fields)
        now = self.now_ms()
        expiration = body["expiration"]
        expires = now if expiration == 0 else _minute_ceiling(now + expiration)
        self.keys[original.key_id] = dataclasses.replace(original, expires=expires, updated_at=now)
        return {"keyId": key.key_id, "key": plaintext}

    def get_key(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """keys.getKey."""
        key = self._live_key(body["keyId"])
        who.require("read_key", key.api_id)
        decrypt = body.get("decrypt", False)
        if decrypt:
            who.require("decrypt_key", key.api_id)
            if not self.apis[key.api_id].store_encrypted_keys:
                raise ApiError(412, "err:unkey:application:precondition_failed", _NO_ENCRYPTION)
        return self.describe(key, plaintext=decrypt)

    def update_key(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """keys.updateKey: omitted members stay, values set, null clears."""
        key = self._live_key(body["keyId"])
        who.require("update_key", key.api_id)
        changes: dict[str, Any] = {"updated_at": self.now_ms()}
        renames = {"name": "name", "externalId": "external_id", "meta": "meta"}
        renames.update({"expires": "expires", "enabled": "enabled"})
        for wire, attribute in renames.items():
            if wire in body:
                changes[attribute] = body[wire]
        if "credits" in body:
            changes["credits"] = self._updated_credits(key.credits, body["credits"])
        for wire in ("roles", "permissions"):
            if wire in body:
                changes[wire] = tuple(dict.fromkeys(body[wire]))
        if "ratelimits" in body:
            changes["ratelimits"] = self._ratelimits(body["ratelimits"])
        if changes.get("external_id") is not None:
            self._identity(changes["external_id"])
        self.keys[key.key_id] = dataclasses.replace(key, **changes)
        return {}

    @staticmethod
    def _updated_credits(
        current: dict[str, Any] | None, change: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if change is None:
            return None
        credits: dict[str, Any] = copy.deepcopy(current) if current else {"remaining": None}
        if "remaining" in change:
            credits["remaining"] = change["remaining"]
        if "refill" in change:
            if change["refill"] is None:
                credits.pop("refill", None)
            else:
                credits["refill"] = dict(change["refill"])
        if credits.get("remaining") is None and "refill" not in credits:
            return None
        return credits

    def delete_key(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """keys.deleteKey: soft keeps the record; permanent also forgets the hash."""
        key = self._live_key(body["keyId"])
        who.require("delete_key", key.api_id)
        changes: dict[str, Any] = {"deleted": True, "updated_at": self.now_ms()}
        self._vault.pop(key.key_id, None)
        if body.get("permanent", False):
            self.by_hash.pop(key.hash, None)
            changes["hash"] = ""
        self.keys[key.key_id] = dataclasses.replace(key, **changes)
        return {}

    # -- verify -----------------------------------------------------------------------------

    def verify_key(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """keys.verifyKey: always a verdict, never an error for the key itself."""
        if not who.allows_somewhere("verify_key"):
            raise forbidden("api.*.verify_key")
        query = None
        if "permissions" in body:
            try:
                query = PermissionQuery(body["permissions"])
            except QuerySyntaxError as exc:
                raise ApiError(
                    400,
                    "err:user:bad_request:permissions_query_syntax_error",
                    f"Syntax error in permission query: {exc}.",
                    [
                        {
                            "location": "body.permissions",
                            "message": str(exc),
                            "fix": "Join permission names with AND or OR; balance parentheses.",
                        }
                    ],
                ) from None
        key_id = self.by_hash.get(sha256(body["key"]))
        key = self.keys.get(key_id) if key_id else None
        if key is None or key.deleted or not who.allows("verify_key", key.api_id):
            return {"valid": False, "code": "NOT_FOUND"}
        now = self.now_ms()
        code, ratelimits = self._verdict(key, body, query, now)
        key = self.keys[key.key_id]
        data: dict[str, Any] = {"valid": code == "VALID", "code": code, "keyId": key.key_id}
        optional = {
            "name": key.name,
            "meta": copy.deepcopy(key.meta),
            "expires": key.expires,
            "credits": key.credits.get("remaining") if key.credits else None,
            "identity": self._identity(key.external_id),
        }
        data.update({name: value for name, value in optional.items() if value is not None})
        data["enabled"] = key.enabled
        data["permissions"] = list(key.permissions)
        data["roles"] = list(key.roles)
        if ratelimits:
            data["ratelimits"] = ratelimits
        return data

    def _verdict(
        self, key: EmulatedKey, body: dict[str, Any], query: PermissionQuery | None, now: int
    ) -> tuple[str, list[dict[str, Any]]]:
        if not key.enabled:
            return "DISABLED", []
        if key.expires is not None and key.expires <= now:
            return "EXPIRED", []
        if query is not None and not query.matches(frozenset(key.permissions)):
            return "INSUFFICIENT_PERMISSIONS", []
        cost = body.get("credits", {}).get("cost", 1)
        remaining = key.credits.get("remaining") if key.credits else None
        if remaining is not None and remaining < cost:
            return "USAGE_EXCEEDED", []
        ratelimits, limited = self._rate_limit(key, body.get("ratelimits", []), now)
        if limited:
            return "RATE_LIMITED", ratelimits
        changes: dict[str, Any] = {"last_used_at": now}
        if remaining is not None and key.credits is not None:
            changes["credits"] = {**key.credits, "remaining": remaining - cost}
        self.keys[key.key_id] = dataclasses.replace(key, **changes)
        return "VALID", ratelimits

    def _rate_limit(
        self, key: EmulatedKey, asked: list[dict[str, Any]], now: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Fixed windows per key and limit name: the auto-applied ones and those asked for."""
        known = {limit["name"]: limit for limit in key.ratelimits}
        checks = {name: (limit, 1) for name, limit in known.items() if limit["autoApply"]}
        for index, request in enumerate(asked):
            # A limit or duration of 0 means "the key's own", as if it were not given.
            given = {f: request[f] for f in ("limit", "duration") if request.get(f)}
            limit = known.get(request["name"])
            if limit is None and len(given) < 2:
                raise ApiError(
                    400,
                    "err:unkey:application:invalid_input",
                    "A requested rate limit does not exist on this key.",
                    [{"location": "body.ratelimits", "message": "unknown rate limit name"}],
                )
            if limit is None and len(request["name"]) > 128:
                # An ad hoc limit is answered by its name, which Unkey's answers cap at 128.
                raise ApiError(
                    400,
                    "err:unkey:application:invalid_input",
                    "A rate limit name is at most 128 characters.",
                    [
                        {
                            "location": f"body.ratelimits[{index}].name",
                            "message": "must be at most 128 characters long",
                        }
                    ],
                )
            if given.get("duration", 1000) < 1000:
                # A window under a second could not be answered as Unkey documents it.
                raise ApiError(
                    400,
                    "err:unkey:application:invalid_input",
                    "A rate limit window is at least 1000 ms.",
                    [
                        {
                            "location": f"body.ratelimits[{index}].duration",
                            "message": "must be 0 (the key's own) or >= 1000",
                        }
                    ],
                )
            base = dict(limit) if limit else {"id": new_id("rl", 12), "autoApply": False}
            base.update({"name": request["name"], **given})
            checks[request["name"]] = (base, request.get("cost", 1))
        results, limited = [], False
        for name, (limit, cost) in checks.items():
            window = now // limit["duration"]
            start, used = self._windows.get((key.key_id, name), (window, 0))
            used = used if start == window else 0
            exceeded = used + cost > limit["limit"]
            if not exceeded:
                used += cost
            self._windows[(key.key_id, name)] = (window, used)
            limited = limited or exceeded
            reset = (window + 1) * limit["duration"] - now
            results.append(
                {
                    "exceeded": exceeded,
                    "id": limit["id"],
                    "name": name,
                    "limit": limit["limit"],
                    "duration": limit["duration"],
                    "reset": max(1000, min(reset, limit["duration"])),
                    "remaining": max(0, limit["limit"] - used),
                    "autoApply": limit["autoApply"],
                }
            )
        return results, limited
