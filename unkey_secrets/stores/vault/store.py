"""The HashiCorp Vault (and OpenBao) KV store, over hvac."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, TypeVar

from ..._config import load_settings, setting_given
from ..._errors import (
    ConfigurationError,
    DeletedVersionError,
    InvalidInputError,
    NotOwnedError,
    SecretNotFoundError,
    StoreConflictError,
    StoredValueError,
    StoreError,
)
from ..._models import AliasState, IssuedKey, KeyEntry, StoredKey, StoredLocation
from ..._payload import ALIAS_FORMAT, MANAGED_BY, key_fields, parse_alias_fields, parse_key_fields
from ..._redact import guarded, hold
from ..._validate import validate_key_id
from .._recent import RECENT_KEYS, Recent, RecentSet
from ..base import (
    _STAND_IN_ALIAS,
    _STAND_IN_KEY_ID,
    DEFAULT_ALIAS_TEMPLATE,
    DEFAULT_KEY_TEMPLATE,
    DEFAULT_ROTATION_TEMPLATE,
    SecretStore,
    _Unchecked,
)
from .auto_auth import AutoAuth
from .errors import (
    AGENT_REFUSAL_HINT,
    STORE,
    error_texts,
    is_cas_mismatch,
    require_hvac,
    tls_hint,
    translate,
)
from .settings import VaultSettings, check_mount, check_vault_addr

if TYPE_CHECKING:
    import hvac

    from ...rotation.record import RotationRecord

__all__ = ["VaultStore"]

_T = TypeVar("_T")
_log = logging.getLogger("unkey_secrets.stores.vault")

#: custom_metadata members we write (values are strings, as Vault requires).
_MANAGED_BY = "managed-by"
_KIND = "kind"
#: The capabilities the writes need (those policies/vault-writer.hcl grants).
_DATA_CAPS = frozenset({"create", "update"})
_METADATA_CAPS = frozenset({"read", "create", "update"})
_RECORD_CAPS = frozenset({"read", "create", "update"})


class _CasMismatch(Exception):
    """A KV v2 write lost its check-and-set: someone wrote the path meanwhile."""


class VaultStore(SecretStore):
    """Keys in a Vault KV v2 mount, one path per key_id, plus movable reader-facing aliases.

    **Ownership** lives in the path's ``custom_metadata`` (``managed-by: unkey-secrets``,
    ``kind``, ``key_id`` or ``current_key_id``, ``api_id``), which is metadata, not data: the
    writer decides everything from ``<mount>/metadata/...`` and never reads a stored key, so
    its policy needs no ``read`` on ``<mount>/data/...`` (see ``policies/vault-writer.hcl``).

    **put** is create-only and idempotent, and a new key costs two round trips: the data is
    written with ``cas=0`` (which succeeds only if the path holds no version), then the metadata
    is marked ours and records the version written (``version``). Once ``cas=0`` succeeded the
    path is ours: nothing else was there. A put that finds the path taken (``cas=0`` refused)
    falls back to the careful path: read the metadata, and decide from it. Repeating a key_id
    whose version the metadata vouches for is a no-op (``created=False``); a path another tool
    wrote (no marker) raises :class:`~unkey_secrets.NotOwnedError`; a path we marked whose
    current version we do not vouch for (a write into our path, or a marked path without data)
    is written with ``cas=<current version>``. Metadata updates send only ``custom_metadata``
    (an operator's members kept, as the data write's answer or the metadata read shows them),
    so an operator's ``max_versions`` and ``delete_version_after`` survive; hvac's
    ``update_metadata`` and ``patch`` are never used (the first resets
    ``delete_version_after``, the second reads the plaintext back).

    **Recognising our own landed write.** If the marking is lost (a crash, or the answer to the
    data write never came back), the path holds version 1 without our marker, exactly as if
    another tool had written it: metadata alone cannot tell the two apart, and the writer may
    not read the data. So the store object remembers the paths whose ``cas=0`` write it sent
    and has not yet marked (the most recent 1,024: what a store object remembers per key is
    bounded, :data:`~unkey_secrets.stores._recent.RECENT_KEYS`); a later put of the same key_id
    *through the same store object* (the flows' retry, which comes soon after) that finds such
    a path unmarked, at version 1, alive, with no other members in its metadata, takes it as
    its own landed write and only marks it: no second version, no second copy of the
    plaintext in the path's history. Anything else unmarked is not ours (a fresh store object,
    in a new process, or one that forgot the path, refuses it with
    :class:`~unkey_secrets.NotOwnedError` rather than guess). A path whose metadata already
    existed, marked by another tool, when our ``cas=0`` landed (the answer shows its
    ``custom_metadata``) is not marked ours either.

    **set_current** checks (in the key's metadata) that :meth:`put` finished storing the key,
    then writes the alias (``{format, key_id, api_id, path}``, no plaintext) with
    ``cas`` set to the version it saw, so two concurrent movers cannot both win: the loser gets
    :class:`~unkey_secrets.StoreConflictError`. The alias metadata records which key_id and
    which data version it describes (``current_key_id``, ``version``); it is trusted for the
    no-op check only while that version is still the current one, and readable.
    :meth:`prepare_move` makes the metadata part of a move (the alias read again at the
    expected version, then its metadata naming the next version's holder) while the key is
    being stored, so the move itself then writes only the data. A move whose ``cas`` fails puts
    the metadata back only if its own claim is still the last one written there.

    **A deleted alias version.** ``bao kv delete``, ``bao kv destroy`` or
    ``delete_version_after`` (on the path or the mount) may delete an alias's current version;
    its metadata still names the key. :meth:`alias_state` answers from it, so a rotation or a
    replace proceeds and its move (``cas`` = that version, which Vault allows over a deleted
    one) stores a readable version; :meth:`get_current` raises
    :class:`~unkey_secrets.DeletedVersionError` naming the version and the command that fixes
    it, and serves nothing. ``delete_version_after`` at work is logged as a warning once per
    store object, noticed on the metadata reads and write answers the flows make anyway (the
    preflight's mount answer does not carry it); :meth:`mount_delete_version_after` and
    :meth:`alias_retention` read it on demand (``doctor``).

    A marked path whose first data version was written before any metadata and whose metadata
    never vouched for a version is not treated as ours: that is how a foreign write racing a
    marking (on the careful path) is caught.

    **KV v1** (``kv_version=1``) is supported for reading only. KV v1 has no check-and-set and
    no metadata, so create-only writes, ownership without reading the data, and safe alias moves
    are all impossible there; :meth:`put` and :meth:`set_current` raise
    :class:`~unkey_secrets.ConfigurationError` before any I/O. :meth:`get` and
    :meth:`get_current` read values in the same JSON shape.

    **check_writable** is a live preflight, run once per store object (and per set of paths):
    ``sys/internal/ui/mounts/<mount>`` says the mount is KV v2 (a KV v1 mount is refused by
    name), ``sys/capabilities-self`` that the token may write the key, alias and rotation-record
    paths. Both are granted by ``policies/vault-writer.hcl``. A bad token, an unreachable
    Vault, a missing mount or missing capabilities raise
    :class:`~unkey_secrets.ConfigurationError` before the flows call Unkey.

    ``preflight=False`` skips the live part (a token that may not read
    ``sys/capabilities-self``, or a caller that checked already).

    ``max_connections`` sizes the HTTP connection pool (requests keeps 10 per host by default):
    set it to the number of threads sharing the store.

    **Transport.** A ``client`` passed in is held to the same policy as one built from settings
    (:mod:`unkey_secrets.transport`), before any request: its URL must be https, or plain http
    to a loopback host (:class:`~unkey_secrets.ConfigurationError` otherwise); it never follows
    a redirect (``allow_redirects`` is turned off, and a 3xx answer fails the request); and the
    policy's adapter replaces the adapters of its session, so each request ends within the
    client's timeout (seconds, the whole answer included, however slowly it comes), an answer
    is at most :data:`~unkey_secrets.transport.DEFAULT_MAX_ANSWER_BYTES` once decompressed, and
    plain http never goes through a proxy. A request that breaks the deadline or the budget has
    lost its answer: it raises :class:`~unkey_secrets.StoreUnavailableError`, as a dropped
    connection does.

    Errors: 401/403 become :class:`~unkey_secrets.StoreAccessError`, 5xx, 429 and connection
    failures :class:`~unkey_secrets.StoreUnavailableError`, a 404
    :class:`~unkey_secrets.SecretNotFoundError`; no error quotes Vault's answer or our request.
    """

    name: ClassVar[str] = "vault"

    @guarded
    def __init__(
        self,
        client: hvac.Client | None = None,
        *,
        mount: str = "secret",
        kv_version: int = 2,
        key_template: str = DEFAULT_KEY_TEMPLATE,
        alias_template: str = DEFAULT_ALIAS_TEMPLATE,
        rotation_template: str = DEFAULT_ROTATION_TEMPLATE,
        settings: VaultSettings | None = None,
        max_connections: int | None = None,
        preflight: bool = True,
    ) -> None:
        require_hvac()
        if settings is not None:
            given = (mount, kv_version, key_template, alias_template, rotation_template)
            defaults = ("secret", 2, DEFAULT_KEY_TEMPLATE, DEFAULT_ALIAS_TEMPLATE)
            if given != (*defaults, DEFAULT_ROTATION_TEMPLATE):
                raise ConfigurationError(
                    "pass either settings or mount/kv_version/templates to VaultStore, not both"
                )
            mount, kv_version = settings.mount, settings.kv_version
            key_template, alias_template = settings.key_template, settings.alias_template
            rotation_template = settings.rotation_template
            max_connections = max_connections or settings.max_connections
        super().__init__(
            key_template=key_template,
            alias_template=alias_template,
            rotation_template=rotation_template,
        )
        # What this object remembers is bounded (the most recent RECENT_KEYS entries of each
        # kind): a forgotten entry costs a round trip, or a path refused rather than taken
        # as ours, never a wrong answer.
        # Key paths this object stored, with the alias recorded with each: an alias may move
        # to them without asking Vault again.
        self._stored: Recent[str, str | None] = Recent(RECENT_KEYS)
        # Paths whose cas=0 write this object sent for a key_id and has not marked yet: a
        # later put of that key_id finding them unmarked at version 1 found its own write.
        self._unmarked: Recent[str, str] = Recent(RECENT_KEYS)
        # What check_writable verified already: the mount's KV version, and sets of paths.
        self._checked: RecentSet[tuple[str, ...]] = RecentSet(RECENT_KEYS)
        # The retention warnings logged already (each once per store object).
        self._warned: set[str] = set()
        # The alias moves prepare_move prepared (path -> key_id, version moved from, the
        # metadata it read): the move itself then writes only the data. Taken by that move.
        self._prepared: Recent[str, tuple[str, int, dict[str, Any]]] = Recent(RECENT_KEYS)
        #: Whether check_writable asks Vault (once per set of paths); False skips the calls.
        self.preflight = preflight
        try:
            self.mount = check_mount(mount)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if kv_version not in (1, 2):
            raise ConfigurationError("kv_version must be 1 or 2")
        self.kv_version = kv_version
        if max_connections is not None and (
            not isinstance(max_connections, int) or max_connections < 1
        ):
            raise ConfigurationError("max_connections must be a positive number")
        #: The token lifecycle of a client built here (None for a client passed in, whose
        #: token is the caller's to keep valid).
        self.auto_auth: AutoAuth | None = None
        if client is None:
            from .auth import build_client

            settings = settings if settings is not None else load_settings(VaultSettings)
            client = build_client(settings)
            _hold_to_policy(client, max_connections)
            self.auto_auth = AutoAuth(client, settings)
            self.auto_auth.start()
        else:
            _hold_to_policy(client, max_connections)
        self.client = client
        # A client the caller built carries a token we have not seen yet: mask it everywhere.
        hold(getattr(client, "token", None))

    @classmethod
    @guarded
    def from_settings(cls, settings: VaultSettings | None = None, **overrides: Any) -> VaultStore:
        """Build a store from ``settings``, or load them with ``overrides``, and log in.

        Without ``settings``, they are loaded by :func:`~unkey_secrets.settings.load_settings`:
        each override (a :class:`VaultSettings` field: ``addr``, ``namespace``, ``mount``...)
        wins over its environment variable, which wins over the default. ``overrides`` with
        ``settings``, or a bad setting, raise :class:`~unkey_secrets.ConfigurationError`
        (naming the setting, never its value). Logging in talks to Vault for every method but
        ``token``. An ``addr`` override while ``VAULT_AGENT_ADDR`` is set is not where requests
        go: a warning names the agent's address, which is.
        """
        if settings is None:
            settings = load_settings(VaultSettings, **overrides)
            if overrides.get("addr") and settings.agent_addr:
                # VAULT_AGENT_ADDR wins over the address given: say so, and where requests go.
                _log.warning(
                    "%s is not used: VAULT_AGENT_ADDR is set and wins over it, so requests go "
                    "to the Vault Agent or Proxy at %s (unset VAULT_AGENT_ADDR to reach %s)",
                    setting_given("addr"),
                    _shown_address(settings.agent_addr),
                    _shown_address(settings.addr),
                )
        elif overrides:
            raise ConfigurationError("pass settings or overrides, not both")
        return cls(settings=settings)

    def __repr__(self) -> str:
        # Safe on a half-built object (a constructor's error rendered with its frame locals).
        client = getattr(self, "client", None)
        template = getattr(getattr(self, "key_template", None), "template", None)
        return (
            f"{type(self).__name__}(url={getattr(client, 'url', None)!r}, "
            f"mount={getattr(self, 'mount', None)!r}, "
            f"kv_version={getattr(self, 'kv_version', None)!r}, key_template={template!r})"
        )

    # -- hooks -----------------------------------------------------------------------------

    def _check_writable(self) -> None:
        self._require_v2("writing")

    @guarded
    def check_writable(self, *, api_id: str, alias: str | None = None) -> None:
        """Raise before Unkey is called if this store could not write a key of ``api_id``.

        Besides the checks without I/O, a live preflight, once per store object and set of
        paths: the mount is KV v2, and the token may write the key's, the alias's and the
        rotation record's paths (``sys/capabilities-self``). Failures raise
        :class:`~unkey_secrets.ConfigurationError` saying what to fix.
        """
        super().check_writable(api_id=api_id, alias=alias)
        if not self.preflight:
            return
        key = self.key_location(api_id=api_id, key_id=_STAND_IN_KEY_ID)
        paths = {
            f"{self.mount}/data/{key}": _DATA_CAPS,
            f"{self.mount}/metadata/{key}": _METADATA_CAPS,
            f"{self.mount}/data/"
            + self.rotation_location(api_id=api_id, key_id=_STAND_IN_KEY_ID): _RECORD_CAPS,
        }
        if alias is not None:
            # Once per API, not per alias: a stand-in alias, as a stand-in key_id for keys, so
            # many aliases (a bulk run) pay the check once and the cache stays small.
            where = self.alias_location(api_id=api_id, alias=_STAND_IN_ALIAS)
            paths[f"{self.mount}/data/{where}"] = _DATA_CAPS
            paths[f"{self.mount}/metadata/{where}"] = _METADATA_CAPS
        if ("mount",) not in self._checked:
            self._check_mount()
            self._checked.add(("mount",))
        checked = tuple(sorted(paths))
        if checked not in self._checked:
            self._check_capabilities(paths)
            self._checked.add(checked)

    def _preflight_call(
        self, what: str, call: Callable[[], _T], *, forbidden: str | None = None
    ) -> _T:
        """``call()``; a failure becomes a ConfigurationError saying what to fix.

        ``forbidden`` is the message for a 403 (the token is known to be valid).
        """
        import requests
        from hvac import exceptions as hve

        failure: ConfigurationError
        try:
            return self._send(call)
        except hve.Forbidden as exc:
            if forbidden is not None and self._through_agent:
                failure = ConfigurationError(
                    f"{forbidden} (through VAULT_AGENT_ADDR, the token is the Vault Agent's or "
                    "Proxy's auto-auth token)"
                )
            elif forbidden is not None:
                failure = ConfigurationError(forbidden)
            elif any("preflight capability check" in e for e in error_texts(exc)):
                failure = ConfigurationError(
                    f"Vault: the token has no access under the mount {self.mount!r}, or there is "
                    "no such mount: check UNKEY_SECRETS_VAULT_MOUNT (mount=...) and that the "
                    "token carries the writer policy (policies/vault-writer.hcl)"
                )
            elif self._through_agent:
                failure = ConfigurationError(
                    f"Vault refused the request ({what}: 403): {AGENT_REFUSAL_HINT}, with the "
                    "writer policy (policies/vault-writer.hcl)"
                )
            else:
                failure = ConfigurationError(
                    f"Vault refused the token ({what}: 403): check VAULT_TOKEN (or the auth "
                    "method's settings) and that the token carries the writer policy "
                    "(policies/vault-writer.hcl)"
                )
        except (hve.Unauthorized, hve.InvalidRequest) as exc:
            check = (
                AGENT_REFUSAL_HINT
                if self._through_agent
                else "check VAULT_TOKEN (or the auth method's settings)"
            )
            failure = ConfigurationError(
                f"Vault refused the token ({what}: {type(exc).__name__}): {check}"
            )
        except requests.exceptions.SSLError as exc:
            failure = ConfigurationError(
                f"TLS failure reaching Vault ({what}): check VAULT_ADDR; {tls_hint(exc)}"
            )
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            failure = ConfigurationError(
                f"could not reach Vault ({what}: {type(exc).__name__}): check VAULT_ADDR and "
                "that Vault is up"
            )
        except (hve.VaultError, requests.exceptions.RequestException) as exc:
            failure = ConfigurationError(
                f"Vault could not answer the preflight ({what}: {type(exc).__name__})"
            )
        # Raised outside the except block: nothing is chained.
        raise failure

    def _check_mount(self) -> None:
        """Refuse a mount that is not KV v2 (read under the writer policy)."""
        from hvac import exceptions as hve

        def read() -> Any:
            try:
                return self.client.adapter.get(f"/v1/sys/internal/ui/mounts/{self.mount}")
            except hve.InvalidPath:  # pragma: no cover - a Vault without the endpoint
                return None

        answer = self._preflight_call("read the mount", read)
        data = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(data, Mapping):
            return
        kind = data.get("type")
        options = data.get("options")
        version = options.get("version") if isinstance(options, Mapping) else None
        if kind not in ("kv", "generic"):
            raise ConfigurationError(
                f"Vault mount {self.mount!r} is a {kind} engine, not KV: check "
                "UNKEY_SECRETS_VAULT_MOUNT (mount=...)"
            )
        if str(version or "1") != "2":
            raise ConfigurationError(
                f"Vault mount {self.mount!r} is KV v1: writes need a KV v2 mount (KV v1 has no "
                "check-and-set or metadata; a KV v2 client would write literal .../data/... "
                "paths there). Point UNKEY_SECRETS_VAULT_MOUNT at a KV v2 mount, or set "
                "UNKEY_SECRETS_VAULT_KV_VERSION=1 to read only"
            )

    def _check_capabilities(self, paths: Mapping[str, frozenset[str]]) -> None:
        """Refuse a token lacking a capability the writes need on one of ``paths``."""
        answer = self._preflight_call(
            "sys/capabilities-self",
            lambda: self.client.adapter.post(
                "/v1/sys/capabilities-self", json={"paths": sorted(paths)}
            ),
            forbidden=(
                "the Vault token may not check its own capabilities (update on "
                "sys/capabilities-self), so the store cannot tell whether it may write: use the "
                "writer policy policies/vault-writer.hcl (it grants that path) or keep Vault's "
                "default policy on the token"
            ),
        )
        data = answer.get("data") if isinstance(answer, Mapping) else None
        found = data if isinstance(data, Mapping) else answer
        missing: list[str] = []
        for path, needed in paths.items():
            granted = found.get(path) if isinstance(found, Mapping) else None
            have = set(granted) if isinstance(granted, list) else set()
            if "root" in have:
                continue
            lacking = sorted(needed - have)
            if lacking:
                missing.append(f"{'/'.join(lacking)} on {path}")
        if missing:
            raise ConfigurationError(
                "the Vault token may not write here: it lacks "
                + "; ".join(missing)
                + " (the writer policy policies/vault-writer.hcl grants them; a reader token "
                "cannot write)"
            )

    def _key_entry(self, path: str, api_id: str, key_id: str) -> KeyEntry | None:
        meta = self._read_metadata(path) if self.kv_version == 2 else None
        if meta is None:
            return None
        custom = _custom(meta)
        current = _current_version(meta)
        if not (
            custom.get(_MANAGED_BY) == MANAGED_BY
            and custom.get(_KIND) == "key"
            and custom.get("key_id") == key_id
            and current > 0
            and custom.get("version") == str(current)
            and _version_state(meta, current) is None
        ):
            return None
        return KeyEntry(
            api_id=api_id,
            key_id=key_id,
            alias=custom.get("alias") or None,
            rerolled_from=custom.get("rerolled_from") or None,
        )

    def _put(self, key: IssuedKey, path: str) -> StoredLocation:
        self._require_v2("put")
        mine = self._unmarked.get(path) == key.key_id
        meta: dict[str, Any] | None = None
        if mine or path in self._stored:
            # This object wrote the path before: its metadata says whether that write landed.
            meta = self._read_metadata(path)
            if meta is not None and mine and _own_landed_write(meta, key):
                return self._confirm(key, path, _custom(meta), 1)
        if meta is None:
            created = self._create(key, path)
            if created is not None:
                return created
            # The path holds a version: decide from its metadata.
            meta = self._read_metadata(path)
        return self._put_carefully(key, path, meta)

    def _create(self, key: IssuedKey, path: str) -> StoredLocation | None:
        """The floor: ``cas=0`` data, then the marker; None if the path holds a version."""
        location = self._location(path)
        self._unmarked.set(path, key.key_id)
        try:
            answer = self._write_data_answer(path, key_fields(key), cas=0)
        except _CasMismatch:
            self._unmarked.pop(path, None)
            return None
        version = _answer_version(answer, location)
        # The write's answer shows the metadata the path already had (none, for a new path).
        custom = _custom(answer)
        if custom and custom.get(_MANAGED_BY) != MANAGED_BY:
            # Metadata without data, prepared by another tool: our version landed there (no
            # secret was overwritten), but the path is not ours to mark.
            self._unmarked.pop(path, None)
            raise NotOwnedError(
                f"{location} had metadata not created by unkey-secrets; the key was written "
                f"at version {version} but not marked ours",
                store=STORE,
                location=location,
            )
        return self._confirm(key, path, custom, version)

    def _confirm(
        self, key: IssuedKey, path: str, custom: Mapping[str, str], version: int
    ) -> StoredLocation:
        """Mark ``path`` ours: from now on its metadata vouches for ``version`` holding ``key``."""
        self._write_metadata(path, {**_key_marker(key, custom), "version": str(version)})
        self._unmarked.pop(path, None)
        self._stored.set(path, key.alias)
        return StoredLocation(
            store=STORE, location=self._location(path), key_id=key.key_id, version=str(version)
        )

    def _put_carefully(
        self, key: IssuedKey, path: str, meta: dict[str, Any] | None
    ) -> StoredLocation:
        """The path exists: a no-op, a refusal, or a write over what we marked ours."""
        location = self._location(path)
        for _ in range(2):
            if meta is None:
                marker = _key_marker(key, {})
                self._write_metadata(path, marker)
                cas = 0
            else:
                self._check_owned(meta, path, kind="key")
                done = self._existing_key(meta, key, path)
                if done is not None:
                    return done
                marker = _key_marker(key, _custom(meta))
                if _custom(meta) != marker:
                    self._write_metadata(path, marker)
                cas = _current_version(meta)
            try:
                version = self._write_data(path, key_fields(key), cas=cas)
            except _CasMismatch:
                # Someone wrote meanwhile: decide again from what the metadata says now.
                meta = self._read_metadata(path)
                continue
            # Confirm: from now on the metadata vouches for this version holding this key.
            self._write_metadata(path, {**marker, "version": str(version)})
            self._stored.set(path, key.alias)
            return StoredLocation(
                store=STORE, location=location, key_id=key.key_id, version=str(version)
            )
        raise StoreConflictError(
            f"{location} kept changing while {key.key_id} was being stored",
            store=STORE,
            location=location,
        )

    def _set_current(
        self, key: IssuedKey, path: str, alias: str, expected: AliasState | _Unchecked | None
    ) -> StoredLocation:
        self._require_v2("set_current")
        location = self._location(path)
        meta: dict[str, Any] | None
        now: tuple[str, str | None] | None
        prepared: dict[str, Any] | None = None
        if isinstance(expected, AliasState):
            cas = int(expected.revision)
            prepared = self._take_prepared(path, key.key_id, cas)
        if prepared is not None:
            # prepare_move checked the alias (read again at that version) and wrote the
            # metadata naming our key for the next version: only the data is left.
            meta, now = prepared, _alias_key(prepared)
        elif isinstance(expected, AliasState):
            # Check the alias is still at that version before the metadata is touched: the
            # metadata is written before the data, and a stale move would otherwise leave it
            # naming our key as the holder of the version someone else wrote.
            meta, now = self._alias_meta_now(path)
            if meta is not None and now is not None and now[0] == key.key_id and _alive(meta):
                # Our own earlier write (its answer was lost): the move is done. (A deleted
                # version naming our key is written again: readers cannot read it.)
                self._check_owned(meta, path, kind="alias")
                return StoredLocation(
                    store=STORE,
                    location=location,
                    key_id=key.key_id,
                    version=str(_current_version(meta)),
                    created=False,
                    alias=alias,
                )
            if meta is None or _current_version(meta) != cas:
                raise StoreConflictError(
                    f"alias {location} was moved by someone else meanwhile; read it and retry",
                    store=STORE,
                    location=location,
                )
            self._check_owned(meta, path, kind="alias")
            self._notice_alias(meta, path)
        else:
            meta = self._read_metadata(path)
            now, cas = None, 0
            if meta is not None:
                self._check_owned(meta, path, kind="alias")
                self._notice_alias(meta, path)
                now = _alias_key(meta)
                cas = _current_version(meta)
                if now is not None and now[0] == key.key_id and _alive(meta):
                    return StoredLocation(
                        store=STORE,
                        location=location,
                        key_id=key.key_id,
                        version=str(cas),
                        created=False,
                        alias=alias,
                    )
                if expected is None:
                    named = f"names key {now[0]}" if now else "exists"
                    gone = _version_gone(meta, cas)
                    if gone is not None:
                        named += f" (its current version {cas} was {_gone_word(gone)})"
                    raise StoreConflictError(
                        f"alias {location} {named} already", store=STORE, location=location
                    )
        key_path = self.key_location(api_id=key.api_id, key_id=key.key_id)
        if self._stored.get(key_path) is None:
            # Not stored by this object, or stored without an alias: check, and record it.
            self._require_stored(dataclasses.replace(key, alias=alias), key_path)
        # Say first which key the next version will hold, keeping what the current one holds:
        # a crash between the two writes leaves the metadata telling both apart.
        # An operator's own members (an owner, a team) are kept, as on a key's path.
        custom = _alias_claim(meta, now, cas, key)
        if prepared is None:
            self._write_metadata(path, custom)
        value = key_fields(dataclasses.replace(key, alias=alias))
        try:
            version = self._write_data(path, value, cas=cas)
        except _CasMismatch:
            # Someone else wrote the next version: put back the metadata as it was before our
            # claim, so it never names our key for their version (if their own claim was
            # overwritten meanwhile, the alias reads as unconfirmed, never as the wrong key).
            # If their claim was written after ours, it is theirs to keep: nothing is put back.
            latest = self._read_metadata(path)
            if latest is None or _custom(latest) == custom:
                before = _custom(meta or {})
                self._write_metadata(
                    path, before or {k: v for k, v in custom.items() if k[:5] != "next_"}
                )
            raise StoreConflictError(
                f"alias {location} was moved by someone else meanwhile; read it and retry",
                store=STORE,
                location=location,
            ) from None
        return StoredLocation(
            store=STORE, location=location, key_id=key.key_id, version=str(version), alias=alias
        )

    def _prepare_move(self, key: IssuedKey, path: str, alias: str, expected: AliasState) -> None:
        """Check the alias and write its metadata naming ``key`` as its next version's holder.

        What :meth:`_set_current` does before the data write, done while the key is being
        stored: the alias's metadata read again (still at ``expected``'s version, ours, not
        naming this key already), then the metadata saying which key the next version
        (``cas + 1``) will hold. No version that exists is vouched for differently, so nothing
        a reader or a writer trusts changes. The move of the same key from the same state then
        writes only the data. Anything else (the alias moved, not ours) is left to that move.
        """
        self._require_v2("set_current")
        cas = int(expected.revision)
        meta, now = self._alias_meta_now(path)
        if (
            meta is None
            or _current_version(meta) != cas
            or (now is not None and now[0] == key.key_id)
        ):
            return
        self._check_owned(meta, path, kind="alias")
        self._notice_alias(meta, path)
        self._write_metadata(path, _alias_claim(meta, now, cas, key))
        self._prepared.set(path, (key.key_id, cas, meta))

    def _take_prepared(self, path: str, key_id: str, cas: int) -> dict[str, Any] | None:
        """The metadata :meth:`_prepare_move` read for this very move, if it prepared it (once)."""
        prepared = self._prepared.pop(path)
        if prepared is None or prepared[:2] != (key_id, cas):
            return None
        return prepared[2]

    def _alias_meta_now(
        self, path: str
    ) -> tuple[dict[str, Any] | None, tuple[str, str | None] | None]:
        """The alias's metadata read now, and the key its current version holds per it."""
        meta = self._read_metadata(path)
        return meta, (_alias_key(meta) if meta is not None else None)

    def _alias_state(self, path: str, api_id: str, alias: str) -> AliasState | None:
        meta = self._read_metadata(path) if self.kv_version == 2 else None
        if meta is None:
            return None
        self._check_owned(meta, path, kind="alias")
        self._notice_alias(meta, path)
        # A deleted or destroyed current version still names its key here: a rotation or a
        # replace proceeds from it, and its move (cas = that version) stores a readable one.
        now = _alias_key(meta)
        if now is None:
            location = self._location(path)
            raise StoreConflictError(
                f"alias {location} holds a version its metadata does not vouch for (written by "
                "another tool, or a move that died half-way); point it at a stored key again: "
                f"{self._command('capture', api_id, alias, '--key-id KEY_ID')} with that key "
                "on stdin",
                store=STORE,
                location=location,
            )
        return AliasState(
            alias=alias,
            api_id=api_id,
            key_id=now[0],
            rerolled_from=now[1],
            revision=str(_current_version(meta)),
        )

    def _read_rotation(self, path: str) -> RotationRecord | None:
        from ...rotation.record import parse_rotation_fields

        try:
            data, version = self._read_data(path)
        except SecretNotFoundError:
            return None
        record = parse_rotation_fields(data, store=STORE, location=self._location(path))
        # The KV version is the revision a conditional write names.
        return dataclasses.replace(record, revision=int(version or record.revision))

    def _write_rotation(self, record: RotationRecord, path: str) -> None:
        self._require_v2("rotation records")
        try:
            self._write_data(path, record.fields(), cas=record.revision - 1)
        except _CasMismatch:
            location = self._location(path)
            raise StoreConflictError(
                f"rotation record {location} was written by another run meanwhile",
                store=STORE,
                location=location,
            ) from None

    def _get(self, path: str) -> StoredKey:
        data, version = self._read_data(path)
        return parse_key_fields(data, store=STORE, location=self._location(path), version=version)

    def _max_parallel_reads(self) -> int | None:
        """The connections the client's session keeps to Vault (``max_connections``, else 10).

        KV v2 has no batch read: :meth:`get_many` reads each ref on a worker thread, never more
        at once than the pool holds, so no connection is opened only to be discarded (urllib3's
        "Connection pool is full" warning).
        """
        from requests.exceptions import InvalidSchema

        from ...transport.requests import PolicyAdapter

        url = getattr(self.client, "url", None)
        session = getattr(getattr(self.client, "adapter", None), "session", None)
        if not isinstance(url, str) or session is None:
            return None
        try:
            adapter = session.get_adapter(url)
        except InvalidSchema:  # no adapter for the URL: nothing to size by
            return None
        return adapter.pool_maxsize if isinstance(adapter, PolicyAdapter) else None

    @guarded
    def get_current(self, *, api_id: str, alias: str) -> StoredKey:
        """Read the key behind ``alias`` (one read of the alias).

        The value must be a key of ``api_id`` stored for this alias; otherwise
        :class:`~unkey_secrets.StoredValueError`. Nothing stored there:
        :class:`~unkey_secrets.SecretNotFoundError`. A current version that was deleted
        (``bao kv delete``, ``delete_version_after``) or destroyed raises
        :class:`~unkey_secrets.DeletedVersionError`, naming the version, when it was deleted,
        the key its metadata still names and the command that stores a new version; no key
        is guessed from the metadata.
        """
        try:
            return super().get_current(api_id=api_id, alias=alias)
        except DeletedVersionError as exc:
            error = self._deleted_alias(exc, api_id=api_id, alias=alias)
        # Raised outside the except block: nothing is chained.
        raise error

    def _get_current(self, path: str) -> StoredKey:
        location = self._location(path)
        data, version = self._read_alias_data(path)
        if not (isinstance(data, Mapping) and data.get("format") == ALIAS_FORMAT):
            return parse_key_fields(data, store=STORE, location=location, version=version)
        # An alias written by an earlier release points at the key's own location.
        key_id, api_id, key_path = parse_alias_fields(data, store=STORE, location=location)
        if key_path != self.key_location(api_id=api_id, key_id=key_id):
            raise StoredValueError(
                f"alias at {location} points outside the key template",
                store=STORE,
                location=location,
            )
        stored = self._get(key_path)
        if stored.key_id != key_id or stored.api_id != api_id:
            raise StoredValueError(
                f"alias at {location} names {key_id} but {self._location(key_path)} "
                f"holds {stored.key_id}",
                store=STORE,
                location=location,
            )
        return stored

    def _read_alias_data(self, path: str) -> tuple[object, str | None]:
        """:meth:`_read_data` of an alias; a deleted or destroyed version raises.

        :class:`DeletedVersionError` is built from the read's own answer: Vault sends the
        version's metadata with its 404, so a reader's policy needs nothing more.
        """
        if self.kv_version == 1:
            return self._read_data(path)
        from hvac import exceptions as hve

        def read() -> Any:
            try:
                return self.client.secrets.kv.v2.read_secret_version(
                    path=path, mount_point=self.mount, raise_on_deleted_version=True
                )
            except hve.InvalidPath as exc:
                answer = exc.json if isinstance(exc.json, Mapping) else None
                if _gone_answer(answer) is None:
                    raise
                # The answer of a deleted version holds its metadata only, never data.
                return answer

        answer = self._call("read", path, read)
        body = answer.get("data") if isinstance(answer, Mapping) else None
        gone = _gone_answer(answer)
        if gone is not None:
            shaped, lost = gone
            location = self._location(path)
            key_id, named = _gone_key(shaped)
            raise DeletedVersionError(
                _gone_sentence(location, lost, key_id, named=named),
                store=STORE,
                location=location,
                version=lost.version,
                deleted_at=lost.deleted_at,
                destroyed=lost.destroyed,
                key_id=key_id,
            )
        if not isinstance(body, Mapping):
            return None, None
        meta = body.get("metadata")
        version = meta.get("version") if isinstance(meta, Mapping) else None
        return body.get("data"), (str(version) if isinstance(version, int) else None)

    def _deleted_alias(
        self, exc: DeletedVersionError, *, api_id: str, alias: str
    ) -> DeletedVersionError:
        """``exc`` with the fix: the rotation that stores a new version (or the undelete)."""
        location = exc.location or self._location(self.alias_location(api_id=api_id, alias=alias))
        if exc.key_id is not None:
            fix = f"run {self._command('rotate', api_id, alias)} to store a new key there"
        else:
            fix = (
                "point it at a stored key: "
                f"{self._command('capture', api_id, alias, '--key-id KEY_ID')} with that key on "
                "stdin"
            )
        if not exc.destroyed:
            fix += (
                f" (or bring this one back: bao kv undelete -versions={exc.version} {location}"
                "; under delete_version_after Vault deletes it again)"
            )
        return DeletedVersionError(
            f"{exc}: {fix}",
            store=STORE,
            location=location,
            version=exc.version,
            deleted_at=exc.deleted_at,
            destroyed=exc.destroyed,
            key_id=exc.key_id,
        )

    def _command(self, command: str, api_id: str, alias: str, extra: str = "") -> str:
        """The ``unkey-secrets`` command line that acts on ``alias`` of this store."""
        mount = f" --mount {self.mount}" if self.mount != "secret" else ""
        more = f" {extra}" if extra else ""
        return (
            f"`unkey-secrets --store vault{mount} {command} --api-id {api_id} --alias {alias}"
            f"{more}`"
        )

    # -- delete_version_after --------------------------------------------------------------

    @guarded
    def mount_delete_version_after(self) -> float:
        """The mount's ``delete_version_after``, in seconds (0.0: not set), from ``<mount>/config``.

        When set, Vault deletes every version written under the mount that long after it was
        written (a path's own, shorter setting wins): an alias whose current version is
        deleted cannot be read until it is rotated. Needs ``read`` on ``<mount>/config``, which
        the shipped writer and reader policies do not grant:
        :class:`~unkey_secrets.StoreAccessError` then. A missing mount raises
        :class:`~unkey_secrets.StoreError`.
        """
        self._require_v2("reading the mount's config")
        answer = self._call(
            "read config", "config", lambda: self.client.adapter.get(f"/v1/{self.mount}/config")
        )
        data = answer.get("data") if isinstance(answer, Mapping) else None
        after = data.get("delete_version_after") if isinstance(data, Mapping) else None
        return _seconds(after)

    @guarded
    def alias_retention(self, *, api_id: str, alias: str) -> list[str]:
        """What would make, or made, Vault delete ``alias``'s current version by itself.

        One sentence per finding, read from the alias path's metadata (which the writer
        policy grants): the path's own ``delete_version_after``; a current version due to be
        deleted (``delete_version_after`` of the path or the mount at work); a current version
        deleted or destroyed already, with the command that stores a new one. An empty list:
        none of these (or no such alias).
        """
        path = self.alias_location(api_id=api_id, alias=alias)
        self._require_v2("reading alias metadata")
        meta = self._read_metadata(path)
        if meta is None:
            return []
        return [sentence for _, sentence in self._alias_findings(meta, path, api_id, alias)]

    def _alias_findings(
        self, meta: Mapping[str, Any], path: str, api_id: str | None, alias: str | None
    ) -> list[tuple[str, str]]:
        """(kind, sentence) per finding; kind says what a warning is logged once for."""
        location = self._location(path)
        found: list[tuple[str, str]] = []
        after = _seconds(meta.get("delete_version_after"))
        if after > 0:
            found.append(
                (
                    "path",
                    f"alias {location} sets delete_version_after ({_duration(after)}): Vault "
                    "deletes each version that long after it is written, and the alias cannot "
                    "be read once its current version is deleted; remove it: bao kv metadata "
                    f"put -delete-version-after=0s {location}",
                )
            )
        current = _current_version(meta)
        entry = _version_entry(meta, current)
        gone = _gone(entry, current) if entry is not None else None
        if gone is not None:
            key_id, named = _gone_key(meta)
            sentence = _gone_sentence(location, gone, key_id, named=named)
            if api_id is not None and alias is not None and key_id is not None:
                sentence += f": run {self._command('rotate', api_id, alias)}"
            elif api_id is not None and alias is not None and named:
                # A rotation refuses what is not a key_id: name the key to hold instead.
                capture = self._command("capture", api_id, alias, "--key-id KEY_ID")
                sentence += f": point it at a stored key: {capture} with that key on stdin"
            else:
                sentence += "; readers fail until a rotation of the alias stores a new version"
            found.append((f"gone {location} {current}", sentence))
        elif entry is not None and after == 0:
            due = _due(entry)
            if due is not None:
                found.append(
                    (
                        "mount",
                        f"Vault will delete version {current} of alias {location} at {due}: "
                        f"delete_version_after is set on the mount ({self.mount}/config), and "
                        "the alias cannot be read once its current version is deleted; set it "
                        f"to 0s: bao write {self.mount}/config delete_version_after=0s",
                    )
                )
        return found

    def _notice_alias(self, meta: Mapping[str, Any], path: str) -> None:
        """Log each finding of :meth:`_alias_findings` once per store object.

        Noticed on the metadata read the flows make anyway (no round trip of its own): the
        preflight's mount answer does not carry ``delete_version_after``.
        """
        for kind, finding in self._alias_findings(meta, path, None, None):
            # A write's answer may have told of the mount's setting already.
            said = {kind, "written"} if kind == "mount" else {kind}
            if not said & self._warned:
                self._warned.add(kind)
                _log.warning("%s", finding)

    def _notice_written(self, answer: Mapping[str, Any], path: str) -> None:
        """Log once per store object that Vault will delete a version we just wrote."""
        due = _due(answer)
        if due is None or self._warned & {"written", "path", "mount"}:
            return
        self._warned.add("written")
        _log.warning(
            "Vault will delete version %s of %s at %s (delete_version_after, set on the path or "
            "on the mount %s/config): a deleted alias version cannot be read until the alias is "
            "rotated, a deleted key version makes the key unstored; set it to 0s",
            answer.get("version"),
            self._location(path),
            due,
            self.mount,
        )

    # -- Vault calls -----------------------------------------------------------------------

    def _call(self, operation: str, path: str, call: Callable[[], _T]) -> _T:
        import requests
        from hvac import exceptions as hve

        error: Exception
        try:
            return self._send(call)
        except (hve.VaultError, requests.exceptions.RequestException) as exc:
            if is_cas_mismatch(exc):
                error = _CasMismatch()
            else:
                error = translate(
                    exc,
                    operation=operation,
                    location=self._location(path),
                    agent=self._through_agent,
                )
        except (ValueError, RecursionError):
            # Vault's answer could not be decoded (a value nested too deeply, an integer too
            # long): the answer holds the value, so only the location is named.
            location = self._location(path)
            error = StoredValueError(
                f"Vault's answer to {operation} of {location} could not be decoded",
                store=STORE,
                location=location,
            )
        # Raised outside the except block, so nothing (request body included) is chained.
        raise error

    def _send(self, call: Callable[[], _T]) -> _T:
        """``call()`` with a live token (renewed ahead of its expiry).

        After a refusal (401/403), a new login and one more ``call()``: Vault refused the first,
        so nothing was done.
        """
        auto_auth = self.auto_auth
        if auto_auth is None:
            return call()
        from hvac import exceptions as hve

        auto_auth.ensure()
        token = self.client.adapter.token
        try:
            return call()
        except (hve.Forbidden, hve.Unauthorized) as exc:
            refusal: Exception = exc
        # Outside the except block: a failed login is not chained to the refused request.
        if not auto_auth.refused(token):
            raise refusal
        del refusal
        return call()

    def _read_metadata(self, path: str) -> dict[str, Any] | None:
        try:
            answer = self._call(
                "read metadata",
                path,
                lambda: self.client.secrets.kv.v2.read_secret_metadata(
                    path=path, mount_point=self.mount
                ),
            )
        except SecretNotFoundError:
            return None
        meta = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(meta, dict):
            raise StoredValueError(
                f"metadata of {self._location(path)} is not an object",
                store=STORE,
                location=self._location(path),
            )
        return meta

    def _write_metadata(self, path: str, custom: Mapping[str, str]) -> None:
        # Only custom_metadata is sent: Vault leaves max_versions, cas_required and
        # delete_version_after as they are (hvac's update_metadata would reset the last one).
        body = {"custom_metadata": dict(custom)}
        self._call(
            "write metadata",
            path,
            lambda: self.client.adapter.post(f"/v1/{self.mount}/metadata/{path}", json=body),
        )

    def _write_data(self, path: str, data: dict[str, Any], *, cas: int) -> int:
        answer = self._write_data_answer(path, data, cas=cas)
        return _answer_version(answer, self._location(path))

    def _write_data_answer(self, path: str, data: dict[str, Any], *, cas: int) -> dict[str, Any]:
        """Write ``data`` with ``cas``; the answer's ``data`` (version, custom_metadata)."""
        answer = self._call(
            "write",
            path,
            lambda: self.client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=data, cas=cas, mount_point=self.mount
            ),
        )
        body = answer.get("data") if isinstance(answer, Mapping) else None
        written = dict(body) if isinstance(body, Mapping) else {}
        self._notice_written(written, path)
        return written

    def _read_data(self, path: str) -> tuple[object, str | None]:
        if self.kv_version == 1:
            answer = self._call(
                "read",
                path,
                lambda: self.client.secrets.kv.v1.read_secret(path=path, mount_point=self.mount),
            )
            return (answer.get("data") if isinstance(answer, Mapping) else None), None
        answer = self._call(
            "read",
            path,
            lambda: self.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=self.mount, raise_on_deleted_version=True
            ),
        )
        body = answer.get("data") if isinstance(answer, Mapping) else None
        if not isinstance(body, Mapping):
            return None, None
        meta = body.get("metadata")
        version = meta.get("version") if isinstance(meta, Mapping) else None
        return body.get("data"), (str(version) if isinstance(version, int) else None)

    # -- decisions -------------------------------------------------------------------------

    def _check_owned(self, meta: Mapping[str, Any], path: str, *, kind: str) -> None:
        location = self._location(path)
        custom = _custom(meta)
        if custom.get(_MANAGED_BY) != MANAGED_BY:
            raise NotOwnedError(
                f"{location} exists and was not created by unkey-secrets; not overwriting it",
                store=STORE,
                location=location,
            )
        if _data_predates_metadata(meta) and not (
            custom.get(_KIND) == "key" and custom.get("version")
        ):
            # Our own keys are created by the data write (the marker follows it and vouches
            # for a version); a marker that never vouched for one came after someone's data.
            raise NotOwnedError(
                f"{location} carries the unkey-secrets marker but its data was written before "
                "the marker; not treating it as ours",
                store=STORE,
                location=location,
            )
        if custom.get(_KIND, kind) != kind:
            raise StoreConflictError(
                f"{location} holds an unkey-secrets {custom.get(_KIND)}, not a {kind}",
                store=STORE,
                location=location,
            )

    def _existing_key(
        self, meta: Mapping[str, Any], key: IssuedKey, path: str
    ) -> StoredLocation | None:
        """The no-op answer if ``meta`` vouches for ``key`` being stored; None to write it."""
        location = self._location(path)
        custom = _custom(meta)
        current = _current_version(meta)
        if custom.get("key_id") not in (None, key.key_id):
            raise StoreConflictError(
                f"{location} is marked for key {custom.get('key_id')}, not {key.key_id}",
                store=STORE,
                location=location,
            )
        if current == 0:
            return None
        state = _version_state(meta, current)
        if state is not None:
            raise StoreConflictError(
                f"{location} held {key.key_id} but version {current} was {state}; "
                "not writing the key again",
                store=STORE,
                location=location,
            )
        if custom.get("key_id") == key.key_id and custom.get("version") == str(current):
            return StoredLocation(
                store=STORE,
                location=location,
                key_id=key.key_id,
                version=str(current),
                created=False,
            )
        # Data on a path we marked first, not vouched for: an interrupted put of ours or a
        # write into our path. Writing the key again (cas=current) settles it either way.
        return None

    def _require_stored(self, key: IssuedKey, key_path: str) -> None:
        """Refuse to point an alias at a key that :meth:`put` has not finished storing."""
        meta = self._read_metadata(key_path)
        if meta is not None:
            self._check_owned(meta, key_path, kind="key")
            if self._existing_key(meta, key, key_path) is not None:
                custom = _custom(meta)
                if key.alias and not custom.get("alias"):
                    # Stored without its alias (captured first, aliased later): record it, so
                    # a rotation of the key by key_id moves this alias too.
                    self._write_metadata(key_path, {**custom, "alias": key.alias})
                return
        location = self._location(key_path)
        raise SecretNotFoundError(
            f"{key.key_id} is not stored at {location}; put it before making it current",
            store=STORE,
            location=location,
        )

    def _require_v2(self, operation: str) -> None:
        if self.kv_version != 2:
            raise ConfigurationError(
                f"{operation} needs a KV v2 mount: KV v1 has no check-and-set or metadata, so "
                "create-only writes and ownership marks are impossible (KV v1 is read-only here)"
            )

    def _location(self, path: str) -> str:
        return f"{self.mount}/{path}"

    def _describe_path(self, path: str) -> str:
        """``mount/path``, as every result and error of this store names a location."""
        return self._location(path)

    @property
    def _through_agent(self) -> bool:
        """Whether requests go through a Vault Agent or Proxy that adds its own token."""
        auto_auth = getattr(self, "auto_auth", None)
        return auto_auth is not None and auto_auth.through_agent


