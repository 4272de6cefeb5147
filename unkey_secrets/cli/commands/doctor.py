"""``doctor``: can this environment run each command? Connectivity, auth and permissions.

Each permission is probed with one cheap call that changes nothing:

* Unkey: ``apis.getApi`` (``read_api``), ``apis.listKeys`` with a page of 1 (``read_key`` and
  ``read_api``), ``keys.verifyKey`` of a dummy key (``verify_key``; it answers NOT_FOUND). There
  is no such call for ``create_key``, ``update_key`` and ``delete_key``: ``--write-probe``
  creates a disabled key (marked, so ``reconcile`` finds it if its deletion fails), updates it
  and deletes it; without it they are reported as unchecked.
* The store: ``check_writable`` (the store's live preflight: Vault's capabilities on the key,
  alias and rotation-record paths, or Secrets Manager's DescribeSecret), the metadata read
  ``key_entry`` uses, ``alias_state``, ``read_rotation`` and a reader's ``get``, each of a name
  that does not exist (a "not found" answer means the permission is there).
* Vault's ``delete_version_after`` (``store.retention``): set on the mount (``<mount>/config``)
  or on the alias path, Vault deletes an alias's current version by itself, and readers fail
  until the alias is rotated; with ``--alias``, a current version deleted or destroyed already
  is named too, with the command that stores a new one. A finding is a warning
  (``result: warning``), which fails nothing.
* Expiry ahead of time (``keys.expiring``): the API's stored keys that are valid and end
  within ``--expiring-within`` (7 days by default) without a rotation having replaced them
  (the rule ``list --expiring-within`` applies: :mod:`._expiry`), and the current key of
  ``--alias``; only the keys in that window are looked up in the store. A finding is a
  warning, naming each key, its alias, when it ends and the command that replaces it.

A record per check (``ok`` true, false, or null for unchecked) names, when it fails, the
shipped policy or root-key permission that grants it; then a record per command says whether
it can run here.

The run is checked for the commands ``--for`` names (repeatable), by default the writer's: every
command that does not read a key back (all but ``show`` and ``verify``, which need the reader's
``store.read``). A refused permission that only commands outside them need is reported as
``not granted``, naming who needs it, and fails nothing: a writer token lacks ``store.read`` by
design (``policies/vault-writer.hcl``). Exit 0 when no check those commands need failed (nor a
check no command lists: the settings, ``unkey.read_api``), unchecked and warnings included; 3
otherwise.
"""

from __future__ import annotations

import argparse
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..._errors import (
    ConfigurationError,
    SecretNotFoundError,
    StoreAccessError,
    StoreError,
    UnkeyAuthError,
    UnkeyError,
    UnkeyNotFoundError,
    UnkeySecretsError,
)
from ..._redact import confined
from ...rotation.core import MARKER_META_KEY
from ..options import EXIT_FINDINGS, add_api_id, exit_codes, format_duration
from ..output import Output
from ._common import iso, now_ms, open_store, open_unkey, unkey_status
from ._expiry import (
    DEFAULT_EXPIRING_WITHIN,
    AliasNames,
    add_expiring_option,
    decide,
    in_window,
    replace_advice,
)

__all__ = ["NEEDS", "WRITER_COMMANDS", "add_parser", "run"]

#: A key_id and an alias that no store holds, for probes that must find nothing.
_PROBE_KEY_ID = "key_unkeysecretsdoctorprobe"
_PROBE_ALIAS = "unkey-secrets-doctor-probe"
_DUMMY_KEY = "unkey_secrets_doctor_dummy_key_0000000000"

_UNKEY_WRITE = ("unkey.create_key", "unkey.update_key", "unkey.delete_key")
#: What each command needs: the names of the checks below.
NEEDS: dict[str, tuple[str, ...]] = {
    "provision": (*_UNKEY_WRITE, "unkey.read_key", "store.write", "store.metadata"),
    "rotate": (
        *_UNKEY_WRITE,
        "unkey.read_key",
        "store.write",
        "store.metadata",
        "store.alias_state",
        "store.read_rotation",
    ),
    "capture": ("store.write", "store.metadata"),
    "show": ("store.read",),
    "list": ("unkey.read_key", "store.metadata"),
    "verify": ("unkey.verify_key", "store.read"),
    "reconcile": ("unkey.read_key", "store.metadata", "store.alias_state"),
    "reconcile --apply": (
        "unkey.read_key",
        "unkey.delete_key",
        "store.metadata",
        "store.alias_state",
    ),
    "rotate-due": (
        *_UNKEY_WRITE,
        "unkey.read_key",
        "store.write",
        "store.metadata",
        "store.alias_state",
        "store.read_rotation",
    ),
    "bulk": (*_UNKEY_WRITE, "unkey.read_key", "store.write", "store.metadata"),
}

#: The commands checked when ``--for`` names none: the writer's, every command that does not read
#: a key back (``show`` and ``verify`` need the reader's ``store.read``).
WRITER_COMMANDS: tuple[str, ...] = tuple(c for c, n in NEEDS.items() if "store.read" not in n)