def _shown_address(url: str | None) -> str:
    """``url`` as a log names it: scheme, host and port (no user info, path or query)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url or "")
        host, port = parts.hostname, parts.port
    except ValueError:
        return "(an address that does not parse)"
    if not host:
        return "(no address)"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + (f":{port}" if port is not None else "")


def _hold_to_policy(client: hvac.Client, max_connections: int | None) -> None:
    """Hold ``client`` (built here or given) to the transport policy, before any request.

    Its URL must be https, or plain http to a loopback host (ConfigurationError otherwise); it
    never follows a redirect; its session carries the policy's adapter on every prefix (a
    deadline of the client's timeout per request, the whole answer included; a byte budget per
    answer; no proxy for plain http), with pools of ``max_connections`` per host when given.
    """
    from ...transport.requests import apply_policy

    url = getattr(client, "url", None)
    try:
        check_vault_addr(url if isinstance(url, str) else "")
    except ValueError as exc:
        # The check's message never quotes the URL (it may carry credentials).
        raise ConfigurationError(
            f"the hvac client's URL: {exc} (a token and the keys must not cross the network in "
            "clear, nor credentials sit in a URL)"
        ) from None
    client.adapter.allow_redirects = False
    apply_policy(client.adapter.session, pool_maxsize=max_connections)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _key_marker(key: IssuedKey, custom: Mapping[str, str]) -> dict[str, str]:
    """The custom_metadata of a key's path: ``custom`` (an operator's members kept) plus ours."""
    return {
        **custom,
        _MANAGED_BY: MANAGED_BY,
        _KIND: "key",
        "key_id": key.key_id,
        "api_id": key.api_id,
        "created_at": custom.get("created_at") or _now(),
        **({"alias": key.alias} if key.alias else {}),
        **({"rerolled_from": key.rerolled_from} if key.rerolled_from else {}),
    }


def _answer_version(answer: Mapping[str, Any], location: str) -> int:
    version = answer.get("version")
    if not isinstance(version, int):
        raise StoreError(
            f"Vault's answer to the write of {location} has no version",
            store=STORE,
            location=location,
        )
    return version


def _own_landed_write(meta: Mapping[str, Any], key: IssuedKey) -> bool:
    """Whether ``meta`` is what our own unmarked ``cas=0`` write of ``key`` leaves behind.

    Only asked for a path this store object sent that write for: version 1, the only one and
    alive, and metadata either empty or our marker (an operator's template) vouching for no
    version and naming no other key.
    """
    custom = _custom(meta)
    if custom and (
        custom.get(_MANAGED_BY) != MANAGED_BY
        or custom.get(_KIND, "key") != "key"
        or custom.get("key_id") not in (None, key.key_id)
        or "version" in custom
    ):
        return False
    return _current_version(meta) == 1 and _version_state(meta, 1) is None


def _custom(meta: Mapping[str, Any]) -> dict[str, str]:
    custom = meta.get("custom_metadata")
    if not isinstance(custom, Mapping):
        return {}
    return {k: v for k, v in custom.items() if isinstance(k, str) and isinstance(v, str)}


def _current_version(meta: Mapping[str, Any]) -> int:
    version = meta.get("current_version")
    return version if isinstance(version, int) else 0


class _Gone(NamedTuple):
    """A KV version that was deleted or destroyed."""

    version: int
    destroyed: bool
    #: When it was deleted: RFC 3339, UTC, to the second; None if destroyed without a delete.
    deleted_at: str | None


def _version_entry(meta: Mapping[str, Any], version: int) -> Mapping[str, Any] | None:
    versions = meta.get("versions")
    entry = versions.get(str(version)) if isinstance(versions, Mapping) else None
    return entry if isinstance(entry, Mapping) else None


def _second(moment: object) -> str | None:
    """Vault's RFC 3339 time (nanoseconds, UTC) to the second, or None if there is none."""
    if not isinstance(moment, str) or len(moment) < 19:
        return None
    return moment[:19] + "Z"


def _now_second() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _gone(entry: Mapping[str, Any], version: int, *, vault_says: bool = False) -> _Gone | None:
    """The deletion of ``version`` (its ``entry`` in ``versions``), if it happened.

    A deletion_time still to come is ``delete_version_after`` at work: the version is
    readable until then, unless ``vault_says`` (Vault answered its read with a 404: its clock
    decides).
    """
    deleted_at = _second(entry.get("deletion_time"))
    if entry.get("destroyed"):
        return _Gone(version, True, deleted_at)
    # The same fixed-width UTC form on both sides: the texts compare as the times do.
    if deleted_at is not None and (vault_says or deleted_at <= _now_second()):
        return _Gone(version, False, deleted_at)
    return None


def _due(entry: Mapping[str, Any]) -> str | None:
    """When Vault will delete a version still readable (``delete_version_after``), or None."""
    deleted_at = _second(entry.get("deletion_time"))
    if entry.get("destroyed") or deleted_at is None or deleted_at <= _now_second():
        return None
    return deleted_at


def _version_gone(meta: Mapping[str, Any], version: int) -> _Gone | None:
    entry = _version_entry(meta, version)
    return _gone(entry, version) if entry is not None else None


def _version_state(meta: Mapping[str, Any], version: int) -> str | None:
    gone = _version_gone(meta, version)
    return None if gone is None else _gone_word(gone)


def _alive(meta: Mapping[str, Any]) -> bool:
    """Whether the current version can be read (neither deleted nor destroyed)."""
    return _version_gone(meta, _current_version(meta)) is None


def _gone_word(gone: _Gone) -> str:
    return "destroyed" if gone.destroyed else "deleted"


def _gone_sentence(location: str, gone: _Gone, key_id: str | None, *, named: bool) -> str:
    """What happened to an alias's current version, and the key its metadata names.

    ``named`` with no ``key_id``: the metadata names something that is not a key_id.
    """
    if gone.destroyed:
        how = "destroyed (bao kv destroy: its data is gone for good)"
    else:
        how = (
            f"deleted (at {gone.deleted_at}) by an operator (bao kv delete) or by "
            "delete_version_after"
        )
    if key_id:
        names = f"still names {key_id}"
    else:
        names = "names a value that is not a key_id" if named else "names no key"
    return f"the current version {gone.version} of {location} was {how}; its metadata {names}"


def _gone_answer(answer: object) -> tuple[dict[str, Any], _Gone] | None:
    """What Vault's 404 to a read of a deleted or destroyed version tells; None for another 404.

    The path's metadata (in the shape a metadata read has, as far as the answer tells) and the
    deletion.
    """
    body = answer.get("data") if isinstance(answer, Mapping) else None
    if not isinstance(body, Mapping) or body.get("data") is not None:
        return None
    meta = body.get("metadata")
    version = meta.get("version") if isinstance(meta, Mapping) else None
    if not isinstance(meta, Mapping) or not isinstance(version, int) or version < 1:
        return None
    gone = _gone(meta, version, vault_says=True)
    if gone is None:
        return None
    shaped = {"current_version": version, "custom_metadata": meta.get("custom_metadata")}
    return shaped, gone


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def _seconds(duration: object) -> float:
    """Vault's duration (Go's form, ``1h30m0s``, or a number) in seconds.

    0.0 if there is none or it cannot be read.
    """
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return max(float(duration), 0.0)
    if not isinstance(duration, str) or not duration:
        return 0.0
    parts = _DURATION_PART.findall(duration)
    if "".join(number + unit for number, unit in parts) != duration:
        return 0.0
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def _duration(seconds: float) -> str:
    """``seconds`` as ``1h30m0s``-style text, as Vault shows durations."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{seconds:g}s"


def _data_predates_metadata(meta: Mapping[str, Any]) -> bool:
    """True if the path was created by a data write, before any metadata of ours existed.

    A plain data write creates the metadata and version 1 at the same instant; our metadata
    is always written before the first version. Without version 1 (pruned by max_versions)
    the order cannot be told and the marker is trusted.
    """
    versions = meta.get("versions")
    first = versions.get("1") if isinstance(versions, Mapping) else None
    if not isinstance(first, Mapping):
        return False
    created = meta.get("created_time")
    return isinstance(created, str) and created == first.get("created_time")


def _ours(name: str) -> bool:
    """Whether an alias path's custom_metadata member ``name`` is one we write."""
    return name in (_MANAGED_BY, _KIND, "api_id", "version") or name.startswith(
        ("current_", "next_")
    )


def _alias_claim(
    meta: Mapping[str, Any] | None, now: tuple[str, str | None] | None, cas: int, key: IssuedKey
) -> dict[str, str]:
    """The alias metadata a move from version ``cas`` to ``key`` writes before its data.

    It says which key the next version will hold, keeping what the current one holds (a crash
    between the two writes leaves the metadata telling both apart), and an operator's own
    members (an owner, a team), as on a key's path.
    """
    custom = {name: value for name, value in _custom(meta or {}).items() if not _ours(name)}
    custom.update({_MANAGED_BY: MANAGED_BY, _KIND: "alias", "api_id": key.api_id})
    if now is not None and cas > 0:
        custom.update(_alias_members("current_", now, cas))
    custom.update(_alias_members("next_", (key.key_id, key.rerolled_from), cas + 1))
    return custom


def _alias_members(prefix: str, key: tuple[str, str | None], version: int) -> dict[str, str]:
    key_id, rerolled_from = key
    members = {prefix + "key_id": key_id, prefix + "version": str(version)}
    if rerolled_from:
        members[prefix + "rerolled_from"] = rerolled_from
    return members


def _gone_key(meta: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The key_id a deleted alias version's metadata names, if it is one; and whether it names any.

    The metadata is writable by anyone with the writer policy and ends up in errors, logs and
    ``doctor``: a value that is not a key_id (a key pasted there, text) is never echoed.
    """
    named = _alias_key(meta)
    if named is None:
        return None, False
    try:
        return validate_key_id(named[0], "current_key_id"), True
    except InvalidInputError:
        return None, True


def _alias_key(meta: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """The (key_id, rerolled_from) the alias's current version holds, per its metadata.

    A move writes ``next_*`` before the data and keeps ``current_*``; whichever names the
    current KV version is what the alias holds. Metadata from before that scheme
    (``current_key_id`` with ``version``) is read too. None when nothing vouches for it.
    A current version deleted or destroyed since is still named (the metadata outlives it):
    ask :func:`_alive` whether it can be read.
    """
    custom = _custom(meta)
    current = _current_version(meta)
    if current == 0:
        return None
    for prefix in ("next_", "current_"):
        if custom.get(prefix + "version") == str(current) and custom.get(prefix + "key_id"):
            return custom[prefix + "key_id"], custom.get(prefix + "rerolled_from") or None
    if custom.get("version") == str(current) and custom.get("current_key_id"):
        return custom["current_key_id"], None
    return None