_UNKEY_GRANTS = {
    "unkey.config": "UNKEY_ROOT_KEY (and UNKEY_BASE_URL) in the environment",
    "unkey.read_api": "root key permission api.*.read_api (or api.<api_id>.read_api)",
    "unkey.read_key": "root key permissions api.*.read_key and api.*.read_api",
    "unkey.verify_key": "root key permission api.*.verify_key",
    "unkey.create_key": "root key permission api.*.create_key",
    "unkey.update_key": "root key permission api.*.update_key",
    "unkey.delete_key": "root key permission api.*.delete_key",
}
_STORE_GRANTS = {
    "vault": {
        "store.config": (
            "VAULT_ADDR and VAULT_TOKEN (or an auth method's settings; VAULT_AGENT_ADDR for a "
            "local agent or proxy)"
        ),
        "store.write": "policies/vault-writer.hcl",
        "store.metadata": "policies/vault-writer.hcl",
        "store.alias_state": "policies/vault-writer.hcl",
        "store.read_rotation": "policies/vault-writer.hcl",
        "store.read": "policies/vault-reader.hcl",
    },
    "aws": {
        "store.config": "AWS_REGION and the AWS credential chain (AWS_PROFILE, a role...)",
        "store.write": "policies/aws-writer.json",
        "store.metadata": "policies/aws-writer.json",
        "store.alias_state": "policies/aws-rotator.json",
        "store.read_rotation": "policies/aws-rotator.json",
        "store.read": "policies/aws-reader.json",
    },
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """The ``doctor`` command's parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="check connectivity, auth and the permissions each command needs",
        epilog=exit_codes("3 a check failed (an unchecked one or a warning fails nothing)"),
        allow_abbrev=False,
    )
    add_api_id(parser, "the Unkey API (keyspace) to check")
    parser.add_argument(
        "--alias", metavar="NAME", help="also check the writes of this alias's paths"
    )
    parser.add_argument(
        "--write-probe",
        action="store_true",
        help="check create_key, update_key and delete_key by creating a disabled key and "
        "deleting it (changes Unkey; without it they are unchecked)",
    )
    add_expiring_option(
        parser,
        "keys.expiring warns of current keys that end within DURATION from now (seconds, or "
        "7d, 24h...; default 7d)",
    )
    parser.add_argument(
        "--for",
        dest="for_commands",
        action="append",
        choices=list(NEEDS),
        metavar="COMMAND",
        help="a command these credentials are meant to run (repeatable; default: the writer's, "
        "every command but show and verify): a check only other commands need is reported as "
        "not granted and fails nothing; a reader's credentials: --for show --for verify",
    )
    parser.set_defaults(expiring_within=DEFAULT_EXPIRING_WITHIN)
    return parser


@dataclass
class _Check:
    name: str
    ok: bool | None
    detail: str
    grants: str | None = None
    #: A finding that fails nothing (ok stays True): reported as ``result: warning``.
    warning: bool = False
    #: Failed because the credentials lack the permission (a 403, not an unreachable server
    #: or a setting): ``not granted`` when no command checked needs it.
    refused: bool = False


def run(args: argparse.Namespace, out: Output) -> int:
    """A record per check, one per command, then a summary; exit 3 if a needed check failed."""
    checks: dict[str, _Check] = {}
    for check in _unkey_checks(args):
        checks[check.name] = check
    for check in _store_checks(args):
        checks[check.name] = check
    checks.setdefault(
        _EXPIRING,
        _Check(_EXPIRING, None, "not checked: no store to look the keys up in (see store.config)"),
    )
    scope = _scope(args.for_commands)
    failed = not_granted = 0
    for check in checks.values():
        needed_by = [c for c, needs in NEEDS.items() if check.name in needs]
        counted = (
            check.ok is not False
            or not check.refused
            or not needed_by
            or any(c in scope for c in needed_by)
        )
        failed += check.ok is False and counted
        not_granted += not counted
        if counted:
            result = (
                "warning"
                if check.warning
                else {True: "ok", False: "failed", None: "unchecked"}[check.ok]
            )
            detail = check.detail
        else:
            result = "not granted"
            detail = f"{_who_needs(needed_by, scope)}: {check.detail}"
        out.result(
            {
                "command": "doctor",
                "ok": check.ok is not False or not counted,
                "check": check.name,
                "result": result,
                "detail": detail,
                "granted_by": check.grants if check.ok is not True else None,
            }
        )
    for command, needs in NEEDS.items():
        missing = [n for n in needs if checks.get(n, _Check(n, None, "")).ok is False]
        unknown = [n for n in needs if checks.get(n, _Check(n, None, "")).ok is None]
        grants = sorted({checks[n].grants or "" for n in missing if n in checks} - {""})
        out.result(
            {
                "command": "doctor",
                "ok": not missing or command not in scope,
                "for_command": command,
                "checked": command in scope,
                "ready": "no" if missing else ("unknown" if unknown else "yes"),
                "missing": missing,
                "unchecked": unknown,
                "granted_by": grants,
            }
        )
    out.result(
        {
            "command": "doctor",
            "ok": failed == 0,
            "summary": True,
            "api_id": args.api_id,
            "store": args.store,
            "for_commands": list(scope),
            "failed": failed,
            "not_granted": not_granted,
            "unchecked": sum(c.ok is None for c in checks.values()),
            "warnings": sum(c.warning for c in checks.values()),
        }
    )
    return EXIT_FINDINGS if failed else 0


def _scope(named: list[str] | None) -> tuple[str, ...]:
    """The commands the run is checked for: those ``--for`` named, in NEEDS' order."""
    if not named:
        return WRITER_COMMANDS
    return tuple(c for c in NEEDS if c in named)


def _who_needs(needed_by: list[str], scope: tuple[str, ...]) -> str:
    """``not granted``'s note: who needs the check, and that the commands checked do not."""
    others = [c for c in NEEDS if c not in needed_by and c in scope]
    them = " and ".join(needed_by) if len(needed_by) <= 2 else ", ".join(needed_by)
    checked = "the writer's commands" if scope == WRITER_COMMANDS else ", ".join(others)
    return f"not needed here ({them} need it; {checked} do not: --for {needed_by[0]} checks it)"


# -- Unkey ----------------------------------------------------------------------------------


def _unkey_checks(args: argparse.Namespace) -> list[_Check]:
    names = ("read_api", "read_key", "verify_key", "create_key", "update_key", "delete_key")

    def grant(name: str) -> str:
        return _UNKEY_GRANTS[name]

    try:
        client = open_unkey()
    except UnkeySecretsError as exc:
        failure = _Check("unkey.config", False, str(exc), grant("unkey.config"))
        return [failure] + [
            _Check(f"unkey.{n}", None, "not checked: no Unkey client", grant(f"unkey.{n}"))
            for n in names
        ]
    checks = [_Check("unkey.config", True, "root key and base URL set")]
    with client as unkey:
        first = _unkey_probe("unkey.read_api", lambda: unkey.get_api(args.api_id))
        checks.append(first)
        if first.ok is False and first.detail.startswith(("could not reach", "root key refused")):
            return checks + [
                _Check(f"unkey.{n}", None, "not checked: " + first.detail, grant(f"unkey.{n}"))
                for n in names[1:]
            ]
        checks.append(
            _unkey_probe(
                "unkey.read_key",
                lambda: next(iter(unkey.list_keys(args.api_id, limit=1)), None),
            )
        )
        checks.append(
            _unkey_probe("unkey.verify_key", lambda: unkey.verify_key(_DUMMY_KEY, credits_cost=0))
        )
        if args.write_probe:
            checks += _write_probe(unkey, args.api_id, args.store)
        else:
            checks += [
                _Check(
                    f"unkey.{n}",
                    None,
                    "no call checks it without a change: pass --write-probe",
                    grant(f"unkey.{n}"),
                )
                for n in ("create_key", "update_key", "delete_key")
            ]
    return checks


def _unkey_probe(name: str, call: Callable[[], object]) -> _Check:
    grants = _UNKEY_GRANTS[name]
    try:
        call()
    except UnkeyAuthError as exc:
        if exc.status == 401:
            return _Check(name, False, "root key refused (401): check UNKEY_ROOT_KEY", grants)
        return _Check(name, False, f"missing permission (403): {exc.detail}", grants, refused=True)
    except UnkeyNotFoundError:
        return _Check(name, False, "no such API for this root key's workspace (404)", grants)
    except UnkeyError as exc:
        transport = type(exc).__name__ in ("UnkeyTransportError", "UnkeyAmbiguousError")
        what = "could not reach Unkey" if transport else "Unkey did not answer as expected"
        return _Check(name, False, f"{what} ({type(exc).__name__}): check UNKEY_BASE_URL", grants)
    return _Check(name, True, "granted")


def _write_probe(unkey: Any, api_id: str, store_name: str | None) -> list[_Check]:
    # Provision's marker form, op_<store>_<hex>: reconcile --store <store> --apply deletes a
    # probe key left behind; without a store it has the older form no store claims.
    marker = (
        f"op_{store_name}_{secrets.token_hex(12)}" if store_name else "op_" + secrets.token_hex(12)
    )
    create = _Check("unkey.create_key", None, "", _UNKEY_GRANTS["unkey.create_key"])
    update = _Check(
        "unkey.update_key",
        None,
        "not checked: no key was created",
        _UNKEY_GRANTS["unkey.update_key"],
    )
    delete = _Check(
        "unkey.delete_key",
        None,
        "not checked: no key was created",
        _UNKEY_GRANTS["unkey.delete_key"],
    )
    key_id: str | None = None

    def make() -> None:
        nonlocal key_id
        issued = unkey.create_key(
            api_id,
            enabled=False,
            name="unkey-secrets doctor probe",
            meta={MARKER_META_KEY: marker, "unkey_secrets_probe": True},
        )
        with confined(issued.secret):
            key_id = issued.key_id
            del issued

    found = _unkey_probe("unkey.create_key", make)
    create.ok, create.detail, create.refused = found.ok, found.detail, found.refused
    if key_id is None:
        if found.ok is False and "404" in found.detail:
            create.detail = "missing permission or no such API (createKey answers 404 for both)"
        return [create, update, delete]
    created = key_id
    found = _unkey_probe("unkey.update_key", lambda: unkey.update_key(created, enabled=False))
    update.ok, update.detail, update.refused = found.ok, found.detail, found.refused
    found = _unkey_probe("unkey.delete_key", lambda: unkey.delete_key(created))
    delete.ok, delete.detail, delete.refused = found.ok, found.detail, found.refused
    if delete.ok is not True:
        delete.detail += (
            f"; the disabled probe key {created} is left in Unkey (reconcile "
            + (f"--store {store_name} --apply" if store_name else "--apply --include-unlabelled")
            + " deletes it once it is older than --min-age)"
        )
    else:
        create.detail = update.detail = f"granted (probe key {created}, deleted)"
    return [create, update, delete]


# -- the store ------------------------------------------------------------------------------

_STORE_NAMES = ("write", "metadata", "alias_state", "read_rotation", "read")


def _store_checks(args: argparse.Namespace) -> list[_Check]:
    grants = _STORE_GRANTS.get(args.store or "", {})

    def grant(name: str) -> str | None:
        return grants.get(name)

    if not args.store:
        return [
            _Check(f"store.{n}", None, "no store chosen: pass --store", grant(f"store.{n}"))
            for n in ("config", *_STORE_NAMES)
        ]
    try:
        store = open_store(args)
    except UnkeySecretsError as exc:
        return [_Check("store.config", False, str(exc), grant("store.config"))] + [
            _Check(
                f"store.{n}", None, "not checked: the store is not configured", grant(f"store.{n}")
            )
            for n in _STORE_NAMES
        ]
    api_id, alias = args.api_id, args.alias or _PROBE_ALIAS
    probes: dict[str, Callable[[], object]] = {
        "write": lambda: store.check_writable(api_id=api_id, alias=alias),
        "metadata": lambda: store.key_entry(api_id=api_id, key_id=_PROBE_KEY_ID),
        "alias_state": lambda: store.alias_state(api_id=api_id, alias=alias),
        "read_rotation": lambda: store.read_rotation(api_id=api_id, key_id=_PROBE_KEY_ID),
        "read": lambda: store.get(api_id=api_id, key_id=_PROBE_KEY_ID),
    }
    checks = [_Check("store.config", True, f"{store.name} store configured")]
    for short, call in probes.items():
        name = f"store.{short}"
        try:
            call()
        except SecretNotFoundError:
            checks.append(_Check(name, True, "granted (nothing there, as expected)"))
        except StoreAccessError as exc:
            checks.append(_Check(name, False, f"refused: {exc}", grant(name), refused=True))
        except ConfigurationError as exc:
            checks.append(_Check(name, False, str(exc), grant(name)))
        except StoreError as exc:
            checks.append(_Check(name, False, f"failed ({type(exc).__name__}: {exc})", grant(name)))
        else:
            checks.append(_Check(name, True, "granted"))
    if store.name == "vault":
        checks.append(_retention(store, api_id, args.alias))
    checks.append(_expiring(store, api_id, args.alias, args.expiring_within))
    return checks


def _retention(store: Any, api_id: str, alias: str | None) -> _Check:
    """``store.retention``: what would make (or made) Vault delete an alias's current version.

    ``store`` is a :class:`~unkey_secrets.stores.vault.VaultStore`: the mount's
    ``delete_version_after`` (``<mount>/config``, which the shipped policies do not let read:
    then that part is unchecked) and, with ``alias``, what the alias path's metadata says.
    """
    name = "store.retention"
    findings: list[str] = []
    unread: str | None = None
    try:
        after = store.mount_delete_version_after()
    except StoreAccessError:
        unread = (
            f"the mount's delete_version_after is not checked: the token may not read "
            f"{store.mount}/config (a read there shows it; the writer policy does not grant it)"
        )
    except UnkeySecretsError as exc:
        unread = f"the mount's delete_version_after is not checked ({type(exc).__name__}: {exc})"
    else:
        if after > 0:
            findings.append(
                f"the mount {store.mount} sets delete_version_after ({after:g} s): Vault deletes "
                "every version written under it that long after it is written, and an alias "
                "cannot be read once its current version is deleted (until it is rotated); set "
                f"it to 0s: bao write {store.mount}/config delete_version_after=0s"
            )
    if alias is not None:
        try:
            findings += store.alias_retention(api_id=api_id, alias=alias)
        except UnkeySecretsError as exc:
            unread = (unread + "; " if unread else "") + (
                f"alias {alias}'s metadata could not be read ({type(exc).__name__}: {exc})"
            )
    if findings:
        detail = "; ".join(findings + ([unread] if unread else []))
        return _Check(name, True, detail, warning=True)
    if unread is not None:
        return _Check(name, None, unread)
    if alias is None:
        return _Check(name, True, f"the mount {store.mount} sets no delete_version_after")
    return _Check(
        name,
        True,
        f"neither the mount {store.mount} nor alias {alias} sets delete_version_after, and the "
        "alias's current version (if any) is not deleted",
    )


#: The name of the expiry check.
_EXPIRING = "keys.expiring"
#: How many expiring keys the check's detail names (the rest are counted).
_NAMED_AT_MOST = 10


def _expiring(store: Any, api_id: str, alias: str | None, within: int) -> _Check:
    """``keys.expiring``: current keys of ``api_id`` ending within ``within`` seconds.

    Unkey lists the API's keys (apis.listKeys, cache revalidated); each valid key in the window
    is looked up in ``store`` (metadata only) and reported unless a rotation replaced it. With
    ``alias``, the key it names is checked too, however it was stored. A finding is a warning.
    """
    span = format_duration(within)
    try:
        client = open_unkey()
    except UnkeySecretsError as exc:
        return _Check(_EXPIRING, None, f"not checked: no Unkey client ({exc})")
    now = now_ms()
    names = AliasNames(store, api_id)
    found: dict[str, tuple[str | None, int]] = {}
    try:
        with client as unkey:
            for info in unkey.list_keys(api_id, revalidate_keys_cache=True):
                if not info.enabled or not in_window(info.expires, now, within):
                    continue
                entry = store.key_entry(api_id=api_id, key_id=info.key_id)
                if entry is None:
                    continue  # not this store's key
                if decide(info.key_id, alias=entry.alias, meta=info.meta, names=names).report:
                    assert info.expires is not None
                    found[info.key_id] = (entry.alias, info.expires)
            named = names.get(alias) if alias is not None else None
            if alias is not None and named not in (None, AliasNames.UNREAD, *found):
                assert named is not None
                status, key = unkey_status(unkey, named, now)
                if status == "valid" and key is not None and in_window(key.expires, now, within):
                    assert key.expires is not None
                    found[named] = (alias, key.expires)
    except UnkeySecretsError as exc:
        return _Check(_EXPIRING, None, f"not checked ({type(exc).__name__}: {exc})")
    if not found:
        return _Check(
            _EXPIRING, True, f"no current key of API {api_id} in this store ends within {span}"
        )
    ordered = sorted(found.items(), key=lambda item: item[1][1])
    parts = [
        f"key {key_id} ({f'alias {name}' if name else 'no alias'}) at {iso(expires)}, in "
        f"{format_duration((expires - now) / 1000)}"
        for key_id, (name, expires) in ordered[:_NAMED_AT_MOST]
    ]
    more = len(ordered) - _NAMED_AT_MOST
    which = "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
    return _Check(
        _EXPIRING,
        True,
        f"{len(ordered)} current key(s) of API {api_id} end within {span}: {which}; "
        f"{replace_advice(api_id, 'NAME')}; see them all with unkey-secrets list --api-id "
        f"{api_id} --expiring-within {span}",
        warning=True,
    )
